//! The `ttc serve` soak benchmark: N concurrent streaming clients for D seconds against the real binary on
//! 127.0.0.1, with random mid-stream disconnects, bad requests and stalled headers (see
//! `tests/soak/mod.rs` for what is checked). Exit 1 when a check fails.
//!
//! ```sh
//! cargo build --bin ttc && cargo run -p ttc-cli --example serve_soak -- [--clients 200] [--seconds 60] [--max-queue 64] [--ttc PATH]
//! ```

#[path = "../tests/soak/mod.rs"]
mod soak;

use std::path::{Path, PathBuf};
use std::time::Duration;

fn main() {
    let mut cfg = soak::SoakConfig {
        // target/<profile>/examples/serve_soak -> target/<profile>/ttc
        ttc: std::env::current_exe().ok().and_then(|p| Some(p.parent()?.parent()?.join("ttc"))).unwrap_or_else(|| PathBuf::from("ttc")),
        cwd: Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
        clients: 200,
        duration: Duration::from_secs(60),
        max_tokens: 16,
        max_queue: 64,
        max_rss_mib: 4096,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = || value.parse::<u64>().unwrap_or_else(|_| usage(&format!("{flag} {value}: not a number")));
        match flag.as_str() {
            "--clients" => cfg.clients = num() as usize,
            "--seconds" => cfg.duration = Duration::from_secs(num()),
            "--max-queue" => cfg.max_queue = num() as usize,
            "--max-tokens" => cfg.max_tokens = num() as u32,
            "--max-rss-mib" => cfg.max_rss_mib = num(),
            "--ttc" => cfg.ttc = PathBuf::from(value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if !cfg.ttc.exists() {
        usage(&format!("{} not found: build it first (cargo build --bin ttc) or pass --ttc PATH", cfg.ttc.display()));
    }
    eprintln!("soak: {} clients for {:?} against {} (max_tokens {}, --max-queue {})", cfg.clients, cfg.duration, cfg.ttc.display(), cfg.max_tokens, cfg.max_queue);
    let report = soak::run(&cfg);
    println!("{}", report.summary());
    println!(
        "requests completed: {} | p99 latency: {:.2} s | peak RSS: {:.0} MiB | cancelled requests: {} (client disconnects {})",
        report.completed,
        report.percentile(99.0),
        report.peak_rss_mib,
        report.server_cancelled,
        report.disconnects
    );
    if let Err(e) = report.check(&cfg) {
        eprintln!("FAIL: {e}");
        std::process::exit(1);
    }
    println!("PASS");
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: serve_soak [--clients N] [--seconds S] [--max-queue N] [--max-tokens N] [--max-rss-mib N] [--ttc PATH]");
    std::process::exit(2);
}
