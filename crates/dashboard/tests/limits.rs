//! The dashboard's HTTP loop: a client that stalls in its headers is cut after the header-read timeout,
//! and complete requests are still served.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ttc_http::HttpOptions;

async fn read_to_close(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await.expect("connection left open");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_are_cut_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let state = ttc_dashboard::app_state(dir.path(), None, None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = HttpOptions { header_timeout: Duration::from_millis(300), ..HttpOptions::default() };
    tokio::spawn(ttc_dashboard::serve_with(listener, state, http));

    let mut s = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    // The Host names the bound address and port (the dashboard refuses other hosts: DNS rebinding).
    let partial = format!("GET /api/runs HTTP/1.1\r\nHost: {addr}\r\nAccept: applica");
    s.write_all(partial.as_bytes()).await.unwrap();
    let got = read_to_close(&mut s).await;
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "closed after {took:?}");
    assert!(!got.contains("200 OK"), "{got}");

    let mut s = TcpStream::connect(addr).await.unwrap();
    let full = format!("GET /api/runs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(full.as_bytes()).await.unwrap();
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}
