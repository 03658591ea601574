use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<RunFile, ConfigError> {
    parse_yaml::<RunFile>(text, Path::new("run.yaml"))
}

fn resolve(text: &str) -> Result<RunConfig, ConfigError> {
    RunConfig::resolve(parse(text)?, None, Path::new(""), &[])
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_file_gives_documented_defaults() {
    let f = parse("{}").unwrap();
    assert_eq!(f, RunFile::default());
    let c = resolve("{}").unwrap();
    assert_eq!(c.load.concurrency.0, 50);
    assert_eq!(c.load.rate.0, 100.0);
    assert_eq!(c.load.arrival, Arrival::Closed);
    assert_eq!(c.load.max_retries, 3);
    assert_eq!(c.load.timeout_s.0, 120.0);
    assert_eq!((c.load.backoff.base_s.0, c.load.backoff.cap_s.0), (0.5, 30.0));
    assert_eq!(c.generation.max_tokens.0, 256);
    assert_eq!(c.generation.temperature.0, 0.0);
    assert_eq!(c.backend.kind, BackendKind::Embedded);
    assert_eq!(c.policies, vec![Policy::baseline()]);
    assert_eq!(c.suites.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["crmarena", "worfbench"]);
    assert_eq!(c.results, Path::new("results"));
}

#[test]
fn errors_name_file_line_and_key() {
    let text = "seed: 1\nload:\n  concurrency: 0\n";
    assert_eq!(err(text), "run.yaml:3:3: load.concurrency: invalid value 0: expected an integer >= 1");
    let e = err("load:\n  rate: -5\n");
    assert_eq!(e, "run.yaml:2:3: load.rate: invalid value -5: expected a number > 0");
    let e = err("load:\n  concurrncy: 3\n");
    assert!(e.starts_with("run.yaml:2:3: load.concurrncy: unknown field `concurrncy`, expected one of"), "{e}");
    let e = err("suites:\n  - name: a\n    samples: many\n");
    assert!(e.starts_with("run.yaml:3:14: suites[0].samples: invalid type: string \"many\""), "{e}");
    let e = err("load:\n  arrival: bursty\n");
    assert!(e.starts_with("run.yaml:2:12: load.arrival: unknown variant `bursty`"), "{e}");
    let e = err("generation:\n  top_p: 1.5\n");
    assert_eq!(e, "run.yaml:2:3: generation.top_p: invalid value 1.5: expected a number in (0, 1]");
    let e = err("policies:\n  - name: a\n    algoritm: x\n");
    assert!(e.starts_with("run.yaml:3:5: policies[0].algoritm: unknown field `algoritm`"), "{e}");
    assert_eq!(err("seed: [1\n"), "run.yaml:1:7: seed: invalid type: sequence, expected u64");
}

#[test]
fn policies_inline_list_map_and_file() {
    let c = resolve(
        "policies:\n  - name: a\n    algorithm: speculative_ngram\n    params: {lookahead_tokens: 4}\n  - name: b\n",
    )
    .unwrap();
    assert_eq!(c.policies.len(), 2);
    assert_eq!(c.policies[0].params_json(), r#"{"lookahead_tokens":4}"#);
    assert_eq!(c.policies[1].algorithm_name(), "baseline");
    let m = resolve("policies:\n  fast:\n    algorithm: early_exit_fixed\n    params: {exit_layer: 28}\n").unwrap();
    assert_eq!((m.policies[0].name.as_str(), m.policies[0].algorithm_name()), ("fast", "early_exit_fixed"));
    // An unknown algorithm or an out-of-range param is a configuration error at load (so `--dry-run` sees it),
    // located at the policy's entry.
    let e = resolve("policies:\n  - name: a\n    algorithm: speculative_ngarm\n").unwrap_err().to_string();
    assert!(e.starts_with("run.yaml:2:5: policies[0]: policy `a`: algorithm: unknown algorithm `speculative_ngarm`"), "{e}");
    let e = resolve("policies:\n  k:\n    algorithm: kv_shrink\n    params: {method: sinks, shrink_ratio: 2}\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("run.yaml:3:5: policies.k: policy `k`: params.shrink_ratio: must be in [0, 1), got 2"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pol.yaml"),
        "policies:\n  - name: x\n    remote:\n      model: m:x\n      temperature: 0.7\n      extra_body: {top_k: 5}\n  - name: y\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("run.yaml"), "policies: pol.yaml\nselect_policies: [y]\n").unwrap();
    let args = RunOptions { config: Some(dir.path().join("run.yaml")), ..Default::default() };
    let c = RunConfig::from_options(&args).unwrap();
    assert_eq!(c.policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["y"]);
    let args = RunOptions { config: Some(dir.path().join("run.yaml")), policies: vec!["x".into()], ..Default::default() };
    let c = RunConfig::from_options(&args).unwrap();
    let remote = c.policies[0].remote.clone().unwrap();
    assert_eq!((remote.model.as_deref(), remote.temperature), (Some("m:x"), Some(0.7)));
    assert_eq!(remote.extra_body["top_k"], serde_json::json!(5));

    // A bad policies file is reported with its own name and line.
    std::fs::write(dir.path().join("pol.yaml"), "policies:\n  - name: x\n    params: 3\n").unwrap();
    let e = RunConfig::from_options(&args).unwrap_err().to_string();
    assert!(e.contains("pol.yaml:3:13: policies[0].params: invalid type"), "{e}");
    std::fs::write(dir.path().join("pol.yaml"), "polices: []\n").unwrap();
    let e = RunConfig::from_options(&args).unwrap_err().to_string();
    assert!(e.contains("pol.yaml:1:10: polices: `polices` holds a list") && e.contains("goes under `policies:`"), "{e}");
    std::fs::write(dir.path().join("pol.yaml"), "- name: x\n- name: z\n").unwrap();
    assert_eq!(RunConfig::from_options(&args).unwrap().policies[0].name, "x");
}

#[test]
fn selection_and_duplicates() {
    let e = resolve("policies: [{name: a}, {name: a}]").unwrap_err().to_string();
    assert!(e.contains("policy `a`: name: defined twice"), "{e}");
    let e = resolve("policies: [{name: a}]\nselect_policies: [b]").unwrap_err().to_string();
    assert!(e.contains("no policy named `b` (defined: a)"), "{e}");
    let e = resolve("suites: [{name: s}, {name: s}]").unwrap_err().to_string();
    assert!(e.contains("listed twice"), "{e}");
    let e = resolve("suites: []").unwrap_err().to_string();
    assert!(e.contains("no suite"), "{e}");
}

#[test]
fn backend_presets_and_requirements() {
    let c = resolve("backend: {kind: groq, model: llama-3.1-8b-instant}").unwrap();
    assert_eq!(c.backend.base_url.as_deref(), Some("https://api.groq.com/openai/v1"));
    assert_eq!(c.backend.api_key_env.as_deref(), Some("GROQ_API_KEY"));
    let c = resolve("backend: {kind: openai, model: gpt-4o-mini}").unwrap();
    assert_eq!(c.backend.base_url.as_deref(), Some("https://api.openai.com/v1"));
    assert_eq!(c.backend.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    let c = resolve("backend: {kind: openai, base_url: 'http://127.0.0.1:8080/v1', api_key_env: MY_KEY, model: m}")
        .unwrap();
    assert_eq!(c.backend.base_url.as_deref(), Some("http://127.0.0.1:8080/v1"));
    assert_eq!(c.backend.api_key_env.as_deref(), Some("MY_KEY"));
    let e = resolve("backend: {kind: openai}").unwrap_err().to_string();
    assert!(e.contains("backend.model"), "{e}");
    // Every policy names its remote model: no backend.model needed.
    resolve("backend: {kind: openai}\npolicies: [{name: a, remote: {model: m}}]").unwrap();
    let e = resolve("backend: {kind: openai, base_url: 'ftp://x', model: m}").unwrap_err().to_string();
    assert!(e.contains("backend.base_url"), "{e}");
    let c = resolve("backend: {kind: embedded, base_url: 'http://x'}").unwrap();
    assert_eq!((c.backend.base_url, c.backend.api_key_env), (None, None));
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.yaml");
    std::fs::write(
        &path,
        "seed: 1\nsuites:\n  - {name: crmarena, samples: 5, tasks: [knowledge_qa]}\n  - {name: worfbench, samples: 5}\n\
         backend: {kind: groq, model: a}\nload: {concurrency: 4}\n",
    )
    .unwrap();
    let args = RunOptions {
        config: Some(path),
        backend: Some(BackendKind::Openai),
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model: Some("b".into()),
        suites: vec!["crmarena".into(), "mine".into()],
        samples: Some(3),
        concurrency: Some(8),
        rate: Some(f64::INFINITY),
        arrival: Some(Arrival::Poisson),
        max_tokens: Some(32),
        results: Some("out".into()),
        seed: Some(9),
        ..Default::default()
    };
    let c = RunConfig::from_options(&args).unwrap();
    assert_eq!(c.backend.kind, BackendKind::Openai);
    assert_eq!(c.backend.base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
    assert_eq!(c.backend.api_key_env.as_deref(), Some("OPENAI_API_KEY"), "groq's key must not follow a kind change");
    assert_eq!(c.backend.model.as_deref(), Some("b"));
    assert_eq!(c.suites.len(), 2);
    assert_eq!(c.suites[0].tasks, vec!["knowledge_qa"], "a selected suite keeps its file settings");
    assert_eq!((c.suites[1].name.as_str(), c.suites[1].samples), ("mine", Some(3)));
    assert!(c.suites.iter().all(|s| s.samples == Some(3)));
    assert_eq!((c.load.concurrency.0, c.load.arrival), (8, Arrival::Poisson));
    assert!(c.load.rate.0.is_infinite());
    assert_eq!((c.generation.max_tokens.0, c.seed), (32, 9));
    assert_eq!(c.results, Path::new("out"));

    let bad = RunOptions { concurrency: Some(0), ..Default::default() };
    assert_eq!(
        RunConfig::from_options(&bad).unwrap_err().to_string(),
        "--concurrency: invalid value 0: expected an integer >= 1"
    );
    let bad = RunOptions { rate: Some(0.0), ..Default::default() };
    assert!(RunConfig::from_options(&bad).unwrap_err().to_string().starts_with("--rate:"));
    let missing = RunOptions { config: Some("/nonexistent/run.yaml".into()), ..Default::default() };
    assert!(RunConfig::from_options(&missing).unwrap_err().to_string().starts_with("/nonexistent/run.yaml: cannot read"));
}

#[test]
fn hash_is_stable_and_sensitive() {
    let a = resolve("seed: 1").unwrap();
    assert_eq!(a.hash(), resolve("seed: 1").unwrap().hash());
    assert_ne!(a.hash(), resolve("seed: 2").unwrap().hash());
    assert_eq!(a.hash().len(), 16);
}

#[test]
fn shipped_run_yaml_parses() {
    // Every key of the shipped file is known and in range (unknown keys would be rejected).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/run.yaml");
    let f: RunFile = load_yaml(&path).unwrap();
    assert!(matches!(f.policies, PolicySource::File(_)));
    assert!(!f.suites.is_empty());
}

#[test]
fn shipped_run_yaml_resolves_with_the_shipped_policies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/run.yaml");
    let c = RunConfig::from_options(&RunOptions { config: Some(path), ..Default::default() }).unwrap();
    assert!(c.policies.len() >= 2, "{:?}", c.policies);
    assert_eq!(c.policies[0].name, "baseline");
    let spec = c.policies.iter().find(|p| p.name == "speculative_decoding").unwrap();
    assert_eq!(spec.params["lookahead_tokens"], serde_json::json!(4));
    assert!(matches!(c.kpis, Some(serde_yaml::Value::String(ref p)) if p.ends_with("configs/kpis.yaml")));
}

#[test]
fn zero_samples_is_rejected_where_it_is_written() {
    // Not "suite has no items" later: the key (or flag) and the rule.
    assert_eq!(
        err("suites:\n  - {name: crmarena, samples: 0}\n"),
        "run.yaml:2:5: suites[0].samples: invalid value 0: expected an integer >= 1"
    );
    assert_eq!(parse("suites:\n  - {name: a, samples: null}\n").unwrap().suites[0].samples, None);
    let bad = RunOptions { samples: Some(0), ..Default::default() };
    assert_eq!(RunConfig::from_options(&bad).unwrap_err().to_string(), "--samples: invalid value 0: expected an integer >= 1");
}

#[test]
fn base_url_credentials_are_redacted_in_config_errors() {
    let e = resolve("backend: {kind: openai, base_url: 'ftp://u:hunter22@x/v1?token=s3cret', model: m}")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "backend.base_url: `ftp://***@x/v1?token=***` must start with http:// or https://");
}

#[test]
fn cost_and_logprobs_keys_parse_and_bad_values_are_located() {
    let c = resolve("cost: {usd_per_hour: 2.5}\ngeneration: {logprobs: 5}\n").unwrap();
    assert_eq!(c.cost, Some(ttc_results::cost::Price::PerHour { usd_per_hour: 2.5 }));
    assert_eq!(c.generation.logprobs.map(|k| k.0), Some(5));
    let c = resolve("cost:\n  usd_per_1m_input: 0.15\n  usd_per_1m_output: 0.6\n").unwrap();
    assert_eq!(c.cost, Some(ttc_results::cost::Price::PerToken { usd_per_1m_input: 0.15, usd_per_1m_output: 0.6 }));
    // No cost and no logprobs: the hash of an older run file is unchanged (neither key is serialized).
    assert!(!serde_json::to_string(&resolve("seed: 1\n").unwrap()).unwrap().contains("cost"));
    for (text, want) in [
        ("seed: 0\ncost:\n  usd_per_hour: -2\n", "run.yaml:3:3: cost.usd_per_hour: invalid value -2: expected a price in dollars"),
        // A wrong combination is found once the block is read: located at the file (serde_yaml reports no span
        // for it), named by its key.
        ("cost:\n  usd_per_hour: 2\n  usd_per_1m_output: 1\n", "run.yaml:1:1: cost: usd_per_hour cannot be combined"),
        ("cost:\n  usd_per_1m_output: 1\n", "run.yaml:1:1: cost: usd_per_1m_input is missing"),
        ("cost:\n  usd_per_hr: 2\n", "run.yaml:2:3: cost.usd_per_hr: unknown field `usd_per_hr`"),
        ("generation:\n  logprobs: 21\n", "run.yaml:2:3: generation.logprobs: invalid value 21: expected an integer in 0..=20"),
        ("generation:\n  logprobs: -1\n", "run.yaml:2:3: generation.logprobs: invalid value -1: expected an integer in 0..=20"),
    ] {
        let e = err(text);
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn load_sweep_and_capacity_parse_and_bad_levels_name_the_key() {
    let f = parse("load:\n  sweep: {arrival: poisson, rates: [0.5, 1, 2]}\n").unwrap();
    let s = f.load.sweep.unwrap();
    assert_eq!(s.levels(), vec![Level::Rate(0.5), Level::Rate(1.0), Level::Rate(2.0)]);
    let f = parse("load:\n  sweep: {arrival: closed, concurrency: [1, 4]}\n").unwrap();
    assert_eq!(f.load.sweep.unwrap().levels(), vec![Level::Concurrency(1), Level::Concurrency(4)]);
    let e = err("load:\n  sweep: {arrival: poisson, rates: []}\n");
    assert!(e.starts_with("run.yaml:2:") && e.contains("load.sweep: no load level"), "{e}");
    let e = err("load:\n  sweep:\n    rates: [1, 0]\n");
    assert_eq!(e, "run.yaml:3:12: load.sweep.rates[1]: invalid value 0: expected a number > 0");
    let e = err("load:\n  sweep:\n    rates: [-2]\n");
    assert!(e.starts_with("run.yaml:3:") && e.contains("load.sweep.rates[0]: invalid value -2"), "{e}");
    let e = err("load:\n  sweep: {arrival: closed}\n");
    assert!(e.contains("load.sweep: no load level: a closed-loop sweep needs `concurrency"), "{e}");

    let c = parse("capacity: {slo: \"p95_e2e_s<=2,p95_ttft_s<=1,error_rate<0.01\", probe_requests: 30}\n")
        .unwrap()
        .capacity
        .unwrap();
    assert_eq!((c.probe_requests, c.warmup_requests, c.slo_spec().conditions.len()), (30, 4, 3));
    let e = err("seed: 1\ncapacity:\n  slo: \"p95_e2e_s=2\"\n");
    assert!(e.starts_with("run.yaml:3:3: capacity.slo: cannot parse `p95_e2e_s=2`"), "{e}");
    let e = err("capacity:\n  probe_requests: 5\n");
    assert!(e.starts_with("run.yaml:2:3: capacity.probe_requests: 5 measured requests per probe are too few"), "{e}");
    let e = err("capacity:\n  arrival: closed\n");
    assert!(e.starts_with("run.yaml:2:") && e.contains("capacity.arrival: closed: capacity probes offer a rate"), "{e}");
    // Absent sections stay out of the config hash (old runs keep their hashes).
    let plain = resolve("{}").unwrap();
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("sweep") && !json.contains("capacity"), "{json}");
}

#[test]
fn capacity_flags_name_themselves() {
    use crate::config::sweep::CapacityOptions;
    let flags = CapacityOptions { slo: Some("p95_e2e_s<=oops".into()), ..Default::default() };
    let e = flags.apply(None).unwrap_err().to_string();
    assert!(e.starts_with("--slo: cannot parse"), "{e}");
    let flags = CapacityOptions { probe_requests: Some(3), ..Default::default() };
    assert!(flags.apply(None).unwrap_err().to_string().starts_with("--probe-requests: 3 measured requests"));
    let flags = CapacityOptions { slo: Some("p99_ttft_s<0.5".into()), max_probes: Some(4), ..Default::default() };
    let c = flags.apply(Some(CapacityConfig::default())).unwrap();
    assert_eq!((c.slo.as_str(), c.max_probes), ("p99_ttft_s<0.5", 4));
    assert_eq!("auto".parse::<StartRate>(), Ok(StartRate::Auto));
    assert_eq!("1.5".parse::<StartRate>(), Ok(StartRate::Fixed(1.5)));
    assert!("0".parse::<StartRate>().unwrap_err().contains("invalid value 0: expected a finite number > 0 or `auto`"));
    assert!("fast".parse::<StartRate>().unwrap_err().contains("invalid value `fast`"));
}

#[test]
fn capacity_start_rate_suites_and_prefix_cache_keys() {
    let c = parse("capacity: {start_rate: auto, suites: [worfbench], prefix_cache_mb: 256}\n").unwrap().capacity.unwrap();
    assert_eq!((c.start_rate, c.suites.as_slice(), c.prefix_cache_mb), (StartRate::Auto, &["worfbench".to_string()][..], Some(256)));
    let c = parse("capacity: {start_rate: 2}\n").unwrap().capacity.unwrap();
    assert_eq!(c.start_rate, StartRate::Fixed(2.0));
    let e = err("capacity:\n  start_rate: soon\n");
    assert!(e.starts_with("run.yaml:2:") && e.contains("capacity.start_rate: invalid value `soon`"), "{e}");
    let e = err("capacity:\n  start_rate: -1\n");
    assert!(e.contains("capacity.start_rate: invalid value -1"), "{e}");
    let e = err("capacity:\n  prefix_cache_mb: 0\n");
    assert!(e.starts_with("run.yaml:2:") && e.contains("capacity.prefix_cache_mb: invalid value 0"), "{e}");
    // A search suite must be one of the run's suites (named in the error with the run's suites).
    let f = parse("suites: [{name: crmarena}, {name: worfbench}]\ncapacity: {suites: [worfbnch]}\n").unwrap();
    let e = check_capacity_suites(&f).unwrap_err().to_string();
    assert_eq!(e, "capacity.suites: `worfbnch` is not a suite of this run (crmarena, worfbench)");
    // Checked against the file, before `--suites` selects: leaving the search's suite out is not an error.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.yaml");
    std::fs::write(&path, "suites: [{name: crmarena}, {name: worfbench}]\ncapacity: {suites: [worfbench]}\n").unwrap();
    let only_crm = RunOptions { config: Some(path.clone()), suites: vec!["crmarena".into()], ..Default::default() };
    assert_eq!(RunConfig::from_options(&only_crm).unwrap().capacity.unwrap().suites, vec!["worfbench".to_string()]);
    std::fs::write(&path, "suites: [{name: crmarena}]\ncapacity: {suites: [worfbench]}\n").unwrap();
    let e = RunConfig::from_options(&RunOptions { config: Some(path), ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("capacity.suites: `worfbench` is not a suite of this run (crmarena)"), "{e}");
    // The serialized form (the run's config hash) writes `auto` back as a word.
    let cfg = resolve("suites: [{name: worfbench}]\ncapacity: {start_rate: auto, suites: [worfbench]}\n").unwrap();
    let json = serde_json::to_string(&cfg.capacity).unwrap();
    assert!(json.contains("\"start_rate\":\"auto\"") && json.contains("\"suites\":[\"worfbench\"]"), "{json}");
}
