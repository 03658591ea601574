//! `ttc serve` over the real model: responses equal the engine's own output (text, token counts, finish
//! reason), the OpenAI streaming format chunk by chunk, policies chosen by model name, and the errors.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use ttc_runner::backend::openai::{OpenAiBackend, OpenAiSettings};
use ttc_contract::{Backend, ChatMessage, GenEvent, GenRequest};
use ttc_engine::Policy;
use ttc_types::{FinishReason, Usage};

const PROMPT: &str = "What is the capital of France? Answer in one sentence.";

async fn post(url: &str, body: &Value) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{url}/chat/completions")).json(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_equals_engine_greedy() {
    let want = tokio::task::spawn_blocking(|| reference(PROMPT, 16, &[], &Policy::baseline())).await.unwrap();
    let server = start(None).await;
    let (status, body) = post(&server.base_url, &chat_body("smollm2-135m", PROMPT, 16)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "smollm2-135m");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], want.text.as_str());
    assert!(!want.text.is_empty());
    assert_eq!(v["choices"][0]["finish_reason"], want.finish);
    assert_eq!(v["usage"]["prompt_tokens"], want.prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], want.completion_tokens);
    assert_eq!(v["usage"]["total_tokens"], want.prompt_tokens + want.completion_tokens);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chunks_follow_the_openai_format() {
    let want = tokio::task::spawn_blocking(|| reference(PROMPT, 16, &[], &Policy::baseline())).await.unwrap();
    let server = start(None).await;
    let mut body = chat_body("smollm2-135m", PROMPT, 16);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = reqwest::Client::new().post(format!("{}/chat/completions", server.base_url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let id = &chunks[0]["id"];
    for c in &chunks {
        assert_eq!((&c["id"], &c["object"], &c["model"]), (id, &json!("chat.completion.chunk"), &json!("smollm2-135m")));
    }
    // First: role only. Then content deltas with usage null. Then the finish. Last: usage, no choices.
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let n = chunks.len();
    let deltas: Vec<&str> = chunks[1..n - 2].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert!(deltas.iter().all(|d| !d.is_empty()));
    assert_eq!(deltas.concat(), want.text);
    assert!(chunks[..n - 1].iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    assert!(chunks[..n - 2].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], want.finish);
    assert_eq!(chunks[n - 2]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"],
        json!({"prompt_tokens": want.prompt_tokens, "completion_tokens": want.completion_tokens,
               "total_tokens": want.prompt_tokens + want.completion_tokens,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );

    // Without include_usage: no usage anywhere.
    body["stream_options"] = Value::Null;
    let text = reqwest::Client::new().post(format!("{}/chat/completions", server.base_url)).json(&body).send().await.unwrap().text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    for d in &data[..data.len() - 1] {
        let c: Value = serde_json::from_str(d).unwrap();
        assert!(c.get("usage").is_none(), "{d}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_openai_client_sees_the_engines_tokens() {
    let want = tokio::task::spawn_blocking(|| reference(PROMPT, 16, &[], &Policy::baseline())).await.unwrap();
    let server = start(Some("sk-test")).await;
    let client = OpenAiBackend::new(OpenAiSettings {
        kind: "openai".into(),
        base_url: server.base_url.clone(),
        api_key: Some("sk-test".into()),
        model: "smollm2-135m".into(),
        connect_timeout: std::time::Duration::from_secs(5),
        pool_size: 1,
    })
    .unwrap();
    let req = GenRequest {
        messages: vec![ChatMessage::new("user", PROMPT)],
        policy: Arc::new(Policy::baseline()),
        model: "smollm2-135m".into(),
        max_tokens: 16,
        temperature: 0.0,
        top_p: None,
        seed: None,
        logprobs: None,
        tags: Default::default(),
        extra_body: Default::default(),
    };
    let mut events = client.generate(&req).await.unwrap();
    let (mut text, mut finished) = (String::new(), None);
    while let Some(ev) = events.next().await {
        match ev.unwrap() {
            GenEvent::Content { text: t, .. } => text.push_str(&t),
            GenEvent::Finished { reason, usage, .. } => finished = Some((reason, usage)),
            GenEvent::Reasoning { .. } => panic!("no reasoning expected"),
        }
    }
    assert_eq!(text, want.text);
    let reason = if want.finish == "length" { FinishReason::Length } else { FinishReason::Stop };
    let usage = Usage { prompt_tokens: want.prompt_tokens, completion_tokens: want.completion_tokens, ..Usage::default() };
    assert_eq!(finished, Some((reason, Some(usage))));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_cut_like_the_engine() {
    // A stop string from the middle of the greedy answer: the server must end where the engine ends.
    let full = tokio::task::spawn_blocking(|| reference(PROMPT, 16, &[], &Policy::baseline())).await.unwrap();
    let words: Vec<&str> = full.text.split(' ').collect();
    assert!(words.len() >= 4, "answer too short to cut: {:?}", full.text);
    let stop = format!(" {}", words[3]);
    let s = stop.clone();
    let want = tokio::task::spawn_blocking(move || reference(PROMPT, 16, &[s.as_str()], &Policy::baseline())).await.unwrap();
    assert!(want.completion_tokens < full.completion_tokens && !want.text.contains(&stop));
    let server = start(None).await;
    for stream in [false, true] {
        let mut body = chat_body("smollm2-135m", PROMPT, 16);
        body["stop"] = json!([stop, "never-seen"]);
        body["stream"] = json!(stream);
        body["stream_options"] = json!({"include_usage": true});
        let (status, text) = post(&server.base_url, &body).await;
        assert_eq!(status, 200, "{text}");
        let (content, finish, usage) = if stream {
            let data = sse_data(&text);
            let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
            let n = chunks.len();
            (content, chunks[n - 2]["choices"][0]["finish_reason"].clone(), chunks[n - 1]["usage"].clone())
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            (v["choices"][0]["message"]["content"].as_str().unwrap().to_string(), v["choices"][0]["finish_reason"].clone(), v["usage"].clone())
        };
        assert_eq!(content, want.text, "stream={stream}");
        assert_eq!(finish, "stop");
        assert_eq!(usage["completion_tokens"], want.completion_tokens, "stream={stream}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_name_selects_the_policy() {
    let server = start(None).await;
    let v: Value = reqwest::get(format!("{}/models", server.base_url)).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut want = vec!["smollm2-135m".to_string()];
    want.extend(policies().iter().map(|p| format!("smollm2-135m:{}", p.name)));
    assert_eq!(ids, want);
    assert_eq!(v["object"], "list");
    // Early exit at layer 28 is lossy: its output is the engine's early-exit output, not the baseline's.
    let early = policy("early_exit_28");
    let want_early = tokio::task::spawn_blocking(move || reference(PROMPT, 16, &[], &early)).await.unwrap();
    let (status, body) = post(&server.base_url, &chat_body("smollm2-135m:early_exit_28", PROMPT, 16)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["model"], "smollm2-135m:early_exit_28");
    assert_eq!(v["choices"][0]["message"]["content"], want_early.text.as_str());
    assert_eq!(v["usage"]["completion_tokens"], want_early.completion_tokens);
    let h: Value = reqwest::get(format!("http://{}/health", server.addr)).await.unwrap().json().await.unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["active_requests"], 0);
    assert_eq!(h["completed_requests"], 1);
    server.shutdown().await.unwrap();
}

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    let err = v["error"].clone();
    assert!(err["message"].is_string() && err["type"].is_string(), "{body}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_openai_style_with_4xx_codes() {
    let server = start(Some("sk-right")).await;
    let url = format!("{}/chat/completions", server.base_url);
    let client = reqwest::Client::new();
    let send = |body: String, key: Option<&str>| {
        let mut r = client.post(&url).header("content-type", "application/json").body(body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let good = chat_body("smollm2-135m", "hi", 4).to_string();

    let (s, b) = send(good.clone(), None).await;
    assert_eq!((s, error_of(&b)["code"].as_str()), (401, Some("invalid_api_key")));
    let (s, b) = send(good.clone(), Some("sk-wrong")).await;
    assert_eq!((s, error_of(&b)["message"].as_str()), (401, Some("incorrect API key")));
    let r = client.get(format!("{}/models", server.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 401, "every /v1 route needs the key");
    let r = client.get(format!("http://{}/health", server.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200, "health needs no key");

    let (s, b) = send("{\"model\": \"smollm2-135m\", \"messages\": [".into(), Some("sk-right")).await;
    let e = error_of(&b);
    assert_eq!((s, e["type"].as_str()), (400, Some("invalid_request_error")));
    assert!(e["message"].as_str().unwrap().contains("not valid JSON"), "{b}");

    let (s, b) = send(r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#.into(), Some("sk-right")).await;
    assert_eq!((s, error_of(&b)["param"].as_str()), (400, Some("temperature")));

    let (s, b) = send(chat_body("gpt-4o", "hi", 4).to_string(), Some("sk-right")).await;
    let e = error_of(&b);
    assert_eq!((s, e["code"].as_str()), (404, Some("model_not_found")));
    assert!(e["message"].as_str().unwrap().contains("smollm2-135m:speculative_decoding"), "lists what is served: {b}");

    // SmolLM2's context is 8192 tokens; ~9000 words do not fit.
    let ctx = engine().context_length();
    let long = "word ".repeat(ctx + 500);
    let (s, b) = send(chat_body("smollm2-135m", &long, 4).to_string(), Some("sk-right")).await;
    let e = error_of(&b);
    assert_eq!((s, e["code"].as_str(), e["param"].as_str()), (400, Some("context_length_exceeded"), Some("messages")));

    let (s, b) = send(chat_body("smollm2-135m", "hi", ctx as u32).to_string(), Some("sk-right")).await;
    let e = error_of(&b);
    assert_eq!((s, e["code"].as_str(), e["param"].as_str()), (400, Some("context_length_exceeded"), Some("max_tokens")));

    // A max_tokens near u64::MAX used to overflow `prompt + max_tokens` and panic the handler.
    let mut huge = chat_body("smollm2-135m", "hi", 4);
    huge["max_tokens"] = json!(u64::MAX);
    let (s, b) = send(huge.to_string(), Some("sk-right")).await;
    let e = error_of(&b);
    assert_eq!((s, e["code"].as_str(), e["param"].as_str()), (400, Some("context_length_exceeded"), Some("max_tokens")), "{b}");
    assert!(e["message"].as_str().unwrap().contains("18446744073709551615 in the completion"), "{b}");
    huge.as_object_mut().unwrap().remove("max_tokens");
    huge["max_completion_tokens"] = json!(u64::MAX - 3);
    let (s, b) = send(huge.to_string(), Some("sk-right")).await;
    assert_eq!((s, error_of(&b)["param"].as_str()), (400, Some("max_tokens")), "{b}");
    let beyond = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"max_tokens":18446744073709551616}"#;
    let (s, b) = send(beyond.into(), Some("sk-right")).await;
    assert_eq!((s, error_of(&b)["param"].as_str()), (400, Some("max_tokens")), "{b}");

    let mut n2 = chat_body("smollm2-135m", "hi", 4);
    n2["n"] = json!(2);
    let (s, b) = send(n2.to_string(), Some("sk-right")).await;
    assert_eq!((s, error_of(&b)["param"].as_str()), (400, Some("n")));

    // RFC 7235: the scheme is case-insensitive.
    for auth in ["bearer sk-right", "BEARER sk-right", "Bearer  sk-right"] {
        let r = client.get(format!("{}/models", server.base_url)).header("authorization", auth).send().await.unwrap();
        assert_eq!(r.status(), 200, "{auth}");
    }
    let r = client.get(format!("{}/models", server.base_url)).header("authorization", "Basic sk-right").send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A known route with the wrong method: 405, the Allow header, and the error JSON (was an empty body).
    let r = client.get(&url).bearer_auth("sk-right").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let b = r.text().await.unwrap();
    let e = error_of(&b);
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("invalid_request_error"), Some("method_not_allowed")));
    assert!(e["message"].as_str().unwrap().contains("GET /v1/chat/completions"), "{b}");
    let r = client.delete(format!("{}/models", server.base_url)).bearer_auth("sk-right").send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["allow"].to_str().unwrap()), (405, "GET,HEAD"));
    error_of(&r.text().await.unwrap());

    let r = client.get(format!("http://{}/v2/nothing", server.addr)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    error_of(&r.text().await.unwrap());

    // None of these reached the engine.
    let h: Value = client.get(format!("http://{}/health", server.addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!((h["active_requests"].as_u64(), h["completed_requests"].as_u64()), (Some(0), Some(0)));
    server.shutdown().await.unwrap();
}
