//! Q8_0 matmul on AVX512-VNNI, with the weights repacked into 16-column tiles.
//!
//! candle 0.11's Q8_0 kernel (AVX2 `maddubs`) is compute-bound on this machine: one decode token reads 143 MB of
//! weights in 14.4 ms (10 GB/s), a third of the 31 GB/s one core can stream, and its cost grows linearly with the
//! number of rows, which is what made speculative verification and batching expensive (docs/engine.md). Here one
//! `vpdpbusd` multiplies 4 activation bytes by 4 weight bytes of 16 output columns at once (64 MACs), so a 32-value
//! block of one row against 16 columns takes 8 instructions instead of 96. The layout follows the idea of candle's
//! own x86 repack (`quantized/repack_x86.rs`, which only covers inner dimensions that are multiples of 256; SmolLM2
//! has 576): weights stored offset by +128 as unsigned bytes, corrected with 128 x the block's activation sum.
//!
//! Every output element is computed by the same instruction sequence whatever the number of rows and wherever its row
//! sits in the batch, so a batched forward gives bit-identical rows to one-row forwards (batching and speculative
//! verification stay exact). `matmul_reference` is the scalar definition the SIMD kernel must equal bit for bit.

use half::f16;

use crate::model::q4_tiles::Kernel;

/// Output columns per tile: one 512-bit register of i32/f32 lanes.
pub const TILE: usize = 16;
/// Values per Q8_0 block.
pub const BLOCK: usize = 32;
/// Bytes of one GGUF Q8_0 block: an f16 scale and 32 signed bytes.
const Q8_0_BYTES: usize = 2 + BLOCK;
/// Weight bytes of one (tile, block): 8 groups of 4 values, for 16 columns.
const TILE_BLOCK_BYTES: usize = TILE * BLOCK;
/// Rows computed together against one loaded weight tile (accumulators stay in registers).
pub(crate) const ROWS_PER_PASS: usize = 8;

/// Whether this CPU has the instructions the tiled kernel needs (checked once). `TTC_NO_AVX512=1` says no, so that
/// the AVX2 and candle paths can be measured and tested on an AVX-512 machine.
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            avx512f_allowed()
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Whether AVX-512F code may run: the CPU has it and `TTC_NO_AVX512=1` is not set. Every AVX-512 path of the engine
/// (kernels, quantizer, attention) asks this, so that the variable shows what a CPU without AVX-512 runs.
pub fn avx512f_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| {
        if std::env::var_os("TTC_NO_AVX512").is_some_and(|v| v == "1") {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// A Q8_0 weight matrix of shape (n, k) (n output columns, k inputs), repacked for the kernel.
pub struct PackedQ8 {
    pub n: usize,
    pub k: usize,
    blocks: usize,
    /// `[tile][block][column in tile]` weight scales.
    scales: Vec<f32>,
    /// `[tile][block][group of 4 values (8)][column (16)][4 bytes]`, each value + 128.
    qs: Vec<u8>,
}

impl PackedQ8 {
    /// Repack GGUF Q8_0 bytes of a row-major (n, k) matrix. `None` when the shape does not tile (n not a multiple
    /// of 16 or k of 32) or the bytes do not match the shape.
    pub fn from_q8_0_bytes(bytes: &[u8], n: usize, k: usize) -> Option<PackedQ8> {
        if n == 0
            || k == 0
            || !n.is_multiple_of(TILE)
            || !k.is_multiple_of(BLOCK)
            || bytes.len() != n * (k / BLOCK) * Q8_0_BYTES
        {
            return None;
        }
        let blocks = k / BLOCK;
        let mut scales = vec![0f32; n * blocks];
        let mut qs = vec![0u8; n * blocks * BLOCK];
        for col in 0..n {
            let (tile, c) = (col / TILE, col % TILE);
            for b in 0..blocks {
                let src = &bytes[(col * blocks + b) * Q8_0_BYTES..][..Q8_0_BYTES];
                let tb = tile * blocks + b;
                scales[tb * TILE + c] = f16::from_le_bytes([src[0], src[1]]).to_f32();
                let dst = &mut qs[tb * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES];
                for (j, &q) in src[2..].iter().enumerate() {
                    dst[(j / 4) * TILE * 4 + c * 4 + j % 4] = (q as i8 as i16 + 128) as u8;
                }
            }
        }
        Some(PackedQ8 {
            n,
            k,
            blocks,
            scales,
            qs,
        })
    }

    /// Bytes held by the repacked weights.
    pub fn size_in_bytes(&self) -> usize {
        self.qs.len() + self.scales.len() * 4
    }

    /// dst (m, n) = x (m, k) · Wᵀ, with x quantized to Q8_0 per row exactly as llama.cpp does (`QuantRows`).
    pub fn matmul(&self, x: &[f32], m: usize, dst: &mut [f32]) {
        self.matmul_with(crate::model::q4_tiles::kernel(), x, m, dst)
    }

    /// dst (m, n) = x (m, k) · Wᵀ with the given kernel (which the CPU must support).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, dst: &mut [f32]) {
        matmul_tiled(self, kernel, x, m, dst)
    }

    /// The scalar definition of the kernel (same arithmetic, same order): used on CPUs without AVX512-VNNI and by
    /// the tests that hold the SIMD kernel to it bit for bit.
    pub fn matmul_reference(&self, x: &[f32], m: usize, dst: &mut [f32]) {
        let a = QuantRows::new(x, m, self.k);
        self.matmul_reference_quantized(&a, dst);
    }

    fn matmul_reference_quantized(&self, a: &QuantRows, dst: &mut [f32]) {
        for row in 0..a.m {
            for col in 0..self.n {
                let (tile, c) = (col / TILE, col % TILE);
                let mut acc = 0f32;
                for b in 0..self.blocks {
                    let tb = tile * self.blocks + b;
                    let w = &self.qs[tb * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES];
                    let x = &a.qs[row * self.k + b * BLOCK..][..BLOCK];
                    let mut isum = 0i32;
                    for (j, &xq) in x.iter().enumerate() {
                        isum += w[(j / 4) * TILE * 4 + c * 4 + j % 4] as i32 * xq as i32;
                    }
                    isum -= a.bias[row * self.blocks + b];
                    let scale = self.scales[tb * TILE + c] * a.d[row * self.blocks + b];
                    acc = scale.mul_add(isum as f32, acc);
                }
                dst[row * self.n + col] = acc;
            }
        }
    }
}

/// A weight matrix packed in tiles of 16 columns, with a kernel per instruction set: what `matmul_tiled` needs to
/// run any of them. Every kernel gives the bits of `reference`.
pub(crate) trait Tiled: Sync {
    /// (n output columns, k inputs).
    fn shape(&self) -> (usize, usize);
    /// Rows `row0..row0 + rows` of dst for tile `tile` and, when `pair`, tile `tile + 1`.
    ///
    /// # Safety
    /// The CPU must support avx512f/bw/vnni, and `dst` must point to an (a.m, n) f32 matrix.
    #[cfg(target_arch = "x86_64")]
    unsafe fn avx512_rows(&self, a: &QuantRows, tile: usize, row0: usize, rows: usize, pair: bool, dst: *mut f32);
    /// Rows `row0..row0 + rows` of dst for tile `tile`.
    ///
    /// # Safety
    /// The CPU must support avx2, fma and f16c, and `dst` must point to an (a.m, n) f32 matrix.
    #[cfg(target_arch = "x86_64")]
    unsafe fn avx2_rows(&self, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32);
    /// The scalar definition, every row and column.
    fn reference(&self, a: &QuantRows, dst: &mut [f32]);
}

/// dst (m, n) = x (m, k) · Wᵀ for tiled weights, x quantized per row as llama.cpp does (`QuantRows`), with the given
/// kernel (which the CPU must support), split over the thread pool by `for_each_item`.
pub(crate) fn matmul_tiled(w: &impl Tiled, kernel: Kernel, x: &[f32], m: usize, dst: &mut [f32]) {
    let (n, k) = w.shape();
    assert_eq!(x.len(), m * k, "lhs is not ({m}, {k})");
    assert!(dst.len() >= m * n, "dst too small");
    let a = QuantRows::new(x, m, k);
    let dst_addr = dst.as_mut_ptr() as usize;
    // SAFETY (both SIMD arms): `for_each_item` hands each item its own rows x columns of dst, and `kernel` names
    // instructions this CPU has.
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => for_each_item(n / TILE, m, |tile, row0, rows, pair| unsafe {
            w.avx512_rows(&a, tile, row0, rows, pair, dst_addr as *mut f32)
        }),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => for_each_item(n / TILE, m, |tile, row0, rows, pair| unsafe {
            for t in tile..tile + if pair { 2 } else { 1 } {
                w.avx2_rows(&a, t, row0, rows, dst_addr as *mut f32);
            }
        }),
        _ => w.reference(&a, dst),
    }
}

impl Tiled for PackedQ8 {
    fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn avx512_rows(&self, a: &QuantRows, tile: usize, row0: usize, rows: usize, pair: bool, dst: *mut f32) {
        if pair {
            avx512::tile_pair_rows(self, a, tile, row0, rows, dst);
        } else {
            avx512::tile_rows(self, a, tile, row0, rows, dst);
        }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn avx2_rows(&self, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        avx2::tile_rows(self, a, tile, row0, rows, dst);
    }

    fn reference(&self, a: &QuantRows, dst: &mut [f32]) {
        self.matmul_reference_quantized(a, dst);
    }
}

/// Splits an (m rows) x (tiles of 16 columns) product over candle's thread pool and calls
/// `item(tile, row0, rows, pair)` for each piece: `rows` (at most ROWS_PER_PASS) rows from `row0`, for tile `tile`
/// and, when `pair`, tile `tile + 1` too. Pairs of tiles halve the broadcasts when several rows share them; one row
/// (decode) is bound by memory and runs faster as single tiles (measured). Items are (row pass, pair of tiles), pair
/// fastest, so a worker's range walks columns for one pass of rows. Every piece is disjoint from the others.
pub(crate) fn for_each_item(tiles: usize, m: usize, item: impl Fn(usize, usize, usize, bool) + Sync) {
    let per_item = if m == 1 { 1 } else { 2 };
    let pairs = tiles.div_ceil(per_item);
    let passes = m.div_ceil(ROWS_PER_PASS);
    candle_core::utils::barrier_pool().execute_chunked(passes * pairs, |range| {
        for it in range {
            let (pass, pair) = (it / pairs, it % pairs);
            let row0 = pass * ROWS_PER_PASS;
            let tile = per_item * pair;
            item(tile, row0, (m - row0).min(ROWS_PER_PASS), per_item == 2 && tile + 1 < tiles);
        }
    });
}

/// Activations quantized to Q8_0 per row as llama.cpp's x86 `quantize_row_q8_0`/`quantize_row_q8_1` do (scale
/// amax/127 stored as f16, values rounded to nearest even after multiplying by 127/amax), plus 128 x each block's sum to undo the Q8 weights' +128 offset, and
/// llama.cpp's Q8_1 block sum `s` (the scale times the sum of the quantized values, stored as f16) for Q4_1 weights.
pub(crate) struct QuantRows {
    pub(crate) m: usize,
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) bias: Vec<i32>,
    pub(crate) s: Vec<f32>,
}

impl QuantRows {
    pub(crate) fn new(x: &[f32], m: usize, k: usize) -> QuantRows {
        assert!(x.len() == m * k && k.is_multiple_of(BLOCK), "activations are not ({m}, {k}) in blocks of {BLOCK}");
        let blocks = k / BLOCK;
        let mut qs = vec![0i8; m * k];
        let mut d = vec![0f32; m * blocks];
        let mut bias = vec![0i32; m * blocks];
        let mut s = vec![0f32; m * blocks];
        let simd = supported();
        let avx2 = crate::model::q4_tiles::avx2_available();
        let addrs = [qs.as_mut_ptr() as usize, d.as_mut_ptr() as usize, bias.as_mut_ptr() as usize, s.as_mut_ptr() as usize];
        let block = |i: usize| {
            let src = &x[i * BLOCK..][..BLOCK];
            // SAFETY: block i owns its 32 bytes of qs and slot i of d, bias and s; the buffers outlive the loop.
            let dst = unsafe { std::slice::from_raw_parts_mut((addrs[0] as *mut i8).add(i * BLOCK), BLOCK) };
            #[cfg(target_arch = "x86_64")]
            let (scale, sum) = if simd {
                unsafe { avx512::quantize_block(src, dst) }
            } else if avx2 {
                unsafe { quantize_block_avx2(src, dst) }
            } else {
                quantize_block(src, dst)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let (scale, sum) = { let _ = (simd, avx2); quantize_block(src, dst) };
            unsafe {
                *(addrs[1] as *mut f32).add(i) = f16::from_f32(scale).to_f32();
                *(addrs[2] as *mut i32).add(i) = 128 * sum;
                *(addrs[3] as *mut f32).add(i) = f16::from_f32(sum as f32 * scale).to_f32();
            }
        };
        // A prefill's rows are quantized on every core (one row, decode, is not worth waking the pool for).
        crate::model::rowwise::for_rows(m, |row| (row * blocks..(row + 1) * blocks).for_each(block));
        QuantRows { m, qs, d, bias, s }
    }
}

/// One 32-value block the way llama.cpp's x86 `quantize_row_q8_0`/`_q8_1` do it (ggml-cpu/arch/x86/quants.c):
/// scale amax/127, values x · (127/amax) rounded to nearest, ties to even (`_mm256_round_ps(_MM_ROUND_NEAREST)`).
/// The same rounding as llama.cpp's keeps `native` comparable with it; bit-identical logits would also need its exact
/// float summation orders, since this model's quantized forward is chaotic under rounding (docs/engine.md, "Logits
/// against llama.cpp"). Returns the scale and the sum of the quantized values.
#[inline(always)]
fn quantize_block(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
    let amax = src.iter().fold(0f32, |a, v| a.max(v.abs()));
    let scale = amax / 127.0;
    let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in dst.iter_mut().zip(src) {
        *q = (v * inv).round_ties_even() as i8;
        sum += *q as i32;
    }
    (scale, sum)
}

/// `quantize_block` compiled for AVX2: the same IEEE operations, so the same bits, but the rounding is one
/// instruction instead of a call to libm's `rintf` (which took 6% of a profile of the AVX2 path).
///
/// # Safety
/// The CPU must support avx2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_block_avx2(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
    quantize_block(src, dst)
}

/// Calls `$kernel::<R>(args)` with the constant R = `$rows` (1..=8): a constant row count lets the accumulators live
/// in registers. Shared by the Q8_0 and Q4_1 kernels.
macro_rules! with_const_rows {
    ($rows:expr, $kernel:ident($($arg:expr),*)) => {{
        assert!((1..=8).contains(&$rows) && $crate::model::q8_tiles::ROWS_PER_PASS == 8, "a pass has 1..=8 rows");
        match $rows {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            _ => $kernel::<8>($($arg),*),
        }
    }};
}
pub(crate) use with_const_rows;

/// The tiles without AVX-512 (most laptops, AMD Zen 2/3): the same packing read as two 8-column halves.
/// `vpmaddubsw` multiplies unsigned by signed bytes, and the stored w + 128 times an activation could saturate its
/// i16 pairs (2 x 255 x 127 > 32,767), so each group is turned back into signed w (one XOR) and multiplied as
/// |w| x (x · sign w) (`vpabsb`, `vpsignb`, llama.cpp's trick for Q8_0): a pair is then at most 2 x 128 x 127 =
/// 32,512, exact. The integer block sums equal the scalar definition's, and the f32 steps are the same, so the result
/// is the same bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedQ8, QuantRows, BLOCK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// Rows per pass: 4 rows keep accumulators, sums and one group's weights within the 16 registers.
    const ROWS: usize = 4;

    /// Rows `row0..row0 + rows` (at most 8) of dst for the 16 columns of `tile`.
    ///
    /// # Safety
    /// The CPU must support avx2 and fma, and `dst` must point to an (a.m, w.n) f32 matrix.
    pub unsafe fn tile_rows(w: &PackedQ8, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        for half in 0..2 {
            for r0 in (row0..row0 + rows).step_by(ROWS) {
                match (row0 + rows - r0).min(ROWS) {
                    1 => half_rows_n::<1>(w, a, tile, half, r0, dst),
                    2 => half_rows_n::<2>(w, a, tile, half, r0, dst),
                    3 => half_rows_n::<3>(w, a, tile, half, r0, dst),
                    _ => half_rows_n::<4>(w, a, tile, half, r0, dst),
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn half_rows_n<const R: usize>(w: &PackedQ8, a: &QuantRows, tile: usize, half: usize, row0: usize, dst: *mut f32) {
        let flip = _mm256_set1_epi8(-128);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..w.blocks {
            let tb = tile * w.blocks + b;
            let wq = w.qs.as_ptr().add(tb * TILE_BLOCK_BYTES + half * 32);
            let mut isum = [_mm256_setzero_si256(); R];
            for g in 0..BLOCK / 4 {
                let signed = _mm256_xor_si256(_mm256_loadu_si256(wq.add(g * TILE * 4) as *const __m256i), flip);
                let magnitude = _mm256_abs_epi8(signed);
                for (r, isum) in isum.iter_mut().enumerate() {
                    let xq = a.qs.as_ptr().add((row0 + r) * w.k + b * BLOCK) as *const i32;
                    let x = _mm256_sign_epi8(_mm256_set1_epi32(xq.add(g).read_unaligned()), signed);
                    *isum = _mm256_add_epi32(*isum, _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, x), ones));
                }
            }
            let ws = _mm256_loadu_ps(w.scales.as_ptr().add(tb * TILE + half * 8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let scale = _mm256_mul_ps(ws, _mm256_set1_ps(*a.d.get_unchecked((row0 + r) * w.blocks + b)));
                *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum[r]), *acc);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(dst.add((row0 + r) * w.n + tile * TILE + half * 8), *acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedQ8, QuantRows, BLOCK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// `quantize_block` in AVX-512, with the same results: the max is exact in any order, x · inv is one IEEE
    /// multiply either way, and both round to nearest even.
    ///
    /// # Safety
    /// The CPU must support avx512f; `src` and `dst` must hold 32 values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quantize_block(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
        assert!(src.len() >= BLOCK && dst.len() >= BLOCK);
        let x = [_mm512_loadu_ps(src.as_ptr()), _mm512_loadu_ps(src.as_ptr().add(16))];
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x[0]), _mm512_abs_ps(x[1])));
        let scale = amax / 127.0;
        let inv = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let mut sum = _mm512_setzero_si512();
        for h in 0..2 {
            let v = _mm512_mul_ps(x[h], inv);
            let q = _mm512_cvtps_epi32(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v));
            sum = _mm512_add_epi32(sum, q);
            _mm_storeu_si128(dst.as_mut_ptr().add(h * 16) as *mut __m128i, _mm512_cvtepi32_epi8(q));
        }
        (scale, _mm512_reduce_add_epi32(sum))
    }

    /// Rows `row0..row0 + rows` (at most ROWS_PER_PASS) of dst for the 16 columns of `tile`.
    ///
    /// # Safety
    /// The CPU must support avx512f/bw/vnni, and `dst` must point to an (a.m, w.n) f32 matrix.
    pub unsafe fn tile_rows(w: &PackedQ8, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        with_const_rows!(rows, tile_rows_n(w, a, tile, row0, dst))
    }

    /// Like `tile_rows` for tiles `tile` and `tile + 1` at once: each activation broadcast feeds both tiles, which
    /// halves the broadcasts per multiply. Same arithmetic per output element, so the same bits.
    ///
    /// # Safety
    /// As `tile_rows`, and `tile + 1` must be a tile of `w`.
    pub unsafe fn tile_pair_rows(w: &PackedQ8, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        with_const_rows!(rows, tile_pair_rows_n(w, a, tile, row0, dst))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_pair_rows_n<const R: usize>(w: &PackedQ8, a: &QuantRows, tile: usize, row0: usize, dst: *mut f32) {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for b in 0..w.blocks {
            let (tb0, tb1) = (tile * w.blocks + b, (tile + 1) * w.blocks + b);
            let (wq0, wq1) = (w.qs.as_ptr().add(tb0 * TILE_BLOCK_BYTES), w.qs.as_ptr().add(tb1 * TILE_BLOCK_BYTES));
            let mut s0 = [_mm512_setzero_si512(); R];
            let mut s1 = [_mm512_setzero_si512(); R];
            for g in 0..8 {
                let w0 = _mm512_loadu_si512(wq0.add(g * TILE * 4) as *const __m512i);
                let w1 = _mm512_loadu_si512(wq1.add(g * TILE * 4) as *const __m512i);
                for r in 0..R {
                    let xq = a.qs.as_ptr().add((row0 + r) * w.k + b * BLOCK) as *const i32;
                    let x = _mm512_set1_epi32(xq.add(g).read_unaligned());
                    s0[r] = _mm512_dpbusd_epi32(s0[r], w0, x);
                    s1[r] = _mm512_dpbusd_epi32(s1[r], w1, x);
                }
            }
            let dw0 = _mm512_loadu_ps(w.scales.as_ptr().add(tb0 * TILE));
            let dw1 = _mm512_loadu_ps(w.scales.as_ptr().add(tb1 * TILE));
            for r in 0..R {
                let blk = (row0 + r) * w.blocks + b;
                let bias = _mm512_set1_epi32(*a.bias.get_unchecked(blk));
                let da = _mm512_set1_ps(*a.d.get_unchecked(blk));
                let i0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(s0[r], bias));
                let i1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(s1[r], bias));
                acc0[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw0, da), i0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw1, da), i1, acc1[r]);
            }
        }
        for r in 0..R {
            let out = dst.add((row0 + r) * w.n + tile * TILE);
            _mm512_storeu_ps(out, acc0[r]);
            _mm512_storeu_ps(out.add(TILE), acc1[r]);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_rows_n<const R: usize>(w: &PackedQ8, a: &QuantRows, tile: usize, row0: usize, dst: *mut f32) {
        let mut acc = [_mm512_setzero_ps(); R];
        let mut wv = [_mm512_setzero_si512(); 8];
        for b in 0..w.blocks {
            let tb = tile * w.blocks + b;
            let wq = w.qs.as_ptr().add(tb * TILE_BLOCK_BYTES);
            for (g, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(wq.add(g * TILE * 4) as *const __m512i);
            }
            let dw = _mm512_loadu_ps(w.scales.as_ptr().add(tb * TILE));
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = row0 + r;
                let xq = a.qs.as_ptr().add(row * w.k + b * BLOCK) as *const i32;
                // Two independent chains; integer sums are exact, so the split changes nothing.
                let mut s0 = _mm512_setzero_si512();
                let mut s1 = _mm512_setzero_si512();
                for g in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, wv[g], _mm512_set1_epi32(xq.add(g).read_unaligned()));
                    s1 = _mm512_dpbusd_epi32(s1, wv[g + 1], _mm512_set1_epi32(xq.add(g + 1).read_unaligned()));
                }
                let blk = row * w.blocks + b;
                let isum = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(*a.bias.get_unchecked(blk)));
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(blk)));
                *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(isum), *acc);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(dst.add((row0 + r) * w.n + tile * TILE), *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random (n, k) matrix as GGUF Q8_0 bytes, and its dequantized values.
    fn random_q8_0(n: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut bytes, mut values) = (Vec::new(), Vec::new());
        for _ in 0..n * k / BLOCK {
            let d = f16::from_f32(rng.random_range(0.001f32..0.05));
            bytes.extend_from_slice(&d.to_le_bytes());
            for _ in 0..BLOCK {
                let q: i8 = rng.random_range(-128i16..=127) as i8;
                bytes.push(q as u8);
                values.push(q as f32 * d.to_f32());
            }
        }
        (bytes, values)
    }

    fn random_rows(m: usize, k: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..m * k).map(|_| rng.random_range(-3.0f32..3.0)).collect()
    }

    #[test]
    fn simd_quantization_rounds_exactly_like_the_scalar_definition() {
        let (avx512, avx2) = (supported(), crate::model::q4_tiles::avx2_available());
        // Random blocks, plus blocks built so that x * inv lands on exact .5 ties and on zero.
        let mut blocks: Vec<Vec<f32>> = (0..200).map(|s| random_rows(1, BLOCK, 100 + s)).collect();
        blocks.push((0..32).map(|i| (i as f32 - 16.0) * 0.5 + if i == 31 { 112.0 } else { 0.0 }).collect());
        blocks.push((0..32).map(|i| if i == 0 { 127.0 } else { i as f32 - 15.5 }).collect());
        blocks.push(vec![0.0; 32]);
        for (n, b) in blocks.iter().enumerate() {
            let (mut want, mut got) = ([0i8; 32], [0i8; 32]);
            let w = quantize_block(b, &mut want);
            if avx512 {
                let g = unsafe { avx512::quantize_block(b, &mut got) };
                assert_eq!((w.0.to_bits(), w.1, want), (g.0.to_bits(), g.1, got), "avx512, block {n}");
            }
            if avx2 {
                let g = unsafe { quantize_block_avx2(b, &mut got) };
                assert_eq!((w.0.to_bits(), w.1, want), (g.0.to_bits(), g.1, got), "avx2, block {n}");
            }
        }
    }

    #[test]
    fn shapes_that_do_not_tile_are_refused() {
        assert!(PackedQ8::from_q8_0_bytes(&[0; 34], 1, 32).is_none());
        assert!(PackedQ8::from_q8_0_bytes(&[0; 16 * 34], 16, 32).is_some());
        assert!(PackedQ8::from_q8_0_bytes(&[0; 16 * 34 - 1], 16, 32).is_none());
    }

    #[test]
    fn kernel_equals_the_scalar_definition_bit_for_bit() {
        let (n, k) = (48, 576);
        let (bytes, _) = random_q8_0(n, k, 1);
        let w = PackedQ8::from_q8_0_bytes(&bytes, n, k).unwrap();
        for m in 1..=17 {
            let x = random_rows(m, k, m as u64);
            let (mut fast, mut slow) = (vec![0f32; m * n], vec![0f32; m * n]);
            w.matmul(&x, m, &mut fast);
            w.matmul_reference(&x, m, &mut slow);
            assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "m = {m}"
            );
        }
    }

    #[test]
    fn every_kernel_this_cpu_has_equals_the_scalar_definition_bit_for_bit() {
        let (n, k) = (48, 192);
        let (bytes, _) = random_q8_0(n, k, 9);
        let w = PackedQ8::from_q8_0_bytes(&bytes, n, k).unwrap();
        let kernels: Vec<Kernel> = [Kernel::Avx512Vnni, Kernel::Avx2].into_iter().filter(|k| k.available()).collect();
        for kern in kernels {
            for m in [1, 2, 3, 4, 5, 7, 8, 9, 17] {
                let x = random_rows(m, k, 50 + m as u64);
                let (mut fast, mut slow) = (vec![0f32; m * n], vec![0f32; m * n]);
                w.matmul_with(kern, &x, m, &mut fast);
                w.matmul_reference(&x, m, &mut slow);
                assert_eq!(
                    fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{kern:?}, m = {m}"
                );
            }
        }
    }

    #[test]
    fn rows_are_identical_alone_and_in_a_batch() {
        let (n, k) = (32, 96);
        let (bytes, _) = random_q8_0(n, k, 2);
        let w = PackedQ8::from_q8_0_bytes(&bytes, n, k).unwrap();
        let m = 13;
        let x = random_rows(m, k, 3);
        let mut batched = vec![0f32; m * n];
        w.matmul(&x, m, &mut batched);
        for row in 0..m {
            let mut alone = vec![0f32; n];
            w.matmul(&x[row * k..(row + 1) * k], 1, &mut alone);
            assert_eq!(alone, batched[row * n..(row + 1) * n], "row {row}");
        }
    }

    #[test]
    fn result_matches_the_dequantized_product() {
        let (n, k) = (32, 128);
        let (bytes, values) = random_q8_0(n, k, 4);
        let w = PackedQ8::from_q8_0_bytes(&bytes, n, k).unwrap();
        let m = 5;
        let x = random_rows(m, k, 5);
        let mut got = vec![0f32; m * n];
        w.matmul(&x, m, &mut got);
        for row in 0..m {
            for col in 0..n {
                let exact: f32 = (0..k).map(|i| x[row * k + i] * values[col * k + i]).sum();
                // Activation quantization to 8 bits: error well under 1% of the row's scale.
                let tol = 0.01
                    * (0..k)
                        .map(|i| (x[row * k + i] * values[col * k + i]).abs())
                        .sum::<f32>();
                assert!(
                    (got[row * n + col] - exact).abs() <= tol,
                    "({row},{col}): {} vs {exact}",
                    got[row * n + col]
                );
            }
        }
    }
}
