//! Row-wise operations of a block (RMSNorm, SiLU-gated product) split over candle's barrier pool, the same pool
//! the matmul tiles and attention use.
//!
//! candle ran them on one thread (SiLU, the product) or on rayon's pool (RMSNorm above 32 rows), whose threads
//! then competed for the 2 cores with the barrier pool's spinning workers. The arithmetic is candle's, expression
//! for expression (`candle_nn::ops::rms_norm`'s `rms_row`, `Silu::f32` then the product), so every value keeps its
//! bits (a test holds them to candle) and rows stay independent of each other.

/// Rows below this run on the calling thread: waking the pool costs more than the work (decode is 1 row).
const PARALLEL_MIN_ROWS: usize = 16;

/// Calls `f(row)` for rows `0..rows`, split over the barrier pool when there are enough of them (also the
/// activation quantizer's loop, `QuantRows::new`).
pub(crate) fn for_rows(rows: usize, f: impl Fn(usize) + Sync) {
    if rows < PARALLEL_MIN_ROWS {
        (0..rows).for_each(f);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(rows, |range| range.for_each(&f));
    }
}

/// A destination that rows write to in disjoint slices from several threads.
struct SharedRows {
    ptr: usize,
    width: usize,
}

impl SharedRows {
    fn new(dst: &mut [f32], width: usize) -> SharedRows {
        SharedRows { ptr: dst.as_mut_ptr() as usize, width }
    }

    /// # Safety
    /// Each row must be taken by one caller only, and the buffer must outlive the call.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, r: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut((self.ptr as *mut f32).add(r * self.width), self.width)
    }
}

/// RMSNorm of each row of `x` (rows of `gain.len()` values), times `gain`, with candle's arithmetic.
pub fn rms_norm(x: &[f32], gain: &[f32], eps: f32) -> Vec<f32> {
    let n = gain.len();
    assert!(n > 0 && x.len().is_multiple_of(n), "rows are not of the gain's width");
    let mut dst = vec![0f32; x.len()];
    let out = SharedRows::new(&mut dst, n);
    for_rows(x.len() / n, |r| {
        // SAFETY: row r is written by this call only.
        let d = unsafe { out.row(r) };
        rms_row(&x[r * n..][..n], gain, eps, d);
    });
    dst
}

#[inline(always)]
fn rms_row(src: &[f32], gain: &[f32], eps: f32, dst: &mut [f32]) {
    let sum2 = src.iter().map(|&v| v * v).sum::<f32>();
    let m = (sum2 / src.len() as f32 + eps).sqrt();
    for ((d, s), g) in dst.iter_mut().zip(src).zip(gain) {
        *d = *s / m * *g;
    }
}

/// SwiGLU's product for rows of fused `[gate | up]` (each row 2 x `n_ff` values): `silu(gate) * up`, as
/// (rows, n_ff).
pub fn silu_mul(gate_up: &[f32], n_ff: usize) -> Vec<f32> {
    assert!(n_ff > 0 && gate_up.len().is_multiple_of(2 * n_ff), "rows are not [gate | up] of width 2 x n_ff");
    let rows = gate_up.len() / (2 * n_ff);
    let mut dst = vec![0f32; rows * n_ff];
    let out = SharedRows::new(&mut dst, n_ff);
    for_rows(rows, |r| {
        // SAFETY: row r is written by this call only.
        let d = unsafe { out.row(r) };
        let (gate, up) = gate_up[r * 2 * n_ff..][..2 * n_ff].split_at(n_ff);
        for ((d, &g), &u) in d.iter_mut().zip(gate).zip(up) {
            let silu = g / (1.0 + (-g).exp());
            *d = silu * u;
        }
    });
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 20011) as f32 / 1000.0 - 10.0).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn rms_norm_equals_candle_bit_for_bit_alone_and_in_parallel() {
        let (n, gain) = (576, data(576, 7));
        for rows in [1, 3, 40] {
            let x = data(rows * n, rows as u32);
            let ours = rms_norm(&x, &gain, 1e-5);
            let xt = Tensor::from_vec(x.clone(), (rows, n), &Device::Cpu).unwrap();
            let gt = Tensor::from_vec(gain.clone(), n, &Device::Cpu).unwrap();
            let theirs: Vec<f32> = candle_nn::ops::rms_norm(&xt, &gt, 1e-5).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(bits(&ours), bits(&theirs), "{rows} rows");
        }
    }

    #[test]
    fn silu_mul_equals_candle_bit_for_bit_alone_and_in_parallel() {
        let n_ff = 96;
        for rows in [1, 20] {
            let gu = data(rows * 2 * n_ff, 3);
            let ours = silu_mul(&gu, n_ff);
            let t = Tensor::from_vec(gu.clone(), (rows, 2 * n_ff), &Device::Cpu).unwrap();
            let (gate, up) = (t.narrow(1, 0, n_ff).unwrap(), t.narrow(1, n_ff, n_ff).unwrap());
            let theirs: Vec<f32> = (candle_nn::ops::silu(&gate).unwrap() * up).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(bits(&ours), bits(&theirs), "{rows} rows");
        }
    }
}
