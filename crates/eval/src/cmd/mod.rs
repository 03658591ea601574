//! `ttc score` and `ttc suites`.

pub mod score;
pub mod suites;

pub use score::{run as run_score, ScoreOptions};
pub use suites::{run as run_suites, SuitesOptions};
