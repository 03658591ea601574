//! A results store in an object store (`--results s3://bucket/prefix`, also S3-compatible servers such as
//! MinIO). Object stores have no hard links or renames: a part is written with one conditional PUT
//! (`If-None-Match: *`, object_store's `PutMode::Create`) that fails if the name exists, and a PUT is
//! atomic, so readers never see half a part. Credentials and the endpoint come from the standard AWS
//! variables, as `AmazonS3Builder::from_env` reads them.

use anyhow::{anyhow, bail, Context, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{Blob, Entry, Storage};

pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The folder inside the bucket (may be empty).
    prefix: String,
    /// The location as given (`s3://bucket/prefix`), for messages.
    root: PathBuf,
}

/// Variables that give the S3 client credentials without a network lookup (or say none are needed).
const CREDENTIAL_VARS: &[&str] =
    &["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SKIP_SIGNATURE"];

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where requests go, for messages: the endpoint variable, or AWS itself.
fn endpoint() -> String {
    match env("AWS_ENDPOINT_URL").map(|e| (e, "AWS_ENDPOINT_URL")).or_else(|| env("AWS_ENDPOINT").map(|e| (e, "AWS_ENDPOINT"))) {
        Some((url, var)) => format!("endpoint {url} (from {var})"),
        None => format!("AWS S3, region {}", env("AWS_REGION").unwrap_or_else(|| "us-east-1".into())),
    }
}

impl ObjectStorage {
    /// `s3://bucket/prefix` with the AWS variables of the environment. Checks the URL and that credentials are
    /// set, then lists the prefix once so that a wrong endpoint, bucket or key fails now, not mid-run.
    pub fn from_url(location: &Path) -> Result<ObjectStorage> {
        let url = location.to_str().unwrap_or_default();
        let Some((scheme, rest)) = url.split_once("://") else { bail!("`{url}` is not a URL") };
        if !matches!(scheme, "s3" | "s3a") {
            bail!("results location `{url}`: unsupported scheme `{scheme}://` (object stores: s3://bucket/prefix, for AWS S3 and S3-compatible servers)");
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("results location `{url}`: no bucket (expected s3://bucket/prefix)");
        }
        if !CREDENTIAL_VARS.iter().any(|v| env(v).is_some()) {
            bail!(
                "results location `{url}`: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP=true for an S3-compatible server over http)"
            );
        }
        if env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_none() {
            bail!("results location `{url}`: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        }
        // Fail in seconds, not minutes, when the endpoint is down (object_store retries for up to 3 minutes).
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
            .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(20), ..Default::default() })
            .build()
            .map_err(concise)
            .with_context(|| format!("results location `{url}` ({})", endpoint()))?;
        let storage = ObjectStorage::new(Arc::new(store), prefix, url);
        storage.check_reachable().with_context(|| format!("results location `{url}` ({})", endpoint()))?;
        Ok(storage)
    }

    /// Any object store (tests use object_store's `InMemory`); `label` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, label: &str) -> ObjectStorage {
        ObjectStorage { store, prefix: prefix.trim_matches('/').to_string(), root: PathBuf::from(label.trim_end_matches('/')) }
    }

    fn check_reachable(&self) -> Result<()> {
        let prefix = self.location("");
        block_on(self.store.list_with_delimiter(Some(&prefix)))?.map(drop).map_err(concise).context("listing the bucket")
    }

    /// The object path of `key` under the prefix.
    fn location(&self, key: &str) -> ObjectPath {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => ObjectPath::from(key),
            (false, true) => ObjectPath::from(self.prefix.as_str()),
            (false, false) => ObjectPath::from(format!("{}/{key}", self.prefix)),
        }
    }

    fn display(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    /// Runs `fut` to completion; `what` and `key` name the failure.
    fn run<T: Send>(&self, what: &str, key: &str, fut: impl Future<Output = object_store::Result<T>> + Send) -> Result<T> {
        block_on(fut)?.map_err(concise).with_context(|| format!("{what} {}", self.display(key)))
    }

    fn list(&self, dir: &str) -> Result<object_store::ListResult> {
        let prefix = self.location(dir);
        self.run("listing", dir, self.store.list_with_delimiter(Some(&prefix)))
    }
}

/// object_store's errors repeat their cause in their own text at every level of the chain: keep the outermost
/// (what was done, the URL) and the innermost (why: connection refused, ...) once each.
fn concise(e: object_store::Error) -> anyhow::Error {
    let top = e.to_string();
    let mut root: &dyn std::error::Error = &e;
    while let Some(source) = root.source() {
        root = source;
    }
    let why = root.to_string();
    if top.contains(&why) {
        anyhow!(top)
    } else {
        anyhow!("{top} ({why})")
    }
}

/// The store's methods are blocking (the writer is called from the runner's async tasks and from plain
/// threads): each call runs on a small runtime of its own, from a scoped thread, so that it never blocks
/// inside a caller's runtime (which tokio forbids). A request costs far more than the thread.
fn block_on<T: Send>(fut: impl Future<Output = T> + Send) -> Result<T> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ttc-object-store")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    let rt = rt.as_ref().map_err(|e| anyhow!("starting the object-store client: {e}"))?;
    std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join()).map_err(|_| anyhow!("the object-store client panicked"))
}

impl Storage for ObjectStorage {
    fn root(&self) -> &Path {
        &self.root
    }

    /// Common prefixes: object stores have no folders, a run folder is the prefix of its objects.
    fn list_dirs(&self) -> Result<Vec<Entry>> {
        let listed = self.list("")?;
        Ok(listed.common_prefixes.iter().filter_map(|p| p.filename()).map(|n| Entry { name: n.to_string(), size: 0, modified: None }).collect())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<Entry>> {
        let listed = self.list(dir)?;
        Ok(listed
            .objects
            .iter()
            .filter_map(|o| Some(Entry { name: o.location.filename()?.to_string(), size: o.size, modified: Some(o.last_modified.into()) }))
            .collect())
    }

    fn dir_exists(&self, dir: &str) -> Result<bool> {
        let listed = self.list(dir)?;
        Ok(!listed.objects.is_empty() || !listed.common_prefixes.is_empty())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let location = self.location(key);
        match block_on(self.store.head(&location))? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(concise(e)).with_context(|| format!("looking up {}", self.display(key))),
        }
    }

    fn get(&self, key: &str) -> Result<Blob> {
        let location = self.location(key);
        let bytes = self.run("reading", key, async { self.store.get(&location).await?.bytes().await })?;
        Ok(Blob::Bytes(bytes))
    }

    /// One PUT replaces the object whole. `sync` has no meaning here: a PUT is durable once it returns.
    fn put(&self, key: &str, data: &[u8], _sync: bool) -> Result<()> {
        let location = self.location(key);
        self.run("writing", key, self.store.put(&location, PutPayload::from(data.to_vec()))).map(drop)
    }

    /// A conditional PUT (`If-None-Match: *`): the server refuses it if the object exists.
    fn put_new(&self, key: &str, data: &[u8], _sync: bool) -> Result<bool> {
        let location = self.location(key);
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match block_on(self.store.put_opts(&location, PutPayload::from(data.to_vec()), opts))? {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e @ object_store::Error::NotImplemented { .. }) => Err(concise(e)).with_context(|| {
                format!("writing {}: this store cannot refuse to overwrite (conditional put), which parts need", self.display(key))
            }),
            Err(e) => Err(concise(e)).with_context(|| format!("writing {}", self.display(key))),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let location = self.location(key);
        self.run("removing", key, self.store.delete(&location))
    }

    /// Copy, then delete (object stores have no rename).
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (a, b) = (self.location(from), self.location(to));
        self.run("moving", from, self.store.rename(&a, &b))
    }

    fn create_dir(&self, _dir: &str) -> Result<()> {
        Ok(())
    }
}
