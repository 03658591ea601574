//! The engine: model + tokenizer + chat template loaded from one GGUF file, and plain generation.

use crate::model::chat::{ChatMessage, ChatTemplate};
use crate::error::{EngineError, Result};
use crate::model::gguf::GgufFile;
use crate::model::kv::KvCache;
use crate::model::{logits_rows, LlamaModel, LogitsMode};
use crate::model::tokenizer::{GgufTokenizer, StreamDecoder};
use crate::model::weights::WeightFormat;
use crate::model::prefix_cache::{PrefixCache, PrefixStats, DEFAULT_BLOCK_TOKENS};
use crate::model::exit_heads::{ExitHeadKind, ExitHeads};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use ttc_types::{FinishReason, GenEvent, Usage};

pub struct Engine {
    pub model: LlamaModel,
    pub tokenizer: GgufTokenizer,
    pub chat: ChatTemplate,
    pub model_path: PathBuf,
    /// `general.name` from the file, else the file stem.
    pub model_name: String,
    /// Most prompt tokens per prefill forward: a long prompt is prefilled in chunks of this size, and a cancelled
    /// request stops between chunks (rows are computed independently, so chunking does not change the logits).
    pub prefill_chunk: usize,
    /// KV entries of prompt prefixes seen before, reused across requests (off unless enabled; a load phase may
    /// switch it on for the rest of the engine's life, [`Engine::start_prefix_cache`]).
    prefix_cache: std::sync::OnceLock<Mutex<PrefixCache>>,
    /// Calibrated exit heads (`exit_heads.rs`), read from beside the model the first time a policy needs them;
    /// a missing or foreign file is remembered as its error message.
    exit_heads: std::sync::OnceLock<std::result::Result<std::sync::Arc<ExitHeads>, String>>,
}

/// A prefix cache that several calls share (see [`Engine::with_thread_prefix_cache`]).
pub type SharedPrefixCache = Arc<Mutex<PrefixCache>>;

thread_local! {
    /// The prefix cache this thread's requests use instead of the engine's, while
    /// [`Engine::with_thread_prefix_cache`] runs.
    static THREAD_PREFIX_CACHE: std::cell::RefCell<Option<SharedPrefixCache>> = const { std::cell::RefCell::new(None) };
}

fn lock(m: &Mutex<PrefixCache>) -> std::sync::MutexGuard<'_, PrefixCache> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Default [`Engine::prefill_chunk`]: big enough that the weight matmuls stay efficient (prefill speed is flat
/// from about 128 rows up, docs/engine.md), small enough that a cancel lands within about a second on 2 cores.
pub const DEFAULT_PREFILL_CHUNK: usize = 512;

impl Engine {
    pub fn load(path: &Path, format: WeightFormat) -> Result<Engine> {
        pin_thread_count();
        let mut file = GgufFile::open(path)?;
        // Check the architecture before anything else so a wrong model fails with the right message.
        file.llama_config()?;
        let tokenizer = GgufTokenizer::from_gguf(&file)?;
        let token_text = |id: Option<u32>| {
            id.map(|i| String::from_utf8_lossy(tokenizer.token_bytes(i)).into_owned()).unwrap_or_default()
        };
        let chat = ChatTemplate::new(
            file.get_str("tokenizer.chat_template"),
            token_text(tokenizer.bos_id),
            token_text(tokenizer.eos_id),
        )?;
        let model_name = file
            .get_str("general.name")
            .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        let model = LlamaModel::load(&mut file, format)?;
        Ok(Engine { model, tokenizer, chat, model_path: path.to_path_buf(), model_name, prefill_chunk: DEFAULT_PREFILL_CHUNK, prefix_cache: Default::default(), exit_heads: Default::default() })
    }

    /// Prompt token ids: the chat template applied to `messages`, or `raw` text used as-is.
    pub fn prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let text = self.chat.render(messages, true)?;
        self.tokenizer.encode(&text)
    }

    pub fn context_length(&self) -> usize {
        self.model.cfg.context_length
    }

    /// Bytes of KV cache one token takes (every layer, keys and values, f32).
    pub fn kv_bytes_per_token(&self) -> usize {
        let c = &self.model.cfg;
        c.n_layer * c.n_head_kv * c.head_dim * 2 * 4
    }

    /// Reuse the KV entries of prompt prefixes across requests, keeping at most `budget_bytes` of them
    /// (`prefix_cache.rs`). A budget below one block is an invalid request.
    pub fn enable_prefix_cache(&mut self, budget_bytes: usize) -> Result<()> {
        let pc = PrefixCache::new(budget_bytes, DEFAULT_BLOCK_TOKENS, self.kv_bytes_per_token())?;
        self.prefix_cache = std::sync::OnceLock::from(Mutex::new(pc));
        Ok(())
    }

    /// Switch the prefix cache on while the engine is shared (a capacity search after a run's cold plan), unless
    /// it is on already: true when this call switched it on. A budget below one block is an invalid request.
    pub fn start_prefix_cache(&self, budget_bytes: usize) -> Result<bool> {
        let pc = PrefixCache::new(budget_bytes, DEFAULT_BLOCK_TOKENS, self.kv_bytes_per_token())?;
        Ok(self.prefix_cache.set(Mutex::new(pc)).is_ok())
    }

    /// The prefix cache's counters, if it is on.
    pub fn prefix_stats(&self) -> Option<PrefixStats> {
        self.prefix_cache.get().map(|m| lock(m).stats())
    }

    /// Load the longest cached prefix of `prompt` into the empty `cache`; returns the tokens it covers.
    pub fn load_prefix(&self, prompt: &[u32], cache: &mut KvCache) -> usize {
        // Look up under the lock, copy outside it: blocks are shared and immutable.
        let blocks = match THREAD_PREFIX_CACHE.with(|t| t.borrow().clone()) {
            Some(local) => lock(&local).lookup(prompt),
            None => match self.prefix_cache.get() {
                Some(m) => lock(m).lookup(prompt),
                None => return 0,
            },
        };
        crate::model::prefix_cache::load(&blocks, cache)
    }

    /// Offer a freshly prefilled prompt's blocks to the prefix cache.
    pub fn store_prefix(&self, prompt: &[u32], cache: &KvCache) {
        match THREAD_PREFIX_CACHE.with(|t| t.borrow().clone()) {
            Some(local) => lock(&local).insert(prompt, cache),
            None => {
                if let Some(m) = self.prefix_cache.get() {
                    lock(m).insert(prompt, cache);
                }
            }
        }
    }

    /// A prefix cache of its own for [`Engine::with_thread_prefix_cache`], holding at most `budget_bytes`.
    pub fn new_prefix_cache(&self, budget_bytes: usize) -> Result<SharedPrefixCache> {
        Ok(Arc::new(Mutex::new(PrefixCache::new(budget_bytes, DEFAULT_BLOCK_TOKENS, self.kv_bytes_per_token())?)))
    }

    /// Run `f` with `cache` as the prefix cache of every request this thread makes, instead of the engine's own
    /// (or none). The fidelity replay uses it: the policies replayed on one prompt share its KV, while requests
    /// on other threads (the measured ones, a server's) keep the engine's setting and stay cold.
    pub fn with_thread_prefix_cache<T>(&self, cache: &SharedPrefixCache, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<SharedPrefixCache>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                THREAD_PREFIX_CACHE.with(|t| *t.borrow_mut() = previous);
            }
        }
        let _restore = Restore(THREAD_PREFIX_CACHE.with(|t| t.borrow_mut().replace(cache.clone())));
        f()
    }

    /// Where this model's calibrated exit heads live (`ttc calibrate` writes them there).
    pub fn exit_heads_path(&self) -> PathBuf {
        crate::model::exit_heads::heads_path(&self.model_path)
    }

    /// Use `heads` from now on (after `ttc calibrate` fitted them in this process).
    pub fn install_exit_heads(&mut self, heads: ExitHeads) {
        self.exit_heads = std::sync::OnceLock::from(Ok(std::sync::Arc::new(heads)));
    }

    /// The calibrated exit heads beside the model, loaded (and checked against the model's SHA-256) on first use.
    pub fn exit_heads(&self) -> Result<std::sync::Arc<ExitHeads>> {
        let path = self.exit_heads_path();
        let loaded = self.exit_heads.get_or_init(|| {
            if !path.exists() {
                return Err("no heads file for this model".to_string());
            }
            let load = || -> Result<ExitHeads> {
                let sha = crate::model::exit_heads::file_sha256(&self.model_path)?;
                ExitHeads::load(&path, &sha, self.model.cfg.n_embd)
            };
            match load() {
                Ok(h) => Ok(std::sync::Arc::new(h)),
                Err(EngineError::ExitHeads { reason, .. }) => Err(reason),
                Err(e) => Err(e.to_string()),
            }
        });
        loaded.clone().map_err(|reason| EngineError::ExitHeads { path, reason })
    }

    /// Logits of hidden rows `h` taken after `layer` blocks, read through `kind` of head. The last layer always
    /// reads through the final norm (the calibrated head there is the identity).
    pub fn exit_logits(&self, kind: ExitHeadKind, layer: usize, h: &candle_core::Tensor) -> Result<candle_core::Tensor> {
        if kind == ExitHeadKind::LogitLens || layer >= self.model.cfg.n_layer {
            return self.model.logits(h);
        }
        let heads = self.exit_heads()?;
        self.model.head(&heads.apply(layer, h)?)
    }

    /// Reject a request that cannot fit before doing any work.
    pub fn check_fits(&self, prompt_tokens: usize, max_tokens: usize) -> Result<()> {
        if prompt_tokens == 0 {
            return Err(EngineError::InvalidRequest("empty prompt".into()));
        }
        if prompt_tokens + max_tokens > self.context_length() {
            return Err(EngineError::ContextOverflow { prompt_tokens, max_tokens, context: self.context_length() });
        }
        Ok(())
    }
}

/// What to generate: token ids of the prompt plus stopping rules.
#[derive(Debug, Clone, Default)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// Polled between prefill chunks (and by the scheduler before every step); the decoding loops also stop
    /// when their event callback returns false.
    pub cancel: crate::model::cancel::Cancel,
    /// The request's suite and task, which a router's rules may test.
    pub tags: crate::policy::RouteTags,
}

/// The outcome of one generation.
#[derive(Debug, Clone)]
pub struct GenOutput {
    pub token_ids: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// Seconds from start to the first token.
    pub ttft_s: f64,
    /// Seconds spent in the prompt forward.
    pub prefill_s: f64,
    /// Seconds from the first token to the last.
    pub decode_s: f64,
}

impl GenOutput {
    pub fn prefill_tok_s(&self) -> f64 {
        self.usage.prompt_tokens as f64 / self.prefill_s.max(1e-9)
    }
    /// Decode speed over the tokens after the first (the first comes from the prefill).
    pub fn decode_tok_s(&self) -> f64 {
        let n = self.token_ids.len().saturating_sub(1);
        if n == 0 || self.decode_s <= 0.0 {
            0.0
        } else {
            n as f64 / self.decode_s
        }
    }
}

/// Tracks emitted text, stop strings and events for one generation; every decoding strategy emits through it so
/// they all stop, stream and count the same way.
pub struct Emitter<'a> {
    tok: &'a GgufTokenizer,
    decoder: StreamDecoder,
    stop: &'a [String],
    max_tokens: usize,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub started: Instant,
    pub first_token_at: Option<Instant>,
    pub last_token_at: Option<Instant>,
    on_event: &'a mut dyn FnMut(GenEvent) -> bool,
    pub finish: Option<FinishReason>,
    /// Prompt tokens served from the prefix cache (reported in `Usage`).
    pub cached_prompt_tokens: usize,
}

impl<'a> Emitter<'a> {
    pub fn new(
        tok: &'a GgufTokenizer,
        req: &'a GenRequest,
        started: Instant,
        on_event: &'a mut dyn FnMut(GenEvent) -> bool,
    ) -> Self {
        Emitter {
            tok,
            decoder: StreamDecoder::default(),
            stop: &req.stop,
            max_tokens: req.max_tokens,
            token_ids: Vec::new(),
            text: String::new(),
            started,
            first_token_at: None,
            last_token_at: None,
            on_event,
            finish: None,
            cached_prompt_tokens: 0,
        }
    }

    /// Emit one generated token. Returns false once generation must stop (`finish` then says why).
    pub fn push(&mut self, id: u32) -> bool {
        if self.finish.is_some() {
            return false;
        }
        let now = Instant::now();
        if self.tok.stop_ids.contains(&id) {
            self.finish = Some(FinishReason::Stop);
            return false;
        }
        self.first_token_at.get_or_insert(now);
        self.last_token_at = Some(now);
        self.token_ids.push(id);
        let mut piece = self.decoder.push(self.tok, id);
        let mut hit_stop = false;
        if !self.stop.is_empty() && !piece.is_empty() {
            let before = self.text.len();
            self.text.push_str(&piece);
            // Search only where a stop string could newly end.
            let window_start = before.saturating_sub(self.stop.iter().map(|s| s.len()).max().unwrap_or(0));
            let window_start = (0..=window_start).rev().find(|&i| self.text.is_char_boundary(i)).unwrap_or(0);
            if let Some(pos) = self.stop.iter().filter_map(|s| self.text[window_start..].find(s.as_str())).min() {
                let cut = window_start + pos;
                piece = if cut >= before { self.text[before..cut].to_string() } else { String::new() };
                self.text.truncate(cut.max(before).min(self.text.len()));
                if cut < before {
                    self.text.truncate(cut);
                }
                hit_stop = true;
            }
        } else {
            self.text.push_str(&piece);
        }
        let keep_going = (self.on_event)(GenEvent::Content { at: now, text: piece, token_ids: vec![id], logprobs: Vec::new() });
        if hit_stop {
            self.finish = Some(FinishReason::StopString);
        } else if !keep_going {
            self.finish = Some(FinishReason::Cancelled);
        } else if self.token_ids.len() >= self.max_tokens {
            self.finish = Some(FinishReason::Length);
        }
        self.finish.is_none()
    }

    pub fn done(&self) -> bool {
        self.finish.is_some()
    }

    /// Close the stream: flush held-back bytes and send the finish event.
    pub fn finish(mut self, prompt_tokens: usize, prefill_s: f64) -> GenOutput {
        let reason = self.finish.unwrap_or(FinishReason::Length);
        if reason != FinishReason::StopString {
            let tail = self.decoder.finish();
            if !tail.is_empty() {
                self.text.push_str(&tail);
            }
        }
        let usage = Usage {
            prompt_tokens: prompt_tokens as u32,
            completion_tokens: self.token_ids.len() as u32,
            cached_prompt_tokens: self.cached_prompt_tokens as u32,
        };
        let now = Instant::now();
        (self.on_event)(GenEvent::Finished { at: now, reason, usage: Some(usage) });
        let ttft_s = self.first_token_at.map(|t| (t - self.started).as_secs_f64()).unwrap_or(0.0);
        let decode_s = match (self.first_token_at, self.last_token_at) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        GenOutput { token_ids: self.token_ids, text: self.text, finish_reason: reason, usage, ttft_s, prefill_s, decode_s }
    }
}

/// A prompt prefilled into a fresh cache: where every full-model decoding loop starts.
pub(crate) struct Prefill {
    pub cache: KvCache,
    /// When the request started (the Emitter's time origin).
    pub started: Instant,
    pub prefill_s: f64,
    /// Logits of the prompt's last position.
    pub logits: Vec<f32>,
    /// Prompt tokens whose entries came from the prefix cache.
    pub cached_tokens: usize,
}

impl Engine {
    /// Check that the request fits the context, then prefill its prompt into a fresh cache, in chunks of
    /// `prefill_chunk` tokens with a cancellation check before each (`EngineError::Cancelled`).
    pub(crate) fn prefill(&self, req: &GenRequest) -> Result<Prefill> {
        self.check_fits(req.prompt.len(), req.max_tokens)?;
        let started = Instant::now();
        let mut cache = self.model.new_cache()?;
        let cached_tokens = self.load_prefix(&req.prompt, &mut cache);
        let logits = self.prefill_into(&req.prompt[cached_tokens..], &mut cache, &req.cancel)?;
        self.store_prefix(&req.prompt, &cache);
        let prefill_s = started.elapsed().as_secs_f64();
        Ok(Prefill { cache, started, prefill_s, logits, cached_tokens })
    }

    /// Feed `tokens` into `cache` in chunks of `prefill_chunk` and return the last position's logits.
    pub fn prefill_into(&self, tokens: &[u32], cache: &mut KvCache, cancel: &crate::model::cancel::Cancel) -> Result<Vec<f32>> {
        self.model.prefill_chunked(tokens, cache, self.prefill_chunk, cancel)
    }

    /// Plain autoregressive generation: prefill, then one forward per token. `choose` picks the next token from a
    /// logits row (greedy or a sampler); `on_event` receives the stream and returns false to cancel.
    pub fn generate_plain(
        &self,
        req: &GenRequest,
        choose: &mut dyn FnMut(&[f32]) -> u32,
        on_event: &mut dyn FnMut(GenEvent) -> bool,
    ) -> Result<GenOutput> {
        let Prefill { mut cache, started, prefill_s, logits, cached_tokens } = self.prefill(req)?;
        let mut em = Emitter::new(&self.tokenizer, req, started, on_event);
        em.cached_prompt_tokens = cached_tokens;
        let mut next = choose(&logits);
        while req.max_tokens > 0 && em.push(next) {
            let logits = self.model.forward(&[next], &mut cache, LogitsMode::Last)?;
            next = choose(&logits_rows(&logits)?[0]);
        }
        Ok(em.finish(req.prompt.len(), prefill_s))
    }
}

/// candle asks for its thread count on every f32 matmul, and without `RAYON_NUM_THREADS` it recounts physical cores by
/// parsing /proc/cpuinfo each time: 11% of a speculative-decoding run was spent in the kernel formatting that file.
/// Computing the count once and pinning it in the environment makes the lookup an env read.
fn pin_thread_count() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let n = candle_core::utils::get_num_threads();
            // Rust's env functions take a process-wide lock; this runs once, before any inference.
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
    });
}
