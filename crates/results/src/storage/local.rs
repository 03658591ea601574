//! A results directory on a local (or network-mounted) file system: the store's original backend, unchanged
//! file for file. Atomicity comes from the file system: a part is linked into place (a link fails if the
//! name is taken), a manifest renamed over the old one.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::{Blob, Entry, Storage};

pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// `create`: make the directory if needed (writers); otherwise it must exist (readers).
    pub fn new(root: &Path, create: bool) -> Result<LocalStorage> {
        if create {
            fs::create_dir_all(root).with_context(|| format!("creating results directory {}", root.display()))?;
        } else if !root.is_dir() {
            bail!(
                "results directory `{}` does not exist or is not a directory (set --results DIR or TTC_RESULTS)",
                root.display()
            );
        }
        Ok(LocalStorage { root: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

/// The hidden temporary a file is written to before it takes its name: `.NAME.tmp` beside it (readers skip
/// names starting with a dot).
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp"))
}

fn write_temporary(tmp: &Path, data: &[u8], sync: bool) -> Result<()> {
    let mut f = fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data).with_context(|| format!("writing {}", tmp.display()))?;
    if sync {
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing directory {}", dir.display()))
}

fn entries(dir: &Path, want_dirs: bool) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if entry.file_type()?.is_dir() != want_dirs {
            continue;
        }
        let meta = entry.metadata().ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        out.push(Entry { name, size: meta.map_or(0, |m| m.len()), modified });
    }
    Ok(out)
}

impl Storage for LocalStorage {
    fn root(&self) -> &Path {
        &self.root
    }

    fn list_dirs(&self) -> Result<Vec<Entry>> {
        entries(&self.root, true)
    }

    fn list_files(&self, dir: &str) -> Result<Vec<Entry>> {
        entries(&self.path(dir), false)
    }

    fn dir_exists(&self, dir: &str) -> Result<bool> {
        Ok(self.path(dir).is_dir())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key).exists())
    }

    fn get(&self, key: &str) -> Result<Blob> {
        let path = self.path(key);
        Ok(Blob::File(fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?))
    }

    /// Temporary, then rename: readers see the old or the new file, never half.
    fn put(&self, key: &str, data: &[u8], sync: bool) -> Result<()> {
        let path = self.path(key);
        let tmp = temporary(&path);
        write_temporary(&tmp, data, sync)?;
        fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    }

    /// Temporary, then a hard link to the final name, which fails if the name exists (rename would replace).
    fn put_new(&self, key: &str, data: &[u8], sync: bool) -> Result<bool> {
        let path = self.path(key);
        let tmp = temporary(&path);
        write_temporary(&tmp, data, sync)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if sync {
                    sync_dir(path.parent().unwrap_or(&self.root))?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("committing {}", path.display())),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.path(from), self.path(to));
        fs::rename(&from, &to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
    }

    fn create_dir(&self, dir: &str) -> Result<()> {
        let path = self.path(dir);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))
    }
}
