//! WorfBench loader (`gold_traj/<task>/graph_eval.json`, datasets.md §2.1). The prompt is built as the official
//! `node_eval.py: build_message --few_shot` does: the system turn (the planner instruction), the task's worked
//! example as a user/assistant pair (a task and its gold `Node:` / `Edge:` workflow), then the user turn
//! prefixed with "Now it's your turn.\n"; the assistant turn of the data is the gold workflow.
//!
//! The examples (`worfbench_examples.json`) are our own, one per task, written in the format of WorfBench's
//! `one_shot_example` (a task, then its workflow as `Node:` / `Edge:` lists; no text taken from WorfBench or its
//! data): the official README runs two-shot, but a 135M model's prompt budget and CPU prefill time favour one. The held-out tasks have no official example; seal_tools (function calls) uses toolalpaca's and
//! intercodesql (code actions) uses os's. Without an example the model never writes the Node/Edge format
//! (issue 15: f1 0.000 for every policy).

use super::json_items::{array_items, kind, Fields};
use super::{ChatMessage, Source, Suite, SuiteItem};
use crate::EvalError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const TURN_PREFIX: &str = "Now it's your turn.\n";

/// The official one-shot example (user turn, assistant workflow) for `task`, if there is one.
pub fn example(task: &str) -> Option<(&'static str, &'static str)> {
    use std::sync::LazyLock;
    static EXAMPLES: LazyLock<BTreeMap<String, Value>> = LazyLock::new(|| {
        serde_json::from_str(include_str!("worfbench_examples.json")).expect("bundled WorfBench examples are valid JSON")
    });
    let key = match task {
        "seal_tools" => "toolalpaca",
        "intercodesql" => "os",
        t => t,
    };
    let e = EXAMPLES.get(key)?;
    Some((e.get("user")?.as_str()?, e.get("assistant")?.as_str()?))
}

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
            suite: Suite::Worfbench.name().into(),
            task: Some(task.to_string()),
            sample_id: id,
            messages: messages(task, system, user),
            reference: Some(gold.to_string()),
            reference_list: vec![gold.to_string()],
            reward_metric: None,
            metadata: md,
        });
    }
    Ok(out)
}

/// System turn, the task's example pair when there is one, then the task.
fn messages(task: &str, system: &str, user: &str) -> Vec<ChatMessage> {
    let mut m = vec![ChatMessage::new("system", system)];
    if let Some((ex_user, ex_assistant)) = example(task) {
        m.push(ChatMessage::new("user", ex_user));
        m.push(ChatMessage::new("assistant", ex_assistant));
    }
    m.push(ChatMessage::new("user", format!("{TURN_PREFIX}{user}")));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_gets_an_official_example_in_the_node_edge_format() {
        for task in ["alfworld", "webshop", "os", "toolbench", "toolalpaca", "lumos", "wikihow", "seal_tools", "intercodesql"] {
            let (user, assistant) = example(task).unwrap_or_else(|| panic!("no example for {task}"));
            assert!(user.starts_with("Here is an example.") || user.starts_with("Here are an example."), "{task}");
            // The example's workflow parses with the official rules: `k: text` nodes and `(a,b)` edges.
            let g = crate::workflow::parse_workflow(assistant);
            assert!(g.as_ref().is_some_and(|g| g.nodes.len() > 2 && !g.edges.is_empty()), "{task}: {assistant}");
        }
        assert!(example("no_such_task").is_none());
        let m = messages("os", "sys", "task");
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(m[3].content, "Now it's your turn.\ntask");
    }
}
