//! WorfBench loader (`gold_traj/<task>/graph_eval.json`, datasets.md §2.1). The prompt is the system turn plus
//! the user turn prefixed with "Now it's your turn.\n", as `node_eval.py: build_message` does (zero-shot:
//! the official two-shot examples live in the evaluator's code, not in the data); the assistant turn is the
//! gold workflow.

use super::json_items::{array_items, kind, Fields};
use super::{ChatMessage, Source, SuiteItem};
use crate::EvalError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const TURN_PREFIX: &str = "Now it's your turn.\n";

/// Task directories under `gold_traj/` that hold a `graph_eval.json`, sorted.
pub(crate) fn task_dirs(root: &Path) -> std::io::Result<Vec<String>> {
    let mut tasks: Vec<String> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("graph_eval.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    tasks.sort();
    Ok(tasks)
}

pub(crate) fn parse(src: &Source, task: &str) -> Result<Vec<SuiteItem>, EvalError> {
    let mut out = Vec::new();
    for (line, map) in array_items(src)? {
        let f = Fields { map: &map, src, line };
        let id = f.id("id")?;
        let turns = match f.get("conversations") {
            Some(Value::Array(t)) => t,
            Some(other) => return Err(f.err("conversations", format!("expected an array, found {}", kind(other)))),
            None => return Err(f.err("conversations", "missing")),
        };
        let mut by_role: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, t) in turns.iter().enumerate() {
            let role = t.get("role").and_then(Value::as_str);
            let content = t.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => {
                    by_role.entry(r).or_insert(c);
                }
                _ => return Err(f.err(&format!("conversations[{k}]"), "expected {\"role\": string, \"content\": string}")),
            }
        }
        let get = |role: &str| {
            by_role.get(role).copied().ok_or_else(|| f.err("conversations", format!("no `{role}` turn")))
        };
        let (system, user, gold) = (get("system")?, get("user")?, get("assistant")?);
        let mut md = BTreeMap::new();
        for key in ["source", "category", "target"] {
            if let Some(v) = f.opt_str(key)? {
                md.insert(key.to_string(), v.to_string());
            }
        }
        out.push(SuiteItem {
            suite: "worfbench".into(),
            task: Some(task.to_string()),
            sample_id: id,
            messages: vec![ChatMessage::new("system", system), ChatMessage::new("user", format!("{TURN_PREFIX}{user}"))],
            reference: Some(gold.to_string()),
            reference_list: vec![gold.to_string()],
            reward_metric: None,
            metadata: md,
        });
    }
    Ok(out)
}
