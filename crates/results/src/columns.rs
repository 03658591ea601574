//! The one mapping between [`Record`] and Arrow columns. `encode` defines the schema (column names, types,
//! order); `decode` reads it back, tolerating absent nullable columns (files written by an older schema) and
//! naming the file, column and row of anything it cannot read.
//!
//! Layout: scalar fields keep their names; every name in [`QUALITY_METRICS`] becomes a nullable Float64 column
//! `metric_<name>`; [`PolicyStats`] fields become nullable `ps_<field>` columns (the histogram a list column);
//! `token_times_s` is a list column; `extra_metrics` is JSON text in `extra_metrics_json`.

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float64Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, ListArray, PrimitiveArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use ttc_types::{PolicyStats, Record, RecordStatus, TokenCountSource, QUALITY_METRICS};

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
        fn encode_policy_stats(c: &mut Cols, rs: &[Record]) {
            $( c.opt_u64(concat!("ps_", stringify!($u)), rs, |r| r.policy_stats.$u); )*
            $( c.opt_f64(concat!("ps_", stringify!($f)), rs, |r| r.policy_stats.$f); )*
            c.add(
                "ps_exit_layer_histogram",
                true,
                ListArray::from_iter_primitive::<UInt32Type, _, _>(rs.iter().map(|r| {
                    r.policy_stats.exit_layer_histogram.as_ref().map(|h| h.iter().map(|&x| Some(x)))
                })),
            );
        }
        fn decode_policy_stats(b: &BatchReader, i: usize) -> Result<PolicyStats> {
            let ps = PolicyStats {
                $( $u: b.opt_prim::<UInt64Type>(concat!("ps_", stringify!($u)), i)?, )*
                $( $f: b.opt_prim::<Float64Type>(concat!("ps_", stringify!($f)), i)?, )*
                exit_layer_histogram: b.opt_list::<UInt32Type>("ps_exit_layer_histogram", i)?,
            };
            Ok(ps)
        }
        /// Compile-time guard: lists every field, so a new PolicyStats field breaks the build here.
        #[allow(dead_code)]
        fn ps_exhaustive(p: PolicyStats) {
            let PolicyStats { $($u: _,)* $($f: _,)* exit_layer_histogram: _ } = p;
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

/// JSON cannot hold NaN/inf: they are written as null and read back as NaN.
fn extra_metrics_json(r: &Record) -> String {
    let mut m = serde_json::Map::new();
    for (k, v) in &r.extra_metrics {
        m.insert(k.clone(), serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into));
    }
    // Metric names outside QUALITY_METRICS have no column: keep them here rather than lose them.
    for (k, v) in r.metrics.iter().filter(|(k, _)| !QUALITY_METRICS.contains(&k.as_str())) {
        m.entry(k.clone())
            .or_insert_with(|| serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into));
    }
    serde_json::Value::Object(m).to_string()
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
    c.opt_u32("output_tokens", rs, |r| r.output_tokens);
    c.opt_str("token_count_source", rs, |r| r.token_count_source.map(token_source_label));
    c.f64("start_offset_s", rs, |r| r.start_offset_s);
    c.opt_f64("ttft_s", rs, |r| r.ttft_s);
    c.opt_f64("e2e_s", rs, |r| r.e2e_s);
    c.opt_f64("tpot_s", rs, |r| r.tpot_s);
    c.opt_f64("itl_mean_s", rs, |r| r.itl_mean_s);
    c.opt_f64("itl_p50_s", rs, |r| r.itl_p50_s);
    c.opt_f64("itl_p99_s", rs, |r| r.itl_p99_s);
    c.add(
        "token_times_s",
        false,
        ListArray::from_iter_primitive::<Float64Type, _, _>(
            rs.iter().map(|r| Some(r.token_times_s.iter().map(|&t| Some(t)))),
        ),
    );
    c.opt_f64("throughput_tok_s", rs, |r| r.throughput_tok_s);
    c.opt_str("finish_reason", rs, |r| r.finish_reason.as_deref());
    c.str("prediction", rs, |r| &r.prediction);
    c.opt_str("reference", rs, |r| r.reference.as_deref());
    for name in QUALITY_METRICS {
        c.opt_f64(&format!("{METRIC_PREFIX}{name}"), rs, |r| r.metrics.get(*name).copied());
    }
    let extra: Vec<String> = rs.iter().map(extra_metrics_json).collect();
    c.add("extra_metrics_json", false, StringArray::from_iter_values(extra));
    encode_policy_stats(&mut c, rs);

    let fields: Vec<Field> =
        c.0.iter().map(|(n, nullable, a)| Field::new(n.as_str(), a.data_type().clone(), *nullable)).collect();
    let arrays: Vec<ArrayRef> = c.0.into_iter().map(|(_, _, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).context("building the Arrow batch")
}

/// Typed, name-based access to one batch, with errors that name the file, column and row.
struct BatchReader<'a> {
    batch: &'a RecordBatch,
    file: &'a Path,
}

impl<'a> BatchReader<'a> {
    fn column(&self, name: &str) -> Option<&'a ArrayRef> {
        self.batch.column_by_name(name)
    }
    fn required(&self, name: &str) -> Result<&'a ArrayRef> {
        self.column(name).ok_or_else(|| anyhow!("{}: missing required column `{name}`", self.file.display()))
    }
    fn type_error(&self, name: &str, want: &str, got: &DataType) -> anyhow::Error {
        anyhow!("{}: column `{name}` has type {got}, expected {want}", self.file.display())
    }
    fn null_error(&self, name: &str, i: usize) -> anyhow::Error {
        anyhow!("{}: row {i}: column `{name}` is null but required", self.file.display())
    }
    fn strings(&self, a: &'a ArrayRef, name: &str) -> Result<&'a StringArray> {
        a.as_string_opt::<i32>().ok_or_else(|| self.type_error(name, "Utf8", a.data_type()))
    }
    fn prims<T: ArrowPrimitiveType>(&self, a: &'a ArrayRef, name: &str) -> Result<&'a PrimitiveArray<T>> {
        a.as_primitive_opt::<T>().ok_or_else(|| self.type_error(name, &T::DATA_TYPE.to_string(), a.data_type()))
    }
    fn str(&self, name: &str, i: usize) -> Result<String> {
        let a = self.strings(self.required(name)?, name)?;
        if a.is_null(i) {
            return Err(self.null_error(name, i));
        }
        Ok(a.value(i).to_string())
    }
    fn opt_str(&self, name: &str, i: usize) -> Result<Option<String>> {
        let Some(col) = self.column(name) else { return Ok(None) };
        let a = self.strings(col, name)?;
        Ok((!a.is_null(i)).then(|| a.value(i).to_string()))
    }
    fn prim<T: ArrowPrimitiveType>(&self, name: &str, i: usize) -> Result<T::Native> {
        let a = self.prims::<T>(self.required(name)?, name)?;
        if a.is_null(i) {
            return Err(self.null_error(name, i));
        }
        Ok(a.value(i))
    }
    fn opt_prim<T: ArrowPrimitiveType>(&self, name: &str, i: usize) -> Result<Option<T::Native>> {
        let Some(col) = self.column(name) else { return Ok(None) };
        let a = self.prims::<T>(col, name)?;
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
    fn opt_list<T: ArrowPrimitiveType>(&self, name: &str, i: usize) -> Result<Option<Vec<T::Native>>> {
        let Some(col) = self.column(name) else { return Ok(None) };
        let list = col.as_list_opt::<i32>().ok_or_else(|| self.type_error(name, "List", col.data_type()))?;
        if list.is_null(i) {
            return Ok(None);
        }
        let values = list.value(i);
        let values = values
            .as_primitive_opt::<T>()
            .ok_or_else(|| self.type_error(name, &format!("List<{}>", T::DATA_TYPE), col.data_type()))?;
        if values.null_count() > 0 {
            bail!("{}: row {i}: column `{name}` holds a null list item", self.file.display());
        }
        Ok(Some(values.values().to_vec()))
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
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut metrics = BTreeMap::new();
        for name in QUALITY_METRICS {
            if let Some(v) = b.opt_prim::<Float64Type>(&format!("{METRIC_PREFIX}{name}"), i)? {
                metrics.insert(name.to_string(), v);
            }
        }
        let extra_metrics = match b.opt_str("extra_metrics_json", i)? {
            Some(s) => parse_extra_metrics(&s, file, i)?,
            None => BTreeMap::new(),
        };
        out.push(Record {
            schema_version: b.prim::<UInt32Type>("schema_version", i)?,
            run_id: b.opt_str("run_id", i)?.unwrap_or_else(|| run_id.to_string()),
            run_started_at: b.str("run_started_at", i)?,
            config_hash: b.str("config_hash", i)?,
            project_version: b.str("project_version", i)?,
            host: b.str("host", i)?,
            backend: b.str("backend", i)?,
            base_url: b.opt_str("base_url", i)?,
            model: b.str("model", i)?,
            weights: b.opt_str("weights", i)?,
            policy: b.str("policy", i)?,
            algorithm: b.str("algorithm", i)?,
            params_json: b.str("params_json", i)?,
            suite: b.str("suite", i)?,
            task: b.opt_str("task", i)?,
            sample_id: b.str("sample_id", i)?,
            status: parse_status(&b.str("status", i)?, file, i)?,
            error_class: b.opt_str("error_class", i)?,
            error_message: b.opt_str("error_message", i)?,
            attempts: b.prim::<UInt32Type>("attempts", i)?,
            backoff_s: b.prim::<Float64Type>("backoff_s", i)?,
            prompt_tokens: b.opt_prim::<UInt32Type>("prompt_tokens", i)?,
            output_tokens: b.opt_prim::<UInt32Type>("output_tokens", i)?,
            token_count_source: match b.opt_str("token_count_source", i)? {
                Some(s) => Some(parse_token_source(&s, file, i)?),
                None => None,
            },
            start_offset_s: b.prim::<Float64Type>("start_offset_s", i)?,
            ttft_s: b.opt_prim::<Float64Type>("ttft_s", i)?,
            e2e_s: b.opt_prim::<Float64Type>("e2e_s", i)?,
            tpot_s: b.opt_prim::<Float64Type>("tpot_s", i)?,
            itl_mean_s: b.opt_prim::<Float64Type>("itl_mean_s", i)?,
            itl_p50_s: b.opt_prim::<Float64Type>("itl_p50_s", i)?,
            itl_p99_s: b.opt_prim::<Float64Type>("itl_p99_s", i)?,
            token_times_s: b.opt_list::<Float64Type>("token_times_s", i)?.unwrap_or_default(),
            throughput_tok_s: b.opt_prim::<Float64Type>("throughput_tok_s", i)?,
            finish_reason: b.opt_str("finish_reason", i)?,
            prediction: b.str("prediction", i)?,
            reference: b.opt_str("reference", i)?,
            metrics,
            extra_metrics,
            policy_stats: decode_policy_stats(&b, i)?,
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
