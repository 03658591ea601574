//! Sharded runs in the store: N shard writers fill one run, readers merge them and give the same answer as one
//! writer, a missing or short shard is named with the records it lacks, shards that cannot belong together are
//! refused, and compaction keeps each shard's parts apart.

use std::time::Duration;
use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::testutil::record;
use ttc_results::{RecordSink, ResultsStore, RunMeta, RunStatus, Shard, ShardInfo, WriterOptions};
use ttc_types::Record;

fn meta(run_id: &str, hash: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: hash.into(),
        planned: None,
        project_version: "0.1.0".into(),
        extra: serde_json::json!({}),
    }
}

fn opts() -> WriterOptions {
    WriterOptions { flush_records: 3, flush_interval: Duration::from_secs(3600), fsync: false }
}

/// Two policies on 10 samples, with quality values that differ per sample (so the bootstrap has work to do).
fn records(run_id: &str) -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0..10 {
        for (p, shift) in [("baseline", 0.0), ("spec", 0.05)] {
            let mut r = record(p, "crm", &format!("s{i}"));
            r.run_id = run_id.into();
            r.metrics.insert("rouge_l".into(), (i as f64 * 0.37).fract() + shift);
            r.e2e_s = Some(0.1 * (i + 1) as f64);
            out.push(r);
        }
    }
    out
}

/// Shard of a record: even samples on shard 0, odd on shard 1 (every policy of a sample together).
fn shard_of(r: &Record) -> u32 {
    r.sample_id[1..].parse::<u32>().unwrap() % 2
}

fn write_shard(store: &ResultsStore, run_id: &str, index: u32, rs: &[Record], hash: &str) -> ttc_results::RunManifest {
    let info = ShardInfo { shard: Shard { index, count: 2 }, planned_per_shard: vec![10, 10] };
    let mut w = store.start_shard(meta(run_id, hash), info, false, opts()).unwrap();
    // Stored in another order than the unsharded run: completion order differs between machines.
    for r in rs.iter().rev().filter(|r| shard_of(r) == index) {
        w.push(r.clone()).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn two_shards_read_as_one_run_with_the_same_summary() {
    // The same run (same id: the bootstrap seeds derive from it) written by one process, and by two shards.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let single = ResultsStore::create(one.path()).unwrap();
    let mut w = single.start_run(meta("sh", "h"), opts()).unwrap();
    for r in records("sh") {
        w.push(r).unwrap();
    }
    w.finish().unwrap();
    let store = ResultsStore::create(two.path()).unwrap();
    let sharded = records("sh");
    write_shard(&store, "sh", 1, &sharded, "h");
    write_shard(&store, "sh", 0, &sharded, "h");

    let names: Vec<String> = std::fs::read_dir(store.run_dir("sh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("part-"))
        .collect();
    assert_eq!(names.len(), 2, "one manifest per shard, no _run.json: {names:?}");
    let run = store.load_run("sh").unwrap();
    assert!(run.warnings.is_empty() && run.shard_gaps.is_empty(), "{:?}", run.warnings);
    run.require_complete(false).unwrap();
    let m = run.manifest.clone().unwrap();
    assert_eq!((m.status, m.records_written, m.meta.planned), (RunStatus::Finished, 20, Some(20)));
    let listed = store.list_runs().unwrap();
    assert!(listed.iter().any(|r| r.run_id == "sh" && r.manifest.is_some()), "the run list merges the shard manifests");

    let whole = single.load_run("sh").unwrap();
    assert_ne!(whole.records, run.records, "stored in another order");
    let cfg = AnalysisConfig::default();
    let a = serde_json::to_value(summarize(&whole.records, &cfg)).unwrap();
    let b = serde_json::to_value(summarize(&run.records, &cfg)).unwrap();
    assert!(a["groups"][0]["quality"]["rouge_l"]["hi"].as_f64().unwrap() > a["groups"][0]["quality"]["rouge_l"]["lo"].as_f64().unwrap());
    assert_eq!(a, b, "the same records stored by two shards in another order summarise identically");
    let cmp = |recs: &[Record]| {
        let (x, y): (Vec<Record>, Vec<Record>) = recs.iter().cloned().partition(|r| r.policy == "baseline");
        serde_json::to_value(ttc_results::compare::compare("a", &x, "b", &y, false, &Default::default())).unwrap()
    };
    assert_eq!(cmp(&whole.records), cmp(&run.records), "paired comparison independent of storage order");
}

#[test]
fn a_missing_or_short_shard_is_named_with_its_missing_records() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let rs = records("sh");
    write_shard(&store, "sh", 0, &rs, "h");
    let run = store.load_run("sh").unwrap();
    assert_eq!(run.shard_gaps.len(), 1);
    let err = run.require_complete(false).unwrap_err().to_string();
    assert!(err.contains("shard 1/2 is missing") && err.contains("10 missing") && err.contains("--partial"), "{err}");
    assert!(run.warnings.iter().any(|w| w.contains("shard 1/2")), "{:?}", run.warnings);
    run.require_complete(true).unwrap();
    assert_eq!(run.manifest.unwrap().status, RunStatus::Running, "not finished while a shard is missing");

    // Shard 1 crashes after its first part: 3 of its 10 records are stored.
    let info = ShardInfo { shard: Shard { index: 1, count: 2 }, planned_per_shard: vec![10, 10] };
    let mut w = store.start_shard(meta("sh", "h"), info.clone(), false, opts()).unwrap();
    for r in rs.iter().filter(|r| shard_of(r) == 1).take(3) {
        w.push(r.clone()).unwrap();
    }
    std::mem::forget(w); // a crash: no finish, no drop-flush
    let gaps = store.load_run("sh").unwrap().shard_gaps;
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].stored, gaps[0].missing()), (3, 7));
    assert!(gaps[0].to_string().contains("running or interrupted"), "{}", gaps[0]);

    // Resumed, it continues its own part numbering and completes the run.
    assert!(store.shard_conflict("sh", info.shard, "h", false).unwrap().contains("--resume sh"));
    assert_eq!(store.shard_conflict("sh", info.shard, "h", true), None);
    let mut w = store.start_shard(meta("sh", "h"), info, true, opts()).unwrap();
    for r in rs.iter().filter(|r| shard_of(r) == 1).skip(3) {
        w.push(r.clone()).unwrap();
    }
    let m = w.finish().unwrap();
    assert_eq!((m.resumes, m.records_written), (1, 10));
    let run = store.load_run("sh").unwrap();
    assert!(run.shard_gaps.is_empty() && run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(run.records.len(), 20);
}

#[test]
fn shards_that_do_not_belong_together_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    write_shard(&store, "sh", 0, &records("sh"), "h1");
    let e = store.shard_conflict("sh", Shard { index: 1, count: 2 }, "h2", false).unwrap();
    assert!(e.contains("config hash mismatch") && e.contains("h1") && e.contains("h2") && e.contains("shard 0/2"), "{e}");
    let e = store.shard_conflict("sh", Shard { index: 1, count: 3 }, "h1", false).unwrap();
    assert!(e.contains("shard count mismatch") && e.contains("2 shards"), "{e}");
    assert_eq!(store.shard_conflict("sh", Shard { index: 1, count: 2 }, "h1", false), None);
    assert_eq!(store.shard_conflict("new", Shard { index: 0, count: 2 }, "h1", false), None);
    let mut w = store.start_run(meta("plain", "h1"), opts()).unwrap();
    w.push(records("plain").remove(0)).unwrap();
    w.finish().unwrap();
    let e = store.shard_conflict("plain", Shard { index: 0, count: 2 }, "h1", false).unwrap();
    assert!(e.contains("without shards"), "{e}");
}

#[test]
fn compaction_merges_each_shard_into_its_own_part() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let rs = records("sh");
    write_shard(&store, "sh", 0, &rs, "h");
    write_shard(&store, "sh", 1, &rs, "h");
    let before = store.load_run("sh").unwrap().records.len();
    let report = store.compact("sh").unwrap();
    assert_eq!(report.records, 20);
    let mut parts: Vec<String> = std::fs::read_dir(store.run_dir("sh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    parts.sort();
    assert_eq!(parts, vec!["part-shard0of2-00004.parquet", "part-shard1of2-00004.parquet"]);
    let run = store.load_run("sh").unwrap();
    assert_eq!(run.records.len(), before);
    assert!(run.shard_gaps.is_empty(), "shard counts survive compaction: {:?}", run.warnings);
}
