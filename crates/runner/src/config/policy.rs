//! Policies as the runner sees them come from the shared policy model (`ttc-policy`): one parser and one
//! validation for `ttc run`, `ttc policies`, `ttc serve`, `ttc generate` and `ttc bench`.

pub use ttc_policy::{Policy, PolicyFile, PolicyList, PolicySource, RemoteParams};
