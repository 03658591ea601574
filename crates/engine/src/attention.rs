//! Causal GQA attention for new rows against a sequence's cache, computed row by row straight from the cache
//! buffers.
//!
//! Each (row, query head) is one work item: scores against the cached keys it may see, a softmax, and the weighted
//! sum of values. The arithmetic for a row depends only on that row's query and the cache entries before it, never
//! on how many rows are in the forward, so a k-row forward (speculative verification, prefill, a batch) gives the
//! same bits as k one-row steps. It replaces a dozen candle ops per row and layer (narrow, matmul, softmax, copy of
//! the V cache, stack), whose fixed costs dominated decoding once the weight matmuls got fast (docs/engine.md).
//! The summation order is fixed in the source (16 partial sums, no fused multiply-add), so the result does not
//! depend on the SIMD width the compiler picks.

/// Shapes of one attention call.
#[derive(Clone, Copy)]
pub struct Dims {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    /// Rows (entries) each KV head's buffer has room for: the stride between heads in the cache buffers.
    pub capacity: usize,
    /// Cache entries before the first new row (the new rows' own K/V follow them in the cache).
    pub past: usize,
}

/// Attention of `t` new rows. `q` is (t, n_head, head_dim) after RoPE; `k`/`v` are the cache buffers laid out
/// (n_kv, capacity, head_dim) with the new rows' entries already written at `past..past + t`. Returns
/// (t, n_head * head_dim). With `probs`, also returns each (row, head)'s attention probabilities over the entries it
/// saw (`probs[row * n_head + head]`, length past + row + 1), for H2O's accumulated scores.
pub fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: Dims,
    t: usize,
    want_probs: bool,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let Dims {
        n_head,
        n_kv,
        head_dim: d,
        capacity,
        past,
    } = dims;
    assert_eq!(q.len(), t * n_head * d, "q is not (t, n_head, head_dim)");
    assert!(
        k.len() >= n_kv * capacity * d && v.len() >= n_kv * capacity * d,
        "cache buffers too small"
    );
    assert!(past + t <= capacity, "rows past the cache capacity");
    let n_rep = n_head / n_kv;
    let mut out = vec![0f32; t * n_head * d];
    let mut probs: Vec<Vec<f32>> = if want_probs {
        vec![Vec::new(); t * n_head]
    } else {
        Vec::new()
    };
    let out_addr = out.as_mut_ptr() as usize;
    let probs_addr = probs.as_mut_ptr() as usize;
    let work = |item: usize| {
        let (row, head) = (item / n_head, item % n_head);
        let g = head / n_rep;
        let n = past + row + 1;
        let qh = &q[(row * n_head + head) * d..][..d];
        let keys = &k[g * capacity * d..][..n * d];
        let values = &v[g * capacity * d..][..n * d];
        // SAFETY: item (row, head) owns out[(row * n_head + head) * d ..][..d] and probs[item]; no two items overlap.
        let dst = unsafe {
            std::slice::from_raw_parts_mut((out_addr as *mut f32).add((row * n_head + head) * d), d)
        };
        let p = head_row(qh, keys, values, dst);
        if want_probs {
            unsafe { *(probs_addr as *mut Vec<f32>).add(item) = p };
        }
    };
    let items = t * n_head;
    candle_core::utils::barrier_pool().execute_chunked(items, |range| range.for_each(work));
    (out, probs)
}

/// One query head of one row: scores, softmax, weighted values into `dst`; returns the probabilities. Compiled a
/// second time with AVX-512 enabled where the CPU has it (same source order, so the same bits).
fn head_row(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        return unsafe { head_row_avx512(qh, keys, values, dst) };
    }
    head_row_generic(qh, keys, values, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn head_row_avx512(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    head_row_generic(qh, keys, values, dst)
}

#[inline(always)]
fn head_row_generic(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    // Plain index loops: iterator adaptors would be separate functions compiled without the caller's AVX-512.
    let d = qh.len();
    let n = keys.len() / d;
    let mut p = vec![0f32; n];
    for j in 0..n {
        p[j] = dot(qh, &keys[j * d..(j + 1) * d]);
    }
    softmax_in_place(&mut p);
    let dst = &mut dst[..d];
    for j in 0..n {
        let (pj, vj) = (p[j], &values[j * d..][..d]);
        for i in 0..d {
            dst[i] += pj * vj[i];
        }
    }
    p
}

/// Dot product with 16 partial sums in a fixed order (vectorizes to any SIMD width with identical results).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b[..a.len()].as_chunks::<16>();
    assert_eq!(ca.len(), cb.len());
    let mut acc = [0f32; 16];
    for c in 0..ca.len() {
        let (x, y) = (&ca[c], &cb[c]);
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0f32;
    for i in 0..ra.len() {
        s += ra[i] * rb[i];
    }
    // Pairwise reduction of the partial sums.
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0] + s
}

/// exp(x - max) / sum, as candle's `softmax_last_dim` does it.
#[inline(always)]
fn softmax_in_place(x: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for i in 0..x.len() {
        max = max.max(x[i]);
    }
    let mut sum = 0f32;
    for i in 0..x.len() {
        x[i] = (x[i] - max).exp();
        sum += x[i];
    }
    for i in 0..x.len() {
        x[i] /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(q: &[f32], k: &[f32], v: &[f32], dims: Dims, t: usize) -> Vec<f32> {
        let Dims {
            n_head,
            n_kv,
            head_dim: d,
            capacity,
            past,
        } = dims;
        let mut out = vec![0f64; t * n_head * d];
        for row in 0..t {
            for h in 0..n_head {
                let g = h / (n_head / n_kv);
                let n = past + row + 1;
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|i| {
                                q[(row * n_head + h) * d + i] as f64
                                    * k[(g * capacity + j) * d + i] as f64
                            })
                            .sum()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for j in 0..n {
                    for i in 0..d {
                        out[(row * n_head + h) * d + i] +=
                            (s[j] - m).exp() / z * v[(g * capacity + j) * d + i] as f64;
                    }
                }
            }
        }
        out.into_iter().map(|x| x as f32).collect()
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_a_float64_reference_with_gqa_and_causal_rows() {
        let dims = Dims {
            n_head: 6,
            n_kv: 2,
            head_dim: 20,
            capacity: 12,
            past: 5,
        };
        let t = 4;
        let q = data(t * 6 * 20, 1);
        let k = data(2 * 12 * 20, 2);
        let v = data(2 * 12 * 20, 3);
        let (got, probs) = attend(&q, &k, &v, dims, t, true);
        let want = naive(&q, &k, &v, dims, t);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Row r sees past + r + 1 entries, and each distribution sums to 1.
        for (item, p) in probs.iter().enumerate() {
            assert_eq!(p.len(), 5 + item / 6 + 1);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_and_among_others() {
        let dims = Dims {
            n_head: 4,
            n_kv: 2,
            head_dim: 64,
            capacity: 16,
            past: 3,
        };
        let q = data(5 * 4 * 64, 7);
        let k = data(2 * 16 * 64, 8);
        let v = data(2 * 16 * 64, 9);
        let (all, _) = attend(&q, &k, &v, dims, 5, false);
        for row in 0..5 {
            let alone = Dims {
                past: 3 + row,
                ..dims
            };
            let (one, _) = attend(&q[row * 256..(row + 1) * 256], &k, &v, alone, 1, false);
            assert_eq!(one, all[row * 256..(row + 1) * 256], "row {row}");
        }
    }
}
