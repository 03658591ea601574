//! A client that disconnects mid-stream frees the engine: its generation is cancelled at the next token,
//! so the next request does not wait for it. (Own test binary: it measures time, so nothing else may run.)

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn health(server: &ttc_server::RunningServer) -> Value {
    reqwest::get(format!("http://{}/health", server.addr)).await.unwrap().json().await.unwrap()
}

async fn timed_short_request(url: &str) -> Duration {
    let t = Instant::now();
    let r = reqwest::Client::new().post(format!("{url}/chat/completions")).json(&chat_body("smollm2-135m", "Say hi.", 8)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream_frees_the_slot() {
    let server = start(None).await;
    let solo = timed_short_request(&server.base_url).await;

    // A long generation: 1500 tokens would take far longer than a short request.
    let mut body = chat_body("smollm2-135m", "Write a very long and detailed story about a dragon who learns to cook.", 1500);
    body["stream"] = json!(true);
    let client = reqwest::Client::new();
    let resp = client.post(format!("{}/chat/completions", server.base_url)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut bytes = resp.bytes_stream();
    let mut seen = String::new();
    while seen.matches("\"content\"").count() < 4 {
        seen.push_str(&String::from_utf8_lossy(&bytes.next().await.unwrap().unwrap()));
    }
    assert_eq!(health(&server).await["active_requests"], 1);
    let t_cut = Instant::now();
    drop(bytes);
    drop(client);

    // The server notices at its next write and drops the generation.
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&server).await["active_requests"] != 0 {
        assert!(Instant::now() < deadline, "the disconnected stream is still active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noticed = t_cut.elapsed();
    // The engine is free: a short request takes about as long as it does alone.
    let after = timed_short_request(&server.base_url).await;
    eprintln!("solo {solo:?}, disconnect noticed after {noticed:?}, next request {after:?}");
    assert!(after < solo * 4 + Duration::from_secs(1), "next request took {after:?} (alone: {solo:?})");
    let h = health(&server).await;
    assert_eq!((h["active_requests"].as_u64(), h["completed_requests"].as_u64()), (Some(0), Some(2)));
    server.shutdown().await.unwrap();
}
