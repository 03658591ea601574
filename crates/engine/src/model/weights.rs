//! Weight formats and the linear layer that uses them.
//!
//! candle 0.11 has no SIMD kernel for Q4_1 (engine.md §0.2): as shipped, SmolLM2 decodes at ~25 tok/s. Re-quantizing
//! to Q8_0 at load (nearly lossless, since Q8_0 represents the dequantized Q4_1 values almost exactly) is ~3x faster
//! for single-token decode; dense f32 weights make multi-row forwards (prefill, verification, batches) much cheaper
//! because candle's Q8_0 kernel is linear in rows while f32 goes through a real GEMM. On CPUs with AVX512-VNNI our
//! tiled kernels beat both at every row count: `Auto` runs the file's Q4_1 blocks as they are (`q4_tiles`, half the
//! bytes per token) and other tensors through `q8_tiles`; elsewhere `Auto` keeps both candle representations and
//! picks by the number of rows.

use crate::error::{EngineError, Result};
use crate::model::q4_tiles::{self, PackedQ4_1};
use crate::model::q8_tiles::{self, PackedQ8};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// The fastest for this CPU: the file's Q4_1 tensors through the Q4_1 tiles (AVX-512 or AVX2; measured faster
    /// than Q8_0 and f32 in decode and prefill, docs/engine.md). Other tensors (the Q8_0 output matrix) through the
    /// Q8_0 tiles with AVX512-VNNI; without it, candle's Q8_0 for forwards of few rows and f32 for many.
    #[default]
    Auto,
    /// Everything re-quantized to Q8_0.
    Q8_0,
    /// The file's Q4_1 blocks kept 4-bit through the AVX512-VNNI Q4_1 tiles (half the bytes per token of Q8_0);
    /// tensors of other types, and every tensor on CPUs without the tiles, as `q8_0`.
    Q4_1,
    /// Everything dequantized to f32.
    F32,
    /// The tensors as stored in the file, with llama.cpp's arithmetic: Q4_1 through the Q4_1 tiles and Q8_0 through
    /// the Q8_0 tiles where the CPU has them (activations quantized as llama.cpp does); candle's kernels otherwise
    /// (Q4_1 in candle 0.11 is a slow scalar kernel).
    Native,
}

impl WeightFormat {
    pub fn label(self) -> &'static str {
        match self {
            WeightFormat::Auto => "auto",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::Q4_1 => "q4_1",
            WeightFormat::F32 => "f32",
            WeightFormat::Native => "native",
        }
    }
    pub const ALL: [WeightFormat; 5] =
        [WeightFormat::Auto, WeightFormat::Q8_0, WeightFormat::Q4_1, WeightFormat::F32, WeightFormat::Native];
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(WeightFormat::Auto),
            "q8_0" | "q8" => Ok(WeightFormat::Q8_0),
            "q4_1" | "q4" => Ok(WeightFormat::Q4_1),
            "f32" => Ok(WeightFormat::F32),
            "native" => Ok(WeightFormat::Native),
            other => Err(format!("unknown weight format `{other}` (expected auto, q8_0, q4_1, f32 or native)")),
        }
    }
}

/// Rows at and above which `Auto` uses the dense f32 weights. Measured on the 2-core dev machine: Q8_0's cost grows
/// linearly with rows while f32 GEMM is nearly flat up to ~16 rows (see docs/engine.md). Overridable with
/// `TTC_DENSE_MIN_ROWS` for measurements.
pub fn dense_min_rows() -> usize {
    std::env::var("TTC_DENSE_MIN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(16)
}

/// dst (m, n) = x (m, k) · Wᵀ through one of the tiled kernels.
type TiledMatmul<'a> = dyn Fn(&[f32], usize, &mut [f32]) + 'a;

/// The quantized representation: our AVX512-VNNI tiles where the CPU has them, candle's kernels otherwise.
enum Quant {
    Tiles(PackedQ8),
    Q4Tiles(PackedQ4_1),
    Candle(QMatMul),
}

impl Quant {
    /// Q8_0 weights go to the tiled kernel (AVX512-VNNI or AVX2) when the CPU and the shape allow it.
    fn q8_0(q: QTensor) -> Result<Quant> {
        if q4_tiles::kernel() != q4_tiles::Kernel::Scalar {
            let (n, k) = q.shape().dims2()?;
            if let Some(p) = PackedQ8::from_q8_0_bytes(&q.data()?, n, k) {
                return Ok(Quant::Tiles(p));
            }
        }
        Ok(Quant::Candle(QMatMul::from_arc(Arc::new(q))?))
    }

    /// Q4_1 parts (fused along the output dimension, part i scaled by `scales[i]`) go to the Q4_1 tiles when the
    /// CPU, the shape and the scales allow it.
    fn q4_1(parts: &[QTensor], scales: &[f64]) -> Result<Option<Quant>> {
        if q4_tiles::kernel() == q4_tiles::Kernel::Scalar || parts.iter().any(|p| p.dtype() != GgmlDType::Q4_1) {
            return Ok(None);
        }
        let k = parts[0].shape().dims2()?.1;
        let mut data = Vec::with_capacity(parts.len());
        for p in parts {
            let (rows, cols) = p.shape().dims2()?;
            if cols != k {
                return Ok(None);
            }
            data.push((p.data()?, rows));
        }
        let views: Vec<(&[u8], usize)> = data.iter().map(|(d, rows)| (d.as_ref(), *rows)).collect();
        let scales: Vec<f32> = scales.iter().map(|&s| s as f32).collect();
        Ok(PackedQ4_1::from_q4_1_parts(&views, k, &scales).map(Quant::Q4Tiles))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let tiled = |n: usize, matmul: &TiledMatmul| -> Result<Tensor> {
            let rows = x.dim(0)?;
            let lhs: Vec<f32> = x.flatten_all()?.to_vec1()?;
            let mut dst = vec![0f32; rows * n];
            matmul(&lhs, rows, &mut dst);
            Ok(Tensor::from_vec(dst, (rows, n), x.device())?)
        };
        match self {
            Quant::Candle(q) => Ok(q.forward(x)?),
            Quant::Tiles(p) => tiled(p.n, &|x, m, dst| p.matmul(x, m, dst)),
            Quant::Q4Tiles(p) => tiled(p.n, &|x, m, dst| p.matmul(x, m, dst)),
        }
    }
}

/// x·Wᵀ for x of shape (rows, in), in whichever representation suits the number of rows.
pub struct Linear {
    quant: Option<Quant>,
    dense: Option<Tensor>,
    dense_min_rows: usize,
    pub out_dim: usize,
}

impl Linear {
    /// Build from one or more GGUF tensors of shape (out_i, in), fused along the output dimension.
    pub fn from_parts(parts: Vec<QTensor>, format: WeightFormat) -> Result<Linear> {
        let ones = vec![1.0; parts.len()];
        Self::from_parts_scaled(parts, &ones, format)
    }

    /// Like `from_parts`, multiplying part i by `scales[i]` after dequantization (a power of two keeps Q8_0 exact).
    pub fn from_parts_scaled(parts: Vec<QTensor>, scales: &[f64], format: WeightFormat) -> Result<Linear> {
        let in_dim = parts[0].shape().dims()[1];
        let out_dim: usize = parts.iter().map(|p| p.shape().dims()[0]).sum();
        let unscaled = scales.iter().all(|&s| s == 1.0);
        let single_native = parts.len() == 1 && unscaled && format == WeightFormat::Native;
        // With the AVX512-VNNI tiles quantized weights beat dense f32 at every row count (docs/engine.md), so `auto`
        // keeps no dense copy; without them, the quantized kernels are linear in rows and f32 GEMM wins from ~16 rows.
        let need_dense = format == WeightFormat::F32 || (format == WeightFormat::Auto && !q8_tiles::supported());
        // The Q4_1 tiles beat dense f32 at every row count on AVX2 too (docs/engine.md: 2.2x at 64 rows, 1.4x at
        // 512), so they never keep a dense copy.
        if matches!(format, WeightFormat::Q4_1 | WeightFormat::Auto | WeightFormat::Native) {
            if let Some(q) = Quant::q4_1(&parts, scales)? {
                return Ok(Linear { quant: Some(q), dense: None, dense_min_rows: dense_min_rows(), out_dim });
            }
        }
        let need_q8 = matches!(format, WeightFormat::Q8_0 | WeightFormat::Q4_1 | WeightFormat::Auto);
        let all_q8 = parts.iter().all(|p| p.dtype() == GgmlDType::Q8_0);
        let (quant, dense) = if single_native {
            let q = parts.into_iter().next().expect("one part");
            // A Q8_0 tensor (the tied output matrix) through the Q8_0 tiles where the CPU has them: the same
            // arithmetic as llama.cpp's Q8_0 x Q8_0 dot product.
            let quant = if q.dtype() == GgmlDType::Q8_0 { Quant::q8_0(q)? } else { Quant::Candle(QMatMul::from_arc(Arc::new(q))?) };
            (Some(quant), None)
        } else {
            let w = dequantize_fused(&parts, scales)?;
            let quant = if need_q8 {
                if all_q8 && parts.len() == 1 && unscaled {
                    Some(Quant::q8_0(parts.into_iter().next().expect("one"))?)
                } else {
                    Some(Quant::q8_0(QTensor::quantize(&w, GgmlDType::Q8_0)?)?)
                }
            } else if format == WeightFormat::Native {
                // Fused parts in native format: re-quantize the fused matrix to the parts' own type.
                let q = QTensor::quantize(&w, parts[0].dtype())?;
                Some(Quant::Candle(QMatMul::from_arc(Arc::new(q))?))
            } else {
                None
            };
            (quant, need_dense.then_some(w))
        };
        if in_dim == 0 || out_dim == 0 {
            return Err(EngineError::Metadata("empty weight matrix".into()));
        }
        Ok(Linear { quant, dense, dense_min_rows: dense_min_rows(), out_dim })
    }

    /// The kernel this layer runs, for `ttc bench engine` and docs ("which code ran" is part of a measurement).
    pub fn kernel(&self) -> &'static str {
        match (&self.quant, &self.dense) {
            (Some(Quant::Q4Tiles(_)), _) => q4_tiles::kernel().label(),
            (Some(Quant::Tiles(_)), None) if q4_tiles::kernel() == q4_tiles::Kernel::Avx512Vnni => "q8_0 tiles (avx512-vnni)",
            (Some(Quant::Tiles(_)), None) => "q8_0 tiles (avx2)",
            (Some(Quant::Tiles(_)), Some(_)) => "q8_0 tiles (avx2) < rows <= f32 gemm",
            (Some(Quant::Candle(_)), Some(_)) => "candle q-kernel < rows <= f32 gemm",
            (Some(Quant::Candle(q)), None) => match q {
                QMatMul::QTensor(t) if t.dtype() == GgmlDType::Q8_0 => "candle q8_0",
                QMatMul::QTensor(t) if t.dtype() == GgmlDType::Q4_1 => "candle q4_1",
                _ => "candle",
            },
            (None, _) => "f32 gemm",
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0)?;
        match (&self.quant, &self.dense) {
            (Some(q), Some(_)) if rows < self.dense_min_rows => Ok(q.forward(x)?),
            (_, Some(d)) => Ok(x.matmul(&d.t()?)?),
            (Some(q), None) => Ok(q.forward(x)?),
            (None, None) => unreachable!("a Linear always has a representation"),
        }
    }
}

/// The parts dequantized to f32, part i times `scales[i]`, stacked along the output dimension.
fn dequantize_fused(parts: &[QTensor], scales: &[f64]) -> Result<Tensor> {
    let dev = candle_core::Device::Cpu;
    let deq = parts
        .iter()
        .zip(scales)
        .map(|(p, &s)| if s == 1.0 { p.dequantize(&dev) } else { p.dequantize(&dev)? * s })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(if deq.len() == 1 { deq.into_iter().next().expect("one") } else { Tensor::cat(&deq, 0)? })
}
