//! The HTTP/1 accept loop behind `ttc serve` and `ttc dashboard`.
//!
//! `axum::serve` has no header-read timeout and no connection limit, so one client sending its headers a
//! byte at a time (or a thousand idle sockets) could hold the server forever. This loop serves an axum
//! [`Router`] with hyper's HTTP/1 connection directly and adds:
//!
//! - a header-read timeout: a connection that has not sent a complete request head within
//!   [`HttpOptions::header_timeout`] (counted from the moment the server waits for it, so idle keep-alive
//!   connections too) is closed;
//! - a connection limit: at most [`HttpOptions::max_connections`] connections are served; further ones wait
//!   in the kernel's accept queue until a slot frees;
//! - graceful shutdown: when the `shutdown` future resolves, new connections are refused, every open
//!   connection finishes its in-flight request and closes, and after [`HttpOptions::shutdown_grace`] the rest
//!   are closed by force.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Limits of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// How long a client may take to send a request head, and how long a keep-alive connection may sit idle.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: u32,
    /// After shutdown starts, how long open requests may take before their connections are closed by force
    /// (None: wait for them).
    pub shutdown_grace: Option<Duration>,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { header_timeout: DEFAULT_HEADER_TIMEOUT, max_connections: DEFAULT_MAX_CONNECTIONS, shutdown_grace: None }
    }
}

/// A positive, finite number of seconds (fractions allowed): how `--header-timeout` and `--shutdown-timeout`
/// are read.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 1e9) {
        return Err(format!("`{s}`: must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// How a [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Connections still open when the shutdown grace ran out, closed by force.
    pub cut_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in flight, then close.
    Draining,
    /// Close now.
    Closing,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the crate docs). Dropping the
/// returned future closes every connection at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: HttpOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Served> {
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1) as usize));
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting: at the limit, clients wait in the accept queue, not in our memory.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed; ends the loop rather than panicking
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        tokio::spawn(connection(stream, app.clone(), opts.header_timeout, phase_rx.clone(), permit));
    }
    drop(listener); // refuse new connections at once
    let _ = phase_tx.send(Phase::Draining);
    // Every connection holds a slot until it closes: holding all of them means every connection is done.
    let all = slots.acquire_many(opts.max_connections.max(1));
    let cut = match opts.shutdown_grace {
        None => {
            let _ = all.await;
            0
        }
        Some(grace) => match tokio::time::timeout(grace, all).await {
            Ok(_) => 0,
            Err(_) => opts.max_connections.max(1) - slots.available_permits() as u32,
        },
    };
    let _ = phase_tx.send(Phase::Closing);
    Ok(Served { cut_connections: cut })
}

/// Per-connection failures (the client reset before we accepted) are routine; others (out of file
/// descriptors) get a pause so the loop does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        eprintln!("warning: accepting a connection failed: {e}; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn connection(
    stream: TcpStream,
    app: Router,
    header_timeout: Duration,
    mut phase: watch::Receiver<Phase>,
    _slot: OwnedSemaphorePermit,
) {
    // Streamed tokens are small writes; Nagle's algorithm would hold them back.
    let _ = stream.set_nodelay(true);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return, // errors (timeouts, resets) only concern this client
            changed = phase.changed() => match changed.map(|_| *phase.borrow_and_update()) {
                Ok(Phase::Draining) => conn.as_mut().graceful_shutdown(),
                Ok(Phase::Serving) => {}
                Ok(Phase::Closing) | Err(_) => return, // forced, or the server was dropped
            },
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM; returns which. A signal that cannot be watched never
/// resolves (rather than shutting down at once).
pub async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => "Ctrl-C",
            _ = term => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c.await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_secs("10"), Ok(Duration::from_secs(10)));
        for bad in ["0", "-1", "nan", "inf", "ten", ""] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
