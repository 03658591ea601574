//! The models this server offers: one per policy. `<base>` runs the baseline, `<base>:<policy>` runs that
//! policy from the policies file, so a client picks the inference policy by the model name it sends (the way
//! the runner's `remote.model` tags a policy).

use std::collections::BTreeMap;
use std::sync::Arc;
use ttc_bench::config::PolicySpec;
use ttc_engine::Policy;

#[derive(Debug, Clone)]
pub struct ServedModel {
    pub id: String,
    pub policy: Arc<PolicySpec>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ServedModel>,
}

impl Catalog {
    /// `base` first (the file's `baseline` policy if it has one, else plain decoding), then every policy.
    pub fn new(base: &str, policies: &[Policy]) -> anyhow::Result<Catalog> {
        let baseline = policies.iter().find(|p| p.name == "baseline").cloned().unwrap_or_else(Policy::baseline);
        let mut models = vec![ServedModel { id: base.to_string(), policy: Arc::new(spec_of(&baseline)?) }];
        for p in policies {
            models.push(ServedModel { id: format!("{base}:{}", p.name), policy: Arc::new(spec_of(p)?) });
        }
        Ok(Catalog { models })
    }

    pub fn get(&self, id: &str) -> Option<&ServedModel> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.models.iter().map(|m| m.id.clone()).collect()
    }

    pub fn models(&self) -> &[ServedModel] {
        &self.models
    }
}

/// A validated engine policy as the runner's spec (what `EmbeddedBackend` takes): its serde form is
/// `{"algorithm": name, "params": {...}}`, which `policy_from_parts` parses back to the same policy.
pub fn spec_of(p: &Policy) -> anyhow::Result<PolicySpec> {
    let v = serde_json::to_value(&p.algorithm)?;
    let params: BTreeMap<String, serde_json::Value> = match v.get("params") {
        Some(serde_json::Value::Object(m)) => m.clone().into_iter().collect(),
        Some(serde_json::Value::Null) | None => BTreeMap::new(),
        Some(other) => anyhow::bail!("policy `{}`: params serialise as {other}, expected an object", p.name),
    };
    Ok(PolicySpec {
        name: p.name.clone(),
        algorithm: p.algorithm_name().to_string(),
        description: p.description.clone(),
        params,
        remote: None,
        concurrency: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<Policy> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies.yaml");
        ttc_engine::load_policies(&path).expect("configs/policies.yaml parses")
    }

    #[test]
    fn every_shipped_policy_round_trips_through_its_spec() {
        for p in shipped() {
            let s = spec_of(&p).unwrap();
            let params = serde_json::to_value(&s.params).unwrap();
            let back = ttc_engine::policy::policy_from_parts(&s.name, &s.algorithm, s.description.clone(), params)
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(back, p);
        }
    }

    #[test]
    fn names_map_to_policies() {
        let policies = shipped();
        let c = Catalog::new("smollm2-135m", &policies).unwrap();
        assert_eq!(c.ids().len(), policies.len() + 1);
        assert_eq!(c.get("smollm2-135m").unwrap().policy.algorithm, "baseline");
        let spec = c.get("smollm2-135m:speculative_decoding").unwrap();
        assert_eq!((spec.policy.name.as_str(), spec.policy.algorithm.as_str()), ("speculative_decoding", "speculative_ngram"));
        assert!(c.get("smollm2-135m:nope").is_none());
        assert!(c.get("gpt-4o").is_none());
        // Without a policies file only the base model is served.
        assert_eq!(Catalog::new("m", &[]).unwrap().ids(), vec!["m".to_string()]);
    }
}
