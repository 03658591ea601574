//! ROUGE-L over 10,000 pairs: our scorer (the `rougers` port) against Google's rouge-score in Python, timed
//! in the same run on the same pairs (tools/rouge_bench.py). Reports the speed-up; needs `python3` with
//! `rouge-score` installed.
//!
//! cargo run -p ttc-eval --example rouge_bench [-- PAIRS] [--stem]

use std::io::Write;
use std::time::Instant;
use ttc_eval::metrics::rouge::rouge_l;

/// Summary-like pairs from a fixed vocabulary with a xorshift generator: 15-60 words, about half shared.
fn pairs(n: usize) -> Vec<(String, String)> {
    const WORDS: &str = "the customer agent case order refund shipping product issue policy account contact \
        return warranty delivery payment invoice resolved escalated priority routing transfer handle time quarter \
        month region state sales lead opportunity quote discount renewal support ticket knowledge article shoes \
        jacket yoga mat running waterproof sole technology calibration software update regular cleaning damp \
        cloth dry heat window days business method original packaging unworn within after before during first \
        second third was were is are has have had will would should could can may might must not never always";
    let vocab: Vec<&str> = WORDS.split_whitespace().collect();
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 15 + (next() % 46) as usize;
            let reference: Vec<&str> = (0..len).map(|_| vocab[(next() % vocab.len() as u64) as usize]).collect();
            let prediction: Vec<&str> = reference
                .iter()
                .map(|w| if next() % 2 == 0 { *w } else { vocab[(next() % vocab.len() as u64) as usize] })
                .collect();
            (prediction.join(" "), reference.join(" ") + ".")
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let stem = args.iter().any(|a| a == "--stem");
    let data = pairs(n);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pairs.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
    for (p, r) in &data {
        writeln!(f, "{}", serde_json::json!({"pred": p, "ref": r}))?;
    }
    f.flush()?;
    drop(f);

    let t = Instant::now();
    let total: f64 = data.iter().map(|(p, r)| rouge_l(p, r, stem)).sum();
    let rust_s = t.elapsed().as_secs_f64();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/rouge_bench.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(if stem { "stem" } else { "plain" })
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run python3 {script}: {e}"))?;
    anyhow::ensure!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace();
    let py_s: f64 = it.next().unwrap_or("nan").parse()?;
    let py_total: f64 = it.next().unwrap_or("nan").parse()?;
    anyhow::ensure!((py_total - total).abs() < 1e-6 * n as f64, "scores differ: rust {total} python {py_total}");
    println!("ROUGE-L over {n} pairs (use_stemmer={stem}), same run, one core each:");
    println!("  rouge-score (Python): {py_s:.3} s");
    println!("  ttc-eval (Rust):      {rust_s:.4} s");
    println!("  speed-up:             {:.0}x (sum of F-measures equal: {total:.6})", py_s / rust_s);
    Ok(())
}
