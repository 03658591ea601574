//! Loops over the whole vocabulary written so the compiler vectorises them: the max, and exp.
//!
//! `std`'s `f32::exp` calls libm once per element (~4 ns, ~200 us over 49,152 logits, most of a
//! sampler call); the polynomial below is branch-free, so LLVM turns the loop into SIMD code.

/// The largest non-NaN value (-inf for an empty slice or all NaN / -inf). Eight independent lanes so
/// the reduction vectorises; `x > m` is false for NaN, which is how NaN is skipped.
pub fn max_value(xs: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            m[j] = if c[j] > m[j] { c[j] } else { m[j] };
        }
    }
    m.iter().chain(rest).fold(f32::NEG_INFINITY, |a, &x| if x > a { x } else { a })
}

/// (index, value) of the largest non-NaN value, the lowest index among equal maxima; None when there
/// is no value above -inf. One pass: each of 8 lanes keeps its first maximum (strict `>`), then the
/// lanes are merged by (value desc, index asc).
pub fn argmax(xs: &[f32]) -> Option<(usize, f32)> {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut at = [usize::MAX; 8];
    let chunks = xs.chunks_exact(8);
    let rest_start = xs.len() - chunks.remainder().len();
    for (c, chunk) in chunks.enumerate() {
        for j in 0..8 {
            let better = chunk[j] > m[j];
            m[j] = if better { chunk[j] } else { m[j] };
            at[j] = if better { c * 8 + j } else { at[j] };
        }
    }
    let mut best: Option<(usize, f32)> = None;
    let lanes = m.iter().zip(at).map(|(&v, i)| (i, v));
    let rest = xs[rest_start..].iter().enumerate().map(|(k, &v)| (rest_start + k, v));
    for (i, v) in lanes.chain(rest) {
        // NaN and -inf never qualify; ties go to the lower index.
        if v > f32::NEG_INFINITY && best.is_none_or(|(bi, bv)| v > bv || (v == bv && i < bi)) {
            best = Some((i, v));
        }
    }
    best
}

/// Below this exp(x) is not a normal f32 (1.2e-38); we return 0 there, as a probability that small
/// relative to the top token cannot be drawn anyway.
pub const EXP_MIN_ARG: f32 = -87.0;

/// exp(x) for x <= 0, within 2 ulp (Cephes `expf`: x = n ln2 + r with |r| <= ln2/2, a degree-6
/// polynomial for e^r, and 2^n built in the exponent bits). Returns 0 for x <= -87 and for NaN.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer without a branch.
    const ROUND: f32 = 12_582_912.0;
    let in_range = x > EXP_MIN_ARG;
    let xc = if in_range { x } else { EXP_MIN_ARG };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    // t = 1.5 * 2^23 + n exactly, so its low mantissa bits hold n: an integer without a float-to-int
    // conversion (whose saturating semantics keep the loop from vectorising).
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let er = p * r * r + r + 1.0;
    // n is in [-126, 0], so 2^n is a normal float.
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if in_range {
        er * scale
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_skips_nan_and_handles_remainders() {
        assert_eq!(max_value(&[]), f32::NEG_INFINITY);
        assert_eq!(max_value(&[f32::NAN; 11]), f32::NEG_INFINITY);
        let mut v: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        v[36] = 5.0;
        v[3] = f32::NAN;
        assert_eq!(max_value(&v), 5.0);
        v[36] = 0.0;
        v[9] = 7.0;
        assert_eq!(max_value(&v), 7.0);
        assert_eq!(max_value(&[1.0, f32::INFINITY]), f32::INFINITY);
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f32::NAN, f32::NEG_INFINITY]), None);
        let mut v = vec![0.0f32; 37];
        v[20] = 3.0;
        v[12] = 3.0; // same lane as 20 (index % 8 = 4): the lane keeps its first maximum
        v[33] = 3.0; // remainder
        v[9] = f32::NAN;
        assert_eq!(argmax(&v), Some((12, 3.0)));
        v[5] = 3.0; // another lane, lower index
        assert_eq!(argmax(&v), Some((5, 3.0)));
        v[36] = f32::INFINITY;
        assert_eq!(argmax(&v), Some((36, f32::INFINITY)));
        assert_eq!(argmax(&[-1.0, -0.5, f32::NAN]), Some((1, -0.5)));
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0.0f64;
        let mut x = 0.0f32;
        while x > EXP_MIN_ARG {
            let exact = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            let ulp = (exact as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - exact).abs() / ulp);
            x -= 0.000_731;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-87.0), 0.0);
        assert_eq!(exp_nonpositive(-200.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(f32::NAN), 0.0);
    }
}
