//! OpenAI-compatible streaming chat backend: `POST {base_url}/chat/completions` with `stream: true` and
//! `stream_options.include_usage`, read as Server-Sent Events ([`super::sse`]) and decoded chunk by chunk
//! into [`GenEvent`]s. Timestamps are taken when the bytes of a chunk arrive (one clock read per network
//! read), on the monotonic clock.
//!
//! Chunk rules (OpenAI chat streaming format; vLLM's `endpoint_request_func.py` reads it the same way):
//! - `choices[0].delta.content` non-empty -> `Content`; a role-only first chunk (`{"role":"assistant",
//!   "content":""}`) is not content, so it does not stop the TTFT clock;
//! - `delta.reasoning_content` (DeepSeek, vLLM) or `delta.reasoning` (OpenRouter, newer vLLM) -> `Reasoning`;
//! - `choices[0].finish_reason` is remembered; `usage` (the final chunk with `choices: []` when
//!   `include_usage` is set, or Groq's `x_groq.usage`) gives exact token counts;
//! - `[DONE]` ends the generation. A stream that closes after a `finish_reason` but without `[DONE]` is also
//!   complete; one that closes before either is a cut stream (retryable);
//! - an `error` object or an SSE `event: error` mid-stream is a server error (retryable).
//!
//! The API key is read once from the configured environment variable and only ever placed in a header
//! marked sensitive; it never reaches logs, errors or records. Credentials in the base URL (userinfo, query
//! values) are sent but shown only redacted ([`super::endpoint`]): error messages carry the redacted URL,
//! reqwest's errors are stripped of theirs, and the server's own messages are scrubbed of the secrets.

use super::endpoint::{self, Secrets};
use super::sse::{SseEvent, SseParser};
use super::{Backend, BackendError, BackendInfo, EventItem, EventStream, GenEvent, GenRequest};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use ttc_types::{FinishReason, Logprob, TokenLogprob, TokenRef, Usage};

/// How to reach an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Label stored in records (`openai`, `groq`).
    pub kind: String,
    pub base_url: String,
    /// The key itself (already read from the environment), if any.
    pub api_key: Option<String>,
    pub model: String,
    pub connect_timeout: Duration,
    /// Idle connections kept per host; set it to the concurrency so the pool never churns.
    pub pool_size: usize,
}

pub struct OpenAiBackend {
    client: reqwest::Client,
    /// Where requests go, credentials included.
    url: reqwest::Url,
    /// `url` as errors show it.
    shown_url: String,
    secrets: Secrets,
    info: BackendInfo,
}

impl OpenAiBackend {
    pub fn new(settings: OpenAiSettings) -> anyhow::Result<OpenAiBackend> {
        let shown = endpoint::redact_str(&settings.base_url);
        let base = reqwest::Url::parse(&settings.base_url)
            .map_err(|e| anyhow::anyhow!("backend.base_url `{shown}` is not a URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("backend.base_url `{shown}` must start with http:// or https://");
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = settings.api_key.as_deref() {
            // Never echo the key: the error only says that it is malformed.
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| anyhow::anyhow!("the API key contains characters not allowed in an HTTP header"))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("ttcbench/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true) // small SSE frames must not wait for Nagle
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.pool_size.max(1))
            .build()?;
        let url = endpoint::chat_completions_url(&base);
        Ok(OpenAiBackend {
            client,
            shown_url: endpoint::redact(&url),
            secrets: Secrets::of(&base),
            url,
            info: BackendInfo {
                kind: settings.kind,
                base_url: Some(endpoint::redact(&base)),
                model: settings.model,
                weights: None,
                usage_is_engine: false,
            },
        })
    }
}

/// The JSON body of one streaming chat request. `extra_body` fields are merged last, at top level, so they
/// can add server-specific knobs or override ours (as the `openai` Python client's `extra_body` does).
pub fn request_body(req: &GenRequest) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert("messages".into(), serde_json::to_value(&req.messages).unwrap_or_default());
    body.insert("stream".into(), true.into());
    body.insert("stream_options".into(), serde_json::json!({ "include_usage": true }));
    body.insert("max_tokens".into(), req.max_tokens.into());
    body.insert("temperature".into(), req.temperature.into());
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(s) = req.seed {
        body.insert("seed".into(), s.into());
    }
    if let Some(k) = req.logprobs {
        body.insert("logprobs".into(), true.into());
        if k > 0 {
            body.insert("top_logprobs".into(), k.into());
        }
    }
    for (k, v) in &req.extra_body {
        body.insert(k.clone(), v.clone());
    }
    serde_json::Value::Object(body)
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    async fn generate(&self, request: &GenRequest) -> Result<EventStream, BackendError> {
        let body = serde_json::to_vec(&request_body(request))
            .map_err(|e| BackendError::InvalidRequest(format!("cannot encode the request: {e}")))?;
        let response = self
            .client
            .post(self.url.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers(), SystemTime::now());
            let text = response.text().await.unwrap_or_default();
            return Err(BackendError::Http {
                status: status.as_u16(),
                url: self.shown_url.clone(),
                message: self.secrets.scrub(&error_message(&text)),
                retry_after,
            });
        }
        Ok(Box::pin(SseGenStream {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::new(),
            decoder: ChunkDecoder::default(),
            pending: VecDeque::new(),
            ended: false,
            secrets: self.secrets.clone(),
        }))
    }
}

impl OpenAiBackend {
    fn send_error(&self, e: reqwest::Error) -> BackendError {
        // reqwest's message names the full URL; ours carries the redacted one.
        let (timeout, connect) = (e.is_timeout(), e.is_connect());
        let message = self.secrets.scrub(&error_chain(&e.without_url()));
        let url = self.shown_url.clone();
        if timeout {
            BackendError::Transport { url, message: format!("timed out: {message}") }
        } else if connect {
            BackendError::Connect { url, message }
        } else {
            BackendError::Transport { url, message }
        }
    }
}

/// reqwest's top-level message is generic ("error sending request"); the cause chain says what happened.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// `retry-after-ms` (OpenAI, milliseconds) or `Retry-After` (RFC 9110: delay-seconds or an HTTP-date).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = httpdate::parse_http_date(v).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The server's own message from an error body: OpenAI `{"error":{"message"}}`, `{"error":"..."}`,
/// FastAPI `{"detail":...}`, `{"message":...}`, else the text itself (shortened).
pub fn error_message(body: &str) -> String {
    const MAX: usize = 500;
    let from_json = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        let pick = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        };
        v.get("error")
            .and_then(|e| e.get("message").and_then(pick).or_else(|| e.as_str().map(str::to_string)))
            .or_else(|| v.get("detail").and_then(pick))
            .or_else(|| v.get("message").and_then(pick))
    });
    let msg = from_json.unwrap_or_else(|| body.trim().to_string());
    let msg = if msg.is_empty() { "(empty body)".to_string() } else { msg };
    if msg.chars().count() > MAX {
        let cut: String = msg.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        msg
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<UsageJson>,
    error: Option<serde_json::Value>,
    x_groq: Option<XGroq>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    delta: Option<Delta>,
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

/// `choices[].logprobs` of a chat chunk: `{"content": [{"token", "logprob", "top_logprobs": [..]}]}`.
#[derive(Deserialize)]
struct ChoiceLogprobs {
    #[serde(default)]
    content: Option<Vec<LogprobJson>>,
}

#[derive(Deserialize)]
struct LogprobJson {
    token: String,
    logprob: f64,
    #[serde(default)]
    top_logprobs: Vec<TopLogprobJson>,
}

#[derive(Deserialize)]
struct TopLogprobJson {
    token: String,
    logprob: f64,
}

impl LogprobJson {
    fn into_token(self) -> TokenLogprob {
        let lp = |token: String, logprob: f64| Logprob { token: TokenRef::Text(token), logprob: logprob as f32 };
        TokenLogprob {
            chosen: lp(self.token, self.logprob),
            top: self.top_logprobs.into_iter().map(|t| lp(t.token, t.logprob)).collect(),
        }
    }
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct UsageJson {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    /// OpenAI, vLLM and `ttc serve` report prefix-cache hits here.
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct XGroq {
    usage: Option<UsageJson>,
}

/// Turns SSE event payloads into generation events. Pure, so every rule is unit-tested.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    finish_reason: Option<String>,
    usage: Option<Usage>,
    content_chunks: usize,
    /// Logprobs received and not yet attached to a content event.
    logprobs: Vec<TokenLogprob>,
    /// `[DONE]` seen or an error reported: later events are ignored.
    pub done: bool,
}

impl ChunkDecoder {
    /// Decodes one event received at `at`; output goes to `out`.
    pub fn on_event(&mut self, ev: &SseEvent, at: Instant, out: &mut VecDeque<EventItem>) {
        if self.done {
            return;
        }
        if ev.event.as_deref() == Some("error") {
            self.fail(out, BackendError::StreamError(error_message(&ev.data)));
            return;
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            out.push_back(Ok(self.finished(at)));
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                let shown: String = data.chars().take(200).collect();
                self.fail(out, BackendError::Protocol(format!("chunk is not valid JSON ({e}): {shown}")));
                return;
            }
        };
        if let Some(err) = chunk.error {
            self.fail(out, BackendError::StreamError(error_message(&serde_json::json!({ "error": err }).to_string())));
            return;
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(content) = choice.logprobs.and_then(|l| l.content) {
                self.logprobs.extend(content.into_iter().map(LogprobJson::into_token));
            }
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.reasoning_content.or(delta.reasoning).filter(|t| !t.is_empty()) {
                    out.push_back(Ok(GenEvent::Reasoning { at, text }));
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.content_chunks += 1;
                    // Logprobs that arrived on a chunk without text travel with the next text.
                    let logprobs = std::mem::take(&mut self.logprobs);
                    out.push_back(Ok(GenEvent::Content { at, text, token_ids: Vec::new(), logprobs }));
                }
            }
            if let Some(r) = choice.finish_reason {
                self.finish_reason = Some(r);
            }
        }
        if let Some(u) = chunk.usage.or(chunk.x_groq.and_then(|x| x.usage)) {
            if let Some(completion) = u.completion_tokens {
                let cached = u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
                self.usage = Some(Usage {
                    prompt_tokens: u.prompt_tokens.unwrap_or(0),
                    completion_tokens: completion,
                    cached_prompt_tokens: cached,
                });
            }
        }
    }

    /// The body ended at `at`.
    pub fn on_end(&mut self, at: Instant, out: &mut VecDeque<EventItem>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.finish_reason.is_some() {
            out.push_back(Ok(self.finished(at)));
        } else {
            out.push_back(Err(BackendError::StreamCut(format!(
                "connection closed after {} content chunks, before finish_reason or [DONE]",
                self.content_chunks
            ))));
        }
    }

    fn fail(&mut self, out: &mut VecDeque<EventItem>, e: BackendError) {
        self.done = true;
        out.push_back(Err(e));
    }

    fn finished(&self, at: Instant) -> GenEvent {
        let reason = match self.finish_reason.as_deref() {
            Some("length") => FinishReason::Length,
            Some("cancelled") => FinishReason::Cancelled,
            _ => FinishReason::Stop,
        };
        GenEvent::finished(at, reason, self.usage)
    }
}

struct SseGenStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    decoder: ChunkDecoder,
    pending: VecDeque<EventItem>,
    ended: bool,
    secrets: Secrets,
}

impl Stream for SseGenStream {
    type Item = EventItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.pending.pop_front() {
                return Poll::Ready(Some(item.map_err(|e| scrub_error(e, &this.secrets))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if this.decoder.done {
                // Generation over: read the body to its end (normally just the terminating chunk) so the
                // connection can go back to the pool; the runner bounds how long it waits for this.
                match this.body.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(_) => {
                        this.ended = true;
                        return Poll::Ready(None);
                    }
                }
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => {
                    let at = Instant::now();
                    let (decoder, pending) = (&mut this.decoder, &mut this.pending);
                    this.parser.feed(&bytes, |ev| decoder.on_event(&ev, at, pending));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    if !this.decoder.done {
                        this.pending.push_back(Err(BackendError::StreamCut(error_chain(&e.without_url()))));
                    }
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    let at = Instant::now();
                    let (decoder, pending) = (&mut this.decoder, &mut this.pending);
                    this.parser.finish(|ev| decoder.on_event(&ev, at, pending));
                    this.decoder.on_end(at, &mut this.pending);
                }
            }
        }
    }
}

/// A mid-stream error with the server's text scrubbed of the URL's secrets.
fn scrub_error(e: BackendError, secrets: &Secrets) -> BackendError {
    match e {
        BackendError::StreamError(m) => BackendError::StreamError(secrets.scrub(&m)),
        BackendError::Protocol(m) => BackendError::Protocol(secrets.scrub(&m)),
        BackendError::StreamCut(m) => BackendError::StreamCut(secrets.scrub(&m)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ChatMessage;
    use crate::config::Policy;
    use std::sync::Arc;

    /// Runs raw SSE bytes through the parser and decoder, as the stream does.
    fn decode(raw: &str) -> Vec<EventItem> {
        let at = Instant::now();
        let mut p = SseParser::new();
        let mut d = ChunkDecoder::default();
        let mut out = VecDeque::new();
        p.feed(raw.as_bytes(), |ev| d.on_event(&ev, at, &mut out));
        p.finish(|ev| d.on_event(&ev, at, &mut out));
        d.on_end(at, &mut out);
        out.into_iter().collect()
    }

    fn texts(items: &[EventItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Ok(GenEvent::Content { text, .. }) => format!("C:{text}"),
                Ok(GenEvent::Reasoning { text, .. }) => format!("R:{text}"),
                Ok(GenEvent::Finished { reason, usage, .. }) => format!("F:{reason:?}:{usage:?}"),
                Err(e) => format!("E:{}", e.class()),
            })
            .collect()
    }

    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn openai_stream_with_role_chunk_usage_and_done() {
        let out = decode(OPENAI_STREAM);
        assert_eq!(
            texts(&out),
            vec!["C:Hel", "C:lo", "F:Length:Some(Usage { prompt_tokens: 9, completion_tokens: 2, cached_prompt_tokens: 0 })"]
        );
    }

    #[test]
    fn logprobs_of_chunks_travel_with_their_content() {
        let raw = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105],\"top_logprobs\":[{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105]},{\"token\":\"Hey\",\"logprob\":-1.25,\"bytes\":null}]}],\"refusal\":null}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"logprobs\":{\"content\":[{\"token\":\"!\",\"logprob\":-2.0,\"top_logprobs\":[]}]},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let out = decode(raw);
        let lps: Vec<Vec<TokenLogprob>> = out
            .iter()
            .filter_map(|i| match i {
                Ok(GenEvent::Content { logprobs, .. }) => Some(logprobs.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(lps.len(), 2);
        let t = |s: &str, lp: f32| Logprob { token: TokenRef::Text(s.into()), logprob: lp };
        assert_eq!(lps[0], vec![TokenLogprob { chosen: t("Hi", -0.5), top: vec![t("Hi", -0.5), t("Hey", -1.25)] }]);
        assert_eq!(lps[1], vec![TokenLogprob { chosen: t("!", -2.0), top: vec![] }]);
    }

    #[test]
    fn logprobs_are_requested_when_the_run_asks() {
        let mut req = GenRequest {
            messages: vec![ChatMessage::new("user", "hi")],
            policy: Arc::new(Policy::baseline()),
            model: "m".into(),
            max_tokens: 8,
            temperature: 0.0,
            top_p: None,
            seed: None,
            extra_body: Default::default(),
            logprobs: Some(3),
            tags: Default::default(),
        };
        let body = request_body(&req);
        assert_eq!((body["logprobs"].clone(), body["top_logprobs"].clone()), (serde_json::json!(true), serde_json::json!(3)));
        req.logprobs = Some(0);
        let body = request_body(&req);
        assert_eq!(body["logprobs"], serde_json::json!(true));
        assert!(body.get("top_logprobs").is_none(), "top_logprobs 0 is left out for servers that reject it");
        req.logprobs = None;
        assert!(request_body(&req).get("logprobs").is_none());
    }

    #[test]
    fn crlf_framing_gives_the_same_events() {
        let crlf = OPENAI_STREAM.replace('\n', "\r\n");
        assert_eq!(texts(&decode(&crlf)), texts(&decode(OPENAI_STREAM)));
    }

    #[test]
    fn reasoning_deltas_are_kept_apart() {
        let raw = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"more\",\"content\":null}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"answer\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(texts(&decode(raw)), vec!["R:think", "R:more", "C:answer", "F:Stop:None"]);
    }

    #[test]
    fn groq_usage_in_x_groq() {
        let raw = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"r\",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(texts(&decode(raw)), vec!["C:ok", "F:Stop:Some(Usage { prompt_tokens: 4, completion_tokens: 1, cached_prompt_tokens: 0 })"]);
    }

    #[test]
    fn multi_line_data_event_is_one_json() {
        let raw = "data: {\"choices\":[{\"index\":0,\ndata: \"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(texts(&decode(raw)), vec!["C:x", "F:Stop:None"]);
    }

    #[test]
    fn cut_before_finish_is_stream_cut_but_finish_without_done_is_complete() {
        let cut = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
        assert_eq!(texts(&decode(cut)), vec!["C:a", "E:stream_cut"]);
        let no_done =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n";
        assert_eq!(texts(&decode(no_done)), vec!["C:a", "F:Stop:None"]);
        assert_eq!(texts(&decode("")), vec!["E:stream_cut"]);
    }

    #[test]
    fn done_without_trailing_blank_line() {
        let raw = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]";
        assert_eq!(texts(&decode(raw)), vec!["C:a", "F:Stop:None"]);
    }

    #[test]
    fn events_after_done_are_ignored() {
        let raw = "data: [DONE]\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n";
        assert_eq!(texts(&decode(raw)), vec!["F:Stop:None"]);
    }

    #[test]
    fn mid_stream_errors() {
        let obj = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        let out = decode(obj);
        assert_eq!(texts(&out), vec!["C:a", "E:stream_error"]);
        assert!(matches!(&out[1], Err(BackendError::StreamError(m)) if m == "overloaded"));
        let typed = "event: error\ndata: {\"message\":\"boom\"}\n\n";
        let out = decode(typed);
        assert!(matches!(&out[0], Err(BackendError::StreamError(m)) if m == "boom"));
        assert_eq!(out.len(), 1);
        assert_eq!(texts(&decode("data: {not json\n\n")), vec!["E:protocol"]);
    }

    #[test]
    fn other_choice_indexes_are_ignored() {
        let raw = "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"}},{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n";
        assert_eq!(texts(&decode(raw)), vec!["C:a", "F:Stop:None"]);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("0.25"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        h.insert("retry-after", HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(7))).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(150)));
    }

    #[test]
    fn error_messages_from_common_bodies() {
        assert_eq!(error_message(r#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#), "bad model");
        assert_eq!(error_message(r#"{"error":"nope"}"#), "nope");
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message("plain text\n"), "plain text");
        assert_eq!(error_message(""), "(empty body)");
        assert_eq!(error_message(&"x".repeat(600)).len(), 503);
    }

    #[test]
    fn body_maps_policy_params_and_extra_body() {
        let mut extra = serde_json::Map::new();
        extra.insert("top_k".into(), 5.into());
        extra.insert("temperature".into(), 0.3.into());
        let req = GenRequest {
            messages: vec![ChatMessage::new("user", "hi")],
            policy: Arc::new(Policy::baseline()),
            model: "llama-3.1-8b-instant".into(),
            max_tokens: 64,
            temperature: 0.0,
            top_p: Some(0.9),
            seed: Some(7),
            extra_body: extra,
            logprobs: None,
            tags: Default::default(),
        };
        let body = request_body(&req);
        assert_eq!(
            body,
            serde_json::json!({
                "model": "llama-3.1-8b-instant",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 64,
                "temperature": 0.3,
                "top_p": 0.9,
                "seed": 7,
                "top_k": 5
            })
        );
    }
}
