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
        prediction: "the answer".into(),
        reference: Some("the answer".into()),
        metrics,
        extra_metrics: BTreeMap::new(),
        policy_stats: PolicyStats::default(),
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

