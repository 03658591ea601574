//! The report's load sections (issue 16): latency against offered load per policy (from a sweep's levels or a
//! capacity search's probes), capacity bars, the probes, and the Recommendation per SLO.

use std::collections::BTreeMap;
use ttc_types::Record;

use crate::analysis::{GroupSummary, Summary};
use crate::capacity::{Capacity, SloQuantity, SloSpec};
use crate::recommend;
use crate::report::Block;
use ttc_stats::BootstrapConfig;
use crate::svg;

/// One point of a latency-vs-load curve: (offered rate, p50, p95) of E2E and TTFT.
#[derive(Debug, Clone, Copy)]
struct Point {
    rate: f64,
    e2e: (Option<f64>, Option<f64>),
    ttft: (Option<f64>, Option<f64>),
}

/// Curves per policy, from sweep groups (one point per level and suite, suites merged by taking the worse) or
/// else from capacity probes.
fn curves(summary: &Summary) -> BTreeMap<String, Vec<Point>> {
    let mut out: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let sweep: Vec<&GroupSummary> = summary.groups.iter().filter(|g| g.offered_rate.is_some()).collect();
    if !sweep.is_empty() {
        for g in sweep {
            let p = Point {
                rate: g.offered_rate.unwrap_or(f64::NAN),
                e2e: (g.e2e_s.p50, g.e2e_s.p95),
                ttft: (g.ttft_s.p50, g.ttft_s.p95),
            };
            let v = out.entry(g.policy.clone()).or_default();
            match v.iter_mut().find(|q| q.rate == p.rate) {
                // Several suites at one level: the slower suite's numbers (a conservative curve).
                Some(q) => {
                    let worse = |a: Option<f64>, b: Option<f64>| match (a, b) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    q.e2e = (worse(q.e2e.0, p.e2e.0), worse(q.e2e.1, p.e2e.1));
                    q.ttft = (worse(q.ttft.0, p.ttft.0), worse(q.ttft.1, p.ttft.1));
                }
                None => v.push(p),
            }
        }
        return out;
    }
    for c in &summary.capacity {
        let v = out.entry(c.policy.clone()).or_default();
        for pr in c.probes.iter().filter(|p| p.stats.saturation.is_none()) {
            let s = &pr.stats;
            v.push(Point { rate: s.offered_rate, e2e: (s.e2e_s.p50, s.e2e_s.p95), ttft: (s.ttft_s.p50, s.ttft_s.p95) });
        }
    }
    out
}

/// The SLO's bound on p95 of `field`, for the reference line of a chart.
fn bound(caps: &[Capacity], field: &str) -> Option<f64> {
    let slo = SloSpec::parse(&caps.first()?.slo).ok()?;
    slo.conditions.iter().find_map(|c| match c.quantity {
        SloQuantity::Latency { field: f, .. } if f.name() == field => Some(c.bound),
        _ => None,
    })
}

fn latency_chart(title: &str, curves: &BTreeMap<String, Vec<Point>>, pick: fn(&Point) -> (Option<f64>, Option<f64>), hline: Option<f64>) -> String {
    let names: Vec<String> = curves.keys().cloned().collect();
    let mut lines = Vec::new();
    for (i, pts) in curves.values().enumerate() {
        let p50 = pts.iter().filter_map(|p| pick(p).0.map(|v| (p.rate, v))).collect();
        let p95 = pts.iter().filter_map(|p| pick(p).1.map(|v| (p.rate, v))).collect();
        lines.push(svg::Line { series: i, dashed: false, points: p95 });
        lines.push(svg::Line { series: i, dashed: true, points: p50 });
    }
    let note = if hline.is_some() { "solid p95, dashed p50; red: SLO bound" } else { "solid p95, dashed p50" };
    svg::lines(title, "offered load (requests/s)", "seconds", &lines, &names, hline, note)
}

/// The load blocks of the report: empty for a run without a sweep or a capacity search.
pub fn blocks(summary: &Summary, records: &[Record], baseline: Option<&str>, cfg: &BootstrapConfig) -> Vec<Block> {
    let mut b = Vec::new();
    let curves = curves(summary);
    let caps = &summary.capacity;
    if curves.is_empty() && caps.is_empty() {
        return b;
    }
    b.push(Block::Heading(2, "Policies at the same load".into()));
    b.push(Block::Para(
        "Each policy was measured alone at each offered load: requests arrive at the offered rate (open loop) and \
         wait first come first served while the engine is busy, so TTFT and E2E include the time in the queue. A \
         batching policy gets the same arrival stream and batches what is waiting."
            .into(),
    ));
    if !curves.is_empty() {
        b.push(Block::Svg(latency_chart("E2E latency vs offered load", &curves, |p| p.e2e, bound(caps, "e2e_s"))));
        b.push(Block::Svg(latency_chart("TTFT vs offered load", &curves, |p| p.ttft, bound(caps, "ttft_s"))));
    }
    if caps.is_empty() {
        return b;
    }
    b.push(Block::Heading(3, "Capacity at the SLO".into()));
    b.push(Block::Para(
        "Capacity: the highest offered rate whose steady state met every SLO condition, found by doubling then \
         bisection; the true limit lies between it and the lowest failing rate. Probes whose completions fell \
         behind the arrivals, whose TTFT grew through the probe, or that the client could not run as offered are \
         saturated: flagged and counted as failing."
            .into(),
    ));
    let items: Vec<(String, f64)> = caps.iter().map(|c| (c.policy.clone(), c.capacity_rps)).collect();
    b.push(Block::Svg(svg::bars(&format!("Capacity at {}", caps[0].slo), "requests/s", &items)));
    b.push(Block::Table {
        header: ["policy", "SLO", "capacity", "tok/s at capacity", "probes", "saturated"].map(String::from).to_vec(),
        rows: caps
            .iter()
            .map(|c| {
                vec![
                    c.policy.clone(),
                    format!("`{}`", c.slo),
                    c.label(),
                    c.output_tok_s.map_or("-".into(), |t| format!("{t:.1}")),
                    c.probes.len().to_string(),
                    c.saturated_probes.to_string(),
                ]
            })
            .collect(),
    });
    b.push(Block::Heading(3, "Recommendation".into()));
    for r in recommend::recommend(summary, records, baseline, cfg) {
        b.push(Block::Para(r.paragraph));
    }
    b.push(Block::Heading(3, "Capacity probes".into()));
    let rows = crate::capacity::probe_rows(caps);
    b.push(Block::Table {
        header: ["policy", "offered r/s", "achieved r/s", "n", "TTFT p50 ms", "TTFT p95 ms", "E2E p50 ms", "E2E p95 ms", "verdict"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    b
}
