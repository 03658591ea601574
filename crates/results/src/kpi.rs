//! KPI gates for CI (`ttc check`): thresholds per policy, and regression limits against a baseline run.
//!
//! The file format is documented in `docs/ci.md` and `configs/kpis.yaml`. Validation happens while the
//! YAML is deserialised, so every error carries the file, the key path and the line and column.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::Path;
use ttc_types::Record;

use crate::analysis::{self, Slo};
use crate::capacity::SloSpec;
use crate::metrics::{Direction, GroupMetric, MetricRef, RecordField, Stat};

/// Comparison a KPI value must satisfy against its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

/// A metric name checked when the YAML is read (so the error points at the `metric:` line).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct MetricName(pub String);

impl TryFrom<String> for MetricName {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        if GroupMetric::parse(&s).is_none() {
            RecordField::parse(&s).map_err(|e| anyhow::anyhow!("key `metric`: {e}"))?;
        }
        Ok(MetricName(s))
    }
}

/// A statistic name checked when the YAML is read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct StatName(pub String);

impl TryFrom<String> for StatName {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        Stat::parse(&s).map_err(|e| anyhow::anyhow!("key `stat`: {e}"))?;
        Ok(StatName(s))
    }
}

fn parse_metric_ref(metric: &MetricName, stat: &Option<StatName>) -> Result<MetricRef> {
    MetricRef::parse(&metric.0, stat.as_ref().map(|s| s.0.as_str())).map_err(|e| anyhow::anyhow!("key `stat`: {e}"))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawKpi")]
pub struct Kpi {
    pub name: String,
    pub metric: MetricRef,
    pub op: Op,
    pub value: f64,
    /// Only these suites' records (default: all).
    pub suites: Option<Vec<String>>,
    /// Only these policies (default: all).
    pub policies: Option<Vec<String>>,
    /// Evaluate per policy x suite instead of per policy.
    pub by_suite: bool,
    /// A policy without data for the metric fails instead of being skipped.
    pub fail_if_missing: bool,
    /// `capacity_rps`: the SLO it is judged at (a name under `slos:` resolved to its conditions, or the
    /// conditions themselves); default: the SLO the capacity search used.
    pub slo: Option<String>,
    /// Only the requests measured at this load level (`2` r/s, `c=4`, or `capacity`: the probe at the policy's
    /// capacity). Without it, every request except capacity probes (unless the run has nothing else).
    pub load: Option<LoadSelector>,
}

/// A load level a KPI is evaluated at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadSelector {
    /// The capacity probe at the policy's capacity (the highest passing one).
    Capacity,
    Rate(f64),
    Concurrency(u32),
}

impl LoadSelector {
    /// `capacity`, `c=4`, `2`, `2 r/s`.
    pub fn parse(v: &serde_yaml::Value) -> Result<LoadSelector> {
        let text = match v {
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s.trim().to_string(),
            _ => anyhow::bail!("key `load`: expected `capacity`, a rate (`2` or `2 r/s`) or `c=N`"),
        };
        if text == "capacity" {
            return Ok(LoadSelector::Capacity);
        }
        if let Some(c) = text.strip_prefix("c=") {
            return match c.trim().parse::<u32>() {
                Ok(c) if c > 0 => Ok(LoadSelector::Concurrency(c)),
                _ => anyhow::bail!("key `load`: `{text}`: expected c=N with N >= 1"),
            };
        }
        match text.trim_end_matches("r/s").trim().parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(LoadSelector::Rate(r)),
            _ => anyhow::bail!("key `load`: `{text}`: expected `capacity`, a rate > 0 (`2` or `2 r/s`) or `c=N`"),
        }
    }

    pub fn label(&self) -> String {
        match self {
            LoadSelector::Capacity => "at capacity".into(),
            LoadSelector::Rate(r) => format!("at {} r/s", ttc_types::record::fmt_rate(*r)),
            LoadSelector::Concurrency(c) => format!("at c={c}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKpi {
    name: Option<String>,
    metric: MetricName,
    stat: Option<StatName>,
    op: Op,
    value: f64,
    suites: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    #[serde(default)]
    by_suite: bool,
    #[serde(default)]
    fail_if_missing: bool,
    slo: Option<String>,
    load: Option<serde_yaml::Value>,
}

/// The line (1-based) of `name:` inside the top-level `slos:` block (that block's line when not found).
fn slos_line(text: &str, name: &str) -> usize {
    let mut block = None;
    for (n, line) in text.lines().enumerate() {
        let indented = line.starts_with(|c: char| c.is_whitespace());
        if !indented && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            block = line.starts_with("slos:").then_some(n + 1);
            if block.is_some() && line.contains(&format!("{name}:")) {
                return n + 1;
            }
        } else if block.is_some() && line.trim_start().starts_with(&format!("{name}:")) {
            return n + 1;
        }
    }
    text.lines().position(|l| l.starts_with("slos:")).map_or(1, |i| i + 1)
}

/// The line (1-based) of the `slo:` key of the `index`-th entry under `kpis:` (best effort: the entry's first line).
fn slo_key_line(text: &str, index: usize) -> usize {
    let mut in_kpis = false;
    let mut entry: Option<usize> = None;
    let mut entry_line = 1;
    for (n, line) in text.lines().enumerate() {
        let indented = line.starts_with(|c: char| c.is_whitespace());
        let t = line.trim_start();
        if !indented && !t.is_empty() && !t.starts_with('#') {
            in_kpis = t.starts_with("kpis:");
            continue;
        }
        if !in_kpis {
            continue;
        }
        if t.starts_with("- ") || t == "-" {
            entry = Some(entry.map_or(0, |e| e + 1));
            entry_line = n + 1;
        }
        let key = t.trim_start_matches("- ").trim_start_matches('{').trim_start();
        if entry == Some(index) && (key.starts_with("slo:") || t.contains(" slo:") || t.contains("{slo:")) {
            return n + 1;
        }
    }
    entry_line
}

/// A threshold must be finite: NaN compares false with everything (a gate that can never pass, or, with
/// the outcome inverted, never fail) and an infinite one is vacuous.
fn finite(key: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        anyhow::bail!("key `{key}`: must be a finite number, got {v}")
    }
}

impl TryFrom<RawKpi> for Kpi {
    type Error = anyhow::Error;
    fn try_from(r: RawKpi) -> Result<Self> {
        let metric = parse_metric_ref(&r.metric, &r.stat)?;
        finite("value", r.value)?;
        let load = r.load.as_ref().map(LoadSelector::parse).transpose()?;
        if r.slo.is_some() && metric != MetricRef::Group(GroupMetric::CapacityRps) && load != Some(LoadSelector::Capacity) {
            anyhow::bail!("key `slo`: only for `metric: capacity_rps` or `load: capacity`");
        }
        let at = load.map(|l| format!(" {}", l.label())).unwrap_or_default();
        Ok(Kpi {
            name: r.name.unwrap_or_else(|| format!("{}{at} {} {}", metric.label(), r.op, r.value)),
            metric,
            op: r.op,
            value: r.value,
            suites: r.suites,
            policies: r.policies,
            by_suite: r.by_suite,
            fail_if_missing: r.fail_if_missing,
            slo: r.slo,
            load,
        })
    }
}

/// The metric may not get worse than the baseline run's by more than `max_worsening_pct` percent
/// ("worse" follows the metric's direction: higher latency, lower throughput or quality).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRegression")]
pub struct Regression {
    pub name: String,
    pub metric: MetricRef,
    pub max_worsening_pct: f64,
    pub suites: Option<Vec<String>>,
    pub policies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegression {
    name: Option<String>,
    metric: MetricName,
    stat: Option<StatName>,
    max_worsening_pct: f64,
    suites: Option<Vec<String>>,
    policies: Option<Vec<String>>,
}

impl TryFrom<RawRegression> for Regression {
    type Error = anyhow::Error;
    fn try_from(r: RawRegression) -> Result<Self> {
        let metric = parse_metric_ref(&r.metric, &r.stat)?;
        if !r.max_worsening_pct.is_finite() || r.max_worsening_pct < 0.0 {
            anyhow::bail!("key `max_worsening_pct`: must be a finite number >= 0, got {}", r.max_worsening_pct);
        }
        Ok(Regression {
            name: r.name.unwrap_or_else(|| format!("{} worsens <= {}%", metric.label(), r.max_worsening_pct)),
            metric,
            max_worsening_pct: r.max_worsening_pct,
            suites: r.suites,
            policies: r.policies,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiFile {
    /// SLOs used by goodput KPIs.
    #[serde(default)]
    pub slo: Slo,
    #[serde(default)]
    pub kpis: Vec<Kpi>,
    #[serde(default)]
    pub regressions: Vec<Regression>,
    /// Named SLOs for capacity KPIs: `default: "p95_e2e_s<=2,error_rate<0.01"`.
    #[serde(default)]
    pub slos: BTreeMap<String, String>,
}

/// The original specification's gates: p95 latency < 2.0 s, output throughput > 300 tok/s, ROUGE-L > 0.1,
/// error rate < 1%.
pub const DEFAULT_KPIS_YAML: &str = r#"
kpis:
  - { name: "p95 latency", metric: e2e_s, stat: p95, op: "<", value: 2.0 }
  - { name: "output throughput", metric: output_tok_s, op: ">", value: 300 }
  - { name: "ROUGE-L", metric: rouge_l, stat: mean, op: ">", value: 0.1 }
  - { name: "error rate", metric: error_rate, op: "<", value: 0.01 }
regressions:
  - { name: "p95 TTFT regression", metric: ttft_s, stat: p95, max_worsening_pct: 10 }
"#;

/// Where the KPIs come from when no file is named (`ttc check`, `ttc report`, `ttc run`, the dashboard); the
/// built-in defaults apply if it is absent.
pub const DEFAULT_KPI_PATH: &str = "configs/kpis.yaml";

/// The KPIs every gate and view uses: an explicit path must exist; otherwise [`DEFAULT_KPI_PATH`], else the
/// built-in defaults. Returns them and a description of their source.
pub fn load_kpis(explicit: Option<&Path>) -> Result<(KpiFile, String)> {
    match explicit {
        Some(p) => Ok((KpiFile::load(p)?, p.display().to_string())),
        None if Path::new(DEFAULT_KPI_PATH).is_file() => {
            Ok((KpiFile::load(Path::new(DEFAULT_KPI_PATH))?, DEFAULT_KPI_PATH.to_string()))
        }
        None => Ok((KpiFile::defaults(), "built-in defaults".to_string())),
    }
}

impl KpiFile {
    /// Parses KPI YAML; `origin` (a file name) prefixes every error, which names key path, line and column.
    pub fn parse(text: &str, origin: &str) -> Result<KpiFile> {
        let mut file: KpiFile =
            serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", locate(text, &e)))?;
        for (name, spec) in &file.slos {
            SloSpec::parse(spec).map_err(|e| {
                anyhow::anyhow!("{origin}: slos.{name}: cannot parse `{spec}`: {e} at line {}", slos_line(text, name))
            })?;
        }
        let slos = file.slos.clone();
        for (i, k) in file.kpis.iter_mut().enumerate() {
            if let Some(s) = k.slo.take() {
                let spec = match slos.get(&s) {
                    Some(spec) => spec.clone(),
                    None => match SloSpec::parse(&s) {
                        Ok(spec) => spec.to_string(),
                        Err(e) => anyhow::bail!(
                            "{origin}: kpis[{i}] ({}): key `slo`: `{s}` is neither a name under `slos:` ({}) nor an SLO: {e} \
                             at line {}",
                            k.name,
                            slos.keys().cloned().collect::<Vec<_>>().join(", "),
                            slo_key_line(text, i)
                        ),
                    },
                };
                k.slo = Some(spec);
            }
        }
        if file.kpis.is_empty() && file.regressions.is_empty() {
            anyhow::bail!("{origin}: defines no `kpis` and no `regressions`");
        }
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<KpiFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading KPI file {}", path.display()))?;
        KpiFile::parse(&text, &path.display().to_string())
    }

    pub fn defaults() -> KpiFile {
        KpiFile::parse(DEFAULT_KPIS_YAML, "built-in defaults").expect("built-in KPI defaults are valid")
    }
}

/// serde_yaml places errors raised while checking a value at the start of the enclosing list item; move
/// the reported line to the line of the offending key when the message names one (`key `stat`: ...`).
fn locate(text: &str, e: &serde_yaml::Error) -> String {
    let mut msg = e.to_string();
    // serde_yaml leaves the position out of its message at line 1 column 1, and has none for a second document.
    match e.location() {
        Some(l) if !msg.contains(" at line ") => msg = format!("{msg} at line {} column {}", l.line(), l.column()),
        None => {
            if let Some(line) = ttc_types::yaml::second_document_line(text) {
                return format!("{msg} at line {line}");
            }
        }
        Some(_) => {}
    }
    let (Some(loc), Some(key)) = (e.location(), msg.split("key `").nth(1).and_then(|r| r.split('`').next())) else {
        return msg;
    };
    let found = text.lines().enumerate().skip(loc.line().saturating_sub(1)).find(|(_, l)| {
        let l = l.trim_start().trim_start_matches("- ").trim_start();
        l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    match (found, msg.rfind(" at line ")) {
        (Some((i, _)), Some(cut)) => format!("{} at line {}", &msg[..cut], i + 1),
        _ => msg,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// No data for this metric (e.g. a quality metric the suite does not score).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiResult {
    pub kpi: String,
    pub policy: String,
    pub suite: Option<String>,
    pub metric: String,
    pub value: Option<f64>,
    /// `< 2.0`, or `worsening <= 10%` for regressions.
    pub requirement: String,
    pub baseline: Option<f64>,
    pub outcome: Outcome,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub run_id: String,
    pub baseline_run: Option<String>,
    pub results: Vec<KpiResult>,
}

impl CheckReport {
    pub fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }
    pub fn passed(&self) -> bool {
        self.count(Outcome::Fail) == 0
    }
}

/// The value of `metric` over a set of records.
pub fn metric_value(records: &[&Record], metric: &MetricRef, slo: &Slo) -> Option<f64> {
    if records.is_empty() {
        return None;
    }
    match metric {
        MetricRef::Field(field, stat) => {
            let values: Vec<f64> = records.iter().filter_map(|r| field.value(r)).collect();
            stat.apply(&values)
        }
        MetricRef::Group(g) => {
            let (tokens, count, span) = analysis::throughput_span(records);
            let primary = analysis::primary_metric(records, None);
            let correct = analysis::correct_metric(records, primary.as_deref(), slo.correct_metric.as_deref());
            let (goodput, quality_goodput, attainment) = analysis::goodput(records, slo, correct.as_deref());
            match g {
                GroupMetric::ErrorRate => Some(analysis::error_rate(records)),
                GroupMetric::OutputTokS => span.map(|s| tokens as f64 / s),
                GroupMetric::RequestRate => span.map(|s| count as f64 / s),
                GroupMetric::Goodput => goodput,
                GroupMetric::QualityGoodput => quality_goodput,
                GroupMetric::SloAttainment => Some(attainment),
                GroupMetric::Count => Some(records.len() as f64),
                GroupMetric::CapacityRps => {
                    let probes: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
                    crate::capacity::capacities(&probes, None).first().map(|c| c.capacity_rps)
                }
            }
        }
    }
}

/// A KPI's value on the selected records, on its load axis: `capacity_rps` at its SLO, or the metric over the
/// requests at its `load` level (plain requests when it names none).
fn load_metric_value(recs: &[&Record], capacity_only: &HashSet<String>, kpi: &Kpi, slo: &Slo) -> Option<f64> {
    let spec = kpi.slo.as_deref().and_then(|s| SloSpec::parse(s).ok());
    let probes: Vec<Record> = recs.iter().filter(|r| r.load.is_capacity()).map(|r| (*r).clone()).collect();
    let capacity = || crate::capacity::capacities(&probes, spec.as_ref()).into_iter().next();
    if kpi.metric == MetricRef::Group(GroupMetric::CapacityRps) {
        return capacity().map(|c| c.capacity_rps);
    }
    let at: Vec<&Record> = match kpi.load {
        None => recs.iter().copied().filter(|r| crate::capacity::is_plain(r, capacity_only)).collect(),
        Some(LoadSelector::Rate(x)) => {
            recs.iter().copied().filter(|r| r.load.offered_rate.is_some_and(|o| (o - x).abs() <= 1e-9 * x.max(1.0))).collect()
        }
        Some(LoadSelector::Concurrency(c)) => recs.iter().copied().filter(|r| r.load.concurrency_level == Some(c)).collect(),
        Some(LoadSelector::Capacity) => {
            let c = capacity()?;
            let phase = c.probes.iter().find(|p| p.pass && p.stats.offered_rate == c.capacity_rps)?.stats.phase.clone();
            recs.iter().copied().filter(|r| r.load.is_capacity() && r.load.phase.as_deref() == Some(phase.as_str())).collect()
        }
    };
    metric_value(&at, &kpi.metric, slo)
}

fn selected<'a>(records: &'a [Record], policy: &str, suite: Option<&str>, suites: &Option<Vec<String>>) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.policy == policy)
        .filter(|r| suite.is_none_or(|s| r.suite == s))
        .filter(|r| suites.as_ref().is_none_or(|ss| ss.contains(&r.suite)))
        .collect()
}

/// The (policy, suite) pairs a gate gives a verdict for: the policies its filter names (every one, present
/// in the run or not, so that a name matching nothing is visible) or else the run's policies; with
/// `by_suite`, the suites its filter names or else those the policy ran.
fn scopes(
    records: &[Record],
    policies: &Option<Vec<String>>,
    suites: &Option<Vec<String>>,
    by_suite: bool,
) -> Vec<(String, Option<String>)> {
    let mut out: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    let names: BTreeSet<&str> = match policies {
        Some(ps) => ps.iter().map(String::as_str).collect(),
        None => records.iter().map(|r| r.policy.as_str()).collect(),
    };
    for policy in names {
        if !by_suite {
            out.insert((policy.to_string(), None));
        } else if let Some(ss) = suites {
            out.extend(ss.iter().map(|s| (policy.to_string(), Some(s.clone()))));
        } else {
            out.extend(records.iter().filter(|r| r.policy == policy).map(|r| (policy.to_string(), Some(r.suite.clone()))));
        }
    }
    out.into_iter().collect()
}

/// Names of a `policies:` / `suites:` filter that no record of the run carries.
fn absent<'a>(filter: &'a Option<Vec<String>>, records: &[Record], field: fn(&Record) -> &str) -> Vec<&'a str> {
    let present: BTreeSet<&str> = records.iter().map(field).collect();
    let gone: BTreeSet<&str> = filter.iter().flatten().map(String::as_str).filter(|n| !present.contains(n)).collect();
    gone.into_iter().collect()
}

/// Why a scope has no data: the filter names a policy or suite the run does not have, or there is none.
fn missing_note(records: &[Record], policy: &str, suite: Option<&str>, suites: &Option<Vec<String>>) -> String {
    if !records.iter().any(|r| r.policy == policy) {
        return format!("policy `{policy}` is not in the run");
    }
    let wanted: Vec<&str> = match suite {
        Some(s) => vec![s],
        None => suites.iter().flatten().map(String::as_str).collect(),
    };
    let gone: Vec<&str> = wanted.into_iter().filter(|s| !records.iter().any(|r| r.suite == *s)).collect();
    if gone.is_empty() {
        "no data".to_string()
    } else {
        format!("suite `{}` is not in the run", gone.join("`, `"))
    }
}

/// The `policies:` and `suites:` filters of `file` that name a policy or suite absent from `records`, one
/// message per filter naming the entry, the names and what the run has. `ttc check` refuses such a file
/// (exit 2), since a typo would otherwise turn a gate into a pass; a KPI with `fail_if_missing: true` is
/// left out, as [`evaluate`] fails it instead.
pub fn unmatched_filters(file: &KpiFile, run_id: &str, records: &[Record]) -> Vec<String> {
    fn policy(r: &Record) -> &str {
        &r.policy
    }
    fn suite(r: &Record) -> &str {
        &r.suite
    }
    let list = |field: fn(&Record) -> &str| {
        let names: BTreeSet<&str> = records.iter().map(field).collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    };
    let mut out = Vec::new();
    let mut check = |entry: String, policies: &Option<Vec<String>>, suites: &Option<Vec<String>>| {
        for (key, filter, field) in [("policies", policies, policy as fn(&Record) -> &str), ("suites", suites, suite)] {
            let gone = absent(filter, records, field);
            if !gone.is_empty() {
                out.push(format!(
                    "{entry}: `{key}` names `{}`, not in run {run_id} (its {key}: {})",
                    gone.join("`, `"),
                    list(field)
                ));
            }
        }
    };
    for (i, k) in file.kpis.iter().enumerate().filter(|(_, k)| !k.fail_if_missing) {
        check(format!("kpis[{i}] ({})", k.name), &k.policies, &k.suites);
    }
    for (i, r) in file.regressions.iter().enumerate() {
        check(format!("regressions[{i}] ({})", r.name), &r.policies, &r.suites);
    }
    out
}

/// Relative worsening in percent (positive = worse), following the metric's direction.
pub fn worsening_pct(current: f64, baseline: f64, direction: Direction) -> f64 {
    // In "badness" units (lower is better for every direction; |x - 1| for closer-to-one metrics).
    let delta = direction.badness(current) - direction.badness(baseline);
    let base = direction.badness(baseline).abs();
    if delta == 0.0 {
        0.0
    } else if base == 0.0 {
        f64::INFINITY.copysign(delta)
    } else {
        delta / base * 100.0
    }
}

/// Evaluates every KPI per policy (or policy x suite) on `records`, and regression limits against
/// `baseline` records when given.
pub fn evaluate(
    file: &KpiFile,
    run_id: &str,
    records: &[Record],
    baseline: Option<(&str, &[Record])>,
) -> CheckReport {
    let mut results = Vec::new();
    let plain = crate::capacity::capacity_only_runs(records);
    for kpi in &file.kpis {
        for (policy, suite) in scopes(records, &kpi.policies, &kpi.suites, kpi.by_suite) {
            let recs = selected(records, &policy, suite.as_deref(), &kpi.suites);
            let value = load_metric_value(&recs, &plain, kpi, &file.slo);
            let needs_capacity = kpi.metric == MetricRef::Group(GroupMetric::CapacityRps) || kpi.load == Some(LoadSelector::Capacity);
            let missing = || {
                Some(if needs_capacity && !recs.is_empty() && !recs.iter().any(|r| r.load.is_capacity()) {
                    "no capacity search in this run (`ttc capacity`, or a `capacity:` section in the run file)".to_string()
                } else {
                    missing_note(records, &policy, suite.as_deref(), &kpi.suites)
                })
            };
            let (outcome, note) = match value {
                Some(v) if kpi.op.holds(v, kpi.value) => (Outcome::Pass, None),
                Some(_) => (Outcome::Fail, None),
                None if kpi.fail_if_missing => (Outcome::Fail, missing()),
                None => (Outcome::Skip, missing()),
            };
            results.push(KpiResult {
                kpi: kpi.name.clone(),
                policy,
                suite,
                metric: kpi.metric.label(),
                value,
                requirement: format!("{} {}", kpi.op, kpi.value),
                baseline: None,
                outcome,
                note,
            });
        }
    }
    if let Some((base_id, base_records)) = baseline {
        for reg in &file.regressions {
            for (policy, _) in scopes(records, &reg.policies, &reg.suites, false) {
                let cur = metric_value(&selected(records, &policy, None, &reg.suites), &reg.metric, &file.slo);
                let base = metric_value(&selected(base_records, &policy, None, &reg.suites), &reg.metric, &file.slo);
                let (outcome, note) = match (cur, base) {
                    (Some(c), Some(b)) => {
                        let w = worsening_pct(c, b, reg.metric.direction());
                        let o = if w <= reg.max_worsening_pct { Outcome::Pass } else { Outcome::Fail };
                        (o, Some(format!("{w:+.1}% worse than {base_id}")))
                    }
                    (_, None) => (Outcome::Skip, Some(format!("no data in baseline {base_id}"))),
                    (None, _) => (Outcome::Skip, Some(missing_note(records, &policy, None, &reg.suites))),
                };
                results.push(KpiResult {
                    kpi: reg.name.clone(),
                    policy,
                    suite: None,
                    metric: reg.metric.label(),
                    value: cur,
                    requirement: format!("worsening <= {}%", reg.max_worsening_pct),
                    baseline: base,
                    outcome,
                    note,
                });
            }
        }
    }
    CheckReport { run_id: run_id.to_string(), baseline_run: baseline.map(|(b, _)| b.to_string()), results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_origin_key_and_line() {
        let cases = [
            ("kpis:\n  - metric: e2e_s\n    stat: p95\n    op: \"<\"\n    value: 2.0\n  - metric: rouge_x\n    op: \">\"\n    value: 1\n", &["kpis.yaml", "kpis[1]", "key `metric`", "line 6", "unknown metric `rouge_x`"][..]),
            ("kpis:\n  - metric: e2e_s\n    stat: p101\n    op: \"<\"\n    value: 2\n", &["kpis[0]", "key `stat`", "line 3", "unknown statistic `p101`"][..]),
            ("kpis:\n  - metric: e2e_s\n    op: \"=<\"\n    value: 2\n", &["kpis[0].op", "line 3", "unknown variant `=<`"][..]),
            ("kpis:\n  - metric: e2e_s\n    op: \"<\"\n", &["kpis[0]", "missing field `value`", "line 2"][..]),
            ("kpis:\n  - metric: e2e_s\n    op: \"<\"\n    value: 1\n    treshold: 2\n", &["kpis[0]", "unknown field `treshold`", "line 5"][..]),
            ("kpis:\n  - metric: error_rate\n    stat: p95\n    op: \"<\"\n    value: 1\n", &["kpis", "key `stat`", "takes no statistic", "line 3"][..]),
            ("kpis: [\n", &["kpis.yaml", "line"][..]),
            ("regressions:\n  - metric: ttft_s\n    max_worsening_pct: -5\n", &["regressions", "key `max_worsening_pct`", ">= 0", "line 3"][..]),
            ("slo:\n  e2e_s: 2\n", &["defines no `kpis`"][..]),
            // SLO bounds are checked while deserialising: serde_yaml names the path, line and column.
            ("kpis:\n  - { metric: goodput, op: \">\", value: 0 }\nslo:\n  ttft_s: 1\n  e2e_s: .inf\n", &["kpis.yaml: slo.e2e_s: must be a finite number, got inf at line 5 column 10"][..]),
            ("slo: { correct_min: .nan }\nkpis: []\nregressions: [{ metric: ttft_s, max_worsening_pct: 5 }]\n", &["kpis.yaml: slo.correct_min: must be a finite number, got NaN at line 1 column 21"][..]),
        ];
        for (text, needles) in cases {
            let err = KpiFile::parse(text, "kpis.yaml").unwrap_err().to_string();
            for n in needles {
                assert!(err.contains(n), "missing `{n}` in: {err}");
            }
        }
    }

    #[test]
    fn defaults_follow_the_specification() {
        let f = KpiFile::defaults();
        assert_eq!(f.kpis.len(), 4);
        assert_eq!(f.kpis[0].metric, MetricRef::Field(RecordField::E2eS, Stat::Percentile(95.0)));
        assert_eq!((f.kpis[0].op, f.kpis[0].value), (Op::Lt, 2.0));
        assert_eq!(f.kpis[1].metric, MetricRef::Group(GroupMetric::OutputTokS));
        assert_eq!(f.kpis[3].metric, MetricRef::Group(GroupMetric::ErrorRate));
        assert_eq!(f.regressions[0].max_worsening_pct, 10.0);
    }

    #[test]
    fn worsening_follows_direction() {
        assert_eq!(worsening_pct(1.1, 1.0, Direction::LowerIsBetter).round(), 10.0);
        assert_eq!(worsening_pct(90.0, 100.0, Direction::HigherIsBetter), 10.0);
        assert_eq!(worsening_pct(110.0, 100.0, Direction::HigherIsBetter), -10.0);
        assert_eq!(worsening_pct(0.0, 0.0, Direction::LowerIsBetter), 0.0);
        assert_eq!(worsening_pct(1.0, 0.0, Direction::LowerIsBetter), f64::INFINITY);
        // Closer to one: 0.8 -> 1.3 moves from 0.2 to 0.3 away from one, 50% worse; 1.3 -> 0.9 is better.
        assert!((worsening_pct(1.3, 0.8, Direction::CloserToOne) - 50.0).abs() < 1e-9);
        assert!(worsening_pct(0.9, 1.3, Direction::CloserToOne) < 0.0);
    }
}
