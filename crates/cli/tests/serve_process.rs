//! `ttc serve` as a process: SIGTERM lets the stream in flight finish and exits 0, Ctrl-C (SIGINT) exits 0,
//! and an empty API key is refused at start-up with exit 2. Raw HTTP over std's TcpStream, loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    port: u16,
    /// stderr lines after the start-up line.
    lines: mpsc::Receiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts `ttc serve --port 0 ARGS` and waits for it to listen.
fn serve(args: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ttc"))
        .args(["serve", "--port", "0"])
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ttc serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let port = loop {
        let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("ttc serve never said it was serving");
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    Serve { child, port, lines }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -{name} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ttc serve still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_until_exit(s: &Serve) -> String {
    s.lines.try_iter().collect::<Vec<_>>().join("\n")
}

#[test]
fn sigterm_finishes_the_stream_in_flight_then_exits_0() {
    let mut s = serve(&["--shutdown-timeout", "120"]);
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let body = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Write a long story about a dragon."}],"max_tokens":48,"temperature":0,"stream":true}"#;
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    // Wait for generated content: the request is mid-stream when the signal lands.
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches("\"content\"").count() < 3 {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "stream ended early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    signal(&s.child, "TERM");
    // New connections are refused while the stream finishes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", s.port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"finish_reason\":\"length\"") && text.contains("data: [DONE]"), "the stream was cut: {text}");
    let status = wait_exit(&mut s.child, Duration::from_secs(30));
    let log = stderr_until_exit(&s);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM: shutting down") && log.contains("every open request finished"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn ctrl_c_on_an_idle_server_exits_0() {
    let mut s = serve(&[]);
    signal(&s.child, "INT");
    let status = wait_exit(&mut s.child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", stderr_until_exit(&s));
}

#[test]
fn an_empty_api_key_is_refused_with_exit_2() {
    for (flag, env) in [(Some(""), None), (None, Some(""))] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ttc"));
        cmd.args(["serve", "--port", "0"]).current_dir(repo()).env_remove("TTC_SERVE_API_KEY");
        if let Some(k) = flag {
            cmd.args(["--api-key", k]);
        }
        if let Some(k) = env {
            cmd.env("TTC_SERVE_API_KEY", k);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(60));
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(2), "flag {flag:?} env {env:?}: {err}");
        assert!(err.contains("the API key is empty"), "{err}");
    }
}
