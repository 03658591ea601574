//! `--results s3://bucket/prefix` through the binary: bad URLs, missing credentials and an unreachable
//! endpoint are exit 2 naming what and where; against a real S3-compatible server (moto, from PyPI: skipped
//! with the reason when it is not installed) `ttc run` stores a small run and `ttc summary`, `report`,
//! `check` and `compare` read it back.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ALLOW_HTTP", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SKIP_SIGNATURE",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `ttc args` with exactly the AWS variables `env` (none of the caller's).
fn ttc(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ttc"));
    cmd.args(args).current_dir(repo()).env("RUST_BACKTRACE", "1").env_remove("TTC_RESULTS");
    for v in AWS_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied()).output().expect("run ttc")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn usage_error(o: &Output, wanted: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(!t.contains("panicked") && !t.contains("stack backtrace"), "{t}");
    for w in wanted {
        assert!(t.contains(w), "`{w}` not in:\n{t}");
    }
}

const KEYS: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];

#[test]
fn bad_locations_are_exit_2_naming_what_and_where() {
    usage_error(&ttc(&["summary", "--results", "gs://b/p"], &KEYS), &["gs://b/p", "unsupported scheme"]);
    usage_error(&ttc(&["summary", "--results", "s3:///p"], &KEYS), &["s3:///p", "no bucket"]);
    usage_error(&ttc(&["report", "--results", "s3://b/p"], &[]), &["s3://b/p", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    usage_error(&ttc(&["run", "--dry-run", "--results", "s3://b/p"], &[]), &["--results", "s3://b/p", "no AWS credentials"]);
    // Nothing listens on port 1: refused at once, and the retries are short (seconds, not object_store's minutes).
    let start = Instant::now();
    let down = [KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"), ("AWS_ALLOW_HTTP", "true")];
    usage_error(&ttc(&["check", "--results", "s3://b/p"], &down), &["s3://b/p", "http://127.0.0.1:1", "AWS_ENDPOINT_URL"]);
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
}

/// moto's S3 server on a free port, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let have = Command::new("python3").args(["-c", "import moto.server"]).output();
    if !have.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: the Python module moto is not installed (pip install \"moto[server]\", see scripts/test-requirements.txt)");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not listen on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

/// Runs Python `code` with `s3`, a boto3 client of the moto server (boto3 comes with moto); returns stdout.
fn boto(port: u16, code: &str) -> String {
    let prelude = format!(
        "import boto3, botocore\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n"
    );
    let out = Command::new("python3").args(["-c", &format!("{prelude}{code}")]).output().expect("python3");
    assert!(out.status.success(), "{code}\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_run_stored_in_s3_is_read_back_by_every_analysis_command() {
    let Some(moto) = start_moto() else { return };
    boto(moto.port, "s3.create_bucket(Bucket='ttc-results')");
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let env = [KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", endpoint.as_str()), ("AWS_ALLOW_HTTP", "true"), ("AWS_REGION", "us-east-1")];
    let url = "s3://ttc-results/bench/nightly";
    let started = Instant::now();
    let run = ttc(
        &["run", "--samples", "1", "--max-tokens", "2", "--policies", "baseline,early_exit_28", "--concurrency", "1", "--no-capacity",
            "--quiet", "--run-id", "r", "--results", url],
        &env,
    );
    assert!(run.status.success(), "ttc run:\n{}", text(&run));
    eprintln!("ttc run into moto: {:?}", started.elapsed());

    // What parts rely on: the server refuses a conditional PUT (If-None-Match: *) over an existing object.
    let again = boto(
        moto.port,
        "key = 'bench/nightly/run_id=r/part-00000.parquet'\nbefore = s3.get_object(Bucket='ttc-results', Key=key)['Body'].read()\n\
         try:\n    s3.put_object(Bucket='ttc-results', Key=key, Body=b'x', IfNoneMatch='*'); print('overwritten')\n\
         except botocore.exceptions.ClientError as e: print(e.response['Error']['Code'])\n\
         assert s3.get_object(Bucket='ttc-results', Key=key)['Body'].read() == before",
    );
    assert_eq!(again, "PreconditionFailed", "moto must refuse to overwrite a part");
    let summary = ttc(&["summary", "--results", url, "--run", "r", "--format", "json"], &env);
    assert!(summary.status.success(), "{}", text(&summary));
    let v: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    let n: u64 = v["groups"].as_array().unwrap().iter().map(|g| g["n"].as_u64().unwrap()).sum();
    assert!(n >= 4, "two policies x one sample x two suites: {n}\n{}", text(&summary));
    for args in [
        &["report", "--results", url, "--run", "r"][..],
        &["check", "--results", url, "--run", "r"],
        &["compare", "--results", url, "--run", "r", "--a", "baseline", "--b", "early_exit_28"],
        &["compact", "--results", url],
        &["summary", "--results", url],
    ] {
        let o = ttc(args, &env);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{args:?} (exit 1 is a failing KPI, fine here):\n{}", text(&o));
    }
    // The run id is taken: a second run with it is refused before anything runs.
    usage_error(&ttc(&["run", "--dry-run", "--run-id", "r", "--results", url], &env), &["--run-id r", "exists"]);
}
