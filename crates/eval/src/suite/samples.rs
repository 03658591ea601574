//! The bundled sample suites (`data/samples/`, written by the team in the real formats), compiled in so the
//! binary runs anywhere without the data directory.

use super::Source;
use std::path::PathBuf;

macro_rules! sample {
    ($rel:literal) => {
        Source { path: PathBuf::from(concat!("data/samples/", $rel)), text: include_str!(concat!("../../../../data/samples/", $rel)).to_string() }
    };
}

pub(crate) fn crmarena() -> Source {
    sample!("crmarena/tasks_natural.json")
}

pub(crate) fn crmarena_pro() -> Source {
    sample!("crmarena-pro/crmarena_b2b_tasks.json")
}

/// (task, file) for each WorfBench sample task, sorted by task.
pub(crate) fn worfbench() -> Vec<(&'static str, Source)> {
    vec![
        ("alfworld", sample!("worfbench/gold_traj/alfworld/graph_eval.json")),
        ("lumos", sample!("worfbench/gold_traj/lumos/graph_eval.json")),
        ("os", sample!("worfbench/gold_traj/os/graph_eval.json")),
        ("toolbench", sample!("worfbench/gold_traj/toolbench/graph_eval.json")),
        ("wikihow", sample!("worfbench/gold_traj/wikihow/graph_eval.json")),
    ]
}
