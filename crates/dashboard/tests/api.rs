//! The JSON API against what ttc-results computes from the same store: summaries, KPIs, Pareto fronts,
//! percentiles, paging, errors, empty and corrupt stores, and the live event stream.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use ttc_dashboard::{app_state, router, LiveEvent, LiveFeed};
use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::kpi::{evaluate, KpiFile};
use ttc_results::{RecordSink, ResultsStore};
use ttc_types::timing::percentile_sorted;
use ttc_types::RecordStatus;

async fn get(dir: &Path, uri: &str) -> (StatusCode, Value) {
    let app = router(app_state(dir, None, None).unwrap());
    let res = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}")))
}

/// Two runs: `old` (one suite, corrupt extra part) and `new` (600 synthetic records over 3 suites).
fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut old = common::records("old", 120, 3);
    for r in &mut old {
        r.suite = "crmarena".into();
        r.sample_id = format!("{}-{}", r.sample_id, r.start_offset_s);
    }
    common::write_run(tmp.path(), common::meta("old", "2025-01-01T00:00:00Z", Some(120)), &old, 50);
    std::fs::write(tmp.path().join("run_id=old/part-00099.parquet"), b"PAR1 this is not parquet").unwrap();
    common::write_run(tmp.path(), common::meta("new", "2025-02-01T00:00:00Z", Some(600)), &common::records("new", 600, 1), 64);
    tmp
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

#[tokio::test]
async fn runs_list_newest_first_with_counts_and_warnings() {
    let tmp = fixture();
    let (status, body) = get(tmp.path(), "/api/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["exists"], true);
    let runs = body["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect::<Vec<_>>(), ["new", "old"]);
    let new = &runs[0];
    assert_eq!(new["n_records"], 600);
    assert_eq!(new["planned"], 600);
    assert_eq!(new["status"], "finished");
    assert_eq!(new["model"], "SmolLM2-135M");
    assert_eq!(new["backend"], "embedded");
    assert_eq!(new["suites"], serde_json::json!(["crmarena", "jsonl", "worfbench"]));
    assert_eq!(new["policies"].as_array().unwrap().len(), 6);
    // synthetic() marks every 997th record as an error: record 0 only.
    assert_eq!(new["n_errors"], 1);
    assert!(new["warnings"].as_array().unwrap().is_empty());
    let warnings = runs[1]["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("part-00099.parquet")), "{warnings:?}");
    assert_eq!(runs[1]["n_records"], 120, "the readable parts still count");
}

#[tokio::test]
async fn summary_equals_the_store_summary() {
    let tmp = fixture();
    let run = ResultsStore::open(tmp.path()).unwrap().load_run("new").unwrap();
    let expected = summarize(&run.records, &AnalysisConfig::default());
    let (status, body) = get(tmp.path(), "/api/summary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["runs"], serde_json::json!(["new"]), "default: the latest run");
    assert_eq!(body["n_records"], 600);
    assert_eq!(body["groups"], to_value(&expected.groups));
    assert_eq!(body["pareto"], to_value(&expected.pareto));
    assert!(body["quality_metrics"].as_array().unwrap().contains(&Value::from("rouge_l")));

    // Several runs: each run's groups, and the corrupt part reported.
    let (_, both) = get(tmp.path(), "/api/summary?run=old,new").await;
    let n_groups = both["groups"].as_array().unwrap().len();
    assert_eq!(n_groups, expected.groups.len() + 6, "6 policies x 1 suite in `old`");
    assert_eq!(both["n_records"], 720);
    assert!(both["warnings"][0].as_str().unwrap().starts_with("old: skipped corrupt part"), "{}", both["warnings"]);
}

#[tokio::test]
async fn kpis_equal_the_gate() {
    let tmp = fixture();
    let run = ResultsStore::open(tmp.path()).unwrap().load_run("new").unwrap();
    let report = evaluate(&KpiFile::defaults(), "new", &run.records, None);
    let (status, body) = get(tmp.path(), "/api/kpis?run=new").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), report.results.len());
    for (got, want) in results.iter().zip(&report.results) {
        let mut want = to_value(want);
        want["run_id"] = "new".into();
        assert_eq!(got, &want);
    }
    let count = |o: ttc_results::kpi::Outcome| report.count(o);
    assert_eq!(body["failed"], count(ttc_results::kpi::Outcome::Fail));
    assert_eq!(body["passed"], count(ttc_results::kpi::Outcome::Pass));
}

#[tokio::test]
async fn tradeoff_front_matches_the_store_pareto_on_its_axes() {
    let tmp = fixture();
    let (_, summary) = get(tmp.path(), "/api/summary?run=new").await;
    let (status, body) = get(tmp.path(), "/api/tradeoffs?run=new&latency=e2e_p95").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 18, "6 policies x 3 suites");
    for p in points {
        let g = summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["policy"] == p["policy"] && g["suite"] == p["suite"])
            .unwrap();
        // The store's front uses the same axes (p95 E2E, primary metric): the flags must agree.
        assert_eq!(p["pareto"], g["pareto_optimal"], "{p}");
        assert_eq!(p["latency_s"], g["e2e_s"]["p95"]);
        assert_eq!(p["quality"], g["quality"]["rouge_l"]["value"]);
        assert_eq!(p["metric"], "rouge_l");
    }
    assert!(points.iter().any(|p| p["pareto"] == true));

    // Another axis: the front is recomputed (no point on it is dominated by one of its run x suite).
    let (_, ttft) = get(tmp.path(), "/api/tradeoffs?run=new&latency=ttft_p50&metric=exact_match").await;
    let pts = ttft["points"].as_array().unwrap();
    for p in pts {
        let dominated = pts.iter().any(|q| {
            q["suite"] == p["suite"]
                && q["latency_s"].as_f64() <= p["latency_s"].as_f64()
                && q["quality"].as_f64() >= p["quality"].as_f64()
                && (q["latency_s"] != p["latency_s"] || q["quality"] != p["quality"])
        });
        assert_eq!(p["pareto"].as_bool().unwrap(), !dominated, "{p}");
        assert_eq!(p["metric"], "exact_match");
    }
}

#[tokio::test]
async fn distributions_are_numpy_percentiles_of_the_records() {
    let tmp = fixture();
    let run = ResultsStore::open(tmp.path()).unwrap().load_run("new").unwrap();
    let (status, body) = get(tmp.path(), "/api/distributions?run=new&suite=worfbench").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let policies = body["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 6);
    for d in policies {
        let mut e2e: Vec<f64> = run
            .records
            .iter()
            .filter(|r| r.policy == d["policy"].as_str().unwrap() && r.suite == "worfbench" && r.status == RecordStatus::Ok)
            .filter_map(|r| r.e2e_s)
            .collect();
        e2e.sort_by(f64::total_cmp);
        let pts = d["e2e_s"]["points"].as_array().unwrap();
        assert_eq!(pts.len(), ttc_dashboard::model::CDF_POINTS);
        assert_eq!(pts[0][0].as_f64(), e2e.first().copied());
        assert_eq!(pts[50][0].as_f64(), e2e.last().copied());
        assert_eq!(pts[25][0].as_f64(), percentile_sorted(&e2e, 50.0));
        assert_eq!(pts[25][1].as_f64(), Some(0.5));
        assert_eq!(d["e2e_s"]["n"], e2e.len());
    }
}

#[tokio::test]
async fn trends_follow_each_run_in_order() {
    let tmp = fixture();
    let (status, body) = get(tmp.path(), "/api/trends").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 12, "6 policies in each of 2 runs");
    assert!(points[..6].iter().all(|p| p["run_id"] == "old"), "oldest run first");
    // `old` has one suite, so its per-policy trend values equal the summary's group values.
    let (_, summary) = get(tmp.path(), "/api/summary?run=old").await;
    for p in &points[..6] {
        let g = summary["groups"].as_array().unwrap().iter().find(|g| g["policy"] == p["policy"]).unwrap();
        assert_eq!(p["values"]["p95 e2e_s"], g["e2e_s"]["p95"]);
        assert_eq!(p["values"]["p50 ttft_s"], g["ttft_s"]["p50"]);
        assert_eq!(p["values"]["output_tok_s"], g["output_tok_s"]);
        assert_eq!(p["values"]["error_rate"], g["error_rate"]);
        assert_eq!(p["values"]["quality"], g["quality"]["rouge_l"]["value"]);
        assert_eq!(p["quality_metric"], "rouge_l");
    }
}

#[tokio::test]
async fn records_page_filter_and_drill_down() {
    let tmp = fixture();
    let run = ResultsStore::open(tmp.path()).unwrap().load_run("new").unwrap();
    let (status, page) = get(tmp.path(), "/api/records?run=new&policy=spec_k4&suite=jsonl&offset=10&limit=5").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let expected: Vec<usize> =
        (0..run.records.len()).filter(|&i| run.records[i].policy == "spec_k4" && run.records[i].suite == "jsonl").collect();
    assert_eq!(page["total"], expected.len());
    let ids: Vec<usize> = page["rows"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap() as usize).collect();
    assert_eq!(ids, expected[10..15]);
    let row = &page["rows"][0];
    let rec = &run.records[ids[0]];
    assert_eq!(row["sample_id"], rec.sample_id.as_str());
    assert_eq!(row["e2e_s"].as_f64(), rec.e2e_s);
    assert_eq!(row["quality"].as_f64(), rec.metrics.get("rouge_l").copied());

    let (_, errors) = get(tmp.path(), "/api/records?run=new&status=error").await;
    assert_eq!(errors["total"], 1);

    let (status, detail) = get(tmp.path(), &format!("/api/record?run=new&id={}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["record"], to_value(rec));
    assert_eq!(detail["quality_metric"], "rouge_l");
    let uri = format!("/api/record?run=new&policy=spec_k4&suite=jsonl&sample={}", rec.sample_id);
    assert_eq!(get(tmp.path(), &uri).await.1["id"], ids[0]);
}

#[tokio::test]
async fn bad_requests_name_the_problem() {
    let tmp = fixture();
    let cases = [
        ("/api/summary?run=nope", StatusCode::NOT_FOUND, "run `nope` not found"),
        ("/api/summary?run=../etc", StatusCode::BAD_REQUEST, "invalid run id"),
        ("/api/tradeoffs?latency=e2e_p42", StatusCode::BAD_REQUEST, "unknown latency axis `e2e_p42`"),
        ("/api/records?status=maybe", StatusCode::BAD_REQUEST, "unknown status `maybe`"),
        ("/api/records?run=old,new", StatusCode::BAD_REQUEST, "exactly one run"),
        ("/api/record?run=new&id=600", StatusCode::NOT_FOUND, "has 600 records; no record 600"),
        ("/api/record?run=new", StatusCode::BAD_REQUEST, "give `id`"),
        ("/api/nothing", StatusCode::NOT_FOUND, "no such page or API: /api/nothing"),
        // Malformed numbers get the JSON error naming the parameter, not axum's plain text.
        ("/api/records?limit=-1", StatusCode::BAD_REQUEST, "query parameter `limit`: invalid digit found in string (expected a whole number >= 0)"),
        ("/api/records?offset=ten", StatusCode::BAD_REQUEST, "query parameter `offset`: invalid digit"),
        ("/api/record?run=new&id=abc", StatusCode::BAD_REQUEST, "query parameter `id`: invalid digit"),
        // Unknown metric, or a run list with no run in it: 400 naming the parameter and what is valid.
        ("/api/tradeoffs?run=new&metric=rogue_l", StatusCode::BAD_REQUEST, "query parameter `metric`: `rogue_l` is not a quality metric of run(s) new (use one of: "),
        ("/api/summary?run=,,,", StatusCode::BAD_REQUEST, "query parameter `run`: empty run id in `,,,`"),
        ("/api/kpis?run=new,,old", StatusCode::BAD_REQUEST, "query parameter `run`: empty run id"),
    ];
    for (uri, code, needle) in cases {
        let (status, body) = get(tmp.path(), uri).await;
        assert_eq!(status, code, "{uri}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{uri}: {body}");
    }
}

#[tokio::test]
async fn unknown_metric_lists_the_valid_ones_and_a_run_listed_twice_counts_once() {
    let tmp = fixture();
    let (_, summary) = get(tmp.path(), "/api/summary?run=new").await;
    let metrics: Vec<&str> = summary["quality_metrics"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(metrics.contains(&"rouge_l"), "{metrics:?}");
    let (_, body) = get(tmp.path(), "/api/tradeoffs?run=new&metric=rogue_l").await;
    assert!(body["error"].as_str().unwrap().ends_with(&format!("(use one of: {}; or none for each suite's primary metric)", metrics.join(", "))), "{body}");
    let (status, ok) = get(tmp.path(), "/api/tradeoffs?run=new&metric=rouge_l").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!ok["points"].as_array().unwrap().is_empty());

    let (_, once) = get(tmp.path(), "/api/summary?run=new").await;
    for uri in ["/api/summary?run=new,new", "/api/summary?run=new,%20new"] {
        let (status, twice) = get(tmp.path(), uri).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(twice["runs"], serde_json::json!(["new"]), "{uri}");
        assert_eq!((twice["n_records"].as_u64(), &twice["groups"]), (Some(600), &once["groups"]), "{uri}");
    }
    let (_, kpis_once) = get(tmp.path(), "/api/kpis?run=new").await;
    let (_, kpis_twice) = get(tmp.path(), "/api/kpis?run=new,new").await;
    assert_eq!(kpis_twice, kpis_once);
    let (_, both) = get(tmp.path(), "/api/summary?run=new,old,new").await;
    assert_eq!(both["runs"], serde_json::json!(["new", "old"]));
}

/// Sends one request with this Host header (None: no Host) to a server; returns the status and JSON body.
async fn raw_get(addr: std::net::SocketAddr, path: &str, host: Option<&str>) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_dashboard_refuses_other_host_names() {
    let tmp = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    tokio::spawn(ttc_dashboard::serve_state(listener, app_state(tmp.path(), None, None).unwrap()));
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")] {
        let (status, body) = raw_get(addr, "/api/runs", Some(&host)).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    assert_eq!(raw_get(addr, "/api/runs", None).await.0, 200, "no Host (HTTP/1.0 tools) is not a browser");
    // A rebound name, or the right name on another port, is refused on every route.
    for (host, path) in [
        (format!("evil.example:{port}"), "/api/record?run=new&id=0"),
        (format!("localhost:{}", port.wrapping_add(1)), "/api/runs"),
        ("evil.example".to_string(), "/"),
    ] {
        let (status, body) = raw_get(addr, path, Some(&host)).await;
        assert_eq!(status, 403, "{host}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("Host `{host}` is not this dashboard's address (allowed: localhost:{port}, 127.0.0.1:{port}, [::1]:{port})")),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn host_check_is_off_when_bound_to_every_interface() {
    let tmp = fixture();
    let mut state = app_state(tmp.path(), None, None).unwrap();
    state.host_check = ttc_dashboard::host::HostCheck::for_bound("0.0.0.0:8765".parse().unwrap());
    let res = router(state)
        .oneshot(Request::get("/api/runs").header("host", "dashboard.lan:8765").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_and_empty_directories_explain_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent");
    let (status, body) = get(&missing, "/api/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["exists"], false);
    assert!(body["hint"].as_str().unwrap().contains("does not exist yet"), "{body}");
    let (status, body) = get(&missing, "/api/summary").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("does not exist"), "{body}");
    assert_eq!(get(&missing, "/api/trends").await.1["points"], serde_json::json!([]));

    let (_, body) = get(tmp.path(), "/api/runs").await;
    assert_eq!(body["exists"], true);
    assert!(body["hint"].as_str().unwrap().contains("No runs"), "{body}");
    let (status, body) = get(tmp.path(), "/api/summary").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("no runs"), "{body}");
}

#[tokio::test]
async fn page_and_assets_are_embedded() {
    let tmp = tempfile::tempdir().unwrap();
    for (uri, ty, needle) in [
        ("/", "text/html", "<script src=\"/app.js\">"),
        ("/app.js", "text/javascript", "EventSource(\"/api/events\")"),
        ("/style.css", "text/css", ".chart"),
    ] {
        let app = router(app_state(tmp.path(), None, None).unwrap());
        let res = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with(ty));
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(needle), "{uri}");
        // The SVG namespace is an identifier, not a request.
        let text = text.replace("http://www.w3.org/2000/svg", "");
        assert!(!text.contains("https://") && !text.contains("http://"), "{uri} must not load anything remote");
    }
}

/// Reads SSE frames from a raw HTTP connection until `pred` accepts one (event name, JSON data).
async fn read_events_until(
    stream: &mut tokio::net::TcpStream,
    buf: &mut String,
    mut pred: impl FnMut(&str, &Value) -> bool,
) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let name = frame.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_string();
            let data: String = frame.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                if pred(&name, &v) {
                    return (name, v);
                }
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.expect("timed out waiting for an event").unwrap();
        assert!(n > 0, "server closed the event stream");
        // Chunked transfer framing lines are not `event:`/`data:` lines, so they are skipped by the parser.
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]).replace("\r\n", "\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_carry_records_appended_by_any_writer_and_the_feed() {
    let tmp = fixture();
    let feed = LiveFeed::new(16);
    let mut state = app_state(tmp.path(), None, Some(feed.clone())).unwrap();
    state.poll = Duration::from_millis(100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ttc_dashboard::serve_state(listener, state));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    let (_, run) = read_events_until(&mut stream, &mut buf, |n, _| n == "run").await;
    assert_eq!(run["run_id"], "new");
    let (_, first) = read_events_until(&mut stream, &mut buf, |n, _| n == "records").await;
    assert_eq!(first["initial"], true);
    assert_eq!(first["rows"].as_array().unwrap().len(), ttc_dashboard::events::INITIAL_ROWS);
    let (_, progress) = read_events_until(&mut stream, &mut buf, |n, _| n == "progress").await;
    assert_eq!((progress["done"].as_u64(), progress["planned"].as_u64()), (Some(600), Some(600)));

    // Another writer appends to the run: the record arrives with its position in the run.
    let dir = tmp.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut w = common::resume(&dir, "new");
        w.push(common::extra_record("new", "baseline", "jsonl", "appended-1")).unwrap();
        w.flush().unwrap();
    })
    .await
    .unwrap();
    let (_, added) = read_events_until(&mut stream, &mut buf, |n, v| n == "records" && v["initial"] == false).await;
    let rows = added["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["sample_id"], "appended-1");
    assert_eq!(rows[0]["id"], 600);
    let (_, progress) = read_events_until(&mut stream, &mut buf, |n, _| n == "progress").await;
    assert_eq!(progress["done"], 601);
    assert_eq!(progress["status"], "running", "the resumed writer marked the run running");
    let (_, summary) = read_events_until(&mut stream, &mut buf, |n, _| n == "summary").await;
    let n: u64 = summary["groups"].as_array().unwrap().iter().map(|g| g["n"].as_u64().unwrap()).sum();
    assert_eq!(n, 601);

    // The runner's feed: forwarded before any part file holds the record, then not repeated.
    feed.publish(LiveEvent::Record(Box::new(common::extra_record("new", "baseline", "jsonl", "from-feed"))));
    let (_, fed) = read_events_until(&mut stream, &mut buf, |n, v| n == "records" && v["initial"] == false).await;
    assert_eq!(fed["rows"][0]["sample_id"], "from-feed");
    assert_eq!(fed["rows"][0]["id"], Value::Null);
    feed.publish(LiveEvent::Progress(ttc_dashboard::RunnerProgress {
        run_id: "new".into(),
        done: 602,
        planned: Some(700),
        errors: 1,
        in_flight: 4,
    }));
    let (_, runner) = read_events_until(&mut stream, &mut buf, |n, _| n == "runner").await;
    assert_eq!(runner["in_flight"], 4);
    let dir = tmp.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut w = common::resume(&dir, "new");
        w.push(common::extra_record("new", "baseline", "jsonl", "from-feed")).unwrap();
        w.push(common::extra_record("new", "baseline", "jsonl", "appended-2")).unwrap();
        w.flush().unwrap();
    })
    .await
    .unwrap();
    let (_, next) = read_events_until(&mut stream, &mut buf, |n, v| n == "records" && v["initial"] == false).await;
    let samples: Vec<&str> = next["rows"].as_array().unwrap().iter().map(|r| r["sample_id"].as_str().unwrap()).collect();
    assert_eq!(samples, ["appended-2"], "the fed record is not sent twice");
}

#[test]
fn cache_reads_equal_the_store_after_appends_corruption_and_in_parallel() {
    let tmp = tempfile::tempdir().unwrap();
    // 200 records in parts of 5: 40 parts, read on several threads.
    common::write_run(tmp.path(), common::meta("big", "2025-01-01T00:00:00Z", None), &common::records("big", 200, 5), 5);
    let cache = ttc_dashboard::cache::RunCache::new(tmp.path().to_path_buf());
    let store = ResultsStore::open(tmp.path()).unwrap();
    let check = |label: &str| {
        let want = store.load_run("big").unwrap();
        let got = cache.get("big").unwrap();
        assert_eq!(got.run.records, want.records, "{label}");
        assert_eq!(got.run.warnings, want.warnings, "{label}");
        assert_eq!(got.run.manifest, want.manifest, "{label}");
    };
    check("parallel read");
    let first = cache.get("big").unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &cache.get("big").unwrap()), "unchanged files: served from memory");

    // Appended parts (read alone), a corrupt part, and a duplicate key.
    let mut w = common::resume(tmp.path(), "big");
    w.push(common::extra_record("big", "baseline", "jsonl", "late-1")).unwrap();
    w.push(common::extra_record("big", "baseline", "jsonl", "late-2")).unwrap();
    drop(w);
    check("appended");
    std::fs::write(tmp.path().join("run_id=big/part-00900.parquet"), b"garbage").unwrap();
    check("corrupt part appended");
    let mut w = common::resume(tmp.path(), "big");
    w.push(common::extra_record("big", "baseline", "jsonl", "late-1")).unwrap();
    drop(w);
    check("duplicate key appended");
    assert_eq!(cache.get("big").unwrap().run.records.len(), 203);

    // Compaction rewrites the parts: a full read again.
    ResultsStore::open(tmp.path()).unwrap().compact("big").unwrap();
    check("compacted");
}

/// A run written by two shards (in another order) gives the dashboard the summary of the same run written by one
/// process; with a shard gone, the summary carries a warning naming it and the records it lacks.
#[tokio::test]
async fn a_sharded_run_summarises_like_one_run_and_names_a_missing_shard() {
    use ttc_results::{Shard, ShardInfo};
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let records = common::records("sh", 240, 5);
    common::write_run(one.path(), common::meta("sh", "2025-01-01T00:00:00Z", Some(240)), &records, 50);
    let part = |i: u32| -> Vec<_> { records.iter().filter(|r| r.sample_id.ends_with(['0', '2', '4', '6', '8']) == (i == 0)).cloned().collect() };
    let sizes = vec![part(0).len() as u64, part(1).len() as u64];
    let store = ResultsStore::create(two.path()).unwrap();
    for index in [1, 0] {
        let info = ShardInfo { shard: Shard { index, count: 2 }, planned_per_shard: sizes.clone() };
        let mut w = store.start_shard(common::meta("sh", "2025-01-01T00:00:00Z", None), info, false, common::opts(30)).unwrap();
        part(index).into_iter().rev().for_each(|r| w.push(r).unwrap());
        w.finish().unwrap();
    }
    let (_, a) = get(one.path(), "/api/summary?run=sh").await;
    let (status, b) = get(two.path(), "/api/summary?run=sh").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["warnings"], serde_json::json!([]));
    assert_eq!(a["n_records"], b["n_records"]);
    for (ga, gb) in a["groups"].as_array().unwrap().iter().zip(b["groups"].as_array().unwrap()) {
        for k in ["policy", "suite", "n", "n_ok", "n_error", "quality", "ttft_s", "e2e_s", "output_tokens"] {
            assert_eq!(ga[k], gb[k], "{k} of {} {}", ga["policy"], ga["suite"]);
        }
    }
    for entry in std::fs::read_dir(two.path().join("run_id=sh")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains("1of2") || p.ends_with("_shard-1-of-2.json") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let (_, c) = get(two.path(), "/api/summary?run=sh").await;
    let warnings = c["warnings"].to_string();
    assert!(warnings.contains("shard 1/2 is missing") && warnings.contains(&format!("{} missing", sizes[1])), "{warnings}");
    let (_, runs) = get(two.path(), "/api/runs").await;
    assert_eq!(runs["runs"][0]["status"], "running", "not finished while a shard is missing: {runs}");
}
