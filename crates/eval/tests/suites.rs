//! Suite loaders: bundled samples, the real data when present, task filters, sampling, and the errors a
//! malformed or missing file produces.

mod common;

use std::io::Write;
use ttc_eval::suite::{crmarena_system_prompt, list_suites, load_suite, CrmMode, DataSource, SuiteSpec};
use ttc_eval::EvalError;

fn samples() -> DataSource {
    DataSource { data_dir: None }
}

#[test]
fn bundled_samples_load_in_every_format() {
    let crm = load_suite(&SuiteSpec::new("crmarena"), &samples()).unwrap();
    assert_eq!(crm.len(), 16);
    let tasks: std::collections::BTreeSet<_> = crm.iter().filter_map(|i| i.task.clone()).collect();
    assert!(tasks.len() >= 9 && tasks.contains("knowledge_qa"));
    let first = &crm[0];
    assert_eq!((first.messages[0].role.as_str(), first.messages[1].role.as_str()), ("system", "user"));
    // aided mode: required and optional metadata are both in the system prompt.
    assert!(first.messages[0].content.contains("TrailRunner") && first.messages[0].content.contains("# Domain Details"));
    // A null gold is the literal "None".
    assert!(crm.iter().any(|i| i.reference.as_deref() == Some("None")));

    let pro = load_suite(&SuiteSpec::new("crmarena_pro"), &samples()).unwrap();
    let multi = pro.iter().find(|i| i.reference_list.len() == 2).unwrap();
    assert_eq!(multi.reference.as_deref(), Some("00TSm0000001TskAA, 00TSm0000001TskCC"));
    assert!(pro[0].messages[0].content.contains("detail-oriented"), "persona in the prompt");

    let worf = load_suite(&SuiteSpec::new("worfbench"), &samples()).unwrap();
    assert_eq!(worf.len(), 16);
    // System, the task's official one-shot example (user + Node/Edge workflow), then the task.
    assert!(worf.iter().all(|i| i.messages.len() == 4 && i.messages[3].content.starts_with("Now it's your turn.\n")));
    assert!(worf.iter().all(|i| ttc_eval::workflow::parse_workflow(&i.messages[2].content).is_some()));
    assert!(worf.iter().all(|i| ttc_eval::workflow::parse_workflow(i.reference.as_deref().unwrap()).is_some()));
}

#[test]
fn default_mode_leaves_out_the_optional_metadata() {
    let mut spec = SuiteSpec::new("crmarena");
    spec.crm_mode = CrmMode::Default;
    let crm = load_suite(&spec, &samples()).unwrap();
    assert!(!crm[0].messages[0].content.contains("# Domain Details"));
    let p = crmarena_system_prompt("req", Some("opt"), Some("You are calm."));
    assert!(p.find("You are calm.").unwrap() < p.find("req").unwrap() && p.ends_with("opt"));
}

#[test]
fn task_filter_and_stratified_sampling() {
    let mut spec = SuiteSpec::new("crmarena");
    spec.tasks = vec!["knowledge_qa".into(), "case_routing".into()];
    let items = load_suite(&spec, &samples()).unwrap();
    assert_eq!(items.len(), 6);
    spec.tasks = vec!["no_such_task".into()];
    let err = load_suite(&spec, &samples()).unwrap_err();
    assert!(matches!(err, EvalError::UnknownTask { .. }) && err.to_string().contains("knowledge_qa"), "{err}");

    let mut spec = SuiteSpec::new("worfbench");
    spec.limit = Some(5);
    spec.seed = 3;
    let a = load_suite(&spec, &samples()).unwrap();
    let tasks: std::collections::BTreeSet<_> = a.iter().filter_map(|i| i.task.clone()).collect();
    assert_eq!((a.len(), tasks.len()), (5, 5), "one per task first");
    assert_eq!(a, load_suite(&spec, &samples()).unwrap());
}

#[test]
fn real_data_loads_with_the_documented_counts() {
    let Some(dir) = common::real_data_dir() else {
        eprintln!("skipped: no data directory");
        return;
    };
    let src = DataSource { data_dir: Some(dir) };
    let all = list_suites(&src).unwrap();
    let count = |s: &str| all.iter().find(|x| x.suite == s).unwrap();
    assert_eq!(count("crmarena").items, 1170);
    assert_eq!(count("crmarena").tasks.len(), 9);
    assert!(count("crmarena").tasks.values().all(|n| *n == 130));
    assert_eq!(count("crmarena_pro").items, 2140);
    assert_eq!(count("crmarena_pro").tasks.len(), 22);
    assert_eq!(count("worfbench").items, 2146);
    assert_eq!(count("worfbench").tasks["alfworld"], 312);
    let worf = load_suite(&SuiteSpec::new("worfbench"), &src).unwrap();
    assert!(worf.iter().all(|i| ttc_eval::workflow::parse_workflow(i.reference.as_deref().unwrap()).is_some()), "all golds parse");
    let crm = load_suite(&SuiteSpec::new("crmarena"), &src).unwrap();
    assert_eq!(crm.iter().filter(|i| i.reference.as_deref() == Some("None")).count(), 39 * 5);
}

fn write(dir: &std::path::Path, rel: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
    p
}

#[test]
fn malformed_items_name_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let src = DataSource { data_dir: Some(tmp.path().to_path_buf()) };
    write(
        tmp.path(),
        "crmarena/tasks_natural.json",
        "[\n {\"idx\": 0, \"answer\": \"x\", \"type\": \"t\", \"metadata\": {}, \"query\": \"q\"},\n {\"idx\": 1, \"answer\": \"x\",\n  \"type\": \"t\", \"metadata\": {}, \"query\": 42}\n]",
    );
    let err = load_suite(&SuiteSpec::new("crmarena"), &src).unwrap_err().to_string();
    assert!(err.contains("tasks_natural.json:3:") && err.contains("field `query`") && err.contains("a number"), "{err}");

    write(tmp.path(), "crmarena/tasks_natural.json", "[{\"idx\": 0, \"answer\": \"x\"");
    let err = load_suite(&SuiteSpec::new("crmarena"), &src).unwrap_err().to_string();
    assert!(err.contains("tasks_natural.json:1:") && err.contains("not a JSON array"), "{err}");

    write(tmp.path(), "worfbench/gold_traj/os/graph_eval.json", "[{\"id\": \"os_1\", \"conversations\": [{\"role\": \"system\", \"content\": \"s\"}]}]");
    let err = load_suite(&SuiteSpec::new("worfbench"), &src).unwrap_err().to_string();
    assert!(err.contains("graph_eval.json:1:") && err.contains("no `user` turn"), "{err}");

    let jsonl = write(tmp.path(), "mine.jsonl", "{\"id\": 1, \"prompt\": \"hi\", \"reference\": \"yo\"}\n\n{\"id\": 2, \"reference\": \"x\"}\n");
    let mut spec = SuiteSpec::new("jsonl");
    spec.path = Some(jsonl.clone());
    let err = load_suite(&spec, &src).unwrap_err().to_string();
    assert!(err.contains("mine.jsonl:3:") && err.contains("field `prompt`"), "{err}");
    write(tmp.path(), "mine.jsonl", "{\"id\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"reference\": [\"a\", \"b\"], \"task\": \"t\"}\n{\"id\": 1, \"prompt\": \"x\"}\n");
    let err = load_suite(&spec, &src).unwrap_err().to_string();
    assert!(err.contains("mine.jsonl:2:") && err.contains("duplicate id"), "{err}");
    write(tmp.path(), "mine.jsonl", "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"reference\": [\"a\", \"b\"], \"metadata\": {\"k\": 1}}\n");
    let items = load_suite(&spec, &src).unwrap();
    assert_eq!((items[0].suite.as_str(), items[0].reference_list.len(), items[0].metadata["k"].as_str()), ("mine", 2, "1"));
}

#[test]
fn jsonl_with_a_byte_order_mark_loads_and_bad_utf8_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let src = DataSource::default();
    let mut spec = SuiteSpec::new("jsonl");
    let bom = tmp.path().join("bom.jsonl");
    std::fs::write(&bom, "\u{feff}{\"id\": \"a\", \"prompt\": \"hi\"}\n{\"id\": \"b\", \"prompt\": \"yo\"}\n").unwrap();
    spec.path = Some(bom);
    let ids: Vec<String> = load_suite(&spec, &src).unwrap().into_iter().map(|i| i.sample_id).collect();
    assert_eq!(ids, vec!["a", "b"]);

    let latin1 = tmp.path().join("latin1.jsonl");
    std::fs::write(&latin1, b"{\"id\": \"a\", \"prompt\": \"hi\"}\n{\"id\": \"b\", \"prompt\": \"caf\xE9\"}\n").unwrap();
    spec.path = Some(latin1.clone());
    let err = load_suite(&spec, &src).unwrap_err();
    // One message, once: no repeated cause when printed with its chain.
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        format!("{}:2: not valid UTF-8 (byte 27 of the line is 0xE9); save the file as UTF-8", latin1.display())
    );
}

#[test]
fn missing_files_name_the_path_and_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let src = DataSource { data_dir: Some(tmp.path().to_path_buf()) };
    let err = load_suite(&SuiteSpec::new("crmarena_pro"), &src).unwrap_err().to_string();
    assert!(err.contains("crmarena-pro/crmarena_b2b_tasks.json") && err.contains("--data-dir/TTC_DATA_DIR"), "{err}");
    let err = load_suite(&SuiteSpec::new("worfbench"), &src).unwrap_err().to_string();
    assert!(err.contains("worfbench/gold_traj") && err.contains("--data-dir"), "{err}");
    let mut spec = SuiteSpec::new("jsonl");
    spec.path = Some(tmp.path().join("nope.jsonl"));
    let err = load_suite(&spec, &src).unwrap_err().to_string();
    assert!(err.contains("nope.jsonl") && err.contains("--suite-file"), "{err}");
    assert!(load_suite(&SuiteSpec::new("nope"), &src).unwrap_err().to_string().contains("unknown suite"));
}

#[test]
fn suites_command_lists_samples_and_metrics() {
    let args = ttc_eval::cmd::SuitesOptions { data_dir: None, metrics: true, json: false };
    ttc_eval::cmd::run_suites(args).unwrap();
    let args = ttc_eval::cmd::SuitesOptions { data_dir: Some("/nonexistent/dir".into()), metrics: false, json: true };
    let err = ttc_eval::cmd::run_suites(args).unwrap_err();
    assert!(matches!(err.downcast_ref(), Some(ttc_eval::EvalError::MissingFile { .. })), "bad input: {err}");
    let err = err.to_string();
    assert!(err.contains("/nonexistent/dir/crmarena/tasks_natural.json") && err.contains("TTC_DATA_DIR"), "{err}");
}
