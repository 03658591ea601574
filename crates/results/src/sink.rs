//! Where the runner sends finished records: the contract's trait, which the store's [`crate::RunWriter`]
//! implements (tests can use a `Vec<Record>`).

pub use ttc_contract::RecordSink;
