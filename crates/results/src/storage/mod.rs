//! Where a results store keeps its files: a local directory ([`local`]) or an object store such as S3
//! ([`object`], `--results s3://bucket/prefix`). The store, its writer and its readers only see [`Storage`].
//!
//! Names are keys relative to the store's root, `/`-separated: `run_id=<id>/part-00000.parquet`. The layout
//! (folders, file names, file contents) is the same on every backend, so DuckDB or pyarrow read either.
//!
//! The two writes a store needs, and what each backend does for them:
//!
//! | write | local directory | object store |
//! |---|---|---|
//! | [`Storage::put_new`] (a part: never overwrite) | temporary file, then a hard link (fails if the name exists) | one PUT with `If-None-Match: *` (a conditional put) |
//! | [`Storage::put`] (a manifest: replace whole) | temporary file, then a rename | one PUT (objects are replaced whole) |
//!
//! Either way a reader sees a whole file or none: a writer that dies mid-write leaves at most a hidden
//! temporary file (local) or nothing (an object PUT is not visible until it completes).

pub mod local;
pub mod object;

use anyhow::Result;
use bytes::Bytes;
use parquet::file::reader::{ChunkReader, Length};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// One name in a listing: a file, or a run folder (a common prefix, for an object store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Bytes (0 for a folder).
    pub size: u64,
    /// Last modification, where the backend knows it (object stores have none for prefixes).
    pub modified: Option<SystemTime>,
}

/// A file's contents for the Parquet reader: an open local file (read in place, footer first), or an
/// object's bytes (fetched whole: parts are small, one flush each).
pub enum Blob {
    File(std::fs::File),
    Bytes(Bytes),
}

/// The operations the results store needs from where it keeps its files. Errors name the file and the
/// store's location (`results/run_id=r1/_run.json`, `s3://bucket/prefix/run_id=r1/_run.json`).
pub trait Storage: Send + Sync {
    /// The root as the user gave it (`results`, `s3://bucket/prefix`), for messages.
    fn root(&self) -> &Path;
    /// Folders directly under the root (run folders).
    fn list_dirs(&self) -> Result<Vec<Entry>>;
    /// Files directly inside folder `dir` (not hidden temporaries of other backends: each lists its own).
    fn list_files(&self, dir: &str) -> Result<Vec<Entry>>;
    /// Whether folder `dir` exists (an object store: whether any object has that prefix).
    fn dir_exists(&self, dir: &str) -> Result<bool>;
    fn exists(&self, key: &str) -> Result<bool>;
    fn get(&self, key: &str) -> Result<Blob>;
    /// Writes `key` whole, replacing it if present; `sync`: durable against power loss before returning.
    fn put(&self, key: &str, data: &[u8], sync: bool) -> Result<()>;
    /// Writes `key` only if it does not exist: Ok(false), and nothing written, when it does. Two writers can
    /// never overwrite each other's part.
    fn put_new(&self, key: &str, data: &[u8], sync: bool) -> Result<bool>;
    fn delete(&self, key: &str) -> Result<()>;
    /// Moves `from` to `to` (a corrupt part set aside); an object store copies, then deletes.
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    /// Makes folder `dir` (nothing to do on an object store: prefixes exist once an object has them).
    fn create_dir(&self, dir: &str) -> Result<()>;
}

/// A results location as typed by the user: `s3://...` (any `scheme://`) is an object store, anything else a
/// local directory.
pub fn is_url(location: &Path) -> bool {
    location.to_str().is_some_and(|s| s.contains("://"))
}

/// The storage behind `location`. Local: `create` makes the directory, otherwise it must exist. Object
/// store: the URL is parsed, credentials looked up, and the bucket listed once, so that a bad URL, missing
/// credentials or an unreachable endpoint fail here, naming what and where.
pub fn open(location: &Path, create: bool) -> Result<Arc<dyn Storage>> {
    if is_url(location) {
        Ok(Arc::new(object::ObjectStorage::from_url(location)?))
    } else {
        Ok(Arc::new(local::LocalStorage::new(location, create)?))
    }
}

/// `dir/name` as a key.
pub fn key(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

impl Length for Blob {
    fn len(&self) -> u64 {
        match self {
            Blob::File(f) => f.len(),
            Blob::Bytes(b) => b.len() as u64,
        }
    }
}

impl ChunkReader for Blob {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            Blob::File(f) => Box::new(f.get_read(start)?),
            Blob::Bytes(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Blob::File(f) => f.get_bytes(start, length),
            Blob::Bytes(b) => b.get_bytes(start, length),
        }
    }
}
