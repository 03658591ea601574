//! Our Llama forward against candle-transformers' `quantized_llama` (the reference implementation), greedy
//! determinism, and the KV cache's exactness (chunked prefill, rollback).

mod common;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use ttc_engine::{argmax, ChatMessage, Engine, GenRequest, LogitsMode, WeightFormat};

const PROMPTS: &[&str] = &[
    "Summarize: The customer Jane Doe (account ACC-2231) reported that order ORD-7781 arrived late and asked for a refund.",
    "Write a short workflow to book a flight and a hotel for a conference in Berlin.",
    "What is the capital of Japan? Explain briefly.",
];

fn greedy(engine: &Engine, prompt: &[u32], n: usize) -> Vec<u32> {
    let req = GenRequest { prompt: prompt.to_vec(), max_tokens: n, stop: vec![], ..Default::default() };
    let mut choose = |l: &[f32]| argmax(l);
    engine.generate_plain(&req, &mut choose, &mut |_| true).unwrap().token_ids
}

fn prompt_ids(engine: &Engine, text: &str) -> Vec<u32> {
    engine.prompt_tokens(&[ChatMessage::new("user", text)]).unwrap()
}

/// Teacher-force `prompt + generated` through the reference and count positions where its greedy token equals ours.
fn reference_agreement(prompt: &[u32], generated: &[u32]) -> (usize, usize) {
    let path = common::model_path();
    let mut file = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut reference = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    let input = Tensor::new(prompt, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let mut logits = reference.forward(&input, 0).unwrap();
    let mut agree = 0;
    for (i, &tok) in generated.iter().enumerate() {
        let row: Vec<f32> = logits.squeeze(0).unwrap().to_vec1().unwrap();
        if argmax(&row) == tok {
            agree += 1;
        }
        let input = Tensor::new(&[tok], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        logits = reference.forward(&input, prompt.len() + i).unwrap();
    }
    (agree, generated.len())
}

/// The formats whose forwards are row-exact here: Q8_0 tiles (or candle's Q8_0), and the Q4_1 tiles where the CPU has
/// them.
fn exact_formats() -> Vec<WeightFormat> {
    let mut f = vec![WeightFormat::Q8_0];
    if ttc_engine::q8_tiles::supported() {
        f.push(WeightFormat::Q4_1);
    }
    f
}

#[test]
fn greedy_agrees_with_candle_quantized_llama() {
    for format in exact_formats() {
        greedy_agrees_with_candle_quantized_llama_in(format);
    }
}

fn greedy_agrees_with_candle_quantized_llama_in(format: WeightFormat) {
    let engine = common::engine(format);
    for text in PROMPTS {
        let prompt = prompt_ids(engine, text);
        let req = GenRequest { prompt: prompt.clone(), max_tokens: 64, stop: vec![], ..Default::default() };
        // Ignore EOS so every prompt gives 64 positions to compare.
        let mut cache = engine.model.new_cache().unwrap();
        let mut logits = engine.model.forward(&req.prompt, &mut cache, LogitsMode::Last).unwrap();
        let mut generated = Vec::new();
        for _ in 0..64 {
            let t = argmax(&logits.to_vec2::<f32>().unwrap()[0]);
            generated.push(t);
            logits = engine.model.forward(&[t], &mut cache, LogitsMode::Last).unwrap();
        }
        let (agree, n) = reference_agreement(&prompt, &generated);
        let rate = agree as f64 / n as f64;
        eprintln!("{format} {text:.40}...: {agree}/{n} greedy positions agree with quantized_llama");
        assert!(rate >= 0.95, "{format}: agreement {rate} < 0.95 for {text:?}");
    }
}

#[test]
fn greedy_generation_is_deterministic() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[1]);
    let a = greedy(engine, &prompt, 32);
    let b = greedy(engine, &prompt, 32);
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn all_position_logits_equal_incremental_logits() {
    // Verification needs logits for every position of a multi-token forward; they must equal what one-token
    // steps give (attention runs row by row, and Q8_0 matmuls are row-independent).
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[0]);
    let cont = greedy(engine, &prompt, 6);
    let mut c1 = engine.model.new_cache().unwrap();
    engine.model.forward(&prompt, &mut c1, LogitsMode::None).unwrap();
    let all = engine.model.forward(&cont, &mut c1, LogitsMode::All).unwrap().to_vec2::<f32>().unwrap();
    let mut c2 = engine.model.new_cache().unwrap();
    engine.model.forward(&prompt, &mut c2, LogitsMode::None).unwrap();
    for (i, &t) in cont.iter().enumerate() {
        let one = engine.model.forward(&[t], &mut c2, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(argmax(&all[i]), argmax(&one[0]), "position {i}");
        // Bit-identical, not merely close: greedy speculative decoding relies on it.
        assert!(all[i] == one[0], "position {i}: logits of the 6-token forward differ from one-token steps");
    }
}

#[test]
fn a_whole_prompt_in_one_forward_equals_token_by_token_steps() {
    // Q8_0 tiles and the row-by-row attention make every row independent of the forward it sits in, prefill
    // included: so prefill, batches and verification all reproduce one-token decoding exactly. (Q8_0 rather than
    // auto: on CPUs without AVX512-VNNI, auto sends forwards of 16+ rows to dense f32, which is not row-exact.)
    for format in exact_formats() {
        let engine = common::engine(format);
        let prompt = prompt_ids(engine, PROMPTS[1]);
        assert!(prompt.len() > 16, "the prompt must be longer than any short-forward special case");
        let mut c1 = engine.model.new_cache().unwrap();
        let all = engine.model.forward(&prompt, &mut c1, LogitsMode::All).unwrap().to_vec2::<f32>().unwrap();
        let mut c2 = engine.model.new_cache().unwrap();
        for (i, &t) in prompt.iter().enumerate() {
            let one = engine.model.forward(&[t], &mut c2, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap();
            assert!(all[i] == one[0], "{format} position {i}: prefill logits differ from one-token steps");
        }
    }
}


#[test]
fn q4_1_tiles_stay_as_close_to_the_full_precision_model_as_q8_0() {
    // The Q4_1 tiles compute the file's own weights (only activations are quantized, as in llama.cpp); Q8_0
    // re-quantizes those weights once more. Both errors are dominated by the 8-bit activations, whose rounding this
    // model is sensitive to (measured: summed KL 0.0078 for q4_1 against 0.0202 for q8_0 over these prompts; 0.0156
    // against 0.0146 with candle's rounding instead of llama.cpp's), so Q4_1 must be close to the dequantized f32
    // model in absolute terms and not meaningfully further from it than Q8_0.
    if !ttc_engine::q8_tiles::supported() {
        eprintln!("note: no AVX512-VNNI here, so no Q4_1 tiles to compare");
        return;
    }
    let (f32m, q8, q4) =
        (common::engine(WeightFormat::F32), common::engine(WeightFormat::Q8_0), common::engine(WeightFormat::Q4_1));
    let kl = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
    let (mut sum8, mut sum4) = (0.0, 0.0);
    for text in PROMPTS {
        let prompt = prompt_ids(f32m, text);
        let full = common::step0_logprobs(f32m, &prompt);
        let (k8, k4) = (kl(&full, &common::step0_logprobs(q8, &prompt)), kl(&full, &common::step0_logprobs(q4, &prompt)));
        eprintln!("{text:.40}...: KL(f32 || q8_0) = {k8:.6}, KL(f32 || q4_1 tiles) = {k4:.6}");
        assert!(k4 < 0.01, "q4_1 tiles drift from the f32 model: KL {k4}");
        (sum8, sum4) = (sum8 + k8, sum4 + k4);
    }
    assert!(sum4 <= sum8 * 1.5, "q4_1 tiles (KL {sum4}) much further from f32 than q8_0 (KL {sum8})");
}

#[test]
fn truncate_rolls_the_cache_back_exactly() {
    let engine = common::engine(WeightFormat::Q8_0);
    let prompt = prompt_ids(engine, PROMPTS[2]);
    let mut cache = engine.model.new_cache().unwrap();
    let first = engine.model.forward(&prompt, &mut cache, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap();
    let len = cache.next_pos;
    // Feed junk tokens, roll back, and the next step must be as if they never happened.
    engine.model.forward(&[100, 200, 300], &mut cache, LogitsMode::All).unwrap();
    cache.truncate(len);
    let t = argmax(&first[0]);
    let after = engine.model.forward(&[t], &mut cache, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap();
    let mut fresh = engine.model.new_cache().unwrap();
    engine.model.forward(&prompt, &mut fresh, LogitsMode::None).unwrap();
    let expect = engine.model.forward(&[t], &mut fresh, LogitsMode::Last).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(after, expect);
}

#[test]
fn prompt_longer_than_context_is_an_error_not_a_panic() {
    let engine = common::engine(WeightFormat::Q8_0);
    let err = engine.check_fits(8000, 500).unwrap_err();
    assert!(err.to_string().contains("exceeds the model's context of 8192"), "{err}");
    assert!(err.is_usage_error());
}
