//! Q4_1 matmul on AVX512-VNNI: the file's own 4-bit blocks, repacked into 16-column tiles and unpacked in registers.
//!
//! Decode of this model is bound by the bytes of weights streamed per token. The Q8_0 tiles (`q8_tiles`) stream
//! 34 bytes per 32 weights; the file's Q4_1 blocks hold the same weights in 20 (two f16 values `d` and `m`, and 32
//! 4-bit `q`, weight = d·q + m). Here a tile-block keeps the 4-bit values packed: each 512-bit load holds two groups
//! of 4 values for 16 columns (low and high nibble, which is where Q4_1 already stores values j and j + 16), and one
//! AND and one shift unpack them into unsigned bytes that `vpdpbusd` multiplies with the signed activation bytes
//! directly (no +128 offset as in Q8_0).
//!
//! The arithmetic is llama.cpp's `ggml_vec_dot_q4_1_q8_1`: activations quantized per 32-value block (scale `d_x`,
//! and `s_x` = d_x · Σq_x stored as f16), and per block `d_w·d_x·Σ q_w·q_x + m_w·s_x`. As in `q8_tiles`, every
//! output element is computed by the same instruction sequence whatever the number of rows and wherever its row sits
//! in the batch, so batched rows equal one-row forwards bit for bit; `matmul_reference` is the scalar definition.

use crate::model::q8_tiles::{matmul_tiled, QuantRows, Tiled, BLOCK, TILE};
use half::f16;

/// Bytes of one GGUF Q4_1 block: f16 d, f16 m, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 4 + BLOCK / 2;
/// Packed 4-bit bytes of one (tile, block): 4 registers of 16 columns x 4 bytes.
const TILE_BLOCK_BYTES: usize = TILE * BLOCK / 2;

/// Which implementation of the tiles runs: the same packing and the same result bits in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// 512-bit `vpdpbusd`, 16 columns per instruction.
    Avx512Vnni,
    /// 256-bit `vpmaddubsw` + `vpmaddwd` (no AVX-512): two 8-column halves per tile. 4-bit weights times 8-bit
    /// activations cannot saturate `vpmaddubsw`'s i16 pairs (2 x 15 x 128 < 32767), so sums stay exact.
    Avx2,
    /// The scalar definition (too slow for serving: the engine keeps Q8_0 when this is all there is).
    Scalar,
}

impl Kernel {
    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Avx512Vnni => crate::model::q8_tiles::supported(),
            Kernel::Avx2 => avx2_available(),
            Kernel::Scalar => true,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kernel::Avx512Vnni => "q4_1 tiles (avx512-vnni)",
            Kernel::Avx2 => "q4_1 tiles (avx2)",
            Kernel::Scalar => "q4_1 tiles (scalar)",
        }
    }
}

/// The fastest implementation this CPU runs (checked once).
pub fn kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        if crate::model::q8_tiles::supported() {
            return Kernel::Avx512Vnni;
        }
        if avx2_available() {
            return Kernel::Avx2;
        }
        Kernel::Scalar
    })
}

/// Whether the CPU has what `Kernel::Avx2` needs.
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A Q4_1 weight matrix of shape (n, k), repacked for the kernel.
pub struct PackedQ4_1 {
    pub n: usize,
    pub k: usize,
    blocks: usize,
    /// `[tile][block][column in tile]` f16 bits of d, then the same for m.
    d: Vec<u16>,
    m: Vec<u16>,
    /// `[tile][block][register h (4)][column (16)][byte j (4)]`: low nibble value 4h + j, high nibble 16 + 4h + j.
    qs: Vec<u8>,
}

impl PackedQ4_1 {
    /// Repack GGUF Q4_1 bytes of row-major matrices stacked along the output dimension (a fused q/k/v projection),
    /// multiplying part i's d and m by `scales[i]`. `None` when the shape does not tile (n not a multiple of 16 or k
    /// of 32), the bytes do not match, or a scaled d or m is not exact in f16 (then the caller keeps Q8_0).
    pub fn from_q4_1_parts(parts: &[(&[u8], usize)], k: usize, scales: &[f32]) -> Option<PackedQ4_1> {
        let n: usize = parts.iter().map(|p| p.1).sum();
        if n == 0 || k == 0 || !n.is_multiple_of(TILE) || !k.is_multiple_of(BLOCK) || scales.len() != parts.len() {
            return None;
        }
        let blocks = k / BLOCK;
        let mut d = vec![0u16; n * blocks];
        let mut m = vec![0u16; n * blocks];
        let mut qs = vec![0u8; n * blocks * TILE_BLOCK_BYTES / TILE];
        let mut col = 0;
        for (&(bytes, rows), &scale) in parts.iter().zip(scales) {
            if bytes.len() != rows * blocks * Q4_1_BYTES {
                return None;
            }
            for r in 0..rows {
                let (tile, c) = (col / TILE, col % TILE);
                for b in 0..blocks {
                    let src = &bytes[(r * blocks + b) * Q4_1_BYTES..][..Q4_1_BYTES];
                    let tb = tile * blocks + b;
                    d[tb * TILE + c] = scaled_f16([src[0], src[1]], scale)?;
                    m[tb * TILE + c] = scaled_f16([src[2], src[3]], scale)?;
                    let dst = &mut qs[tb * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES];
                    for (i, &byte) in src[4..].iter().enumerate() {
                        dst[(i / 4) * TILE * 4 + c * 4 + i % 4] = byte;
                    }
                }
                col += 1;
            }
        }
        Some(PackedQ4_1 { n, k, blocks, d, m, qs })
    }

    /// Bytes held by the repacked weights.
    pub fn size_in_bytes(&self) -> usize {
        self.qs.len() + (self.d.len() + self.m.len()) * 2
    }

    /// dst (m, n) = x (m, k) · Wᵀ, with this CPU's fastest kernel.
    pub fn matmul(&self, x: &[f32], m: usize, dst: &mut [f32]) {
        self.matmul_with(kernel(), x, m, dst)
    }

    /// dst (m, n) = x (m, k) · Wᵀ with the given kernel (which the CPU must support).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, dst: &mut [f32]) {
        matmul_tiled(self, kernel, x, m, dst)
    }

    /// The scalar definition of the kernel (same arithmetic, same order).
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
                        let byte = w[(j % 16 / 4) * TILE * 4 + c * 4 + j % 4];
                        let q = if j < 16 { byte & 0x0F } else { byte >> 4 };
                        isum += q as i32 * xq as i32;
                    }
                    let blk = row * self.blocks + b;
                    let dw = f16::from_bits(self.d[tb * TILE + c]).to_f32();
                    let mw = f16::from_bits(self.m[tb * TILE + c]).to_f32();
                    acc = (dw * a.d[blk]).mul_add(isum as f32, acc);
                    acc = mw.mul_add(a.s[blk], acc);
                }
                dst[row * self.n + col] = acc;
            }
        }
    }
}

impl Tiled for PackedQ4_1 {
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

/// f16 bits of `bytes` (little-endian f16) times `scale`, if the product is exact in f16.
fn scaled_f16(bytes: [u8; 2], scale: f32) -> Option<u16> {
    let v = f16::from_le_bytes(bytes);
    if scale == 1.0 {
        return Some(v.to_bits());
    }
    let want = v.to_f32() * scale;
    let h = f16::from_f32(want);
    (h.to_f32() == want).then_some(h.to_bits())
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedQ4_1, QuantRows, BLOCK, TILE, TILE_BLOCK_BYTES};
    use crate::model::q8_tiles::with_const_rows;
    use std::arch::x86_64::*;

    /// Rows `row0..row0 + rows` (at most 8) of dst for the 16 columns of `tile`.
    ///
    /// # Safety
    /// The CPU must support avx512f/bw/vnni, and `dst` must point to an (a.m, w.n) f32 matrix.
    pub unsafe fn tile_rows(w: &PackedQ4_1, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        with_const_rows!(rows, tile_rows_n(w, a, tile, row0, dst))
    }

    /// Like `tile_rows` for tiles `tile` and `tile + 1`: each activation broadcast feeds both.
    ///
    /// # Safety
    /// As `tile_rows`, and `tile + 1` must be a tile of `w`.
    pub unsafe fn tile_pair_rows(w: &PackedQ4_1, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        with_const_rows!(rows, tile_pair_rows_n(w, a, tile, row0, dst))
    }

    /// The 8 registers of unsigned 4-bit weights (group g = values 4g..4g+3 of 16 columns) of one tile-block.
    #[inline(always)]
    unsafe fn unpack(wq: *const u8) -> [__m512i; 8] {
        let low = _mm512_set1_epi8(0x0F);
        let mut wv = [_mm512_setzero_si512(); 8];
        for h in 0..4 {
            let v = _mm512_loadu_si512(wq.add(h * TILE * 4) as *const __m512i);
            wv[h] = _mm512_and_si512(v, low);
            wv[h + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
        }
        wv
    }

    /// d and m of one tile-block as f32 (the f16 → f32 conversion is exact).
    #[inline(always)]
    unsafe fn scales(w: &PackedQ4_1, tb: usize) -> (__m512, __m512) {
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(w.d.as_ptr().add(tb * TILE) as *const __m256i));
        let m = _mm512_cvtph_ps(_mm256_loadu_si256(w.m.as_ptr().add(tb * TILE) as *const __m256i));
        (d, m)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_rows_n<const R: usize>(w: &PackedQ4_1, a: &QuantRows, tile: usize, row0: usize, dst: *mut f32) {
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..w.blocks {
            let tb = tile * w.blocks + b;
            let wv = unpack(w.qs.as_ptr().add(tb * TILE_BLOCK_BYTES));
            let (dw, mw) = scales(w, tb);
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
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(blk)));
                *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), *acc);
                *acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(*a.s.get_unchecked(blk)), *acc);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(dst.add((row0 + r) * w.n + tile * TILE), *acc);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_pair_rows_n<const R: usize>(w: &PackedQ4_1, a: &QuantRows, tile: usize, row0: usize, dst: *mut f32) {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for b in 0..w.blocks {
            let (tb0, tb1) = (tile * w.blocks + b, (tile + 1) * w.blocks + b);
            let wv0 = unpack(w.qs.as_ptr().add(tb0 * TILE_BLOCK_BYTES));
            let wv1 = unpack(w.qs.as_ptr().add(tb1 * TILE_BLOCK_BYTES));
            let mut s0 = [_mm512_setzero_si512(); R];
            let mut s1 = [_mm512_setzero_si512(); R];
            for g in 0..8 {
                for r in 0..R {
                    let xq = a.qs.as_ptr().add((row0 + r) * w.k + b * BLOCK) as *const i32;
                    let x = _mm512_set1_epi32(xq.add(g).read_unaligned());
                    s0[r] = _mm512_dpbusd_epi32(s0[r], wv0[g], x);
                    s1[r] = _mm512_dpbusd_epi32(s1[r], wv1[g], x);
                }
            }
            let ((dw0, mw0), (dw1, mw1)) = (scales(w, tb0), scales(w, tb1));
            for r in 0..R {
                let blk = (row0 + r) * w.blocks + b;
                let da = _mm512_set1_ps(*a.d.get_unchecked(blk));
                let sa = _mm512_set1_ps(*a.s.get_unchecked(blk));
                acc0[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw0, da), _mm512_cvtepi32_ps(s0[r]), acc0[r]);
                acc0[r] = _mm512_fmadd_ps(mw0, sa, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw1, da), _mm512_cvtepi32_ps(s1[r]), acc1[r]);
                acc1[r] = _mm512_fmadd_ps(mw1, sa, acc1[r]);
            }
        }
        for r in 0..R {
            let out = dst.add((row0 + r) * w.n + tile * TILE);
            _mm512_storeu_ps(out, acc0[r]);
            _mm512_storeu_ps(out.add(TILE), acc1[r]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedQ4_1, QuantRows, BLOCK, TILE, TILE_BLOCK_BYTES};
    use crate::model::q8_tiles::with_const_rows;
    use std::arch::x86_64::*;

    /// Rows `row0..row0 + rows` (at most 8) of dst for the 16 columns of `tile`, as two halves of 8 columns.
    ///
    /// # Safety
    /// The CPU must support avx2, fma and f16c, and `dst` must point to an (a.m, w.n) f32 matrix.
    pub unsafe fn tile_rows(w: &PackedQ4_1, a: &QuantRows, tile: usize, row0: usize, rows: usize, dst: *mut f32) {
        for half in 0..2 {
            with_const_rows!(rows, half_rows_n(w, a, tile, half, row0, dst))
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half_rows_n<const R: usize>(w: &PackedQ4_1, a: &QuantRows, tile: usize, half: usize, row0: usize, dst: *mut f32) {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..w.blocks {
            let tb = tile * w.blocks + b;
            // Register h of the tile-block holds 16 columns x 4 bytes; this half is its 8 columns from `half * 8`.
            let wq = w.qs.as_ptr().add(tb * TILE_BLOCK_BYTES + half * 32);
            let mut wv = [_mm256_setzero_si256(); 8];
            for h in 0..4 {
                let v = _mm256_loadu_si256(wq.add(h * TILE * 4) as *const __m256i);
                wv[h] = _mm256_and_si256(v, low);
                wv[h + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
            }
            let at = tb * TILE + half * 8;
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr().add(at) as *const __m128i));
            let mw = _mm256_cvtph_ps(_mm_loadu_si128(w.m.as_ptr().add(at) as *const __m128i));
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = row0 + r;
                let xq = a.qs.as_ptr().add(row * w.k + b * BLOCK) as *const i32;
                // The 8 groups' pair sums add up in 16 bits before one widening: a pair is at most 2 x 15 x 128 =
                // 3,840 (4-bit weights, 8-bit activations), 8 of them 30,720 < 32,767, so no sum saturates
                // and the integers are those of the one-group-at-a-time definition.
                let mut pairs = _mm256_maddubs_epi16(wv[0], _mm256_set1_epi32(xq.read_unaligned()));
                for g in 1..8 {
                    pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(wv[g], _mm256_set1_epi32(xq.add(g).read_unaligned())));
                }
                let isum = _mm256_madd_epi16(pairs, ones);
                let blk = row * w.blocks + b;
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(blk)));
                *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), *acc);
                *acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(*a.s.get_unchecked(blk)), *acc);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(dst.add((row0 + r) * w.n + tile * TILE + half * 8), *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A random (n, k) matrix as GGUF Q4_1 bytes, and its dequantized values.
    fn random_q4_1(n: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut bytes, mut values) = (Vec::new(), vec![0f32; n * k]);
        for blk in 0..n * k / BLOCK {
            let d = f16::from_f32(rng.random_range(0.001f32..0.05));
            let m = f16::from_f32(rng.random_range(-0.4f32..0.0));
            bytes.extend_from_slice(&d.to_le_bytes());
            bytes.extend_from_slice(&m.to_le_bytes());
            let q: Vec<u8> = (0..BLOCK).map(|_| rng.random_range(0u8..16)).collect();
            for i in 0..16 {
                bytes.push(q[i] | (q[i + 16] << 4));
            }
            for (j, &q) in q.iter().enumerate() {
                values[blk * BLOCK + j] = d.to_f32() * q as f32 + m.to_f32();
            }
        }
        (bytes, values)
    }

    fn random_rows(m: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..m * k).map(|_| rng.random_range(-3.0f32..3.0)).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn kernel_equals_the_scalar_definition_bit_for_bit() {
        let (n, k) = (48, 576);
        let (bytes, _) = random_q4_1(n, k, 1);
        let w = PackedQ4_1::from_q4_1_parts(&[(&bytes, n)], k, &[1.0]).unwrap();
        for m in 1..=17 {
            let x = random_rows(m, k, m as u64);
            let (mut fast, mut slow) = (vec![0f32; m * n], vec![0f32; m * n]);
            w.matmul(&x, m, &mut fast);
            w.matmul_reference(&x, m, &mut slow);
            assert_eq!(bits(&fast), bits(&slow), "m = {m}");
        }
    }

    #[test]
    fn every_kernel_this_cpu_has_equals_the_scalar_definition_bit_for_bit() {
        let (n, k) = (32, 192);
        let (bytes, _) = random_q4_1(n, k, 8);
        let w = PackedQ4_1::from_q4_1_parts(&[(&bytes, n)], k, &[1.0]).unwrap();
        let mut kernels = Vec::new();
        if kernel() == Kernel::Avx512Vnni {
            kernels.push(Kernel::Avx512Vnni);
        }
        if avx2_available() {
            kernels.push(Kernel::Avx2);
        }
        for kern in kernels {
            for m in [1, 2, 7, 8, 9, 17] {
                let x = random_rows(m, k, 40 + m as u64);
                let (mut fast, mut slow) = (vec![0f32; m * n], vec![0f32; m * n]);
                w.matmul_with(kern, &x, m, &mut fast);
                w.matmul_reference(&x, m, &mut slow);
                assert_eq!(bits(&fast), bits(&slow), "{kern:?}, m = {m}");
            }
        }
    }

    #[test]
    fn rows_are_identical_alone_and_in_a_batch() {
        let (n, k) = (32, 96);
        let (bytes, _) = random_q4_1(n, k, 2);
        let w = PackedQ4_1::from_q4_1_parts(&[(&bytes, n)], k, &[1.0]).unwrap();
        let m = 13;
        let x = random_rows(m, k, 3);
        let mut batched = vec![0f32; m * n];
        w.matmul(&x, m, &mut batched);
        for row in 0..m {
            let mut alone = vec![0f32; n];
            w.matmul(&x[row * k..(row + 1) * k], 1, &mut alone);
            assert_eq!(bits(&alone), bits(&batched[row * n..(row + 1) * n]), "row {row}");
        }
    }

    #[test]
    fn result_matches_the_dequantized_product_and_fused_scaled_parts() {
        let k = 128;
        let (a, va) = random_q4_1(16, k, 4);
        let (b, vb) = random_q4_1(32, k, 5);
        // Part a scaled by 1/8 (the attention scale folded into W_q), part b as is.
        let w = PackedQ4_1::from_q4_1_parts(&[(&a, 16), (&b, 32)], k, &[0.125, 1.0]).unwrap();
        let values: Vec<f32> = va.iter().map(|v| v * 0.125).chain(vb.iter().copied()).collect();
        let (m, n) = (5, 48);
        let x = random_rows(m, k, 6);
        let mut got = vec![0f32; m * n];
        w.matmul(&x, m, &mut got);
        for row in 0..m {
            for col in 0..n {
                let terms = (0..k).map(|i| x[row * k + i] * values[col * k + i]);
                let exact: f32 = terms.clone().sum();
                // Activation quantization to 8 bits: error well under 1% of the row's scale.
                let tol = 0.01 * terms.map(f32::abs).sum::<f32>();
                assert!((got[row * n + col] - exact).abs() <= tol, "({row},{col}): {} vs {exact}", got[row * n + col]);
            }
        }
    }

    #[test]
    fn shapes_that_do_not_tile_and_inexact_scales_are_refused() {
        let (bytes, _) = random_q4_1(16, 32, 7);
        assert!(PackedQ4_1::from_q4_1_parts(&[(&bytes, 16)], 32, &[1.0]).is_some());
        assert!(PackedQ4_1::from_q4_1_parts(&[(&bytes[..bytes.len() - 1], 16)], 32, &[1.0]).is_none());
        assert!(PackedQ4_1::from_q4_1_parts(&[(&bytes[..20], 1)], 32, &[1.0]).is_none());
        // 0.1 times an f16 is (almost always) not an f16: keep the exact Q8_0 path instead.
        assert!(PackedQ4_1::from_q4_1_parts(&[(&bytes, 16)], 32, &[0.1]).is_none());
    }
}
