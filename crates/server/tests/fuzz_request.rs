//! Property-based fuzzing of the chat completion request parser of `ttc serve` (`request::parse`), the first
//! code a remote client's body reaches. Only the public entry point is called: `prepare` (the checks against
//! the engine) needs the model and is covered by the API tests.
//!
//! - Generated OpenAI-shaped requests (every message content form, stop as a string or a list, numbers at
//!   the ends of their ranges, fields this server ignores) parse to what was sent.
//! - The same bodies with one value of the wrong type or removed, byte-level mutations (truncation, JSON
//!   punctuation, invalid UTF-8, a UTF-8 BOM), deep nesting or random bytes: a 400 error, never a panic;
//!   a syntax error says so, any other error names the field.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, json_count, json_value, mutate_bytes, replace_nth, text, JSON_SNIPPETS};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};
use ttc_server::request::{parse, ChatRequest, Content, StopField};

/// A message's content as sent.
#[derive(Debug, Clone)]
enum Sent {
    Absent,
    Null,
    Text(String),
    /// `[{"type": kind, "text": text?}]`
    Parts(Vec<(String, Option<String>)>),
}

#[derive(Debug, Clone)]
struct Request {
    model: String,
    messages: Vec<(String, Sent)>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    stop: Option<Result<String, Vec<String>>>,
    stream: Option<bool>,
    include_usage: Option<Option<bool>>,
    n: Option<u64>,
    /// Fields OpenAI defines that this server ignores.
    ignored: Vec<(&'static str, Value)>,
}

impl Request {
    fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert("model".into(), json!(self.model));
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|(role, content)| {
                let mut msg = Map::new();
                msg.insert("role".into(), json!(role));
                match content {
                    Sent::Absent => {}
                    Sent::Null => {
                        msg.insert("content".into(), Value::Null);
                    }
                    Sent::Text(t) => {
                        msg.insert("content".into(), json!(t));
                    }
                    Sent::Parts(parts) => {
                        let parts: Vec<Value> = parts
                            .iter()
                            .map(|(kind, text)| match text {
                                Some(t) => json!({"type": kind, "text": t}),
                                None => json!({"type": kind}),
                            })
                            .collect();
                        msg.insert("content".into(), Value::Array(parts));
                    }
                }
                Value::Object(msg)
            })
            .collect();
        m.insert("messages".into(), Value::Array(messages));
        let mut opt = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        opt("max_tokens", self.max_tokens.map(Value::from));
        opt("max_completion_tokens", self.max_completion_tokens.map(Value::from));
        opt("temperature", self.temperature.map(Value::from));
        opt("top_p", self.top_p.map(Value::from));
        opt("seed", self.seed.map(Value::from));
        opt("stop", self.stop.as_ref().map(|s| match s {
            Ok(one) => json!(one),
            Err(many) => json!(many),
        }));
        opt("stream", self.stream.map(Value::from));
        opt("stream_options", self.include_usage.map(|u| match u {
            Some(b) => json!({"include_usage": b}),
            None => json!({}),
        }));
        opt("n", self.n.map(Value::from));
        for (k, v) in &self.ignored {
            m.insert(k.to_string(), v.clone());
        }
        Value::Object(m)
    }

    fn check(&self, r: &ChatRequest) -> Result<(), TestCaseError> {
        prop_assert_eq!(&r.model, &self.model);
        prop_assert_eq!(r.messages.len(), self.messages.len());
        for (got, (role, sent)) in r.messages.iter().zip(&self.messages) {
            prop_assert_eq!(&got.role, role);
            match (&got.content, sent) {
                (None, Sent::Absent | Sent::Null) => {}
                (Some(Content::Text(a)), Sent::Text(b)) => prop_assert_eq!(a, b),
                (Some(Content::Parts(a)), Sent::Parts(b)) => {
                    let a: Vec<(String, Option<String>)> = a.iter().map(|p| (p.kind.clone(), p.text.clone())).collect();
                    prop_assert_eq!(&a, b);
                }
                (got, sent) => prop_assert!(false, "content {got:?} for {sent:?}"),
            }
        }
        // `as u64` keeps this independent of the integer type the parser uses for the token limits.
        prop_assert_eq!(r.max_tokens, self.max_tokens);
        prop_assert_eq!(r.max_completion_tokens, self.max_completion_tokens);
        prop_assert_eq!((r.temperature, r.top_p, r.seed), (self.temperature, self.top_p, self.seed));
        match (&r.stop, &self.stop) {
            (None, None) => {}
            (Some(StopField::One(a)), Some(Ok(b))) => prop_assert_eq!(a, b),
            (Some(StopField::Many(a)), Some(Err(b))) => prop_assert_eq!(a, b),
            (got, sent) => prop_assert!(false, "stop {got:?} for {sent:?}"),
        }
        prop_assert_eq!(r.stream, self.stream);
        prop_assert_eq!(r.stream_options.as_ref().map(|o| o.include_usage), self.include_usage);
        prop_assert_eq!(r.n, self.n);
        Ok(())
    }
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(-0.0), Just(2.0), Just(f64::MAX), Just(f64::MIN_POSITIVE), -10.0f64..10.0, prop::num::f64::NORMAL]
}

fn content() -> impl Strategy<Value = Sent> {
    let kind = prop_oneof![3 => Just("text".to_string()), 1 => prop::sample::select(vec!["image_url", "input_audio", ""]).prop_map(str::to_string)];
    prop_oneof![
        1 => Just(Sent::Absent),
        1 => Just(Sent::Null),
        4 => text().prop_map(Sent::Text),
        2 => prop::collection::vec((kind, prop::option::of(text())), 0..3).prop_map(Sent::Parts),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let role = prop_oneof![
        4 => prop::sample::select(vec!["system", "developer", "user", "assistant", "tool"]).prop_map(str::to_string),
        1 => text(),
    ];
    let tokens = || prop::option::of(prop_oneof![Just(0u64), Just(1), Just(u32::MAX as u64 + 1), Just(u64::MAX), any::<u64>()]);
    let stop = prop::option::of(prop_oneof![text().prop_map(Ok), prop::collection::vec(text(), 0..6).prop_map(Err)]);
    let ignored = prop::collection::vec(
        (prop::sample::select(vec!["user", "logit_bias", "presence_penalty", "tools", "response_format", "frequency_penalty"]), json_value()),
        0..3,
    );
    (
        (text(), prop::collection::vec((role, content()), 0..4)),
        (tokens(), tokens(), prop::option::of(number()), prop::option::of(number()), prop::option::of(any::<i64>())),
        (stop, prop::option::of(any::<bool>()), prop::option::of(prop::option::of(any::<bool>())), prop::option::of(any::<u64>()), ignored),
    )
        .prop_map(|((model, messages), (max_tokens, max_completion_tokens, temperature, top_p, seed), (stop, stream, include_usage, n, mut ignored))| {
            // A JSON object keeps one value per key.
            ignored.sort_by_key(|(k, _)| *k);
            ignored.dedup_by_key(|(k, _)| *k);
            Request { model, messages, max_tokens, max_completion_tokens, temperature, top_p, seed, stop, stream, include_usage, n, ignored }
        })
}

fn broken() -> impl Strategy<Value = Vec<u8>> {
    let retyped = (request(), any::<Index>(), json_value(), any::<bool>()).prop_map(|(r, at, new, remove)| {
        let mut v = r.json();
        let mut n = at.index(json_count(&v));
        replace_nth(&mut v, &mut n, &new, remove);
        v.to_string().into_bytes()
    });
    let mutated = (request(), edits(JSON_SNIPPETS)).prop_map(|(r, e)| mutate_bytes(r.json().to_string().as_bytes(), &e));
    let nested = (1usize..5000, any::<bool>()).prop_map(|(depth, arrays)| {
        let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
        // Deep values where the parser buffers them (untagged content) and where it skips them (an ignored field).
        let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        format!("{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":{deep}}}],\"user\":{deep}}}").into_bytes()
    });
    prop_oneof![
        4 => retyped,
        4 => mutated,
        1 => nested,
        1 => request().prop_map(|r| [&b"\xEF\xBB\xBF"[..], r.json().to_string().as_bytes()].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn openai_shaped_requests_parse_to_what_was_sent(r in request(), pretty in any::<bool>()) {
        let v = r.json();
        let body = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
        let parsed = parse(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{}: {body}", e.message)))?;
        r.check(&parsed)?;
    }

    #[test]
    fn broken_requests_are_a_400_naming_the_problem(body in broken()) {
        if let Err(e) = parse(&body) {
            prop_assert_eq!(e.status.as_u16(), 400);
            if e.message.starts_with("the request body is not valid JSON: ") {
                prop_assert!(e.message.contains(" line "), "no line: {:?}", e);
            } else if let Some(p) = &e.param {
                prop_assert!(e.message.starts_with(&format!("invalid field `{p}`: ")), "field not named: {:?}", e);
            } else {
                prop_assert!(e.message.starts_with("invalid request body: "), "unexpected: {:?}", e);
            }
        }
    }
}
