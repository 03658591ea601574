//! Property-based fuzzing of the dataset loaders behind `load_suite`: JSONL (users' own data) and the official
//! formats (CRMArena / CRMArena-Pro task arrays, WorfBench `graph_eval.json`), read from files as `ttc run` does.
//!
//! - Generated valid files (ids as numbers or strings, `prompt` or `messages`, every reference/answer form,
//!   metadata, blank lines, CRLF, compact or pretty JSON) load to the items they describe.
//! - The same documents with one value replaced by a random JSON value (wrong types, missing or extra keys),
//!   with byte-level mutations (truncation, JSON punctuation, invalid UTF-8), or random bytes never panic;
//!   a malformed file's error names the file and a line inside it.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, json_count, json_value, mutate_bytes, replace_nth, scratch_dir, text, Edit, JSON_SNIPPETS};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ttc_eval::suite::{crmarena_system_prompt, CRMARENA_EXAMPLES, WORFBENCH_TURN_PREFIX};
use ttc_eval::{load_suite, ChatMessage, DataSource, EvalError, SuiteItem, SuiteSpec};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Jsonl,
    Crm { pro: bool },
    Worf,
}

/// Writes `bytes` where the suite's loader looks and loads it.
fn load(dir: &Path, format: Format, bytes: &[u8]) -> (PathBuf, Result<Vec<SuiteItem>, EvalError>) {
    let (name, file) = match format {
        Format::Jsonl => ("jsonl", dir.join("mine.jsonl")),
        Format::Crm { pro: false } => ("crmarena", dir.join("crmarena/tasks_natural.json")),
        Format::Crm { pro: true } => ("crmarena_pro", dir.join("crmarena-pro/crmarena_b2b_tasks.json")),
        Format::Worf => ("worfbench", dir.join("worfbench/gold_traj/plan/graph_eval.json")),
    };
    write(&file, bytes);
    let mut spec = SuiteSpec::new(name);
    spec.path = Some(file.clone());
    (file, load_suite(&spec, &DataSource { data_dir: Some(dir.to_path_buf()) }))
}

/// Errors name the file; a malformed file's error names a line of it.
fn check_error(file: &Path, bytes: &[u8], e: &EvalError) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(msg.contains(&file.display().to_string()), "error without the file: {msg}");
    if let EvalError::Malformed { line, .. } = e {
        let lines = bytes.split(|b| *b == b'\n').count();
        prop_assert!(*line >= 1 && *line <= lines, "line {line} outside the file's {lines} lines: {msg}");
    }
    Ok(())
}

// ---- valid documents, with the items they must load to ----

/// A unique id: a number, or text made unique by its index (`#` keeps it apart from JSONL's `line-N`).
fn id(i: usize) -> impl Strategy<Value = Value> {
    prop_oneof![Just(json!(1_000_000 + i)), text().prop_map(move |t| json!(format!("{t}#{i}")))]
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn messages() -> impl Strategy<Value = Vec<ChatMessage>> {
    let role = prop_oneof![prop::sample::select(vec!["system", "user", "assistant"]).prop_map(str::to_string), text()];
    prop::collection::vec((role, text()).prop_map(|(r, c)| ChatMessage { role: r, content: c }), 1..4)
}

fn jsonl_item(i: usize) -> impl Strategy<Value = (Value, SuiteItem)> {
    let reference = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        text().prop_map(|s| Some(json!(s))),
        prop::collection::vec(text(), 0..3).prop_map(|v| Some(json!(v))),
    ];
    let metadata = prop::option::of(prop::collection::btree_map(text(), prop_oneof![text().prop_map(Value::from), any::<i64>().prop_map(Value::from), Just(json!([1, {"a": null}]))], 0..3));
    (prop::option::of(id(i)), prop_oneof![text().prop_map(Err), messages().prop_map(Ok)], reference, prop::option::of(prop::option::of(text())), metadata)
        .prop_map(move |(id, prompt, reference, task, metadata)| {
            let mut m = Map::new();
            if let Some(id) = &id {
                m.insert("id".into(), id.clone());
            }
            let messages = match prompt {
                Err(p) => {
                    m.insert("prompt".into(), json!(p));
                    vec![ChatMessage::new("user", p)]
                }
                Ok(msgs) => {
                    m.insert("messages".into(), serde_json::to_value(&msgs).unwrap());
                    msgs
                }
            };
            let reference_list: Vec<String> = match &reference {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => vec![s.clone()],
                Some(v) => serde_json::from_value(v.clone()).unwrap(),
            };
            if let Some(r) = reference {
                m.insert("reference".into(), r);
            }
            if let Some(t) = &task {
                m.insert("task".into(), json!(t));
            }
            if let Some(md) = &metadata {
                m.insert("metadata".into(), json!(md));
            }
            let item = SuiteItem {
                suite: "mine".into(),
                task: task.flatten(),
                // The line number is filled in once the file's layout is known.
                sample_id: id.as_ref().map(id_text).unwrap_or_default(),
                messages,
                reference: reference_list.first().cloned(),
                reference_list,
                reward_metric: None,
                metadata: metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                    .collect(),
            };
            (Value::Object(m), item)
        })
}

/// A JSONL file: the items one per line, with blank lines between, LF or CRLF.
fn jsonl_doc() -> impl Strategy<Value = (Vec<u8>, Vec<SuiteItem>)> {
    (0usize..5)
        .prop_flat_map(|n| {
            let items: Vec<_> = (0..n).map(jsonl_item).collect();
            (items, prop::collection::vec(0usize..3, n + 1), any::<bool>())
        })
        .prop_map(|(items, blanks, crlf)| {
            let end = if crlf { "\r\n" } else { "\n" };
            let (mut text, mut out, mut line) = (String::new(), Vec::new(), 0);
            for (k, (value, mut item)) in items.into_iter().enumerate() {
                for _ in 0..blanks[k] {
                    text.push_str(if k % 2 == 0 { "" } else { "  \t" });
                    text.push_str(end);
                    line += 1;
                }
                line += 1;
                text.push_str(&value.to_string());
                text.push_str(end);
                if value.get("id").is_none() {
                    item.sample_id = format!("line-{line}");
                }
                out.push(item);
            }
            text.push_str(&" ".repeat(blanks[blanks.len() - 1]));
            (text.into_bytes(), out)
        })
}

fn crm_item(i: usize, pro: bool) -> impl Strategy<Value = (Value, SuiteItem)> {
    let answer = prop_oneof![
        Just(Value::Null),
        text().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::collection::vec(prop_oneof![Just(Value::Null), text().prop_map(Value::from), any::<u32>().prop_map(Value::from)], 1..3)
            .prop_map(Value::Array),
    ];
    (
        id(i),
        (text(), any::<bool>()),
        text(),
        (prop::option::of(text()), prop::option::of(text())),
        answer,
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(move |(idx, (task, as_type), query, (required, optional), answer, reward_metric, persona)| {
            let mut m = Map::new();
            m.insert("idx".into(), idx.clone());
            m.insert(if as_type { "type" } else { "task" }.into(), json!(task));
            m.insert("query".into(), json!(query));
            let mut md = Map::new();
            if let Some(r) = &required {
                md.insert("required".into(), json!(r));
            }
            if let Some(o) = &optional {
                md.insert("optional".into(), json!(o));
            }
            m.insert("metadata".into(), Value::Object(md));
            m.insert("answer".into(), answer.clone());
            if let Some(r) = &reward_metric {
                m.insert("reward_metric".into(), json!(r));
            }
            if let Some(p) = &persona {
                m.insert("persona".into(), json!(p));
            }
            let one = |v: &Value| match v {
                Value::Null => "None".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let answers: Vec<String> = match &answer {
                Value::Array(a) => a.iter().map(one).collect(),
                v => vec![one(v)],
            };
            let persona = if pro { persona } else { None };
            let mut metadata = BTreeMap::new();
            if let Some(p) = &persona {
                metadata.insert("persona".to_string(), p.clone());
            }
            let item = SuiteItem {
                suite: if pro { "crmarena_pro" } else { "crmarena" }.into(),
                task: Some(task),
                sample_id: id_text(&idx),
                messages: {
                    // System turn, the bundled worked exchanges, then the query.
                    let system = crmarena_system_prompt(required.as_deref().unwrap_or(""), optional.as_deref(), persona.as_deref());
                    let mut m = vec![ChatMessage::new("system", system)];
                    for (user, assistant) in CRMARENA_EXAMPLES {
                        m.push(ChatMessage::new("user", *user));
                        m.push(ChatMessage::new("assistant", *assistant));
                    }
                    m.push(ChatMessage::new("user", query.trim()));
                    m
                },
                reference: Some(answers.join(", ")),
                reference_list: answers,
                reward_metric,
                metadata,
            };
            (Value::Object(m), item)
        })
}

fn worf_item(i: usize) -> impl Strategy<Value = (Value, SuiteItem)> {
    let turn = |role: &'static str| text().prop_map(move |c| json!({"role": role, "content": c}));
    (id(i), turn("system"), turn("user"), turn("assistant"), prop::collection::vec((text(), text()), 0..2), any::<Index>(), prop::option::of(text()))
        .prop_map(|(id, sys, user, gold, extra, at, source)| {
            let content = |t: &Value| t["content"].as_str().unwrap().to_string();
            let mut turns = vec![sys.clone(), user.clone(), gold.clone()];
            // Extra turns (other roles, or repeats that must not replace the first of a role) anywhere.
            for (r, c) in extra {
                turns.insert(at.index(turns.len() + 1), json!({"role": format!("x{r}"), "content": c}));
            }
            turns.push(json!({"role": "user", "content": "a later user turn is ignored"}));
            let mut m = Map::new();
            m.insert("id".into(), id.clone());
            m.insert("conversations".into(), Value::Array(turns));
            let mut metadata = BTreeMap::new();
            if let Some(s) = source {
                m.insert("source".into(), json!(s));
                metadata.insert("source".to_string(), s);
            }
            let item = SuiteItem {
                suite: "worfbench".into(),
                task: Some("plan".into()),
                sample_id: id_text(&id),
                messages: vec![
                    ChatMessage::new("system", content(&sys)),
                    ChatMessage::new("user", format!("{WORFBENCH_TURN_PREFIX}{}", content(&user))),
                ],
                reference: Some(content(&gold)),
                reference_list: vec![content(&gold)],
                reward_metric: None,
                metadata,
            };
            (Value::Object(m), item)
        })
}

/// A JSON array file, compact or pretty.
fn array_doc(format: Format) -> impl Strategy<Value = (Vec<u8>, Vec<SuiteItem>)> {
    (0usize..4)
        .prop_flat_map(move |n| {
            let items: Vec<BoxedStrategy<(Value, SuiteItem)>> = (0..n)
                .map(|i| match format {
                    Format::Crm { pro } => crm_item(i, pro).boxed(),
                    _ => worf_item(i).boxed(),
                })
                .collect();
            (items, any::<bool>())
        })
        .prop_map(|(items, pretty)| {
            let (values, expected): (Vec<Value>, Vec<SuiteItem>) = items.into_iter().unzip();
            let v = Value::Array(values);
            let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
            (text.into_bytes(), expected)
        })
}

fn doc(format: Format) -> BoxedStrategy<(Vec<u8>, Vec<SuiteItem>)> {
    match format {
        Format::Jsonl => jsonl_doc().boxed(),
        _ => array_doc(format).boxed(),
    }
}

// ---- broken documents ----

/// A valid document with one value changed, its bytes mutated, or random bytes.
fn broken(format: Format) -> impl Strategy<Value = Vec<u8>> {
    let retyped = (doc(format), any::<Index>(), json_value(), any::<bool>(), any::<bool>()).prop_map(move |((bytes, _), at, new, remove, stray)| {
        let text = String::from_utf8(bytes).unwrap();
        let mut values: Vec<Value> = match format {
            Format::Jsonl => text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect(),
            _ => vec![serde_json::from_str(&text).unwrap()],
        };
        let total: usize = values.iter().map(json_count).sum();
        let mut n = at.index(total.max(1));
        for v in &mut values {
            if stray {
                if let Value::Object(m) = v {
                    m.insert("stray".into(), new.clone());
                }
            }
            if replace_nth(v, &mut n, &new, remove) {
                break;
            }
        }
        let lines: Vec<String> = values.iter().map(|v| if stray { serde_json::to_string_pretty(v).unwrap() } else { v.to_string() }).collect();
        lines.join("\n").into_bytes()
    });
    let mutated = (doc(format), edits(JSON_SNIPPETS)).prop_map(|((bytes, _), e): (_, Vec<Edit>)| mutate_bytes(&bytes, &e));
    prop_oneof![4 => retyped, 4 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..64)]
}

fn check_valid(format: Format, bytes: &[u8], want: &[SuiteItem]) -> Result<(), TestCaseError> {
    let dir = scratch_dir();
    let (_, got) = load(dir.path(), format, bytes);
    let got = got.map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(bytes))))?;
    prop_assert_eq!(got, want);
    Ok(())
}

fn check_broken(format: Format, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = scratch_dir();
    let (file, got) = load(dir.path(), format, bytes);
    match got {
        Ok(_) => Ok(()),
        Err(e) => check_error(&file, bytes, &e),
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn jsonl_files_load_to_their_items((bytes, want) in jsonl_doc()) {
        check_valid(Format::Jsonl, &bytes, &want)?;
    }

    #[test]
    fn broken_jsonl_never_panics_and_names_file_and_line(bytes in broken(Format::Jsonl)) {
        check_broken(Format::Jsonl, &bytes)?;
    }

    #[test]
    fn crmarena_files_load_to_their_items((pro, (bytes, want)) in any::<bool>().prop_flat_map(|pro| (Just(pro), doc(Format::Crm { pro })))) {
        check_valid(Format::Crm { pro }, &bytes, &want)?;
    }

    #[test]
    fn broken_crmarena_never_panics_and_names_file_and_line((pro, bytes) in any::<bool>().prop_flat_map(|pro| (Just(pro), broken(Format::Crm { pro })))) {
        check_broken(Format::Crm { pro }, &bytes)?;
    }

    #[test]
    fn worfbench_files_load_to_their_items((bytes, want) in doc(Format::Worf)) {
        check_valid(Format::Worf, &bytes, &want)?;
    }

    #[test]
    fn broken_worfbench_never_panics_and_names_file_and_line(bytes in broken(Format::Worf)) {
        check_broken(Format::Worf, &bytes)?;
    }
}
