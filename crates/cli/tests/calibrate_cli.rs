//! `ttc calibrate` through the real binary: bad input is exit 2 with the problem and the fix, and a policy that
//! reads calibrated heads the model does not have is refused before the first request of `ttc serve`.

use std::process::{Command, Output};

fn ttc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttc")).args(args).env("RUST_BACKTRACE", "1").output().expect("run ttc")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_corpus_too_small_for_the_fit_names_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("tiny.jsonl");
    std::fs::write(&corpus, "{\"prompt\": \"Say hi.\"}\n{\"text\": \"Hello there.\"}\n").unwrap();
    let out = dir.path().join("h.safetensors");
    let o = ttc(&[
        "calibrate", "--no-bundled", "--corpus", corpus.to_str().unwrap(), "--layers", "28", "--max-new-tokens", "4",
        "--heldout", "0", "--out", out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("too few") && e.contains("at least 577"), "{e}");
    assert!(!e.contains("backtrace") && !out.exists(), "{e}");
}

#[test]
fn bad_flags_and_corpus_lines_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = ttc(&["calibrate", "--layers", "29-24"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--layers") && stderr(&o).contains("empty"), "{}", stderr(&o));
    let o = ttc(&["calibrate", "--layers", "31"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("31 is not in 1..=30"), "{}", stderr(&o));
    let corpus = dir.path().join("bad.jsonl");
    std::fs::write(&corpus, "{\"prompt\": \"ok\"}\n{\"nothing\": 1}\n").unwrap();
    let o = ttc(&["calibrate", "--no-bundled", "--corpus", corpus.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.jsonl:2") && stderr(&o).contains("`messages`, `prompt` or `text`"), "{}", stderr(&o));
}

#[test]
fn serve_refuses_a_calibrated_policy_without_heads() {
    // A copy of the model with no heads file beside it.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    let src = std::env::var("TTC_MODEL").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        ttc_assets::locate(ttc_assets::smollm2_gguf()).expect("run `ttc model pull` first")
    });
    std::fs::copy(src, &model).unwrap();
    let policies = dir.path().join("p.yaml");
    std::fs::write(&policies, "- name: ee\n  algorithm: early_exit_fixed\n  params: { exit_layer: 28, heads: calibrated }\n").unwrap();
    let o = ttc(&["serve", "--model", model.to_str().unwrap(), "--policies", policies.to_str().unwrap(), "--port", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("m.gguf.exit-heads.safetensors") && e.contains("ttc calibrate"), "{e}");
}
