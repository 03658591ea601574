//! Causal GQA attention for new rows against a sequence's cache, computed row by row straight from the cache
//! buffers.
//!
//! Each (sequence, row, query head) is one work item: scores against the cached keys it may see, a softmax, and the weighted
//! sum of values. The arithmetic for a row depends only on that row's query and the cache entries before it, never
//! on how many rows are in the forward, so a k-row forward (speculative verification, prefill, a batch) gives the
//! same bits as k one-row steps. It replaces a dozen candle ops per row and layer (narrow, matmul, softmax, copy of
//! the V cache, stack), whose fixed costs dominated decoding once the weight matmuls got fast (docs/engine.md).
//! The summation order is fixed in the source (16 partial sums, no fused multiply-add, a pairwise tree), so the
//! result does not depend on the SIMD width; the AVX-512 scores (16 keys at once) follow the same order exactly.

/// Head counts and size, shared by every sequence of a call.
#[derive(Clone, Copy)]
pub struct Dims {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
}

/// One sequence's share of a call: its new rows' queries and its cache.
pub struct Seq<'a> {
    /// (t, n_head, head_dim) after RoPE.
    pub q: &'a [f32],
    /// Cache buffers laid out (n_kv, capacity, head_dim), with the new rows' entries already at `past..past + t`.
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub capacity: usize,
    /// Cache entries before the first new row.
    pub past: usize,
    /// Return each (row, head)'s attention probabilities (H2O's accumulated scores need them).
    pub want_probs: bool,
}

/// Attention of every sequence's new rows, in one parallel pass over (sequence, row, head) items. Returns the
/// outputs stacked (all rows, n_head * head_dim) and, per sequence, `probs[row * n_head + head]` (length
/// past + row + 1) where asked, else an empty list.
pub fn attend_batch(seqs: &[Seq], dims: Dims) -> (Vec<f32>, Vec<Vec<Vec<f32>>>) {
    attend_batch_with(seqs, dims, true)
}

/// `attend_batch`, allowed (`grouped`) or not to use the grouped path; both give the same bits (a test).
fn attend_batch_with(seqs: &[Seq], dims: Dims, grouped: bool) -> (Vec<f32>, Vec<Vec<Vec<f32>>>) {
    let Dims { n_head, n_kv, head_dim: d } = dims;
    let n_rep = n_head / n_kv;
    // Item ranges per sequence: sequence i owns items starts[i]..starts[i + 1], rows from row_starts[i].
    let mut starts = vec![0usize];
    let mut row_starts = vec![0usize];
    for s in seqs {
        let t = s.q.len() / (n_head * d);
        assert_eq!(s.q.len(), t * n_head * d, "q is not (t, n_head, head_dim)");
        assert!(s.past + t <= s.capacity, "rows past the cache capacity");
        assert!(s.k.len() >= n_kv * s.capacity * d && s.v.len() >= n_kv * s.capacity * d, "cache buffers too small");
        starts.push(starts.last().expect("non-empty") + t * n_head);
        row_starts.push(row_starts.last().expect("non-empty") + t);
    }
    let items = *starts.last().expect("non-empty");
    let mut out = vec![0f32; items * d];
    let mut probs: Vec<Vec<Vec<f32>>> =
        seqs.iter().zip(starts.windows(2)).map(|(s, w)| if s.want_probs { vec![Vec::new(); w[1] - w[0]] } else { Vec::new() }).collect();
    let out_addr = out.as_mut_ptr() as usize;
    let probs_addrs: Vec<usize> = probs.iter_mut().map(|p| p.as_mut_ptr() as usize).collect();
    #[cfg(target_arch = "x86_64")]
    if grouped && d == 64 && n_rep > 1 && crate::model::q8_tiles::avx512f_allowed() {
        let tiles: usize = row_starts.windows(2).map(|w| (w[1] - w[0]).div_ceil(ROW_TILE)).sum();
        let kv_bytes: usize = seqs.iter().zip(row_starts.windows(2)).map(|(s, w)| n_kv * (s.past + w[1] - w[0]) * d * 8).sum();
        if tiles * n_kv >= GROUPED_MIN_ITEMS || kv_bytes >= GROUPED_MIN_KV_BYTES {
            attend_grouped(seqs, dims, &row_starts, out_addr, &probs_addrs);
            return (out, probs);
        }
    }
    let work = |item: usize| {
        let i = starts.partition_point(|&st| st <= item) - 1;
        let s = &seqs[i];
        let local = item - starts[i];
        let (row, head) = (local / n_head, local % n_head);
        let g = head / n_rep;
        let n = s.past + row + 1;
        let qh = &s.q[(row * n_head + head) * d..][..d];
        let keys = &s.k[g * s.capacity * d..][..n * d];
        let values = &s.v[g * s.capacity * d..][..n * d];
        // SAFETY: each item owns its d outputs (rows stacked in sequence order) and its probs slot.
        let dst = unsafe { std::slice::from_raw_parts_mut((out_addr as *mut f32).add(item * d), d) };
        let p = head_row(qh, keys, values, dst);
        if s.want_probs {
            unsafe { *(probs_addrs[i] as *mut Vec<f32>).add(local) = p };
        }
    };
    candle_core::utils::barrier_pool().execute_chunked(items, |range| range.for_each(work));
    assert_eq!(items, row_starts.last().copied().unwrap_or(0) * n_head);
    (out, probs)
}

/// Rows per work item of the grouped path: a block of keys serves this many rows x the group's query heads.
const ROW_TILE: usize = 8;
/// The grouped path runs when a call has at least this many (sequence, row tile, KV head) items (prefill, batches)...
const GROUPED_MIN_ITEMS: usize = 16;
/// ... or touches at least this many bytes of keys and values (half of one core's L2 here). Below both, one short
/// decode row, the 9 per-head items balance the 2 cores better than 3 group items (measured: decode 128 tokens
/// ran ~7% slower grouped), and the cache is in L2 anyway.
const GROUPED_MIN_KV_BYTES: usize = 1 << 20;

/// The same attention as `attend_batch`'s per-head items, computed per (sequence, tile of `ROW_TILE` rows, KV head):
/// each item runs the group's query heads for its rows through `avx512::attend_tile_64`, which gives every query
/// the bits of `head_row` (tested) while reading the group's keys and values once per tile. At long contexts the
/// cache no longer fits in L2 and attention waits on memory; per-head items made both cores read every KV head.
#[cfg(target_arch = "x86_64")]
fn attend_grouped(seqs: &[Seq], dims: Dims, row_starts: &[usize], out_addr: usize, probs_addrs: &[usize]) {
    let Dims { n_head, n_kv, head_dim: d } = dims;
    let n_rep = n_head / n_kv;
    let mut starts = vec![0usize];
    for w in row_starts.windows(2) {
        starts.push(starts.last().expect("non-empty") + (w[1] - w[0]).div_ceil(ROW_TILE) * n_kv);
    }
    let work = |item: usize| {
        let i = starts.partition_point(|&st| st <= item) - 1;
        let s = &seqs[i];
        let local = item - starts[i];
        let (tile, g) = (local / n_kv, local % n_kv);
        let t = row_starts[i + 1] - row_starts[i];
        let rows = tile * ROW_TILE..(tile * ROW_TILE + ROW_TILE).min(t);
        let (mut qs, mut ns, mut dsts, mut slots) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in rows.clone() {
            for head in g * n_rep..(g + 1) * n_rep {
                qs.push(&s.q[(row * n_head + head) * d..][..d]);
                ns.push(s.past + row + 1);
                // SAFETY (of the later writes): each (row, head) belongs to exactly one item.
                dsts.push(unsafe { (out_addr as *mut f32).add(((row_starts[i] + row) * n_head + head) * d) });
                slots.push(row * n_head + head);
            }
        }
        let n = s.past + rows.end;
        let keys = &s.k[g * s.capacity * d..][..n * d];
        let values = &s.v[g * s.capacity * d..][..n * d];
        let p = unsafe { avx512::attend_tile_64(&qs, &ns, keys, values, &dsts) };
        if s.want_probs {
            for (slot, p) in slots.into_iter().zip(p) {
                // SAFETY: each (row, head) probs slot belongs to exactly one item.
                unsafe { *(probs_addrs[i] as *mut Vec<f32>).add(slot) = p };
            }
        }
    };
    let items = *starts.last().expect("non-empty");
    candle_core::utils::barrier_pool().execute_chunked(items, |range| range.for_each(work));
}

/// One query head of one row: scores, softmax, weighted values into `dst`; returns the probabilities. Compiled a
/// second time with AVX-512 enabled where the CPU has it, and with AVX2 elsewhere (same source order, so the same
/// bits).
fn head_row(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::model::q8_tiles::avx512f_allowed() {
        return unsafe { head_row_avx512(qh, keys, values, dst) };
    } else if std::is_x86_feature_detected!("avx2") {
        return unsafe { head_row_avx2(qh, keys, values, dst) };
    }
    head_row_generic(qh, keys, values, dst)
}

/// `head_row_generic` with AVX2 scores and value sums (same arithmetic, so the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn head_row_avx2(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    let mut p = if qh.len().is_multiple_of(16) { avx2::scores(qh, keys) } else { scores(qh, keys) };
    if dst.len() == 64 {
        softmax_in_place(&mut p);
        avx2::weigh_values_64(&p, values, dst);
    } else {
        weigh_values(&mut p, values, dst);
    }
    p
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn head_row_avx512(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    let mut p = if qh.len().is_multiple_of(16) { avx512::scores(qh, keys) } else { scores(qh, keys) };
    if dst.len() == 64 {
        softmax_in_place(&mut p);
        avx512::weigh_values_64(&p, values, dst);
    } else {
        weigh_values(&mut p, values, dst);
    }
    p
}

#[inline(always)]
fn head_row_generic(qh: &[f32], keys: &[f32], values: &[f32], dst: &mut [f32]) -> Vec<f32> {
    let mut p = scores(qh, keys);
    weigh_values(&mut p, values, dst);
    p
}

/// q·k for every key (`keys` = n rows of q.len() values).
#[inline(always)]
fn scores(qh: &[f32], keys: &[f32]) -> Vec<f32> {
    // Plain index loops: iterator adaptors would be separate functions compiled without the caller's AVX-512.
    let d = qh.len();
    let n = keys.len() / d;
    let mut p = vec![0f32; n];
    for j in 0..n {
        p[j] = dot(qh, &keys[j * d..(j + 1) * d]);
    }
    p
}

/// Softmax of the scores in place, then `dst = sum_j p_j v_j` (summed in j order from 0).
#[inline(always)]
fn weigh_values(p: &mut [f32], values: &[f32], dst: &mut [f32]) {
    softmax_in_place(p);
    let d = dst.len();
    // Accumulate in a local array the compiler keeps in registers (through `dst` it reloaded and stored every
    // lane for every key); same additions in the same order.
    const MAX_D: usize = 256;
    if d <= MAX_D {
        let mut acc = [0f32; MAX_D];
        let acc = &mut acc[..d];
        for j in 0..p.len() {
            let (pj, vj) = (p[j], &values[j * d..][..d]);
            for i in 0..d {
                acc[i] += pj * vj[i];
            }
        }
        dst.copy_from_slice(acc);
    } else {
        dst.fill(0.0);
        for j in 0..p.len() {
            let (pj, vj) = (p[j], &values[j * d..][..d]);
            for i in 0..d {
                dst[i] += pj * vj[i];
            }
        }
    }
}

/// Attention for CPUs without AVX-512, with the scalar definitions' arithmetic (the scalar loops compiled for AVX2
/// loaded two floats at a time and kept the 64 value sums in memory: 22% of a profile of the AVX2 path).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `dot(q, key)` for every key, 8 keys at a time: per key, 16 lane sums of products in order (two registers),
    /// then `dot`'s pairwise tree (lane l += lane l + 8, + 4, + 2, + 1) across the 8 keys' registers, and `+ 0.0`.
    ///
    /// # Safety
    /// The CPU must support avx2; `q.len()` must be a multiple of 16.
    #[target_feature(enable = "avx2")]
    pub unsafe fn scores(q: &[f32], keys: &[f32]) -> Vec<f32> {
        let d = q.len();
        assert!(d.is_multiple_of(16) && d > 0);
        let n = keys.len() / d;
        let mut out = vec![0f32; n];
        let mut j = 0;
        while j + 8 <= n {
            score_block(q, keys.as_ptr().add(j * d), out.as_mut_ptr().add(j));
            j += 8;
        }
        for t in j..n {
            out[t] = super::dot(q, &keys[t * d..(t + 1) * d]);
        }
        out
    }

    /// `dot(q, key)` of the 8 keys (rows of q.len() values) from `keys` into `out[0..8]`.
    #[inline(always)]
    unsafe fn score_block(q: &[f32], keys: *const f32, out: *mut f32) {
        let d = q.len();
        let (mut lo, mut hi) = ([_mm256_setzero_ps(); 8], [_mm256_setzero_ps(); 8]);
        for c in 0..d / 16 {
            let (q_lo, q_hi) = (_mm256_loadu_ps(q.as_ptr().add(c * 16)), _mm256_loadu_ps(q.as_ptr().add(c * 16 + 8)));
            for t in 0..8 {
                let k = keys.add(t * d + c * 16);
                lo[t] = _mm256_add_ps(lo[t], _mm256_mul_ps(q_lo, _mm256_loadu_ps(k)));
                hi[t] = _mm256_add_ps(hi[t], _mm256_mul_ps(q_hi, _mm256_loadu_ps(k.add(8))));
            }
        }
        // Level 8: lane l + lane l + 8, one register of 8 lanes per key.
        let l8: [__m256; 8] = std::array::from_fn(|t| _mm256_add_ps(lo[t], hi[t]));
        // Level 4: keys 2i and 2i + 1 in one register, 4 lanes each: [a0+a4 .. a3+a7 | b0+b4 .. b3+b7].
        let l4: [__m256; 4] = std::array::from_fn(|i| {
            let (a, b) = (l8[2 * i], l8[2 * i + 1]);
            _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(a, b), _mm256_permute2f128_ps::<0x31>(a, b))
        });
        // Level 2: per 128-bit half, [x0+x2, x1+x3] of two keys: [k0, k2 | k1, k3] and [k4, k6 | k5, k7], 2 lanes each.
        let l2: [__m256; 2] = std::array::from_fn(|i| {
            let (a, b) = (l4[2 * i], l4[2 * i + 1]);
            _mm256_add_ps(_mm256_shuffle_ps::<0b01_00_01_00>(a, b), _mm256_shuffle_ps::<0b11_10_11_10>(a, b))
        });
        // Level 1: x0 + x1 per key, lanes [k0, k2, k4, k6 | k1, k3, k5, k7]; then into key order.
        let l1 = _mm256_add_ps(_mm256_shuffle_ps::<0b10_00_10_00>(l2[0], l2[1]), _mm256_shuffle_ps::<0b11_01_11_01>(l2[0], l2[1]));
        let sums = _mm256_permutevar8x32_ps(_mm256_add_ps(l1, _mm256_setzero_ps()), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_ps(out, sums);
    }

    /// `weigh_values` for rows of 64 after the softmax: the 64 sums stay in 8 registers, each key adds the same
    /// product in key order, so the same bits.
    ///
    /// # Safety
    /// The CPU must support avx2; `dst.len()` must be 64 and `values` hold `p.len()` rows of 64.
    #[target_feature(enable = "avx2")]
    pub unsafe fn weigh_values_64(p: &[f32], values: &[f32], dst: &mut [f32]) {
        assert!(dst.len() == 64 && values.len() >= p.len() * 64);
        let mut acc = [_mm256_setzero_ps(); 8];
        for (j, &pj) in p.iter().enumerate() {
            let (w, v) = (_mm256_set1_ps(pj), values.as_ptr().add(j * 64));
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(w, _mm256_loadu_ps(v.add(r * 8))));
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(dst.as_mut_ptr().add(r * 8), *acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// `dot(q, key)` for every key, 16 keys at a time, with exactly `dot`'s arithmetic: per key, 16 lane sums of
    /// products in order, then the pairwise tree (lane l += lane l + 8, + 4, + 2, + 1) and `+ 0.0`. The tree runs
    /// across 16 keys' registers at once, two registers per shuffle, instead of one horizontal sum per key.
    ///
    /// # Safety
    /// The CPU must support avx512f; `q.len()` must be a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores(q: &[f32], keys: &[f32]) -> Vec<f32> {
        let d = q.len();
        assert!(d.is_multiple_of(16) && d > 0);
        let n = keys.len() / d;
        let mut out = vec![0f32; n];
        let idx = level_indices();
        let mut j = 0;
        while j + 16 <= n {
            score_block(q, keys.as_ptr().add(j * d), &idx, out.as_mut_ptr().add(j));
            j += 16;
        }
        for t in j..n {
            out[t] = super::dot(q, &keys[t * d..(t + 1) * d]);
        }
        out
    }

    /// The tree levels' permutation indices in registers.
    #[inline(always)]
    unsafe fn level_indices() -> [[__m512i; 2]; 4] {
        std::array::from_fn(|l| LEVEL_INDEX[l].map(|i| _mm512_loadu_si512(i.as_ptr() as *const __m512i)))
    }

    /// `dot(q, key)` of the 16 keys (rows of q.len() values) from `keys` into `out[0..16]`.
    #[inline(always)]
    unsafe fn score_block(q: &[f32], keys: *const f32, idx: &[[__m512i; 2]; 4], out: *mut f32) {
        let d = q.len();
        let mut acc = [_mm512_setzero_ps(); 16];
        for c in 0..d / 16 {
            let qc = _mm512_loadu_ps(q.as_ptr().add(c * 16));
            for t in 0..16 {
                let k = _mm512_loadu_ps(keys.add(t * d + c * 16));
                acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(qc, k));
            }
        }
        // The pairwise tree, two registers per shuffle: 16 keys x 16 lanes -> 8 registers of 2 keys x 8 lanes
        // -> 4 of 4 x 4 -> 2 of 8 x 2 -> lane t = key t.
        let mut l1 = [_mm512_setzero_ps(); 8];
        for i in 0..8 {
            l1[i] = level(acc[2 * i], acc[2 * i + 1], &idx[0]);
        }
        let mut l2 = [_mm512_setzero_ps(); 4];
        for i in 0..4 {
            l2[i] = level(l1[2 * i], l1[2 * i + 1], &idx[1]);
        }
        let l3 = [level(l2[0], l2[1], &idx[2]), level(l2[2], l2[3], &idx[2])];
        let sums = level(l3[0], l3[1], &idx[3]);
        _mm512_storeu_ps(out, _mm512_add_ps(sums, _mm512_setzero_ps()));
    }

    /// Several queries against one KV head's cache (the query heads of a GQA group, for a few consecutive rows):
    /// query i sees the first `ns[i]` entries and writes its 64 outputs to `dsts[i]`; returns each query's
    /// probabilities. Each query's arithmetic is `scores`, the softmax and `weigh_values_64`'s, value for value
    /// (same bits), but the loops run key block by key block over all queries, so a block of 16 keys or values
    /// is fetched once for the whole tile instead of once per query.
    ///
    /// # Safety
    /// The CPU must support avx512f; every query has 64 values, `keys`/`values` hold max(ns) rows of 64, and each
    /// `dsts[i]` points to 64 writable floats no other query writes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn attend_tile_64(qs: &[&[f32]], ns: &[usize], keys: &[f32], values: &[f32], dsts: &[*mut f32]) -> Vec<Vec<f32>> {
        const D: usize = 64;
        let max_n = ns.iter().copied().max().unwrap_or(0);
        assert!(qs.iter().all(|q| q.len() == D) && keys.len() >= max_n * D && values.len() >= max_n * D);
        assert!(qs.len() == ns.len() && qs.len() == dsts.len());
        let idx = level_indices();
        let mut p: Vec<Vec<f32>> = ns.iter().map(|&n| vec![0f32; n]).collect();
        let mut j = 0;
        while j < max_n {
            for (q, (&n, p)) in qs.iter().zip(ns.iter().zip(p.iter_mut())) {
                if j + 16 <= n {
                    score_block(q, keys.as_ptr().add(j * D), &idx, p.as_mut_ptr().add(j));
                } else {
                    for t in j..n {
                        p[t] = super::dot(q, &keys[t * D..(t + 1) * D]);
                    }
                }
            }
            j += 16;
        }
        p.iter_mut().for_each(|p| super::softmax_in_place(p));
        let mut acc = vec![[_mm512_setzero_ps(); 4]; qs.len()];
        let mut j = 0;
        while j < max_n {
            for (acc, (&n, p)) in acc.iter_mut().zip(ns.iter().zip(&p)) {
                add_weighted_values_64(acc, p, values, j..(j + 16).min(n));
            }
            j += 16;
        }
        for (acc, &dst) in acc.iter().zip(dsts) {
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(dst.add(r * 16), *acc);
            }
        }
        p
    }

    /// `acc += p[t] * values[t]` for the keys `keys` in order, head size 64 (4 registers): the product then the
    /// sum, per lane, as the scalar `weigh_values` does.
    #[inline(always)]
    unsafe fn add_weighted_values_64(acc: &mut [__m512; 4], p: &[f32], values: &[f32], keys: std::ops::Range<usize>) {
        for t in keys {
            let (pt, vt) = (_mm512_set1_ps(p[t]), values.as_ptr().add(t * 64));
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_add_ps(*acc, _mm512_mul_ps(pt, _mm512_loadu_ps(vt.add(r * 16))));
            }
        }
    }

    /// `weigh_values` after the softmax for head size 64, the 64 sums held in 4 registers: per key and lane the
    /// same product then sum, in key order, so the same bits (the scalar loop kept them in memory, one store and
    /// reload per key).
    ///
    /// # Safety
    /// The CPU must support avx512f; `dst.len()` must be 64 and `values` hold `p.len()` rows of 64.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn weigh_values_64(p: &[f32], values: &[f32], dst: &mut [f32]) {
        assert!(dst.len() == 64 && values.len() >= p.len() * 64);
        let mut acc = [_mm512_setzero_ps(); 4];
        add_weighted_values_64(&mut acc, p, values, 0..p.len());
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(dst.as_mut_ptr().add(r * 16), *acc);
        }
    }

    /// One tree level: each key's first half of lanes plus its second half, keys of `a` then keys of `b`.
    #[inline(always)]
    unsafe fn level(a: __m512, b: __m512, idx: &[__m512i; 2]) -> __m512 {
        _mm512_add_ps(_mm512_permutex2var_ps(a, idx[0], b), _mm512_permutex2var_ps(a, idx[1], b))
    }

    /// The permutation indices of the four tree levels (keys of 16, 8, 4, 2 lanes), low and high halves, computed
    /// at compile time (computing them per call cost 2.7% of a benchmark's samples).
    const LEVEL_INDEX: [[[i32; 16]; 2]; 4] = {
        let mut all = [[[0i32; 16]; 2]; 4];
        let mut l = 0;
        while l < 4 {
            all[l] = [level_index(16 >> l, false), level_index(16 >> l, true)];
            l += 1;
        }
        all
    };

    /// Lane indices for one tree level: inputs hold keys of `s` lanes each (16 / s keys per register); the output
    /// holds twice as many keys of s / 2 lanes, the first half of the keys from `a` and the rest from `b`. `hi`
    /// picks the second half of each key's lanes.
    const fn level_index(s: usize, hi: bool) -> [i32; 16] {
        let mut idx = [0i32; 16];
        let (half, per_reg) = (s / 2, 16 / s);
        let mut o = 0;
        while o < 16 {
            let key = o / half;
            let (reg, k) = (key / per_reg, key % per_reg);
            idx[o] = (reg * 16 + k * s + o % half + if hi { half } else { 0 }) as i32;
            o += 1;
        }
        idx
    }
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

    /// Float64 attention of t rows after `past` cached entries, straight from the definition.
    fn naive(q: &[f32], k: &[f32], v: &[f32], dims: Dims, capacity: usize, past: usize) -> Vec<f32> {
        let Dims { n_head, n_kv, head_dim: d } = dims;
        let t = q.len() / (n_head * d);
        let mut out = vec![0f64; t * n_head * d];
        for row in 0..t {
            for h in 0..n_head {
                let g = h / (n_head / n_kv);
                let n = past + row + 1;
                let s: Vec<f64> = (0..n)
                    .map(|j| (0..d).map(|i| q[(row * n_head + h) * d + i] as f64 * k[(g * capacity + j) * d + i] as f64).sum())
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for j in 0..n {
                    for i in 0..d {
                        out[(row * n_head + h) * d + i] += (s[j] - m).exp() / z * v[(g * capacity + j) * d + i] as f64;
                    }
                }
            }
        }
        out.into_iter().map(|x| x as f32).collect()
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32 / 1000.0 - 1.0).collect()
    }

    fn seq<'a>(q: &'a [f32], k: &'a [f32], v: &'a [f32], capacity: usize, past: usize, want_probs: bool) -> Seq<'a> {
        Seq { q, k, v, capacity, past, want_probs }
    }

    #[test]
    fn matches_a_float64_reference_with_gqa_causal_rows_and_several_sequences() {
        let dims = Dims { n_head: 6, n_kv: 2, head_dim: 20 };
        let (q1, k1, v1) = (data(4 * 6 * 20, 1), data(2 * 12 * 20, 2), data(2 * 12 * 20, 3));
        let (q2, k2, v2) = (data(2 * 6 * 20, 4), data(2 * 8 * 20, 5), data(2 * 8 * 20, 6));
        let seqs = [seq(&q1, &k1, &v1, 12, 5, true), seq(&q2, &k2, &v2, 8, 0, false)];
        let (got, probs) = attend_batch(&seqs, dims);
        let mut want = naive(&q1, &k1, &v1, dims, 12, 5);
        want.extend(naive(&q2, &k2, &v2, dims, 8, 0));
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Row r of the first sequence sees past + r + 1 entries, each distribution sums to 1; none for the second.
        assert_eq!(probs[0].len(), 4 * 6);
        for (item, p) in probs[0].iter().enumerate() {
            assert_eq!(p.len(), 5 + item / 6 + 1);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert!(probs[1].is_empty());
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn simd_scores_equal_the_scalar_dot_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx512f") {
            return; // only the scalar path exists on this CPU
        }
        for (n, seed) in [(1, 1), (16, 2), (37, 3), (160, 4)] {
            let q = data(64, seed);
            let keys = data(n * 64, seed + 10);
            let want: Vec<u32> = (0..n).map(|j| dot(&q, &keys[j * 64..(j + 1) * 64]).to_bits()).collect();
            let got: Vec<u32> = unsafe { avx512::scores(&q, &keys) }.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{n} keys");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_scores_and_value_sums_equal_the_scalar_loops_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx2") {
            return; // only the scalar path exists on this CPU
        }
        for (n, seed) in [(1, 1), (8, 2), (16, 5), (37, 3), (160, 4)] {
            let q = data(64, seed);
            let keys = data(n * 64, seed + 10);
            let want: Vec<u32> = (0..n).map(|j| dot(&q, &keys[j * 64..(j + 1) * 64]).to_bits()).collect();
            let got: Vec<u32> = unsafe { avx2::scores(&q, &keys) }.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "scores, {n} keys");
            let mut p = data(n, seed + 20);
            let values = data(n * 64, seed + 30);
            let mut want = vec![0f32; 64];
            weigh_values(&mut p, &values, &mut want); // softmax in place, then the sum
            let mut got = vec![0f32; 64];
            unsafe { avx2::weigh_values_64(&p, &values, &mut got) };
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "values, {n} keys");
        }
    }

    #[test]
    fn simd_weighted_values_equal_the_scalar_loop_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx512f") {
            return; // only the scalar path exists on this CPU
        }
        for (n, seed) in [(1, 1), (17, 2), (300, 3)] {
            let mut p = data(n, seed);
            let values = data(n * 64, seed + 10);
            let mut want = vec![0f32; 64];
            weigh_values(&mut p, &values, &mut want); // softmax in place, then the sum
            let mut got = vec![0f32; 64];
            unsafe { avx512::weigh_values_64(&p, &values, &mut got) };
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{n} keys");
        }
    }

    #[test]
    fn grouped_tiles_give_every_row_the_bits_of_the_per_head_path() {
        // SmolLM2's shape, two sequences (45 rows after 7 cached, 20 rows), probabilities asked for the first.
        // On AVX-512 CPUs `attend_batch` takes the grouped path here; the per-head path is the reference.
        let dims = Dims { n_head: 9, n_kv: 3, head_dim: 64 };
        let width = 9 * 64;
        let (k, v) = (data(3 * 80 * 64, 21), data(3 * 80 * 64, 22));
        let (q1, q2) = (data(45 * width, 23), data(20 * width, 24));
        let seqs = [seq(&q1, &k, &v, 80, 7, true), seq(&q2, &k, &v, 80, 0, false)];
        let (grouped, gp) = attend_batch_with(&seqs, dims, true);
        let (per_head, hp) = attend_batch_with(&seqs, dims, false);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&grouped), bits(&per_head));
        assert_eq!(gp.len(), 2);
        assert!(gp[1].is_empty() && hp[1].is_empty());
        assert_eq!(gp[0].len(), 45 * 9);
        for (a, b) in gp[0].iter().zip(&hp[0]) {
            assert_eq!(bits(a), bits(b));
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_and_among_others() {
        let dims = Dims { n_head: 4, n_kv: 2, head_dim: 64 };
        let q = data(5 * 4 * 64, 7);
        let k = data(2 * 16 * 64, 8);
        let v = data(2 * 16 * 64, 9);
        let other = data(3 * 4 * 64, 10);
        // The 5 rows next to another sequence's 3 rows, then each row alone.
        let (all, _) = attend_batch(&[seq(&other, &k, &v, 16, 2, false), seq(&q, &k, &v, 16, 3, false)], dims);
        let all = &all[3 * 256..];
        for row in 0..5 {
            let (one, _) = attend_batch(&[seq(&q[row * 256..(row + 1) * 256], &k, &v, 16, 3 + row, false)], dims);
            assert_eq!(one, all[row * 256..(row + 1) * 256], "row {row}");
        }
    }
}
