//! The models this server offers: one per policy. `<base>` runs the baseline, `<base>:<policy>` runs that
//! policy from the policies file, so a client picks the inference policy by the model name it sends (the way
//! the runner's `remote.model` tags a policy).

use std::sync::Arc;
use ttc_engine::Policy;

#[derive(Debug, Clone)]
pub struct ServedModel {
    pub id: String,
    pub policy: Arc<Policy>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ServedModel>,
}

impl Catalog {
    /// `base` first (the file's `baseline` policy if it has one, else plain decoding), then every policy.
    pub fn new(base: &str, policies: &[Policy]) -> anyhow::Result<Catalog> {
        let baseline = policies.iter().find(|p| p.name == "baseline").cloned().unwrap_or_else(Policy::baseline);
        let mut models = vec![ServedModel { id: base.to_string(), policy: Arc::new(baseline) }];
        for p in policies {
            models.push(ServedModel { id: format!("{base}:{}", p.name), policy: Arc::new(p.clone()) });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<Policy> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies.yaml");
        ttc_engine::load_policies(&path).expect("configs/policies.yaml parses")
    }

    #[test]
    fn names_map_to_policies() {
        let policies = shipped();
        let c = Catalog::new("smollm2-135m", &policies).unwrap();
        assert_eq!(c.ids().len(), policies.len() + 1);
        assert_eq!(c.get("smollm2-135m").unwrap().policy.algorithm_name(), "baseline");
        let spec = c.get("smollm2-135m:speculative_decoding").unwrap();
        assert_eq!((spec.policy.name.as_str(), spec.policy.algorithm_name()), ("speculative_decoding", "speculative_ngram"));
        assert!(c.get("smollm2-135m:nope").is_none());
        assert!(c.get("gpt-4o").is_none());
        // Without a policies file only the base model is served.
        assert_eq!(Catalog::new("m", &[]).unwrap().ids(), vec!["m".to_string()]);
    }
}
