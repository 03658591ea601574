//! Part files: one Parquet file per flush, `part-NNNNN.parquet`, committed atomically.
//!
//! A sharded run's parts carry their shard in the name: `part-shardIofN-NNNNN.parquet` ([`crate::shard`]).
//!
//! A part is written under a hidden temporary name, synced, then hard-linked to its final name (which fails
//! if that name exists, so two writers can never overwrite each other) and the temporary name removed. Readers
//! only look at `part-*.parquet`, so they see whole parts or nothing. A compacted part lists in its footer
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
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use ttc_types::Record;

use crate::columns;
use crate::shard::Shard;

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
    pub path: PathBuf,
}

/// Committed parts of a run directory, by shard (unsharded first), then index.
pub fn list_parts(run_dir: &Path) -> Result<Vec<PartFile>> {
    let mut parts = Vec::new();
    for entry in fs::read_dir(run_dir).with_context(|| format!("listing {}", run_dir.display()))? {
        let entry = entry?;
        if let Some((shard, index)) = entry.file_name().to_str().and_then(parse_part_name) {
            parts.push(PartFile { shard, index, path: entry.path() });
        }
    }
    parts.sort();
    Ok(parts)
}

/// The first free part index of `shard` (its own numbering).
pub fn next_index(parts: &[PartFile], shard: Option<Shard>) -> u32 {
    parts.iter().filter(|p| p.shard == shard).map(|p| p.index + 1).max().unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing directory {}", dir.display()))
}

/// Writes `records` as a new part with the lowest free index >= `first_index`; returns (index, path).
/// `fsync` makes the part durable against power loss before it becomes visible (a process crash, kill -9
/// included, never needs it: the page cache survives the process).
pub fn write_part(
    run_dir: &Path,
    shard: Option<Shard>,
    first_index: u32,
    records: &[Record],
    supersedes: &[String],
    fsync: bool,
) -> Result<(u32, PathBuf)> {
    let batch = columns::encode(records)?;
    let tmp = run_dir.join(format!(".{}.tmp", part_file_name(shard, first_index)));
    let mut kv = vec![KeyValue::new(SCHEMA_VERSION_KEY.to_string(), ttc_types::SCHEMA_VERSION.to_string())];
    if !supersedes.is_empty() {
        kv.push(KeyValue::new(SUPERSEDES_KEY.to_string(), supersedes.join(",")));
    }
    let props = writer_properties(kv);
    let file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(&batch).with_context(|| format!("writing {}", tmp.display()))?;
    let file = writer.into_inner().with_context(|| format!("finishing {}", tmp.display()))?;
    if fsync {
        file.sync_all()?;
    }
    drop(file);

    let mut index = first_index;
    loop {
        let dest = run_dir.join(part_file_name(shard, index));
        match fs::hard_link(&tmp, &dest) {
            Ok(()) => {
                fs::remove_file(&tmp)?;
                if fsync {
                    sync_dir(run_dir)?;
                }
                return Ok((index, dest));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => index += 1,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("committing {}", dest.display()));
            }
        }
    }
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

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<fs::File>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| format!("{}: not a readable Parquet file", path.display()))
}

fn supersedes_of(builder: &ParquetRecordBatchReaderBuilder<fs::File>) -> Vec<String> {
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
pub fn read_supersedes(path: &Path) -> Result<Vec<String>> {
    Ok(supersedes_of(&open(path)?))
}

/// The run id of a part: its folder is `run_id=<id>`.
fn partition_run_id(path: &Path) -> Result<String> {
    path.parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("run_id="))
        .map(str::to_string)
        .with_context(|| format!("{}: not inside a run_id=<id> folder", path.display()))
}

/// Every record of one part. Any error (truncated, corrupt, wrong schema) names the file.
pub fn read_part(path: &Path) -> Result<Vec<Record>> {
    let run_id = partition_run_id(path)?;
    let reader = open(path)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("{}: corrupt data", path.display()))?;
        out.extend(columns::decode(&batch, path, &run_id)?);
    }
    Ok(out)
}

/// The (policy, suite, sample_id) keys of one part, reading only those three columns.
pub fn read_keys(path: &Path) -> Result<Vec<(String, String, String)>> {
    let builder = open(path)?;
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
