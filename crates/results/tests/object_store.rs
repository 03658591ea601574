//! The store through its [`Storage`] trait: the same scenarios on a local directory and on an object store
//! (object_store's `InMemory`, the backend `s3://` uses minus the network), then what only an object store
//! needs: parts committed with conditional puts, and no partial part after a writer dies mid-write.

use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};
use futures::stream::BoxStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use ttc_results::storage::object::ObjectStorage;
use ttc_results::storage::Storage;
use ttc_results::testutil::varied;
use ttc_results::{RecordSink, ResultsStore, RunMeta, RunStatus, Shard, ShardInfo, WriterOptions};
use ttc_types::Record;

fn meta(run_id: &str, started_at: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started_at: started_at.into(),
        config_hash: "cfg".into(),
        planned: Some(10),
        project_version: "0.1.0".into(),
        extra: serde_json::Value::Null,
    }
}

fn opts(flush_records: usize) -> WriterOptions {
    WriterOptions { flush_records, flush_interval: Duration::from_secs(3600), fsync: false }
}

fn write_run(store: &ResultsStore, run_id: &str, records: &[Record], flush_records: usize) {
    let mut w = store.start_run(meta(run_id, "2025-01-01T00:00:00Z"), opts(flush_records)).unwrap();
    for r in records {
        w.push(r.clone()).unwrap();
    }
    w.finish().unwrap();
}

fn object_store(inner: Arc<dyn ObjectStore>) -> ResultsStore {
    ResultsStore::with_storage(Arc::new(ObjectStorage::new(inner, "bench/results", "memory://bucket/bench/results")))
}

fn names(store: &ResultsStore, run_id: &str) -> Vec<String> {
    store.run_files(run_id).unwrap().into_iter().map(|e| e.name).collect()
}

/// Runs `scenario` on a fresh local directory and on a fresh in-memory object store.
fn on_both(scenario: impl Fn(&ResultsStore)) {
    let tmp = tempfile::tempdir().unwrap();
    scenario(&ResultsStore::create(tmp.path()).unwrap());
    scenario(&object_store(Arc::new(InMemory::new())));
}

#[test]
fn round_trip_and_layout_are_the_same_on_both_backends() {
    on_both(|store| {
        let records = varied("r1", 30);
        write_run(store, "r1", &records, 16);
        let run = store.load_run("r1").unwrap();
        assert!(run.warnings.is_empty(), "{}: {:?}", store.dir().display(), run.warnings);
        assert_eq!(run.records, records);
        assert_eq!(run.manifest.unwrap().status, RunStatus::Finished);
        assert_eq!(names(store, "r1"), ["_run.json", "part-00000.parquet", "part-00001.parquet"]);
        assert_eq!(store.last_run_id().unwrap(), "r1");
        assert!(store.has_run("r1") && !store.has_run("r2"));
    });
}

#[test]
fn nothing_is_stored_before_a_flush_and_a_dropped_writer_resumes() {
    on_both(|store| {
        let records = varied("r1", 10);
        {
            let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), opts(4)).unwrap();
            for r in &records[..3] {
                w.push(r.clone()).unwrap();
            }
            assert_eq!(names(store, "r1"), ["_run.json"], "{}", store.dir().display());
            for r in &records[3..6] {
                w.push(r.clone()).unwrap();
            }
        } // dropped without finish: the buffer is flushed, the run stays `running`
        let run = store.load_run("r1").unwrap();
        assert_eq!((run.records.len(), run.manifest.unwrap().status), (6, RunStatus::Running));
        let keys = store.existing_keys("r1").unwrap();
        let mut w = store.resume_run("r1", opts(4)).unwrap();
        for r in records.iter().filter(|r| !keys.contains(&r.key())) {
            w.push(r.clone()).unwrap();
        }
        let m = w.finish().unwrap();
        assert_eq!((m.resumes, m.records_written), (1, 10));
        assert_eq!(store.load_run("r1").unwrap().records, records);
    });
}

#[test]
fn two_writers_on_one_part_index_never_overwrite_each_other() {
    on_both(|store| {
        write_run(store, "r1", &varied("r1", 2), 64);
        // Both resume at the same next index; the second commit finds the name taken and takes the next one.
        let mut a = store.resume_run("r1", opts(64)).unwrap();
        let mut b = store.resume_run("r1", opts(64)).unwrap();
        let (ra, rb) = (varied("r1", 6)[2..4].to_vec(), varied("r1", 6)[4..6].to_vec());
        ra.iter().for_each(|r| a.push(r.clone()).unwrap());
        rb.iter().for_each(|r| b.push(r.clone()).unwrap());
        a.flush().unwrap();
        b.flush().unwrap();
        assert_eq!(names(store, "r1"), ["_run.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]);
        let run = store.load_run("r1").unwrap();
        assert_eq!(run.records, varied("r1", 6), "{}: every writer's records, none lost", store.dir().display());
        drop((a, b));
    });
}

#[test]
fn compaction_and_shards_work_on_both_backends() {
    on_both(|store| {
        let records = varied("r1", 20);
        write_run(store, "r1", &records, 5);
        let report = store.compact("r1").unwrap();
        assert_eq!((report.parts_merged, report.records), (4, 20));
        assert_eq!(names(store, "r1"), ["_run.json", "part-00004.parquet"]);
        assert_eq!(store.load_run("r1").unwrap().records, records);

        let all = varied("s", 4);
        let info = |i| ShardInfo { shard: Shard::new(i, 2).unwrap(), planned_per_shard: vec![2, 2] };
        let mut w = store.start_shard(meta("s", "2025-01-02T00:00:00Z"), info(0), false, opts(64)).unwrap();
        all[..2].iter().for_each(|r| w.push(r.clone()).unwrap());
        w.finish().unwrap();
        let half = store.load_run("s").unwrap();
        assert_eq!(half.shard_gaps.len(), 1, "shard 1 never started");
        assert!(store.shard_conflict("s", Shard::new(0, 2).unwrap(), "cfg", false).is_some());
        let mut w = store.start_shard(meta("s", "2025-01-02T00:00:00Z"), info(1), false, opts(64)).unwrap();
        all[2..].iter().for_each(|r| w.push(r.clone()).unwrap());
        w.finish().unwrap();
        let whole = store.load_run("s").unwrap();
        assert!(whole.shard_gaps.is_empty() && whole.warnings.is_empty(), "{:?}", whole.warnings);
        assert_eq!(whole.records.len(), 4);
        assert_eq!(whole.manifest.unwrap().status, RunStatus::Finished);
        assert_eq!(store.list_runs().unwrap().iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["r1", "s"]);
    });
}

#[test]
fn unknown_runs_name_the_location() {
    on_both(|store| {
        write_run(store, "r1", &varied("r1", 1), 64);
        let e = format!("{:#}", store.load_run("nope").unwrap_err());
        assert!(e.contains("run `nope` not found") && e.contains(&store.dir().display().to_string()) && e.contains("r1"), "{e}");
    });
}

#[test]
fn conditional_put_refuses_to_overwrite_an_object() {
    let storage = ObjectStorage::new(Arc::new(InMemory::new()), "p", "memory://b/p");
    assert!(storage.put_new("run_id=r/part-00000.parquet", b"first", false).unwrap());
    assert!(!storage.put_new("run_id=r/part-00000.parquet", b"second", false).unwrap(), "the name is taken");
    let ttc_results::storage::Blob::Bytes(b) = storage.get("run_id=r/part-00000.parquet").unwrap() else { panic!("bytes") };
    assert_eq!(&b[..], b"first");
}

/// An object store whose process "dies" during the PUT of part number `crash_at` (counting from 0): the
/// request never completes, as when the writer is killed mid-upload. Everything else goes to `InMemory`.
#[derive(Debug)]
struct CrashingStore {
    inner: InMemory,
    parts_put: AtomicUsize,
    crash_at: usize,
    /// Refuse conditional puts, as a store without them does.
    no_conditional_put: bool,
}

impl std::fmt::Display for CrashingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrashingStore")
    }
}

#[async_trait::async_trait]
impl ObjectStore for CrashingStore {
    async fn put_opts(&self, location: &ObjectPath, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        if self.no_conditional_put && opts.mode == PutMode::Create {
            return Err(object_store::Error::NotImplemented { operation: "PutMode::Create".into(), implementer: self.to_string() });
        }
        if location.filename().is_some_and(|n| n.starts_with("part-"))
            && self.parts_put.fetch_add(1, Ordering::SeqCst) == self.crash_at
        {
            panic!("simulated crash during the upload of {location}");
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, l: &ObjectPath, o: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &ObjectPath, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &ObjectPath, to: &ObjectPath, o: object_store::CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

#[test]
fn a_writer_dying_mid_part_leaves_no_partial_part_and_the_run_resumes() {
    let inner = Arc::new(CrashingStore { inner: InMemory::new(), parts_put: AtomicUsize::new(0), crash_at: 2, no_conditional_put: false });
    let store = object_store(inner.clone());
    let records = varied("r1", 12);
    let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), opts(4)).unwrap();
    let mut failed = None;
    for (i, r) in records.iter().enumerate() {
        if let Err(e) = w.push(r.clone()) {
            failed = Some((i, format!("{e:#}")));
            break;
        }
    }
    let (at, e) = failed.expect("the third part's upload dies");
    assert_eq!(at, 11, "the 12th record fills the third part");
    assert!(e.contains("panicked"), "{e}");
    std::mem::forget(w); // the process is gone: no flush on drop

    // A reader (another process) sees the two whole parts, nothing of the third, and no warning.
    let reader = object_store(inner.clone());
    let run = reader.load_run("r1").unwrap();
    assert_eq!(run.records, records[..8], "whole parts only");
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(names(&reader, "r1"), ["_run.json", "part-00000.parquet", "part-00001.parquet"]);
    assert_eq!(run.manifest.unwrap().status, RunStatus::Running, "resumable");

    let keys = reader.existing_keys("r1").unwrap();
    let mut w = reader.resume_run("r1", opts(4)).unwrap();
    records.iter().filter(|r| !keys.contains(&r.key())).for_each(|r| w.push(r.clone()).unwrap());
    w.finish().unwrap();
    assert_eq!(reader.load_run("r1").unwrap().records, records);
}

#[test]
fn a_store_without_conditional_puts_is_a_clear_error_not_an_overwrite() {
    let inner = Arc::new(CrashingStore { inner: InMemory::new(), parts_put: AtomicUsize::new(0), crash_at: usize::MAX, no_conditional_put: true });
    let store = object_store(inner);
    let mut w = store.start_run(meta("r1", "2025-01-01T00:00:00Z"), opts(64)).unwrap();
    w.push(varied("r1", 1)[0].clone()).unwrap();
    let e = format!("{:#}", w.flush().unwrap_err());
    assert!(e.contains("memory://bucket/bench/results/run_id=r1/part-00000.parquet") && e.contains("conditional put"), "{e}");
    std::mem::forget(w);
}

#[test]
fn a_run_has_the_same_bytes_in_a_directory_and_in_a_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let local = ResultsStore::create(tmp.path()).unwrap();
    let bucket = Arc::new(ObjectStorage::new(Arc::new(InMemory::new()), "p", "memory://b/p"));
    let remote = ResultsStore::with_storage(bucket.clone());
    let records = varied("r1", 40);
    write_run(&local, "r1", &records, 16);
    write_run(&remote, "r1", &records, 16);
    assert_eq!(names(&local, "r1"), names(&remote, "r1"));
    for name in names(&local, "r1").iter().filter(|n| n.ends_with(".parquet")) {
        let on_disk = std::fs::read(local.run_dir("r1").join(name)).unwrap();
        let ttc_results::storage::Blob::Bytes(in_bucket) = bucket.get(&format!("run_id=r1/{name}")).unwrap() else { panic!("bytes") };
        assert_eq!(on_disk, in_bucket.to_vec(), "{name}");
    }
}
