//! Plans over the real datasets when `TTC_DATA_DIR` points at them (skipped otherwise): the eval crate's
//! loaders feed the plan, task filters and seeded draws hold, and the plan is the full product.

use std::collections::BTreeSet;
use std::path::PathBuf;
use ttc_runner::config::{Policy, ScoringConfig, SuiteConfig};
use ttc_runner::eval_adapter::EvalAdapter;
use ttc_runner::plan::{build_plan, SuiteLoader};

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TTC_DATA_DIR")?);
    dir.join("crmarena/tasks_natural.json").is_file().then_some(dir)
}

#[test]
fn real_suites_feed_a_deterministic_plan() {
    let Some(dir) = data_dir() else {
        eprintln!("TTC_DATA_DIR not set (or without crmarena): skipped");
        return;
    };
    let adapter = EvalAdapter::new(&ScoringConfig { embedder: None, ..Default::default() }).unwrap();
    let crm = SuiteConfig { tasks: vec!["knowledge_qa".into()], ..SuiteConfig::named("crmarena", 30) };
    let worf = SuiteConfig::named("worfbench", 18);
    let load = |s: &SuiteConfig, seed| adapter.load(s, seed, Some(&dir)).unwrap();
    let a = load(&crm, 1);
    assert_eq!(a.len(), 30);
    assert!(a.iter().all(|i| i.task.as_deref() == Some("knowledge_qa") && !i.messages.is_empty()));
    assert_eq!(a, load(&crm, 1), "same seed, same draw");
    assert_ne!(a, load(&crm, 2));
    let w = load(&worf, 1);
    let tasks: BTreeSet<_> = w.iter().filter_map(|i| i.task.clone()).collect();
    assert!(tasks.len() >= 9, "18 samples stratified over WorfBench's tasks: {tasks:?}");
    let policies = [Policy::baseline(), Policy { name: "other".into(), ..Policy::baseline() }];
    let plan = build_plan(&policies, vec![a, w], 1, &BTreeSet::new()).unwrap();
    assert_eq!(plan.entries.len(), 2 * 48);
}
