//! `ttc serve`: the OpenAI-compatible API over the embedded engine (`ttc_server`).

use crate::exit::Outcome;
use crate::http_args::HttpArgs;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use ttc_engine::WeightFormat;
use ttc_server::ServeOptions;

/// Serve the embedded engine over an OpenAI-compatible API.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A llama-architecture GGUF file; default: SmolLM2-135M-Instruct from the cache (`ttc model pull`).
    #[arg(long, env = "TTC_MODEL")]
    pub model: Option<PathBuf>,
    /// Weight format at load: auto (the fastest for this CPU: the file's 4-bit blocks through the AVX-512 or AVX2
    /// tiles), q4_1, q8_0, f32, or native (the file's types with llama.cpp's arithmetic); see docs/engine.md.
    #[arg(long, default_value = "auto", value_parser = parse_weights)]
    pub weights: WeightFormat,
    /// Policies file: each policy is served as the model `<model-id>:<policy>`.
    #[arg(long, default_value = ttc_server::DEFAULT_POLICIES)]
    pub policies: PathBuf,
    /// Address to listen on. 0.0.0.0 exposes the server to the network (use --api-key then).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer <KEY>` on /v1 routes. An empty key is refused (exit 2).
    #[arg(long, env = "TTC_SERVE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The base model id clients send (`<id>` = baseline, `<id>:<policy>` = a policy).
    #[arg(long, default_value = ttc_server::DEFAULT_MODEL_ID)]
    pub model_id: String,
    /// `max_tokens` for requests that do not set it (cut to what the context leaves).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub default_max_tokens: u64,
    /// Requests that may wait for the engine while one generates; more are answered 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = ttc_server::DEFAULT_MAX_QUEUE)]
    pub max_queue: usize,
    /// Prompt tokens per prefill forward. A long prompt is prefilled in chunks of this size, and a client that
    /// disconnects frees the engine within one chunk.
    #[arg(long, value_name = "TOKENS", default_value_t = ttc_engine::engine::DEFAULT_PREFILL_CHUNK as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub prefill_chunk: u64,
    /// MiB of KV entries of prompt prefixes kept for reuse across requests (a repeated system prompt is not
    /// prefilled again; `usage.prompt_tokens_details.cached_tokens` says how many tokens were reused). 0 = off.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub prefix_cache_mb: u64,
    /// On SIGTERM or Ctrl-C, seconds open requests get to finish before their connections are closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = ttc_http::parse_secs)]
    pub shutdown_timeout: Duration,
    /// Live A/B test: requests to the base model id (chat completions and completions) are assigned an arm by
    /// these weights (sum 1), e.g. `baseline=0.5,speculative_decoding=0.5`; arms are policies of --policies
    /// (routers too). Every request, served or refused, is then stored in --results (docs/serve.md "A/B tests").
    #[arg(long, value_name = "ARM=WEIGHT,...")]
    pub ab: Option<String>,
    /// Request header whose value (a user or session id) makes the A/B assignment sticky; without it, or
    /// with a malformed value, a request is assigned at random.
    #[arg(long, value_name = "NAME", default_value = ttc_server::ab::DEFAULT_KEY_HEADER)]
    pub ab_key_header: String,
    /// Store every request (chat completions, completions, refusals) as a record in --results, also without --ab.
    #[arg(long)]
    pub record: bool,
    /// Results store for served requests' records (with --ab or --record).
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Also store what the model answered (the `prediction` column, logprobs) and refusals' full error messages.
    /// Off by default: records then hold counts, timings, the arm and an error's type, nothing about a request's
    /// content.
    #[arg(long)]
    pub store_content: bool,
    #[command(flatten)]
    pub http: HttpArgs,
}

fn parse_weights(s: &str) -> Result<WeightFormat, String> {
    s.parse()
}

impl ServeArgs {
    pub fn options(self) -> ServeOptions {
        ServeOptions {
            model: self.model,
            weights: self.weights,
            policies: self.policies,
            host: self.host,
            port: self.port,
            api_key: self.api_key,
            model_id: self.model_id,
            default_max_tokens: self.default_max_tokens,
            max_queue: self.max_queue,
            prefill_chunk: self.prefill_chunk,
            prefix_cache_mb: self.prefix_cache_mb,
            shutdown_timeout: self.shutdown_timeout,
            ab: self.ab,
            ab_key_header: self.ab_key_header,
            record: self.record,
            results: self.results,
            store_content: self.store_content,
            http: self.http.options(),
        }
    }
}

pub fn run(a: ServeArgs) -> anyhow::Result<Outcome> {
    ttc_server::run(a.options())?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;
    use ttc_http::HttpOptions;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        parse_args(args)
    }

    #[test]
    fn defaults_bind_localhost_8080_and_match_the_library() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.model_id.as_str()), ("127.0.0.1", 8080, "smollm2-135m"));
        assert_eq!(a.policies, PathBuf::from("configs/policies.yaml"));
        assert_eq!(a.default_max_tokens, 256);
        assert_eq!((a.max_queue, a.shutdown_timeout), (64, Duration::from_secs(30)));
        assert_eq!(a.http.options(), HttpOptions::default());
        // The library's defaults are the flags' (TTC_MODEL and TTC_SERVE_API_KEY may be set where tests run).
        assert_eq!(ServeOptions { model: None, api_key: None, ..a.options() }, ServeOptions::default());
        let a = parse(&["--max-queue", "0", "--shutdown-timeout", "0.5", "--header-timeout", "2", "--max-connections", "8"]).unwrap();
        assert_eq!((a.max_queue, a.shutdown_timeout), (0, Duration::from_millis(500)));
        assert_eq!((a.http.header_timeout, a.http.max_connections), (Duration::from_secs(2), 8));
        for bad in [&["--default-max-tokens", "0"][..], &["--shutdown-timeout", "-1"], &["--header-timeout", "0"], &["--max-connections", "0"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let a = parse(&["--host", "0.0.0.0", "--port", "0", "--api-key", "k", "--weights", "f32"]).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.api_key.as_deref(), a.weights), ("0.0.0.0", 0, Some("k"), WeightFormat::F32));
        assert!(parse(&["--weights", "int3"]).is_err());
        assert!(parse(&["--port", "70000"]).is_err());
    }
}
