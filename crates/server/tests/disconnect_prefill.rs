//! A client that disconnects while its long prompt is still being prefilled frees the engine within one prefill
//! chunk (issue 14 item 4: an 8,100-word request used to keep the engine busy for its whole prefill, and the next
//! 2-token request waited 82 s). Counted, not timed: the model's forwarded-token counter shows how much of the
//! prompt ran. (Own test binary: nothing else may use the shared engine meanwhile.)

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn health(server: &ttc_server::RunningServer) -> Value {
    reqwest::get(format!("http://{}/health", server.addr)).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_during_prefill_stops_it_within_one_chunk() {
    let server = start(None).await;
    let engine = engine();
    let chunk = engine.prefill_chunk as u64;
    let sentence = "The customer wrote again about order ORD-7781, which arrived late and damaged. ";
    let prompt = format!("{}\nSummarize the complaint.", sentence.repeat(300));
    let prompt_tokens = engine.prompt_tokens(&[ttc_engine::ChatMessage::new("user", prompt.clone())]).unwrap().len() as u64;
    assert!(prompt_tokens > 6 * chunk, "prompt of {prompt_tokens} tokens");

    let before = engine.model.tokens_forwarded();
    let mut body = chat_body("smollm2-135m", &prompt, 4);
    body["stream"] = json!(true);
    let url = format!("{}/chat/completions", server.base_url);
    let client = tokio::spawn(async move {
        let resp = reqwest::Client::new().post(url).json(&body).send().await?;
        resp.bytes().await
    });
    // Wait until the prefill has run its first chunk, then hang up.
    let deadline = Instant::now() + Duration::from_secs(120);
    while engine.model.tokens_forwarded() < before + chunk {
        assert!(Instant::now() < deadline, "the prefill never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.abort();
    let _ = client.await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&server).await["active_requests"] != 0 {
        assert!(Instant::now() < deadline, "the disconnected request is still active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The engine is idle again: the counter stopped well before the prompt's end.
    let settled = engine.model.tokens_forwarded();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.model.tokens_forwarded(), settled, "the engine is still working on the cancelled prompt");
    let ran = settled - before;
    eprintln!("prompt {prompt_tokens} tokens, chunk {chunk}: {ran} tokens ran before the cancel took effect");
    assert!(ran <= 3 * chunk, "{ran} of {prompt_tokens} prompt tokens ran after a disconnect in the first chunk");

    // And serves the next request.
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url))
        .json(&chat_body("smollm2-135m", "Say hi.", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.shutdown().await.unwrap();
}
