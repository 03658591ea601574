//! `ttc serve --ab`: bad arms or weights are exit 2 before the model loads; a sticky key always gets the same
//! arm, on chat completions and completions; every finished or refused request is a record in the store
//! (backend `serve`, policy = arm, no content), and a `kill -9` loses none of them. Raw HTTP over std's TcpStream, loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ttc serve --port 0 ARGS`; returns it and its port once it listens.
fn serve(args: &[&str]) -> (Serve, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(["serve", "--port", "0"])
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ttc serve");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("ttc serve never said it was serving").unwrap();
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Serve(child), port)
}

/// One chat completion; returns the whole HTTP response (headers and body).
fn chat(port: u16, key: Option<&str>, stream: bool) -> String {
    let body = format!(
        r#"{{"model":"smollm2-135m","messages":[{{"role":"user","content":"Name a color."}}],"max_tokens":3,"temperature":0,"stream":{stream}}}"#
    );
    let out = post(port, "/v1/chat/completions", key, &body);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// POSTs `body` to `path`; returns the whole HTTP response (headers and body).
fn post(port: u16, path: &str, key: Option<&str>, body: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let key = key.map(|k| format!("X-AB-Key: {k}\r\n")).unwrap_or_default();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{key}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

fn arm_of(response: &str) -> String {
    response
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-ttc-arm: ").map(|a| a.trim().to_string()))
        .unwrap_or_else(|| panic!("no x-ttc-arm header: {response}"))
}

#[test]
fn bad_weights_or_an_unknown_arm_are_exit_2_before_the_model_loads() {
    for (spec, want) in [
        ("baseline=0.5,speculative_decoding=0.6", "--ab: the weights sum to 1.1, not 1"),
        ("baseline=0.5,warp=0.5", "--ab: arm `warp` is not a served policy (known: baseline, speculative_decoding"),
        ("baseline:0.5", "is not ARM=WEIGHT"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ttc"))
            .args(["serve", "--port", "0", "--model", "/nonexistent.gguf", "--ab", spec])
            .current_dir(repo())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert!(err.contains(want), "{spec}: {err}");
    }
}

#[test]
fn sticky_arms_and_records_that_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (mut s, port) = serve(&["--ab", "baseline=0.5,speculative_decoding=0.5", "--results", results.to_str().unwrap()]);
    let mut arms = Vec::new();
    // A sticky key lands on one arm every time, streamed or not.
    let first = arm_of(&chat(port, Some("user-42"), false));
    for stream in [false, true, true] {
        let r = chat(port, Some("user-42"), stream);
        assert_eq!(arm_of(&r), first);
        arms.push(arm_of(&r));
    }
    arms.insert(0, first.clone());
    // A malformed key (too long) is served normally, by a random arm.
    let long = "k".repeat(300);
    arms.push(arm_of(&chat(port, Some(&long), false)));
    arms.push(arm_of(&chat(port, None, true)));
    // A refused request (temperature out of range) is a record of its arm too, and so is a raw completion.
    let refused = post(port, "/v1/chat/completions", Some("user-42"), r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"x"}],"temperature":7}"#);
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert_eq!(arm_of(&refused), first);
    let completion = post(port, "/v1/completions", Some("user-42"), r#"{"model":"smollm2-135m","prompt":"Red, green,","max_tokens":3,"temperature":0}"#);
    assert!(completion.starts_with("HTTP/1.1 200"), "{completion}");
    assert_eq!(arm_of(&completion), first, "a key lands on the same arm on every endpoint");
    let started = Instant::now();
    s.0.kill().unwrap(); // SIGKILL: no shutdown, no final flush
    s.0.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));

    let store = ttc_results::ResultsStore::open(&results).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = store.load_run(&runs[0].run_id).unwrap();
    let mut records = run.records;
    records.sort_by(|a, b| a.sample_id.cmp(&b.sample_id));
    assert_eq!(records.len(), arms.len() + 2, "every finished request has its record after kill -9");
    // The refusal was written with the completion that followed it.
    let (refused, completion) = (&records[arms.len()], &records[arms.len() + 1]);
    assert_eq!((&refused.policy, refused.status, refused.error_class.as_deref()), (&first, ttc_types::RecordStatus::Error, Some("http_4xx")));
    assert_eq!((&completion.policy, completion.task.as_deref(), completion.output_tokens), (&first, Some("completions"), Some(3)));
    for (r, arm) in records.iter().zip(&arms) {
        assert_eq!((r.backend.as_str(), r.suite.as_str(), &r.policy, r.task.as_deref()), ("serve", "serve", arm, Some("chat")));
        assert_eq!(r.status, ttc_types::RecordStatus::Ok, "{r:?}");
        assert_eq!(r.output_tokens, Some(3));
        assert!(r.e2e_s.unwrap() > 0.0 && r.ttft_s.is_some());
        assert!(r.prediction.is_empty() && r.token_logprobs.is_none(), "content stored without --store-content");
    }
}
