//! Speculative decoding and early exit on the real model: the lossless policies reproduce baseline greedy
//! decoding token for token; early exit matches an independently truncated model.

mod common;
use ttc_engine::policy::{Algorithm, ConfidenceExitParams, FixedExitParams, NgramParams, SelfSpecParams};
use ttc_engine::{ChatMessage, Engine, GenRequest, Policy, WeightFormat};

/// Input-grounded prompts in the style of the suites (CRMArena: answer from the given records; WorfBench: plan a
/// workflow from a task and an action list), plus a few open-ended ones.
pub const PROMPTS: &[&str] = &[
    "Case 00001026 for account Acme Corp was opened on 2023-04-12 by contact Jane Smith. Which account is the case for? Reply with the account name only.",
    "Order ORD-7781 contains product SKU-220 (Wireless Mouse, qty 2) and SKU-118 (USB-C Hub, qty 1). List the SKUs in the order.",
    "Agent records: Alex Kim closed 14 cases, Maria Lopez closed 22 cases, Sam Patel closed 9 cases. Which agent closed the most cases? Give the name.",
    "Knowledge article KA-0042: 'Refunds are issued within 14 days of an approved return. Store credit is issued instantly.' How long do refunds take?",
    "Opportunity 006Wt00000AbCdE is in stage Negotiation with amount 45000 USD and owner Priya Nair. What is the opportunity's stage?",
    "Copy the following customer address exactly: 1200 Market Street, Suite 400, San Francisco, CA 94103.",
    "The policy says: 'Customers with Gold status get free expedited shipping; Silver get 50% off shipping.' Customer Dana Lee has Gold status. What shipping benefit applies?",
    "Cases this week: 500Wt00000XyZ1 (Billing), 500Wt00000XyZ2 (Shipping), 500Wt00000XyZ3 (Billing). Return the IDs of the Billing cases.",
    "Rewrite this sentence with correct spelling: 'The custmer recieved a damagd package and requsted a replacment.'",
    "Extract the email address from: 'Please contact our support lead, Tom Baker, at tom.baker@example.com for escalations.'",
    "Task: book a flight from Paris to Berlin and reserve a hotel near the conference. Actions: search_flights, book_flight, search_hotels, book_hotel. Write the workflow as Node: and Edge: lists.",
    "Task: find the cheapest laptop on the shop and add it to the cart. Actions: search[query], click[item], add_to_cart. Give the workflow nodes and edges.",
    "Task: list all files in /var/log larger than 10MB and compress them. Actions: find, gzip. Produce Node: list then Edge: list.",
    "Task: query the database for customers in Texas, then email each one. Actions: sql_query, send_email. Give Node: and Edge:.",
    "Task: look up today's weather in Tokyo and send it to the team chat. Actions: get_weather, post_message. Write the workflow with nodes and edges.",
    "Task: wash the apple and put it in the fridge. Actions: go to sinkbasin 1, clean apple 1 with sinkbasin 1, go to fridge 1, put apple 1 in fridge 1. Node: and Edge:.",
    "Summarize in one sentence: The support team migrated 340 open cases to the new queue on Monday; 12 cases failed and were re-opened manually by Friday.",
    "What is the capital of Italy?",
    "Write a haiku about the sea.",
    "Explain what a KV cache is in one sentence.",
    "Give three tips for writing clear emails.",
];

fn ids(e: &Engine, text: &str) -> Vec<u32> {
    e.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap()
}

fn run(e: &Engine, policy: &Policy, prompt: &[u32], max_tokens: usize) -> (Vec<u32>, ttc_types::PolicyStats) {
    let req = GenRequest { prompt: prompt.to_vec(), max_tokens, stop: vec![], ..Default::default() };
    let (out, stats) = e.generate_policy(&req, policy, None, &mut |_| true).unwrap();
    (out.token_ids, stats)
}

fn policy(name: &str, algorithm: Algorithm) -> Policy {
    Policy::new(name, algorithm)
}

#[test]
fn speculative_decoding_is_identical_to_greedy_on_21_prompts() {
    let e = common::engine(WeightFormat::Q8_0);
    let base = Policy::baseline();
    let ngram = policy("ngram", Algorithm::SpeculativeNgram(NgramParams { lookahead_tokens: 4, max_ngram: 3, min_ngram: 1 }));
    let selfspec = policy(
        "self",
        Algorithm::SpeculativeSelf(SelfSpecParams { lookahead_tokens: 6, draft_layers: 24, verification_threshold: 0.5, heads: Default::default() }),
    );
    let (mut drafted, mut accepted) = (0u64, 0u64);
    for text in PROMPTS {
        let p = ids(e, text);
        let (b, _) = run(e, &base, &p, 24);
        let (n, ns) = run(e, &ngram, &p, 24);
        assert_eq!(n, b, "n-gram speculative output differs from greedy for {text:?}");
        let (s, ss) = run(e, &selfspec, &p, 24);
        assert_eq!(s, b, "self-speculative output differs from greedy for {text:?}");
        drafted += ns.drafted_tokens.unwrap() + ss.drafted_tokens.unwrap();
        accepted += ns.accepted_tokens.unwrap() + ss.accepted_tokens.unwrap();
        assert!(ns.accepted_tokens <= ns.drafted_tokens);
    }
    // The test exercised real drafts, some accepted and some rejected, not an empty drafter.
    assert!(drafted > 50 && accepted > 10 && accepted < drafted, "drafted {drafted}, accepted {accepted}");
}

#[test]
fn fixed_exit_equals_an_independently_truncated_model() {
    let e = common::engine(WeightFormat::Q8_0);
    let mut truncated = Engine::load(&common::model_path(), WeightFormat::Q8_0).unwrap();
    truncated.model.blocks.truncate(28);
    truncated.model.cfg.n_layer = 28;
    let exit28 = policy("ee28", Algorithm::EarlyExitFixed(FixedExitParams { exit_layer: 28, heads: Default::default() }));
    for text in &PROMPTS[..4] {
        let (a, stats) = run(e, &exit28, &ids(e, text), 16);
        let (b, _) = run(&truncated, &Policy::baseline(), &ids(&truncated, text), 16);
        assert_eq!(a, b, "{text:?}");
        assert_eq!(stats.mean_exit_layer, Some(28.0));
        assert!((stats.layers_skipped_share.unwrap() - 2.0 / 30.0).abs() < 1e-9);
    }
}

#[test]
fn confidence_exit_above_one_equals_baseline_and_low_threshold_exits() {
    let e = common::engine(WeightFormat::Q8_0);
    let never = policy(
        "never",
        Algorithm::EarlyExitConfidence(ConfidenceExitParams {
            exit_threshold: 1.01,
            confidence_boost: 1.2,
            min_layer: 20,
            exit_interval: 2,
            measure: ttc_engine::policy::ConfidenceMeasure::SoftmaxMax,
            position_temp: 0.0,
            heads: Default::default(),
        }),
    );
    let eager = policy(
        "eager",
        Algorithm::EarlyExitConfidence(ConfidenceExitParams {
            exit_threshold: 0.3,
            confidence_boost: 1.0,
            min_layer: 24,
            exit_interval: 2,
            measure: ttc_engine::policy::ConfidenceMeasure::SoftmaxMax,
            position_temp: 4.0,
            heads: Default::default(),
        }),
    );
    for text in &PROMPTS[..3] {
        let p = ids(e, text);
        let (b, _) = run(e, &Policy::baseline(), &p, 20);
        let (n, ns) = run(e, &never, &p, 20);
        assert_eq!(n, b, "{text:?}");
        assert_eq!(ns.mean_exit_layer, Some(30.0));
        let (out, es) = run(e, &eager, &p, 20);
        assert!(es.mean_exit_layer.unwrap() < 30.0, "a 0.3 threshold must exit some tokens early");
        // One entry per token chosen: every emitted token, plus the end-of-sequence token if one stopped it.
        let counted = es.exit_layer_histogram.unwrap().iter().sum::<u32>() as usize;
        assert!(counted == out.len() || counted == out.len() + 1, "{counted} vs {}", out.len());
    }
}
