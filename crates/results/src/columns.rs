//! The one mapping between [`Record`] and Arrow columns. `encode` defines the schema (column names, types,
//! order); `decode` reads it back, tolerating absent nullable columns (files written by an older schema) and
//! naming the file, column and row of anything it cannot read.
//!
//! Layout: scalar fields keep their names; every name in [`QUALITY_METRICS`] becomes a nullable Float64 column
//! `metric_<name>`; [`PolicyStats`] fields become nullable `ps_<field>` columns (the histogram a list column);
//! `token_times_s` is a list column; `extra_metrics` is JSON text in `extra_metrics_json`.

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float32Type, Float64Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, ListArray, PrimitiveArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use ttc_types::{Fidelity, PolicyStats, Record, RecordStatus, TokenCountSource, QUALITY_METRICS};

/// Prefix of the quality metric columns.
pub const METRIC_PREFIX: &str = "metric_";
/// Prefix of the policy-internals columns.
pub const PS_PREFIX: &str = "ps_";

/// The Arrow schema of the store (derived from `encode` so the two can never disagree).
pub fn arrow_schema() -> SchemaRef {
    encode(&[]).expect("encoding zero records cannot fail").schema()
}

/// Builds the columns of one batch. Each entry: (name, nullable, array).
struct Cols(Vec<(String, bool, ArrayRef)>);

impl Cols {
    fn add(&mut self, name: impl Into<String>, nullable: bool, array: impl Array + 'static) {
        self.0.push((name.into(), nullable, Arc::new(array)));
    }
    fn str<'a>(&mut self, name: &str, rs: &'a [Record], f: impl Fn(&'a Record) -> &'a str) {
        self.add(name, false, StringArray::from_iter_values(rs.iter().map(f)));
    }
    fn opt_str<'a>(&mut self, name: &str, rs: &'a [Record], f: impl Fn(&'a Record) -> Option<&'a str>) {
        self.add(name, true, rs.iter().map(f).collect::<StringArray>());
    }
    fn f64(&mut self, name: &str, rs: &[Record], f: impl Fn(&Record) -> f64) {
        self.add(name, false, Float64Array::from_iter_values(rs.iter().map(f)));
    }
    fn opt_f64(&mut self, name: &str, rs: &[Record], f: impl Fn(&Record) -> Option<f64>) {
        self.add(name, true, rs.iter().map(f).collect::<Float64Array>());
    }
    fn u32(&mut self, name: &str, rs: &[Record], f: impl Fn(&Record) -> u32) {
        self.add(name, false, UInt32Array::from_iter_values(rs.iter().map(f)));
    }
    fn opt_u32(&mut self, name: &str, rs: &[Record], f: impl Fn(&Record) -> Option<u32>) {
        self.add(name, true, rs.iter().map(f).collect::<UInt32Array>());
    }
    fn opt_u64(&mut self, name: &str, rs: &[Record], f: impl Fn(&Record) -> Option<u64>) {
        self.add(name, true, rs.iter().map(f).collect::<UInt64Array>());
    }
}

/// Policy-stats fields by type; `encode`/`decode` destructure [`PolicyStats`] exhaustively, so adding a field
/// to it fails to compile here until the store learns the new column.
macro_rules! ps_fields {
    (u64: [$($u:ident),*], f64: [$($f:ident),*]) => {
        const PS_U64: &[&str] = &[$(stringify!($u)),*];
        const PS_F64: &[&str] = &[$(stringify!($f)),*];
        fn encode_policy_stats(c: &mut Cols, rs: &[Record]) -> Result<()> {
            $( c.opt_u64(concat!("ps_", stringify!($u)), rs, |r| r.policy_stats.$u); )*
            $( c.opt_f64(concat!("ps_", stringify!($f)), rs, |r| r.policy_stats.$f); )*
            let hist = list_column::<UInt32Type>(rs.iter().map(|r| r.policy_stats.exit_layer_histogram.clone()), rs.len())?;
            c.add("ps_exit_layer_histogram", true, hist);
            Ok(())
        }
        /// Resolves the policy-stats columns of a batch once; the closure decodes one row.
        fn policy_stats_decoder<'a>(b: &BatchReader<'a>) -> Result<impl Fn(usize) -> Result<PolicyStats> + 'a> {
            $( let $u = b.prim::<UInt64Type>(concat!("ps_", stringify!($u)), false)?; )*
            $( let $f = b.prim::<Float64Type>(concat!("ps_", stringify!($f)), false)?; )*
            let hist = b.list::<UInt32Type>("ps_exit_layer_histogram")?;
            let route = route_decoder(b)?;
            Ok(move |i| {
                Ok(PolicyStats {
                    $( $u: $u.opt(i), )*
                    $( $f: $f.opt(i), )*
                    exit_layer_histogram: hist.get(i),
                    route: route(i),
                })
            })
        }
        /// Compile-time guard: lists every field, so a new PolicyStats field breaks the build here.
        #[allow(dead_code)]
        fn ps_exhaustive(p: PolicyStats) {
            let PolicyStats { $($u: _,)* $($f: _,)* exit_layer_histogram: _, route: _ } = p;
        }
    };
}

ps_fields!(
    u64: [drafted_tokens, accepted_tokens, verification_steps, kv_peak_bytes, kv_final_bytes, kv_baseline_bytes,
          kv_evicted_entries, batch_steps],
    f64: [acceptance_rate, mean_accepted_per_step, mean_exit_layer, layers_skipped_share, mean_candidates,
          mean_entropy, sampler_us_per_token, mean_batch_occupancy, queue_wait_s]
);

/// Names of the numeric policy-internals fields (without the `ps_` prefix), in column order.
pub fn policy_stat_fields() -> impl Iterator<Item = &'static str> {
    PS_U64.iter().chain(PS_F64.iter()).copied()
}

/// The route a router or adaptive policy took (`routed_policy`, `route_rule`) and the features it read
/// (`route_*`); all null for other policies, absent in stores written before them.
fn encode_route(c: &mut Cols, rs: &[Record]) {
    fn route(r: &Record) -> Option<&ttc_types::Route> {
        r.policy_stats.route.as_ref()
    }
    c.opt_str("routed_policy", rs, |r| route(r).map(|x| x.policy.as_str()));
    c.opt_str("route_rule", rs, |r| route(r).map(|x| x.rule.as_str()));
    c.opt_u32("route_prompt_tokens", rs, |r| route(r).and_then(|x| x.prompt_tokens));
    c.opt_f64("route_ngram_repetition", rs, |r| route(r).and_then(|x| x.ngram_repetition));
    c.opt_f64("route_first_entropy", rs, |r| route(r).and_then(|x| x.first_entropy));
    c.opt_f64("route_load", rs, |r| route(r).and_then(|x| x.load));
}

fn route_decoder<'a>(b: &BatchReader<'a>) -> Result<impl Fn(usize) -> Option<ttc_types::Route> + 'a> {
    let policy = b.str("routed_policy", false)?;
    let rule = b.str("route_rule", false)?;
    let prompt_tokens = b.prim::<UInt32Type>("route_prompt_tokens", false)?;
    let ngram_repetition = b.prim::<Float64Type>("route_ngram_repetition", false)?;
    let first_entropy = b.prim::<Float64Type>("route_first_entropy", false)?;
    let load = b.prim::<Float64Type>("route_load", false)?;
    Ok(move |i| {
        Some(ttc_types::Route {
            policy: policy.opt(i)?,
            rule: rule.opt(i).unwrap_or_default(),
            prompt_tokens: prompt_tokens.opt(i),
            ngram_repetition: ngram_repetition.opt(i),
            first_entropy: first_entropy.opt(i),
            load: load.opt(i),
        })
    })
}

/// `fidelity_*` columns (docs/metrics.md "Fidelity"); all nullable, absent in stores written before them. The
/// decoder builds `Fidelity` with every field named, so a new field fails to compile until it has a column.
fn encode_fidelity(c: &mut Cols, rs: &[Record]) {
    c.opt_u32("fidelity_steps", rs, |r| r.fidelity.steps);
    c.opt_f64("fidelity_top1", rs, |r| r.fidelity.top1);
    c.opt_f64("fidelity_kl", rs, |r| r.fidelity.kl);
    c.opt_f64("fidelity_top5", rs, |r| r.fidelity.top5);
    c.opt_u32("fidelity_first_divergence", rs, |r| r.fidelity.first_divergence);
    c.opt_f64("fidelity_pruned_mass", rs, |r| r.fidelity.pruned_mass);
    c.opt_f64("fidelity_rouge_l", rs, |r| r.fidelity.rouge_l);
    c.opt_f64("fidelity_exact_match", rs, |r| r.fidelity.exact_match);
}

fn fidelity_decoder<'a>(b: &BatchReader<'a>) -> Result<impl Fn(usize) -> Fidelity + 'a> {
    let steps = b.prim::<UInt32Type>("fidelity_steps", false)?;
    let top1 = b.prim::<Float64Type>("fidelity_top1", false)?;
    let kl = b.prim::<Float64Type>("fidelity_kl", false)?;
    let top5 = b.prim::<Float64Type>("fidelity_top5", false)?;
    let first_divergence = b.prim::<UInt32Type>("fidelity_first_divergence", false)?;
    let pruned_mass = b.prim::<Float64Type>("fidelity_pruned_mass", false)?;
    let rouge_l = b.prim::<Float64Type>("fidelity_rouge_l", false)?;
    let exact_match = b.prim::<Float64Type>("fidelity_exact_match", false)?;
    Ok(move |i| Fidelity {
        steps: steps.opt(i),
        top1: top1.opt(i),
        kl: kl.opt(i),
        top5: top5.opt(i),
        first_divergence: first_divergence.opt(i),
        pruned_mass: pruned_mass.opt(i),
        rouge_l: rouge_l.opt(i),
        exact_match: exact_match.opt(i),
    })
}

fn status_label(s: RecordStatus) -> &'static str {
    match s {
        RecordStatus::Ok => "ok",
        RecordStatus::Error => "error",
    }
}

fn token_source_label(s: TokenCountSource) -> &'static str {
    match s {
        TokenCountSource::Engine => "engine",
        TokenCountSource::Usage => "usage",
        TokenCountSource::Tokenizer => "tokenizer",
    }
}

fn push_json_entry(out: &mut String, first: &mut bool, k: &str, v: f64) {
    out.push_str(if *first { "" } else { "," });
    *first = false;
    out.push_str(&serde_json::Value::from(k).to_string());
    out.push(':');
    // JSON cannot hold NaN/inf: written as null, read back as NaN.
    match serde_json::Number::from_f64(v) {
        Some(n) => out.push_str(&n.to_string()),
        None => out.push_str("null"),
    }
}

/// `extra_metrics` as a JSON object, plus any `metrics` entry whose name has no column (kept, not lost).
fn extra_metrics_json(r: &Record, unknown_metric: impl Fn(&str) -> bool) -> String {
    if r.extra_metrics.is_empty() && !r.metrics.keys().any(|k| unknown_metric(k)) {
        return "{}".to_string();
    }
    let mut out = String::from("{");
    let mut first = true;
    for (k, v) in &r.extra_metrics {
        push_json_entry(&mut out, &mut first, k, *v);
    }
    for (k, v) in r.metrics.iter().filter(|(k, _)| unknown_metric(k) && !r.extra_metrics.contains_key(*k)) {
        push_json_entry(&mut out, &mut first, k, *v);
    }
    out.push('}');
    out
}

/// `metric_<name>` columns filled in one pass over each record's metrics map.
fn metric_columns(rs: &[Record]) -> Vec<Float64Array> {
    let index: HashMap<&str, usize> = QUALITY_METRICS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut cols: Vec<Vec<Option<f64>>> = vec![vec![None; rs.len()]; QUALITY_METRICS.len()];
    for (row, r) in rs.iter().enumerate() {
        for (k, v) in &r.metrics {
            if let Some(&c) = index.get(k.as_str()) {
                cols[c][row] = Some(*v);
            }
        }
    }
    cols.into_iter().map(Float64Array::from).collect()
}

/// A list column from per-row slices, built from one flat value buffer and offsets.
fn list_column<T: ArrowPrimitiveType>(rows: impl Iterator<Item = Option<Vec<T::Native>>> + Clone, len: usize) -> Result<ListArray>
where
    PrimitiveArray<T>: From<Vec<T::Native>>,
{
    let mut values = Vec::new();
    let mut lengths = Vec::with_capacity(len);
    let mut valid = Vec::with_capacity(len);
    for row in rows {
        lengths.push(row.as_ref().map_or(0, Vec::len));
        valid.push(row.is_some());
        values.extend(row.unwrap_or_default());
    }
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    let field = Arc::new(Field::new_list_field(T::DATA_TYPE, true));
    Ok(ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), Arc::new(PrimitiveArray::<T>::from(values)), nulls)?)
}

fn token_times_column(rs: &[Record]) -> Result<ListArray> {
    let total: usize = rs.iter().map(|r| r.token_times_s.len()).sum();
    let mut values = Vec::with_capacity(total);
    for r in rs {
        values.extend_from_slice(&r.token_times_s);
    }
    let field = Arc::new(Field::new_list_field(DataType::Float64, true));
    let offsets = OffsetBuffer::from_lengths(rs.iter().map(|r| r.token_times_s.len()));
    Ok(ListArray::try_new(field, offsets, Arc::new(Float64Array::from(values)), None)?)
}

/// Records -> one Arrow batch in the store's schema.
pub fn encode(rs: &[Record]) -> Result<RecordBatch> {
    let mut c = Cols(Vec::with_capacity(96));
    c.u32("schema_version", rs, |r| r.schema_version);
    // run_id is not stored in the file: it is the Hive partition (`run_id=<id>/`), as pandas/pyarrow expect
    // (a column that is both in the file and in the path fails to merge in `pandas.read_parquet`).
    c.str("run_started_at", rs, |r| &r.run_started_at);
    c.str("config_hash", rs, |r| &r.config_hash);
    c.str("project_version", rs, |r| &r.project_version);
    c.str("host", rs, |r| &r.host);
    c.str("backend", rs, |r| &r.backend);
    c.opt_str("base_url", rs, |r| r.base_url.as_deref());
    c.str("model", rs, |r| &r.model);
    c.opt_str("weights", rs, |r| r.weights.as_deref());
    c.str("policy", rs, |r| &r.policy);
    c.str("algorithm", rs, |r| &r.algorithm);
    c.str("params_json", rs, |r| &r.params_json);
    c.str("suite", rs, |r| &r.suite);
    c.opt_str("task", rs, |r| r.task.as_deref());
    c.str("sample_id", rs, |r| &r.sample_id);
    c.str("status", rs, |r| status_label(r.status));
    c.opt_str("error_class", rs, |r| r.error_class.as_deref());
    c.opt_str("error_message", rs, |r| r.error_message.as_deref());
    c.u32("attempts", rs, |r| r.attempts);
    c.f64("backoff_s", rs, |r| r.backoff_s);
    c.opt_u32("prompt_tokens", rs, |r| r.prompt_tokens);
    c.opt_u32("cached_prompt_tokens", rs, |r| r.cached_prompt_tokens);
    c.opt_u32("output_tokens", rs, |r| r.output_tokens);
    c.opt_str("token_count_source", rs, |r| r.token_count_source.map(token_source_label));
    c.f64("start_offset_s", rs, |r| r.start_offset_s);
    c.opt_f64("ttft_s", rs, |r| r.ttft_s);
    c.opt_f64("e2e_s", rs, |r| r.e2e_s);
    c.opt_f64("tpot_s", rs, |r| r.tpot_s);
    c.opt_f64("itl_mean_s", rs, |r| r.itl_mean_s);
    c.opt_f64("itl_p50_s", rs, |r| r.itl_p50_s);
    c.opt_f64("itl_p99_s", rs, |r| r.itl_p99_s);
    c.add("token_times_s", false, token_times_column(rs)?);
    c.opt_f64("throughput_tok_s", rs, |r| r.throughput_tok_s);
    c.opt_str("finish_reason", rs, |r| r.finish_reason.as_deref());
    c.add("token_logprobs", true, list_column::<Float32Type>(rs.iter().map(|r| r.token_logprobs.clone()), rs.len())?);
    c.str("prediction", rs, |r| &r.prediction);
    c.opt_str("reference", rs, |r| r.reference.as_deref());
    for (name, col) in QUALITY_METRICS.iter().zip(metric_columns(rs)) {
        c.add(format!("{METRIC_PREFIX}{name}"), true, col);
    }
    let known: HashSet<&str> = QUALITY_METRICS.iter().copied().collect();
    let extra: Vec<String> = rs.iter().map(|r| extra_metrics_json(r, |k| !known.contains(k))).collect();
    c.add("extra_metrics_json", false, StringArray::from_iter_values(extra));
    encode_policy_stats(&mut c, rs)?;
    encode_route(&mut c, rs);
    encode_fidelity(&mut c, rs);
    encode_load(&mut c, rs);

    let fields: Vec<Field> =
        c.0.iter().map(|(n, nullable, a)| Field::new(n.as_str(), a.data_type().clone(), *nullable)).collect();
    let arrays: Vec<ArrayRef> = c.0.into_iter().map(|(_, _, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).context("building the Arrow batch")
}

/// The load-axis columns (issue 16): phase, level, queueing, and a capacity probe's SLO and saturation flag.
fn encode_load(c: &mut Cols, rs: &[Record]) {
    c.opt_str("phase", rs, |r| r.load.phase.as_deref());
    c.opt_f64("offered_rate", rs, |r| r.load.offered_rate);
    c.opt_u32("concurrency_level", rs, |r| r.load.concurrency_level);
    c.opt_f64("queue_s", rs, |r| r.load.queue_s);
    c.opt_str("slo", rs, |r| r.load.slo.as_deref());
    c.opt_str("saturation", rs, |r| r.load.saturation.as_deref());
}

/// Resolves columns of one batch by name once (type-checked), with errors that name the file and column.
struct BatchReader<'a> {
    batch: &'a RecordBatch,
    file: &'a Path,
}

/// A text column; `arr` is None when an optional column is absent (older schema).
struct StrCol<'a> {
    name: &'static str,
    arr: Option<&'a StringArray>,
    file: &'a Path,
}

impl StrCol<'_> {
    fn opt(&self, i: usize) -> Option<String> {
        self.arr.filter(|a| !a.is_null(i)).map(|a| a.value(i).to_string())
    }
    fn req(&self, i: usize) -> Result<String> {
        self.opt(i).ok_or_else(|| null_error(self.file, self.name, i))
    }
}

struct PrimCol<'a, T: ArrowPrimitiveType> {
    name: &'static str,
    arr: Option<&'a PrimitiveArray<T>>,
    file: &'a Path,
}

impl<T: ArrowPrimitiveType> PrimCol<'_, T> {
    fn opt(&self, i: usize) -> Option<T::Native> {
        self.arr.filter(|a| !a.is_null(i)).map(|a| a.value(i))
    }
    fn req(&self, i: usize) -> Result<T::Native> {
        self.opt(i).ok_or_else(|| null_error(self.file, self.name, i))
    }
}

/// A list column of non-null primitives, read through its offsets (no per-row array slices).
struct ListCol<'a, T: ArrowPrimitiveType> {
    list: Option<(&'a ListArray, &'a [T::Native])>,
}

impl<T: ArrowPrimitiveType> ListCol<'_, T> {
    fn get(&self, i: usize) -> Option<Vec<T::Native>> {
        let (list, values) = self.list?;
        if list.is_null(i) {
            return None;
        }
        let offsets = list.value_offsets();
        Some(values[offsets[i] as usize..offsets[i + 1] as usize].to_vec())
    }
}

fn null_error(file: &Path, name: &str, i: usize) -> anyhow::Error {
    anyhow!("{}: row {i}: column `{name}` is null but required", file.display())
}

impl<'a> BatchReader<'a> {
    fn column(&self, name: &str, required: bool) -> Result<Option<&'a ArrayRef>> {
        match self.batch.column_by_name(name) {
            None if required => bail!("{}: missing required column `{name}`", self.file.display()),
            c => Ok(c),
        }
    }
    fn type_error(&self, name: &str, want: &str, got: &DataType) -> anyhow::Error {
        anyhow!("{}: column `{name}` has type {got}, expected {want}", self.file.display())
    }
    fn str(&self, name: &'static str, required: bool) -> Result<StrCol<'a>> {
        let arr = match self.column(name, required)? {
            Some(c) => Some(c.as_string_opt::<i32>().ok_or_else(|| self.type_error(name, "Utf8", c.data_type()))?),
            None => None,
        };
        Ok(StrCol { name, arr, file: self.file })
    }
    fn prim<T: ArrowPrimitiveType>(&self, name: &'static str, required: bool) -> Result<PrimCol<'a, T>> {
        let arr = match self.column(name, required)? {
            Some(c) => Some(c.as_primitive_opt::<T>().ok_or_else(|| self.type_error(name, &T::DATA_TYPE.to_string(), c.data_type()))?),
            None => None,
        };
        Ok(PrimCol { name, arr, file: self.file })
    }
    fn list<T: ArrowPrimitiveType>(&self, name: &'static str) -> Result<ListCol<'a, T>> {
        let Some(col) = self.column(name, false)? else { return Ok(ListCol { list: None }) };
        let want = || format!("List<{}>", T::DATA_TYPE);
        let list = col.as_list_opt::<i32>().ok_or_else(|| self.type_error(name, &want(), col.data_type()))?;
        let values = list.values().as_primitive_opt::<T>().ok_or_else(|| self.type_error(name, &want(), col.data_type()))?;
        if values.null_count() > 0 {
            bail!("{}: column `{name}` holds null list items", self.file.display());
        }
        Ok(ListCol { list: Some((list, values.values())) })
    }
}

fn parse_status(s: &str, file: &Path, i: usize) -> Result<RecordStatus> {
    match s {
        "ok" => Ok(RecordStatus::Ok),
        "error" => Ok(RecordStatus::Error),
        other => bail!("{}: row {i}: column `status` has unknown value `{other}` (expected ok|error)", file.display()),
    }
}

fn parse_token_source(s: &str, file: &Path, i: usize) -> Result<TokenCountSource> {
    match s {
        "engine" => Ok(TokenCountSource::Engine),
        "usage" => Ok(TokenCountSource::Usage),
        "tokenizer" => Ok(TokenCountSource::Tokenizer),
        other => bail!(
            "{}: row {i}: column `token_count_source` has unknown value `{other}` (expected engine|usage|tokenizer)",
            file.display()
        ),
    }
}

fn parse_extra_metrics(json: &str, file: &Path, i: usize) -> Result<BTreeMap<String, f64>> {
    let raw: BTreeMap<String, Option<f64>> = serde_json::from_str(json)
        .with_context(|| format!("{}: row {i}: column `extra_metrics_json` is not a JSON object of numbers", file.display()))?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

/// One Arrow batch (read from `file`) -> records. `run_id` comes from the partition folder unless the file
/// has its own `run_id` column.
pub fn decode(batch: &RecordBatch, file: &Path, run_id: &str) -> Result<Vec<Record>> {
    let b = BatchReader { batch, file };
    let schema_version = b.prim::<UInt32Type>("schema_version", true)?;
    let run_id_col = b.str("run_id", false)?;
    let run_started_at = b.str("run_started_at", true)?;
    let config_hash = b.str("config_hash", true)?;
    let project_version = b.str("project_version", true)?;
    let host = b.str("host", true)?;
    let backend = b.str("backend", true)?;
    let base_url = b.str("base_url", false)?;
    let model = b.str("model", true)?;
    let weights = b.str("weights", false)?;
    let policy = b.str("policy", true)?;
    let algorithm = b.str("algorithm", true)?;
    let params_json = b.str("params_json", true)?;
    let suite = b.str("suite", true)?;
    let task = b.str("task", false)?;
    let sample_id = b.str("sample_id", true)?;
    let status = b.str("status", true)?;
    let error_class = b.str("error_class", false)?;
    let error_message = b.str("error_message", false)?;
    let attempts = b.prim::<UInt32Type>("attempts", true)?;
    let backoff_s = b.prim::<Float64Type>("backoff_s", true)?;
    let prompt_tokens = b.prim::<UInt32Type>("prompt_tokens", false)?;
    let cached_prompt_tokens = b.prim::<UInt32Type>("cached_prompt_tokens", false)?;
    let output_tokens = b.prim::<UInt32Type>("output_tokens", false)?;
    let token_count_source = b.str("token_count_source", false)?;
    let start_offset_s = b.prim::<Float64Type>("start_offset_s", true)?;
    let ttft_s = b.prim::<Float64Type>("ttft_s", false)?;
    let e2e_s = b.prim::<Float64Type>("e2e_s", false)?;
    let tpot_s = b.prim::<Float64Type>("tpot_s", false)?;
    let itl_mean_s = b.prim::<Float64Type>("itl_mean_s", false)?;
    let itl_p50_s = b.prim::<Float64Type>("itl_p50_s", false)?;
    let itl_p99_s = b.prim::<Float64Type>("itl_p99_s", false)?;
    let token_times_s = b.list::<Float64Type>("token_times_s")?;
    let throughput_tok_s = b.prim::<Float64Type>("throughput_tok_s", false)?;
    let finish_reason = b.str("finish_reason", false)?;
    let token_logprobs = b.list::<Float32Type>("token_logprobs")?;
    let prediction = b.str("prediction", true)?;
    let reference = b.str("reference", false)?;
    let extra_metrics_json = b.str("extra_metrics_json", false)?;
    let mut metric_cols = Vec::with_capacity(QUALITY_METRICS.len());
    for name in QUALITY_METRICS {
        let col = format!("{METRIC_PREFIX}{name}");
        let arr = match batch.column_by_name(&col) {
            Some(c) => Some(c.as_primitive_opt::<Float64Type>().ok_or_else(|| b.type_error(&col, "Float64", c.data_type()))?),
            None => None,
        };
        metric_cols.push((*name, arr));
    }
    let policy_stats = policy_stats_decoder(&b)?;
    let fidelity = fidelity_decoder(&b)?;
    let phase = b.str("phase", false)?;
    let offered_rate = b.prim::<Float64Type>("offered_rate", false)?;
    let concurrency_level = b.prim::<UInt32Type>("concurrency_level", false)?;
    let queue_s = b.prim::<Float64Type>("queue_s", false)?;
    let slo = b.str("slo", false)?;
    let saturation = b.str("saturation", false)?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut metrics = BTreeMap::new();
        for (name, arr) in &metric_cols {
            if let Some(a) = arr.filter(|a| !a.is_null(i)) {
                metrics.insert(name.to_string(), a.value(i));
            }
        }
        let extra_metrics = match extra_metrics_json.opt(i) {
            Some(s) => parse_extra_metrics(&s, file, i)?,
            None => BTreeMap::new(),
        };
        out.push(Record {
            schema_version: schema_version.req(i)?,
            run_id: run_id_col.opt(i).unwrap_or_else(|| run_id.to_string()),
            run_started_at: run_started_at.req(i)?,
            config_hash: config_hash.req(i)?,
            project_version: project_version.req(i)?,
            host: host.req(i)?,
            backend: backend.req(i)?,
            base_url: base_url.opt(i),
            model: model.req(i)?,
            weights: weights.opt(i),
            policy: policy.req(i)?,
            algorithm: algorithm.req(i)?,
            params_json: params_json.req(i)?,
            suite: suite.req(i)?,
            task: task.opt(i),
            sample_id: sample_id.req(i)?,
            status: parse_status(&status.req(i)?, file, i)?,
            error_class: error_class.opt(i),
            error_message: error_message.opt(i),
            attempts: attempts.req(i)?,
            backoff_s: backoff_s.req(i)?,
            prompt_tokens: prompt_tokens.opt(i),
            cached_prompt_tokens: cached_prompt_tokens.opt(i),
            output_tokens: output_tokens.opt(i),
            token_count_source: match token_count_source.opt(i) {
                Some(s) => Some(parse_token_source(&s, file, i)?),
                None => None,
            },
            start_offset_s: start_offset_s.req(i)?,
            ttft_s: ttft_s.opt(i),
            e2e_s: e2e_s.opt(i),
            tpot_s: tpot_s.opt(i),
            itl_mean_s: itl_mean_s.opt(i),
            itl_p50_s: itl_p50_s.opt(i),
            itl_p99_s: itl_p99_s.opt(i),
            token_times_s: token_times_s.get(i).unwrap_or_default(),
            throughput_tok_s: throughput_tok_s.opt(i),
            finish_reason: finish_reason.opt(i),
            token_logprobs: token_logprobs.get(i),
            prediction: prediction.req(i)?,
            reference: reference.opt(i),
            metrics,
            extra_metrics,
            policy_stats: policy_stats(i)?,
            fidelity: fidelity(i),
            load: ttc_types::LoadTag {
                phase: phase.opt(i),
                offered_rate: offered_rate.opt(i),
                concurrency_level: concurrency_level.opt(i),
                queue_s: queue_s.opt(i),
                slo: slo.opt(i),
                saturation: saturation.opt(i),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_every_metric_and_policy_column() {
        let s = arrow_schema();
        for m in QUALITY_METRICS {
            let f = s.field_with_name(&format!("metric_{m}")).unwrap();
            assert!(f.is_nullable());
            assert_eq!(f.data_type(), &DataType::Float64);
        }
        for p in policy_stat_fields() {
            assert!(s.field_with_name(&format!("ps_{p}")).unwrap().is_nullable());
        }
        assert!(matches!(s.field_with_name("ps_exit_layer_histogram").unwrap().data_type(), DataType::List(_)));
        assert!(matches!(s.field_with_name("token_times_s").unwrap().data_type(), DataType::List(_)));
        assert!(!s.field_with_name("policy").unwrap().is_nullable());
        assert!(s.field_with_name("run_id").is_err(), "run_id is the partition, not a column");
    }

    #[test]
    fn unknown_status_names_file_row_and_column() {
        let mut batch = encode(&[crate::testutil::record("p", "s", "1")]).unwrap();
        let idx = batch.schema().index_of("status").unwrap();
        let mut cols = batch.columns().to_vec();
        cols[idx] = Arc::new(StringArray::from(vec!["weird"]));
        batch = RecordBatch::try_new(batch.schema(), cols).unwrap();
        let err = decode(&batch, Path::new("x/part-00000.parquet"), "r").unwrap_err().to_string();
        assert!(err.contains("x/part-00000.parquet") && err.contains("row 0") && err.contains("`status`"), "{err}");
    }

    #[test]
    fn unknown_metric_names_are_kept_in_extra_metrics() {
        let mut r = crate::testutil::record("p", "s", "1");
        r.metrics.insert("my_custom".into(), 0.25);
        r.extra_metrics.insert("nan_one".into(), f64::NAN);
        let back = decode(&encode(&[r]).unwrap(), Path::new("t"), "run-1").unwrap();
        assert_eq!(back[0].extra_metrics["my_custom"], 0.25);
        assert!(back[0].extra_metrics["nan_one"].is_nan());
        assert!(!back[0].metrics.contains_key("my_custom"));
    }
}
