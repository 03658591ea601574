//! Calibrated exit heads on the real model: fitted heads survive a save/load bit for bit, the head of the last
//! layer is the identity, self-speculation through a calibrated draft stays lossless, the calibrated heads beat
//! the logit lens on a prompt they were not fitted on, and bad heads files are refused with the fix.

mod common;
use ttc_engine::calibrate::{fit_heads, score_layers, CalibrateOptions};
use ttc_engine::exit_heads::file_sha256;
use ttc_engine::policy::{Algorithm, ExitHeadKind, FixedExitParams, SelfSpecParams};
use ttc_engine::{ChatMessage, Engine, EngineError, ExitHeads, GenRequest, Policy, WeightFormat};

/// Calibration prompts long enough together for a well-posed 576-wide fit (>= 577 positions).
const FIT: &[&str] = &[
    "Case records: 500Wt01 (Billing, opened 2024-01-03 by Ana Ruiz, status Closed), 500Wt02 (Shipping, opened 2024-01-05 by Ben Ode, status Open), 500Wt03 (Billing, opened 2024-01-09 by Cy Lam, status Escalated), 500Wt04 (Returns, opened 2024-01-11 by Dee Fox, status Open). Policy: escalated billing cases go to the finance queue; open shipping cases older than three days get a follow-up email; returns are processed within 14 days. List each case with the action the policy requires, one per line.",
    "Task: prepare a quarterly report. Actions: collect_sales_data, collect_support_metrics, merge_tables, draft_summary, review_with_manager, publish_report. The sales and support data can be collected in parallel; the merge needs both; the draft needs the merge; review needs the draft; publish needs the review. Write the workflow as Node: (numbered steps) and Edge: (START -> 1, ...) lists.",
    "Explain, for a new support agent, how to handle a customer who reports a double charge on their card: what to check in the billing system, what to tell the customer, when to issue a refund, and when to escalate. Use short numbered steps and keep each step to one sentence.",
    "Knowledge article KA-0107: 'Premium customers may return any item within 60 days for a full refund. Standard customers have 30 days. Opened software cannot be returned but may be exchanged for the same title. Gift purchases are refunded as store credit.' Using the article, answer: a standard customer opened a software box 10 days ago and wants money back. What can they get? Explain briefly.",
];
const HELD_OUT: &str = "Orders this month: ORD-1 (3 items, shipped), ORD-2 (1 item, pending), ORD-3 (5 items, shipped), ORD-4 (2 items, cancelled). Which orders have shipped, and how many items did they contain in total? Answer in one sentence.";

fn ids(e: &Engine, text: &str) -> Vec<u32> {
    e.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap()
}

/// One engine with heads fitted for layers 24 and 30 on FIT (about 1,000 positions), shared by the tests.
fn fitted() -> &'static (Engine, ExitHeads) {
    static CELL: std::sync::OnceLock<(Engine, ExitHeads)> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let mut e = Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap();
        let prompts: Vec<Vec<u32>> = FIT.iter().map(|t| ids(&e, t)).collect();
        let opts = CalibrateOptions { layers: vec![24, 30], max_new_tokens: 24, ridge: 1e-3 };
        let sha = file_sha256(&e.model_path).unwrap();
        let heads = fit_heads(&e, &prompts, &opts, &sha, "unsaved".into(), &mut |_, _| {}).unwrap();
        e.install_exit_heads(heads.clone());
        (e, heads)
    })
}

fn hidden_rows(e: &Engine, text: &str, layer: usize) -> candle_core::Tensor {
    let mut cache = e.model.new_cache().unwrap();
    e.model.forward_hidden(&ids(e, text), &mut cache, &[layer]).unwrap().remove(0)
}

#[test]
fn saved_and_loaded_heads_give_identical_logits() {
    let (e, heads) = fitted();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf.exit-heads.safetensors");
    heads.save(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 30_000_000, "heads file is {size} bytes");
    let loaded = ExitHeads::load(&path, &heads.gguf_sha256, e.model.cfg.n_embd).unwrap();
    assert_eq!(loaded.layers(), vec![24, 30]);
    let h = hidden_rows(e, HELD_OUT, 24);
    let a: Vec<f32> = heads.apply(24, &h).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = loaded.apply(24, &h).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b, "bit-identical after a round trip");
}

#[test]
fn the_calibrated_head_of_the_last_layer_is_the_identity() {
    // The target is exactly linear in the last layer's input (W = diag(g), b = 0), so a nearly unregularised fit must
    // find it; the ridge of the shipped default would shrink it slightly.
    let (e, _) = fitted();
    let prompts: Vec<Vec<u32>> = FIT.iter().map(|t| ids(e, t)).collect();
    let opts = CalibrateOptions { layers: vec![30], max_new_tokens: 24, ridge: 1e-6 };
    let heads = fit_heads(e, &prompts, &opts, "sha", "unsaved".into(), &mut |_, _| {}).unwrap();
    let h = hidden_rows(e, HELD_OUT, 30);
    let full = e.model.logits(&h).unwrap().to_vec2::<f32>().unwrap();
    let cal = e.model.head(&heads.apply(30, &h).unwrap()).unwrap().to_vec2::<f32>().unwrap();
    let mut worst = 0f32;
    for (f, c) in full.iter().zip(&cal) {
        assert_eq!(ttc_engine::argmax(f), ttc_engine::argmax(c));
        for (x, y) in f.iter().zip(c) {
            worst = worst.max((x - y).abs());
        }
    }
    // Logits are O(10); what is left is f32 accumulation.
    assert!(worst < 0.05, "max |logit difference| {worst}");
}

#[test]
fn calibrated_heads_agree_with_the_full_model_more_than_the_logit_lens_on_a_held_out_prompt() {
    let (e, heads) = fitted();
    let s = score_layers(e, Some(heads), &[ids(e, HELD_OUT)], &[24], 24, &mut |_, _| {}).unwrap();
    let (lens, cal) = (s[0].logit_lens_top1, s[0].calibrated_top1.unwrap());
    assert!(s[0].positions > 10);
    assert!(cal > lens, "calibrated {cal:.3} vs logit lens {lens:.3}");
    assert!(s[0].calibrated_kl.unwrap() < s[0].logit_lens_kl);
}

#[test]
fn self_speculation_through_calibrated_drafts_is_identical_to_greedy() {
    let (e, _) = fitted();
    let spec = Policy::new(
        "self_cal",
        Algorithm::SpeculativeSelf(SelfSpecParams {
            lookahead_tokens: 6,
            draft_layers: 24,
            verification_threshold: 0.5,
            heads: ExitHeadKind::Calibrated,
        }),
    );
    for text in [HELD_OUT, "Copy the following customer address exactly: 1200 Market Street, Suite 400, San Francisco, CA 94103."] {
        let req = GenRequest { prompt: ids(e, text), max_tokens: 24, ..Default::default() };
        let (b, _) = e.generate_policy(&req, &Policy::baseline(), None, &mut |_| true).unwrap();
        let (s, stats) = e.generate_policy(&req, &spec, None, &mut |_| true).unwrap();
        assert_eq!(s.token_ids, b.token_ids, "{text}");
        assert!(stats.drafted_tokens.unwrap() > 0);
    }
}

#[test]
fn fixed_exit_reads_the_calibrated_head() {
    // The first token of a fixed exit at 24 is argmax(LMhead(head_24(h_24))) of the prompt's last row.
    let (e, heads) = fitted();
    let p = Policy::new("ee24", Algorithm::EarlyExitFixed(FixedExitParams { exit_layer: 24, heads: ExitHeadKind::Calibrated }));
    let req = GenRequest { prompt: ids(e, HELD_OUT), max_tokens: 1, ..Default::default() };
    let (out, _) = e.generate_policy(&req, &p, None, &mut |_| true).unwrap();
    let h = hidden_rows(e, HELD_OUT, 24);
    let last = h.narrow(0, h.dim(0).unwrap() - 1, 1).unwrap();
    let row = e.model.head(&heads.apply(24, &last).unwrap()).unwrap().to_vec2::<f32>().unwrap().remove(0);
    assert_eq!(out.token_ids, vec![ttc_engine::argmax(&row)]);
}

#[test]
fn bad_heads_files_are_refused_with_the_fix() {
    let (e, heads) = fitted();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.safetensors");
    heads.save(&path).unwrap();
    let d = e.model.cfg.n_embd;
    let msg = |r: ttc_engine::Result<ExitHeads>| match r {
        Err(e @ EngineError::ExitHeads { .. }) => e.to_string(),
        other => panic!("expected an exit-heads error, got {:?}", other.map(|h| h.layers())),
    };
    // Another model's file.
    let m = msg(ExitHeads::load(&path, &"0".repeat(64), d));
    assert!(m.contains("another model") && m.contains("ttc calibrate"), "{m}");
    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let m = msg(ExitHeads::load(&path, &heads.gguf_sha256, d));
    assert!(m.contains("truncated") && m.contains("h.safetensors"), "{m}");
    // A policy asking for a layer the heads do not have: exit-heads error naming layer and file.
    let p = Policy::new("ee26", Algorithm::EarlyExitFixed(FixedExitParams { exit_layer: 26, heads: ExitHeadKind::Calibrated }));
    let m = e.check_policy(&p).unwrap_err().to_string();
    assert!(m.contains("layers 26") && m.contains("24,30") && m.contains("ttc calibrate"), "{m}");
    // No heads at all (a fresh engine whose model has no heads file beside it).
    let tmp_model = dir.path().join("copy.gguf");
    std::fs::copy(&e.model_path, &tmp_model).unwrap();
    let bare = Engine::load(&tmp_model, WeightFormat::Q8_0).unwrap();
    let m = bare.check_policy(&p).unwrap_err().to_string();
    assert!(m.contains("no heads file") && m.contains("copy.gguf.exit-heads.safetensors"), "{m}");
}
