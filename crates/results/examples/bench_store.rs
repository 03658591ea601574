//! Store and analysis throughput: writes N synthetic records (default 1,000,000) through `RunWriter`,
//! reads them back, and computes the full summary. Run in release mode:
//!
//!     cargo run --release -p ttc-results --example bench_store -- [N] [FLUSH_EVERY] [nosync]
//!
//! Figures are recorded in docs/results-schema.md.

use std::time::{Duration, Instant};
use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::testutil::synthetic;
use ttc_results::{render, RecordSink, ResultsStore, RunMeta, WriterOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let flush_every: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50_000);
    let fsync = args.next().as_deref() != Some("nosync");
    let tmp = tempfile::tempdir()?;
    let store = ResultsStore::create(tmp.path())?;

    let t = Instant::now();
    let records: Vec<_> = synthetic("bench", n, 7).collect();
    let generate = t.elapsed();

    let t = Instant::now();
    for chunk in records.chunks(flush_every) {
        ttc_results::columns::encode(chunk)?;
    }
    let encode = t.elapsed();

    let meta = RunMeta {
        run_id: "bench".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "bench".into(),
        planned: Some(n as u64),
        project_version: env!("CARGO_PKG_VERSION").into(),
        extra: serde_json::Value::Null,
    };
    let t = Instant::now();
    let mut w = store.start_run(meta, WriterOptions { flush_records: flush_every, flush_interval: Duration::from_secs(3600), fsync })?;
    for r in records {
        w.push(r)?;
    }
    w.finish()?;
    let write = t.elapsed();
    let bytes: u64 = std::fs::read_dir(store.run_dir("bench"))?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();

    let t = Instant::now();
    let run = store.load_run("bench")?;
    let read = t.elapsed();
    assert_eq!(run.records.len(), n);

    let t = Instant::now();
    let summary = summarize(&run.records, &AnalysisConfig::default());
    let table = render::summary_table(&summary);
    let analyse = t.elapsed();

    println!("{table}");
    println!("records: {n}, flush every {flush_every} (fsync {fsync}) -> {} parts, {:.1} MiB on disk", n.div_ceil(flush_every), bytes as f64 / 1048576.0);
    println!("generate (not part of the budget): {:.2} s", generate.as_secs_f64());
    println!("write through RunWriter:           {:.2} s (of which Arrow encoding {:.2} s)", write.as_secs_f64(), encode.as_secs_f64());
    println!("read back (load_run):              {:.2} s", read.as_secs_f64());
    println!("full summary (analysis + table):   {:.2} s ({} groups)", analyse.as_secs_f64(), summary.groups.len());
    Ok(())
}
