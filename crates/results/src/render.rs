//! Text renderings of summaries, KPI checks and comparisons: terminal tables (comfy-table), CSV and JSON.

use anyhow::Result;
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::{GroupSummary, Summary};
use crate::compare::{Comparison, MetricDiff};
use crate::kpi::{CheckReport, Outcome};
use ttc_stats::Estimate;

/// Seconds as milliseconds with one decimal, `-` when absent.
pub fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{:.1}", s * 1000.0))
}

/// A number with `digits` decimals, `-` when absent.
pub fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

pub fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// `0.512 [0.480, 0.544]`
pub fn estimate(e: &Estimate, digits: usize) -> String {
    format!("{:.d$} [{:.d$}, {:.d$}]", e.value, e.lo, e.hi, d = digits)
}

/// `0.512±0.032`: the mean and the CI's half-width, for narrow terminal columns.
fn plus_minus(e: &Estimate) -> String {
    format!("{:.3}±{:.3}", e.value, (e.hi - e.lo) / 2.0)
}

pub(crate) fn table(header: Vec<String>, right_from: usize) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled).set_header(header);
    let n = t.column_count();
    for i in right_from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Keeps the first `n` columns (policy, suite: the names a reader scans for) at their content width, so a table
/// that must fit the terminal wraps its other cells instead of breaking a name in two.
pub(crate) fn keep_labels_whole(t: &mut Table, n: usize) {
    for i in 0..n {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
    }
}

fn set_right(t: &mut Table, from: usize) {
    for i in from..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn group_label_cells(g: &GroupSummary, multi_run: bool, by_task: bool) -> Vec<String> {
    let mut cells = Vec::new();
    if multi_run {
        cells.push(g.run_id.clone());
    }
    cells.push(g.policy.clone());
    cells.push(g.suite.clone());
    if by_task {
        cells.push(g.task.clone().unwrap_or_else(|| "-".into()));
    }
    cells
}

fn label_header(multi_run: bool, by_task: bool) -> Vec<String> {
    let mut h = Vec::new();
    if multi_run {
        h.push("run".to_string());
    }
    h.push("policy".into());
    h.push("suite".into());
    if by_task {
        h.push("task".into());
    }
    h
}

/// Width the default (compact) terminal summary fits in.
pub const COMPACT_WIDTH: u16 = 120;

/// The default terminal summary, fitting [`COMPACT_WIDTH`] columns: one row per policy x suite (x load level)
/// with the headline latency, throughput and primary quality; quality tables only when they fit; each group's
/// policy internals on one line (only the fields its policy family reports); capacities and their probes.
/// `--wide` prints [`summary_table_wide`].
pub fn summary_table(s: &Summary) -> String {
    let multi_run = s.run_ids.len() > 1;
    let by_task = s.config.by_task;
    let with_load = s.groups.iter().any(|g| g.load.is_some());
    let mut h = label_header(multi_run, by_task);
    if with_load {
        h.push("load".into());
    }
    let nl = h.len();
    h.extend(["n", "err", "TTFT p95", "E2E p50", "E2E p95", "tok/s", "quality ±95% CI", "P"].map(String::from));
    let mut t = table(h, nl);
    t.set_content_arrangement(ContentArrangement::Dynamic).set_width(COMPACT_WIDTH);
    keep_labels_whole(&mut t, nl);
    // The quality cell ("0.083±0.125", 11 characters and the padding) is unreadable once broken; the load label
    // and the headers wrap instead.
    if let Some(c) = t.column_mut(nl + 6) {
        c.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(13)));
    }
    let mut primaries: Vec<(String, String)> = Vec::new();
    for g in &s.groups {
        let mut row = group_label_cells(g, multi_run, by_task);
        if with_load {
            row.push(g.load.clone().unwrap_or_else(|| "-".into()));
        }
        let quality = match g.primary_metric.as_ref().and_then(|m| g.quality.get(m).map(|e| (m, e))) {
            Some((m, e)) => {
                if !primaries.iter().any(|(su, _)| su == &g.suite) {
                    primaries.push((g.suite.clone(), m.clone()));
                }
                plus_minus(e)
            }
            None => "-".into(),
        };
        row.extend([
            g.n.to_string(),
            pct(g.error_rate),
            ms(g.ttft_s.p95),
            ms(g.e2e_s.p50),
            ms(g.e2e_s.p95),
            num(g.output_tok_s, 1),
            quality,
            if g.pareto_optimal { "*".into() } else { String::new() },
        ]);
        t.add_row(row);
    }
    let mut out = format!("{t}\n");
    let metrics: Vec<String> = primaries.iter().map(|(su, m)| format!("{su} {m}")).collect();
    out.push_str(&format!(
        "Latency in ms; tok/s = aggregate output tokens/s; quality = primary metric ({}); P = Pareto-optimal.\n",
        if metrics.is_empty() { "none".into() } else { metrics.join(", ") }
    ));

    // Quality tables only while they fit (about 22 columns per policy); else `--wide`.
    let most = s.groups.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, g| {
        *m.entry(g.suite.as_str()).or_default() += 1;
        m
    });
    if most.values().all(|&n| n <= 4) {
        out.push_str(&quality_tables(s, multi_run, by_task));
    }

    out.push_str(&pooled_fidelity_table(s, multi_run));

    let with_internals: Vec<&GroupSummary> = s.groups.iter().filter(|g| !g.internals.is_empty()).collect();
    if !with_internals.is_empty() {
        let mut h = label_header(multi_run, by_task);
        if with_load {
            h.push("load".into());
        }
        h.push("policy internals (means)".into());
        let labels = label_header(multi_run, by_task).len();
        let mut p = table(h, usize::MAX);
        p.set_content_arrangement(ContentArrangement::Dynamic).set_width(COMPACT_WIDTH);
        keep_labels_whole(&mut p, labels);
        for g in with_internals {
            let mut row = group_label_cells(g, multi_run, by_task);
            if with_load {
                row.push(g.load.clone().unwrap_or_else(|| "-".into()));
            }
            let cells: Vec<String> = g.internals.iter().map(|(k, v)| format!("{k} {}", compact_num(*v))).collect();
            row.push(cells.join(", "));
            p.add_row(row);
        }
        out.push_str(&format!("\n{p}\n"));
    }
    out.push_str(&routes_table(s));
    out.push_str(&crate::load_render::capacity_tables(&s.capacity, true));
    out.push_str(&pareto_lines(s, multi_run));
    out.push_str(&format!(
        "Goodput SLO: {}. {} records in {} run(s). --wide: every column.\n",
        s.config.slo.describe(),
        s.n_records,
        s.run_ids.len()
    ));
    out
}

/// Each policy's fidelity to the full model, pooled over the run's suites (docs/metrics.md "Fidelity"): the
/// column that tells a faithful lossy policy from an unfaithful one when task quality sits at the floor.
/// Empty when no record carries fidelity.
pub fn pooled_fidelity_table(s: &Summary, multi_run: bool) -> String {
    if s.fidelity.is_empty() {
        return String::new();
    }
    let mut h = Vec::new();
    if multi_run {
        h.push("run".to_string());
    }
    h.extend(["policy", "suites", "n", "top-1 agreement", "KL nats/token", "exact vs baseline"].map(String::from));
    let right = h.len() - 4;
    let mut t = table(h, right);
    let cell = |f: &crate::analysis::PooledFidelity, m: &str| f.metrics.get(m).map_or("-".into(), plus_minus);
    for f in &s.fidelity {
        let mut row = Vec::new();
        if multi_run {
            row.push(f.run_id.clone());
        }
        row.extend([
            f.policy.clone(),
            f.suites.join("+"),
            f.n.to_string(),
            cell(f, "fidelity_top1"),
            cell(f, "fidelity_kl"),
            cell(f, "fidelity_exact_match"),
        ]);
        t.add_row(row);
    }
    format!("\nFidelity to the full model, all suites pooled: mean ±95% CI (teacher-forced on the baseline's greedy tokens; docs/metrics.md)\n{t}\n")
}

/// The header and rows of the by-route breakdown of routers (shared by the terminal summary and the report).
pub fn route_rows(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let multi_run = s.run_ids.len() > 1;
    let mut header = Vec::new();
    if multi_run {
        header.push("run".to_string());
    }
    header.extend(["router", "suite", "routed to", "rule", "n", "share", "p50 E2E", "p95 E2E", "quality"].map(String::from));
    let rows = s
        .routes
        .iter()
        .map(|g| {
            let mut row = Vec::new();
            if multi_run {
                row.push(g.run_id.clone());
            }
            let rules: Vec<String> = g.rules.iter().map(|(r, n)| if g.rules.len() > 1 { format!("{r} ({n})") } else { r.clone() }).collect();
            let quality = match (&g.primary_metric, g.primary_quality) {
                (Some(m), Some(q)) => format!("{m} {q:.3}"),
                _ => "-".into(),
            };
            row.extend([
                g.policy.clone(),
                g.suite.clone(),
                g.routed_policy.clone(),
                rules.join(", "),
                g.n.to_string(),
                pct(g.share),
                ms(g.e2e_s.p50),
                ms(g.e2e_s.p95),
                quality,
            ]);
            row
        })
        .collect();
    (header, rows)
}

/// Each router's requests by the policy they were routed to; empty without routers.
fn routes_table(s: &Summary) -> String {
    if s.routes.is_empty() {
        return String::new();
    }
    let (header, rows) = route_rows(s);
    let right = header.len() - 5;
    let mut t = table(header, right);
    for r in rows {
        t.add_row(r);
    }
    format!("\nRoutes (latency in ms)\n{t}\n")
}

/// 3 significant decimals for small values, fewer for large ones.
fn compact_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn pareto_lines(s: &Summary, multi_run: bool) -> String {
    let mut out = String::new();
    for p in &s.pareto {
        let mut scope = match (&p.task, multi_run) {
            (Some(t), true) => format!("{} / {} / {}", p.run_id, p.suite, t),
            (Some(t), false) => format!("{} / {}", p.suite, t),
            (None, true) => format!("{} / {}", p.run_id, p.suite),
            (None, false) => p.suite.clone(),
        };
        if let Some(l) = &p.load {
            scope = format!("{scope} at {l}");
        }
        let axis = p.metric.as_deref().unwrap_or("no quality metric");
        out.push_str(&format!("Pareto-optimal on {scope} (p95 E2E vs {axis}): {}\n", p.policies.join(", ")));
    }
    out
}

/// The full terminal summary (`--wide`): a main table per policy x suite, a quality table with CIs, internals,
/// Pareto sets, capacities.
pub fn summary_table_wide(s: &Summary) -> String {
    let multi_run = s.run_ids.len() > 1;
    let by_task = s.config.by_task;
    let with_load = s.groups.iter().any(|g| g.load.is_some());
    let mut labels = label_header(multi_run, by_task);
    if with_load {
        labels.push("load".into());
    }
    let nl = labels.len();

    let mut h = labels.clone();
    h.extend(
        [
            "n", "err", "TTFT p50 ms", "TTFT p95 ms", "E2E p50 ms", "E2E p95 ms", "E2E p99 ms", "TPOT ms", "TPOT p50 ms",
            "tok/s agg", "tok/s req", "goodput r/s", "quality (95% CI)", "pareto",
        ]
        .map(String::from),
    );
    let mut t = table(h, nl);
    for g in &s.groups {
        let mut row = group_label_cells(g, multi_run, by_task);
        if with_load {
            row.push(g.load.clone().unwrap_or_else(|| "-".into()));
        }
        let quality = match g.primary_metric.as_ref().and_then(|m| g.quality.get(m).map(|e| (m, e))) {
            Some((m, e)) => format!("{m} {}", estimate(e, 3)),
            None => "-".into(),
        };
        row.extend([
            g.n.to_string(),
            pct(g.error_rate),
            ms(g.ttft_s.p50),
            ms(g.ttft_s.p95),
            ms(g.e2e_s.p50),
            ms(g.e2e_s.p95),
            ms(g.e2e_s.p99),
            ms(g.tpot_s.mean),
            ms(g.tpot_s.p50),
            num(g.output_tok_s, 1),
            num(g.output_tok_s_per_request, 1),
            num(g.goodput, 2),
            quality,
            if g.pareto_optimal { "*".into() } else { String::new() },
        ]);
        t.add_row(row);
    }
    let mut out = format!("{t}\n");

    out.push_str(&quality_tables(s, multi_run, by_task));

    out.push_str(&efficiency_table(s, multi_run, by_task));

    let internals: BTreeSet<&String> = s.groups.iter().flat_map(|g| g.internals.keys()).collect();
    if !internals.is_empty() {
        let mut h = labels.clone();
        h.extend(internals.iter().map(|m| m.to_string()));
        let mut p = table(h, nl);
        for g in s.groups.iter().filter(|g| !g.internals.is_empty()) {
            let mut row = group_label_cells(g, multi_run, by_task);
            if with_load {
                row.push(g.load.clone().unwrap_or_else(|| "-".into()));
            }
            row.extend(internals.iter().map(|m| num(g.internals.get(*m).copied(), 3)));
            p.add_row(row);
        }
        out.push_str(&format!("\nPolicy internals (means)\n{p}\n"));
    }
    out.push_str(&pooled_fidelity_table(s, multi_run));
    out.push_str(&routes_table(s));
    out.push_str(&crate::load_render::capacity_tables(&s.capacity, true));
    out.push_str(&pareto_lines(s, multi_run));
    out.push_str(&format!(
        "Goodput SLO: {}. {} records in {} run(s).\n",
        s.config.slo.describe(),
        s.n_records,
        s.run_ids.len()
    ));
    out
}

/// Dollars with enough digits for sub-cent prices: `$0.000123`, `$1.25`; `-` when absent.
pub fn usd(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x != 0.0 && x.abs() < 0.01 => format!("${x:.3e}"),
        Some(x) => format!("${x:.4}"),
    }
}

/// Correct answers, output tokens per correct answer and, with a price (`cost:` in the run file), cost per
/// request, per 1M output tokens and per correct answer.
fn efficiency_table(s: &Summary, multi_run: bool, by_task: bool) -> String {
    if s.groups.iter().all(|g| g.n_correct.is_none() && g.cost.is_none()) {
        return String::new();
    }
    let with_cost = s.groups.iter().any(|g| g.cost.is_some());
    let mut h = label_header(multi_run, by_task);
    let nl = h.len();
    h.extend(["correct", "by", "out tok/correct"].map(String::from));
    if with_cost {
        h.extend(["$/request", "$/1M out tok", "$/correct"].map(String::from));
    }
    let mut t = table(h, nl);
    for g in &s.groups {
        let mut row = group_label_cells(g, multi_run, by_task);
        row.push(g.n_correct.map_or("-".into(), |c| format!("{c}/{}", g.n)));
        row.push(g.correct_metric.clone().unwrap_or_else(|| "-".into()));
        row.push(num(g.output_tokens_per_correct, 1));
        if with_cost {
            let c = g.cost.as_ref();
            row.extend([usd(c.map(|c| c.per_request_usd)), usd(c.and_then(|c| c.per_1m_output_usd)), usd(c.and_then(|c| c.per_correct_usd))]);
        }
        t.add_row(row);
    }
    let prices: Vec<String> = s.config.prices.iter().map(|(run, p)| {
        if multi_run { format!("{run}: {}", p.describe()) } else { p.describe() }
    }).collect();
    let price = if prices.is_empty() {
        "no price set (add `cost:` to the run file for cost columns)".to_string()
    } else {
        format!("price {}", prices.join("; "))
    };
    format!(
        "\nEfficiency (correct = metric >= {}; {price})\n{t}\n",
        s.config.slo.correct_min
    )
}

/// Quality per suite, transposed so that many metrics stay readable: one row per metric, one column per
/// policy (x run, x task), cells `mean [95% CI]`.
fn quality_tables(s: &Summary, multi_run: bool, by_task: bool) -> String {
    let mut suites: Vec<&str> = Vec::new();
    for g in &s.groups {
        if !suites.contains(&g.suite.as_str()) {
            suites.push(&g.suite);
        }
    }
    let mut out = String::new();
    for suite in suites {
        let groups: Vec<&GroupSummary> = s.groups.iter().filter(|g| g.suite == suite && !g.quality.is_empty()).collect();
        let metrics: BTreeSet<&String> = groups.iter().flat_map(|g| g.quality.keys()).collect();
        if metrics.is_empty() {
            continue;
        }
        let mut h = vec!["metric".to_string()];
        h.extend(groups.iter().map(|g| {
            let mut label = g.policy.clone();
            if by_task {
                label = format!("{label} / {}", g.task.as_deref().unwrap_or("-"));
            }
            if multi_run {
                label = format!("{} / {label}", g.run_id);
            }
            label
        }));
        let mut t = table(h, 1);
        for m in &metrics {
            let mut row = vec![m.to_string()];
            row.extend(groups.iter().map(|g| g.quality.get(*m).map_or("-".into(), |e| estimate(e, 3))));
            t.add_row(row);
        }
        out.push_str(&format!("\nQuality on {suite}: mean [95% CI]\n{t}\n"));
    }
    out
}

/// One CSV row per group; quality metrics as `<metric>_mean/_lo/_hi/_n`, internals as `ps_<field>`.
pub fn summary_csv(s: &Summary) -> Result<String> {
    let metrics: BTreeSet<&String> = s.groups.iter().flat_map(|g| g.quality.keys()).collect();
    let internals: BTreeSet<&String> = s.groups.iter().flat_map(|g| g.internals.keys()).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "run_id", "policy", "algorithm", "suite", "task", "n", "n_ok", "n_error", "error_rate", "ttft_mean_s",
        "ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "e2e_mean_s", "e2e_p50_s", "e2e_p95_s", "e2e_p99_s", "tpot_mean_s",
        "tpot_p50_s", "output_tokens", "span_s", "output_tok_s", "output_tok_s_per_request", "request_rate", "goodput",
        "quality_goodput", "slo_attainment", "pareto_optimal", "primary_metric", "correct_metric", "n_correct",
        "output_tokens_per_correct", "cost_usd", "cost_per_request_usd", "cost_per_1m_output_usd", "cost_per_correct_usd",
    ]
    .map(String::from)
    .to_vec();
    for m in &metrics {
        for suffix in ["mean", "lo", "hi", "n"] {
            header.push(format!("{m}_{suffix}"));
        }
    }
    header.extend(internals.iter().map(|f| format!("ps_{f}")));
    header.extend(["load", "offered_rate", "concurrency_level"].map(String::from));
    w.write_record(&header)?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for g in &s.groups {
        let mut row = vec![
            g.run_id.clone(),
            g.policy.clone(),
            g.algorithm.clone(),
            g.suite.clone(),
            g.task.clone().unwrap_or_default(),
            g.n.to_string(),
            g.n_ok.to_string(),
            g.n_error.to_string(),
            g.error_rate.to_string(),
        ];
        for d in [&g.ttft_s, &g.e2e_s] {
            row.extend([opt(d.mean), opt(d.p50), opt(d.p95), opt(d.p99)]);
        }
        row.extend([
            opt(g.tpot_s.mean),
            opt(g.tpot_s.p50),
            g.output_tokens.to_string(),
            opt(g.span_s),
            opt(g.output_tok_s),
            opt(g.output_tok_s_per_request),
            opt(g.request_rate),
            opt(g.goodput),
            opt(g.quality_goodput),
            g.slo_attainment.to_string(),
            g.pareto_optimal.to_string(),
            g.primary_metric.clone().unwrap_or_default(),
            g.correct_metric.clone().unwrap_or_default(),
            g.n_correct.map_or(String::new(), |n| n.to_string()),
            opt(g.output_tokens_per_correct),
            opt(g.cost.map(|c| c.total_usd)),
            opt(g.cost.map(|c| c.per_request_usd)),
            opt(g.cost.and_then(|c| c.per_1m_output_usd)),
            opt(g.cost.and_then(|c| c.per_correct_usd)),
        ]);
        for m in &metrics {
            match g.quality.get(*m) {
                Some(e) => row.extend([e.value.to_string(), e.lo.to_string(), e.hi.to_string(), e.n.to_string()]),
                None => row.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        row.extend(internals.iter().map(|f| opt(g.internals.get(*f).copied())));
        row.extend([g.load.clone().unwrap_or_default(), opt(g.offered_rate), g.concurrency_level.map_or(String::new(), |c| c.to_string())]);
        w.write_record(&row)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

pub fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "SKIP",
    }
}

pub fn check_table(r: &CheckReport) -> String {
    let mut t = table(
        ["KPI", "policy", "suite", "metric", "value", "requirement", "baseline", "result", "note"].map(String::from).to_vec(),
        9,
    );
    for x in &r.results {
        t.add_row(vec![
            x.kpi.clone(),
            x.policy.clone(),
            x.suite.clone().unwrap_or_else(|| "all".into()),
            x.metric.clone(),
            num(x.value, 4),
            x.requirement.clone(),
            num(x.baseline, 4),
            outcome_label(x.outcome).into(),
            x.note.clone().unwrap_or_default(),
        ]);
    }
    set_right(&mut t, 4);
    let base = r.baseline_run.as_ref().map_or(String::new(), |b| format!(" against baseline {b}"));
    format!(
        "KPI check of run {}{base}\n{t}\n{} passed, {} failed, {} skipped: {}\n",
        r.run_id,
        r.count(Outcome::Pass),
        r.count(Outcome::Fail),
        r.count(Outcome::Skip),
        if r.passed() { "PASS" } else { "FAIL" }
    )
}

/// The KPI check in one line per KPI (the end of `ttc run`): counts, and the policies that failed with their values;
/// `ttc check` prints the full table.
pub fn check_compact(r: &CheckReport) -> String {
    let mut names: Vec<&str> = Vec::new();
    for x in &r.results {
        if !names.contains(&x.kpi.as_str()) {
            names.push(&x.kpi);
        }
    }
    let mut out = String::new();
    for name in names {
        let rows: Vec<_> = r.results.iter().filter(|x| x.kpi == name).collect();
        let count = |o: Outcome| rows.iter().filter(|x| x.outcome == o).count();
        let failed: Vec<String> = rows
            .iter()
            .filter(|x| x.outcome == Outcome::Fail)
            .map(|x| {
                let scope = x.suite.as_ref().map_or(String::new(), |s| format!("/{s}"));
                format!("{}{scope} {}", x.policy, num(x.value, 3))
            })
            .collect();
        let requirement = rows.first().map_or(String::new(), |x| x.requirement.clone());
        // A KPI that no policy could be judged on says so: "PASS" with nothing measured would read as a pass.
        let verdict = match (count(Outcome::Fail), count(Outcome::Pass)) {
            (0, 0) => "SKIP",
            (0, _) => "PASS",
            _ => "FAIL",
        };
        let mut why: Vec<&str> = rows.iter().filter(|x| x.outcome == Outcome::Skip).filter_map(|x| x.note.as_deref()).collect();
        why.sort_unstable();
        why.dedup();
        let mut detail = String::new();
        if !failed.is_empty() {
            detail.push_str(&format!("; failing: {}", failed.join(", ")));
        }
        if verdict == "SKIP" && !why.is_empty() {
            detail.push_str(&format!("; why: {}", why.join("; ")));
        }
        out.push_str(&format!(
            "{verdict} {name} ({requirement}): {} pass, {} fail, {} skip{detail}\n",
            count(Outcome::Pass),
            count(Outcome::Fail),
            count(Outcome::Skip),
        ));
    }
    out
}

fn diff_row(d: &MetricDiff, digits: usize) -> Vec<String> {
    vec![
        d.metric.clone(),
        d.n_pairs.to_string(),
        format!("{:.d$}", d.a, d = digits),
        format!("{:.d$}", d.b, d = digits),
        format!("{:+.d$} [{:+.d$}, {:+.d$}]", d.diff.value, d.diff.lo, d.diff.hi, d = digits),
        d.relative_pct.map_or("-".into(), |p| format!("{p:+.1}%")),
        d.verdict.label().into(),
    ]
}

pub fn comparison_table(c: &Comparison) -> String {
    let conf = c.confidence * 100.0;
    let mut out = if c.unpaired {
        format!(
            "A = {}  ({} records)\nB = {}  ({} records)\nUnpaired (served traffic: no request went to both arms); \
             differences are B - A with {conf:.0}% unpaired-bootstrap CIs ({} resamples, seed {}).\n",
            c.a, c.n_a, c.b, c.n_b, c.resamples, c.seed
        )
    } else {
        format!(
            "A = {}  ({} records)\nB = {}  ({} records)\nPaired on {} common samples; differences are B - A with {conf:.0}% \
             paired-bootstrap CIs ({} resamples, seed {}).\n",
            c.a, c.n_a, c.b, c.n_b, c.n_common, c.resamples, c.seed
        )
    };
    let count = if c.unpaired { "n" } else { "pairs" };
    let header = ["metric", count, "A", "B", "B - A [CI]", "rel", "verdict for B"].map(String::from).to_vec();
    if !c.quality.is_empty() {
        let mut t = table(header.clone(), 1);
        for d in &c.quality {
            t.add_row(diff_row(d, 4));
        }
        out.push_str(&format!("\nQuality\n{t}\n"));
    }
    if !c.exact_match.is_empty() {
        let mut t = table(
            ["metric", "pairs", "A acc", "B acc", "A only", "B only", "test", "p-value", "verdict for B"]
                .map(String::from)
                .to_vec(),
            1,
        );
        for e in &c.exact_match {
            t.add_row(vec![
                e.metric.clone(),
                e.n_pairs.to_string(),
                format!("{:.3}", e.a_accuracy),
                format!("{:.3}", e.b_accuracy),
                e.mcnemar.a_only.to_string(),
                e.mcnemar.b_only.to_string(),
                match e.mcnemar.method {
                    ttc_stats::McNemarMethod::ExactBinomial => "McNemar exact binomial".into(),
                    ttc_stats::McNemarMethod::ChiSquareCorrected => "McNemar chi2 (cc)".into(),
                },
                format!("{:.4}", e.mcnemar.p_value),
                e.verdict.label().into(),
            ]);
        }
        out.push_str(&format!("\nExact match (McNemar)\n{t}\n"));
    }
    if !c.performance.is_empty() {
        let mut t = table(header, 1);
        for d in &c.performance {
            t.add_row(diff_row(d, 4));
        }
        let over = if c.unpaired { "successful requests" } else { "successful pairs" };
        out.push_str(&format!("\nLatency (s) and throughput (tok/s), {over}\n{t}\n"));
    }
    out
}
