//! SQL over results: `dbt build` of the analytics/ project (dbt-duckdb, installed from scripts/test-requirements.txt)
//! over a store with an unsharded and a two-shard run, and its models agree with `ttc summary --format json` on the
//! same runs: counts, error rates, latency percentiles, output tokens and every quality mean.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use ttc_results::testutil::synthetic;
use ttc_results::{RecordSink, ResultsStore, RunMeta, Shard, ShardInfo, WriterOptions};
use ttc_types::{Record, RecordStatus};

fn meta(run_id: &str, started: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        started_at: started.into(),
        config_hash: "h".into(),
        planned: None,
        project_version: "0.1.0".into(),
        extra: serde_json::json!({}),
    }
}

fn records(run_id: &str) -> Vec<Record> {
    synthetic(run_id, 540, 7)
        .enumerate()
        .map(|(i, mut r)| {
            if i % 37 == 5 {
                r.status = RecordStatus::Error;
                r.error_class = Some("timeout".into());
            }
            if i % 50 == 3 {
                r.metrics.insert("rouge1".into(), f64::NAN); // a score that could not be computed
            }
            r.run_started_at = format!("2025-01-0{}T00:00:00Z", if run_id == "a" { 1 } else { 2 });
            r
        })
        .collect()
}

fn write_store(dir: &Path) {
    let store = ResultsStore::create(dir).unwrap();
    let opts = WriterOptions { flush_records: 100, flush_interval: Duration::from_secs(3600), fsync: false };
    let mut w = store.start_run(meta("a", "2025-01-01T00:00:00Z"), opts).unwrap();
    records("a").into_iter().for_each(|r| w.push(r).unwrap());
    w.finish().unwrap();
    // Run b by two shards, each with whole samples (every policy of a sample on one shard).
    let b = records("b");
    let part = |index: u32| -> Vec<Record> {
        b.iter().filter(|r| r.sample_id.ends_with(['0', '2', '4', '6', '8']) == (index == 0)).cloned().collect()
    };
    let sizes = vec![part(0).len() as u64, part(1).len() as u64];
    assert!(sizes.iter().all(|&n| n > 0));
    for index in 0..2u32 {
        let info = ShardInfo { shard: Shard { index, count: 2 }, planned_per_shard: sizes.clone() };
        let mut w = store.start_shard(meta("b", "2025-01-02T00:00:00Z"), info, false, opts).unwrap();
        part(index).into_iter().for_each(|r| w.push(r).unwrap());
        w.finish().unwrap();
    }
}

/// `ttc summary --format json` for one run, through the command's own code.
fn ttc_summary(dir: &Path, run: &str) -> Vec<Value> {
    let opts = ttc_results::SummaryOptions {
        results: dir.to_path_buf(),
        selection: ttc_results::RunSelection::Run(run.into()),
        format: ttc_results::cmd::TableFormat::Json,
        ..Default::default()
    };
    let text = ttc_results::cmd::summary::execute(&opts).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["groups"].as_array().unwrap().clone()
}

fn python() -> String {
    std::env::var("TTC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Rows of a query over the built DuckDB file, as JSON objects.
fn query(db: &Path, sql: &str) -> Vec<Value> {
    let script = "import duckdb, json, sys\n\
                  c = duckdb.connect(sys.argv[1], read_only=True)\n\
                  r = c.sql(sys.argv[2])\n\
                  print(json.dumps([dict(zip(r.columns, row)) for row in r.fetchall()]))";
    let out = Command::new(python()).args(["-c", script, db.to_str().unwrap(), sql]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[test]
fn dbt_models_build_and_agree_with_ttc_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    write_store(&results);
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../analytics");
    let db = tmp.path().join("ttc.duckdb");
    // dbt through the interpreter pip installed it into (scripts/test.sh: `python3 -m pip`), not a PATH lookup.
    let dbt = "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; cli()";
    let out = Command::new(python())
        .args(["-c", dbt, "build", "--project-dir", project.to_str().unwrap(), "--profiles-dir", project.to_str().unwrap()])
        .args(["--target-path", tmp.path().join("target").to_str().unwrap()])
        .args(["--log-path", tmp.path().join("logs").to_str().unwrap()])
        .args(["--vars", &format!("{{results: '{}'}}", results.display())])
        .env("TTC_DBT_DB", &db)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python()));
    let log = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("No module named 'dbt"), "dbt is not installed: pip install -r scripts/test-requirements.txt\n{err}");
    assert!(out.status.success(), "dbt build failed:\n{log}\n{err}");
    assert!(log.contains("ERROR=0"), "{log}");

    for run in ["a", "b"] {
        let groups = ttc_summary(&results, run);
        assert_eq!(groups.len(), 18, "6 policies x 3 suites");
        let rows = query(&db, &format!("select * from policy_summary where run_id = '{run}'"));
        let quality = query(&db, &format!("select * from policy_quality where run_id = '{run}'"));
        assert_eq!(rows.len(), groups.len());
        for g in &groups {
            let key = |v: &Value| (v["policy"].as_str().unwrap().to_string(), v["suite"].as_str().unwrap().to_string());
            let row = rows.iter().find(|r| key(r) == key(g)).unwrap_or_else(|| panic!("no SQL row for {:?}", key(g)));
            for (sql, ttc) in [("n", &g["n"]), ("n_ok", &g["n_ok"]), ("n_error", &g["n_error"]), ("output_tokens", &g["output_tokens"])] {
                assert_eq!(row[sql].as_u64(), ttc.as_u64(), "{run} {:?} {sql}", key(g));
            }
            for (sql, ttc) in [
                ("error_rate", &g["error_rate"]),
                ("ttft_p50_s", &g["ttft_s"]["p50"]),
                ("ttft_p95_s", &g["ttft_s"]["p95"]),
                ("e2e_p50_s", &g["e2e_s"]["p50"]),
                ("e2e_p95_s", &g["e2e_s"]["p95"]),
                ("e2e_p99_s", &g["e2e_s"]["p99"]),
                ("e2e_mean_s", &g["e2e_s"]["mean"]),
            ] {
                let (a, b) = (row[sql].as_f64().unwrap(), ttc.as_f64().unwrap());
                assert!(close(a, b), "{run} {:?} {sql}: SQL {a} vs ttc {b}", key(g));
            }
            let metrics = g["quality"].as_object().unwrap();
            let sql_metrics: Vec<&Value> = quality.iter().filter(|q| key(q) == key(g)).collect();
            assert_eq!(sql_metrics.len(), metrics.len(), "{run} {:?}: every quality metric", key(g));
            for q in sql_metrics {
                let name = q["metric"].as_str().unwrap();
                let t = &metrics[name];
                assert_eq!(q["n"].as_u64(), t["n"].as_u64(), "{name}: NaN scores left out on both sides");
                assert!(close(q["mean"].as_f64().unwrap(), t["value"].as_f64().unwrap()), "{run} {:?} {name}", key(g));
            }
        }
    }
    let trend = query(&db, "select * from run_trends where policy = 'baseline' and suite = 'crmarena' order by run_started_at");
    assert_eq!(trend.iter().map(|r| r["run_id"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(trend[0]["rouge_l"].is_f64() && trend[1]["rouge_l_change"].is_f64(), "{trend:?}");
    let kpis = query(&db, "select status, count(*) as n from kpi_status group by all order by all");
    assert_eq!(kpis.iter().map(|r| r["n"].as_u64().unwrap()).sum::<u64>(), 2 * 6 * 3, "2 runs x 6 policies x 3 KPIs");
}
