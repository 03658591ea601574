//! The JSONL suite for users' own data: one object per line,
//! `{"id", "prompt" | "messages", "reference", "task"?, "metadata"?}`. Blank lines are skipped.

use super::json_items::kind;
use super::{ChatMessage, Source, SuiteItem};
use crate::EvalError;
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) fn parse(src: &Source) -> Result<Vec<SuiteItem>, EvalError> {
    let suite = src.path.file_stem().and_then(|s| s.to_str()).unwrap_or("jsonl").to_string();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in src.text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |field: &str, msg: String| EvalError::malformed(&src.path, line_no, format!("field `{field}`: {msg}"));
        let map = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => m,
            Ok(other) => return Err(EvalError::malformed(&src.path, line_no, format!("expected a JSON object, found {}", kind(&other)))),
            Err(e) => return Err(EvalError::malformed(&src.path, line_no, format!("invalid JSON: {e}"))),
        };
        let id = match map.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(x)) => x.to_string(),
            None => format!("line-{line_no}"),
            Some(other) => return Err(err("id", format!("expected a string or number, found {}", kind(other)))),
        };
        if !seen.insert(id.clone()) {
            return Err(err("id", format!("duplicate id {id}")));
        }
        let messages = match (map.get("messages"), map.get("prompt")) {
            (Some(Value::Array(turns)), _) => {
                let mut msgs = Vec::new();
                for (k, t) in turns.iter().enumerate() {
                    match (t.get("role").and_then(Value::as_str), t.get("content").and_then(Value::as_str)) {
                        (Some(r), Some(c)) => msgs.push(ChatMessage::new(r, c)),
                        _ => return Err(err(&format!("messages[{k}]"), "expected {\"role\": string, \"content\": string}".into())),
                    }
                }
                if msgs.is_empty() {
                    return Err(err("messages", "empty".into()));
                }
                msgs
            }
            (Some(other), _) => return Err(err("messages", format!("expected an array, found {}", kind(other)))),
            (None, Some(Value::String(p))) => vec![ChatMessage::new("user", p.as_str())],
            (None, Some(other)) => return Err(err("prompt", format!("expected a string, found {}", kind(other)))),
            (None, None) => return Err(err("prompt", "missing (give `prompt` or `messages`)".into())),
        };
        let reference_list: Vec<String> = match map.get("reference") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err("reference", "list items must be strings".into())))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(err("reference", format!("expected a string or a list of strings, found {}", kind(other)))),
        };
        let task = match map.get("task") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(err("task", format!("expected a string, found {}", kind(other)))),
        };
        let mut metadata = BTreeMap::new();
        match map.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    metadata.insert(k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
                }
            }
            Some(other) => return Err(err("metadata", format!("expected an object, found {}", kind(other)))),
        }
        out.push(SuiteItem {
            suite: suite.clone(),
            task,
            sample_id: id,
            messages,
            reference: reference_list.first().cloned(),
            reference_list,
            reward_metric: None,
            metadata,
        });
    }
    Ok(out)
}
