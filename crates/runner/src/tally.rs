//! The runner's running tally of a run, fed one record at a time (the progress bar) and printed at its end:
//! outcomes, error classes, retries, throughput and latency percentiles (`ttc_stats::percentile`, as everywhere
//! in ttcbench). It is not a summary of the results: `ttc summary`, the report and the dashboard read the one
//! analysis, `ttc_results::analysis::Summary`, from the store; this is the runner's own account of what it did
//! (attempts and backoff, which the store's analysis does not break down).

use std::collections::BTreeMap;
use std::fmt::Write;
use ttc_types::{Record, RecordStatus};

#[derive(Debug, Default, Clone)]
pub struct RunTally {
    pub total: usize,
    pub ok: usize,
    pub errors: usize,
    pub by_class: BTreeMap<String, usize>,
    /// Attempts over all requests (retries = attempts - total).
    pub attempts: u64,
    /// Requests that needed more than one attempt.
    pub retried: usize,
    pub backoff_s: f64,
    pub output_tokens: u64,
    /// Earliest send and latest last-chunk time, seconds since the run's start.
    pub first_start_s: Option<f64>,
    pub last_end_s: Option<f64>,
    pub ttft_s: Vec<f64>,
    pub e2e_s: Vec<f64>,
}

impl RunTally {
    pub fn add(&mut self, r: &Record) {
        self.total += 1;
        self.attempts += r.attempts as u64;
        self.retried += (r.attempts > 1) as usize;
        self.backoff_s += r.backoff_s;
        match r.status {
            RecordStatus::Ok => self.ok += 1,
            RecordStatus::Error => {
                self.errors += 1;
                let class = r.error_class.clone().unwrap_or_else(|| "unknown".into());
                *self.by_class.entry(class).or_default() += 1;
            }
        }
        if r.status == RecordStatus::Ok {
            self.output_tokens += r.output_tokens.unwrap_or(0) as u64;
            if let Some(t) = r.ttft_s {
                self.ttft_s.push(t);
            }
            if let Some(e) = r.e2e_s {
                self.e2e_s.push(e);
                let end = r.start_offset_s + e;
                self.last_end_s = Some(self.last_end_s.map_or(end, |x| x.max(end)));
            }
        }
        self.first_start_s = Some(self.first_start_s.map_or(r.start_offset_s, |x| x.min(r.start_offset_s)));
    }

    pub fn retries(&self) -> u64 {
        self.attempts.saturating_sub(self.total as u64)
    }

    /// Aggregate output throughput: sum of N over (last end - first start) (docs/runner.md).
    pub fn output_tok_s(&self) -> Option<f64> {
        let span = self.last_end_s? - self.first_start_s?;
        (span > 0.0).then(|| self.output_tokens as f64 / span)
    }

    pub fn render(&self, wall_s: f64) -> String {
        let mut s = String::new();
        let pct = |v: &[f64], q| ttc_stats::percentile(v, q).map_or("-".to_string(), |x| format!("{:.1} ms", x * 1000.0));
        let _ = writeln!(
            s,
            "requests: {} ok, {} failed, {} total in {:.2} s ({:.1} req/s)",
            self.ok,
            self.errors,
            self.total,
            wall_s,
            if wall_s > 0.0 { self.total as f64 / wall_s } else { 0.0 }
        );
        if !self.by_class.is_empty() {
            let classes: Vec<String> = self.by_class.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "errors: {}", classes.join(", "));
        }
        let _ = writeln!(
            s,
            "retries: {} ({} requests retried), {:.2} s in backoff",
            self.retries(),
            self.retried,
            self.backoff_s
        );
        let _ = writeln!(
            s,
            "output: {} tokens, {}",
            self.output_tokens,
            self.output_tok_s().map_or("-".into(), |t| format!("{t:.1} tok/s aggregate"))
        );
        let _ = writeln!(
            s,
            "ttft p50 {} p99 {} | e2e p50 {} p99 {}",
            pct(&self.ttft_s, 50.0),
            pct(&self.ttft_s, 99.0),
            pct(&self.e2e_s, 50.0),
            pct(&self.e2e_s, 99.0)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        status: RecordStatus,
        attempts: u32,
        start: f64,
        e2e: Option<f64>,
        tokens: u32,
        class: Option<&str>,
    ) -> Record {
        Record {
            schema_version: 1,
            run_id: "r".into(),
            run_started_at: String::new(),
            config_hash: String::new(),
            project_version: String::new(),
            host: String::new(),
            backend: "b".into(),
            base_url: None,
            model: "m".into(),
            weights: None,
            policy: "p".into(),
            algorithm: "a".into(),
            params_json: "{}".into(),
            suite: "s".into(),
            task: None,
            sample_id: format!("{start}"),
            status,
            error_class: class.map(str::to_string),
            error_message: None,
            attempts,
            backoff_s: 0.5 * (attempts - 1) as f64,
            prompt_tokens: None,
            cached_prompt_tokens: None,
            output_tokens: Some(tokens),
            token_count_source: None,
            start_offset_s: start,
            ttft_s: e2e.map(|e| e / 2.0),
            e2e_s: e2e,
            tpot_s: None,
            itl_mean_s: None,
            itl_p50_s: None,
            itl_p99_s: None,
            token_times_s: vec![],
            throughput_tok_s: None,
            finish_reason: None,
            token_logprobs: None,
            prediction: String::new(),
            reference: None,
            metrics: Default::default(),
            extra_metrics: Default::default(),
            policy_stats: Default::default(),
            fidelity: Default::default(),
            load: Default::default(),
        }
    }

    #[test]
    fn totals_retries_and_aggregate_throughput() {
        let mut s = RunTally::default();
        s.add(&rec(RecordStatus::Ok, 1, 0.0, Some(2.0), 100, None));
        s.add(&rec(RecordStatus::Ok, 3, 1.0, Some(3.0), 300, None));
        s.add(&rec(RecordStatus::Error, 4, 0.5, None, 7, Some("http_5xx")));
        assert_eq!((s.total, s.ok, s.errors, s.retried), (3, 2, 1, 2));
        assert_eq!(s.retries(), 5);
        assert_eq!(s.backoff_s, 2.5);
        assert_eq!(s.by_class["http_5xx"], 1);
        // Failed requests' tokens do not count; span = last end (1 + 3) - first start (0).
        assert_eq!(s.output_tokens, 400);
        assert_eq!(s.output_tok_s(), Some(100.0));
        let text = s.render(4.0);
        assert!(text.contains("2 ok, 1 failed, 3 total"), "{text}");
        assert!(text.contains("errors: http_5xx=1"), "{text}");
        assert!(text.contains("ttft p50 1250.0 ms"), "{text}");
    }
}
