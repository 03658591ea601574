//! Part files: one Parquet file per flush, `part-NNNNN.parquet`, committed atomically.
//!
//! A sharded run's parts carry their shard in the name: `part-shardIofN-NNNNN.parquet` ([`crate::shard`]).
//!
//! A part is encoded in memory, then committed with [`Storage::put_new`], which never overwrites: in a local
//! directory a hidden temporary file, synced, hard-linked to its final name (the link fails if that name
//! exists); in an object store one conditional PUT. So two writers can never overwrite each other, and as
//! readers only look at `part-*.parquet`, they see whole parts or nothing. A compacted part lists in its footer
//! metadata (`ttc.supersedes`) the parts it replaces; readers ignore those if a crash left them behind.

use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::path::PathBuf;
use ttc_types::Record;

use crate::columns;
use crate::shard::Shard;
use crate::storage::{key, Blob, Storage};

pub const SUPERSEDES_KEY: &str = "ttc.supersedes";
pub const SCHEMA_VERSION_KEY: &str = "ttc.schema_version";
/// Rows per Parquet row group: bounds the memory a reader needs per batch.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// `part-NNNNN.parquet`, or `part-shardIofN-NNNNN.parquet` for a shard's part (see [`crate::shard`]).
pub fn part_file_name(shard: Option<Shard>, index: u32) -> String {
    match shard {
        None => format!("part-{index:05}.parquet"),
        Some(s) => format!("part-{}-{index:05}.parquet", s.part_tag()),
    }
}

/// The shard and index of a committed part file name, None for anything else (temporaries, manifests, corrupt
/// parts).
pub fn parse_part_name(file_name: &str) -> Option<(Option<Shard>, u32)> {
    let stem = file_name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    match stem.split_once('-') {
        None => Some((None, stem.parse().ok()?)),
        Some((tag, index)) => Some((Some(Shard::from_part_tag(tag)?), index.parse().ok()?)),
    }
}

/// A committed part file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartFile {
    /// The shard that wrote it (None: an unsharded run).
    pub shard: Option<Shard>,
    pub index: u32,
    /// Its file name in the run folder.
    pub name: String,
}

/// Committed parts of run folder `run` (`run_id=<id>`), by shard (unsharded first), then index.
pub fn list_parts(storage: &dyn Storage, run: &str) -> Result<Vec<PartFile>> {
    let mut parts: Vec<PartFile> = storage
        .list_files(run)?
        .into_iter()
        .filter_map(|e| parse_part_name(&e.name).map(|(shard, index)| PartFile { shard, index, name: e.name }))
        .collect();
    parts.sort();
    Ok(parts)
}

/// The first free part index of `shard` (its own numbering).
pub fn next_index(parts: &[PartFile], shard: Option<Shard>) -> u32 {
    parts.iter().filter(|p| p.shard == shard).map(|p| p.index + 1).max().unwrap_or(0)
}

/// Writes `records` as a new part of run folder `run` with the lowest free index >= `first_index`; returns
/// (index, file name). `fsync` makes a local part durable against power loss before it becomes visible (a
/// process crash, kill -9 included, never needs it: the page cache survives the process).
pub fn write_part(
    storage: &dyn Storage,
    run: &str,
    shard: Option<Shard>,
    first_index: u32,
    records: &[Record],
    supersedes: &[String],
    fsync: bool,
) -> Result<(u32, String)> {
    let bytes = encode(records, supersedes)?;
    let mut index = first_index;
    loop {
        let name = part_file_name(shard, index);
        if storage.put_new(&key(run, &name), &bytes, fsync)? {
            return Ok((index, name));
        }
        index += 1;
    }
}

/// One part file's bytes: the records and the footer metadata (schema version, parts superseded).
fn encode(records: &[Record], supersedes: &[String]) -> Result<Vec<u8>> {
    let batch = columns::encode(records)?;
    let mut kv = vec![KeyValue::new(SCHEMA_VERSION_KEY.to_string(), ttc_types::SCHEMA_VERSION.to_string())];
    if !supersedes.is_empty() {
        kv.push(KeyValue::new(SUPERSEDES_KEY.to_string(), supersedes.join(",")));
    }
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(writer_properties(kv)))?;
    writer.write(&batch).context("encoding a part")?;
    writer.into_inner().context("finishing a part")
}

/// Columns with few distinct values, worth dictionary encoding. Everything else (floats, predictions, sample
/// ids) is plain-encoded: trying a dictionary on unique values costs a hash per value for nothing.
const DICTIONARY_COLUMNS: &[&str] = &[
    "run_started_at", "config_hash", "project_version", "host", "backend", "base_url", "model", "weights", "policy",
    "algorithm", "params_json", "suite", "task", "status", "error_class", "token_count_source", "finish_reason",
    "reference",
];
/// Long free text: min/max statistics are useless for filtering and cost a comparison per value.
const NO_STATISTICS_COLUMNS: &[&str] = &["prediction", "reference", "error_message", "extra_metrics_json", "params_json"];

fn writer_properties(kv: Vec<KeyValue>) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(kv))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for c in DICTIONARY_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), true);
    }
    for c in NO_STATISTICS_COLUMNS {
        b = b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::None);
    }
    b.build()
}

/// A part of run folder `run`, as a path for messages (`results/run_id=r1/part-00000.parquet`).
fn display(storage: &dyn Storage, run: &str, name: &str) -> PathBuf {
    storage.root().join(key(run, name))
}

fn open(storage: &dyn Storage, run: &str, name: &str) -> Result<ParquetRecordBatchReaderBuilder<Blob>> {
    let blob = storage.get(&key(run, name))?;
    ParquetRecordBatchReaderBuilder::try_new(blob)
        .with_context(|| format!("{}: not a readable Parquet file", display(storage, run, name).display()))
}

fn supersedes_of(builder: &ParquetRecordBatchReaderBuilder<Blob>) -> Vec<String> {
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SUPERSEDES_KEY))
        .and_then(|k| k.value.as_ref())
        .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The parts a (compacted) part replaces, from its footer only.
pub fn read_supersedes(storage: &dyn Storage, run: &str, name: &str) -> Result<Vec<String>> {
    Ok(supersedes_of(&open(storage, run, name)?))
}

/// The run id of a run folder: `run_id=<id>`.
fn partition_run_id(run: &str) -> Result<String> {
    run.strip_prefix("run_id=").map(str::to_string).with_context(|| format!("{run}: not a run_id=<id> folder"))
}

/// Every record of one part. Any error (truncated, corrupt, wrong schema) names the file.
pub fn read_part(storage: &dyn Storage, run: &str, name: &str) -> Result<Vec<Record>> {
    let run_id = partition_run_id(run)?;
    let path = display(storage, run, name);
    let reader = open(storage, run, name)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("{}: corrupt data", path.display()))?;
        out.extend(columns::decode(&batch, &path, &run_id)?);
    }
    Ok(out)
}

/// The (policy, suite, sample_id) keys of one part, reading only those three columns.
pub fn read_keys(storage: &dyn Storage, run: &str, name: &str) -> Result<Vec<(String, String, String)>> {
    let path = display(storage, run, name);
    let builder = open(storage, run, name)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["policy", "suite", "sample_id"]);
    let reader = builder.with_projection(mask).build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("{}: corrupt data", path.display()))?;
        let col = |name: &str| -> Result<_> {
            match batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>()) {
                Some(a) if a.null_count() == 0 => Ok(a.clone()),
                _ => bail!("{}: column `{name}` missing, not text, or null", path.display()),
            }
        };
        let (p, s, id) = (col("policy")?, col("suite")?, col("sample_id")?);
        for i in 0..batch.num_rows() {
            out.push((p.value(i).to_string(), s.value(i).to_string(), id.value(i).to_string()));
        }
    }
    Ok(out)
}
