//! YAML parsing whose errors name `file:line:column`, the key path, and what was wrong, e.g.
//! `configs/run.yaml:12:16: load.concurrency: invalid value 0: expected an integer >= 1`.

use serde::de::DeserializeOwned;
use std::path::Path;

/// A located configuration mistake the user can fix (a usage error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(pub String);

/// Parses YAML into `T`; the error names `file:line:column`, the key path, and what was wrong.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, YamlError> {
    // A byte-order mark is not content (editors on Windows write one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let loc = match inner.location() {
            Some(l) => format!(":{}:{}", l.line(), l.column()),
            None => ttc_types::yaml::second_document_line(text).map(|l| format!(":{l}:1")).unwrap_or_default(),
        };
        // serde_yaml repeats the location (and sometimes the path) in its message; keep only the reason.
        let mut msg = inner.to_string();
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        // serde_yaml prefixes the path it knows (the key or one of its parents; `.[0]` inside a top-level list).
        let prefixes = (0..=path.len()).rev().filter(|&i| i == path.len() || matches!(path.as_bytes()[i], b'.' | b'['));
        for i in prefixes {
            let known = &path[..i];
            let stripped = msg.strip_prefix(&format!("{known}: ")).or_else(|| msg.strip_prefix(&format!(".{known}: ")));
            if let Some(rest) = stripped {
                msg = rest.to_string();
                break;
            }
        }
        let key = if path == "." || path.is_empty() { String::new() } else { format!(" {path}:") };
        YamlError(format!("{}{loc}:{key} {msg}", file.display()))
    })
}

/// Reads and parses a YAML file.
pub fn load_yaml<T: DeserializeOwned>(file: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(file).map_err(|e| YamlError(format!("{}: cannot read: {e}", file.display())))?;
    parse_yaml(&text, file)
}
