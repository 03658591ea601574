//! Fitting and scoring calibrated exit heads (`exit_heads.rs`).
//!
//! Data: each calibration prompt is run through the full model, followed by the model's own greedy continuation,
//! and every position's hidden state after each chosen layer is paired with the LM head's input at the last
//! layer. Fit: per layer, ridge least squares in closed form toward the logit lens: W = diag(g) + V with
//! V = (XᵀX + λI)⁻¹ Xᵀ(Z − g ⊙ U), U = rmsnorm(h_l), X = [U, 1], Z = g ⊙ rmsnorm(h_L) (the bias column is not
//! penalised). This minimises |Z − XW|² + λ|W − diag(g)|²: with λ → ∞ the head is the logit lens, and
//! directions the corpus never spanned keep reading as the lens does instead of shrinking to zero; at the last
//! layer Z = g ⊙ U, so V = 0 and the head is exactly the identity. XᵀX and XᵀZ are accumulated per prompt (f32
//! matmuls of that prompt's rows, summed in f64), so memory does not grow with the corpus, and the (d+1)-square
//! system is solved by Cholesky in f64.
//! Scoring: on held-out prompts, teacher-forced along the full model's greedy continuation, the exit layer's
//! top-1 against the full model's and KL(full ‖ exit), for the logit lens and the calibrated head.

use crate::error::{EngineError, Result};
use crate::model::exit_heads::{rms_normalise, ExitHeads};
use crate::fidelity::{FidelityAcc, PolicyView};
use crate::model::argmax;
use crate::Engine;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;

/// Normal equations of one multi-output least-squares problem, accumulated in f64.
#[derive(Debug, Clone)]
pub struct RidgeAcc {
    /// Input width without the bias column.
    pub d_in: usize,
    pub d_out: usize,
    /// (d_in + 1)², row-major, the last row/column being the bias.
    xtx: Vec<f64>,
    /// (d_in + 1) x d_out.
    xtz: Vec<f64>,
    /// Rows seen.
    pub rows: usize,
}

impl RidgeAcc {
    pub fn new(d_in: usize, d_out: usize) -> RidgeAcc {
        let p = d_in + 1;
        RidgeAcc { d_in, d_out, xtx: vec![0.0; p * p], xtz: vec![0.0; p * d_out], rows: 0 }
    }

    /// Adds rows `x` (n, d_in) with targets `z` (n, d_out).
    pub fn add(&mut self, x: &Tensor, z: &Tensor) -> Result<()> {
        let n = x.dim(0)?;
        if n == 0 {
            return Ok(());
        }
        // f64 products: the residual stream's few massive dimensions make f32 sums lose the small directions.
        let ones = Tensor::ones((n, 1), DType::F64, &Device::Cpu)?;
        let xa = Tensor::cat(&[&x.to_dtype(DType::F64)?, &ones], 1)?;
        let xt = xa.t()?.contiguous()?;
        let g: Vec<f64> = xt.matmul(&xa)?.flatten_all()?.to_vec1()?;
        let r: Vec<f64> = xt.matmul(&z.to_dtype(DType::F64)?.contiguous()?)?.flatten_all()?.to_vec1()?;
        for (acc, v) in self.xtx.iter_mut().zip(g) {
            *acc += v;
        }
        for (acc, v) in self.xtz.iter_mut().zip(r) {
            *acc += v;
        }
        self.rows += n;
        Ok(())
    }

    /// Least rows for a well-posed fit: one per unknown of an output column (the inputs and the bias).
    pub fn min_rows(&self) -> usize {
        self.d_in + 1
    }

    /// Solves for (weight (d_in x d_out) row-major, bias (d_out)), minimising |Z − XW − b|² + λ|W|². `ridge`
    /// is λ relative to the mean diagonal of XᵀX over the inputs (scale-free: 1e-3 means a thousandth of a
    /// typical input's energy).
    pub fn solve(&self, ridge: f64) -> std::result::Result<(Vec<f32>, Vec<f32>), String> {
        if self.rows < self.min_rows() {
            return Err(format!(
                "{} token positions is too few for a {}-wide fit; at least {} are needed",
                self.rows,
                self.d_in,
                self.min_rows()
            ));
        }
        let p = self.d_in + 1;
        let mut a = self.xtx.clone();
        let mean_diag = (0..self.d_in).map(|i| a[i * p + i]).sum::<f64>() / self.d_in as f64;
        let lambda = ridge * mean_diag;
        for i in 0..self.d_in {
            a[i * p + i] += lambda;
        }
        cholesky(&mut a, p)?;
        let mut sol = self.xtz.clone();
        cholesky_solve(&a, p, &mut sol, self.d_out);
        let weight = sol[..self.d_in * self.d_out].iter().map(|&v| v as f32).collect();
        let bias = sol[self.d_in * self.d_out..].iter().map(|&v| v as f32).collect();
        Ok((weight, bias))
    }
}

/// In-place Cholesky factorisation A = L Lᵀ of a symmetric positive-definite p x p matrix (row-major); L is left
/// in the lower triangle.
fn cholesky(a: &mut [f64], p: usize) -> std::result::Result<(), String> {
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= a[j * p + k] * a[j * p + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(format!("the normal equations are singular at column {j}; raise --ridge or add data"));
        }
        let d = d.sqrt();
        a[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = s / d;
        }
    }
    Ok(())
}

/// Solves L Lᵀ X = B for the `m` columns of B (p x m, row-major) in place.
fn cholesky_solve(l: &[f64], p: usize, b: &mut [f64], m: usize) {
    // Forward: L Y = B, row by row so the inner loop runs over contiguous columns.
    for i in 0..p {
        for k in 0..i {
            let lik = l[i * p + k];
            if lik != 0.0 {
                let (done, rest) = b.split_at_mut(i * m);
                for (bi, bk) in rest[..m].iter_mut().zip(&done[k * m..k * m + m]) {
                    *bi -= lik * bk;
                }
            }
        }
        let d = l[i * p + i];
        b[i * m..i * m + m].iter_mut().for_each(|v| *v /= d);
    }
    // Backward: Lᵀ X = Y.
    for i in (0..p).rev() {
        for k in i + 1..p {
            let lki = l[k * p + i];
            if lki != 0.0 {
                let (head, tail) = b.split_at_mut(k * m);
                for (bi, bk) in head[i * m..i * m + m].iter_mut().zip(&tail[..m]) {
                    *bi -= lki * bk;
                }
            }
        }
        let d = l[i * p + i];
        b[i * m..i * m + m].iter_mut().for_each(|v| *v /= d);
    }
}

/// What to fit.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Layer counts to fit heads for (each in 1..=n_layer).
    pub layers: Vec<usize>,
    /// Greedy tokens generated after each prompt (their positions are calibration data too).
    pub max_new_tokens: usize,
    /// Relative ridge λ (see [`RidgeAcc::solve`]).
    pub ridge: f64,
}

/// The hidden rows of one prompt + its greedy continuation: per captured layer (the last one being n_layer),
/// rows in position order, and the continuation's tokens.
struct Pass {
    /// captured[i] = rows after `capture[i]` blocks, (positions, d).
    captured: Vec<Tensor>,
    /// Position index (within `captured`) of the row that predicts each generated token.
    predicting: Vec<usize>,
}

/// Runs the full model over `prompt` and `max_new` greedy tokens, capturing the hidden rows after each layer
/// count in `capture`.
fn run_pass(engine: &Engine, prompt: &[u32], capture: &[usize], max_new: usize) -> Result<Pass> {
    let model = &engine.model;
    let n_layer = model.cfg.n_layer;
    let last = capture.iter().position(|&k| k == n_layer).expect("capture includes the last layer");
    let max_new = max_new.min(engine.context_length().saturating_sub(prompt.len() + 1));
    let mut cache = model.new_cache()?;
    let mut parts: Vec<Vec<Tensor>> = vec![Vec::new(); capture.len()];
    let mut rows = 0usize;
    let mut predicting = Vec::new();
    let mut input: Vec<u32> = prompt.to_vec();
    for step in 0..=max_new {
        let hs = model.forward_hidden(&input, &mut cache, capture)?;
        rows += input.len();
        let h_last = hs[last].narrow(0, input.len() - 1, 1)?;
        for (p, h) in parts.iter_mut().zip(hs) {
            p.push(h);
        }
        if step == max_new {
            break;
        }
        predicting.push(rows - 1);
        let logits: Vec<f32> = model.logits(&h_last)?.flatten_all()?.to_vec1()?;
        let next = argmax(&logits);
        if engine.tokenizer.stop_ids.contains(&next) {
            break;
        }
        input = vec![next];
    }
    let captured = parts.into_iter().map(|p| Ok(Tensor::cat(&p, 0)?)).collect::<Result<Vec<_>>>()?;
    Ok(Pass { captured, predicting })
}

/// Capture list: the requested layers plus the last one, deduplicated, in order.
fn capture_list(layers: &[usize], n_layer: usize) -> Result<Vec<usize>> {
    if let Some(&bad) = layers.iter().find(|&&k| k == 0 || k > n_layer) {
        return Err(EngineError::InvalidRequest(format!("layer {bad} is not in 1..={n_layer} for this model")));
    }
    let mut c: Vec<usize> = layers.to_vec();
    c.push(n_layer);
    c.sort_unstable();
    c.dedup();
    Ok(c)
}

/// Fits heads for `opts.layers` on `prompts` (token ids). `progress(done, total)` is called after each prompt.
/// The heads are stamped with `gguf_sha256` and will be saved at `path`.
pub fn fit_heads(
    engine: &Engine,
    prompts: &[Vec<u32>],
    opts: &CalibrateOptions,
    gguf_sha256: &str,
    path: std::path::PathBuf,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExitHeads> {
    let n_layer = engine.model.cfg.n_layer;
    let d = engine.model.cfg.n_embd;
    let capture = capture_list(&opts.layers, n_layer)?;
    let last = capture.len() - 1;
    let gain = engine.model.final_norm_gain()?;
    let gain_t = Tensor::new(gain.as_slice(), &Device::Cpu)?;
    let mut accs: BTreeMap<usize, RidgeAcc> = opts.layers.iter().map(|&k| (k, RidgeAcc::new(d, d))).collect();
    for (i, prompt) in prompts.iter().enumerate() {
        let pass = run_pass(engine, prompt, &capture, opts.max_new_tokens)?;
        let target = engine.model.lm_input(&pass.captured[last])?;
        for (&k, acc) in accs.iter_mut() {
            let at = capture.iter().position(|&c| c == k).expect("captured");
            let u = rms_normalise(&pass.captured[at], engine.model.cfg.rms_eps as f32)?;
            // Fit the correction to the logit lens (W = diag(g) + V): see the module docs.
            let residual = (&target - u.broadcast_mul(&gain_t)?)?;
            acc.add(&u, &residual)?;
        }
        progress(i + 1, prompts.len());
    }
    let mut fitted = BTreeMap::new();
    let mut rows = 0;
    for (k, acc) in &accs {
        rows = acc.rows;
        let (mut w, b) = acc.solve(opts.ridge).map_err(|m| EngineError::InvalidRequest(format!("calibration corpus: {m}")))?;
        for (i, g) in gain.iter().enumerate() {
            w[i * d + i] += g;
        }
        fitted.insert(*k, (w, b));
    }
    let mut info = BTreeMap::new();
    info.insert("ridge".to_string(), opts.ridge.to_string());
    info.insert("positions".to_string(), rows.to_string());
    info.insert("prompts".to_string(), prompts.len().to_string());
    info.insert("max_new_tokens".to_string(), opts.max_new_tokens.to_string());
    ExitHeads::new(path, gguf_sha256.to_string(), d, engine.model.cfg.rms_eps as f32, fitted, info)
}

/// Teacher-forced scores of one layer on held-out prompts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LayerScore {
    pub layer: usize,
    /// Predictions scored (generated positions).
    pub positions: usize,
    pub logit_lens_top1: f64,
    pub logit_lens_kl: f64,
    pub calibrated_top1: Option<f64>,
    pub calibrated_kl: Option<f64>,
}

/// Scores the logit lens (and `heads`, when given) at `layers` on `prompts`, teacher-forced along the full
/// model's greedy continuation of each (`max_new` tokens).
pub fn score_layers(
    engine: &Engine,
    heads: Option<&ExitHeads>,
    prompts: &[Vec<u32>],
    layers: &[usize],
    max_new: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<LayerScore>> {
    let model = &engine.model;
    let capture = capture_list(layers, model.cfg.n_layer)?;
    let last = capture.len() - 1;
    // Per layer: the logit lens's and the calibrated head's agreement, as the fidelity metrics define them
    // (top-1 against the full model's argmax, KL(full ‖ exit)).
    let mut accs = vec![(FidelityAcc::default(), FidelityAcc::default()); layers.len()];
    let mut positions = 0;
    for (i, prompt) in prompts.iter().enumerate() {
        let pass = run_pass(engine, prompt, &capture, max_new)?;
        if pass.predicting.is_empty() {
            continue;
        }
        let idx = Tensor::new(pass.predicting.iter().map(|&r| r as u32).collect::<Vec<_>>(), &Device::Cpu)?;
        let full = model.logits(&pass.captured[last].index_select(&idx, 0)?)?.to_vec2::<f32>()?;
        positions += full.len();
        for (j, &k) in layers.iter().enumerate() {
            let at = capture.iter().position(|&c| c == k).expect("captured");
            let h = pass.captured[at].index_select(&idx, 0)?;
            let observe = |acc: &mut FidelityAcc, exit: Tensor| -> Result<()> {
                for (f, e) in full.iter().zip(exit.to_vec2::<f32>()?) {
                    acc.observe(f, PolicyView::Row(&e), argmax(f));
                }
                Ok(())
            };
            observe(&mut accs[j].0, model.logits(&h)?)?;
            if let Some(heads) = heads {
                observe(&mut accs[j].1, model.head(&heads.apply(k, &h)?)?)?;
            }
        }
        progress(i + 1, prompts.len());
    }
    let scores = layers
        .iter()
        .zip(&accs)
        .map(|(&layer, (lens, cal))| {
            let (lens, cal) = (lens.finish(), cal.finish());
            LayerScore {
                layer,
                positions,
                logit_lens_top1: lens.top1.unwrap_or(0.0),
                logit_lens_kl: lens.kl.unwrap_or(0.0),
                calibrated_top1: heads.and(cal.top1),
                calibrated_kl: heads.and(cal.kl),
            }
        })
        .collect();
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ridge_recovers_a_known_affine_map() {
        // z = x·W + b exactly, with x random: the fit must give W and b back (a tiny ridge barely shrinks).
        let (d_in, d_out, n) = (6, 4, 200);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let w: Vec<f32> = (0..d_in * d_out).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..d_out).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x: Vec<f32> = (0..n * d_in).map(|_| rng.random_range(-2.0..2.0)).collect();
        let xt = Tensor::from_vec(x, (n, d_in), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w.clone(), (d_in, d_out), &Device::Cpu).unwrap();
        let bt = Tensor::from_vec(b.clone(), (1, d_out), &Device::Cpu).unwrap();
        let z = xt.matmul(&wt).unwrap().broadcast_add(&bt).unwrap();
        let mut acc = RidgeAcc::new(d_in, d_out);
        // Two batches: accumulation must equal one big batch.
        acc.add(&xt.narrow(0, 0, 50).unwrap(), &z.narrow(0, 0, 50).unwrap()).unwrap();
        acc.add(&xt.narrow(0, 50, 150).unwrap(), &z.narrow(0, 50, 150).unwrap()).unwrap();
        assert_eq!(acc.rows, n);
        let (fw, fb) = acc.solve(1e-9).unwrap();
        for (a, e) in fw.iter().zip(&w).chain(fb.iter().zip(&b)) {
            assert!((a - e).abs() < 1e-4, "{a} vs {e}");
        }
        // A strong ridge shrinks the weights toward zero.
        let (sw, _) = acc.solve(10.0).unwrap();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!(norm(&sw) < 0.5 * norm(&w));
    }

    #[test]
    fn too_few_rows_names_the_minimum() {
        let mut acc = RidgeAcc::new(8, 2);
        let x = Tensor::ones((5, 8), DType::F32, &Device::Cpu).unwrap();
        let z = Tensor::ones((5, 2), DType::F32, &Device::Cpu).unwrap();
        acc.add(&x, &z).unwrap();
        let e = acc.solve(1e-3).unwrap_err();
        assert!(e.contains("at least 9"), "{e}");
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        // A = [[4, 2], [2, 3]], B = A · [[1, 2], [3, -1]]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![4.0 + 6.0, 8.0 - 2.0, 2.0 + 9.0, 4.0 - 3.0];
        cholesky(&mut a, 2).unwrap();
        cholesky_solve(&a, 2, &mut b, 2);
        for (x, e) in b.iter().zip([1.0, 2.0, 3.0, -1.0]) {
            assert!((x - e).abs() < 1e-12, "{b:?}");
        }
    }
}
