//! Main-view load time with a large run: writes N synthetic records (default 100,000) with ttc-results'
//! writer, serves the dashboard, and times the requests the page makes on load (runs, summary, KPIs,
//! trade-offs, distributions, first page of requests, trends) over real HTTP, cold (first read of the
//! Parquet parts) and warm (cached). Run in release mode:
//!
//!     cargo run --release -p ttc-dashboard --example bench_api -- [N]
//!
//! Figures are recorded in docs/dashboard.md.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ttc_results::{RecordSink, ResultsStore, RunMeta, WriterOptions};

/// The page's requests on load, in its order (the first three concurrently in the browser).
const MAIN_VIEW: &[&str] = &[
    "/api/runs",
    "/api/summary?run=bench",
    "/api/kpis?run=bench",
    "/api/tradeoffs?run=bench&latency=e2e_p95&metric=",
    "/api/distributions?run=bench&suite=",
    "/api/records?run=bench&policy=&suite=&status=&offset=0&limit=50",
    "/api/trends",
];

async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<usize> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await?;
    anyhow::ensure!(body.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    Ok(body.len())
}

async fn main_view(addr: std::net::SocketAddr) -> anyhow::Result<(Duration, usize)> {
    let t = Instant::now();
    let mut bytes = 0;
    for path in MAIN_VIEW {
        let t1 = Instant::now();
        let n = get(addr, path).await?;
        println!("  {path:<70} {:>7.1} ms {:>9} bytes", t1.elapsed().as_secs_f64() * 1e3, n);
        bytes += n;
    }
    Ok((t.elapsed(), bytes))
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let tmp = tempfile::tempdir()?;
    let store = ResultsStore::create(tmp.path())?;
    let meta = RunMeta {
        run_id: "bench".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "bench".into(),
        planned: Some(n as u64),
        project_version: env!("CARGO_PKG_VERSION").into(),
        extra: serde_json::Value::Null,
    };
    // Parts of 64 records, as the runner's default writer flushes them.
    let mut w = store.start_run(meta, WriterOptions { flush_records: 64, flush_interval: Duration::from_secs(3600), ..Default::default() })?;
    let t = Instant::now();
    for r in ttc_results::testutil::synthetic("bench", n, 7) {
        w.push(r)?;
    }
    w.finish()?;
    println!("wrote {n} records in {:.2} s", t.elapsed().as_secs_f64());

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(ttc_dashboard::serve(listener, tmp.path().to_path_buf(), None));
        println!("cold (reads the Parquet parts, summarises):");
        let (cold, bytes) = main_view(addr).await?;
        println!("warm (cached until the run's files change):");
        let (warm, _) = main_view(addr).await?;
        println!("main view with {n} records: cold {:.2} s, warm {:.3} s, {:.0} KiB of JSON", cold.as_secs_f64(), warm.as_secs_f64(), bytes as f64 / 1024.0);
        anyhow::Ok(())
    })
}
