//! Capacity at an SLO (issue 16): for one policy, the highest offered rate whose steady state meets every SLO
//! condition. The search doubles the rate from `start_rate` while probes pass (halves it while they fail) until
//! the limit is bracketed, then bisects until the bracket is within `tolerance` or `max_probes` are spent
//! (guidellm's sweep and vLLM's `bench sweep serve_sla` search the same way). `start_rate: auto` starts at 0.7 x the
//! policy's one-at-a-time service rate, measured by the warming pass, so that a short search (the default run's 3
//! probes) starts near the answer instead of far below it: a probe at a low rate is also the longest.
//!
//! Each probe is an open loop at the offered rate through the first-come-first-served queue of the runner (see
//! [`crate::runner`]): `warmup_requests` arrivals fill the queue and are not stored, the next `probe_requests` are
//! measured. Before a policy's first probe, every distinct prompt is sent once, one at a time and not stored
//! (`Search::prime`), so caches start warm whichever policy is searched first. Every probe of every policy uses
//! the same arrival seed (common random numbers), so two rates differ only by the rate. A saturated probe ([`ttc_results::capacity::ProbeStats`]: completions behind arrivals,
//! TTFT growing, a queue wait past 4x the SLO's largest latency bound, or a load generator that fell behind) counts
//! as failing and is flagged in its records (`saturation`).

use crate::config::{Arrival, CapacityConfig, Level, Policy, StartRate};
use crate::load::{cycle, drive, LoadPhase};
use crate::loadgen::{Job, PhaseLoad, PhaseReport, Runner};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use ttc_results::capacity::{capacity_interval, Probe, SloSpec};
use ttc_types::record::fmt_rate;
use ttc_types::{LoadTag, Record};

/// Never go below the start rate divided by this while looking for a passing probe.
const MAX_HALVINGS: u32 = 6;

/// `start_rate: auto` offers this share of the one-at-a-time service rate first. At 0.7 an M/D/1 queue's mean
/// wait is 1.2 service times, so the first probe passes any SLO that one request alone meets with room to spare;
/// the doubling then offers 1.4x the service rate, which a one-at-a-time policy cannot sustain, and one bisection
/// leaves it within [0.7, 1.05) of its service rate: three probes. A batching policy keeps doubling past it.
/// (Measured on the default run: starting at 0.5, every single-stream policy passed 0.5 and 1.0 and failed 2.0,
/// a bracket of a factor 2.)
const AUTO_UTILISATION: f64 = 0.7;

/// A measured start rate rounded to 2 significant digits, so probe labels read `1.2 r/s`, not `1.2345 r/s`.
fn round_rate(r: f64) -> f64 {
    if !(r.is_finite() && r > 0.0) {
        return r;
    }
    let scale = 10f64.powi(1 - r.log10().floor() as i32);
    (r * scale).round() / scale
}

/// One finished probe.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub rate: f64,
    pub probe: Probe,
}

/// The search's answer for one policy.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub policy: String,
    pub capacity_rps: f64,
    pub upper_rps: Option<f64>,
    pub probes: Vec<ProbeResult>,
}

/// What a capacity search needs besides the runner: its settings, where the run's clock started, and the phase
/// counter shared with the rest of the run (phase labels are unique in a run).
pub struct Search<'a> {
    pub runner: &'a Arc<Runner>,
    pub config: &'a CapacityConfig,
    pub start: Instant,
    pub next_phase: usize,
    pub out: mpsc::Sender<Record>,
}

impl Search<'_> {
    /// How long a request may wait in the queue before the probe is declared saturated and cut short.
    fn abandon_after(&self, slo: &SloSpec) -> Duration {
        Duration::from_secs_f64(slo.max_latency_bound().map_or(60.0, |b| (4.0 * b).max(1.0)))
    }

    /// One probe of `policy` at `rate`: runs it, judges it, stamps a saturation on its records, stores them.
    pub async fn probe(&mut self, policy: &Arc<Policy>, jobs: &[Job], rate: f64) -> ProbeResult {
        let slo = self.config.slo_spec();
        let (warm, measured) = (self.config.warmup_requests as usize, self.config.probe_requests as usize);
        let tag = LoadTag {
            phase: Some(format!("capacity-{:02}", self.next_phase)),
            offered_rate: Some(rate),
            slo: Some(self.config.slo.clone()),
            ..LoadTag::default()
        };
        self.next_phase += 1;
        let load = PhaseLoad { tag, abandon_after: Some(self.abandon_after(&slo)), discard: warm };
        let phase = LoadPhase { policy: policy.clone(), level: Level::Rate(rate), jobs: cycle(jobs, warm + measured) };
        let (tx, mut rx) = mpsc::channel(1024);
        let collect = tokio::spawn(async move {
            let mut v = Vec::new();
            while let Some(r) = rx.recv().await {
                v.push(r);
            }
            v
        });
        let report = drive(self.runner, phase, self.config.arrival, load, self.start, tx).await;
        let mut records = collect.await.unwrap_or_default();
        records.sort_by(|a, b| a.start_offset_s.total_cmp(&b.start_offset_s));
        if let Some(why) = client_saturation(&report, rate) {
            for r in &mut records {
                r.load.saturation = Some(why.clone());
            }
        }
        let refs: Vec<&Record> = records.iter().collect();
        let probe = Probe::judge(&refs, &slo);
        if let Some(why) = &probe.stats.saturation {
            for r in &mut records {
                r.load.saturation.get_or_insert_with(|| why.clone());
            }
        }
        tracing::info!(
            policy = %policy.name,
            offered = rate,
            achieved = probe.stats.achieved_rate.unwrap_or(0.0),
            p95_e2e_s = probe.stats.e2e_s.p95.unwrap_or(f64::NAN),
            verdict = %probe.verdict_label(),
            "capacity probe"
        );
        for r in records {
            if self.out.send(r).await.is_err() {
                break;
            }
        }
        ProbeResult { rate, probe }
    }

    /// One pass over the distinct prompts, one request at a time, nothing stored, before a policy's first probe:
    /// caches (the engine's prefix cache, a server's) are then as warm for the first policy searched as for the
    /// last. Without it the first policy's first probe paid every cold prefill (measured: baseline failed 0.5 r/s at
    /// p95 2.7 s and settled at 0.44 r/s, while the policies searched after it passed 1 r/s; docs/load.md).
    /// Returns the median time a request of the pass took: one at a time, that is the policy's service time.
    async fn prime(&mut self, policy: &Arc<Policy>, jobs: &[Job]) -> Option<f64> {
        let phase = LoadPhase { policy: policy.clone(), level: Level::Concurrency(1), jobs: jobs.to_vec() };
        let (tx, mut rx) = mpsc::channel::<Record>(16);
        // The records are read for their timings and dropped: never sent on to the store.
        let timings = tokio::spawn(async move {
            let mut e2e = Vec::new();
            while let Some(r) = rx.recv().await {
                if let (ttc_types::RecordStatus::Ok, Some(s)) = (&r.status, r.e2e_s) {
                    e2e.push(s);
                }
            }
            e2e
        });
        drive(self.runner, phase, Arrival::Closed, PhaseLoad::default(), self.start, tx).await;
        ttc_results::analysis::Dist::of(timings.await.unwrap_or_default()).p50
    }

    /// The first rate to probe: the configured one, or (`auto`) 0.7 x the rate at which a server taking one
    /// request at a time would be busy all the time. Falls back to 0.5 r/s when the pass measured nothing.
    fn first_rate(&self, service_s: Option<f64>) -> f64 {
        match (self.config.start_rate, service_s) {
            (StartRate::Fixed(r), _) => r,
            (StartRate::Auto, Some(s)) if s > 0.0 => AUTO_UTILISATION / s,
            (StartRate::Auto, _) => 0.5,
        }
    }

    fn stopped(&self) -> bool {
        self.runner.stop_flag().load(Ordering::Relaxed) || self.out.is_closed()
    }

    /// The capacity of `policy` on `jobs` (cycled through the probes).
    pub async fn policy(&mut self, policy: &Arc<Policy>, jobs: &[Job]) -> SearchResult {
        let cfg = self.config;
        let mut probes: Vec<ProbeResult> = Vec::new();
        let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
        let service_s = if self.stopped() { None } else { self.prime(policy, jobs).await };
        let start_rate = round_rate(self.first_rate(service_s));
        let mut rate = start_rate;
        // Bracket: double while passing, halve while failing.
        while (probes.len() as u64) < cfg.max_probes && !self.stopped() {
            let p = self.probe(policy, jobs, rate).await;
            let pass = p.probe.pass;
            probes.push(p);
            if pass {
                lo = Some(rate);
                if hi.is_some() {
                    break;
                }
                rate *= 2.0;
            } else {
                hi = Some(rate);
                if lo.is_some() || rate < start_rate / 2f64.powi(MAX_HALVINGS as i32) {
                    break;
                }
                rate /= 2.0;
            }
        }
        // Bisect the bracket.
        while let (Some(l), Some(h)) = (lo, hi) {
            if (probes.len() as u64) >= cfg.max_probes || (h - l) / l <= cfg.tolerance || self.stopped() {
                break;
            }
            let mid = (l + h) / 2.0;
            let p = self.probe(policy, jobs, mid).await;
            if p.probe.pass {
                lo = Some(mid);
            } else {
                hi = Some(mid);
            }
            probes.push(p);
        }
        let points: Vec<(f64, bool)> = probes.iter().map(|p| (p.rate, p.probe.pass)).collect();
        let (capacity_rps, upper_rps) = capacity_interval(&points);
        SearchResult { policy: policy.name.clone(), capacity_rps, upper_rps, probes }
    }
}

/// A probe the load generator itself could not run as offered: it was cut short, or it dispatched arrivals late.
fn client_saturation(report: &PhaseReport, rate: f64) -> Option<String> {
    if report.abandoned > 0 {
        return Some(format!("{} requests abandoned after waiting past the queue limit", report.abandoned));
    }
    let mut lags = report.dispatch_lag_s.clone();
    lags.sort_by(f64::total_cmp);
    let p95 = ttc_types::timing::percentile_sorted(&lags, 95.0)?;
    // Late by more than a tenth of the mean gap between arrivals: the offered rate was not what was sent.
    let limit = (0.1 / rate).max(0.005);
    (p95 > limit).then(|| {
        format!("the client could not keep up: arrivals sent {:.0} ms late (p95) at {} r/s", p95 * 1000.0, fmt_rate(rate))
    })
}

#[cfg(test)]
mod tests;
