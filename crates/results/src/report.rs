//! `ttc report`: a performance report an engineer would send, built from one run's records.
//!
//! Every sentence in the findings and recommendations is computed from the data (fastest, best quality,
//! Pareto-optimal, cost relative to the baseline with paired tests, KPI failures, errors, sample size); the
//! report is assembled as blocks and rendered to Markdown or HTML with embedded SVG charts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use ttc_types::{Record, RecordStatus};

use crate::analysis::{self, AnalysisConfig, GroupSummary, Summary};
use crate::compare::{self, Verdict};
use crate::kpi::{self, CheckReport, KpiFile, Outcome};
use crate::render::{estimate, ms, num, outcome_label, pct};
use crate::store::LoadedRun;
use crate::svg;

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, String),
    /// Text with `**bold**` and `` `code` `` inline marks.
    Para(String),
    Bullets(Vec<String>),
    Table { header: Vec<String>, rows: Vec<Vec<String>> },
    Svg(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub title: String,
    pub blocks: Vec<Block>,
}

pub struct ReportOptions {
    pub analysis: AnalysisConfig,
    pub kpis: KpiFile,
    /// Where the KPIs came from (file path or "built-in defaults").
    pub kpi_source: String,
    /// Policy the others are measured against; default: a policy named `baseline`, else one whose algorithm is.
    pub baseline_policy: Option<String>,
}

fn find_baseline(records: &[Record], configured: Option<&str>) -> Option<String> {
    let policies: BTreeSet<&str> = records.iter().map(|r| r.policy.as_str()).collect();
    if let Some(c) = configured {
        return policies.contains(c).then(|| c.to_string());
    }
    if policies.contains("baseline") {
        return Some("baseline".into());
    }
    records.iter().find(|r| r.algorithm == "baseline").map(|r| r.policy.clone())
}

fn rel(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a.abs() * 100.0),
        _ => None,
    }
}

fn signed_pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |p| format!("{p:+.1}%"))
}

/// Distinct values in first-seen order.
fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    it.filter(|s| seen.insert(s.to_string())).map(str::to_string).collect()
}

struct Ctx<'a> {
    run: &'a LoadedRun,
    summary: Summary,
    check: CheckReport,
    baseline: Option<String>,
    suites: Vec<String>,
    opts: &'a ReportOptions,
}

impl Ctx<'_> {
    fn groups_of(&self, suite: &str) -> Vec<&GroupSummary> {
        self.summary.groups.iter().filter(|g| g.suite == suite).collect()
    }
    fn records_of(&self, policy: &str, suite: &str) -> Vec<Record> {
        self.run.records.iter().filter(|r| r.policy == policy && r.suite == suite).cloned().collect()
    }
}

pub fn build(run: &LoadedRun, opts: &ReportOptions) -> Report {
    let mut analysis_cfg = opts.analysis.clone();
    analysis_cfg.prices.extend(crate::cost::prices_of(std::slice::from_ref(run)));
    let summary = analysis::summarize(&run.records, &analysis_cfg);
    let check = kpi::evaluate(&opts.kpis, &run.run_id, &run.records, None);
    let baseline = find_baseline(&run.records, opts.baseline_policy.as_deref());
    let suites = distinct(run.records.iter().map(|r| r.suite.as_str()));
    let ctx = Ctx { run, summary, check, baseline, suites, opts };

    let mut blocks = Vec::new();
    executive_summary(&ctx, &mut blocks);
    settings(&ctx, &mut blocks);
    results_table(&ctx, &mut blocks);
    blocks.extend(crate::load_report::blocks(&ctx.summary, &run.records, ctx.baseline.as_deref(), &opts.analysis.bootstrap));
    findings(&ctx, &mut blocks);
    fidelity_table(&ctx, &mut blocks);
    sample_size(&ctx, &mut blocks);
    tradeoffs(&ctx, &mut blocks);
    kpi_status(&ctx, &mut blocks);
    recommendations(&ctx, &mut blocks);
    if !run.warnings.is_empty() {
        blocks.push(Block::Heading(2, "Data warnings".into()));
        blocks.push(Block::Bullets(run.warnings.clone()));
    }
    Report { title: format!("ttcbench report: run {}", run.run_id), blocks }
}

fn best<'a>(gs: &[&'a GroupSummary], key: impl Fn(&GroupSummary) -> Option<f64>, lower: bool) -> Option<&'a GroupSummary> {
    gs.iter()
        .filter_map(|g| key(g).filter(|v| v.is_finite()).map(|v| (v, *g)))
        .min_by(|a, b| if lower { a.0.total_cmp(&b.0) } else { b.0.total_cmp(&a.0) })
        .map(|(_, g)| g)
}

/// Best primary quality; ties go to the lower p95 latency (the Pareto-optimal one of the tied policies).
fn best_quality<'a>(gs: &[&'a GroupSummary]) -> Option<&'a GroupSummary> {
    gs.iter()
        .filter(|g| g.primary_goodness().is_some_and(f64::is_finite))
        .min_by(|a, b| {
            let (qa, qb) = (a.primary_goodness().unwrap_or(f64::NAN), b.primary_goodness().unwrap_or(f64::NAN));
            qb.total_cmp(&qa).then(a.e2e_s.p95.unwrap_or(f64::INFINITY).total_cmp(&b.e2e_s.p95.unwrap_or(f64::INFINITY)))
        })
        .copied()
}

fn executive_summary(c: &Ctx, b: &mut Vec<Block>) {
    let rs = &c.run.records;
    let policies = distinct(rs.iter().map(|r| r.policy.as_str()));
    let errors = rs.iter().filter(|r| r.status == RecordStatus::Error).count();
    let models = distinct(rs.iter().map(|r| r.model.as_str()));
    let backends = distinct(rs.iter().map(|r| r.backend.as_str()));
    b.push(Block::Heading(2, "Executive summary".into()));
    let mut bullets = vec![format!(
        "Run `{}`: {} requests, {} policies x {} suites, model {} on the {} backend; {} errors ({}).",
        c.run.run_id,
        rs.len(),
        policies.len(),
        c.suites.len(),
        models.join(", "),
        backends.join(", "),
        errors,
        pct(if rs.is_empty() { 0.0 } else { errors as f64 / rs.len() as f64 })
    )];
    for suite in &c.suites {
        let gs = c.groups_of(suite);
        let mut parts = Vec::new();
        if let Some(g) = best(&gs, |g| g.e2e_s.p95, true) {
            parts.push(format!("fastest (p95 E2E) is **{}** at {} ms", g.policy, ms(g.e2e_s.p95)));
        }
        if let Some(g) = best_quality(&gs) {
            let m = g.primary_metric.clone().unwrap_or_default();
            parts.push(format!("best {m} is **{}** at {}", g.policy, estimate(&g.quality[&m], 3)));
        }
        if let Some(g) = best(&gs, |g| g.output_tok_s, false) {
            parts.push(format!("highest throughput is **{}** at {} tok/s", g.policy, num(g.output_tok_s, 1)));
        }
        let front: Vec<&str> = gs.iter().filter(|g| g.pareto_optimal).map(|g| g.policy.as_str()).collect();
        if !front.is_empty() {
            parts.push(format!("Pareto-optimal: {}", front.join(", ")));
        }
        bullets.push(format!("Suite `{suite}`: {}.", parts.join("; ")));
    }
    let fails: Vec<String> = c
        .check
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| format!("{} / {} ({} vs {})", r.policy, r.kpi, num(r.value, 3), r.requirement))
        .collect();
    bullets.push(format!(
        "KPIs ({}): {} passed, {} failed, {} skipped{}",
        c.opts.kpi_source,
        c.check.count(Outcome::Pass),
        c.check.count(Outcome::Fail),
        c.check.count(Outcome::Skip),
        if fails.is_empty() { ".".to_string() } else { format!("; failing: {}.", fails.join("; ")) }
    ));
    b.push(Block::Bullets(bullets));
}

fn settings(c: &Ctx, b: &mut Vec<Block>) {
    let rs = &c.run.records;
    let join = |f: fn(&Record) -> Option<&str>| {
        let v = distinct(rs.iter().filter_map(f));
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let m = c.run.manifest.as_ref();
    let mut rows = vec![
        vec!["run id".into(), c.run.run_id.clone()],
        vec!["started at".into(), m.map(|m| m.meta.started_at.clone()).unwrap_or_else(|| join(|r| Some(&r.run_started_at)))],
        vec!["status".into(), m.map_or("unknown (no manifest)".into(), |m| format!("{:?}", m.status).to_lowercase())],
        vec![
            "requests recorded / planned".into(),
            format!("{} / {}", rs.len(), m.and_then(|m| m.meta.planned).map_or("-".into(), |p| p.to_string())),
        ],
        vec!["model".into(), join(|r| Some(&r.model))],
        vec!["weights".into(), join(|r| r.weights.as_deref())],
        vec!["backend".into(), join(|r| Some(&r.backend))],
        vec!["base URL".into(), join(|r| r.base_url.as_deref())],
        vec!["host".into(), join(|r| Some(&r.host))],
        vec!["project version".into(), join(|r| Some(&r.project_version))],
        vec!["config hash".into(), join(|r| Some(&r.config_hash))],
        vec!["token counts from".into(), distinct(rs.iter().filter_map(|r| r.token_count_source).map(|s| match s {
            ttc_types::TokenCountSource::Engine => "engine",
            ttc_types::TokenCountSource::Usage => "usage",
            ttc_types::TokenCountSource::Tokenizer => "tokenizer",
        })).join(", ")],
        vec!["goodput SLO".into(), c.opts.analysis.slo.describe()],
        vec![
            "confidence intervals".into(),
            format!(
                "{:.0}% percentile bootstrap, {} resamples, seed {}",
                c.opts.analysis.bootstrap.confidence * 100.0,
                c.opts.analysis.bootstrap.resamples,
                c.opts.analysis.bootstrap.seed
            ),
        ],
    ];
    if let Some(extra) = m.map(|m| &m.meta.extra).filter(|e| !e.is_null()) {
        rows.push(vec!["run settings".into(), format!("`{extra}`")]);
    }
    b.push(Block::Heading(2, "System and run settings".into()));
    b.push(Block::Table { header: vec!["setting".into(), "value".into()], rows });
    let mut seen = BTreeSet::new();
    let policy_rows: Vec<Vec<String>> = rs
        .iter()
        .filter(|r| seen.insert(r.policy.clone()))
        .map(|r| vec![r.policy.clone(), r.algorithm.clone(), format!("`{}`", r.params_json)])
        .collect();
    b.push(Block::Table { header: vec!["policy".into(), "algorithm".into(), "parameters".into()], rows: policy_rows });
}

/// Correct answers, output tokens per correct answer, and the cost columns when the run set a price.
fn efficiency_table(c: &Ctx, b: &mut Vec<Block>) {
    let groups = &c.summary.groups;
    if groups.iter().all(|g| g.n_correct.is_none() && g.cost.is_none()) {
        return;
    }
    let with_cost = groups.iter().any(|g| g.cost.is_some());
    b.push(Block::Heading(3, "Efficiency".into()));
    let mut header: Vec<String> = ["policy", "suite", "correct", "correct by", "output tokens / correct"].map(String::from).to_vec();
    if with_cost {
        header.extend(["$ / request", "$ / 1M output tokens", "$ / correct answer"].map(String::from));
    }
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = vec![
                g.policy.clone(),
                g.suite.clone(),
                g.n_correct.map_or("-".into(), |n| format!("{n}/{}", g.n)),
                g.correct_metric.clone().unwrap_or_else(|| "-".into()),
                num(g.output_tokens_per_correct, 1),
            ];
            if with_cost {
                let k = g.cost.as_ref();
                row.extend([
                    crate::render::usd(k.map(|k| k.per_request_usd)),
                    crate::render::usd(k.and_then(|k| k.per_1m_output_usd)),
                    crate::render::usd(k.and_then(|k| k.per_correct_usd)),
                ]);
            }
            row
        })
        .collect();
    b.push(Block::Table { header, rows });
    let price = match c.summary.config.prices.get(&c.run.run_id) {
        Some(p) => format!("Costs use the run's price, {}.", p.describe()),
        None => "No price was set: add `cost: {usd_per_hour: ..}` or `cost: {usd_per_1m_input: .., usd_per_1m_output: ..}` \
                 to the run file for cost per request, per 1M output tokens and per correct answer."
            .to_string(),
    };
    b.push(Block::Para(format!(
        "An answer is correct when its metric (`correct by`) is >= {}: CRMArena's normalised exact match, else the \
         suite's primary metric (docs/metrics.md). {price}",
        c.opts.analysis.slo.correct_min
    )));
}

fn results_table(c: &Ctx, b: &mut Vec<Block>) {
    b.push(Block::Heading(2, "Results".into()));
    let header = [
        "policy", "suite", "n", "errors", "TTFT p50 ms", "TTFT p95 ms", "E2E p50 ms", "E2E p95 ms", "E2E p99 ms", "TPOT ms",
        "tok/s (agg)", "tok/s (req)", "goodput r/s", "quality goodput r/s", "quality mean [95% CI]", "Pareto",
    ]
    .map(String::from)
    .to_vec();
    let rows = c
        .summary
        .groups
        .iter()
        .map(|g| {
            vec![
                g.policy.clone(),
                g.suite.clone(),
                g.n.to_string(),
                pct(g.error_rate),
                ms(g.ttft_s.p50),
                ms(g.ttft_s.p95),
                ms(g.e2e_s.p50),
                ms(g.e2e_s.p95),
                ms(g.e2e_s.p99),
                ms(g.tpot_s.mean),
                num(g.output_tok_s, 1),
                num(g.output_tok_s_per_request, 1),
                num(g.goodput, 2),
                num(g.quality_goodput, 2),
                match g.primary_metric.as_ref().and_then(|m| g.quality.get(m).map(|e| (m, e))) {
                    Some((m, e)) => format!("{m} {}", estimate(e, 3)),
                    None => "-".into(),
                },
                if g.pareto_optimal { "yes".into() } else { String::new() },
            ]
        })
        .collect();
    b.push(Block::Table { header, rows });
    b.push(Block::Para(format!(
        "Latencies are over successful requests; aggregate throughput is output tokens / busy time (wall time with at least one of the group's requests in flight); \
         goodput counts requests meeting {} per second, quality goodput also requires a correct answer (see Efficiency).",
        c.opts.analysis.slo.describe(),
    )));
    efficiency_table(c, b);
    let internals: BTreeSet<&String> = c.summary.groups.iter().flat_map(|g| g.internals.keys()).collect();
    if !internals.is_empty() {
        let mut header = vec!["policy".to_string(), "suite".to_string()];
        header.extend(internals.iter().map(|s| s.to_string()));
        let rows = c
            .summary
            .groups
            .iter()
            .filter(|g| !g.internals.is_empty())
            .map(|g| {
                let mut row = vec![g.policy.clone(), g.suite.clone()];
                row.extend(internals.iter().map(|k| num(g.internals.get(*k).copied(), 3)));
                row
            })
            .collect();
        b.push(Block::Heading(3, "Policy internals (means)".into()));
        b.push(Block::Table { header, rows });
    }
    if !c.summary.routes.is_empty() {
        let (header, rows) = crate::render::route_rows(&c.summary);
        b.push(Block::Heading(3, "Routes".into()));
        b.push(Block::Para(
            "Each router's requests by the policy its rules picked (latency in ms over successful requests; quality = \
             the suite's primary metric, mean)."
                .into(),
        ));
        b.push(Block::Table { header, rows });
    }
}

/// Paired comparison of `policy` against the baseline on one suite.
struct VsBaseline {
    policy: String,
    p95_rel: Option<f64>,
    tput_rel: Option<f64>,
    /// Paired bootstrap of the p95 E2E difference (policy - baseline).
    p95: Option<compare::MetricDiff>,
    quality: Option<compare::MetricDiff>,
    /// Paired differences of the fidelity metrics that decide when the task metric cannot (`fidelity_*`).
    fidelity: Vec<compare::MetricDiff>,
}

/// Fidelity metrics in the order they decide a verdict: teacher-forced agreement and divergence first (they
/// measure the policy's own computation), then output-level similarity to the baseline's text.
const FIDELITY_EVIDENCE: &[&str] = &["fidelity_top1", "fidelity_kl", "fidelity_rouge_l", "fidelity_exact_match"];

/// The quality verdict of a policy against the baseline and the evidence that decided it: the task metric when
/// its paired difference is significant; else (task-metric CIs overlapping) the first fidelity metric whose
/// paired difference is; else no significant difference on either.
fn quality_verdict(v: &VsBaseline) -> (Verdict, String) {
    let task = v.quality.as_ref();
    if let Some(d) = task.filter(|d| d.verdict != Verdict::NoSignificantDifference) {
        return (d.verdict, format!("task metric ({})", d.metric.trim_start_matches("mean ")));
    }
    for name in FIDELITY_EVIDENCE {
        let Some(d) = v.fidelity.iter().find(|d| d.metric == format!("mean {name}")) else { continue };
        if d.verdict != Verdict::NoSignificantDifference {
            let why = if task.is_some() { "task metric not significant" } else { "no task metric" };
            return (d.verdict, format!("{name} {:+.3} ({why})", d.diff.value));
        }
    }
    let measured: Vec<&str> = FIDELITY_EVIDENCE
        .iter()
        .copied()
        .filter(|n| v.fidelity.iter().any(|d| d.metric == format!("mean {n}")))
        .collect();
    let evidence = match (task.is_some(), measured.is_empty()) {
        (true, true) => "task metric".to_string(),
        (_, false) => format!("task metric and {}", measured.join(", ")),
        (false, true) => "-".to_string(),
    };
    (Verdict::NoSignificantDifference, evidence)
}

/// `(-23.1%, significant)` style note for a paired latency difference.
fn latency_note(rel: Option<f64>, d: Option<&compare::MetricDiff>) -> String {
    match d {
        Some(d) if d.verdict != Verdict::NoSignificantDifference => format!("{} p95 latency, significant", signed_pct(rel)),
        Some(d) => format!("{} p95 latency, not significant with {} pairs", signed_pct(rel), d.n_pairs),
        None => format!("{} p95 latency", signed_pct(rel)),
    }
}

fn vs_baseline(c: &Ctx, suite: &str) -> Vec<VsBaseline> {
    let Some(base) = &c.baseline else { return Vec::new() };
    let gs = c.groups_of(suite);
    let Some(bg) = gs.iter().find(|g| &g.policy == base) else { return Vec::new() };
    let base_records = c.records_of(base, suite);
    let mut out = Vec::new();
    for g in gs.iter().filter(|g| &g.policy != base) {
        let cmp = compare::compare(base, &base_records, &g.policy, &c.records_of(&g.policy, suite), false, &c.opts.analysis.bootstrap);
        let quality = g
            .primary_metric
            .as_ref()
            .and_then(|m| cmp.quality.iter().find(|d| d.metric == format!("mean {m}")).cloned());
        let fidelity = cmp.quality.iter().filter(|d| d.metric.starts_with("mean fidelity_")).cloned().collect();
        out.push(VsBaseline {
            policy: g.policy.clone(),
            p95_rel: rel(bg.e2e_s.p95, g.e2e_s.p95),
            tput_rel: rel(bg.output_tok_s, g.output_tok_s),
            p95: cmp.performance.iter().find(|d| d.metric == "p95 e2e_s").cloned(),
            quality,
            fidelity,
        });
    }
    out
}

fn findings(c: &Ctx, b: &mut Vec<Block>) {
    b.push(Block::Heading(2, "Key findings".into()));
    match &c.baseline {
        None => b.push(Block::Para(
            "No baseline policy in this run (name one `baseline`, or pass --baseline-policy), so costs are not \
             expressed relative to a baseline."
                .into(),
        )),
        Some(base) => {
            let mut rows = Vec::new();
            for suite in &c.suites {
                for v in vs_baseline(c, suite) {
                    let dq = match &v.quality {
                        Some(d) => format!("{:+.3} [{:+.3}, {:+.3}]", d.diff.value, d.diff.lo, d.diff.hi),
                        None => "-".into(),
                    };
                    let (verdict, evidence) = quality_verdict(&v);
                    let verdict = if evidence == "-" { "-".to_string() } else { verdict.label().to_string() };
                    let p95 = v.p95.as_ref().map_or("-".into(), |d| d.verdict.label().to_string());
                    rows.push(vec![
                        v.policy.clone(),
                        suite.clone(),
                        signed_pct(v.p95_rel),
                        p95,
                        signed_pct(v.tput_rel),
                        dq,
                        verdict,
                        evidence,
                    ]);
                }
            }
            b.push(Block::Para(format!(
                "Cost of each policy relative to the baseline `{base}` on the same samples (paired bootstrap: p95 E2E \
                 verdict from the CI of the p95 difference, quality from the CI of the difference in the suite's \
                 primary metric; negative latency change = faster). When that quality CI includes zero, the verdict \
                 falls to the policy's fidelity (teacher-forced top-1 agreement, then KL, then ROUGE-L and exact \
                 match against the baseline's output), and `decided by` names the evidence."
            )));
            b.push(Block::Table {
                header: ["policy", "suite", "p95 E2E change", "p95 verdict", "throughput change", "quality diff [95% CI]", "quality verdict", "decided by"]
                    .map(String::from)
                    .to_vec(),
                rows,
            });
        }
    }
    let mut bullets = Vec::new();
    for g in &c.summary.groups {
        if g.n_error > 0 {
            let classes: Vec<String> = g.errors_by_class.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            bullets.push(format!(
                "`{}` on `{}` had {} failed requests ({}): {}.",
                g.policy,
                g.suite,
                g.n_error,
                pct(g.error_rate),
                classes.join(", ")
            ));
        }
        if let (Some(p50), Some(p99)) = (g.e2e_s.p50, g.e2e_s.p99) {
            if p50 > 0.0 && p99 / p50 > 3.0 {
                bullets.push(format!(
                    "`{}` on `{}` has a long latency tail: p99 E2E is {:.1}x its median ({} vs {} ms).",
                    g.policy,
                    g.suite,
                    p99 / p50,
                    ms(Some(p99)),
                    ms(Some(p50))
                ));
            }
        }
    }
    if !bullets.is_empty() {
        b.push(Block::Bullets(bullets));
    }
}

/// Fidelity per policy x suite with 95% CIs (docs/metrics.md "Fidelity"); left out when no record has any.
fn fidelity_table(c: &Ctx, b: &mut Vec<Block>) {
    let cols = ["fidelity_top1", "fidelity_kl", "fidelity_top5", "fidelity_first_divergence", "fidelity_pruned_mass", "fidelity_rouge_l", "fidelity_exact_match"];
    let mut rows = Vec::new();
    for suite in &c.suites {
        for g in c.groups_of(suite) {
            if !cols.iter().any(|m| g.quality.contains_key(*m)) {
                continue;
            }
            let mut row = vec![g.policy.clone(), suite.clone()];
            row.extend(cols.iter().map(|m| g.quality.get(*m).map_or("-".into(), |e| estimate(e, 3))));
            rows.push(row);
        }
    }
    // Pooled over suites: one quantity measured on every prompt, so the interval narrows with all of them.
    for f in c.summary.fidelity.iter().filter(|f| f.suites.len() > 1) {
        let mut row = vec![f.policy.clone(), format!("all ({})", f.suites.join(" + "))];
        row.extend(cols.iter().map(|m| f.metrics.get(*m).map_or("-".into(), |e| estimate(e, 3))));
        rows.push(row);
    }
    if rows.is_empty() {
        return;
    }
    b.push(Block::Heading(2, "Fidelity to the full model".into()));
    b.push(Block::Para(
        "Each policy replayed along the baseline's greedy trajectory for the same prompt (embedded engine): top-1 = \
         probability its decision rule picks the baseline's token, KL(full ‖ policy) in nats per token over its \
         candidate set, top-5 overlap, first divergence (token index), full-model mass it pruned; then ROUGE-L and \
         exact match of its output against the baseline policy's output. Means over requests with 95% bootstrap CIs; \
         the `all` rows pool every suite's requests of a policy."
            .into(),
    ));
    let mut header = vec!["policy".to_string(), "suite".to_string()];
    header.extend(["top-1 agreement", "KL (nats)", "top-5 overlap", "first divergence", "pruned mass", "ROUGE-L vs baseline", "exact vs baseline"].map(String::from));
    b.push(Block::Table { header, rows });
}

/// Achieved CI half-widths and the smallest paired difference the run could detect: with n pairs whose
/// differences have standard deviation s, a true difference below (z₀.₉₇₅ + z₀.₈)·s/√n ≈ 2.8·s/√n is detected less
/// than 80% of the time (the usual minimum detectable effect at α = 0.05, power 0.8).
fn sample_size(c: &Ctx, b: &mut Vec<Block>) {
    let target = c.run.manifest.as_ref().and_then(|m| m.meta.extra.get("until_ci")).filter(|u| !u.is_null());
    let watched = target.and_then(|u| u.get("metric")).and_then(|m| m.as_str()).map(str::to_string);
    let mut rows = Vec::new();
    for suite in &c.suites {
        let gs = c.groups_of(suite);
        let Some(metric) = watched.clone().or_else(|| gs.iter().find_map(|g| g.primary_metric.clone())) else { continue };
        let base = c.baseline.as_ref().map(|p| c.records_of(p, suite)).unwrap_or_default();
        for g in gs {
            let Some(e) = g.quality.get(&metric) else { continue };
            let mde = (!base.is_empty() && Some(&g.policy) != c.baseline.as_ref())
                .then(|| min_detectable(&base, &c.records_of(&g.policy, suite), &metric))
                .flatten();
            rows.push(vec![g.policy.clone(), suite.clone(), metric.clone(), e.n.to_string(), num(Some((e.hi - e.lo) / 2.0), 4), num(mde, 4)]);
        }
    }
    if rows.is_empty() {
        return;
    }
    b.push(Block::Heading(2, "Sample size".into()));
    let goal = match target.and_then(|u| u.get("width")).and_then(|w| w.as_f64()) {
        Some(w) => format!(" The run added samples in rounds until every half-width was at most {w} (or the suite ran out)."),
        None => String::new(),
    };
    b.push(Block::Para(format!(
        "Achieved 95% CI half-width of each policy's metric, and the smallest difference from the baseline that the \
         paired samples could detect (80% power, α = 0.05: 2.8 × sd of the paired differences / √pairs).{goal}"
    )));
    b.push(Block::Table {
        header: ["policy", "suite", "metric", "n", "CI half-width", "detectable paired diff"].map(String::from).to_vec(),
        rows,
    });
}

/// 80%-power minimum detectable paired difference of `metric` between two policies' records on common samples.
fn min_detectable(a: &[Record], b: &[Record], metric: &str) -> Option<f64> {
    let by: BTreeMap<(&str, &str), f64> =
        a.iter().filter_map(|r| Some(((r.suite.as_str(), r.sample_id.as_str()), analysis::metric_value(r, metric)?))).collect();
    let diffs: Vec<f64> = b
        .iter()
        .filter_map(|r| Some(analysis::metric_value(r, metric)? - by.get(&(r.suite.as_str(), r.sample_id.as_str()))?))
        .collect();
    let sd = ttc_stats::std_dev(&diffs)?;
    let z = ttc_stats::normal_quantile(0.975) + ttc_stats::normal_quantile(0.8);
    Some(z * sd / (diffs.len() as f64).sqrt())
}

fn tradeoffs(c: &Ctx, b: &mut Vec<Block>) {
    b.push(Block::Heading(2, "Latency, throughput and quality trade-offs".into()));
    for suite in &c.suites {
        let gs = c.groups_of(suite);
        let metric = gs.iter().find_map(|g| g.primary_metric.clone());
        let Some(metric) = metric else { continue };
        let points: Vec<svg::ScatterPoint> = gs
            .iter()
            .filter_map(|g| {
                Some(svg::ScatterPoint {
                    label: g.policy.clone(),
                    x: g.e2e_s.p95?,
                    y: g.quality.get(&metric)?.value,
                    on_front: g.pareto_optimal,
                    series: 0,
                })
            })
            .collect();
        b.push(Block::Svg(svg::scatter(
            &format!("{suite}: p95 latency vs {metric}"),
            "p95 end-to-end latency (s)",
            &format!("mean {metric}"),
            &points,
            std::slice::from_ref(suite),
        )));
    }
    // Throughput and TTFT per policy over all suites of the run.
    let policies = distinct(c.run.records.iter().map(|r| r.policy.as_str()));
    let mut tput = Vec::new();
    let mut ttft = Vec::new();
    for p in &policies {
        let recs: Vec<&Record> = c.run.records.iter().filter(|r| &r.policy == p).collect();
        let (tokens, _, span) = analysis::throughput_span(&recs);
        tput.push((p.clone(), span.map_or(f64::NAN, |s| tokens as f64 / s)));
        let mut t: Vec<f64> =
            recs.iter().filter(|r| r.status == RecordStatus::Ok).filter_map(|r| r.ttft_s).filter(|v| !v.is_nan()).collect();
        t.sort_unstable_by(f64::total_cmp);
        ttft.push((p.clone(), t));
    }
    b.push(Block::Svg(svg::bars("Output throughput per policy (aggregate)", "tokens / s", &tput)));
    b.push(Block::Svg(svg::box_plot("TTFT distribution per policy", "time to first token (s)", &ttft)));
}

fn kpi_status(c: &Ctx, b: &mut Vec<Block>) {
    b.push(Block::Heading(2, "KPI status".into()));
    b.push(Block::Para(format!("KPIs from {}; evaluated per policy over all suites unless a KPI says otherwise.", c.opts.kpi_source)));
    let rows = c
        .check
        .results
        .iter()
        .map(|r| {
            vec![
                r.kpi.clone(),
                r.policy.clone(),
                r.suite.clone().unwrap_or_else(|| "all".into()),
                r.metric.clone(),
                num(r.value, 4),
                r.requirement.clone(),
                format!("**{}**", outcome_label(r.outcome)),
            ]
        })
        .collect();
    b.push(Block::Table {
        header: ["KPI", "policy", "suite", "metric", "value", "requirement", "result"].map(String::from).to_vec(),
        rows,
    });
}

fn recommendations(c: &Ctx, b: &mut Vec<Block>) {
    b.push(Block::Heading(2, "Recommendations".into()));
    let mut recs = Vec::new();
    for suite in &c.suites {
        let gs = c.groups_of(suite);
        let vs = vs_baseline(c, suite);
        let not_worse = |p: &str| vs.iter().find(|v| v.policy == p).is_none_or(|v| v.quality.as_ref().is_none_or(|d| d.verdict != Verdict::Worse));
        // Latency-critical: fastest policy whose quality is not significantly worse than the baseline's.
        let candidates: Vec<&GroupSummary> = gs.iter().copied().filter(|g| not_worse(&g.policy)).collect();
        if let Some(g) = best(&candidates, |g| g.e2e_s.p95, true) {
            let base_txt = match (&c.baseline, vs.iter().find(|v| v.policy == g.policy)) {
                (Some(base), Some(v)) => format!(
                    " (vs `{base}`: {}; quality {})",
                    latency_note(v.p95_rel, v.p95.as_ref()),
                    v.quality.as_ref().map_or("not compared".into(), |d| d.verdict.label().to_string())
                ),
                (Some(base), None) if &g.policy == base => " (the baseline itself: no policy was faster without losing quality)".into(),
                _ => String::new(),
            };
            recs.push(format!(
                "Suite `{suite}`, latency first: use **{}**, p95 E2E {} ms{base_txt}.",
                g.policy,
                ms(g.e2e_s.p95)
            ));
        }
        if let Some(g) = best_quality(&gs) {
            let m = g.primary_metric.clone().unwrap_or_default();
            let cost = match (&c.baseline, vs.iter().find(|v| v.policy == g.policy)) {
                (Some(base), Some(v)) => format!(
                    "; vs `{base}`: {}, {m} {}",
                    latency_note(v.p95_rel, v.p95.as_ref()),
                    v.quality.as_ref().map_or("-".into(), |d| format!("{:+.3} ({})", d.diff.value, d.verdict.label()))
                ),
                _ => String::new(),
            };
            recs.push(format!("Suite `{suite}`, quality first: use **{}** ({m} {:.3}{cost}).", g.policy, g.quality[&m].value));
        }
        // Dominated policies: slower and no better than some other policy.
        for g in gs.iter().filter(|g| !g.pareto_optimal && g.e2e_s.p95.is_some() && g.primary_quality().is_some()) {
            if let Some(d) = gs.iter().find(|o| {
                o.pareto_optimal
                    && o.e2e_s.p95 <= g.e2e_s.p95
                    && o.primary_goodness().zip(g.primary_goodness()).is_some_and(|(a, b)| a >= b)
            }) {
                // Dominance on point estimates; say whether the paired tests back it up.
                let cmp = compare::compare(
                    &d.policy,
                    &c.records_of(&d.policy, suite),
                    &g.policy,
                    &c.records_of(&g.policy, suite),
                    false,
                    &c.opts.analysis.bootstrap,
                );
                let slower = cmp.performance.iter().any(|x| x.metric == "p95 e2e_s" && x.verdict == Verdict::Worse);
                let worse = g.primary_metric.as_ref().is_some_and(|m| {
                    cmp.quality.iter().any(|x| x.metric == format!("mean {m}") && x.verdict == Verdict::Worse)
                });
                let action = if slower || worse {
                    "drop or retune it".to_string()
                } else {
                    format!("on point estimates only: the paired differences are not significant with {} samples", cmp.n_common)
                };
                recs.push(format!(
                    "Suite `{suite}`: **{}** is dominated by **{}** (p95 {} vs {} ms, quality {} vs {}); {action}.",
                    g.policy,
                    d.policy,
                    ms(d.e2e_s.p95),
                    ms(g.e2e_s.p95),
                    num(d.primary_quality(), 3),
                    num(g.primary_quality(), 3)
                ));
            }
        }
        let insignificant = vs.iter().filter(|v| v.quality.as_ref().is_some_and(|d| d.verdict == Verdict::NoSignificantDifference)).count();
        let min_n = gs.iter().map(|g| g.n).min().unwrap_or(0);
        if insignificant > 0 && min_n < 100 {
            recs.push(format!(
                "Suite `{suite}`: {insignificant} quality difference(s) vs the baseline are not significant with {min_n} samples \
                 per policy; run more samples before concluding they are equal."
            ));
        }
    }
    let mut failing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in c.check.results.iter().filter(|r| r.outcome == Outcome::Fail) {
        failing.entry(&r.policy).or_default().push(format!("{} ({} vs {})", r.kpi, num(r.value, 3), r.requirement));
    }
    let policies = distinct(c.run.records.iter().map(|r| r.policy.as_str()));
    let passing: Vec<&String> = policies.iter().filter(|p| !failing.contains_key(p.as_str())).collect();
    for (p, f) in &failing {
        recs.push(format!("**{p}** fails {}: it should not ship behind this gate as configured.", f.join(", ")));
    }
    if !failing.is_empty() {
        recs.push(if passing.is_empty() {
            "No policy passes every KPI: relax the KPIs or change the model/hardware.".to_string()
        } else {
            format!("Policies passing every KPI: {}.", passing.iter().map(|p| format!("**{p}**")).collect::<Vec<_>>().join(", "))
        });
    }
    for g in c.summary.groups.iter().filter(|g| g.error_rate > 0.0) {
        if let Some((class, _)) = g.errors_by_class.iter().max_by_key(|(_, n)| **n) {
            recs.push(format!(
                "Investigate `{class}` errors of **{}** on `{}` ({} of requests) before trusting its latency numbers.",
                g.policy,
                g.suite,
                pct(g.error_rate)
            ));
        }
    }
    if recs.is_empty() {
        recs.push("Not enough data for recommendations (no successful requests with quality scores).".into());
    }
    b.push(Block::Bullets(recs));
}

// ---------------------------------------------------------------------------------------------- rendering

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn to_markdown(r: &Report) -> String {
    let mut out = format!("# {}\n\n", r.title);
    for block in &r.blocks {
        match block {
            Block::Heading(level, t) => {
                let _ = writeln!(out, "{} {t}\n", "#".repeat(*level as usize));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "{t}\n");
            }
            Block::Bullets(items) => {
                for i in items {
                    let _ = writeln!(out, "- {i}");
                }
                out.push('\n');
            }
            Block::Table { header, rows } => {
                let _ = writeln!(out, "| {} |", header.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "));
                let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
                for row in rows {
                    let _ = writeln!(out, "| {} |", row.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
                }
                out.push('\n');
            }
            // Inline SVG: rendered by HTML-capable Markdown viewers (VS Code, pandoc, most static-site tools).
            Block::Svg(s) => {
                let _ = writeln!(out, "<div>{s}</div>\n");
            }
        }
    }
    out
}

/// `**bold**` and `` `code` `` to HTML, everything else escaped.
fn inline_html(s: &str) -> String {
    let esc = svg::escape(s);
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut rest = esc.as_str();
    while let Some(i) = rest.find(['*', '`']) {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with("**") && !code {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = &rest[i + 2..];
        } else if rest[i..].starts_with('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[i + 1..];
        } else {
            out.push('*');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

pub fn to_html(r: &Report) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0;font-size:13px}}th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}code{{background:#f4f4f4;padding:0 3px}}\
         svg{{margin:0.5em 0;border:1px solid #eee}}</style></head><body>\n<h1>{}</h1>\n",
        svg::escape(&r.title),
        svg::escape(&r.title)
    );
    for block in &r.blocks {
        match block {
            Block::Heading(level, t) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline_html(t));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "<p>{}</p>", inline_html(t));
            }
            Block::Bullets(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(out, "<li>{}</li>", inline_html(i));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { header, rows } => {
                out.push_str("<table><thead><tr>");
                for h in header {
                    let _ = write!(out, "<th>{}</th>", inline_html(h));
                }
                out.push_str("</tr></thead><tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        let _ = write!(out, "<td>{}</td>", inline_html(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::Svg(s) => {
                let _ = writeln!(out, "<figure>{s}</figure>");
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}
