//! `ttc score`: score predictions made elsewhere. Each input line is a JSON object with `prediction` and
//! `reference` (a string or a list of strings; for WorfBench both are workflow texts) and optionally `id`,
//! `task` and `reward_metric`. Prints one JSON line of metrics per input line, then a summary.

use crate::metrics::SuiteKind;
use ttc_types::Suite;
use crate::{score_reply, scorer_for, EmbedderKind, EvalError, ScorerCtx};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `ttc score` scores, and how.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// JSONL file: one {"prediction", "reference", "id"?, "task"?, "reward_metric"?} object per line.
    pub input: PathBuf,
    /// Scoring rules: crmarena, crmarena_pro, worfbench or generic.
    pub suite: String,
    /// Metrics to compute (empty: every metric that applies to the suite).
    pub metrics: Vec<String>,
    /// Sentence embedder for semantic_similarity and WorfBench node matching.
    pub embedder: EmbedderKind,
    /// Never download model files; fail if the embedder is not cached.
    pub offline: bool,
    /// Porter stemming in ROUGE (rouge-score's use_stemmer).
    pub rouge_stemmer: bool,
    /// Seed of the bootstrap confidence intervals (the rest of the interval rule is `ttc summary`'s:
    /// `ttc_stats::metric_mean_ci` with its default resamples and confidence).
    pub seed: u64,
    /// Print the summary as one JSON line instead of a table.
    pub json: bool,
}

/// Scores every line of the input and prints the metrics, then a summary. Bad flags or input (an unknown
/// suite or metric, an unreadable file, a malformed line) are [`EvalError`]s other than `Embed`; an embedder
/// failure or an I/O error on stdout is a runtime failure.
pub fn run(opts: ScoreOptions) -> anyhow::Result<()> {
    score_to_stdout(&opts)
}

/// `--suite`: a bundled suite's scoring rules (`ttc_types::Suite::BUNDLED`, by name) or `generic`.
fn suite_kind(suite: &str) -> anyhow::Result<SuiteKind> {
    match Suite::from_name(suite) {
        Some(s) if Suite::BUNDLED.contains(&s) => Ok(SuiteKind::of_suite(s.name())),
        _ if suite == SuiteKind::Generic.as_str() => Ok(SuiteKind::Generic),
        _ => Err(EvalError::BadFlag(format!("--suite {suite}: expected {} or generic", Suite::BUNDLED.map(Suite::name).join(", "))).into()),
    }
}

/// The input's non-blank lines with their 1-based numbers (UTF-8, a byte-order mark allowed).
fn input_lines(path: &Path) -> Result<Vec<(usize, String)>, EvalError> {
    let bytes = std::fs::read(path).map_err(|error| EvalError::Io { path: path.to_path_buf(), error })?;
    let text = crate::suite::decode_text(path, bytes)?;
    Ok(text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(n, l)| (n + 1, l.to_string())).collect())
}

/// Scores one line; a reference that cannot be scored (a WorfBench gold that does not parse) is bad input
/// on that line, an embedder failure is not.
fn score_line(kind: SuiteKind, path: &Path, line_no: usize, line: &str, ctx: &ScorerCtx) -> Result<(Value, BTreeMap<String, f64>), EvalError> {
    let input = parse_line(path, line_no, line)?;
    let metrics = score_reply(kind, input.task.as_deref(), input.reward_metric.as_deref(), &input.prediction, &input.references, ctx)
        .map_err(|e| match e {
            EvalError::Embed(_) => e,
            other => EvalError::malformed(path, line_no, other.to_string()),
        })?;
    Ok((input.id, metrics))
}

fn score_to_stdout(args: &ScoreOptions) -> anyhow::Result<()> {
    let kind = suite_kind(&args.suite)?;
    let mut ctx = scorer_for(kind.as_str(), &args.metrics, args.embedder, !args.offline)?;
    ctx.rouge_stemmer = args.rouge_stemmer;
    let lines = input_lines(&args.input)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut rows = Vec::new();
    for (line_no, line) in lines {
        let (id, metrics) = score_line(kind, &args.input, line_no, &line, &ctx)?;
        writeln!(out, "{}", json!({"line": line_no, "id": id, "metrics": metrics}))?;
        rows.push(metrics);
    }
    let summary = aggregate(&rows, args.seed);
    if args.json {
        writeln!(out, "{}", json!({"summary": summary, "records": rows.len(), "suite": kind.as_str(), "embedder": ctx.embedder_name()}))?;
    } else {
        write!(out, "{}", summary_table(&summary, rows.len(), ctx.embedder_name()))?;
    }
    Ok(())
}

/// One metric's mean over the scored lines with its 95% interval (the summary line of `ttc score`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub metric: String,
    /// Lines that carry the metric.
    pub n: usize,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Mean and interval of every metric present in `rows` (non-finite values are skipped), by metric name: the
/// interval `ttc summary` gives the same values (`ttc_stats::metric_mean_ci`, seeded with `seed`).
pub fn aggregate(rows: &[BTreeMap<String, f64>], seed: u64) -> Vec<Aggregate> {
    let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        for (k, v) in row.iter().filter(|(_, v)| v.is_finite()) {
            by_metric.entry(k.as_str()).or_default().push(*v);
        }
    }
    let cfg = ttc_stats::BootstrapConfig { seed, ..ttc_stats::BootstrapConfig::DEFAULT };
    by_metric
        .into_iter()
        .filter_map(|(name, values)| {
            let e = ttc_stats::metric_mean_ci(&values, name, &cfg)?;
            Some(Aggregate { metric: name.to_string(), n: e.n, mean: e.value, ci_low: e.lo, ci_high: e.hi })
        })
        .collect()
}

struct Line {
    id: Value,
    prediction: String,
    references: Vec<String>,
    task: Option<String>,
    reward_metric: Option<String>,
}

fn parse_line(path: &std::path::Path, line_no: usize, line: &str) -> Result<Line, EvalError> {
    let err = |m: String| EvalError::Malformed { path: path.to_path_buf(), line: line_no, message: m };
    let v: Value = serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| err("expected a JSON object".into()))?;
    let opt = |k: &str| -> Result<Option<String>, EvalError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(err(format!("field `{k}`: expected a string"))),
        }
    };
    let prediction = opt("prediction")?.ok_or_else(|| err("field `prediction`: missing".into()))?;
    let references = match obj.get("reference") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Null) => vec!["None".to_string()],
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok("None".to_string()),
                _ => Err(err("field `reference`: list items must be strings".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err("field `reference`: expected a string or a non-empty list of strings".into())),
        None => return Err(err("field `reference`: missing".into())),
    };
    Ok(Line { id: obj.get("id").cloned().unwrap_or(Value::Null), prediction, references, task: opt("task")?, reward_metric: opt("reward_metric")? })
}

fn summary_table(summary: &[Aggregate], records: usize, embedder: Option<&str>) -> String {
    let mut s = format!("\n{records} records{}\n", embedder.map(|e| format!(", embedder {e}")).unwrap_or_default());
    s.push_str(&format!("{:<26} {:>6} {:>9}   {:<21}\n", "metric", "n", "mean", "95% CI (bootstrap)"));
    for a in summary {
        s.push_str(&format!("{:<26} {:>6} {:>9.4}   [{:.4}, {:.4}]\n", a.metric, a.n, a.mean, a.ci_low, a.ci_high));
    }
    s
}

/// For tests: the per-line metric maps of a file, as `run` computes them.
pub fn score_file(args: &ScoreOptions) -> anyhow::Result<Vec<BTreeMap<String, f64>>> {
    let kind = suite_kind(&args.suite)?;
    let mut ctx = scorer_for(kind.as_str(), &args.metrics, args.embedder, !args.offline)?;
    ctx.rouge_stemmer = args.rouge_stemmer;
    let mut rows = Vec::new();
    for (line_no, line) in input_lines(&args.input)? {
        rows.push(score_line(kind, &args.input, line_no, &line, &ctx)?.1);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_skip_missing_and_non_finite_values() {
        let rows = vec![
            BTreeMap::from([("f1".to_string(), 1.0), ("bleu".to_string(), f64::NAN)]),
            BTreeMap::from([("f1".to_string(), 0.0)]),
        ];
        let a = aggregate(&rows, 0);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].metric.as_str(), a[0].n, a[0].mean), ("f1", 2, 0.5));
    }
}
