//! Capacity at an SLO (issue 16): the SLO conditions (`p95_e2e_s<=2,p95_ttft_s<=1,error_rate<0.01`), the
//! steady-state statistics of one load probe, saturation detection, and the capacity of a policy read back from
//! its stored probes.
//!
//! One module serves both sides: the runner's search judges each probe with [`ProbeStats::of`] and
//! [`SloSpec::verdict`] while it runs, and `summary`, `report`, `check` and the dashboard recompute the same
//! numbers from the stored records, so a capacity can also be re-read at another SLO than the one searched
//! (from the probes that exist).
//!
//! Saturation (guidellm and vLLM's `serve_sla` make the same distinction): a probe whose completions fall behind
//! its arrivals (achieved rate below 90% of the rate the requests actually arrived at), whose TTFT keeps growing
//! through the probe (last third's mean more than twice the first third's, and longer by at least the median E2E),
//! or that the runner had to abandon (queue wait past its limit) never counts as meeting the SLO, whatever its
//! percentiles say: its queue had no steady state, so its percentiles depend on the probe's length.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use ttc_types::record::fmt_rate;
use ttc_types::{Record, RecordStatus};

use crate::analysis::Dist;
use crate::metrics::Stat;

/// Achieved / offered rate below this: the backend could not keep up.
pub const MIN_ACHIEVED_SHARE: f64 = 0.9;
/// Mean TTFT of a probe's last third over its first third above this: the queue is growing.
pub const MAX_TTFT_GROWTH: f64 = 2.0;
/// ... and only if the growth is at least this many seconds (millisecond jitter is not a trend), and at least the
/// probe's median E2E: a queue that grew by less than one request's service is a Poisson burst, not a trend (with a
/// warm prefix cache a TTFT of 30 ms that meets a burst of 3 arrivals "grows 3.6x" in a probe of 20 requests).
pub const MIN_TTFT_GROWTH_S: f64 = 0.05;

/// A latency field an SLO condition can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloField {
    TtftS,
    E2eS,
    TpotS,
}

impl SloField {
    fn parse(s: &str) -> Option<SloField> {
        match s {
            "ttft_s" => Some(SloField::TtftS),
            "e2e_s" | "latency" => Some(SloField::E2eS),
            "tpot_s" => Some(SloField::TpotS),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SloField::TtftS => "ttft_s",
            SloField::E2eS => "e2e_s",
            SloField::TpotS => "tpot_s",
        }
    }

    fn value(self, r: &Record) -> Option<f64> {
        match self {
            SloField::TtftS => r.ttft_s,
            SloField::E2eS => r.e2e_s,
            // vLLM's rule: a one-token answer has TPOT 0.
            SloField::TpotS => Some(r.tpot_s.unwrap_or(0.0)),
        }
    }
}

/// What one condition bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SloQuantity {
    /// A statistic of a latency field over the probe's successful requests.
    Latency { stat: Stat, field: SloField },
    /// Errored requests / all requests.
    ErrorRate,
}

/// `p95_e2e_s <= 2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SloCondition {
    pub quantity: SloQuantity,
    /// True for `<=`, false for `<`.
    pub inclusive: bool,
    pub bound: f64,
}

impl SloCondition {
    pub fn holds(&self, value: f64) -> bool {
        if self.inclusive {
            value <= self.bound
        } else {
            value < self.bound
        }
    }

    pub fn name(&self) -> String {
        match self.quantity {
            SloQuantity::Latency { stat, field } => format!("{}_{}", stat.label(), field.name()),
            SloQuantity::ErrorRate => "error_rate".into(),
        }
    }

    /// The condition's quantity over one probe's records; None when no request succeeded.
    pub fn value(&self, records: &[&Record]) -> Option<f64> {
        match self.quantity {
            SloQuantity::ErrorRate => Some(crate::analysis::error_rate(records)),
            SloQuantity::Latency { stat, field } => {
                let v: Vec<f64> =
                    records.iter().filter(|r| r.status == RecordStatus::Ok).filter_map(|r| field.value(r)).collect();
                stat.apply(&v)
            }
        }
    }
}

impl std::fmt::Display for SloCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.name(), if self.inclusive { "<=" } else { "<" }, self.bound)
    }
}

/// Every condition a probe's steady state must meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloSpec {
    pub conditions: Vec<SloCondition>,
}

impl std::fmt::Display for SloSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.conditions.iter().map(|c| c.to_string()).collect();
        write!(f, "{}", parts.join(","))
    }
}

impl std::str::FromStr for SloSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<SloSpec> {
        SloSpec::parse(s)
    }
}

impl SloSpec {
    /// Parses `p95_e2e_s<=2,p95_ttft_s<=1,error_rate<0.01`: comma-separated `<stat>_<field> (<|<=) <number>`
    /// (stat: mean, median or pNN; field: e2e_s, ttft_s or tpot_s) or `error_rate (<|<=) <number>`.
    pub fn parse(text: &str) -> Result<SloSpec> {
        let mut conditions = Vec::new();
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let Some(at) = part.find('<') else {
                if part.contains('>') {
                    bail!("`{part}`: an SLO bounds from above; use < or <=");
                }
                bail!("`{part}` has no bound; write e.g. p95_e2e_s<=2");
            };
            let (lhs, rest) = part.split_at(at);
            let (inclusive, num) = match rest.strip_prefix("<=") {
                Some(n) => (true, n),
                None => (false, &rest[1..]),
            };
            let bound: f64 = match num.trim().parse() {
                Ok(v) if f64::is_finite(v) && v >= 0.0 => v,
                _ => bail!("`{part}`: the bound `{}` is not a finite number >= 0", num.trim()),
            };
            let lhs = lhs.trim();
            let quantity = if lhs == "error_rate" {
                SloQuantity::ErrorRate
            } else {
                let Some((stat, field)) = lhs.split_once('_') else {
                    bail!("`{lhs}`: expected <stat>_<field> (e.g. p95_e2e_s) or error_rate");
                };
                let stat = Stat::parse(stat).map_err(|e| anyhow::anyhow!("`{lhs}`: {e}"))?;
                if matches!(stat, Stat::Min | Stat::Max) {
                    bail!("`{lhs}`: use mean, median or a percentile (pNN)");
                }
                let Some(field) = SloField::parse(field) else {
                    bail!("`{lhs}`: unknown field `{field}` (use e2e_s, ttft_s or tpot_s)");
                };
                SloQuantity::Latency { stat, field }
            };
            conditions.push(SloCondition { quantity, inclusive, bound });
        }
        if conditions.is_empty() {
            bail!("no condition; write e.g. \"p95_e2e_s<=2,error_rate<0.01\"");
        }
        Ok(SloSpec { conditions })
    }

    /// The largest latency bound, seconds (how long a request may reasonably wait).
    pub fn max_latency_bound(&self) -> Option<f64> {
        self.conditions
            .iter()
            .filter(|c| matches!(c.quantity, SloQuantity::Latency { .. }))
            .map(|c| c.bound)
            .max_by(f64::total_cmp)
    }

    /// Each condition with its value on `records` and whether it holds (a missing value fails).
    pub fn verdict(&self, records: &[&Record]) -> Vec<(SloCondition, Option<f64>, bool)> {
        self.conditions
            .iter()
            .map(|c| {
                let v = c.value(records);
                (*c, v, v.is_some_and(|v| c.holds(v)))
            })
            .collect()
    }

    pub fn met_by(&self, records: &[&Record]) -> bool {
        !records.is_empty() && self.verdict(records).iter().all(|(_, _, ok)| *ok)
    }
}

/// Steady-state numbers of one probe (its measured requests; the warm-up is not stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStats {
    pub phase: String,
    pub offered_rate: f64,
    pub n: usize,
    pub n_ok: usize,
    pub error_rate: f64,
    /// Rate at which the measured requests arrived (close to the offered rate; Poisson noise aside).
    pub arrival_rate: Option<f64>,
    /// Rate at which they completed.
    pub achieved_rate: Option<f64>,
    pub ttft_s: Dist,
    pub e2e_s: Dist,
    pub queue_s: Dist,
    /// Mean TTFT of the last third of arrivals over the first third.
    pub ttft_growth: Option<f64>,
    /// Why the probe has no steady state, if it has none.
    pub saturation: Option<String>,
}

/// `(n - 1) / (last - first)` of a set of instants: the rate of the events between the first and the last.
fn rate_of(mut t: Vec<f64>) -> Option<f64> {
    if t.len() < 2 {
        return None;
    }
    t.sort_by(f64::total_cmp);
    let span = t[t.len() - 1] - t[0];
    (span > 0.0).then(|| (t.len() - 1) as f64 / span)
}

impl ProbeStats {
    /// Statistics of one probe's records (all from the same phase).
    pub fn of(records: &[&Record]) -> ProbeStats {
        let first = records.first();
        let phase = first.and_then(|r| r.load.phase.clone()).unwrap_or_default();
        let offered_rate = first.and_then(|r| r.load.offered_rate).unwrap_or(f64::NAN);
        let ok: Vec<&&Record> = records.iter().filter(|r| r.status == RecordStatus::Ok).collect();
        let arrival_rate = rate_of(records.iter().map(|r| r.start_offset_s).collect());
        let achieved_rate = rate_of(ok.iter().filter_map(|r| r.e2e_s.map(|e| r.start_offset_s + e)).collect());
        let dist = |f: fn(&Record) -> Option<f64>| Dist::of(ok.iter().filter_map(|r| f(r)).collect());
        let mut by_arrival: Vec<(f64, f64)> = ok.iter().filter_map(|r| r.ttft_s.map(|t| (r.start_offset_s, t))).collect();
        by_arrival.sort_by(|a, b| a.0.total_cmp(&b.0));
        let third = by_arrival.len() / 3;
        let mean = |s: &[(f64, f64)]| s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64;
        let (head, tail) =
            if third > 0 { (mean(&by_arrival[..third]), mean(&by_arrival[by_arrival.len() - third..])) } else { (0.0, 0.0) };
        let ttft_growth = (third > 0 && head > 0.0).then(|| tail / head);
        let e2e_s = dist(|r| r.e2e_s);
        let min_growth = e2e_s.p50.unwrap_or(0.0).max(MIN_TTFT_GROWTH_S);
        let stored = records.iter().find_map(|r| r.load.saturation.clone());
        let saturation = stored.or_else(|| {
            let offered = arrival_rate.unwrap_or(offered_rate);
            match achieved_rate {
                Some(a) if a < MIN_ACHIEVED_SHARE * offered => Some(format!(
                    "achieved {} r/s, below {:.0}% of the {} r/s that arrived",
                    fmt_rate(a),
                    MIN_ACHIEVED_SHARE * 100.0,
                    fmt_rate(offered)
                )),
                None if ok.len() < 2 && !records.is_empty() => {
                    Some("fewer than 2 requests completed".into())
                }
                _ => match ttft_growth {
                    Some(g) if g > MAX_TTFT_GROWTH && tail - head > min_growth => {
                        Some(format!("TTFT grew {g:.1}x through the probe"))
                    }
                    _ => None,
                },
            }
        });
        ProbeStats {
            phase,
            offered_rate,
            n: records.len(),
            n_ok: ok.len(),
            error_rate: crate::analysis::error_rate(records),
            arrival_rate,
            achieved_rate,
            ttft_s: dist(|r| r.ttft_s),
            e2e_s,
            queue_s: Dist::of(records.iter().filter_map(|r| r.load.queue_s).collect()),
            ttft_growth,
            saturation,
        }
    }
}

/// One probe judged against an SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub stats: ProbeStats,
    /// Meets every condition and is not saturated.
    pub pass: bool,
    /// The conditions that failed, as `p95_e2e_s=2.41`.
    pub failed: Vec<String>,
}

impl Probe {
    pub fn judge(records: &[&Record], slo: &SloSpec) -> Probe {
        let stats = ProbeStats::of(records);
        let failed: Vec<String> = slo
            .verdict(records)
            .into_iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(c, v, _)| match v {
                Some(v) => format!("{}={v:.3}", c.name()),
                None => format!("{}=n/a", c.name()),
            })
            .collect();
        let pass = failed.is_empty() && stats.saturation.is_none() && !records.is_empty();
        Probe { stats, pass, failed }
    }

    /// `pass`, `fail (p95_e2e_s=2.410)` or `saturated (...)`.
    pub fn verdict_label(&self) -> String {
        match (&self.stats.saturation, self.pass) {
            (Some(s), _) => format!("saturated: {s}"),
            (None, true) => "pass".into(),
            (None, false) => format!("fail: {}", self.failed.join(", ")),
        }
    }
}

/// The highest passing rate below the lowest failing one, and that failing rate: `(capacity, upper)`. No passing
/// probe: capacity 0; no failing probe: no upper end (the search never found the limit).
pub fn capacity_interval(probes: &[(f64, bool)]) -> (f64, Option<f64>) {
    let lowest_fail = probes.iter().filter(|p| !p.1).map(|p| p.0).min_by(f64::total_cmp);
    let cap = probes
        .iter()
        .filter(|p| p.1 && lowest_fail.is_none_or(|f| p.0 < f))
        .map(|p| p.0)
        .max_by(f64::total_cmp)
        .unwrap_or(0.0);
    (cap, lowest_fail)
}

/// Runs whose records are all capacity probes (`ttc capacity`): their probes stand for the run everywhere a
/// plain request would (quality, KPIs without a load level).
pub fn capacity_only_runs(records: &[Record]) -> HashSet<String> {
    let with_other: HashSet<&str> = records.iter().filter(|r| !r.load.is_capacity()).map(|r| r.run_id.as_str()).collect();
    records.iter().map(|r| r.run_id.as_str()).filter(|id| !with_other.contains(id)).map(str::to_string).collect()
}

/// A request that counts in per-policy statistics without a load level: anything but a capacity probe, and the
/// probes of a capacity-only run.
pub fn is_plain(r: &Record, capacity_only: &HashSet<String>) -> bool {
    !r.load.is_capacity() || capacity_only.contains(&r.run_id)
}

/// A policy's capacity at one SLO, from its stored probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub run_id: String,
    pub policy: String,
    pub algorithm: String,
    /// The SLO as written.
    pub slo: String,
    /// Highest offered rate (requests/s) that met the SLO in a steady state below every failing one.
    pub capacity_rps: f64,
    /// The lowest failing rate above it: the capacity lies in [capacity_rps, upper_rps).
    pub upper_rps: Option<f64>,
    /// Aggregate output tokens/s of the probe at the capacity.
    pub output_tok_s: Option<f64>,
    /// Probes in offered-rate order.
    pub probes: Vec<Probe>,
    pub saturated_probes: usize,
}

impl Capacity {
    /// `1.25 r/s [1.25, 1.5)`, `>= 4 r/s`, `< 0.25 r/s`.
    pub fn label(&self) -> String {
        match self.upper_rps {
            Some(u) if self.capacity_rps == 0.0 => format!("< {} r/s", fmt_rate(u)),
            Some(u) => format!("{} r/s [{}, {})", fmt_rate(self.capacity_rps), fmt_rate(self.capacity_rps), fmt_rate(u)),
            None => format!(">= {} r/s", fmt_rate(self.capacity_rps)),
        }
    }
}

/// The capacity of every policy with capacity probes among `records`, judged against `slo` (None: each policy's
/// probes' own stored SLO). Sorted by run, then policy.
pub fn capacities(records: &[Record], slo: Option<&SloSpec>) -> Vec<Capacity> {
    let mut by_policy: BTreeMap<(&str, &str), BTreeMap<&str, Vec<&Record>>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.load.is_capacity() && r.load.offered_rate.is_some()) {
        let phase = r.load.phase.as_deref().unwrap_or_default();
        by_policy.entry((&r.run_id, &r.policy)).or_default().entry(phase).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((run_id, policy), phases) in by_policy {
        let first = phases.values().next().and_then(|v| v.first()).copied();
        let stored = first.and_then(|r| r.load.slo.clone()).unwrap_or_default();
        let spec = match slo {
            Some(s) => s.clone(),
            None => match SloSpec::parse(&stored) {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        let mut probes: Vec<(Probe, Option<f64>)> = phases
            .values()
            .map(|rs| {
                let (tokens, _, span) = crate::analysis::throughput_span(rs);
                (Probe::judge(rs, &spec), span.map(|s| tokens as f64 / s))
            })
            .collect();
        probes.sort_by(|a, b| a.0.stats.offered_rate.total_cmp(&b.0.stats.offered_rate));
        let points: Vec<(f64, bool)> = probes.iter().map(|(p, _)| (p.stats.offered_rate, p.pass)).collect();
        let (cap, upper) = capacity_interval(&points);
        let output_tok_s = probes.iter().find(|(p, _)| p.pass && p.stats.offered_rate == cap).and_then(|(_, t)| *t);
        out.push(Capacity {
            run_id: run_id.to_string(),
            policy: policy.to_string(),
            algorithm: first.map(|r| r.algorithm.clone()).unwrap_or_default(),
            slo: spec.to_string(),
            capacity_rps: cap,
            upper_rps: upper,
            output_tok_s,
            saturated_probes: probes.iter().filter(|(p, _)| p.stats.saturation.is_some()).count(),
            probes: probes.into_iter().map(|(p, _)| p).collect(),
        });
    }
    out
}

/// One row per probe of every policy: policy, offered and achieved rate, n, TTFT p50/p95 and E2E p50/p95 (ms),
/// verdict. The terminal summary and the report print the same table.
pub fn probe_rows(caps: &[Capacity]) -> Vec<Vec<String>> {
    use crate::render::ms;
    use ttc_types::record::fmt_rate;
    let mut rows = Vec::new();
    for c in caps {
        for p in &c.probes {
            let s = &p.stats;
            rows.push(vec![
                c.policy.clone(),
                fmt_rate(s.offered_rate),
                s.achieved_rate.map_or("-".into(), fmt_rate),
                s.n.to_string(),
                ms(s.ttft_s.p50),
                ms(s.ttft_s.p95),
                ms(s.e2e_s.p50),
                ms(s.e2e_s.p95),
                p.verdict_label(),
            ]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::record;

    #[test]
    fn slo_parses_and_prints_back() {
        let s = SloSpec::parse("p95_e2e_s<=2, p95_ttft_s<=1,error_rate<0.01").unwrap();
        assert_eq!(s.conditions.len(), 3);
        assert_eq!(s.to_string(), "p95_e2e_s<=2,p95_ttft_s<=1,error_rate<0.01");
        assert_eq!(s.max_latency_bound(), Some(2.0));
        assert!(s.conditions[2].holds(0.0) && !s.conditions[2].holds(0.01));
        assert!(s.conditions[0].holds(2.0));
        for bad in ["", "p95_e2e_s", "p95_e2e_s>=2", "p95_foo<=1", "x95_e2e_s<=1", "p95_e2e_s<=abc", "error_rate<-1", "max_e2e_s<1"] {
            assert!(SloSpec::parse(bad).is_err(), "{bad}");
        }
    }

    fn probe(rate: f64, e2e: &[f64]) -> Vec<Record> {
        e2e.iter()
            .enumerate()
            .map(|(i, &e)| {
                let mut r = record("p", "s", &i.to_string());
                r.start_offset_s = i as f64 / rate;
                r.ttft_s = Some(e / 2.0);
                r.e2e_s = Some(e);
                r.load.phase = Some(format!("capacity-{rate}"));
                r.load.offered_rate = Some(rate);
                r.load.slo = Some("p95_e2e_s<=1".into());
                r
            })
            .collect()
    }

    #[test]
    fn probes_are_judged_and_saturation_is_flagged() {
        let slo = SloSpec::parse("p95_e2e_s<=1").unwrap();
        let ok = probe(2.0, &[0.5; 30]);
        let refs: Vec<&Record> = ok.iter().collect();
        let p = Probe::judge(&refs, &slo);
        assert!(p.pass, "{:?}", p);
        assert!((p.stats.achieved_rate.unwrap() - 2.0).abs() < 1e-9);
        // Latency grows by 0.2 s per request: completions fall behind the arrivals and TTFT grows.
        let grow: Vec<f64> = (0..30).map(|i| 0.1 + 0.2 * i as f64).collect();
        let bad = probe(2.0, &grow);
        let refs: Vec<&Record> = bad.iter().collect();
        let p = Probe::judge(&refs, &slo);
        assert!(!p.pass);
        // Completions every 0.7 s against arrivals every 0.5 s: 1.43 r/s achieved.
        assert!((p.stats.achieved_rate.unwrap() - 1.0 / 0.7).abs() < 1e-9);
        assert!(p.stats.saturation.as_deref().unwrap().contains("achieved 1.429 r/s"), "{:?}", p.stats.saturation);
        // A stable but slow probe fails on the SLO, unsaturated.
        let slow = probe(1.0, &[1.5; 30]);
        let refs: Vec<&Record> = slow.iter().collect();
        let p = Probe::judge(&refs, &slo);
        assert_eq!((p.pass, p.stats.saturation.is_none()), (false, true));
        assert_eq!(p.failed, vec!["p95_e2e_s=1.500".to_string()]);
    }

    /// TTFT growth counts as a trend only when the queue grew by at least one request's service (the median E2E).
    #[test]
    fn a_burst_shorter_than_one_service_is_not_saturation() {
        let slo = SloSpec::parse("p95_e2e_s<=2").unwrap();
        // Warm cache: 30 ms TTFTs, a burst puts 110 ms on the last third; E2E 0.5 s. 3.7x, but 0.08 s < 0.5 s.
        let mut burst = probe(1.0, &[0.5; 21]);
        for (i, r) in burst.iter_mut().enumerate() {
            r.ttft_s = Some(if i >= 14 { 0.11 } else { 0.03 });
        }
        let refs: Vec<&Record> = burst.iter().collect();
        let p = Probe::judge(&refs, &slo);
        assert!(p.stats.ttft_growth.unwrap() > MAX_TTFT_GROWTH);
        assert!(p.pass && p.stats.saturation.is_none(), "{:?}", p.stats.saturation);
        // Requests of 60 ms whose TTFT climbs from 10 to 250 ms: the queue grew by several services.
        for (i, r) in burst.iter_mut().enumerate() {
            (r.ttft_s, r.e2e_s) = if i >= 14 { (Some(0.25), Some(0.3)) } else { (Some(0.01), Some(0.06)) };
        }
        let refs: Vec<&Record> = burst.iter().collect();
        let p = Probe::judge(&refs, &slo);
        assert!(p.stats.saturation.as_deref().is_some_and(|w| w.contains("TTFT grew")), "{:?}", p.stats);
    }

    #[test]
    fn capacity_is_the_highest_pass_below_the_lowest_fail() {
        assert_eq!(capacity_interval(&[(1.0, true), (2.0, true), (4.0, false), (3.0, true)]), (3.0, Some(4.0)));
        // A noisy pass above a failure does not count.
        assert_eq!(capacity_interval(&[(1.0, true), (2.0, false), (3.0, true)]), (1.0, Some(2.0)));
        assert_eq!(capacity_interval(&[(1.0, false)]), (0.0, Some(1.0)));
        assert_eq!(capacity_interval(&[(1.0, true), (2.0, true)]), (2.0, None));
        let mut records = probe(1.0, &[0.5; 25]);
        records.extend(probe(2.0, &[0.6; 25]));
        records.extend(probe(4.0, &[1.5; 25]));
        let caps = capacities(&records, None);
        assert_eq!(caps.len(), 1);
        assert_eq!((caps[0].capacity_rps, caps[0].upper_rps), (2.0, Some(4.0)));
        assert_eq!(caps[0].label(), "2 r/s [2, 4)");
        // Re-read at a looser SLO: every probe passes.
        let loose = SloSpec::parse("p95_e2e_s<=2").unwrap();
        assert_eq!(capacities(&records, Some(&loose))[0].capacity_rps, 4.0);
    }
}

