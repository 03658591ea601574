//! Store behaviour: round trip, atomic parts, crash leftovers, corrupt parts, compaction, resume, errors.

use std::fs;
use std::path::Path;
use std::time::Duration;
use ttc_results::testutil::varied;
use ttc_results::{RecordSink, ResultsStore, RunMeta, RunSelection, RunStatus, WriterOptions};
use ttc_types::Record;

fn meta(run_id: &str, started_at: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started_at: started_at.into(),
        config_hash: "cfg".into(),
        planned: Some(150),
        project_version: "0.1.0".into(),
        extra: serde_json::json!({"backend": "embedded"}),
    }
}

fn write_run(store: &ResultsStore, run_id: &str, records: &[Record], flush_records: usize) {
    let opts = WriterOptions { flush_records, flush_interval: Duration::from_secs(3600), fsync: true };
    let mut w = store.start_run(meta(run_id, "2025-01-01T00:00:00Z"), opts).unwrap();
    for r in records {
        w.push(r.clone()).unwrap();
    }
    w.finish().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}

#[test]
fn round_trip_preserves_every_field_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let records = varied("r1", 150);
    write_run(&store, "r1", &records, 64);
    let run = store.load_run("r1").unwrap();
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(run.records, records);
    let m = run.manifest.unwrap();
    assert_eq!((m.status, m.records_written, m.meta.planned), (RunStatus::Finished, 150, Some(150)));
}

#[test]
fn flushes_by_count_into_atomic_parts_with_no_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let opts = WriterOptions { flush_records: 64, flush_interval: Duration::from_secs(3600), fsync: true };
    let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), opts).unwrap();
    let records = varied("r1", 150);
    for r in &records[..63] {
        w.push(r.clone()).unwrap();
    }
    let dir = store.run_dir("r1");
    assert_eq!(names(&dir), vec!["_run.json"], "nothing on disk before the threshold");
    w.push(records[63].clone()).unwrap();
    assert_eq!(names(&dir), vec!["_run.json", "part-00000.parquet"]);
    assert_eq!(w.buffered(), 0);
    for r in &records[64..] {
        w.push(r.clone()).unwrap();
    }
    // 150 = 64 + 64 + 22 buffered; a reader now sees exactly the flushed 128.
    assert_eq!(store.load_run("r1").unwrap().records.len(), 128);
    assert_eq!(store.load_run("r1").unwrap().manifest.unwrap().status, RunStatus::Running);
    w.finish().unwrap();
    assert_eq!(names(&dir), vec!["_run.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]);
}

#[test]
fn flushes_by_time() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let opts = WriterOptions { flush_records: 1000, flush_interval: Duration::from_millis(0), fsync: false };
    let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), opts).unwrap();
    for r in varied("r1", 3) {
        w.push(r).unwrap();
    }
    assert_eq!(w.buffered(), 0);
    assert_eq!(store.load_run("r1").unwrap().records.len(), 3);
}

#[test]
fn dropped_writer_keeps_records_and_leaves_run_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let records = varied("r1", 10);
    {
        let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), WriterOptions::default()).unwrap();
        for r in &records[..6] {
            w.push(r.clone()).unwrap();
        }
    } // dropped without finish (error path)
    let run = store.load_run("r1").unwrap();
    assert_eq!(run.records.len(), 6);
    assert_eq!(run.manifest.unwrap().status, RunStatus::Running);

    let keys = store.existing_keys("r1").unwrap();
    assert_eq!(keys.len(), 6);
    assert!(keys.contains(&("baseline".to_string(), "crm".to_string(), "s0".to_string())));

    let mut w = store.resume_run("r1", WriterOptions::default()).unwrap();
    for r in records.iter().filter(|r| !keys.contains(&r.key())) {
        w.push(r.clone()).unwrap();
    }
    let m = w.finish().unwrap();
    assert_eq!((m.resumes, m.records_written, m.status), (1, 10, RunStatus::Finished));
    assert_eq!(names(&store.run_dir("r1")), vec!["_run.json", "part-00000.parquet", "part-00001.parquet"]);
    assert_eq!(store.load_run("r1").unwrap().records, records);
}

#[test]
fn writer_rejects_records_of_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), WriterOptions::default()).unwrap();
    let err = w.push(varied("other", 1).remove(0)).unwrap_err().to_string();
    assert!(err.contains("record for run `other`") && err.contains("run `r1`"), "{err}");
}

#[test]
fn corrupt_and_truncated_parts_are_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let records = varied("r1", 30);
    write_run(&store, "r1", &records, 10);
    let dir = store.run_dir("r1");
    let p1 = dir.join("part-00001.parquet");
    let bytes = fs::read(&p1).unwrap();
    fs::write(&p1, &bytes[..bytes.len() / 2]).unwrap(); // truncated
    fs::write(dir.join("part-00002.parquet"), b"not parquet at all").unwrap(); // garbage
    fs::write(dir.join(".part-00003.parquet.tmp"), b"half").unwrap(); // interrupted flush

    let run = store.load_run("r1").unwrap();
    assert_eq!(run.records, records[..10].to_vec());
    let w = run.warnings.join("\n");
    assert!(w.contains("part-00001.parquet") && w.contains("part-00002.parquet"), "{w}");
    assert!(w.contains("skipped corrupt part"), "{w}");
    assert!(w.contains(".part-00003.parquet.tmp"), "{w}");
    assert_eq!(store.existing_keys("r1").unwrap().len(), 10);
}

#[test]
fn compaction_merges_atomically_and_survives_a_crash_before_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let records = varied("r1", 50);
    write_run(&store, "r1", &records, 10);
    let dir = store.run_dir("r1");
    let before: Vec<(String, Vec<u8>)> = names(&dir)
        .into_iter()
        .filter(|n| n.starts_with("part-"))
        .map(|n| (n.clone(), fs::read(dir.join(&n)).unwrap()))
        .collect();
    assert_eq!(before.len(), 5);

    let report = store.compact("r1").unwrap();
    assert_eq!((report.parts_merged, report.records), (5, 50));
    assert_eq!(names(&dir), vec!["_run.json", "part-00005.parquet"]);
    assert_eq!(store.load_run("r1").unwrap().records, records);

    // A crash between committing the merged part and deleting the old ones leaves both: no duplicates.
    for (n, b) in &before {
        fs::write(dir.join(n), b).unwrap();
    }
    let run = store.load_run("r1").unwrap();
    assert_eq!(run.records, records);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(store.existing_keys("r1").unwrap().len(), 50);
    // Compacting again cleans the leftovers up.
    store.compact("r1").unwrap();
    assert_eq!(names(&dir), vec!["_run.json", "part-00005.parquet"]);
    // A resumed writer continues after the merged part.
    let mut w = store.resume_run("r1", WriterOptions::default()).unwrap();
    let mut extra = varied("r1", 51).pop().unwrap();
    extra.sample_id = "late".into();
    w.push(extra.clone()).unwrap();
    w.finish().unwrap();
    assert_eq!(names(&dir), vec!["_run.json", "part-00005.parquet", "part-00006.parquet"]);
    assert_eq!(store.load_run("r1").unwrap().records.len(), 51);
}

#[test]
fn compaction_quarantines_corrupt_parts_instead_of_deleting_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    write_run(&store, "r1", &varied("r1", 30), 10);
    let dir = store.run_dir("r1");
    fs::write(dir.join("part-00001.parquet"), b"garbage").unwrap();
    let report = store.compact("r1").unwrap();
    assert_eq!((report.parts_merged, report.records, report.quarantined.len()), (2, 20, 1));
    assert_eq!(names(&dir), vec![".corrupt-part-00001.parquet", "_run.json", "part-00003.parquet"]);
    let run = store.load_run("r1").unwrap();
    assert_eq!((run.records.len(), run.warnings.len()), (20, 0));
}

#[test]
fn runs_are_ordered_by_start_and_selectable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    for (id, at) in [("b", "2025-03-01T00:00:00Z"), ("a", "2025-04-01T00:00:00Z"), ("c", "2025-01-01T00:00:00Z")] {
        let mut w = store.start_run(meta(id, at), WriterOptions::default()).unwrap();
        w.push(varied(id, 1).remove(0)).unwrap();
        w.finish().unwrap();
    }
    let ids: Vec<String> = store.list_runs().unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(ids, vec!["c", "b", "a"]);
    assert_eq!(store.last_run_id().unwrap(), "a");
    assert_eq!(store.load(&RunSelection::All).unwrap().len(), 3);
    assert_eq!(store.load(&RunSelection::Last).unwrap()[0].run_id, "a");
    assert_eq!(store.load(&RunSelection::Run("b".into())).unwrap()[0].records[0].run_id, "b");
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = ResultsStore::open(&missing).err().unwrap().to_string();
    assert!(err.contains("does not exist") && err.contains("nope"), "{err}");

    let store = ResultsStore::open(tmp.path()).unwrap();
    let err = store.load_last().unwrap_err().to_string();
    assert!(err.contains("no runs in results directory"), "{err}");
    let err = store.load_run("zzz").unwrap_err().to_string();
    assert!(err.contains("no runs"), "{err}");

    write_run(&store, "r1", &varied("r1", 2), 10);
    let err = store.load_run("zzz").unwrap_err().to_string();
    assert!(err.contains("run `zzz` not found") && err.contains("r1"), "{err}");
    let err = store.load_run("../etc").unwrap_err().to_string();
    assert!(err.contains("invalid run id"), "{err}");
    let err = store.start_run(meta("r1", "x"), WriterOptions::default()).err().unwrap().to_string();
    assert!(err.contains("already exists"), "{err}");
}

/// A key repeated within one phase is suspicious (a superseded part); the same sample sent once per load phase,
/// as sweeps and capacity probes do, is not.
#[test]
fn duplicate_keys_are_counted_within_a_phase() {
    use ttc_results::store::duplicate_warning;
    use ttc_results::testutil::record;
    let probe = |phase: &str, sent: f64| {
        let mut r = record("baseline", "worf", "s0");
        r.load.phase = Some(phase.into());
        r.start_offset_s = sent;
        r
    };
    let probes = [probe("capacity-01", 1.0), probe("capacity-01", 2.5), probe("capacity-02", 1.0)];
    assert_eq!(duplicate_warning("r", &probes), None);
    let copied = [probe("capacity-01", 1.0), probe("capacity-01", 1.0)];
    assert!(duplicate_warning("r", &copied).is_some());
    let twice = [record("baseline", "worf", "s0"), record("baseline", "worf", "s0"), probe("capacity-01", 1.0)];
    assert_eq!(
        duplicate_warning("r", &twice).as_deref(),
        Some("run r: 1 (policy, suite, sample) keys appear more than once")
    );
}
