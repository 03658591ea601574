//! The short soak of `ttc serve` (20 clients, 5 s): no panic, every response well-formed, active requests
//! back to 0, memory bounded, exit 0 on SIGTERM. The full run (200 clients, 60 s) is
//! `cargo run -p ttc-cli --example serve_soak` (docs/serve.md).

mod soak;

use std::path::Path;
use std::time::Duration;

#[test]
fn short_soak_of_ttc_serve() {
    let cfg = soak::SoakConfig {
        ttc: env!("CARGO_BIN_EXE_ttc").into(),
        cwd: Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
        clients: 20,
        duration: Duration::from_secs(5),
        max_tokens: 16,
        max_queue: 8,
        max_rss_mib: 4096,
    };
    let report = soak::run(&cfg);
    eprintln!("{}", report.summary());
    if let Err(e) = report.check(&cfg) {
        panic!("{e}");
    }
    assert!(report.disconnects > 0 && report.bad_requests > 0, "the soak did not exercise its faults: {}", report.summary());
}
