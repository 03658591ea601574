//! The chat completion request: parsed from JSON with the offending field named, then checked against the
//! engine (known model, prompt and `max_tokens` within the context, measured with the engine's own chat
//! template and tokenizer) before anything is queued. Fields OpenAI defines that do not apply here
//! (`user`, `logit_bias`, ...) are ignored, as OpenAI-compatible servers do.

use crate::error::ApiError;
use crate::models::Catalog;
use serde::Deserialize;
use ttc_contract::{ChatMessage, GenRequest};
use ttc_engine::Engine;

/// OpenAI's limit on stop sequences.
pub const MAX_STOPS: usize = 4;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub stop: Option<StopField>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub n: Option<u64>,
    /// Return each output token's logprob (`choices[].logprobs.content`).
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Alternatives per output token, 0..=20; needs `logprobs: true`.
    #[serde(default)]
    pub top_logprobs: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content: a string, or an array of parts of which only `text` parts are supported.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A request ready for the engine.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: GenRequest,
    pub stops: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub prompt_tokens: u32,
}

/// Parses the body; a syntax or type error names the field path and the line/column.
pub fn parse(body: &[u8]) -> Result<ChatRequest, ApiError> {
    parse_json(body)
}

/// Parses a JSON request body into `T`; a syntax or type error names the field path and the line/column.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if inner.is_syntax() || inner.is_eof() {
            format!("the request body is not valid JSON: {inner}")
        } else if path == "." {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid field `{path}`: {inner}")
        };
        let param = (path != ".").then_some(path);
        ApiError::bad_request(msg, param.as_deref())
    })
}

/// Checks a parsed request and measures its prompt. `default_max_tokens` applies when the client sets none
/// (cut to what the context leaves, as vLLM does).
pub fn prepare(req: ChatRequest, catalog: &Catalog, engine: &Engine, default_max_tokens: u64) -> Result<Prepared, ApiError> {
    let model = catalog.get(&req.model).ok_or_else(|| ApiError::unknown_model(&req.model, &catalog.ids()))?;
    if let Some(n) = req.n.filter(|&n| n != 1) {
        return Err(ApiError::bad_request(format!("n = {n}: this server generates one choice per request"), Some("n")));
    }
    let temperature = check_sampling(req.temperature, req.top_p)?;
    let logprobs = chat_logprobs(req.logprobs, req.top_logprobs)?;
    let stops = match req.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stops.len() > MAX_STOPS {
        return Err(ApiError::bad_request(format!("stop: at most {MAX_STOPS} sequences, got {}", stops.len()), Some("stop")));
    }
    let messages = messages(req.messages)?;
    let engine_msgs: Vec<_> = messages.iter().map(|m| ttc_engine::ChatMessage::new(&m.role, m.content.clone())).collect();
    let prompt = engine
        .prompt_tokens(&engine_msgs)
        .map_err(|e| ApiError::bad_request(format!("cannot build the prompt: {e}"), Some("messages")))?;
    let context = engine.context_length() as u64;
    let prompt_len = prompt.len() as u64;
    if prompt_len >= context {
        return Err(ApiError::bad_request(
            format!("This model's maximum context length is {context} tokens; the messages are {prompt_len} tokens."),
            Some("messages"),
        )
        .with_code("context_length_exceeded"));
    }
    // `prompt_len < context` from here on, so `context - prompt_len` cannot underflow; a client's
    // `max_tokens` may be anything up to u64::MAX, so it is only ever compared, never added.
    let room = context - prompt_len;
    let max_tokens = match req.max_completion_tokens.or(req.max_tokens) {
        Some(0) => return Err(ApiError::bad_request("max_tokens must be at least 1", Some("max_tokens"))),
        Some(m) if m > room => {
            return Err(ApiError::bad_request(
                format!(
                    "This model's maximum context length is {context} tokens; you requested {} tokens \
                     ({prompt_len} in the messages, {m} in the completion).",
                    u128::from(prompt_len) + u128::from(m)
                ),
                Some("max_tokens"),
            )
            .with_code("context_length_exceeded"))
        }
        Some(m) => m,
        None => default_max_tokens.min(room),
    };
    // No seed: a fresh one, so sampled requests differ as they do on other servers. A negative seed is
    // reinterpreted bit for bit (a distinct, reproducible u64).
    let seed = seed_of(req.seed);
    // Both fit in u32: they are at most the context length, which the engine holds as a usize of a GGUF u32.
    let request = GenRequest {
        messages,
        policy: model.policy.clone(),
        model: model.id.clone(),
        max_tokens: u32::try_from(max_tokens).unwrap_or(u32::MAX),
        temperature,
        top_p: req.top_p,
        seed: Some(seed),
        extra_body: Default::default(),
        logprobs,
        tags: Default::default(),
    };
    Ok(Prepared {
        request,
        stops,
        stream: req.stream.unwrap_or(false),
        include_usage: req.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        prompt_tokens: u32::try_from(prompt_len).unwrap_or(u32::MAX),
    })
}

/// The temperature (default 1, OpenAI's) after checking it and `top_p` against OpenAI's ranges.
pub fn check_sampling(temperature: Option<f64>, top_p: Option<f64>) -> Result<f64, ApiError> {
    let temperature = temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request(format!("temperature = {temperature}: must be between 0 and 2"), Some("temperature")));
    }
    if let Some(p) = top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
        return Err(ApiError::bad_request(format!("top_p = {p}: must be in (0, 1]"), Some("top_p")));
    }
    Ok(temperature)
}

/// A seed for the sampler: the client's (a negative one reinterpreted bit for bit), else a fresh one.
pub fn seed_of(seed: Option<i64>) -> u64 {
    match seed {
        Some(s) => s as u64,
        None => rand::random(),
    }
}

/// OpenAI's chat rule: `top_logprobs` (0..=20) only with `logprobs: true`. Returns the alternatives to compute.
pub fn chat_logprobs(logprobs: Option<bool>, top: Option<i64>) -> Result<Option<u32>, ApiError> {
    let top = top.map(|k| check_top(k, "top_logprobs")).transpose()?;
    match (logprobs.unwrap_or(false), top) {
        (true, k) => Ok(Some(k.unwrap_or(0))),
        (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::bad_request("top_logprobs requires logprobs: true", Some("top_logprobs"))),
    }
}

/// A count of logprob alternatives: 0..=20 (`MAX_TOP_LOGPROBS`), else a 400 naming `param`.
pub fn check_top(k: i64, param: &str) -> Result<u32, ApiError> {
    let max = ttc_types::MAX_TOP_LOGPROBS;
    u32::try_from(k)
        .ok()
        .filter(|&k| k as usize <= max)
        .ok_or_else(|| ApiError::bad_request(format!("{param} = {k}: must be an integer in 0..={max}"), Some(param)))
}

fn messages(input: Vec<InMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    if input.is_empty() {
        return Err(ApiError::bad_request("messages: at least one message is required", Some("messages")));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, m) in input.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "user" | "assistant" | "tool" => m.role,
            "developer" => "system".to_string(), // OpenAI's newer name for system instructions
            other => {
                let field = format!("messages[{i}].role");
                return Err(ApiError::bad_request(
                    format!("{field}: unknown role `{other}` (expected system, developer, user, assistant or tool)"),
                    Some(&field),
                ));
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.into_iter().enumerate() {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            let field = format!("messages[{i}].content[{j}]");
                            return Err(ApiError::bad_request(
                                format!("{field}: only parts of type `text` with a `text` field are supported, got `{kind}`"),
                                Some(&field),
                            ));
                        }
                    }
                }
                text
            }
        };
        out.push(ChatMessage::new(role, content));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse(b"{\"model\": \"m\",\n \"messages\": [}").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not valid JSON") && e.message.contains("line 2"), "{}", e.message);
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = parse(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(e.message.contains("invalid field `max_tokens`"), "{}", e.message);
        let e = parse(br#"{"messages":[]}"#).unwrap_err();
        assert!(e.message.contains("missing field `model`"), "{}", e.message);
    }

    #[test]
    fn accepts_the_openai_shapes() {
        let r = parse(
            br#"{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                 {"role":"assistant","content":null},{"role":"user","content":"q"}],
                 "stop":"x","stream":true,"stream_options":{"include_usage":true},"user":"ignored","temperature":null}"#,
        )
        .unwrap();
        assert!(matches!(r.stop, Some(StopField::One(ref s)) if s == "x"));
        assert_eq!(r.temperature, None);
        let m = messages(r.messages).unwrap();
        assert_eq!(m, vec![ChatMessage::new("system", "ab"), ChatMessage::new("assistant", ""), ChatMessage::new("user", "q")]);
    }

    #[test]
    fn unsupported_messages_are_named() {
        let r = parse(br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}"#).unwrap();
        assert_eq!(messages(r.messages).unwrap_err().param.as_deref(), Some("messages[1].role"));
        let r = parse(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#).unwrap();
        assert_eq!(messages(r.messages).unwrap_err().param.as_deref(), Some("messages[0].content[0]"));
        assert!(messages(Vec::new()).is_err());
    }

    #[test]
    fn logprob_fields_follow_openai_rules() {
        assert_eq!(chat_logprobs(None, None).unwrap(), None);
        assert_eq!(chat_logprobs(Some(true), None).unwrap(), Some(0));
        assert_eq!(chat_logprobs(Some(true), Some(20)).unwrap(), Some(20));
        for (lp, top) in [(Some(true), 21), (Some(true), -1), (None, 3), (Some(false), 0)] {
            let e = chat_logprobs(lp, Some(top)).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some("top_logprobs"), "{lp:?} {top}: {}", e.message);
        }
    }
}
