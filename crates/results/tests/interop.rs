//! The dataset is readable by the Python data stack as is: pyarrow (Hive partitioning), pandas, and DuckDB.
//! Skipped with a notice when `python3 -c "import pyarrow"` fails (CI installs `pyarrow duckdb pandas`).

use std::process::Command;
use std::time::Duration;
use ttc_results::testutil::varied;
use ttc_results::{RecordSink, ResultsStore, RunMeta, WriterOptions};
use ttc_types::RecordStatus;

const SCRIPT: &str = r#"
import json, sys
import pyarrow.dataset as ds
root = sys.argv[1]
t = ds.dataset(root, format="parquet", partitioning="hive").to_table()
rows = sorted(t.to_pylist(), key=lambda r: (r["run_id"], r["sample_id"]))
keep = ["run_id", "sample_id", "policy", "status", "ttft_s", "e2e_s", "token_times_s", "metric_rouge_l",
        "metric_f1_graph", "ps_exit_layer_histogram", "ps_drafted_tokens", "prediction", "extra_metrics_json",
        "error_class", "attempts"]
out = {"rows": len(rows), "records": [{k: r[k] for k in keep} for r in rows]}
try:
    import pandas as pd
    out["pandas_rows"] = len(pd.read_parquet(root))
except ImportError:
    pass
try:
    import duckdb
    q = f"select count(*), count(distinct run_id), sum(output_tokens) from read_parquet('{root}/*/*.parquet', hive_partitioning=true)"
    out["duckdb"] = [int(x) for x in duckdb.sql(q).fetchall()[0]]
except ImportError:
    pass
print(json.dumps(out))
"#;

fn python_has_pyarrow() -> bool {
    Command::new("python3").args(["-c", "import pyarrow"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn pyarrow_pandas_and_duckdb_read_the_dataset() {
    if !python_has_pyarrow() {
        println!("NOTICE: skipping interop test: python3 with pyarrow not available (pip install pyarrow duckdb pandas)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ResultsStore::create(tmp.path()).unwrap();
    let mut expected = Vec::new();
    for run_id in ["run-a", "run-b"] {
        let meta = RunMeta {
            run_id: run_id.into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            config_hash: "h".into(),
            planned: None,
            project_version: "0.1.0".into(),
            extra: serde_json::Value::Null,
        };
        let opts = WriterOptions { flush_records: 17, flush_interval: Duration::from_secs(60), fsync: false };
        let mut w = store.start_run(meta, opts).unwrap();
        for r in varied(run_id, 60) {
            expected.push(r.clone());
            w.push(r).unwrap();
        }
        w.finish().unwrap();
    }
    expected.sort_by(|a, b| (&a.run_id, &a.sample_id).cmp(&(&b.run_id, &b.sample_id)));

    let out = Command::new("python3").args(["-c", SCRIPT]).arg(tmp.path()).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(v["rows"], 120);
    if let Some(n) = v.get("pandas_rows") {
        assert_eq!(n, 120);
    }
    if let Some(d) = v.get("duckdb") {
        let tokens: u64 = expected.iter().filter_map(|r| r.output_tokens.map(u64::from)).sum();
        assert_eq!(d, &serde_json::json!([120, 2, tokens]));
    }
    let rows = v["records"].as_array().unwrap();
    for (row, r) in rows.iter().zip(&expected) {
        assert_eq!(row["run_id"], r.run_id.as_str());
        assert_eq!(row["sample_id"], r.sample_id.as_str());
        assert_eq!(row["policy"], r.policy.as_str());
        assert_eq!(row["status"], if r.status == RecordStatus::Ok { "ok" } else { "error" });
        assert_eq!(row["ttft_s"].as_f64(), r.ttft_s);
        assert_eq!(row["e2e_s"].as_f64(), r.e2e_s);
        assert_eq!(row["attempts"], r.attempts);
        assert_eq!(row["error_class"].as_str(), r.error_class.as_deref());
        assert_eq!(row["prediction"], r.prediction.as_str());
        let times: Vec<f64> = row["token_times_s"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
        assert_eq!(times, r.token_times_s);
        assert_eq!(row["metric_rouge_l"].as_f64(), r.metrics.get("rouge_l").copied());
        assert_eq!(row["metric_f1_graph"].as_f64(), r.metrics.get("f1_graph").copied());
        assert_eq!(row["ps_drafted_tokens"].as_u64(), r.policy_stats.drafted_tokens);
        let hist = row["ps_exit_layer_histogram"].as_array().map(|h| h.iter().map(|x| x.as_u64().unwrap() as u32).collect());
        assert_eq!(hist, r.policy_stats.exit_layer_histogram);
        let extra: std::collections::BTreeMap<String, f64> =
            serde_json::from_str(row["extra_metrics_json"].as_str().unwrap()).unwrap();
        assert_eq!(extra, r.extra_metrics);
    }
    assert_eq!(rows.len(), expected.len());
}
