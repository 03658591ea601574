//! A backend that plays a script: for unit tests of the runner and the record code, and as a reference
//! of the stream contract for other backends. A responder decides, from the request and the attempt
//! number for that prompt, whether the attempt fails up front or which steps its stream plays. Delays use
//! tokio's clock, so tests can run them with paused time.

use crate::{Backend, BackendError, BackendInfo, EventStream, GenEvent, GenRequest};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use ttc_types::{FinishReason, Usage};

#[derive(Debug, Clone)]
pub enum Step {
    Delay(Duration),
    Content {
        text: String,
        token_ids: Vec<u32>,
    },
    Reasoning(String),
    Finish {
        reason: FinishReason,
        usage: Option<Usage>,
    },
    /// An error item mid-stream.
    Error(BackendError),
}

impl Step {
    pub fn text(t: &str) -> Step {
        Step::Content { text: t.to_string(), token_ids: Vec::new() }
    }
    pub fn finish(usage: Option<Usage>) -> Step {
        Step::Finish { reason: FinishReason::Stop, usage }
    }
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// `generate` itself fails (an HTTP status, a refused connection).
    Fail(BackendError),
    /// The stream plays these steps, then ends (without a `Finish` step that is a cut stream).
    Stream(Vec<Step>),
}

type Responder = dyn Fn(&GenRequest, u32) -> Reply + Send + Sync;

pub struct ScriptedBackend {
    info: BackendInfo,
    max_concurrency: Option<usize>,
    responder: Box<Responder>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl ScriptedBackend {
    /// `responder(request, attempt)` with attempt = 1 for the first call with this prompt.
    pub fn new(responder: impl Fn(&GenRequest, u32) -> Reply + Send + Sync + 'static) -> ScriptedBackend {
        ScriptedBackend {
            info: BackendInfo {
                kind: "scripted".into(),
                base_url: None,
                model: "scripted".into(),
                weights: None,
                usage_is_engine: false,
            },
            max_concurrency: None,
            responder: Box::new(responder),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Declares a concurrency limit (like an engine with that many slots).
    pub fn with_max_concurrency(mut self, n: usize) -> ScriptedBackend {
        self.max_concurrency = Some(n);
        self
    }

    pub fn with_info(mut self, info: BackendInfo) -> ScriptedBackend {
        self.info = info;
        self
    }

    /// How many attempts were made for prompts, in total.
    pub fn total_attempts(&self) -> u32 {
        self.attempts.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
}

/// The key that identifies "the same request" across attempts: the policy and the prompt.
fn prompt_key(req: &GenRequest) -> String {
    let mut k = req.policy.name.clone();
    for m in &req.messages {
        k.push('\u{1}');
        k.push_str(&m.content);
    }
    k
}

#[async_trait]
impl Backend for ScriptedBackend {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn max_concurrency(&self, _policy: &ttc_policy::Policy) -> Option<usize> {
        self.max_concurrency
    }

    async fn generate(&self, request: &GenRequest) -> Result<EventStream, BackendError> {
        let attempt = {
            let mut map = self.attempts.lock().map_err(|_| BackendError::Engine("poisoned".into()))?;
            let n = map.entry(prompt_key(request)).or_insert(0);
            *n += 1;
            *n
        };
        let steps = match (self.responder)(request, attempt) {
            Reply::Fail(e) => return Err(e),
            Reply::Stream(steps) => steps,
        };
        let stream = futures_util::stream::unfold(steps.into_iter(), |mut steps| async move {
            loop {
                let item = match steps.next()? {
                    Step::Delay(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    Step::Content { text, token_ids } => {
                        Ok(GenEvent::Content { at: tokio::time::Instant::now().into_std(), text, token_ids, logprobs: Vec::new() })
                    }
                    Step::Reasoning(text) => {
                        Ok(GenEvent::Reasoning { at: tokio::time::Instant::now().into_std(), text })
                    }
                    Step::Finish { reason, usage } => {
                        Ok(GenEvent::finished(tokio::time::Instant::now().into_std(), reason, usage))
                    }
                    Step::Error(e) => Err(e),
                };
                return Some((item, steps));
            }
        });
        Ok(Box::pin(stream))
    }
}
