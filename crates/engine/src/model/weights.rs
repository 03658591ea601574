//! Weight formats and the linear layer that uses them.
//!
//! candle 0.11 has no SIMD kernel for Q4_1 (engine.md §0.2): as shipped, SmolLM2 decodes at ~25 tok/s. Re-quantizing
//! to Q8_0 at load (nearly lossless, since Q8_0 represents the dequantized Q4_1 values almost exactly) is ~3x faster
//! for single-token decode; dense f32 weights make multi-row forwards (prefill, verification, batches) much cheaper
//! because candle's Q8_0 kernel is linear in rows while f32 goes through a real GEMM. On CPUs with AVX512-VNNI our
//! tiled Q8_0 kernel (`q8_tiles`) beats both at every row count, and `Auto` uses it alone; elsewhere `Auto` keeps
//! both candle representations and picks by the number of rows.

use crate::error::{EngineError, Result};
use crate::model::q8_tiles::{self, PackedQ8};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// The fastest for this CPU: Q8_0 through the AVX512-VNNI tiled kernel for every forward where the CPU has it;
    /// otherwise candle's Q8_0 for forwards of few rows (decode) and f32 for many rows (prefill, batches).
    #[default]
    Auto,
    /// Everything re-quantized to Q8_0.
    Q8_0,
    /// Everything dequantized to f32.
    F32,
    /// The tensors as stored in the file (Q4_1 for the default model: slow scalar kernel in candle 0.11).
    Native,
}

impl WeightFormat {
    pub fn label(self) -> &'static str {
        match self {
            WeightFormat::Auto => "auto",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::F32 => "f32",
            WeightFormat::Native => "native",
        }
    }
    pub const ALL: [WeightFormat; 4] = [WeightFormat::Auto, WeightFormat::Q8_0, WeightFormat::F32, WeightFormat::Native];
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
            "f32" => Ok(WeightFormat::F32),
            "native" => Ok(WeightFormat::Native),
            other => Err(format!("unknown weight format `{other}` (expected auto, q8_0, f32 or native)")),
        }
    }
}

/// Rows at and above which `Auto` uses the dense f32 weights. Measured on the 2-core dev machine: Q8_0's cost grows
/// linearly with rows while f32 GEMM is nearly flat up to ~16 rows (see docs/engine.md). Overridable with
/// `TTC_DENSE_MIN_ROWS` for measurements.
pub fn dense_min_rows() -> usize {
    std::env::var("TTC_DENSE_MIN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(16)
}

/// The quantized representation: our AVX512-VNNI tiles where the CPU has them, candle's kernels otherwise.
enum Quant {
    Tiles(PackedQ8),
    Candle(QMatMul),
}

impl Quant {
    /// Q8_0 weights go to the tiled kernel when the CPU and the shape allow it.
    fn q8_0(q: QTensor) -> Result<Quant> {
        if q8_tiles::supported() {
            let (n, k) = q.shape().dims2()?;
            if let Some(p) = PackedQ8::from_q8_0_bytes(&q.data()?, n, k) {
                return Ok(Quant::Tiles(p));
            }
        }
        Ok(Quant::Candle(QMatMul::from_arc(Arc::new(q))?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Quant::Candle(q) => Ok(q.forward(x)?),
            Quant::Tiles(p) => {
                let rows = x.dim(0)?;
                let lhs: Vec<f32> = x.flatten_all()?.to_vec1()?;
                let mut dst = vec![0f32; rows * p.n];
                p.matmul(&lhs, rows, &mut dst);
                Ok(Tensor::from_vec(dst, (rows, p.n), x.device())?)
            }
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
        let dev = candle_core::Device::Cpu;
        let in_dim = parts[0].shape().dims()[1];
        let out_dim: usize = parts.iter().map(|p| p.shape().dims()[0]).sum();
        let unscaled = scales.iter().all(|&s| s == 1.0);
        let single_native = parts.len() == 1 && unscaled && format == WeightFormat::Native;
        // With the tiled VNNI kernel Q8_0 beats dense f32 at every row count (docs/engine.md), so `auto` keeps no
        // dense copy; without it, candle's Q8_0 kernel is linear in rows and f32 GEMM wins from ~16 rows.
        let need_dense = format == WeightFormat::F32 || (format == WeightFormat::Auto && !q8_tiles::supported());
        let need_q8 = matches!(format, WeightFormat::Q8_0 | WeightFormat::Auto);
        let all_q8 = parts.iter().all(|p| p.dtype() == GgmlDType::Q8_0);
        let (quant, dense) = if single_native {
            let q = parts.into_iter().next().expect("one part");
            (Some(Quant::Candle(QMatMul::from_arc(Arc::new(q))?)), None)
        } else {
            let deq = parts
                .iter()
                .zip(scales)
                .map(|(p, &s)| if s == 1.0 { p.dequantize(&dev) } else { p.dequantize(&dev)? * s })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let w = if deq.len() == 1 { deq.into_iter().next().expect("one") } else { Tensor::cat(&deq, 0)? };
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
