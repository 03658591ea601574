//! The batch scheduler on the real model: batched greedy outputs equal solo runs (Q8_0 matmuls are row-independent,
//! so batching must not change a single token), every request is answered exactly once under random arrivals, and
//! cancellation frees the slot.

mod common;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ttc_engine::scheduler::{greedy, BatchMode, Scheduler, SchedulerConfig, StreamItem};
use ttc_engine::{argmax, ChatMessage, Engine, GenRequest, WeightFormat};
use ttc_types::{FinishReason, GenEvent};

const PROMPTS: &[&str] = &[
    "What is the capital of Japan? Explain briefly.",
    "Summarize: order ORD-7781 arrived late and the customer asked for a refund.",
    "List three colors.",
    "Write a haiku about autumn rain.",
    "Translate to French: good morning, how are you?",
];

fn engine() -> Arc<Engine> {
    // One engine per test binary, shared with the solo runs (the scheduler needs an Arc).
    static ENGINE: std::sync::OnceLock<Arc<Engine>> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap())).clone()
}

fn request(engine: &Engine, text: &str, max_tokens: usize) -> GenRequest {
    let prompt = engine.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap();
    GenRequest { prompt, max_tokens, stop: vec![], ..Default::default() }
}

/// Engine steps a request takes: the prefill, then one per token fed back. A request that ends on EOS fed its last
/// visible token too; one that ends on length or a stop string did not.
fn expected_steps(done: &ttc_engine::Completion) -> u64 {
    let n = done.output.token_ids.len() as u64;
    if done.output.finish_reason == FinishReason::Stop { n + 1 } else { n.max(1) }
}

fn solo(engine: &Engine, req: &GenRequest) -> Vec<u32> {
    engine.generate_plain(req, &mut |l: &[f32]| argmax(l), &mut |_| true).unwrap().token_ids
}

/// Everything one request's stream carried.
#[derive(Default, Debug)]
struct Stream {
    content_tokens: Vec<u32>,
    finished_events: usize,
    done: Vec<ttc_engine::Result<ttc_engine::Completion>>,
    events_after_done: usize,
}

fn record(streams: &mut HashMap<usize, Stream>, key: usize, item: StreamItem) {
    let s = streams.entry(key).or_default();
    match item {
        StreamItem::Event(GenEvent::Content { token_ids, .. }) => {
            if !s.done.is_empty() {
                s.events_after_done += 1;
            }
            s.content_tokens.extend(token_ids);
        }
        StreamItem::Event(GenEvent::Finished { .. }) => s.finished_events += 1,
        StreamItem::Event(_) => {}
        StreamItem::Done(r) => s.done.push(r),
    }
}

#[test]
fn batched_greedy_outputs_equal_solo_runs() {
    let engine = engine();
    // Different lengths so that sequences finish at different steps and (elastic) others join mid-way.
    let reqs: Vec<GenRequest> =
        PROMPTS.iter().enumerate().map(|(i, p)| request(&engine, p, 10 + 4 * i)).collect();
    let expected: Vec<Vec<u32>> = reqs.iter().map(|r| solo(&engine, r)).collect();
    for config in [SchedulerConfig::elastic(3), SchedulerConfig::static_batches(3), SchedulerConfig::one_at_a_time()] {
        let scheduler = Scheduler::new(engine.clone(), config).unwrap();
        let (tx, rx) = mpsc::channel();
        for (i, r) in reqs.iter().enumerate() {
            let tx = tx.clone();
            scheduler.submit(r.clone(), greedy(), move |item| tx.send((i, item)).is_ok()).unwrap();
        }
        drop(tx);
        let mut streams = HashMap::new();
        while streams.values().filter(|s: &&Stream| !s.done.is_empty()).count() < reqs.len() {
            let (i, item) = rx.recv_timeout(Duration::from_secs(300)).expect("scheduler stalled");
            record(&mut streams, i, item);
        }
        let mut max_occupancy: f64 = 0.0;
        for (i, want) in expected.iter().enumerate() {
            let s = &streams[&i];
            assert_eq!(s.done.len(), 1);
            let done = s.done[0].as_ref().expect("request failed");
            assert_eq!(&done.output.token_ids, want, "{:?}: request {i} differs from its solo run", config.mode);
            assert_eq!(&s.content_tokens, want, "streamed tokens equal the output");
            assert_eq!(s.finished_events, 1);
            assert_eq!(done.stats.batch_steps, Some(expected_steps(done)), "{:?}: request {i} steps", config.mode);
            max_occupancy = max_occupancy.max(done.stats.mean_batch_occupancy.unwrap());
            assert!(done.stats.queue_wait_s.unwrap() >= 0.0);
        }
        match config.mode {
            BatchMode::OneAtATime => assert_eq!(max_occupancy, 1.0),
            _ => assert!(max_occupancy > 1.5, "{:?}: requests were not batched ({max_occupancy})", config.mode),
        }
    }
}

#[test]
fn static_batches_wait_for_their_longest_member() {
    let engine = engine();
    // Batch of 2: a long and a short request; the third request must wait for the long one, not the short one.
    let long = request(&engine, PROMPTS[3], 12);
    let short = request(&engine, PROMPTS[2], 2);
    let third = request(&engine, PROMPTS[0], 2);
    for (config, third_waits_for_long) in
        [(SchedulerConfig::static_batches(2), true), (SchedulerConfig::elastic(2), false)]
    {
        let scheduler = Scheduler::new(engine.clone(), config).unwrap();
        let (tx, rx) = mpsc::channel();
        for (i, r) in [long.clone(), short.clone(), third.clone()].into_iter().enumerate() {
            let tx = tx.clone();
            scheduler.submit(r, greedy(), move |item| tx.send((i, item)).is_ok()).unwrap();
        }
        drop(tx);
        let mut streams = HashMap::new();
        for (i, item) in rx.iter() {
            record(&mut streams, i, item);
        }
        let steps = |i: usize| streams[&i].done[0].as_ref().unwrap().stats.batch_steps.unwrap();
        let (long_steps, short_steps, third_steps) = (steps(0), steps(1), steps(2));
        assert!(short_steps < long_steps, "the test needs the short request to finish first");
        let total = scheduler.load().steps;
        if third_waits_for_long {
            assert_eq!(total, long_steps + third_steps, "static: the third starts after the long one");
        } else {
            // Elastic: the third takes the short one's slot on the very next step.
            assert_eq!(total, long_steps.max(short_steps + third_steps));
            assert!(total < long_steps + third_steps);
        }
    }
}

#[test]
fn no_request_is_lost_or_duplicated_under_random_arrivals() {
    let engine = engine();
    let scheduler = Scheduler::new(engine.clone(), SchedulerConfig::elastic(8)).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let base = engine.tokenizer.encode("The quick brown fox jumps over the lazy dog and keeps running").unwrap();
    let n = 64;
    let mut want_tokens = HashMap::new();
    let mut handles = Vec::new();
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(rng.random_range(0..15)));
        // Short raw prompts of different lengths and 1..4 tokens each keep this fast on 2 cores.
        let prompt = base[..rng.random_range(3..base.len())].to_vec();
        let max_tokens = rng.random_range(1..5);
        want_tokens.insert(i, max_tokens);
        let tx = tx.clone();
        let req = GenRequest { prompt, max_tokens, stop: vec![], ..Default::default() };
        let h = scheduler.submit(req, greedy(), move |item| tx.send((i, item)).is_ok()).unwrap();
        handles.push(h);
    }
    drop(tx);
    let mut streams = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while streams.values().filter(|s: &&Stream| !s.done.is_empty()).count() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, item) = rx.recv_timeout(left).expect("a request never finished");
        record(&mut streams, i, item);
    }
    // Nothing else arrives afterwards.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    let ids: std::collections::HashSet<u64> = handles.iter().map(|h| h.id()).collect();
    assert_eq!(ids.len(), n, "request ids are unique");
    let mut batched = 0;
    for i in 0..n {
        let s = &streams[&i];
        assert_eq!(s.done.len(), 1, "request {i}: {} completions", s.done.len());
        assert_eq!(s.events_after_done, 0);
        assert_eq!(s.finished_events, 1);
        let done = s.done[0].as_ref().unwrap();
        assert_eq!(s.content_tokens, done.output.token_ids, "request {i}: stream and output disagree");
        let got = done.output.token_ids.len();
        assert!(got <= want_tokens[&i]);
        if done.output.finish_reason == FinishReason::Length {
            assert_eq!(got, want_tokens[&i]);
        }
        assert_eq!(done.output.usage.completion_tokens as usize, got);
        if done.stats.mean_batch_occupancy.unwrap() > 1.0 {
            batched += 1;
        }
    }
    assert!(batched > n / 2, "only {batched} of {n} requests shared a step");
    assert_eq!(scheduler.load().active, 0);
    assert_eq!(scheduler.load().waiting, 0);
}

/// Receive until the request's Done, counting its content tokens.
fn wait_done(rx: &mpsc::Receiver<StreamItem>) -> (usize, ttc_engine::Completion) {
    let mut tokens = 0;
    loop {
        match rx.recv_timeout(Duration::from_secs(300)).expect("no completion") {
            StreamItem::Event(GenEvent::Content { .. }) => tokens += 1,
            StreamItem::Event(_) => {}
            StreamItem::Done(r) => return (tokens, r.unwrap()),
        }
    }
}

#[test]
fn cancelling_a_request_frees_its_slot() {
    let engine = engine();
    let scheduler = Scheduler::new(engine.clone(), SchedulerConfig::elastic(1)).unwrap();
    let long = GenRequest { prompt: engine.tokenizer.encode("Once upon a time").unwrap(), max_tokens: 400, stop: vec![], ..Default::default() };
    let short = GenRequest { prompt: engine.tokenizer.encode("Hello").unwrap(), max_tokens: 3, stop: vec![], ..Default::default() };

    // 1. Cancel through the handle while it runs: the waiting request gets the slot.
    let (tx_a, rx_a) = mpsc::channel();
    let a = scheduler.submit(long.clone(), greedy(), tx_a).unwrap();
    let (tx_b, rx_b) = mpsc::channel();
    scheduler.submit(short.clone(), greedy(), tx_b).unwrap();
    // 2. A queued request cancelled before it ever runs.
    let (tx_c, rx_c) = mpsc::channel();
    let c = scheduler.submit(short.clone(), greedy(), tx_c).unwrap();
    c.cancel();
    let mut seen = 0;
    while seen < 2 {
        if let StreamItem::Event(GenEvent::Content { .. }) = rx_a.recv().unwrap() {
            seen += 1;
        }
    }
    a.cancel();
    let (_, done_a) = wait_done(&rx_a);
    assert_eq!(done_a.output.finish_reason, FinishReason::Cancelled);
    assert!(done_a.output.token_ids.len() < 20, "cancel took {} tokens to land", done_a.output.token_ids.len());
    let (tokens_b, done_b) = wait_done(&rx_b);
    assert_eq!(tokens_b, done_b.output.token_ids.len());
    assert!(tokens_b > 0);
    let (tokens_c, done_c) = wait_done(&rx_c);
    assert_eq!((tokens_c, done_c.output.finish_reason), (0, FinishReason::Cancelled));
    assert_eq!(done_c.stats.batch_steps, Some(0));

    // 3. Dropping the receiver cancels too: the next request does not wait for 400 tokens.
    let steps_before = scheduler.load().steps;
    let (tx_d, rx_d) = mpsc::channel();
    scheduler.submit(long, greedy(), tx_d).unwrap();
    drop(rx_d);
    let (tx_e, rx_e) = mpsc::channel();
    scheduler.submit(short, greedy(), tx_e).unwrap();
    let (_, done_e) = wait_done(&rx_e);
    assert!(!done_e.output.token_ids.is_empty());
    let steps = scheduler.load().steps - steps_before;
    assert!(steps < 20, "the abandoned request kept its slot for {steps} steps");
    assert_eq!(scheduler.load().active, 0);
}

#[test]
fn a_request_that_cannot_fit_fails_alone() {
    let engine = engine();
    let scheduler = Scheduler::new(engine.clone(), SchedulerConfig::elastic(4)).unwrap();
    let (tx_bad, rx_bad) = mpsc::channel();
    let bad = GenRequest { prompt: vec![1; 8000], max_tokens: 500, stop: vec![], ..Default::default() };
    scheduler.submit(bad, greedy(), tx_bad).unwrap();
    let (tx_ok, rx_ok) = mpsc::channel();
    scheduler.submit(request(&engine, PROMPTS[2], 3), greedy(), tx_ok).unwrap();
    match rx_bad.recv().unwrap() {
        StreamItem::Done(Err(e)) => assert!(e.to_string().contains("context"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let (_, ok) = wait_done(&rx_ok);
    assert!(!ok.output.token_ids.is_empty());
    // A sampler error fails only its own request.
    let (tx_err, rx_err) = mpsc::channel();
    let failing: ttc_engine::scheduler::ChooseFn =
        Box::new(|_| Err(ttc_engine::EngineError::InvalidRequest("sampler: logits contain NaN".into())));
    scheduler.submit(request(&engine, PROMPTS[2], 3), failing, tx_err).unwrap();
    let err = loop {
        if let StreamItem::Done(r) = rx_err.recv().unwrap() {
            break r.unwrap_err();
        }
    };
    assert!(err.to_string().contains("NaN"), "{err}");
}
