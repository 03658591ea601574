//! One policy model, one parser: every documented form of a policies file is accepted, and every bad case is
//! rejected with the same located message and exit code 2, by `ttc run --dry-run`, `ttc policies --config` and
//! `ttc serve --policies` alike (issue: the same file used to work for one command and fail for another).

use std::path::Path;
use std::process::{Command, Output};

fn ttc(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttc")).args(args).current_dir(cwd).output().expect("run ttc")
}

const GOOD: [(&str, &str); 3] = [
    ("document", "policies:\n  - name: baseline\n    algorithm: baseline\n  - name: ee\n    algorithm: early_exit_fixed\n    params: {exit_layer: 28}\n"),
    ("list", "- name: baseline\n  algorithm: baseline\n- name: ee\n  algorithm: early_exit_fixed\n  params: {exit_layer: 28}\n"),
    ("map", "baseline: {}\nee:\n  algorithm: early_exit_fixed\n  params: {exit_layer: 28}\n"),
];

/// (case, file text, what the error must say). Each error names the file, line and column.
const BAD: [(&str, &str, &str); 7] = [
    ("unknown algorithm", "- name: x\n  algorithm: speculative_ngarm\n", "p.yaml:1:3: [0]: policy `x`: algorithm: unknown algorithm `speculative_ngarm`"),
    ("unknown param", "x:\n  algorithm: early_exit_fixed\n  params: {exit_layr: 3}\n", "p.yaml:2:3: x: policy `x`: params.exit_layr: unknown field `exit_layr`"),
    ("wrong type", "policies:\n  - name: x\n    algorithm: early_exit_fixed\n    params: {exit_layer: high}\n", "p.yaml:2:5: policies[0]: policy `x`: params.exit_layer: invalid type: string \"high\""),
    ("out of range", "x:\n  algorithm: kv_shrink\n  params: {method: sinks, shrink_ratio: 1.5}\n", "p.yaml:2:3: x: policy `x`: params.shrink_ratio: must be in [0, 1), got 1.5"),
    ("missing algorithm name", "- algorithm: baseline\n", "missing field `name`"),
    ("router: unknown feature", "b: {}\nr:\n  algorithm: router\n  params:\n    rules: [{when: {prompt_len: \"> 9\"}, policy: b}]\n    default: b\n", "p.yaml:3:3: r: policy `r`: params.rules[0].when.prompt_len: unknown feature `prompt_len`"),
    ("router: unknown policy", "b: {}\nr:\n  algorithm: router\n  params: {default: fast}\n", "p.yaml:3:3: r: policy `r`: params.default: unknown policy `fast`"),
];

fn write_case(dir: &Path, policies: &str) {
    std::fs::write(dir.join("p.yaml"), policies).unwrap();
    std::fs::write(dir.join("run.yaml"), "policies: p.yaml\nsuites:\n  - name: worfbench\n    samples: 1\n").unwrap();
}

/// The three commands' verdicts on the policies file in `dir`: (exit code, stdout + stderr).
fn verdicts(dir: &Path) -> Vec<(&'static str, i32, String)> {
    // The bundled sample suites are compiled in, so the run needs no data here.
    let run = ttc(&["run", "--dry-run", "--config", "run.yaml", "--results", "out"], dir);
    let policies = ttc(&["policies", "--config", "p.yaml"], dir);
    // A missing model makes serve stop right after reading its policies: exit 2 for a bad file, and for a good
    // file an error about the model instead.
    let serve = ttc(&["serve", "--policies", "p.yaml", "--model", "no-such-model.gguf", "--port", "0"], dir);
    [("run --dry-run", run), ("policies --config", policies), ("serve --policies", serve)]
        .into_iter()
        .map(|(name, o)| {
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            (name, o.status.code().unwrap_or(-1), text)
        })
        .collect()
}

#[test]
fn every_form_is_accepted_by_every_command() {
    for (form, text) in GOOD {
        let dir = tempfile::tempdir().unwrap();
        write_case(dir.path(), text);
        for (cmd, code, out) in verdicts(dir.path()) {
            if cmd == "serve --policies" {
                assert!(out.contains("no-such-model.gguf") && !out.contains("p.yaml"), "{form}: {cmd}: {out}");
            } else {
                assert_eq!(code, 0, "{form}: {cmd}: {out}");
                assert!(out.contains("ee"), "{form}: {cmd} lists the policy: {out}");
            }
        }
        assert!(!dir.path().join("out").join("run_id").exists());
    }
}

#[test]
fn every_bad_case_is_rejected_identically_with_exit_2() {
    for (case, text, want) in BAD {
        let dir = tempfile::tempdir().unwrap();
        write_case(dir.path(), text);
        for (cmd, code, out) in verdicts(dir.path()) {
            assert_eq!(code, 2, "{case}: {cmd}: {out}");
            assert!(out.contains(want), "{case}: {cmd} must say `{want}`:\n{out}");
        }
    }
}
