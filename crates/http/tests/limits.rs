//! The accept loop's limits over raw TCP: a client stalling in its headers is cut after the header timeout,
//! connections beyond the limit wait, and shutdown finishes in-flight requests (or cuts them at the grace).

use axum::routing::get;
use axum::Router;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use ttc_http::{serve, HttpOptions, Served};

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "slow done"
        }),
    )
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<Served>>,
}

async fn start(opts: HttpOptions) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app(), opts, async move {
        let _ = rx.await;
    }));
    Server { addr, stop: Some(tx), task }
}

impl Server {
    async fn stop(mut self) -> Served {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap()
    }
}

/// Reads until the server closes the connection (EOF or reset); what was received.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).into_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn get_close(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    read_to_close(&mut s).await
}

fn opts(header_ms: u64, max_connections: u32) -> HttpOptions {
    HttpOptions { header_timeout: Duration::from_millis(header_ms), max_connections, shutdown_grace: None }
}

#[tokio::test]
async fn partial_headers_are_cut_after_the_header_timeout() {
    let server = start(opts(300, 16)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let t = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut s)).await.expect("connection left open");
    let took = t.elapsed();
    assert!(!got.contains("hello"), "answered a request whose headers never ended: {got}");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "closed after {took:?}");

    // A silent connection (nothing sent at all) is cut the same way.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut s)).await.expect("idle connection left open");
    assert!(t.elapsed() >= Duration::from_millis(250));

    // Complete requests are unaffected.
    assert!(get_close(server.addr, "/").await.ends_with("hello"));
    assert_eq!(server.stop().await, Served { cut_connections: 0 });
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let server = start(opts(5_000, 2)).await;
    let mut hold = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap(); // partial: holds its slot
        hold.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(get_close(server.addr, "/"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "a third connection was served with the limit at 2");
    drop(hold.pop());
    let got = tokio::time::timeout(Duration::from_secs(3), waiting).await.expect("not served after a slot freed").unwrap();
    assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("hello"), "{got}");
    drop(hold);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_and_refuses_new_ones() {
    let server = start(opts(5_000, 16)).await;
    let addr = server.addr;
    let slow = tokio::spawn(get_close(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let served = server.stop().await;
    assert_eq!(served, Served { cut_connections: 0 });
    let got = slow.await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("slow done"), "{got}");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn shutdown_cuts_what_is_still_open_at_the_grace_deadline() {
    let mut o = opts(5_000, 16);
    o.shutdown_grace = Some(Duration::from_millis(100));
    let server = start(o).await;
    let slow = tokio::spawn(get_close(server.addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    assert_eq!(server.stop().await, Served { cut_connections: 1 });
    assert!(t.elapsed() < Duration::from_millis(500), "waited {:?} past a 100 ms grace", t.elapsed());
    let got = slow.await.unwrap();
    assert!(!got.contains("slow done"), "{got}");
}
