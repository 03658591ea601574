//! The official `openai` Python client against `ttc serve`, streaming and not (issue 5: "works with the
//! official openai Python client"). Needs python3 with `openai` (scripts/test-requirements.txt); a missing
//! interpreter or package fails the test with that instruction.

mod common;

use common::*;
use serde_json::{json, Value};
use ttc_engine::Policy;

const PROMPT: &str = "What is the capital of France? Answer in one sentence.";

fn python_has_openai() -> Result<(), String> {
    let hint = "install it with `python3 -m pip install -r scripts/test-requirements.txt` (scripts/test.sh does)";
    match std::process::Command::new("python3").args(["-c", "import openai"]).output() {
        Err(e) => Err(format!("python3 not runnable ({e}); {hint}")),
        Ok(o) if !o.status.success() => {
            Err(format!("the `openai` Python package is missing ({}); {hint}", String::from_utf8_lossy(&o.stderr).trim()))
        }
        Ok(_) => Ok(()),
    }
}

#[test]
fn official_python_client_streaming_and_not() {
    if let Err(e) = python_has_openai() {
        panic!("{e}");
    }
    let want = reference(PROMPT, 16, &[], &Policy::baseline());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start(Some("sk-python")));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = std::process::Command::new("python3").arg(&script).arg(&server.base_url).arg("sk-python").output().unwrap();
    rt.block_on(server.shutdown()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} failed:\n{}\n{}", script.display(), stdout, String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let usage = json!({"prompt_tokens": want.prompt_tokens, "completion_tokens": want.completion_tokens,
                       "total_tokens": want.prompt_tokens + want.completion_tokens});
    assert_eq!(v["models"].as_array().unwrap().len(), policies().len() + 1);
    assert_eq!(v["models"][0], "smollm2-135m");
    assert_eq!(
        v["plain"],
        json!({"text": want.text, "role": "assistant", "finish": want.finish, "usage": usage,
               "model": "smollm2-135m", "object": "chat.completion", "cached_tokens": 0})
    );
    assert_eq!(v["stream"]["text"], want.text.as_str());
    assert_eq!(v["stream"]["finish"], want.finish);
    assert_eq!(v["stream"]["usage"], usage);
    assert_eq!(v["stream"]["roles"], json!(["assistant"]));
    // role chunk + one chunk per non-empty piece + finish chunk + usage chunk.
    assert!(v["stream"]["chunks"].as_u64().unwrap() >= 4);
    assert_eq!(v["errors"]["unknown_model"], json!(["NotFoundError", 404, "model_not_found"]));
    assert_eq!(v["errors"]["bad_key"], json!(["AuthenticationError", 401]));
}

/// The engine's own greedy tokens and logprobs (top 3) for `PROMPT`, as (token text, logprob, top ids).
fn engine_logprobs(max_tokens: usize) -> Vec<ttc_types::TokenLogprob> {
    let e = engine();
    let ids = e.prompt_tokens(&[ttc_engine::ChatMessage::new("user", PROMPT)]).unwrap();
    let req = ttc_engine::GenRequest { prompt: ids, max_tokens, stop: vec![], ..Default::default() };
    let mut lps = Vec::new();
    let mut on_event = |ev: ttc_types::GenEvent| {
        if let ttc_types::GenEvent::Content { logprobs, .. } = ev {
            lps.extend(logprobs);
        }
        true
    };
    e.generate_policy_logprobs(&req, &Policy::baseline(), None, Some(3), &mut on_event).unwrap();
    lps
}

fn text_of(t: &ttc_types::TokenRef) -> String {
    match t {
        ttc_types::TokenRef::Id(id) => String::from_utf8_lossy(engine().tokenizer.token_bytes(*id)).into_owned(),
        ttc_types::TokenRef::Text(s) => s.clone(),
    }
}

fn assert_chat_logprobs(got: &Value, want: &[ttc_types::TokenLogprob]) {
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "one entry per generated token");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["token"], text_of(&w.chosen.token).as_str());
        assert_eq!(g["logprob"].as_f64().unwrap() as f32, w.chosen.logprob);
        let top: Vec<(String, f32)> =
            g["top"].as_array().unwrap().iter().map(|t| (t[0].as_str().unwrap().to_string(), t[1].as_f64().unwrap() as f32)).collect();
        let want_top: Vec<(String, f32)> = w.top.iter().map(|t| (text_of(&t.token), t.logprob)).collect();
        assert_eq!(top, want_top);
    }
}

#[test]
fn official_python_client_reads_logprobs() {
    if let Err(e) = python_has_openai() {
        panic!("{e}");
    }
    let e = engine();
    let prompt_ids = e.tokenizer.encode("The capital of France is Paris").unwrap();
    let want_chat = engine_logprobs(8);
    let want_prompt = e.prompt_logprobs(&prompt_ids, 1).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start(None));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_logprobs.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&server.base_url)
        .arg(serde_json::to_string(&prompt_ids).unwrap())
        .output()
        .unwrap();
    rt.block_on(server.shutdown()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} failed:\n{}\n{}", script.display(), stdout, String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_chat_logprobs(&v["plain"]["logprobs"], &want_chat);
    assert_chat_logprobs(&v["stream"]["logprobs"], &want_chat);
    assert_eq!(v["stream"]["text"], v["plain"]["text"]);
    assert_eq!(v["no_logprobs"], true);

    // Echo: every prompt token, scored by a teacher-forced forward (the first has none), then the generated one.
    let c = &v["completion"];
    let n = prompt_ids.len();
    assert_eq!(c["tokens"].as_array().unwrap().len(), n + 1);
    assert_eq!(c["token_logprobs"][0], Value::Null);
    assert_eq!(c["top_logprobs"][0], Value::Null);
    for i in 1..n {
        let want = want_prompt[i].as_ref().unwrap();
        assert_eq!(c["tokens"][i], text_of(&want.chosen.token).as_str());
        assert_eq!(c["token_logprobs"][i].as_f64().unwrap() as f32, want.chosen.logprob, "prompt token {i}");
        // logprobs: 1 lists the top token, and the token itself when it is not the top one.
        let top = c["top_logprobs"][i].as_object().unwrap();
        assert_eq!(top[&text_of(&want.top[0].token)].as_f64().unwrap() as f32, want.top[0].logprob);
        assert!(top.len() <= 2);
    }
    let offsets: Vec<u64> = c["text_offset"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
    assert_eq!(offsets[0], 0);
    assert!(c["text"].as_str().unwrap().starts_with("The capital of France is Paris"));
    assert_eq!(c["usage"], json!({"prompt_tokens": n, "completion_tokens": 1}));

    let errors = &v["errors"];
    assert_eq!(errors["top_without_logprobs"], json!(["BadRequestError", 400, "top_logprobs"]));
    assert_eq!(errors["top_above_20"], json!(["BadRequestError", 400, "top_logprobs"]));
    assert_eq!(errors["completion_logprobs_above_20"], json!(["BadRequestError", 400, "logprobs"]));
    assert_eq!(errors["completion_logprobs_negative"], json!(["BadRequestError", 400, "logprobs"]));
}
