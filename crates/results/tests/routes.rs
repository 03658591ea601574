//! A router's records are broken down by route in the summary, survive the Parquet round trip, and show in the
//! terminal summary.

use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::testutil::record;
use ttc_types::{Record, Route};

fn routed(sample: &str, to: &str, rule: &str, e2e: f64, rouge: f64) -> Record {
    let mut r = record("routed", "crmarena", sample);
    r.e2e_s = Some(e2e);
    r.metrics.insert("rouge_l".into(), rouge);
    r.policy_stats.route = Some(Route {
        policy: to.into(),
        rule: rule.into(),
        prompt_tokens: Some(20),
        ngram_repetition: Some(0.25),
        first_entropy: None,
        load: None,
    });
    r
}

#[test]
fn summary_breaks_a_router_down_by_route() {
    let mut records = vec![
        routed("1", "spec", "rules[0]", 1.0, 0.2),
        routed("2", "spec", "rules[0]", 3.0, 0.4),
        routed("3", "baseline", "default", 2.0, 0.9),
        routed("4", "spec", "rules[1]", 2.0, 0.6),
    ];
    records.push(record("baseline", "crmarena", "1"));
    let s = summarize(&records, &AnalysisConfig::default());
    assert_eq!(s.routes.len(), 2, "{:?}", s.routes);
    let base = &s.routes[0];
    assert_eq!((base.routed_policy.as_str(), base.n, base.share), ("baseline", 1, 0.25));
    let spec = &s.routes[1];
    assert_eq!((spec.routed_policy.as_str(), spec.n, spec.share), ("spec", 3, 0.75));
    assert_eq!(spec.rules.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("rules[0]", 2), ("rules[1]", 1)]);
    assert_eq!(spec.e2e_s.p50, Some(2.0));
    assert_eq!(spec.primary_metric.as_deref(), Some("rouge_l"));
    assert!((spec.primary_quality.unwrap() - 0.4).abs() < 1e-12);
    let text = ttc_results::render::summary_table(&s);
    assert!(text.contains("Routes (latency in ms)"), "{text}");
    assert!(text.contains("rules[0] (2), rules[1] (1)"), "{text}");
}

#[test]
fn route_columns_round_trip_through_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let mut with_entropy = routed("1", "spec", "rules[0]", 1.0, 0.2);
    with_entropy.policy_stats.route.as_mut().unwrap().first_entropy = Some(1.25);
    let records = vec![with_entropy, record("baseline", "crmarena", "1")];
    let batch = ttc_results::columns::encode(&records).unwrap();
    for c in ["routed_policy", "route_rule", "route_prompt_tokens", "route_ngram_repetition", "route_first_entropy", "route_load"] {
        assert!(batch.schema().field_with_name(c).is_ok(), "{c}");
    }
    let back = ttc_results::columns::decode(&batch, &dir.path().join("x.parquet"), "run-1").unwrap();
    assert_eq!(back[0].policy_stats.route, records[0].policy_stats.route);
    assert_eq!(back[1].policy_stats.route, None);
}
