//! Shared by the server tests: the real model (as the engine tests load it), the shipped policies, a server
//! on 127.0.0.1:0, the engine's own greedy output to compare against, and a small SSE reader.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use ttc_engine::{ChatMessage, Engine, GenRequest, Policy, WeightFormat};
use ttc_server::{router, RunningServer, ServerOptions};

/// TTC_MODEL, else the cache `ttc model pull` fills (located, and verified, by ttc-assets). A missing model fails
/// loudly rather than skipping.
pub fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("TTC_MODEL") {
        return PathBuf::from(p);
    }
    ttc_assets::locate(ttc_assets::smollm2_gguf())
        .unwrap_or_else(|e| panic!("{e}: run `ttc model pull` (or set TTC_MODEL) before the tests"))
}

pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(Engine::load(&model_path(), WeightFormat::Auto).expect("load model"))).clone()
}

pub fn policies() -> Vec<Policy> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies.yaml");
    ttc_engine::load_policies(&path).expect("configs/policies.yaml")
}

pub fn policy(name: &str) -> Policy {
    policies().into_iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no policy {name}"))
}

/// A server over the shared engine with its own engine queue.
pub async fn start(api_key: Option<&str>) -> RunningServer {
    let opts = ServerOptions { api_key: api_key.map(str::to_string), ..ServerOptions::default() };
    let app = router(engine(), &policies(), opts).expect("router");
    RunningServer::start(app, "127.0.0.1:0").await.expect("start server")
}

/// What the engine itself generates for one user message (greedy unless the policy samples).
pub struct Reference {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub finish: &'static str,
}

pub fn reference(prompt: &str, max_tokens: usize, stop: &[&str], policy: &Policy) -> Reference {
    let e = engine();
    let ids = e.prompt_tokens(&[ChatMessage::new("user", prompt.to_string())]).expect("prompt");
    let req = GenRequest { prompt: ids, max_tokens, stop: stop.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let (out, _) = e.generate_policy(&req, policy, None, &mut |_| true).expect("generate");
    Reference {
        text: out.text,
        prompt_tokens: out.usage.prompt_tokens,
        completion_tokens: out.usage.completion_tokens,
        finish: out.finish_reason.openai_label(),
    }
}

/// The `data:` payloads of an SSE body (comments and blank lines dropped).
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

pub fn chat_body(model: &str, prompt: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}
