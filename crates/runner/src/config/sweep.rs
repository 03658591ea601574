//! Load as an axis of the plan (issue 16): `load.sweep` (offered rates or concurrency levels, each policy measured
//! at each level in a phase of its own) and `capacity` (the search for the highest rate meeting an SLO). Both are
//! checked while parsing, so a bad value is reported with its file, line and key like any other config error.

use super::file::{Arrival, NonZero, PositiveF64};
use serde::{Deserialize, Serialize};
use ttc_results::capacity::SloSpec;

/// `load.sweep`: the levels every policy is measured at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSweep")]
pub struct SweepConfig {
    /// `poisson` or `constant` sweep `rates`; `closed` sweeps `concurrency`.
    pub arrival: Arrival,
    /// Offered rates, requests per second (open loops).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub rates: Vec<PositiveF64>,
    /// Clients of a closed loop.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub concurrency: Vec<NonZero>,
    /// Requests per level and policy; default: every planned request of the policy (all its suites' samples).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub requests: Option<NonZero>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    #[serde(default = "poisson")]
    arrival: Arrival,
    #[serde(default)]
    rates: Vec<PositiveF64>,
    #[serde(default)]
    concurrency: Vec<NonZero>,
    #[serde(default)]
    requests: Option<NonZero>,
}

fn poisson() -> Arrival {
    Arrival::Poisson
}

impl TryFrom<RawSweep> for SweepConfig {
    type Error = String;
    fn try_from(r: RawSweep) -> Result<SweepConfig, String> {
        match r.arrival {
            Arrival::Closed if r.concurrency.is_empty() => {
                Err("no load level: a closed-loop sweep needs `concurrency: [1, 2, 4, ...]`".into())
            }
            Arrival::Closed if !r.rates.is_empty() => {
                Err("`rates` is for open loops (arrival: poisson or constant); a closed loop sweeps `concurrency`".into())
            }
            Arrival::Poisson | Arrival::Constant if r.rates.is_empty() => Err(format!(
                "no load level: an open-loop sweep needs `rates: [0.5, 1, 2, ...]` (or `arrival: closed` with \
                 `concurrency: [..]`){}",
                if r.concurrency.is_empty() { "" } else { "; `concurrency` levels need `arrival: closed`" }
            )),
            _ => Ok(SweepConfig { arrival: r.arrival, rates: r.rates, concurrency: r.concurrency, requests: r.requests }),
        }
    }
}

/// One level of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    Rate(f64),
    Concurrency(usize),
}

impl SweepConfig {
    pub fn levels(&self) -> Vec<Level> {
        if self.arrival == Arrival::Closed {
            self.concurrency.iter().map(|c| Level::Concurrency(c.0.min(1 << 20) as usize)).collect()
        } else {
            self.rates.iter().map(|r| Level::Rate(r.0)).collect()
        }
    }
}

/// Fewest measured requests in a capacity probe: a p95 needs at least 20 values.
pub const MIN_PROBE_REQUESTS: u64 = 20;

/// `capacity`: how `ttc capacity` (and `ttc run`, when the section is present) searches each policy's capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawCapacity")]
pub struct CapacityConfig {
    /// Conditions every probe's steady state must meet, e.g. `p95_e2e_s<=2,p95_ttft_s<=1,error_rate<0.01`.
    pub slo: String,
    /// Measured requests per probe (after the warm-up).
    pub probe_requests: u64,
    /// Requests sent first in each probe and not measured, so the queue reaches its steady state.
    pub warmup_requests: u64,
    /// The first offered rate; the search doubles it while probes pass, halves it while they fail.
    pub start_rate: StartRate,
    /// Probes per policy at most (doubling, then bisection).
    pub max_probes: u64,
    /// Bisection stops when (upper - lower) / lower is at most this.
    pub tolerance: f64,
    /// Arrival process of the probes: poisson or constant.
    pub arrival: Arrival,
    /// The suites whose prompts the probes send; empty: every suite of the run.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub suites: Vec<String>,
    /// Embedded engine: switch on a prompt-prefix cache of this many MiB for the search only (the plan before it
    /// stays cold), as a deployment with a fixed system prompt would run. None: leave the engine as it is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prefix_cache_mb: Option<u64>,
}

/// Where a capacity search starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StartRate {
    /// This many requests per second.
    Fixed(f64),
    /// 0.7 x the policy's one-at-a-time service rate, measured by the pass that warms the caches
    /// (`Search::prime`): below what a server taking one request at a time can sustain, so the first probe usually
    /// passes, and the doubling and one bisection bracket the limit within a factor 1.5.
    Auto,
}

impl std::fmt::Display for StartRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartRate::Fixed(r) => write!(f, "{r} r/s"),
            StartRate::Auto => f.write_str("auto (0.7 x the measured one-at-a-time rate)"),
        }
    }
}

impl std::str::FromStr for StartRate {
    type Err = String;
    fn from_str(s: &str) -> Result<StartRate, String> {
        match s.trim() {
            "auto" => Ok(StartRate::Auto),
            t => match t.parse::<f64>() {
                Ok(r) => StartRate::fixed(r),
                Err(_) => Err(format!("invalid value `{t}`: expected a rate in requests/s (a number > 0) or `auto`")),
            },
        }
    }
}

impl StartRate {
    fn fixed(r: f64) -> Result<StartRate, String> {
        if r.is_finite() && r > 0.0 {
            Ok(StartRate::Fixed(r))
        } else {
            Err(format!("invalid value {r}: expected a finite number > 0 or `auto`"))
        }
    }
}

impl Serialize for StartRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartRate::Fixed(r) => s.serialize_f64(*r),
            StartRate::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for StartRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StartRate, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Rate(f64),
            Word(String),
        }
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a rate in requests/s or `auto`"))? {
            Raw::Rate(r) => StartRate::fixed(r),
            Raw::Word(w) => w.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            slo: "p95_e2e_s<=2,error_rate<0.01".into(),
            probe_requests: 24,
            warmup_requests: 4,
            start_rate: StartRate::Fixed(0.5),
            max_probes: 6,
            tolerance: 0.25,
            arrival: Arrival::Poisson,
            suites: Vec::new(),
            prefix_cache_mb: None,
        }
    }
}

// Each key is checked by its own type while parsing, so an error names its line and key (`capacity.slo`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacity {
    #[serde(default)]
    slo: Option<SloText>,
    #[serde(default)]
    probe_requests: Option<ProbeRequests>,
    #[serde(default)]
    warmup_requests: Option<NonZero>,
    #[serde(default)]
    start_rate: Option<StartRate>,
    #[serde(default)]
    max_probes: Option<AtLeastTwo>,
    #[serde(default)]
    tolerance: Option<PositiveF64>,
    #[serde(default)]
    arrival: Option<OpenArrival>,
    #[serde(default)]
    suites: Vec<String>,
    #[serde(default)]
    prefix_cache_mb: Option<NonZero>,
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct SloText(String);
impl TryFrom<String> for SloText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SloSpec::parse(&s).map_err(|e| format!("cannot parse `{s}`: {e}"))?;
        Ok(SloText(s))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "u64")]
struct ProbeRequests(u64);
impl TryFrom<u64> for ProbeRequests {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        if n < MIN_PROBE_REQUESTS {
            return Err(too_few(n));
        }
        Ok(ProbeRequests(n))
    }
}

fn too_few(n: u64) -> String {
    format!(
        "{n} measured requests per probe are too few to reach and measure a steady state (at least \
         {MIN_PROBE_REQUESTS}: a p95 needs 20 values)"
    )
}

#[derive(Deserialize)]
#[serde(try_from = "u64")]
struct AtLeastTwo(u64);
impl TryFrom<u64> for AtLeastTwo {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        if n < 2 {
            return Err(format!("{n}: a search needs at least 2 probes"));
        }
        Ok(AtLeastTwo(n))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "Arrival")]
struct OpenArrival(Arrival);
impl TryFrom<Arrival> for OpenArrival {
    type Error = String;
    fn try_from(a: Arrival) -> Result<Self, String> {
        if a == Arrival::Closed {
            return Err("closed: capacity probes offer a rate; use poisson or constant".into());
        }
        Ok(OpenArrival(a))
    }
}

impl From<RawCapacity> for CapacityConfig {
    fn from(r: RawCapacity) -> CapacityConfig {
        let d = CapacityConfig::default();
        CapacityConfig {
            slo: r.slo.map_or(d.slo, |v| v.0),
            probe_requests: r.probe_requests.map_or(d.probe_requests, |v| v.0),
            warmup_requests: r.warmup_requests.map_or(d.warmup_requests, |v| v.0),
            start_rate: r.start_rate.unwrap_or(d.start_rate),
            max_probes: r.max_probes.map_or(d.max_probes, |v| v.0),
            tolerance: r.tolerance.map_or(d.tolerance, |v| v.0),
            arrival: r.arrival.map_or(d.arrival, |v| v.0),
            suites: r.suites,
            prefix_cache_mb: r.prefix_cache_mb.map(|v| v.0),
        }
    }
}

impl CapacityConfig {
    /// The parsed SLO (checked when the config was built).
    pub fn slo_spec(&self) -> SloSpec {
        SloSpec::parse(&self.slo).unwrap_or_else(|_| SloSpec { conditions: Vec::new() })
    }

    /// Checks the values; the error names the offending key (without the `capacity.` prefix) and the reason.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        SloSpec::parse(&self.slo).map_err(|e| ("slo", format!("cannot parse `{}`: {e}", self.slo)))?;
        if self.probe_requests < MIN_PROBE_REQUESTS {
            return Err(("probe_requests", too_few(self.probe_requests)));
        }
        if self.warmup_requests == 0 {
            return Err((
                "warmup_requests",
                "0: a probe needs at least 1 warm-up request (its queue starts empty, not in a steady state)".into(),
            ));
        }
        if self.arrival == Arrival::Closed {
            return Err(("arrival", "closed: capacity probes offer a rate; use poisson or constant".into()));
        }
        if let StartRate::Fixed(r) = self.start_rate {
            StartRate::fixed(r).map_err(|e| ("start_rate", e))?;
        }
        if self.max_probes < 2 {
            return Err(("max_probes", format!("{}: a search needs at least 2 probes", self.max_probes)));
        }
        Ok(())
    }
}

/// `ttc capacity` options: the SLO and the probe budget (each one set overrides the run file's `capacity:` key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityOptions {
    /// SLO every probe's steady state must meet: comma-separated `<stat>_<field><=<seconds>` (stat: mean,
    /// median, pNN; field: e2e_s, ttft_s, tpot_s) and `error_rate<<share>`.
    pub slo: Option<String>,
    /// Measured requests per probe (at least 20).
    pub probe_requests: Option<u64>,
    /// Requests sent first in each probe and not measured (at least 1).
    pub warmup_requests: Option<u64>,
    /// First offered rate, requests/s, or `auto`.
    pub start_rate: Option<StartRate>,
    /// Probes per policy at most.
    pub max_probes: Option<u64>,
    /// Stop bisecting when (upper - lower) / lower is at most this.
    pub tolerance: Option<f64>,
}

impl CapacityOptions {
    /// The run file's `capacity:` (or the defaults) with these flags applied; an error names the flag.
    pub fn apply(&self, base: Option<CapacityConfig>) -> Result<CapacityConfig, super::ConfigError> {
        let mut c = base.unwrap_or_default();
        if let Some(s) = &self.slo {
            c.slo = s.clone();
        }
        if let Some(n) = self.probe_requests {
            c.probe_requests = n;
        }
        if let Some(n) = self.warmup_requests {
            c.warmup_requests = n;
        }
        if let Some(r) = self.start_rate {
            c.start_rate = r;
        }
        if let Some(n) = self.max_probes {
            c.max_probes = n;
        }
        if let Some(t) = self.tolerance {
            if !(t.is_finite() && t > 0.0) {
                return Err(super::ConfigError(format!("--tolerance: invalid value {t}: expected a number > 0")));
            }
            c.tolerance = t;
        }
        c.check().map_err(|(key, msg)| {
            let flag = key.replace('_', "-");
            let given = match key {
                "slo" => self.slo.is_some(),
                "probe_requests" => self.probe_requests.is_some(),
                "warmup_requests" => self.warmup_requests.is_some(),
                "start_rate" => self.start_rate.is_some(),
                "max_probes" => self.max_probes.is_some(),
                _ => false,
            };
            let name = if given { format!("--{flag}") } else { format!("capacity.{key}") };
            super::ConfigError(format!("{name}: {msg}"))
        })?;
        Ok(c)
    }
}
