//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The real datasets: `$TTC_DATA_DIR`, else `../shared/data` beside the repository (CI has it). None skips.
pub fn real_data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TTC_DATA_DIR").map(PathBuf::from) {
        return d.is_dir().then_some(d);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    beside.is_dir().then_some(beside)
}
