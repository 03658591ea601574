//! Bad input to sharded runs, through the real binary (`--dry-run`, no model): exit code 2 and one line naming the
//! flag, the variable or the mismatch, never a panic.

use std::path::Path;
use std::process::{Command, Output};
use ttc_results::{ResultsStore, RunMeta, Shard, ShardInfo, WriterOptions};

fn ttc(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(["run", "--dry-run", "--samples", "2"])
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "1")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .expect("run ttc")
}

fn usage_error(o: &Output, wants: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in wants {
        assert!(err.contains(w), "`{w}` not in: {err}");
    }
}

#[test]
fn bad_shard_flags_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    usage_error(&ttc(&["--shard", "3/2", "--run-id", "r"], dir), &["--shard", "3/2", "below the count"]);
    usage_error(&ttc(&["--shard", "0/0", "--run-id", "r"], dir), &["0/0", "at least 1"]);
    usage_error(&ttc(&["--shards", "2", "--run-id", "r"], dir), &["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "--shard I/2"]);
    usage_error(&ttc(&["--shard", "0/2"], dir), &["--run-id"]);
    usage_error(&ttc(&["--shard", "0/2", "--run-id", "r", "--until-ci-width", "0.1"], dir), &["--until-ci-width"]);
    usage_error(&ttc(&["--shard", "0/2", "--run-id", "r", "--start-at", "yesterday"], dir), &["--start-at", "RFC 3339"]);
    usage_error(&ttc(&["--run-id", "../x"], dir), &["--run-id", "invalid run id"]);
    let out = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(["run", "--dry-run", "--samples", "2", "--shards", "2", "--run-id", "r"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env_remove("JOB_COMPLETION_INDEX")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("shard 1/2 of a plan of"));
}

#[test]
fn a_shard_that_does_not_match_the_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let store = ResultsStore::create(&results).unwrap();
    let meta = RunMeta {
        run_id: "r".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "0123456789abcdef".into(),
        planned: Some(4),
        project_version: "0.1.0".into(),
        extra: serde_json::json!({}),
    };
    let info = ShardInfo { shard: Shard { index: 0, count: 2 }, planned_per_shard: vec![4, 4] };
    store.start_shard(meta, info, false, WriterOptions::default()).unwrap().finish().unwrap();
    let res = results.to_str().unwrap();
    let dir = tmp.path();
    usage_error(
        &ttc(&["--shard", "1/2", "--run-id", "r", "--results", res], dir),
        &["config hash mismatch", "shard 1/2", "shard 0/2", "0123456789abcdef"],
    );
    usage_error(&ttc(&["--shard", "1/3", "--run-id", "r", "--results", res], dir), &["shard count mismatch", "2 shards"]);
    usage_error(&ttc(&["--run-id", "r", "--results", res], dir), &["--run-id r", "exists", "--resume r"]);
}
