//! `ttc compare --a X --b Y`: paired comparison of two policies (in one run, or RUN/POLICY across runs)
//! or of two whole runs, on the samples both have.

use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use ttc_types::Record;

use super::{InputError, TableOrJson, DEFAULT_RESULTS_DIR};
use crate::compare;
use crate::render;
use ttc_stats::BootstrapConfig;
use crate::store::ResultsStore;

/// Compare B against A on their common samples: paired bootstrap CIs of quality differences, McNemar's test
/// for exact match, p50/p95 latency and throughput differences with CIs, and a verdict per metric.
/// A and B are policy names (of `run`, default the last run), run ids, or RUN/POLICY.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    pub results: PathBuf,
    /// Compare sharded runs even when a shard is missing or incomplete.
    pub partial: bool,
    /// Side A (the reference): POLICY, RUN_ID, or RUN_ID/POLICY.
    pub a: String,
    /// Side B (the candidate): POLICY, RUN_ID, or RUN_ID/POLICY.
    pub b: String,
    /// Run that plain policy names refer to (None: the last run).
    pub run: Option<String>,
    pub format: TableOrJson,
    pub bootstrap: BootstrapConfig,
}

impl CompareOptions {
    /// B against A, with the other settings at their defaults.
    pub fn new(a: impl Into<String>, b: impl Into<String>) -> CompareOptions {
        CompareOptions {
            results: PathBuf::from(DEFAULT_RESULTS_DIR),
            partial: false,
            a: a.into(),
            b: b.into(),
            run: None,
            format: TableOrJson::Table,
            bootstrap: BootstrapConfig::DEFAULT,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Kind {
    Policy,
    Run,
}

struct Side {
    label: String,
    kind: Kind,
    records: Vec<Record>,
}

fn policies(records: &[Record]) -> String {
    records.iter().map(|r| r.policy.as_str()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
}

fn resolve(store: &ResultsStore, spec: &str, run: Option<&str>, partial: bool) -> Result<Side> {
    let policy_of = |run_id: &str, policy: &str| -> Result<Side> {
        let loaded = store.load_run(run_id)?;
        loaded.require_complete(partial)?;
        super::warn(std::slice::from_ref(&loaded));
        let records: Vec<Record> = loaded.records.iter().filter(|r| r.policy == policy).cloned().collect();
        if records.is_empty() {
            bail!("policy `{policy}` not found in run `{run_id}` (policies: {})", policies(&loaded.records));
        }
        Ok(Side { label: format!("{run_id}/{policy}"), kind: Kind::Policy, records })
    };
    if let Some((run_id, policy)) = spec.split_once('/') {
        return policy_of(run_id, policy);
    }
    let run_id = match run {
        Some(r) => r.to_string(),
        None => store.last_run_id()?,
    };
    let loaded = store.load_run(&run_id)?;
    if loaded.records.iter().any(|r| r.policy == spec) {
        return policy_of(&run_id, spec);
    }
    if store.has_run(spec) {
        let other = store.load_run(spec)?;
        other.require_complete(partial)?;
        super::warn(std::slice::from_ref(&other));
        return Ok(Side { label: spec.to_string(), kind: Kind::Run, records: other.records });
    }
    bail!(
        "`{spec}` is neither a policy of run `{run_id}` (policies: {}) nor a run id in `{}`",
        policies(&loaded.records),
        store.dir().display()
    )
}

/// The comparison as a table or JSON.
pub fn execute(args: &CompareOptions) -> Result<String, InputError> {
    compare_sides(args).map_err(InputError)
}

fn compare_sides(args: &CompareOptions) -> Result<String> {
    let store = ResultsStore::open(&args.results)?;
    let a = resolve(&store, &args.a, args.run.as_deref(), args.partial)?;
    let b = resolve(&store, &args.b, args.run.as_deref(), args.partial)?;
    if a.kind != b.kind {
        bail!("cannot compare a policy with a whole run (`{}` vs `{}`): give two policies or two runs", a.label, b.label);
    }
    // Live A/B traffic (`ttc serve --ab`) has no sample sent to both arms: compare it unpaired.
    let cmp = if compare::is_served(&a.records, &b.records) {
        compare::compare_unpaired(&a.label, &a.records, &b.label, &b.records, &args.bootstrap)
    } else {
        compare::compare(&a.label, &a.records, &b.label, &b.records, a.kind == Kind::Run, &args.bootstrap)
    };
    if cmp.n_common == 0 && !cmp.unpaired {
        bail!("`{}` and `{}` have no samples in common (nothing to pair)", a.label, b.label);
    }
    let text = match args.format {
        TableOrJson::Table => render::comparison_table(&cmp),
        TableOrJson::Json => serde_json::to_string_pretty(&cmp)? + "\n",
    };
    Ok(text)
}
