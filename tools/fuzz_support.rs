// Shared by every `crates/*/tests/fuzz_*.rs` (each includes this file with `#[path]`): the proptest
// configuration, awkward text, and byte-level mutations of valid documents (docs/testing.md).
//
// - `TTC_FUZZ_CASES`: cases per property (default 10,000, what CI runs).
// - `TTC_FUZZ_SEED`: a number, or `random` for a fresh seed each run. The default is a fixed seed, so CI
//   runs the same cases every time and a failure reproduces with the same command.
// Failures are not written to proptest-regressions files: each panic found becomes a named test.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};

pub fn fuzz_config() -> Config {
    let cases = match std::env::var("TTC_FUZZ_CASES") {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("TTC_FUZZ_CASES={v}: expected a number of cases")),
        Err(_) => 10_000,
    };
    let rng_seed = match std::env::var("TTC_FUZZ_SEED").as_deref() {
        Err(_) => RngSeed::Fixed(0x7c7c_2026),
        Ok("random") => RngSeed::Random,
        Ok(v) => RngSeed::Fixed(v.trim().parse().unwrap_or_else(|_| panic!("TTC_FUZZ_SEED={v}: expected a number or `random`"))),
    };
    Config { cases, rng_seed, failure_persistence: None, ..Config::default() }
}

/// A scratch folder for loaders that read files, in memory where the machine has /dev/shm: each case writes
/// a file, and on a disk that costs ~1.5 ms, 15 s per 10,000 cases.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir()) } else { tempfile::tempdir() };
    dir.expect("a scratch folder")
}

/// Short strings, with those YAML and JSON treat specially, control and non-ASCII characters.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_./-]{0,12}",
        2 => "\\PC{0,12}",
        1 => prop::sample::select(vec![
            "", "null", "~", "true", "no", "1", "-0", "0x1F", "1e3", ".inf", ".nan", "- a", "a: b", "#c", "'", "\"",
            " lead", "trail ", "\t", "[x]", "{x}", "&a", "*a", "!!str", "<<", "---", "...", "%YAML", "@x", "`", "\\",
            "\u{0}", "\u{85}", "\u{2028}", "\u{FEFF}x", "é世", "a\nb", "a\r\nb",
        ])
        .prop_map(str::to_string),
    ]
}

/// Any JSON value, nested up to two levels: null, booleans, integers of both signs, floats, awkward strings.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Number of values in a JSON tree (itself included), the range of `replace_nth`'s index.
pub fn json_count(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().map(json_count).sum(),
        serde_json::Value::Object(m) => m.values().map(json_count).sum(),
        _ => 0,
    }
}

/// Replaces the `at`-th value of the tree (pre-order) with `new`, or, when `remove` and it is an object
/// member, removes it: a valid document with one value of the wrong type, or one key missing.
pub fn replace_nth(v: &mut serde_json::Value, at: &mut usize, new: &serde_json::Value, remove: bool) -> bool {
    if *at == 0 {
        *v = new.clone();
        return true;
    }
    *at -= 1;
    match v {
        serde_json::Value::Array(a) => a.iter_mut().any(|x| replace_nth(x, at, new, remove)),
        serde_json::Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if *at == 0 && remove {
                    m.remove(&k);
                    return true;
                }
                if replace_nth(m.get_mut(&k).expect("a key just listed"), at, new, remove) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

/// One edit of a document's bytes.
#[derive(Debug, Clone)]
pub enum Edit {
    Truncate(Index),
    Byte(Index, u8),
    Insert(Index, &'static str),
    /// Removes up to 16 bytes between the two positions.
    Delete(Index, Index),
    DuplicateLine(Index),
    /// Sets a line's indentation to this many spaces.
    Indent(Index, usize),
}

/// 1 to 4 edits; `Insert` takes its text from `snippets` (the syntax of the format under test).
pub fn edits(snippets: &'static [&'static str]) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        1 => any::<Index>().prop_map(Edit::Truncate),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
        4 => (any::<Index>(), prop::sample::select(snippets)).prop_map(|(i, s)| Edit::Insert(i, s)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Delete(a, b)),
        1 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => (any::<Index>(), 0usize..6).prop_map(|(i, n)| Edit::Indent(i, n)),
    ];
    prop::collection::vec(edit, 1..5)
}

pub const YAML_SNIPPETS: &[&str] = &[
    ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!binary ", "<<: *a", "\t", "---\n", "...\n", "\"", "'", "#", "\n",
    "  ", "? ", "|\n", ">-\n", "%TAG ! x\n", "null", "-1", "0", ".nan", "1e999", "18446744073709551616", "\u{FEFF}",
    "\u{0}", "é",
];

pub const JSON_SNIPPETS: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "null", "true", "-", "0", "1e999", "-1e-999",
    "18446744073709551616", "0.5", "[]", "{}", "\"\"", "\n", " ", "\u{FEFF}", "\u{0}", "é", "/*", "NaN",
];

pub fn mutate_bytes(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        match *e {
            Edit::Truncate(i) => b.truncate(i.index(b.len() + 1)),
            Edit::Byte(i, v) => {
                if !b.is_empty() {
                    let i = i.index(b.len());
                    b[i] = v;
                }
            }
            Edit::Insert(i, s) => {
                let at = i.index(b.len() + 1);
                b.splice(at..at, s.bytes());
            }
            Edit::Delete(x, y) => {
                let (x, y) = (x.index(b.len() + 1), y.index(b.len() + 1));
                let start = x.min(y);
                b.drain(start..x.max(y).min(start + 16));
            }
            Edit::DuplicateLine(i) => {
                let mut lines: Vec<&[u8]> = b.split(|c| *c == b'\n').collect();
                let k = i.index(lines.len());
                lines.insert(k, lines[k]);
                b = lines.join(&b'\n');
            }
            Edit::Indent(i, n) => {
                let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
                let k = i.index(lines.len());
                let rest: Vec<u8> = lines[k].iter().copied().skip_while(|c| *c == b' ').collect();
                lines[k] = std::iter::repeat_n(b' ', n).chain(rest).collect();
                b = lines.join(&b'\n');
            }
        }
    }
    b
}

/// The edited text, invalid UTF-8 replaced (for parsers that take `&str`; the file loaders get the raw bytes).
pub fn mutate_text(text: &str, edits: &[Edit]) -> String {
    String::from_utf8_lossy(&mutate_bytes(text.as_bytes(), edits)).into_owned()
}
