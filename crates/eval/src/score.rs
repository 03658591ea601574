//! The single scoring entry point: [`score_record`] turns (suite, prediction, item) into the metric map the
//! runner stores (registry names go to `Record::metrics`, others to `Record::extra_metrics`, see
//! [`split_metrics`]).

use crate::metrics::{bleu, coverage, lexical, metric, rouge, SuiteKind};
use crate::suite::SuiteItem;
use crate::text::{extract_answer, normalize_answer, AnswerStyle};
use crate::workflow::score::{f1_chain, f1_graph, Prf, Similarity};
use crate::workflow::parse_workflow;
use crate::EvalError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use ttc_embedders::{cosine, SentenceEmbedder};

/// Extra (non-column) metrics of WorfBench items.
pub const WORFBENCH_EXTRAS: &[&str] = &["chain_precision", "chain_recall", "graph_precision", "graph_recall", "workflow_parsed"];

/// Scoring settings shared by all records of a run, with an embedding cache (node texts repeat a lot).
pub struct ScorerCtx {
    embedder: Option<Arc<dyn SentenceEmbedder>>,
    /// Porter stemming in ROUGE (rouge-score's `use_stemmer`; default false, the library default).
    pub rouge_stemmer: bool,
    only: Option<BTreeSet<String>>,
    cache: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

impl ScorerCtx {
    /// Without an embedder, `semantic_similarity`, `f1_chain` and `f1_graph` are not computed.
    pub fn new(embedder: Option<Arc<dyn SentenceEmbedder>>) -> ScorerCtx {
        ScorerCtx { embedder, rouge_stemmer: false, only: None, cache: Mutex::new(HashMap::new()) }
    }

    /// Compute only these registry metrics (names as in `ttc_types::QUALITY_METRICS`).
    pub fn with_metrics(mut self, names: &[String]) -> Result<ScorerCtx, EvalError> {
        if names.is_empty() {
            self.only = None;
            return Ok(self);
        }
        for n in names {
            if metric(n).is_none() {
                return Err(EvalError::UnknownMetric(n.clone()));
            }
        }
        self.only = Some(names.iter().cloned().collect());
        Ok(self)
    }

    /// The embedder's name (`minilm`, `mpnet`, `hash`), recorded with the scores it produced.
    pub fn embedder_name(&self) -> Option<&str> {
        self.embedder.as_deref().map(|e| e.name())
    }

    fn wants(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(name))
    }

    /// Embeddings of `texts`, computing only those not cached yet.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Arc<Vec<f32>>>, EvalError> {
        let Some(embedder) = &self.embedder else { return Ok(Vec::new()) };
        let missing: Vec<&str> = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = BTreeSet::new();
            texts.iter().copied().filter(|t| !cache.contains_key(*t) && seen.insert(*t)).collect()
        };
        if !missing.is_empty() {
            let vecs = embedder.embed(&missing)?;
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (t, v) in missing.into_iter().zip(vecs) {
                cache.insert(t.to_string(), Arc::new(v));
            }
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(texts.iter().filter_map(|t| cache.get(*t).cloned()).collect())
    }
}

impl Similarity for &ScorerCtx {
    fn matrix(&mut self, pred: &[String], gold: &[String]) -> Result<Vec<Vec<f64>>, EvalError> {
        let all: Vec<&str> = pred.iter().chain(gold).map(String::as_str).collect();
        let e = self.embed(&all)?;
        let (p, g) = e.split_at(pred.len());
        // np.maximum(cos_sim(...), 0) in float32, stored in a float64 matrix.
        Ok(p.iter().map(|a| g.iter().map(|b| (cosine(a, b) as f64).max(0.0)).collect()).collect())
    }
}

/// Score one model reply for a loaded item.
pub fn score_record(suite: &str, prediction: &str, item: &SuiteItem, ctx: &ScorerCtx) -> Result<BTreeMap<String, f64>, EvalError> {
    score_reply(SuiteKind::of_suite(suite), item.task.as_deref(), item.reward_metric.as_deref(), prediction, &item.reference_list, ctx)
}

/// Score a reply against reference(s) without a loaded item (`ttc score`).
pub fn score_reply(
    kind: SuiteKind,
    task: Option<&str>,
    reward_metric: Option<&str>,
    prediction: &str,
    references: &[String],
    ctx: &ScorerCtx,
) -> Result<BTreeMap<String, f64>, EvalError> {
    let mut out = BTreeMap::new();
    match kind {
        SuiteKind::Worfbench => {
            if let Some(gold) = references.first() {
                score_workflow(prediction, gold, ctx, &mut out)?;
            }
        }
        SuiteKind::Crmarena | SuiteKind::CrmarenaPro | SuiteKind::Generic => {
            score_text(kind, task, reward_metric, prediction, references, ctx, &mut out)?;
        }
    }
    Ok(out)
}

fn free_text(task: Option<&str>, reward_metric: Option<&str>) -> bool {
    reward_metric == Some("fuzzy_match") || matches!(task, Some("knowledge_qa" | "sales_insight_mining"))
}

#[allow(clippy::too_many_arguments)]
fn score_text(
    kind: SuiteKind,
    task: Option<&str>,
    reward_metric: Option<&str>,
    prediction: &str,
    references: &[String],
    ctx: &ScorerCtx,
    out: &mut BTreeMap<String, f64>,
) -> Result<(), EvalError> {
    let crm = matches!(kind, SuiteKind::Crmarena | SuiteKind::CrmarenaPro);
    let style = if !crm || free_text(task, reward_metric) { AnswerStyle::Free } else { AnswerStyle::Short };
    // Generic suites score the whole reply; CRMArena the extracted answer, as its agent protocol does.
    let answer = if crm { extract_answer(prediction, style) } else { prediction.to_string() };
    let mut put = |name: &str, v: f64| {
        if ctx.wants(name) {
            out.insert(name.to_string(), v);
        }
    };
    if crm {
        for (name, v) in coverage::coverage(prediction) {
            put(name, v);
        }
    }
    if references.is_empty() {
        return Ok(());
    }
    // CRMArena-Pro compares the list as a whole; the other suites take the best reference.
    let golds: Vec<String> = if kind == SuiteKind::CrmarenaPro { vec![references.join(", ")] } else { references.to_vec() };
    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    fn keep(best: &mut BTreeMap<&'static str, f64>, name: &'static str, v: f64) {
        let e = best.entry(name).or_insert(v);
        *e = e.max(v);
    }
    for gold in &golds {
        let em = match kind {
            SuiteKind::CrmarenaPro => lexical::exact_match_pro(&answer, references),
            _ => lexical::exact_match(&answer, gold),
        };
        keep(&mut best, "exact_match", em);
        keep(&mut best, "exact_match_normalized", lexical::exact_match_normalized(&answer, gold));
        let (p, r, f) = lexical::token_prf(&answer, gold);
        keep(&mut best, "precision", p);
        keep(&mut best, "recall", r);
        keep(&mut best, "f1", f);
        // CRMArena's get_all_metrics scores BLEU and ROUGE on normalised strings.
        let (a, g) = if crm { (normalize_answer(&answer), normalize_answer(gold)) } else { (answer.clone(), gold.clone()) };
        if ["rouge1", "rouge2", "rouge_l", "rouge_lsum"].iter().any(|m| ctx.wants(m)) {
            let rs = rouge::rouge(&a, &g, ctx.rouge_stemmer);
            keep(&mut best, "rouge1", rs.rouge1);
            keep(&mut best, "rouge2", rs.rouge2);
            keep(&mut best, "rouge_l", rs.rouge_l);
            keep(&mut best, "rouge_lsum", rs.rouge_lsum);
        }
        if ctx.wants("bleu") {
            keep(&mut best, "bleu", bleu::sentence_bleu(&a, &g));
        }
        if let Some(lr) = lexical::length_ratio(&answer, gold) {
            // Not a max: the ratio to the first reference (closer to 1 is better, max would mislead).
            best.entry("length_ratio").or_insert(lr);
        }
        if ctx.embedder.is_some() && ctx.wants("semantic_similarity") {
            let e = ctx.embed(&[answer.as_str(), gold.as_str()])?;
            keep(&mut best, "semantic_similarity", cosine(&e[0], &e[1]) as f64);
        }
    }
    for (name, v) in best {
        put(name, v);
    }
    Ok(())
}

fn score_workflow(prediction: &str, gold_text: &str, ctx: &ScorerCtx, out: &mut BTreeMap<String, f64>) -> Result<(), EvalError> {
    let gold = parse_workflow(gold_text).ok_or_else(|| EvalError::GoldWorkflow("the reference workflow does not parse (no `Node` or no edges)".into()))?;
    let want_chain = ctx.wants("f1_chain");
    let want_graph = ctx.wants("f1_graph");
    if ctx.embedder.is_none() || !(want_chain || want_graph) {
        return Ok(());
    }
    let (chain, graph, parsed) = match parse_workflow(prediction) {
        // Upstream skips unparsable predictions and divides by the number of gold items: they count 0.
        None => (Prf::default(), Prf::default(), 0.0),
        Some(pred) => {
            let mut sim = ctx;
            let chain = if want_chain { f1_chain(&pred, &gold, &mut sim)? } else { Prf::default() };
            let graph = if want_graph { f1_graph(&pred, &gold, &mut sim)? } else { Prf::default() };
            (chain, graph, 1.0)
        }
    };
    if want_chain {
        out.insert("f1_chain".into(), chain.f1);
        out.insert("chain_precision".into(), chain.precision);
        out.insert("chain_recall".into(), chain.recall);
    }
    if want_graph {
        out.insert("f1_graph".into(), graph.f1);
        out.insert("graph_precision".into(), graph.precision);
        out.insert("graph_recall".into(), graph.recall);
    }
    out.insert("workflow_parsed".into(), parsed);
    Ok(())
}

/// Split a metric map into (store columns per `ttc_types::QUALITY_METRICS`, extra metrics).
pub fn split_metrics(all: BTreeMap<String, f64>) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    all.into_iter().partition(|(k, _)| ttc_types::QUALITY_METRICS.contains(&k.as_str()))
}
