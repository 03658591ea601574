//! The engine's layers import downward only (docs/architecture.md): the model core knows no engine, strategy or
//! measurement; the engine knows no strategy; strategies know no measurement or scheduler. A `use` that breaks
//! this fails here, naming the file and line.

use std::path::Path;

/// Modules each layer may not name (`crate::<module>`), outside comments.
const RULES: &[(&str, &[&str])] = &[
    ("src/model", &["engine", "strategy", "chooser", "speculative", "early_exit", "kv_shrink", "route", "logprobs", "fidelity", "scheduler", "calibrate", "bench", "kv_bench", "Engine"]),
    ("src/engine.rs", &["strategy", "chooser", "speculative", "early_exit", "kv_shrink", "route", "logprobs", "fidelity", "scheduler", "calibrate", "bench", "kv_bench"]),
    ("src/strategy", &["fidelity", "scheduler", "calibrate", "bench", "kv_bench"]),
];

fn sources(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(sources(&entry.unwrap().path()));
    }
    out
}

fn violations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (layer, forbidden) in RULES {
        let files = sources(&root.join(layer));
        assert!(!files.is_empty(), "no sources under {layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for m in *forbidden {
                    let named = format!("crate::{m}");
                    let hit = code.match_indices(&named).any(|(i, _)| {
                        !code[i + named.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    if hit {
                        found.push(format!("{}:{}: names {named}", file.display(), n + 1));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn layers_import_downward_only() {
    let v = violations(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(v.is_empty(), "layering broken:\n{}", v.join("\n"));
}

#[test]
fn a_model_core_file_naming_a_strategy_is_caught() {
    let root = std::env::temp_dir().join(format!("ttc-layering-{}", std::process::id()));
    std::fs::create_dir_all(root.join("src/model")).unwrap();
    std::fs::create_dir_all(root.join("src/strategy")).unwrap();
    std::fs::write(root.join("src/model/kv.rs"), "use crate::strategy::chooser::Chooser;\n// crate::fidelity in a comment\nuse crate::model_x;\n").unwrap();
    std::fs::write(root.join("src/engine.rs"), "use crate::model::kv;\n").unwrap();
    std::fs::write(root.join("src/strategy/mod.rs"), "use crate::engine::Engine;\n").unwrap();
    let v = violations(&root);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].ends_with("kv.rs:1: names crate::strategy"), "{v:?}");
}
