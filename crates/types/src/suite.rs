//! The suites `ttc` knows by name: the one list every crate reads (the loaders, the scorer's families, the
//! runner's check of a suite name, `ttc score --suite`, the calibration corpus, and the analysis's choice of the
//! metric that decides a correct answer). Any other suite name is a user-named JSONL suite, scored as generic
//! text.

use serde::{Deserialize, Serialize};

/// A built-in suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// CRMArena (original, `crmarena/tasks_natural.json`).
    Crmarena,
    /// CRMArena-Pro (`crmarena-pro/crmarena_b2b_tasks.json`; answers are lists).
    CrmarenaPro,
    /// WorfBench workflow generation (`worfbench/gold_traj/<task>/graph_eval.json`).
    Worfbench,
    /// Items from a JSONL file the user gives.
    Jsonl,
}

impl Suite {
    /// Every built-in suite, in the order they are listed.
    pub const ALL: [Suite; 4] = [Suite::Crmarena, Suite::CrmarenaPro, Suite::Worfbench, Suite::Jsonl];
    /// The suites with bundled sample data (all but `jsonl`, which needs a file).
    pub const BUNDLED: [Suite; 3] = [Suite::Crmarena, Suite::CrmarenaPro, Suite::Worfbench];
    /// The names of [`Suite::ALL`].
    pub const NAMES: [&'static str; 4] = ["crmarena", "crmarena_pro", "worfbench", "jsonl"];

    /// The name in run files, records and flags.
    pub const fn name(self) -> &'static str {
        Suite::NAMES[self as usize]
    }

    /// Other spellings a stored record may carry (the dataset's own directory name).
    pub const fn aliases(self) -> &'static [&'static str] {
        match self {
            Suite::CrmarenaPro => &["crmarena-pro"],
            _ => &[],
        }
    }

    /// The suite of a name as written in a run file or flag (no aliases).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The suite of a name as a record may carry it: the name or one of its aliases.
    pub fn of_record(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name || s.aliases().contains(&name))
    }

    /// The quality metric that decides whether an answer is correct, where the suite has its own (docs/metrics.md
    /// "Correct answers"): CRMArena's `em`, `exact_match_normalized`. Other suites use their primary metric
    /// (the first of [`crate::PRIMARY_METRIC_PRIORITY`] their records carry).
    pub const fn correct_metric(self) -> Option<&'static str> {
        match self {
            Suite::Crmarena | Suite::CrmarenaPro => Some("exact_match_normalized"),
            Suite::Worfbench | Suite::Jsonl => None,
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_only_for_records() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_name(s.name()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.name()));
        }
        assert_eq!(Suite::from_name("crmarena-pro"), None);
        assert_eq!(Suite::of_record("crmarena-pro"), Some(Suite::CrmarenaPro));
        assert_eq!(Suite::of_record("my_suite"), None);
        assert!(crate::metric::quality_direction(Suite::Crmarena.correct_metric().unwrap()).is_some());
    }
}
