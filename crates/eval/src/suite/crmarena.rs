//! CRMArena (`tasks_natural.json`) and CRMArena-Pro (`crmarena_b2b_tasks.json`) loaders (datasets.md §1).
//!
//! The official agent has tools to query a Salesforce org; offline there are none, so the prompt is one
//! system turn (our wording) carrying what the official agent appends to its system prompt — `metadata.required`
//! always, `metadata.optional` in `aided` mode (the official runs use `EVAL_MODE=aided`), the persona for Pro —
//! and the query as the user turn. The model is asked to end with `<submit>ANSWER</submit>`, the official
//! answer protocol.

use super::json_items::{array_items, kind, Fields};
use super::{ChatMessage, Source, SuiteItem};
use crate::EvalError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether `metadata.optional` (domain definitions) goes into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrmMode {
    /// required + optional (official default).
    #[default]
    Aided,
    /// required only.
    Default,
}

/// The system prompt for one item.
pub fn crmarena_system_prompt(required: &str, optional: Option<&str>, persona: Option<&str>) -> String {
    let mut s = String::from(
        "You are an expert Salesforce CRM assistant. Answer the user's question using only the information \
         given here. Reply with the answer alone inside <submit></submit>, for example <submit>March</submit>. \
         If no record matches, submit None.",
    );
    if let Some(p) = persona.filter(|p| !p.trim().is_empty()) {
        s.push_str("\n\n");
        s.push_str(p.trim());
    }
    if !required.trim().is_empty() {
        s.push_str("\n\n# Salesforce instance metadata\n");
        s.push_str(required.trim());
    }
    if let Some(o) = optional.filter(|o| !o.trim().is_empty()) {
        s.push_str("\n\n");
        s.push_str(o.trim());
    }
    s
}

/// Parse a CRMArena (`pro == false`) or CRMArena-Pro file.
pub(crate) fn parse(src: &Source, pro: bool, mode: CrmMode) -> Result<Vec<SuiteItem>, EvalError> {
    let suite = if pro { "crmarena_pro" } else { "crmarena" };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, map) in array_items(src)? {
        let f = Fields { map: &map, src, line };
        let idx = f.id("idx")?;
        if !seen.insert(idx.clone()) {
            return Err(f.err("idx", format!("duplicate idx {idx}")));
        }
        // The local copy calls it `type`; the published dataset `task`.
        let task = match (f.opt_str("task")?, f.opt_str("type")?) {
            (Some(t), _) | (None, Some(t)) => t.to_string(),
            (None, None) => return Err(f.err("task", "missing (neither `task` nor `type` is set)")),
        };
        let query = f.str("query")?;
        let metadata = match f.get("metadata") {
            Some(Value::Object(m)) => m,
            Some(other) => return Err(f.err("metadata", format!("expected an object, found {}", kind(other)))),
            None => return Err(f.err("metadata", "missing")),
        };
        let meta = Fields { map: metadata, src, line };
        let required = meta.opt_str("required").map_err(|_| f.err("metadata.required", "expected a string"))?.unwrap_or("");
        let optional = meta.opt_str("optional").map_err(|_| f.err("metadata.optional", "expected a string"))?;
        let persona = if pro { f.opt_str("persona")? } else { None };
        let reward_metric = f.opt_str("reward_metric")?.map(str::to_string);
        let answers = answers(&f)?;
        let system = crmarena_system_prompt(required, if mode == CrmMode::Aided { optional } else { None }, persona);
        let mut md = BTreeMap::new();
        if let Some(p) = persona {
            md.insert("persona".to_string(), p.to_string());
        }
        out.push(SuiteItem {
            suite: suite.to_string(),
            task: Some(task),
            sample_id: idx,
            messages: vec![ChatMessage::new("system", system), ChatMessage::new("user", query.trim())],
            reference: Some(answers.join(", ")),
            reference_list: answers,
            reward_metric,
            metadata: md,
        });
    }
    Ok(out)
}

/// The gold answers: a string, null (`"None"`, as the official `gt = "None" if gt is None`), or a list
/// whose null items are `"None"` (Pro: `[null]`).
fn answers(f: &Fields) -> Result<Vec<String>, EvalError> {
    let item = |v: &Value| -> Result<String, EvalError> {
        match v {
            Value::Null => Ok("None".into()),
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(f.err("answer", format!("list items must be strings or null, found {}", kind(other)))),
        }
    };
    match f.get("answer") {
        None => Err(f.err("answer", "missing")),
        Some(Value::Array(items)) if items.is_empty() => Err(f.err("answer", "empty list")),
        Some(Value::Array(items)) => items.iter().map(item).collect(),
        Some(v @ (Value::Null | Value::String(_) | Value::Number(_))) => Ok(vec![item(v)?]),
        Some(other) => Err(f.err("answer", format!("expected a string, null or a list, found {}", kind(other)))),
    }
}
