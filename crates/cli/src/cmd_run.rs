//! `ttc run`: the benchmark, with the embedded engine linked in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use ttc_bench::{Backend, Hooks, RunArgs, RunConfig};
use ttc_engine::{Engine, WeightFormat};

/// The project's default run file, used when `--config` is not given and it exists here.
pub const DEFAULT_RUN_FILE: &str = "configs/run.yaml";

pub fn run(mut args: RunArgs) -> anyhow::Result<i32> {
    if args.config.is_none() && Path::new(DEFAULT_RUN_FILE).exists() {
        args.config = Some(PathBuf::from(DEFAULT_RUN_FILE));
    }
    let hooks = Hooks { embedded: Some(Arc::new(embedded_backend)), ..Hooks::default() };
    ttc_bench::run_with(args, hooks)
}

/// Load the engine once for the run. The default model is fetched with pip if it is not cached yet.
fn embedded_backend(cfg: &RunConfig) -> anyhow::Result<Arc<dyn Backend>> {
    let explicit = cfg.backend.model.as_ref().map(PathBuf::from);
    let path = crate::model_path::resolve(explicit, true)?;
    let weights: WeightFormat = match &cfg.backend.weights {
        Some(w) => w.parse().map_err(crate::exit::usage)?,
        None => WeightFormat::Auto,
    };
    eprintln!("loading {} ({weights} weights)...", path.display());
    let engine = Arc::new(Engine::load(&path, weights)?);
    Ok(Arc::new(ttc_embedded::EmbeddedBackend::new(engine)))
}
