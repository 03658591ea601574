//! `algorithm: adaptive`: runs a quality policy while the load is low and a fast one while it is high, switching
//! with hysteresis so that a load hovering at one threshold does not flap between them (docs/policies.md
//! "adaptive"). The load is measured where requests queue (the runner's backend wrapper, `ttc serve`); this
//! module holds the params and the switching rule.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::policy::Policy;

/// What the load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSignal {
    /// Requests of this policy waiting or running when one arrives (itself included).
    QueueDepth,
    /// p95 of the E2E seconds of this policy's last `window` finished requests.
    P95E2e,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveParams {
    /// The policy run while the load is low.
    pub quality: String,
    /// The policy run while the load is high.
    pub fast: String,
    /// `queue_depth` or `p95_e2e`.
    #[serde(default = "queue_depth")]
    pub signal: LoadSignal,
    /// Switch to `fast` when the signal reaches this (requests, or seconds: the SLO's p95 bound).
    pub high: f64,
    /// Switch back to `quality` when the signal falls to this or below (< high: the hysteresis band).
    pub low: f64,
    /// `p95_e2e`: how many recent requests the p95 is over (>= 1).
    #[serde(default = "twenty")]
    pub window: usize,
    /// The two policies, resolved when the policies file is read.
    #[serde(skip)]
    pub targets: BTreeMap<String, Policy>,
}

fn queue_depth() -> LoadSignal {
    LoadSignal::QueueDepth
}
fn twenty() -> usize {
    20
}

/// Which of the two policies runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Quality,
    Fast,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Quality => "quality",
            Mode::Fast => "fast",
        }
    }
}

impl AdaptiveParams {
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.high) || !ok(self.low) {
            return Err(format!("params.high, params.low: must be finite numbers >= 0, got {} and {}", self.high, self.low));
        }
        if self.low >= self.high {
            return Err(format!("params.low: must be below params.high (the hysteresis band), got {} >= {}", self.low, self.high));
        }
        if self.window == 0 {
            return Err("params.window: must be >= 1, got 0".into());
        }
        if self.quality == self.fast {
            return Err(format!("params.fast: must differ from params.quality, both are `{}`", self.fast));
        }
        Ok(())
    }

    pub fn named_policies(&self) -> Vec<(String, &str)> {
        vec![("params.quality".into(), self.quality.as_str()), ("params.fast".into(), self.fast.as_str())]
    }

    /// The mode after observing `load` in mode `now`: up at `high`, down at `low`, else unchanged.
    pub fn next_mode(&self, now: Mode, load: f64) -> Mode {
        match now {
            Mode::Quality if load >= self.high => Mode::Fast,
            Mode::Fast if load <= self.low => Mode::Quality,
            m => m,
        }
    }

    /// The policy a mode runs.
    pub fn policy(&self, mode: Mode) -> Option<&Policy> {
        self.targets.get(match mode {
            Mode::Quality => &self.quality,
            Mode::Fast => &self.fast,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_has_hysteresis() {
        let p = AdaptiveParams {
            quality: "q".into(),
            fast: "f".into(),
            signal: LoadSignal::QueueDepth,
            high: 4.0,
            low: 1.0,
            window: 20,
            targets: BTreeMap::new(),
        };
        let mut m = Mode::Quality;
        let mut trace = Vec::new();
        for load in [1.0, 3.0, 4.0, 3.0, 2.0, 4.0, 1.0, 3.0] {
            m = p.next_mode(m, load);
            trace.push(m.label());
        }
        // Up at 4, stays fast through 3 and 2 (inside the band), down only at 1.
        assert_eq!(trace, ["quality", "quality", "fast", "fast", "fast", "fast", "quality", "quality"]);
    }
}
