//! Reading a JSON array file item by item, keeping each item's line number for error messages, plus
//! field accessors whose errors name the field.

use crate::suite::Source;
use crate::EvalError;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// An array element: the 1-based line it starts on and its fields.
pub(crate) type LineItem = (usize, Map<String, Value>);

/// Each element of the top-level array with the 1-based line it starts on.
pub(crate) fn array_items(src: &Source) -> Result<Vec<LineItem>, EvalError> {
    let raws: Vec<&RawValue> = serde_json::from_str(&src.text).map_err(|e| {
        EvalError::malformed(&src.path, e.line(), format!("not a JSON array of objects: {e}"))
    })?;
    let base = src.text.as_ptr() as usize;
    let mut out = Vec::with_capacity(raws.len());
    let mut line = 1;
    let mut scanned = 0;
    for (i, raw) in raws.into_iter().enumerate() {
        let offset = (raw.get().as_ptr() as usize).saturating_sub(base).min(src.text.len());
        line += src.text.as_bytes()[scanned..offset].iter().filter(|b| **b == b'\n').count();
        scanned = offset;
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(map)) => out.push((line, map)),
            Ok(other) => {
                return Err(EvalError::malformed(&src.path, line, format!("item {i}: expected an object, found {}", kind(&other))))
            }
            Err(e) => return Err(EvalError::malformed(&src.path, line, format!("item {i}: {e}"))),
        }
    }
    Ok(out)
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Field access with errors that say `field \`x\`: ...`.
pub(crate) struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    pub src: &'a Source,
    pub line: usize,
}

impl Fields<'_> {
    pub fn err(&self, field: &str, message: impl std::fmt::Display) -> EvalError {
        EvalError::malformed(&self.src.path, self.line, format!("field `{field}`: {message}"))
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field)
    }

    pub fn str(&self, field: &str) -> Result<&str, EvalError> {
        match self.map.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.err(field, format!("expected a string, found {}", kind(other)))),
            None => Err(self.err(field, "missing")),
        }
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, EvalError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(field, format!("expected a string, found {}", kind(other)))),
        }
    }

    /// A string or an integer, as text (ids).
    pub fn id(&self, field: &str) -> Result<String, EvalError> {
        match self.map.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(self.err(field, format!("expected a string or number, found {}", kind(other)))),
            None => Err(self.err(field, "missing")),
        }
    }
}
