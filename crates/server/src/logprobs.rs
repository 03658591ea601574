//! Logprobs in OpenAI's JSON shapes.
//!
//! - Chat (`choices[].logprobs`, also on every streamed chunk): `{"content": [{"token", "logprob", "bytes",
//!   "top_logprobs": [{"token", "logprob", "bytes"}]}], "refusal": null}`, or `null` when not requested
//!   (https://platform.openai.com/docs/api-reference/chat/object).
//! - Legacy completions (`/v1/completions`): `{"tokens": [..], "token_logprobs": [..], "top_logprobs": [{token:
//!   logprob}], "text_offset": [..]}`, one entry per token; the first prompt token of an `echo` has `null` logprob
//!   and `null` alternatives (nothing precedes it). As vLLM does, a token's alternatives also list the token
//!   itself, so lm-evaluation-harness's greedy check (`logprob == max(top_logprobs)`) works with `logprobs: 1`.

use serde_json::{json, Map, Value};
use ttc_engine::GgufTokenizer;
use ttc_types::{Logprob, TokenLogprob, TokenRef};

/// The token's text (invalid UTF-8 of a token that splits a character is replaced) and its raw bytes.
pub fn token_text(tok: &GgufTokenizer, t: &TokenRef) -> (String, Vec<u8>) {
    match t {
        TokenRef::Id(id) => {
            let bytes = tok.token_bytes(*id).to_vec();
            (String::from_utf8_lossy(&bytes).into_owned(), bytes)
        }
        TokenRef::Text(s) => (s.clone(), s.as_bytes().to_vec()),
    }
}

fn chat_entry(tok: &GgufTokenizer, l: &Logprob) -> Value {
    let (text, bytes) = token_text(tok, &l.token);
    json!({ "token": text, "logprob": l.logprob, "bytes": bytes })
}

/// `choices[].logprobs` of a chat completion or chunk: null when the request did not ask for logprobs.
pub fn chat(tok: &GgufTokenizer, requested: bool, lps: &[TokenLogprob]) -> Value {
    if !requested {
        return Value::Null;
    }
    let content: Vec<Value> = lps
        .iter()
        .map(|l| {
            let mut e = chat_entry(tok, &l.chosen);
            e["top_logprobs"] = l.top.iter().map(|a| chat_entry(tok, a)).collect();
            e
        })
        .collect();
    json!({ "content": content, "refusal": null })
}

/// The legacy `logprobs` object, built token by token.
#[derive(Debug, Default)]
pub struct Legacy {
    tokens: Vec<String>,
    token_logprobs: Vec<Option<f32>>,
    top_logprobs: Vec<Option<Map<String, Value>>>,
    text_offset: Vec<usize>,
    /// Characters of text so far (offsets count characters, as Python's `len` does).
    chars: usize,
}

impl Legacy {
    /// Append one token; `scored` is None for the first token of an echoed prompt.
    pub fn push(&mut self, tok: &GgufTokenizer, token: &TokenRef, scored: Option<&TokenLogprob>) {
        let (text, _) = token_text(tok, token);
        self.text_offset.push(self.chars);
        self.chars += text.chars().count();
        self.tokens.push(text);
        self.token_logprobs.push(scored.map(|s| s.chosen.logprob));
        self.top_logprobs.push(scored.map(|s| {
            let mut top = Map::new();
            for a in s.top.iter().chain(std::iter::once(&s.chosen)) {
                let (t, _) = token_text(tok, &a.token);
                top.entry(t).or_insert_with(|| json!(a.logprob));
            }
            top
        }));
    }

    pub fn to_json(&self) -> Value {
        json!({
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
            "text_offset": self.text_offset,
        })
    }
}
