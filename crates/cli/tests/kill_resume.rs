//! Crash safety: `kill -9` a run after its first Parquet part is on disk, resume it with `--resume RUN_ID`, and
//! the final dataset holds every planned (policy, suite, sample) exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ARGS: &[&str] = &[
    "run", "--samples", "6", "--max-tokens", "6", "--policies", "baseline,early_exit_28", "--suites", "crmarena", "--quiet",
];

fn part_files(results: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for run in std::fs::read_dir(results).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(run.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("part-") && name.ends_with(".parquet") {
                out.push(f.path());
            }
        }
    }
    out
}

#[test]
fn kill_9_then_resume_stores_each_key_exactly_once() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let results = tempfile::tempdir().unwrap();
    let res = results.path().to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(ARGS)
        .args(["--results", res])
        // A part every 2 records, so the kill lands mid-run however fast this machine decodes.
        .env("TTC_FLUSH_RECORDS", "2")
        .current_dir(&repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while part_files(results.path()).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the run finished before a part was flushed; nothing to kill");
        assert!(started.elapsed() < Duration::from_secs(300), "no part file after 300 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL: no chance to flush or finish
    child.wait().unwrap();
    let store = ttc_results::ResultsStore::open(results.path()).unwrap();
    let crashed = store.load_last().unwrap();
    let before = crashed.records.len();
    assert!((1..12).contains(&before), "{before} records survived the kill");

    let out = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(ARGS)
        .args(["--results", res, "--resume", &crashed.run_id])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let run = ttc_results::ResultsStore::open(results.path()).unwrap().load_run(&crashed.run_id).unwrap();
    let keys: BTreeSet<_> = run.records.iter().map(|r| r.key()).collect();
    assert_eq!(keys.len(), run.records.len(), "a key was stored twice");
    assert_eq!(run.records.len(), 12, "2 policies x 6 samples, each exactly once");
    // What was measured before the crash is kept, not re-run.
    for r in &crashed.records {
        assert!(run.records.iter().any(|x| x.key() == r.key() && x.e2e_s == r.e2e_s), "{:?} was re-measured", r.key());
    }
}
