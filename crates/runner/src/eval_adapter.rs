//! Bridges to the eval crate: its suite loaders feed the plan, and its metric registry scores each
//! finished record. Scoring needs the loaded item (gold answer list, reward metric), so the adapter keeps
//! the items it loaded, by (suite, sample id).

use crate::config::{ScoringConfig, SuiteConfig};
use crate::plan::{SuiteLoader, WorkItem};
use crate::scoring::Scorer;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use ttc_eval::{DataSource, ScorerCtx, SentenceEmbedder, SuiteItem, SuiteSpec};
use ttc_types::{Record, Suite};

pub struct EvalAdapter {
    items: Mutex<HashMap<(String, String), Arc<SuiteItem>>>,
    scorer: ScorerCtx,
}

impl EvalAdapter {
    /// Loads the configured embedder (fetching it with pip when `download` is set).
    pub fn new(scoring: &ScoringConfig) -> anyhow::Result<EvalAdapter> {
        let embedder: Option<Arc<dyn SentenceEmbedder>> = match scoring.embedder {
            Some(k) => Some(Arc::from(k.load(scoring.download).map_err(|e| {
                anyhow::anyhow!("scoring.embedder `{}`: {e} (or set scoring.embedder: hash / none)", k.as_str())
            })?)),
            None => None,
        };
        let scorer = ScorerCtx::new(embedder)
            .with_metrics(&scoring.metrics)
            .map_err(|e| anyhow::anyhow!("scoring.metrics: {e}"))?;
        Ok(EvalAdapter { items: Mutex::new(HashMap::new()), scorer })
    }
}

/// Whether the eval crate knows the suite by name (`ttc_types::Suite`); any other name with a `path` is a JSONL
/// suite named by the user.
fn builtin(name: &str) -> bool {
    Suite::from_name(name).is_some()
}

impl SuiteLoader for EvalAdapter {
    fn load(&self, suite: &SuiteConfig, seed: u64, data_dir: Option<&Path>) -> anyhow::Result<Vec<WorkItem>> {
        let builtin = builtin(&suite.name);
        if !builtin && suite.path.is_none() {
            anyhow::bail!(
                "unknown suite `{}`: use one of {} or give a `path` to a JSONL file",
                suite.name,
                Suite::NAMES.join(", ")
            );
        }
        let mut spec = SuiteSpec::new(if builtin { &suite.name } else { Suite::Jsonl.name() });
        spec.path = suite.path.clone();
        spec.tasks = suite.tasks.clone();
        spec.limit = suite.samples;
        spec.seed = seed;
        let source = DataSource { data_dir: data_dir.map(Path::to_path_buf) };
        let loaded = ttc_eval::load_suite(&spec, &source)?;
        let mut map = self.items.lock().map_err(|_| anyhow::anyhow!("suite cache poisoned"))?;
        Ok(loaded
            .into_iter()
            .map(|mut it| {
                // Records and resume keys use the configured suite name.
                it.suite = suite.name.clone();
                let work = WorkItem {
                    suite: it.suite.clone(),
                    task: it.task.clone(),
                    sample_id: it.sample_id.clone(),
                    messages: it.messages.clone(),
                    reference: it.reference.clone(),
                };
                map.insert((it.suite.clone(), it.sample_id.clone()), Arc::new(it));
                work
            })
            .collect())
    }
}

impl Scorer for EvalAdapter {
    fn score(&self, record: &Record) -> anyhow::Result<BTreeMap<String, f64>> {
        let item = self
            .items
            .lock()
            .map_err(|_| anyhow::anyhow!("suite cache poisoned"))?
            .get(&(record.suite.clone(), record.sample_id.clone()))
            .cloned();
        let Some(item) = item else {
            anyhow::bail!("no loaded item for suite `{}` sample `{}`", record.suite, record.sample_id);
        };
        // The suite kind decides the metrics; a user-named JSONL suite scores as generic text.
        let kind_name = if builtin(&record.suite) { record.suite.as_str() } else { Suite::Jsonl.name() };
        Ok(ttc_eval::score_record(kind_name, &record.prediction, &item, &self.scorer)?)
    }
}
