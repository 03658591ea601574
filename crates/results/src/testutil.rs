//! Synthetic records for tests, examples and benchmarks (not for production data).

use std::collections::BTreeMap;
use ttc_types::{PolicyStats, Record, RecordStatus, TokenCountSource, SCHEMA_VERSION};

/// A complete, successful record with every commonly used field set.
pub fn record(policy: &str, suite: &str, sample_id: &str) -> Record {
    let mut metrics = BTreeMap::new();
    metrics.insert("rouge_l".to_string(), 0.5);
    metrics.insert("exact_match".to_string(), 1.0);
    Record {
        schema_version: SCHEMA_VERSION,
        run_id: "run-1".into(),
        run_started_at: "2025-01-01T00:00:00Z".into(),
        config_hash: "abc123".into(),
        project_version: "0.1.0".into(),
        host: "test-host".into(),
        backend: "embedded".into(),
        base_url: None,
        model: "SmolLM2-135M".into(),
        weights: Some("q8_0".into()),
        policy: policy.into(),
        algorithm: "greedy".into(),
        params_json: "{}".into(),
        suite: suite.into(),
        task: Some("qa".into()),
        sample_id: sample_id.into(),
        status: RecordStatus::Ok,
        error_class: None,
        error_message: None,
        attempts: 1,
        backoff_s: 0.0,
        prompt_tokens: Some(20),
        cached_prompt_tokens: Some(0),
        output_tokens: Some(4),
        token_count_source: Some(TokenCountSource::Engine),
        start_offset_s: 0.0,
        ttft_s: Some(0.1),
        e2e_s: Some(0.4),
        tpot_s: Some(0.1),
        itl_mean_s: Some(0.1),
        itl_p50_s: Some(0.1),
        itl_p99_s: Some(0.1),
        token_times_s: vec![0.1, 0.2, 0.3, 0.4],
        throughput_tok_s: Some(10.0),
        finish_reason: Some("stop".into()),
        token_logprobs: None,
        prediction: "the answer".into(),
        reference: Some("the answer".into()),
        metrics,
        extra_metrics: BTreeMap::new(),
        policy_stats: PolicyStats::default(),
        fidelity: Default::default(),
        load: Default::default(),
    }
}

/// Records that exercise every column kind: nulls, lists, errors, policy internals, extra metrics.
pub fn varied(run_id: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = record(["baseline", "spec", "early_exit"][i % 3], ["crm", "worf"][i % 2], &format!("s{i}"));
            r.run_id = run_id.into();
            r.start_offset_s = i as f64 * 0.25;
            r.ttft_s = Some(0.01 * i as f64);
            r.token_times_s = (0..(i % 5)).map(|k| k as f64 * 0.125 + i as f64).collect();
            r.prediction = format!("prediction {i} ü \"quoted\"");
            if i % 7 == 0 {
                r.status = RecordStatus::Error;
                r.error_class = Some("timeout".into());
                r.error_message = Some("request timed out after 30 s".into());
                r.e2e_s = None;
                r.output_tokens = None;
                r.token_count_source = None;
                r.attempts = 3;
                r.backoff_s = 1.5;
            }
            if i % 3 == 1 {
                r.policy_stats = PolicyStats {
                    drafted_tokens: Some(40 + i as u64),
                    accepted_tokens: Some(30),
                    acceptance_rate: Some(0.75),
                    exit_layer_histogram: Some(vec![0, 3, i as u32]),
                    ..Default::default()
                };
                r.token_count_source = Some(TokenCountSource::Usage);
                r.base_url = Some("http://localhost:8080/v1".into());
            }
            if i % 4 == 0 {
                r.task = None;
                r.reference = None;
                r.metrics.insert("f1_graph".into(), i as f64 / 100.0);
                r.extra_metrics.insert("judge_score".into(), 4.5);
            }
            r
        })
        .collect()
}


/// Realistic synthetic records for benchmarks: 6 policies x 3 suites, log-normal latencies, 16-64 output
/// tokens with their chunk times, quality scores and policy internals. Deterministic for a seed.
pub fn synthetic(run_id: &str, n: usize, seed: u64) -> impl Iterator<Item = Record> + '_ {
    use rand::{Rng, SeedableRng};
    const POLICIES: &[(&str, &str, f64, f64)] = &[
        ("baseline", "baseline", 1.0, 0.0),
        ("spec_k4", "speculative", 0.7, 0.0),
        ("spec_k8", "speculative", 0.65, 0.0),
        ("prune_p09", "token_pruning", 0.9, -0.02),
        ("early_exit", "early_exit", 0.6, -0.08),
        ("kv_shrink", "kv_shrink", 0.85, -0.03),
    ];
    const SUITES: &[&str] = &["crmarena", "worfbench", "jsonl"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut template = record("baseline", "crmarena", "0");
    template.run_id = run_id.to_string();
    (0..n).map(move |i| {
        let (policy, algorithm, speed, dq) = POLICIES[i % POLICIES.len()];
        let suite = SUITES[(i / POLICIES.len()) % SUITES.len()];
        let mut r = template.clone();
        r.policy = policy.to_string();
        r.algorithm = algorithm.to_string();
        r.suite = suite.to_string();
        r.sample_id = format!("{suite}-{}", i / (POLICIES.len() * SUITES.len()));
        r.start_offset_s = i as f64 * 0.01;
        let tokens: u32 = rng.random_range(16..=64);
        let ttft = 0.05 * speed * (1.0 + rng.random_range(0.0..1.0f64));
        let itl = 0.02 * speed * (0.5 + rng.random_range(0.0..1.0f64));
        r.token_times_s = (0..tokens).map(|k| ttft + k as f64 * itl).collect();
        let e2e = ttft + (tokens - 1) as f64 * itl;
        r.ttft_s = Some(ttft);
        r.e2e_s = Some(e2e);
        r.tpot_s = Some(itl);
        r.itl_mean_s = Some(itl);
        r.itl_p50_s = Some(itl);
        r.itl_p99_s = Some(itl);
        r.output_tokens = Some(tokens);
        r.throughput_tok_s = Some(tokens as f64 / e2e);
        r.prediction = format!("synthetic answer {i} for {suite}");
        let q: f64 = (rng.random_range(0.2..0.8f64) + dq).clamp(0.0, 1.0);
        r.metrics.clear();
        r.metrics.insert("rouge_l".into(), q);
        r.metrics.insert("rouge1".into(), (q + 0.05).min(1.0));
        r.metrics.insert("exact_match".into(), if q > 0.7 { 1.0 } else { 0.0 });
        if algorithm == "speculative" {
            let drafted = tokens as u64 * 2;
            let accepted = rng.random_range(tokens as u64 / 2..=tokens as u64);
            r.policy_stats.drafted_tokens = Some(drafted);
            r.policy_stats.accepted_tokens = Some(accepted);
            r.policy_stats.acceptance_rate = Some(accepted as f64 / drafted as f64);
        }
        if i % 997 == 0 {
            r.status = RecordStatus::Error;
            r.error_class = Some("timeout".into());
            r.error_message = Some("timed out".into());
        }
        r
    })
}
