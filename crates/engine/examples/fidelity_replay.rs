//! Cost of the fidelity replay (docs/metrics.md, "Fidelity") for one sample under every policy of a policies file,
//! the way the runner did it before and does it now, interleaved in one process so machine load hits both alike:
//! - before: per policy, a teacher-forced pass over prompt + trajectory for the full model's rows, then the
//!   policy's replay with a cold prompt prefill;
//! - now: the rows kept from greedy decoding, and the policies' replays sharing one prompt prefix cache.
//!
//! Both give the same fidelity values (checked here; `crates/engine/tests/fidelity.rs` pins it).
//! `cargo run --example fidelity_replay -p ttc-engine -- MODEL.gguf configs/policies.yaml [rounds]`
use std::time::Instant;
use ttc_engine::fidelity::Trajectory;
use ttc_engine::{load_policies, ChatMessage, Engine, GenRequest, WeightFormat};

/// A CRMArena-sized prompt (about 1,000 tokens of context, then a question), one per seed.
fn prompt(seed: usize) -> Vec<ChatMessage> {
    let record = |i: usize| {
        format!(
            "Case {i}: customer {} reported that order {} arrived late; agent {} issued a refund of {} dollars on day {}.",
            1000 + seed * 31 + i,
            5000 + i * 7,
            10 + i % 9,
            20 + (i * 13 + seed) % 80,
            1 + (i * 3 + seed) % 28
        )
    };
    let context: Vec<String> = (0..40).map(record).collect();
    vec![
        ChatMessage { role: "system".into(), content: "You are a customer-service analyst. Answer briefly.".into() },
        ChatMessage {
            role: "user".into(),
            content: format!("{}\n\nWhich agent issued the largest refund, and for which order?", context.join("\n")),
        },
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: fidelity_replay MODEL.gguf POLICIES.yaml [rounds]")?;
    let policies = load_policies(args.next().ok_or("missing POLICIES.yaml")?.as_ref())?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let engine = Engine::load(model.as_ref(), WeightFormat::Auto)?;
    let (mut before_s, mut now_s) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let req = GenRequest { prompt: engine.prompt_tokens(&prompt(round))?, max_tokens: 64, ..Default::default() };
        let traj = engine.greedy_trajectory(&req)?;

        let t = Instant::now();
        let mut before = Vec::new();
        for p in &policies {
            let rows = engine.teacher_forced_rows(&req.prompt, &traj.tokens)?;
            let old = Trajectory { tokens: traj.tokens.clone(), rows };
            before.push(engine.fidelity(&req, p, None, &old)?);
        }
        before_s.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let cache = engine.new_prefix_cache(256 << 20)?;
        let now = engine.with_thread_prefix_cache(&cache, || {
            policies.iter().map(|p| engine.fidelity(&req, p, None, &traj)).collect::<Result<Vec<_>, _>>()
        })?;
        now_s.push(t.elapsed().as_secs_f64());

        let same = before == now;
        println!(
            "round {round}: {} prompt tokens, {} policies: before {:.1} s, now {:.1} s ({:.2}x), values identical: {same}",
            req.prompt.len(),
            policies.len(),
            before_s[round],
            now_s[round],
            before_s[round] / now_s[round]
        );
        if !same {
            return Err("the two replays disagree".into());
        }
    }
    let (b, n): (f64, f64) = (before_s.iter().sum(), now_s.iter().sum());
    println!("total: before {b:.1} s, now {n:.1} s, speed-up {:.2}x", b / n);
    Ok(())
}
