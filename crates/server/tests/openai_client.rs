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
