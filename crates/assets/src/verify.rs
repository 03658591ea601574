//! SHA-256 checks with a stamp file, so a verified 100 MB model is not re-hashed on every start.
//!
//! After a file passes, `<file>.sha256` holds `<hex> <size>`. A later check trusts the stamp when the hash in
//! it is the expected one and the size still matches; anything else re-hashes the file.

use crate::{AssetError, WheelMember};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A writer that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn stamp_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    file.with_file_name(name)
}

pub(crate) fn sha256_file(path: &Path) -> Result<String, AssetError> {
    let mut f = File::open(path).map_err(AssetError::io("cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(AssetError::io("cannot read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

pub(crate) fn write_stamp(file: &Path, hex: &str) -> Result<(), AssetError> {
    let size = std::fs::metadata(file).map_err(AssetError::io("cannot stat", file))?.len();
    let stamp = stamp_path(file);
    std::fs::write(&stamp, format!("{hex} {size}\n")).map_err(AssetError::io("cannot write", stamp))
}

/// Whether `file` is present and (when the member has a hash) has the expected content.
pub(crate) fn is_valid(file: &Path, member: &WheelMember) -> Result<bool, AssetError> {
    let Ok(meta) = std::fs::metadata(file) else { return Ok(false) };
    if !meta.is_file() {
        return Ok(false);
    }
    let Some(expected) = member.sha256 else { return Ok(true) };
    if let Ok(stamp) = std::fs::read_to_string(stamp_path(file)) {
        let mut it = stamp.split_whitespace();
        if it.next() == Some(expected) && it.next() == Some(meta.len().to_string().as_str()) {
            return Ok(true);
        }
    }
    let actual = sha256_file(file)?;
    if actual == expected {
        write_stamp(file, &actual)?;
        Ok(true)
    } else {
        Ok(false)
    }
}
