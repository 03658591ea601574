//! `ttc score` and `ttc suites`.

pub mod score;
pub mod suites;

pub use score::{run as run_score, ScoreArgs};
pub use suites::{run as run_suites, SuitesArgs};
