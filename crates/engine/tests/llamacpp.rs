//! Step-0 log-probabilities against llama.cpp on the same GGUF (vectors from `tools/llamacpp_logprobs.py`: 40
//! prompts, llama.cpp built from source, f32 KV cache, flash attention off, no weight repacking).
//!
//! What holds (docs/engine.md, "Logits against llama.cpp"):
//! - On the weights dequantized to F32, where neither engine quantizes anything, we are within 0.0002 nats of
//!   llama.cpp: the model's structure (RoPE, norms, attention, tied output) is the same. The test holds 0.02.
//! - On the file as shipped, both engines quantize activations to 8 bits per 32-value block (Q8_1 for Q4_1 weights,
//!   Q8_0 for the output matrix, with llama.cpp's rounding). That forward is chaotic under rounding: one ulp changed
//!   in our RMSNorm moved our own log-probabilities by up to 0.37 nats, and llama.cpp's AVX2 and AVX-512 builds of the
//!   same source disagree by up to 0.42 nats (mean 0.073) on the same file and machine. Issue 17's 0.02 nats would
//!   take llama.cpp's floats bit for bit, for one build. What the tests hold instead: quantization costs us no more
//!   than it costs llama.cpp (distance from the F32 model), and we are as far from llama.cpp as its builds are from
//!   each other, within 1.5x.

mod common;
use ttc_engine::WeightFormat;

struct Case {
    text: String,
    ids: Vec<u32>,
    /// llama.cpp's top-10 (token id, log-probability) at the first generated position.
    top: Vec<(u32, f64)>,
}

/// llama.cpp on the file as shipped (Q4_1 layers, Q8_0 output matrix).
const ON_THE_FILE: &str = include_str!("data/llamacpp_step0.json");
/// llama.cpp on the same weights dequantized to F32 (`llama-quantize --allow-requantize FILE OUT F32`): no
/// quantization anywhere, so only the model's structure and f32 rounding remain.
const ON_F32: &str = include_str!("data/llamacpp_step0_f32.json");
/// The AVX2 build of the same llama.cpp source (`-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
/// -DGGML_AVX512=OFF`), same file, same machine, same server flags as `ON_THE_FILE`'s native (AVX-512) build.
const ON_THE_FILE_AVX2: &str = include_str!("data/llamacpp_step0_avx2.json");

fn cases(vectors: &str) -> Vec<Case> {
    let v: serde_json::Value = serde_json::from_str(vectors).unwrap();
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Case {
            text: p["text"].as_str().unwrap().to_string(),
            ids: p["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect(),
            top: p["top"].as_array().unwrap().iter().map(|t| (t[0].as_u64().unwrap() as u32, t[1].as_f64().unwrap())).collect(),
        })
        .collect()
}

/// The largest |ours − llama.cpp| over every prompt's listed tokens.
fn max_deviation(format: WeightFormat, vectors: &str) -> f64 {
    let engine = common::engine(format);
    let mut worst: f64 = 0.0;
    let cases = cases(vectors);
    for case in &cases {
        assert_eq!(engine.tokenizer.encode(&case.text).unwrap(), case.ids, "tokens of {:?}", case.text);
        let ours = common::step0_logprobs(engine, &case.ids);
        let dev = case.top.iter().map(|&(id, lp)| (ours[id as usize] - lp).abs()).fold(0.0, f64::max);
        let top1 = ttc_engine::argmax(&ours.iter().map(|&v| v as f32).collect::<Vec<_>>());
        eprintln!("{format:<6} {:<45} max |Δ| {dev:.4} nats, top-1 {}", format!("{:?}", case.text), if top1 == case.top[0].0 { "same" } else { "DIFFERENT" });
        worst = worst.max(dev);
    }
    eprintln!("{format}: max deviation {worst:.4} nats over {} prompts", cases.len());
    worst
}

#[test]
fn f32_weights_match_llamacpp_on_the_dequantized_file_within_0_02_nats() {
    let worst = max_deviation(WeightFormat::F32, ON_F32);
    assert!(worst <= 0.02, "f32: {worst} nats from llama.cpp on F32 weights");
}

/// For each prompt, the tokens of the F32 model's top 10 that both llama.cpp builds list too, so that every engine is
/// scored on the same tokens.
fn shared_tokens(f32_model: &[Case], builds: &[Vec<Case>]) -> Vec<Vec<u32>> {
    f32_model
        .iter()
        .enumerate()
        .map(|(i, c)| c.top.iter().map(|t| t.0).filter(|id| builds.iter().all(|b| b[i].top.iter().any(|t| t.0 == *id))).collect())
        .collect()
}

/// (mean, max) of |a − b| over `tokens`, with `a(prompt, token)` and `b(prompt, token)` two engines'
/// log-probabilities.
fn gap(tokens: &[Vec<u32>], a: impl Fn(usize, u32) -> f64, b: impl Fn(usize, u32) -> f64) -> (f64, f64) {
    let gaps: Vec<f64> = tokens.iter().enumerate().flat_map(|(i, ids)| ids.iter().map(move |&id| (i, id))).map(|(i, id)| (a(i, id) - b(i, id)).abs()).collect();
    (gaps.iter().sum::<f64>() / gaps.len() as f64, gaps.iter().cloned().fold(0.0, f64::max))
}

/// Our step-0 log-probabilities, one vector per prompt.
fn ours(format: WeightFormat, prompts: &[Case]) -> Vec<Vec<f64>> {
    prompts.iter().map(|c| common::step0_logprobs(common::engine(format), &c.ids)).collect()
}

/// llama.cpp's log-probability of a token it listed.
fn listed(case: &Case, id: u32) -> f64 {
    case.top.iter().find(|t| t.0 == id).expect("a shared token").1
}

/// What quantization costs, measured against the unquantized model (our `f32`, within 0.0002 nats of llama.cpp's F32
/// file): the mean |Δ log p| over the F32 model's top tokens. Our `native` and `auto` must lose no more than llama.cpp
/// does on the same file, within 10% (measured on 40 prompts: ours 0.085 nats, llama.cpp's builds 0.088 and less).
/// A rounding rule or an activation format other than llama.cpp's would fail: re-quantizing to Q8_0 costs 0.104.
#[test]
fn quantized_weights_are_as_close_to_the_f32_model_as_llamacpp_is() {
    let builds = [cases(ON_THE_FILE), cases(ON_THE_FILE_AVX2)];
    let f32_model = cases(ON_F32);
    let tokens = shared_tokens(&f32_model, &builds);
    let reference = ours(WeightFormat::F32, &f32_model);
    let llamacpp = builds.iter().map(|b| gap(&tokens, |i, id| listed(&b[i], id), |i, id| reference[i][id as usize]).0).fold(0.0, f64::max);
    eprintln!("llama.cpp (the farther build): mean {llamacpp:.4} nats from the f32 model");
    for format in [WeightFormat::Native, WeightFormat::Auto, WeightFormat::Q8_0] {
        let lp = ours(format, &f32_model);
        let (mean, max) = gap(&tokens, |i, id| lp[i][id as usize], |i, id| reference[i][id as usize]);
        eprintln!("{format}: mean {mean:.4}, max {max:.4} nats from the f32 model");
        if format != WeightFormat::Q8_0 {
            assert!(mean <= 1.1 * llamacpp, "{format}: mean {mean} nats from the f32 model, llama.cpp {llamacpp}");
        }
    }
}

/// llama.cpp's two builds agree with each other more closely than either agrees with us (they share the norm, RoPE
/// and softmax code; only their SIMD dot products differ), but not by much: on 40 prompts we are 0.093 nats (mean)
/// from the AVX-512 build and 0.094 from the AVX2 build, the builds 0.073 from each other. The test allows 1.5x.
#[test]
fn quantized_weights_are_about_as_far_from_llamacpp_as_its_two_builds_are_from_each_other() {
    let builds = [cases(ON_THE_FILE), cases(ON_THE_FILE_AVX2)];
    let tokens = shared_tokens(&cases(ON_F32), &builds);
    let (apart, apart_max) = gap(&tokens, |i, id| listed(&builds[0][i], id), |i, id| listed(&builds[1][i], id));
    eprintln!("llama.cpp AVX-512 vs AVX2: mean {apart:.4}, max {apart_max:.4} nats");
    for format in [WeightFormat::Native, WeightFormat::Auto] {
        let lp = ours(format, &builds[0]);
        for (name, build) in ["AVX-512", "AVX2"].iter().zip(&builds) {
            let (mean, max) = gap(&tokens, |i, id| lp[i][id as usize], |i, id| listed(&build[i], id));
            eprintln!("{format} vs llama.cpp {name}: mean {mean:.4}, max {max:.4} nats");
            assert!(mean <= 1.5 * apart, "{format}: mean {mean} nats from llama.cpp's {name} build; its builds are {apart} apart");
        }
    }
}
