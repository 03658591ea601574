//! Cost of one forward as a function of its number of rows, relative to a one-row decode step, after a 100-token
//! prefix: what speculative verification (k+1 rows) and batching pay per extra row.
//! `cargo run --example forward_rows -p ttc-engine -- MODEL.gguf`
use std::time::Instant;
use ttc_engine::{Engine, LogitsMode, WeightFormat};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: forward_rows MODEL.gguf [weights]")?;
    let format = std::env::args().nth(2).map(|w| w.parse()).transpose()?.unwrap_or(WeightFormat::Auto);
    let engine = Engine::load(path.as_ref(), format)?;
    let prefix: Vec<u32> = (0..100).map(|i| 1000 + i * 7).collect();
    let mut cache = engine.model.new_cache()?;
    engine.model.forward(&prefix, &mut cache, LogitsMode::None)?;
    let mut base = 0.0;
    println!("rows   ms/forward   x one row   ms/row");
    for rows in [1usize, 2, 3, 4, 5, 6, 8, 12, 16] {
        let input: Vec<u32> = (0..rows as u32).map(|i| 2000 + i).collect();
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            engine.model.forward(&input, &mut cache, LogitsMode::All)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            cache.truncate(prefix.len());
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        if rows == 1 {
            base = ms;
        }
        println!("{rows:>4}   {ms:>10.2}   {:>9.2}   {:>6.2}", ms / base, ms / rows as f64);
    }
    Ok(())
}
