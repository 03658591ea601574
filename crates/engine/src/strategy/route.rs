//! Per-request routing (`algorithm: router`, docs/policies.md "router"): the request's features are measured
//! here, where the prompt's tokens and the model are, and the router's rules (in `ttc-policy`) pick the policy
//! that then decodes the request.

use crate::engine::{Engine, GenRequest};
use crate::error::{EngineError, Result};
use crate::policy::{Algorithm, Feature, Features, Policy};
use ttc_types::Route;

impl Engine {
    /// The policy that decodes `req`: `policy` itself, or the one its rules pick for a router, with the route
    /// taken (None for a policy that is not a router).
    pub fn resolve_route(&self, req: &GenRequest, policy: &Policy) -> Result<(Policy, Option<Route>)> {
        let router = match &policy.algorithm {
            Algorithm::Router(r) => r,
            // The load is measured where requests queue (the backend wrapper picks the mode before the engine
            // sees the request); a request that reaches the engine as `adaptive` has no load: quality.
            Algorithm::Adaptive(a) => {
                let target = a.policy(crate::policy::Mode::Quality).cloned().ok_or_else(|| {
                    EngineError::InvalidRequest(format!("adaptive `{}`: policy `{}` was not resolved", policy.name, a.quality))
                })?;
                let route = Route { policy: target.name.clone(), rule: "quality".into(), ..Route::default() };
                return Ok((target, Some(route)));
            }
            _ => return Ok((policy.clone(), None)),
        };
        let mut features = Features::of_prompt(&req.prompt, req.tags.clone());
        if router.reads(Feature::FirstEntropy) {
            features.first_entropy = Some(self.first_step_entropy(req)?);
        }
        let (name, rule) = router.choose(&features);
        let target = router.target(name).cloned().ok_or_else(|| {
            EngineError::InvalidRequest(format!("router `{}`: policy `{name}` was not resolved", policy.name))
        })?;
        let route = Route {
            policy: target.name.clone(),
            rule,
            prompt_tokens: Some(features.prompt_tokens),
            ngram_repetition: Some(features.ngram_repetition),
            first_entropy: features.first_entropy,
            load: None,
        };
        Ok((target, Some(route)))
    }

    /// Entropy (nats) of the full model's next-token distribution after the prompt. Costs one prefill (offered
    /// to the prefix cache, so with the cache on the routed policy's own prefill is nearly free).
    pub fn first_step_entropy(&self, req: &GenRequest) -> Result<f64> {
        let logits = self.prefill(req)?.logits;
        Ok(entropy_nats(&logits))
    }
}

/// Shannon entropy of softmax(`logits`), in nats, computed in f64 (max-shifted for stability).
pub fn entropy_nats(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !max.is_finite() {
        return 0.0;
    }
    let mut z = 0.0f64;
    let mut weighted = 0.0f64;
    for &l in logits {
        let x = l as f64 - max;
        let e = x.exp();
        z += e;
        weighted += e * x;
    }
    // H = -sum p ln p with p = e^x / z: ln z - (sum e^x x) / z.
    z.ln() - weighted / z
}

#[cfg(test)]
mod tests {
    use super::entropy_nats;

    #[test]
    fn entropy_of_uniform_and_peaked_rows() {
        assert!((entropy_nats(&[0.0; 8]) - 8f64.ln()).abs() < 1e-12);
        // p = (0.5, 0.25, 0.25): H = 1.5 ln 2.
        let l = [0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        assert!((entropy_nats(&l) - 1.5 * 2f64.ln()).abs() < 1e-6);
        assert!(entropy_nats(&[100.0, 0.0, 0.0]) < 1e-30);
    }
}
