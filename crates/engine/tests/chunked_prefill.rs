//! Chunked prefill and cancellation within one chunk, on the real model.
//!
//! - Chunking a prompt does not change its logits (each row's arithmetic is independent of the other rows of its
//!   forward), so a chunked prefill gives the same bits as a whole one, and the same greedy tokens.
//! - A request cancelled during its prefill stops before the next chunk: the model runs exactly the chunks it had
//!   started, counted by `LlamaModel::tokens_forwarded`, in the direct path and in the scheduler.
//! - The scheduler spreads a long prompt over steps with a token budget, so a running sequence keeps decoding
//!   while it prefills, and both outputs equal their solo runs.

mod common;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use ttc_engine::scheduler::{greedy, Scheduler, SchedulerConfig, StreamItem};
use ttc_engine::{Cancel, ChatMessage, Engine, GenRequest, Policy, WeightFormat};
use ttc_types::{FinishReason, GenEvent};

fn engine() -> Arc<Engine> {
    static ENGINE: std::sync::OnceLock<Arc<Engine>> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap())).clone()
}

/// A chat prompt of about `words` words (the tokenizer makes roughly 1.3 tokens per word of this text).
fn long_prompt(engine: &Engine, words: usize) -> Vec<u32> {
    let sentence = "The customer wrote again about order ORD-7781, which arrived late and damaged. ";
    let text: String = sentence.repeat(words / sentence.split_whitespace().count() + 1);
    engine.prompt_tokens(&[ChatMessage::new("user", format!("{text}\nSummarize the complaint."))]).unwrap()
}

#[test]
fn chunked_prefill_gives_the_same_logits_for_every_chunk_size() {
    let e = engine();
    let prompt = long_prompt(&e, 120);
    assert!(prompt.len() > 130, "prompt of {} tokens", prompt.len());
    let whole = {
        let mut cache = e.model.new_cache().unwrap();
        e.model.prefill_chunked(&prompt, &mut cache, prompt.len(), &Cancel::default()).unwrap()
    };
    for chunk in [1, 7, 64] {
        let mut cache = e.model.new_cache().unwrap();
        let got = e.model.prefill_chunked(&prompt, &mut cache, chunk, &Cancel::default()).unwrap();
        assert_eq!(cache.next_pos, prompt.len());
        let diff = got.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert_eq!(diff, 0.0, "chunk {chunk}: logits differ from the whole prefill by up to {diff}");
    }
}

#[test]
fn a_prefill_cancelled_between_chunks_runs_no_further_chunk() {
    let e = engine();
    let mut e2 = Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap();
    e2.prefill_chunk = 128;
    let prompt = long_prompt(&e, 800);
    assert!(prompt.len() > 4 * 128);
    // Cancelled at the third poll: two chunks run, then the request stops.
    let polls = Arc::new(AtomicUsize::new(0));
    let cancel = Cancel::when({
        let polls = polls.clone();
        move || polls.fetch_add(1, Ordering::SeqCst) >= 2
    });
    let req = GenRequest { prompt: prompt.clone(), max_tokens: 8, cancel, ..Default::default() };
    let mut events = Vec::new();
    let before = e2.model.tokens_forwarded();
    let (out, _) = e2
        .generate_policy(&req, &Policy::baseline(), None, &mut |ev| {
            events.push(ev);
            true
        })
        .unwrap();
    assert_eq!(e2.model.tokens_forwarded() - before, 2 * 128, "the model ran more than the two started chunks");
    assert_eq!(out.finish_reason, FinishReason::Cancelled);
    assert!(out.token_ids.is_empty());
    assert!(matches!(events.as_slice(), [GenEvent::Finished { reason: FinishReason::Cancelled, .. }]), "{events:?}");

    // Not cancelled, the same engine's chunked prefill gives the solo engine's greedy tokens.
    let req = GenRequest { prompt, max_tokens: 8, ..Default::default() };
    let chunked = e2.generate_policy(&req, &Policy::baseline(), None, &mut |_| true).unwrap().0;
    let whole = e.generate_policy(&req, &Policy::baseline(), None, &mut |_| true).unwrap().0;
    assert_eq!(chunked.token_ids, whole.token_ids);
}

#[test]
fn the_scheduler_stops_a_cancelled_prompt_within_one_chunk() {
    let e = engine();
    let chunk = 64;
    let scheduler = Scheduler::new(e.clone(), SchedulerConfig::elastic(4).with_step_tokens(chunk)).unwrap();
    let prompt = long_prompt(&e, 600);
    // The scheduler polls a request's cancellation before every step (once while it waits, then once per step
    // while it runs): cancelled at the fifth poll, it runs four steps, all of them prefill chunks.
    let polls = Arc::new(AtomicUsize::new(0));
    let cancel = Cancel::when({
        let polls = polls.clone();
        move || polls.fetch_add(1, Ordering::SeqCst) >= 4
    });
    let req = GenRequest { prompt: prompt.clone(), max_tokens: 8, cancel, ..Default::default() };
    let (tx, rx) = mpsc::channel();
    scheduler.submit(req, greedy(), tx).unwrap();
    let done = loop {
        match rx.recv().unwrap() {
            StreamItem::Done(r) => break r.unwrap(),
            StreamItem::Event(_) => {}
        }
    };
    assert_eq!(done.output.finish_reason, FinishReason::Cancelled);
    assert!(done.output.token_ids.is_empty());
    let steps = done.stats.batch_steps.unwrap();
    let all_steps = prompt.len().div_ceil(chunk) as u64;
    assert!(all_steps > 8, "prompt of {} tokens", prompt.len());
    assert!((3..=5).contains(&steps), "cancelled after {steps} of {all_steps} prefill steps");
}

#[test]
fn a_long_prompt_prefills_in_chunks_while_another_sequence_decodes() {
    let e = engine();
    let chunk = 96;
    let scheduler = Scheduler::new(e.clone(), SchedulerConfig::elastic(4).with_step_tokens(chunk)).unwrap();
    let short = GenRequest {
        prompt: e.prompt_tokens(&[ChatMessage::new("user", "List three colors.")]).unwrap(),
        max_tokens: 40,
        ..Default::default()
    };
    let long = GenRequest { prompt: long_prompt(&e, 900), max_tokens: 6, ..Default::default() };
    let solo = |r: &GenRequest| e.generate_policy(r, &Policy::baseline(), None, &mut |_| true).unwrap().0.token_ids;
    let (want_short, want_long) = (solo(&short), solo(&long));

    // Both in one channel, so the order of their events is the order the scheduler produced them.
    let (tx, rx) = mpsc::channel();
    let tagged = |tag: usize| {
        let tx = tx.clone();
        move |item: StreamItem| tx.send((tag, item)).is_ok()
    };
    scheduler.submit(short.clone(), greedy(), tagged(0)).unwrap();
    scheduler.submit(long.clone(), greedy(), tagged(1)).unwrap();
    drop(tx);
    let mut order = Vec::new();
    let mut done = [None, None];
    for (tag, item) in rx {
        match item {
            StreamItem::Event(GenEvent::Content { .. }) => order.push(tag),
            StreamItem::Event(_) => {}
            StreamItem::Done(r) => done[tag] = Some(r.unwrap()),
        }
    }
    let [Some(s), Some(l)] = done else { panic!("a request got no Done") };
    assert_eq!(s.output.token_ids, want_short, "the decoding sequence's output changed");
    assert_eq!(l.output.token_ids, want_long, "the chunked prompt's output changed");
    // The long prompt needed several steps, and the short sequence emitted tokens between its first chunk and
    // its first token (it was not stalled for the whole prefill).
    let prefill_steps = long.prompt.len().div_ceil(chunk);
    assert!(prefill_steps >= 10, "prompt of {} tokens", long.prompt.len());
    assert!(l.stats.batch_steps.unwrap() >= prefill_steps as u64, "{:?}", l.stats);
    let first_long = order.iter().position(|&t| t == 1).expect("long emitted");
    let expected = want_short.len().min(prefill_steps - 3);
    assert!(first_long >= expected, "the short sequence emitted {first_long} tokens during the long prefill, expected {expected}: {order:?}");
}
