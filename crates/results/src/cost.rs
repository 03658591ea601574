//! Cost and efficiency of a policy x suite group, from a price the user states in the run file (`cost:`; no peer
//! harness reports these: guidellm #179, inference-perf #139 ask for them).
//!
//! - `usd_per_hour` (the embedded engine, a self-hosted server): cost = busy time x price, where busy time is the
//!   wall time with at least one of the group's requests in flight (the union of their [start, start + E2E]
//!   intervals, failed attempts included), so concurrent requests share the hour and a batching policy is not
//!   charged once per request.
//! - `usd_per_1m_input` + `usd_per_1m_output` (an API): cost = prompt tokens x input price + output tokens x
//!   output price, summed over the group's requests (token counts as stored; a request without counts costs 0).
//!
//! From the cost: per request (over every request, failed ones included), per 1M output tokens, and per correct
//! answer (see [`crate::analysis::correct_metric`] for what "correct" means per suite). Output tokens per correct
//! answer needs no price.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use ttc_types::Record;

/// A user-supplied price (run file `cost:`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PriceFields", into = "PriceFields")]
pub enum Price {
    /// Dollars per hour of the machine serving the requests.
    PerHour { usd_per_hour: f64 },
    /// Dollars per million prompt (input) and generated (output) tokens.
    PerToken { usd_per_1m_input: f64, usd_per_1m_output: f64 },
}

/// `cost:` as written: exactly one of the two forms.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_hour: Option<Usd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_1m_input: Option<Usd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_1m_output: Option<Usd>,
}

/// A price: a finite number of dollars >= 0 (checked while parsing, so the error has the key's line).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Usd(pub f64);
impl TryFrom<f64> for Usd {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && v >= 0.0 {
            Ok(Usd(v))
        } else {
            Err(format!("invalid value {v}: expected a price in dollars, a finite number >= 0"))
        }
    }
}
impl From<Usd> for f64 {
    fn from(v: Usd) -> f64 {
        v.0
    }
}

impl TryFrom<PriceFields> for Price {
    type Error = String;
    fn try_from(f: PriceFields) -> Result<Self, String> {
        match (f.usd_per_hour, f.usd_per_1m_input, f.usd_per_1m_output) {
            (Some(h), None, None) => Ok(Price::PerHour { usd_per_hour: h.0 }),
            (None, Some(i), Some(o)) => Ok(Price::PerToken { usd_per_1m_input: i.0, usd_per_1m_output: o.0 }),
            (Some(_), _, _) => Err("usd_per_hour cannot be combined with usd_per_1m_input/usd_per_1m_output: \
                                    give an hourly price (embedded engine, self-hosted server) or token prices (API)"
                .into()),
            (None, None, Some(_)) => Err("usd_per_1m_input is missing (token prices need both input and output)".into()),
            (None, Some(_), None) => Err("usd_per_1m_output is missing (token prices need both input and output)".into()),
            (None, None, None) => Err("empty: give usd_per_hour, or usd_per_1m_input and usd_per_1m_output".into()),
        }
    }
}

impl From<Price> for PriceFields {
    fn from(p: Price) -> PriceFields {
        match p {
            Price::PerHour { usd_per_hour } => PriceFields { usd_per_hour: Some(Usd(usd_per_hour)), ..Default::default() },
            Price::PerToken { usd_per_1m_input, usd_per_1m_output } => PriceFields {
                usd_per_1m_input: Some(Usd(usd_per_1m_input)),
                usd_per_1m_output: Some(Usd(usd_per_1m_output)),
                ..Default::default()
            },
        }
    }
}

impl Price {
    pub fn describe(&self) -> String {
        match self {
            Price::PerHour { usd_per_hour } => format!("${usd_per_hour}/hour of busy time"),
            Price::PerToken { usd_per_1m_input, usd_per_1m_output } => {
                format!("${usd_per_1m_input}/1M input + ${usd_per_1m_output}/1M output tokens")
            }
        }
    }
}

/// The costs of one group, in dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub total_usd: f64,
    pub per_request_usd: f64,
    /// None when the group generated no tokens.
    pub per_1m_output_usd: Option<f64>,
    /// None when no answer was correct.
    pub per_correct_usd: Option<f64>,
}

/// Total cost of `records` under `price`.
pub fn total_usd(records: &[&Record], price: &Price) -> f64 {
    match *price {
        Price::PerHour { usd_per_hour } => {
            let mut intervals: Vec<(f64, f64)> =
                records.iter().filter_map(|r| r.e2e_s.map(|e| (r.start_offset_s, r.start_offset_s + e.max(0.0)))).collect();
            crate::analysis::busy_span(&mut intervals) / 3600.0 * usd_per_hour
        }
        Price::PerToken { usd_per_1m_input, usd_per_1m_output } => records
            .iter()
            .map(|r| {
                r.prompt_tokens.unwrap_or(0) as f64 * usd_per_1m_input + r.output_tokens.unwrap_or(0) as f64 * usd_per_1m_output
            })
            .sum::<f64>()
            / 1e6,
    }
}

/// Cost of a group that generated `output_tokens` and answered `n_correct` of its requests correctly.
pub fn cost(records: &[&Record], price: &Price, output_tokens: u64, n_correct: Option<usize>) -> Option<Cost> {
    if records.is_empty() {
        return None;
    }
    let total = total_usd(records, price);
    Some(Cost {
        total_usd: total,
        per_request_usd: total / records.len() as f64,
        per_1m_output_usd: (output_tokens > 0).then(|| total / output_tokens as f64 * 1e6),
        per_correct_usd: n_correct.filter(|&n| n > 0).map(|n| total / n as f64),
    })
}

/// Each run's price, from the `cost` its run manifest stored (runs without one are left out).
pub fn prices_of(runs: &[crate::LoadedRun]) -> BTreeMap<String, Price> {
    runs.iter()
        .filter_map(|r| {
            let cost = r.manifest.as_ref()?.meta.extra.get("cost")?;
            let price = serde_json::from_value::<Price>(cost.clone()).ok()?;
            Some((r.run_id.clone(), price))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::record;

    fn timed(start: f64, e2e: f64, prompt: u32, out: u32) -> Record {
        let mut r = record("p", "s", &format!("{start}"));
        r.start_offset_s = start;
        r.e2e_s = Some(e2e);
        r.prompt_tokens = Some(prompt);
        r.output_tokens = Some(out);
        r
    }

    #[test]
    fn hourly_cost_counts_busy_time_once() {
        // Two overlapping requests (0..2 s and 1..3 s) and one alone (10..11 s): 4 s busy.
        let rs = [timed(0.0, 2.0, 10, 100), timed(1.0, 2.0, 10, 100), timed(10.0, 1.0, 10, 200)];
        let refs: Vec<&Record> = rs.iter().collect();
        let price = Price::PerHour { usd_per_hour: 3600.0 };
        let c = cost(&refs, &price, 400, Some(2)).unwrap();
        assert!((c.total_usd - 4.0).abs() < 1e-12);
        assert!((c.per_request_usd - 4.0 / 3.0).abs() < 1e-12);
        assert!((c.per_1m_output_usd.unwrap() - 4.0 / 400.0 * 1e6).abs() < 1e-6);
        assert!((c.per_correct_usd.unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(cost(&refs, &price, 0, Some(0)).unwrap().per_correct_usd, None);
    }

    #[test]
    fn token_cost_sums_input_and_output() {
        let rs = [timed(0.0, 1.0, 1000, 500), timed(1.0, 1.0, 3000, 1500)];
        let refs: Vec<&Record> = rs.iter().collect();
        let price = Price::PerToken { usd_per_1m_input: 0.5, usd_per_1m_output: 2.0 };
        // 4000 input tokens x $0.5/1M + 2000 output x $2/1M = $0.002 + $0.004.
        assert!((total_usd(&refs, &price) - 0.006).abs() < 1e-15);
    }

    #[test]
    fn malformed_cost_blocks_are_named() {
        let parse = |y: &str| serde_yaml::from_str::<Price>(y).map_err(|e| e.to_string());
        assert_eq!(parse("usd_per_hour: 2.5").unwrap(), Price::PerHour { usd_per_hour: 2.5 });
        assert_eq!(
            parse("{usd_per_1m_input: 0.15, usd_per_1m_output: 0.6}").unwrap(),
            Price::PerToken { usd_per_1m_input: 0.15, usd_per_1m_output: 0.6 }
        );
        for (y, want) in [
            ("usd_per_hour: -1", "expected a price in dollars"),
            ("usd_per_hour: .nan", "expected a price in dollars"),
            ("usd_per_hours: 2", "unknown field `usd_per_hours`"),
            ("{usd_per_hour: 2, usd_per_1m_output: 1}", "cannot be combined"),
            ("usd_per_1m_output: 1", "usd_per_1m_input is missing"),
            ("usd_per_1m_input: 1", "usd_per_1m_output is missing"),
            ("{}", "empty"),
            ("usd_per_hour: cheap", "invalid type"),
        ] {
            let e = parse(y).unwrap_err();
            assert!(e.contains(want), "{y}: {e}");
        }
    }
}
