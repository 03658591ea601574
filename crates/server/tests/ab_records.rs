//! Live A/B records over real HTTP: requests refused before they generate (400, 404, 429) are records of their
//! arm with the error `ttc run` would record, so error rates over served traffic count them, and none stores the
//! request's content; `/v1/completions` takes part in the A/B test like chat completions (sticky arm, a record
//! per generation, on disk before the response).

mod common;

use common::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::ResultsStore;
use ttc_server::ab::{AbSpec, Assigner};
use ttc_server::served::{ServedRecorder, REFUSAL_FLUSH, UNRESOLVED_POLICY};
use ttc_server::{router, RunningServer, ServerOptions};
use ttc_types::{Record, RecordStatus};

const ARMS: &str = "baseline=0.5,speculative_decoding=0.5";
/// Words that must never reach the store without `--store-content`.
const SECRET: &str = "SECRET-WORDS";

/// A server with the A/B test on, recording to `results`.
async fn serve(results: &Path, max_queue: usize) -> (RunningServer, Arc<ServedRecorder>) {
    let spec: AbSpec = ARMS.parse().unwrap();
    let assigner = Assigner::new(&spec, &policies()).unwrap();
    let recorder = ServedRecorder::start(results, "serve-test".into(), "smollm2", false, json!({})).unwrap();
    let opts = ServerOptions {
        ab: Some(Arc::new(assigner)),
        recorder: Some(recorder.clone()),
        max_queue,
        ..ServerOptions::default()
    };
    let app = router(engine(), &policies(), opts).expect("router");
    (RunningServer::start(app, "127.0.0.1:0").await.expect("start server"), recorder)
}

/// POSTs `body` (JSON, or raw text) to `route` with an optional sticky key; status, headers, body.
async fn post(server: &RunningServer, route: &str, key: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{route}", server.base_url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.header("x-ab-key", k);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

fn arm(headers: &HeaderMap) -> Option<String> {
    headers.get("x-ttc-arm").map(|v| v.to_str().unwrap().to_string())
}

fn records(results: &Path) -> Vec<Record> {
    let store = ResultsStore::open(results).unwrap();
    let mut rs = store.load_run("serve-test").unwrap().records;
    rs.sort_by(|a, b| a.sample_id.cmp(&b.sample_id));
    rs
}

/// Waits (at most REFUSAL_FLUSH + 2 s) until `n` records are on disk.
async fn wait_records(results: &Path, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + REFUSAL_FLUSH + Duration::from_secs(2);
    loop {
        let rs = records(results);
        if rs.len() >= n || Instant::now() > deadline {
            return rs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn chat(model: &str, content: &str, max_tokens: u64) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0}).to_string()
}

/// Fails if anything of the request's content reached the record.
fn assert_no_content(r: &Record) {
    let all = serde_json::to_string(r).unwrap();
    assert!(!all.contains(SECRET) && !all.contains("gpt-unknown") && !all.contains("robot"), "content stored: {all}");
    assert!(r.prediction.is_empty() && r.token_logprobs.is_none(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_error_records_of_their_arm_and_count_in_the_error_rate() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    // max_queue 0: one generation at a time, the next request is a 429.
    let (server, _recorder) = serve(&results, 0).await;
    let key = "user-7";
    let (s, h, b) = post(&server, "/chat/completions", Some(key), chat("smollm2-135m", "Name a color.", 3)).await;
    assert_eq!(s, 200, "{b}");
    let arm7 = arm(&h).unwrap();
    let other = if arm7 == "baseline" { "speculative_decoding" } else { "baseline" };

    // 1. A field of the wrong type (its value would appear in serde's message): 400, refused for the key's arm.
    let bad = json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": SECRET}], "max_tokens": SECRET});
    let (s, h, b) = post(&server, "/chat/completions", Some(key), bad.to_string()).await;
    assert_eq!((s, arm(&h).as_deref()), (400, Some(arm7.as_str())), "{b}");
    assert!(b.contains(SECRET), "the client is told; the store is not: {b}");
    // 2. A prompt longer than the context: 400 context_length_exceeded.
    let long = format!("{SECRET} {}", "word ".repeat(engine().context_length() + 100));
    let (s, h, b) = post(&server, "/chat/completions", Some(key), chat("smollm2-135m", &long, 3)).await;
    assert_eq!((s, arm(&h).as_deref()), (400, Some(arm7.as_str())), "{b}");
    assert!(b.contains("context_length_exceeded"), "{b}");
    // 3. An unknown role names the request's field; a policy asked for by name is that policy, not an arm.
    let robot = json!({"model": "smollm2-135m:early_exit_28", "messages": [{"role": "robot", "content": "x"}]});
    let (s, _, b) = post(&server, "/chat/completions", None, robot.to_string()).await;
    assert_eq!(s, 400, "{b}");
    // 4. No served model, and no JSON at all: refused, under no arm.
    let (s, h, _) = post(&server, "/chat/completions", Some(key), chat("gpt-unknown", SECRET, 3)).await;
    assert_eq!((s, arm(&h)), (404, None));
    let (s, _, _) = post(&server, "/chat/completions", None, format!("{{{SECRET}")).await;
    assert_eq!(s, 400);
    // 5. The engine busy with a long stream (the other arm's) and no room to wait: 429 for user-7.
    let other_key = (0..)
        .map(|i| format!("user-{i}"))
        .find(|k| Assigner::new(&ARMS.parse().unwrap(), &policies()).unwrap().assign(Some(k.as_bytes())).0.name == other)
        .unwrap();
    let busy = {
        let mut body: Value = serde_json::from_str(&chat("smollm2-135m", "Write a very long story about a dragon.", 2000)).unwrap();
        body["stream"] = json!(true);
        let r = reqwest::Client::new()
            .post(format!("{}/chat/completions", server.base_url))
            .header("x-ab-key", &other_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), arm(r.headers()).as_deref()), (200, Some(other)));
        r
    };
    let (s, h, b) = post(&server, "/chat/completions", Some(key), chat("smollm2-135m", "Hi.", 3)).await;
    assert_eq!((s, arm(&h).as_deref()), (429, Some(arm7.as_str())), "{b}");
    assert_eq!(h["retry-after"], "1");
    drop(busy); // the client leaves mid-stream: a stream_cut record, written when the server notices

    // Refusals reach the disk within REFUSAL_FLUSH, with the next served record or on their own.
    let rs = wait_records(&results, 8).await;
    let got: Vec<(&str, &str, RecordStatus, Option<&str>)> =
        rs.iter().map(|r| (r.policy.as_str(), r.task.as_deref().unwrap(), r.status, r.error_class.as_deref())).collect();
    let (ok, err, a7) = (RecordStatus::Ok, RecordStatus::Error, arm7.as_str());
    // Numbered as they were written: every request in arrival order, the cut stream when it ended.
    assert_eq!(
        got,
        vec![
            (a7, "chat", ok, None),
            (a7, "chat", err, Some("http_4xx")),
            (a7, "chat", err, Some("http_4xx")),
            ("early_exit_28", "chat", err, Some("http_4xx")),
            (UNRESOLVED_POLICY, "chat", err, Some("http_4xx")),
            (UNRESOLVED_POLICY, "chat", err, Some("http_4xx")),
            (a7, "chat", err, Some("http_429")),
            (other, "chat", err, Some("stream_cut")),
        ]
    );
    let refused: Vec<&Record> = rs.iter().filter(|r| r.error_class.as_deref().is_some_and(|c| c.starts_with("http_"))).collect();
    for r in &refused {
        assert_no_content(r);
        assert_eq!((r.backend.as_str(), r.suite.as_str(), r.attempts), ("serve", "serve", 1));
        assert_eq!((r.output_tokens, r.e2e_s, r.finish_reason.as_deref()), (None, None, None), "{r:?}");
    }
    let messages: Vec<&str> = refused.iter().map(|r| r.error_message.as_deref().unwrap()).collect();
    assert_eq!(
        messages,
        [
            "HTTP 400 from /v1/chat/completions: invalid_request_error (param max_tokens)",
            "HTTP 400 from /v1/chat/completions: invalid_request_error (code context_length_exceeded, param messages)",
            "HTTP 400 from /v1/chat/completions: invalid_request_error (param messages[0].role)",
            "HTTP 404 from /v1/chat/completions: invalid_request_error (code model_not_found, param model)",
            // serde_path_to_error's path at a syntax error inside an object (the response says the same).
            "HTTP 400 from /v1/chat/completions: invalid_request_error (param ?)",
            "HTTP 429 from /v1/chat/completions: requests (code rate_limit_exceeded)",
        ]
    );
    // The refused model named no policy: its record has no algorithm of one (a report's baseline is found by it).
    let unresolved = refused.iter().find(|r| r.policy == UNRESOLVED_POLICY).unwrap();
    assert_eq!((unresolved.algorithm.as_str(), unresolved.model.as_str()), ("none", ""));

    // `ttc summary`'s error rate counts them: user-7's arm answered 1 of its 4 requests.
    let summary = summarize(&rs, &AnalysisConfig::default());
    let group = summary.groups.iter().find(|g| g.policy == arm7).unwrap();
    assert_eq!((group.n, group.n_error, group.error_rate), (4, 3, 0.75), "{group:?}");
    let classes: Vec<(&str, usize)> = group.errors_by_class.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(classes, [("http_429", 1), ("http_4xx", 2)]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_assigned_arms_and_recorded_before_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (server, _recorder) = serve(&results, 8).await;
    let body = |prompt: Value, max_tokens: u64| json!({"model": "smollm2-135m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}).to_string();

    // A sticky key lands on one arm, on this endpoint as on chat.
    let (s, h, b) = post(&server, "/chat/completions", Some("session-1"), chat("smollm2-135m", "Hi.", 2)).await;
    assert_eq!(s, 200, "{b}");
    let arm1 = arm(&h).unwrap();
    let mut arms = Vec::new();
    for _ in 0..3 {
        let (s, h, b) = post(&server, "/completions", Some("session-1"), body(json!(format!("{SECRET} The sky is")), 4)).await;
        assert_eq!(s, 200, "{b}");
        arms.push(arm(&h).unwrap());
        // Each served completion is on disk when its response arrives (a kill -9 now would lose none).
        assert_eq!(records(&results).len(), 1 + arms.len());
    }
    assert_eq!(arms, vec![arm1.clone(); 3]);
    // Without a key: a random arm, still one of the two, and named in the response.
    let (s, h, _) = post(&server, "/completions", None, body(json!("One, two,"), 2)).await;
    assert_eq!(s, 200);
    let random = arm(&h).unwrap();
    assert!(["baseline", "speculative_decoding"].contains(&random.as_str()), "{random}");
    // Two prompts: two generations, two records.
    let (s, h, b) = post(&server, "/completions", Some("session-1"), body(json!(["Red, green,", "A B C"]), 3)).await;
    assert_eq!((s, arm(&h)), (200, Some(arm1.clone())), "{b}");
    let reply: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(reply["choices"].as_array().unwrap().len(), 2);
    // Refused on this endpoint too: `stream` is not offered here.
    let mut streamed: Value = serde_json::from_str(&body(json!("x"), 2)).unwrap();
    streamed["stream"] = json!(true);
    let (s, h, _) = post(&server, "/completions", Some("session-1"), streamed.to_string()).await;
    assert_eq!((s, arm(&h)), (400, Some(arm1.clone())));

    let rs = wait_records(&results, 8).await;
    assert_eq!(rs.len(), 8, "{rs:#?}");
    let completions: Vec<&Record> = rs.iter().filter(|r| r.task.as_deref() == Some("completions")).collect();
    assert_eq!(completions.len(), 7);
    let want_policies: Vec<&str> = [&arm1, &arm1, &arm1, &random, &arm1, &arm1, &arm1].iter().map(|s| s.as_str()).collect();
    assert_eq!(completions.iter().map(|r| r.policy.as_str()).collect::<Vec<_>>(), want_policies);
    let arm_policy = policies().into_iter().find(|p| p.name == arm1).unwrap_or_else(ttc_engine::Policy::baseline);
    for r in &completions[..6] {
        assert_eq!((r.backend.as_str(), r.suite.as_str(), r.model.as_str(), r.status), ("serve", "serve", "smollm2-135m", RecordStatus::Ok), "{r:?}");
        assert!(r.e2e_s.unwrap() > 0.0 && r.ttft_s.is_some(), "{r:?}");
        assert_no_content(r);
    }
    // The arm's policy ran: its algorithm, and the engine's token counts (raw prompt, no chat template).
    assert_eq!(completions[0].algorithm, arm_policy.algorithm_name());
    let tokens = engine().tokenizer.encode(&format!("{SECRET} The sky is")).unwrap().len() as u32;
    assert_eq!((completions[0].prompt_tokens, completions[0].output_tokens), (Some(tokens), Some(4)));
    assert_eq!(completions[4].output_tokens, Some(3));
    let refused = completions[6];
    assert_eq!((refused.status, refused.error_class.as_deref()), (RecordStatus::Error, Some("http_4xx")));
    assert_eq!(
        refused.error_message.as_deref(),
        Some("HTTP 400 from /v1/completions: invalid_request_error (param stream)")
    );
    server.shutdown().await.unwrap();
}
