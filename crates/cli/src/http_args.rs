//! `--header-timeout` and `--max-connections`: the connection limits of `ttc serve` and `ttc dashboard`.

use clap::Args;
use std::time::Duration;
use ttc_http::{HttpOptions, DEFAULT_MAX_CONNECTIONS};

/// The limits as command-line flags (flattened into `ttc serve` and `ttc dashboard`).
#[derive(Args, Debug, Clone, PartialEq)]
pub struct HttpArgs {
    /// Seconds a client has to send a request's headers; an idle keep-alive connection is closed after as long.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = ttc_http::parse_secs)]
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the operating system's accept queue.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl HttpArgs {
    pub fn options(&self) -> HttpOptions {
        HttpOptions { header_timeout: self.header_timeout, max_connections: self.max_connections, shutdown_grace: None }
    }
}
