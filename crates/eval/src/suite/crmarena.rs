//! CRMArena (`tasks_natural.json`) and CRMArena-Pro (`crmarena_b2b_tasks.json`) loaders (datasets.md §1).
//!
//! The official agent has tools to query a Salesforce org; offline there are none, so the prompt is one
//! system turn (our wording) carrying what the official agent appends to its system prompt — `metadata.required`
//! always, `metadata.optional` in `aided` mode (the official runs use `EVAL_MODE=aided`), the persona for Pro —
//! and the query as the user turn. The model is asked to end with `<submit>ANSWER</submit>`, the official
//! answer protocol and the first form the scorer extracts (`text::extract_answer`). Small models follow a
//! format they are shown far better than one they are told, so two short worked exchanges (ours, not from the
//! dataset: an ID-style and a free-text answer, each only a `<submit>` tag) precede the query.

use super::json_items::{array_items, kind, Fields};
use super::{ChatMessage, Source, Suite, SuiteItem};
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

/// Worked exchanges shown before every query: (user, assistant). Invented records, so no dataset answer leaks.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Cases closed per agent this quarter: Agent 005Wx000001AbcD closed 12 cases, agent 005Wx000002EfgH closed \
         19 cases. Which agent closed the most cases? Return only the Id of the agent.",
        "<submit>005Wx000002EfgH</submit>",
    ),
    (
        "Knowledge article: 'Gift cards cannot be exchanged for cash and expire 24 months after purchase.' \
         When do gift cards expire?",
        "<submit>24 months after purchase.</submit>",
    ),
];

/// System turn, the worked exchanges, then the query.
fn messages(system: String, query: &str) -> Vec<ChatMessage> {
    let mut m = vec![ChatMessage::new("system", system)];
    for (user, assistant) in EXAMPLES {
        m.push(ChatMessage::new("user", *user));
        m.push(ChatMessage::new("assistant", *assistant));
    }
    m.push(ChatMessage::new("user", query.trim()));
    m
}

/// Parse a CRMArena (`pro == false`) or CRMArena-Pro file.
pub(crate) fn parse(src: &Source, pro: bool, mode: CrmMode) -> Result<Vec<SuiteItem>, EvalError> {
    let suite = if pro { Suite::CrmarenaPro } else { Suite::Crmarena }.name();
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
            messages: messages(system, query),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{extract_answer, AnswerStyle};

    #[test]
    fn worked_exchanges_answer_in_the_form_the_scorer_extracts() {
        for (user, assistant) in EXAMPLES {
            let answer = extract_answer(assistant, AnswerStyle::Short);
            assert!(!answer.is_empty() && !answer.contains('<'), "{assistant}");
            assert!(user.contains(answer.trim_end_matches('.')), "the answer comes from the exchange's own text");
        }
        let m = messages("sys".into(), " q ");
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user", "assistant", "user"]);
        assert_eq!(m.last().unwrap().content, "q");
    }
}
