//! Fixture results directories written with ttc-results' own writer.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;
use ttc_results::{RecordSink, ResultsStore, RunMeta, RunWriter, WriterOptions};
use ttc_types::Record;

pub fn meta(run_id: &str, started_at: &str, planned: Option<u64>) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started_at: started_at.into(),
        config_hash: format!("hash-{run_id}"),
        planned,
        project_version: "0.1.0".into(),
        extra: serde_json::json!({ "backend": "embedded", "model": "SmolLM2-135M", "weights": "q8_0" }),
    }
}

/// Synthetic records of the store's benchmark generator, relabelled for `run_id`.
pub fn records(run_id: &str, n: usize, seed: u64) -> Vec<Record> {
    ttc_results::testutil::synthetic(run_id, n, seed)
        .map(|mut r| {
            r.run_started_at = "2025-01-01T00:00:00Z".into();
            r
        })
        .collect()
}

/// Writes a finished run: its records in parts of `flush` records.
pub fn write_run(dir: &Path, meta: RunMeta, records: &[Record], flush: usize) {
    let store = ResultsStore::create(dir).unwrap();
    let mut w = store.start_run(meta, opts(flush)).unwrap();
    for r in records {
        w.push(r.clone()).unwrap();
    }
    w.finish().unwrap();
}

pub fn opts(flush: usize) -> WriterOptions {
    WriterOptions { flush_records: flush, flush_interval: Duration::from_secs(3600), ..Default::default() }
}

/// Reopens a run to append to it, as a resumed `ttc run` would.
pub fn resume(dir: &Path, run_id: &str) -> RunWriter {
    ResultsStore::open(dir).unwrap().resume_run(run_id, opts(1)).unwrap()
}

/// A record for an existing run with a recognisable sample id.
pub fn extra_record(run_id: &str, policy: &str, suite: &str, sample: &str) -> Record {
    let mut r = ttc_results::testutil::record(policy, suite, sample);
    r.run_id = run_id.into();
    r.algorithm = "baseline".into();
    r.start_offset_s = 100.0;
    r
}
