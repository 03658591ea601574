//! Evaluation suites: loaders that turn dataset files into [`SuiteItem`]s the runner sends as chat requests.
//!
//! Data comes from `--data-dir` / `TTC_DATA_DIR` (layout as the real datasets: `crmarena/tasks_natural.json`,
//! `crmarena-pro/crmarena_b2b_tasks.json`, `worfbench/gold_traj/<task>/graph_eval.json`) or, without it,
//! from the sample files in `data/samples/` compiled into the binary, so everything runs on a fresh machine.

mod crmarena;
mod json_items;
mod jsonl;
pub mod sampling;
mod samples;
mod worfbench;

pub use crmarena::{crmarena_system_prompt, CrmMode, EXAMPLES as CRMARENA_EXAMPLES};
pub use sampling::stratified_sample;
pub use worfbench::TURN_PREFIX as WORFBENCH_TURN_PREFIX;

use crate::EvalError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One chat turn: the contract's, so a suite's prompts go to a backend as they are.
pub use ttc_contract::ChatMessage;

/// One loaded sample, suite-independent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteItem {
    /// `crmarena`, `crmarena_pro`, `worfbench`, or the JSONL suite's name.
    pub suite: String,
    pub task: Option<String>,
    /// Unique within the suite (CRMArena `idx`, WorfBench `id`, JSONL `id`).
    pub sample_id: String,
    pub messages: Vec<ChatMessage>,
    /// The gold answer as text (CRMArena: `None` for a null answer; Pro: the items joined with ", ";
    /// WorfBench: the gold workflow).
    pub reference: Option<String>,
    /// The gold answer items (CRMArena-Pro lists; one item otherwise; empty without reference).
    pub reference_list: Vec<String>,
    /// CRMArena's `reward_metric` (`exact_match`, `fuzzy_match`, `privacy_rejection`).
    pub reward_metric: Option<String>,
    /// Anything else worth keeping (persona, WorfBench source/category, JSONL metadata as JSON text).
    pub metadata: BTreeMap<String, String>,
}

/// The suites `ttc` knows by name (`ttc_types::Suite`).
pub use ttc_types::Suite;

/// Where data comes from.
#[derive(Debug, Clone, Default)]
pub struct DataSource {
    /// Real data root (`--data-dir` / `TTC_DATA_DIR`); None = bundled samples.
    pub data_dir: Option<PathBuf>,
}

/// What to load.
#[derive(Debug, Clone)]
pub struct SuiteSpec {
    /// A [`Suite`] name.
    pub name: String,
    /// For `jsonl`: the file (required).
    pub path: Option<PathBuf>,
    /// Keep only these tasks (empty = all). Unknown task names are an error.
    pub tasks: Vec<String>,
    /// At most this many items, drawn by seeded stratified sampling over tasks.
    pub limit: Option<usize>,
    pub seed: u64,
    /// CRMArena prompt mode (`aided` by default, as in the official runs).
    pub crm_mode: CrmMode,
}

impl SuiteSpec {
    pub fn new(name: &str) -> SuiteSpec {
        SuiteSpec { name: name.to_string(), path: None, tasks: Vec::new(), limit: None, seed: 0, crm_mode: CrmMode::Aided }
    }
}

/// A file to read: from disk (real data) or compiled in (samples).
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
}

fn read(path: &Path, hint: &str) -> Result<Source, EvalError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Source { path: path.to_path_buf(), text: decode_text(path, bytes)? }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(EvalError::MissingFile { path: path.to_path_buf(), hint: hint.to_string() })
        }
        Err(error) => Err(EvalError::Io { path: path.to_path_buf(), error }),
    }
}

/// A data file's bytes as text: UTF-8, with the byte-order mark some editors write (Windows Notepad, Excel's
/// "CSV UTF-8") dropped; anything else is an error naming the line and column of the first bad byte.
pub(crate) fn decode_text(path: &Path, mut bytes: Vec<u8>) -> Result<String, EvalError> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let good = &bytes[..e.utf8_error().valid_up_to()];
        let line = 1 + good.iter().filter(|b| **b == b'\n').count();
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        EvalError::malformed(
            path,
            line,
            format!("not valid UTF-8 (byte {} of the line is 0x{:02X}); save the file as UTF-8", good.len() - line_start + 1, bytes[good.len()]),
        )
    })
}

fn data_hint(dir: &Path) -> String {
    format!("looked under --data-dir/TTC_DATA_DIR = {}; see docs/suites.md for the expected layout", dir.display())
}

/// Load, filter and sample a suite.
pub fn load_suite(spec: &SuiteSpec, source: &DataSource) -> Result<Vec<SuiteItem>, EvalError> {
    let items = load_all(spec, source)?;
    let items = filter_tasks(items, &spec.name, &spec.tasks)?;
    Ok(match spec.limit {
        Some(n) => stratified_sample(items, n, spec.seed),
        None => items,
    })
}

fn load_all(spec: &SuiteSpec, source: &DataSource) -> Result<Vec<SuiteItem>, EvalError> {
    match (Suite::from_name(&spec.name), &source.data_dir) {
        (Some(Suite::Crmarena), Some(dir)) => {
            let src = read(&dir.join("crmarena/tasks_natural.json"), &data_hint(dir))?;
            crmarena::parse(&src, false, spec.crm_mode)
        }
        (Some(Suite::Crmarena), None) => crmarena::parse(&samples::crmarena(), false, spec.crm_mode),
        (Some(Suite::CrmarenaPro), Some(dir)) => {
            let src = read(&dir.join("crmarena-pro/crmarena_b2b_tasks.json"), &data_hint(dir))?;
            crmarena::parse(&src, true, spec.crm_mode)
        }
        (Some(Suite::CrmarenaPro), None) => crmarena::parse(&samples::crmarena_pro(), true, spec.crm_mode),
        (Some(Suite::Worfbench), Some(dir)) => {
            let root = dir.join("worfbench/gold_traj");
            let tasks = worfbench::task_dirs(&root).map_err(|_| EvalError::MissingFile {
                path: root.clone(),
                hint: data_hint(dir),
            })?;
            let mut items = Vec::new();
            for task in tasks {
                let src = read(&root.join(&task).join("graph_eval.json"), &data_hint(dir))?;
                items.extend(worfbench::parse(&src, &task)?);
            }
            Ok(items)
        }
        (Some(Suite::Worfbench), None) => {
            let mut items = Vec::new();
            for (task, src) in samples::worfbench() {
                items.extend(worfbench::parse(&src, task)?);
            }
            Ok(items)
        }
        (Some(Suite::Jsonl), _) => {
            let path = spec.path.as_ref().ok_or_else(|| EvalError::MissingFile {
                path: PathBuf::from("<none>"),
                hint: "the jsonl suite needs a file: pass it with --suite-file".into(),
            })?;
            let src = read(path, "given with --suite-file")?;
            jsonl::parse(&src)
        }
        (None, _) => Err(EvalError::UnknownSuite(spec.name.clone())),
    }
}

fn filter_tasks(items: Vec<SuiteItem>, suite: &str, tasks: &[String]) -> Result<Vec<SuiteItem>, EvalError> {
    if tasks.is_empty() {
        return Ok(items);
    }
    let known: std::collections::BTreeSet<&str> = items.iter().filter_map(|i| i.task.as_deref()).collect();
    for t in tasks {
        if !known.contains(t.as_str()) {
            return Err(EvalError::UnknownTask {
                suite: suite.to_string(),
                task: t.clone(),
                known: known.iter().copied().collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(items.into_iter().filter(|i| i.task.as_ref().is_some_and(|t| tasks.contains(t))).collect())
}

/// A suite's tasks and item counts, for `ttc suites`.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteSummary {
    pub suite: String,
    /// `samples` (bundled) or the data directory.
    pub source: String,
    pub items: usize,
    pub tasks: BTreeMap<String, usize>,
}

/// Summaries of the built-in suites (not `jsonl`, which needs a file).
pub fn list_suites(source: &DataSource) -> Result<Vec<SuiteSummary>, EvalError> {
    let mut out = Vec::new();
    for name in Suite::BUNDLED.map(Suite::name) {
        let items = load_all(&SuiteSpec::new(name), source)?;
        let mut tasks = BTreeMap::new();
        for i in &items {
            *tasks.entry(i.task.clone().unwrap_or_else(|| "-".into())).or_insert(0) += 1;
        }
        out.push(SuiteSummary {
            suite: name.to_string(),
            source: source.data_dir.as_ref().map_or("samples".to_string(), |d| d.display().to_string()),
            items: items.len(),
            tasks,
        });
    }
    Ok(out)
}
