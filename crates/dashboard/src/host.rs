//! DNS-rebinding protection. A page on `evil.example` whose name is re-pointed at 127.0.0.1 can make the
//! browser send requests to a dashboard on localhost, and read the answers, since to the browser they are
//! same-origin. Such requests carry `Host: evil.example:8765`; a dashboard bound to a loopback address answers
//! only requests whose Host names that address. Bound to another address (`--host 0.0.0.0`, a LAN IP) it
//! is exposed on purpose and takes any Host.

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::http::uri::Authority;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

use crate::api::{ApiError, AppState};

/// The Host values a loopback-bound dashboard accepts: `localhost`, `127.0.0.1`, `[::1]` and the bound
/// address, each with the bound port (or without a port when that is 80).
#[derive(Debug, Clone, PartialEq)]
pub struct HostCheck {
    names: Vec<String>,
    port: u16,
}

impl HostCheck {
    /// The check for a listener bound at `addr`: `None` (any Host) when the address is not loopback.
    pub fn for_bound(addr: SocketAddr) -> Option<HostCheck> {
        if !addr.ip().is_loopback() {
            return None;
        }
        let bound = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec();
        if !names.contains(&bound) {
            names.push(bound);
        }
        Some(HostCheck { names, port: addr.port() })
    }

    /// Whether a request with this Host header value may be answered.
    pub fn allows(&self, host: &str) -> bool {
        let Ok(a) = host.parse::<Authority>() else { return false };
        let port = a.port_u16().unwrap_or(80);
        port == self.port && self.names.iter().any(|n| n.eq_ignore_ascii_case(a.host()))
    }

    fn allowed(&self) -> String {
        self.names.iter().map(|n| format!("{n}:{}", self.port)).collect::<Vec<_>>().join(", ")
    }
}

/// Middleware: 403 with the API's JSON error for a Host the check refuses. A request without Host (HTTP/1.0
/// tools) passes: browsers always send one, so it cannot come from a rebound page.
pub async fn check_host(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let (Some(check), Some(host)) = (&st.host_check, req.headers().get(HOST)) {
        let host = String::from_utf8_lossy(host.as_bytes());
        if !check.allows(&host) {
            let msg = format!(
                "Host `{host}` is not this dashboard's address (allowed: {}); requests naming other hosts are \
                 refused against DNS rebinding. To serve other names, bind them with --host (e.g. 0.0.0.0).",
                check.allowed()
            );
            return ApiError::new(StatusCode::FORBIDDEN, msg).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_accept_their_own_names_only() {
        let c = HostCheck::for_bound("127.0.0.1:8765".parse().unwrap()).unwrap();
        for ok in ["localhost:8765", "LOCALHOST:8765", "127.0.0.1:8765", "[::1]:8765"] {
            assert!(c.allows(ok), "{ok}");
        }
        for bad in ["evil.example:8765", "localhost:8766", "localhost", "127.0.0.1", "", "127.0.0.1:8765@x", "[::1"] {
            assert!(!c.allows(bad), "{bad}");
        }
        let c = HostCheck::for_bound("127.0.0.2:80".parse().unwrap()).unwrap();
        assert!(c.allows("127.0.0.2") && c.allows("localhost:80") && !c.allows("127.0.0.3"));
        let c = HostCheck::for_bound("[::1]:9000".parse().unwrap()).unwrap();
        assert!(c.allows("[::1]:9000") && c.allows("localhost:9000"));
        assert_eq!(HostCheck::for_bound("0.0.0.0:8765".parse().unwrap()), None);
        assert_eq!(HostCheck::for_bound("192.168.1.4:8765".parse().unwrap()), None);
    }
}
