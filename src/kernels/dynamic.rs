//! Dynamic quantization (DESIGN §3): `f32` activations quantized per row at run time, then
//! an `i8 × i8` GEMM whose epilogue dequantizes to `f32` (dynamically quantized linear;
//! the convolution counterpart is [`crate::kernels::conv::PackedDynamicConv`]).
//!
//! Row quantization ([`crate::qscheme::RowRule::Qd8`], its range and values through the
//! [`super::boundary::Boundary`] rows of the selected ISA): `rmin = min(0, min row)`, `rmax = max(0, max row)`,
//! `scale = (rmax - rmin) / 255` (1 for an all-zero row), `zp = clamp(round_half_even(-128 -
//! rmin / scale), -128, 127)`, `q = clamp(round_half_even(x / scale) + zp, -128, 127)`.
//! GEMM output: `y[r][c] = ((Σ q·w - zp[r]·Σw[c]) as f32) * (scale[r] * s_w[c]) + bias[c]`,
//! evaluated in that order on every ISA, so all variants are bit-identical.

use super::boundary::Boundary;
use super::gemm::{check_matrix, GemmQuant, GemmWeights, PackedGemm, TileOut};
use super::requant::{OutputRange, QuantParams};
use super::table::GemmKernelInfo;
use crate::cpu::Isa;
use crate::qscheme::qd8_qparams;
use crate::{Error, Result};
use std::ops::Range;

/// Rows of `f32` activations quantized per row (the default: no rows).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizedRows {
    /// Number of rows.
    pub m: usize,
    /// Elements per row.
    pub k: usize,
    /// `m × k` quantized values.
    pub data: Vec<i8>,
    /// Per-row scales.
    pub scales: Vec<f32>,
    /// Per-row zero points.
    pub zero_points: Vec<i32>,
}

/// Quantizes `m` rows of `k` values (row `i` at `x[i * stride..]`) with per-row qparams.
pub fn quantize_rows(x: &[f32], m: usize, k: usize, stride: usize) -> Result<QuantizedRows> {
    let mut rows = QuantizedRows::default();
    quantize_rows_into(x, m, k, stride, &mut rows)?;
    Ok(rows)
}

/// [`quantize_rows`] into `rows`, whose buffers are reused: no allocation when they already
/// hold `m × k` values (a steady-state call). On error `rows` is left in an unspecified but
/// valid state.
pub fn quantize_rows_into(
    x: &[f32],
    m: usize,
    k: usize,
    stride: usize,
    rows: &mut QuantizedRows,
) -> Result<()> {
    check_matrix("x", m, k, stride, x.len())?;
    let len = m
        .checked_mul(k)
        .ok_or_else(|| Error::invalid_argument("x", format!("{m} x {k} rows overflow")))?;
    rows.m = m;
    rows.k = k;
    // Every element is overwritten below; only a change of size touches the buffer.
    rows.data.resize(len, 0);
    rows.scales.clear();
    rows.zero_points.clear();
    let rows_isa = Boundary::selected()?;
    for r in 0..m {
        let row = &x[r * stride..][..k];
        let Some((min, max)) = rows_isa.finite_range(row).or((k == 0).then_some((0.0, 0.0))) else {
            let bad = row.iter().find(|v| !v.is_finite()).copied().unwrap_or(f32::NAN);
            return Err(Error::invalid_argument("x", format!("row {r} contains {bad}")));
        };
        let p = qd8_qparams(min, max);
        rows_isa.quantize(row, p, &mut rows.data[r * k..][..k])?;
        rows.scales.push(p.scale);
        rows.zero_points.push(p.zero_point);
    }
    Ok(())
}

/// Weights of a dynamically quantized linear layer.
#[derive(Clone, Copy, Debug)]
pub struct DynamicWeights<'a> {
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// `n × k` symmetric int8 weights.
    pub weights: &'a [i8],
    /// One or `n` weight scales.
    pub scales: &'a [f32],
    /// Optional `f32` bias of `n` values.
    pub bias: Option<&'a [f32]>,
}

/// Weights packed for the dynamic GEMM of one variant.
#[derive(Debug)]
pub struct PackedDynamicGemm {
    gemm: PackedGemm,
}

impl PackedDynamicGemm {
    /// Packs `w` for the GEMM variant of `isa`.
    pub fn pack(isa: Isa, w: &DynamicWeights) -> Result<Self> {
        let unit = QuantParams {
            scale: 1.0,
            zero_point: 0,
        };
        let q = GemmQuant {
            input: unit,
            output: unit,
            range: OutputRange::FULL,
        };
        let gw = GemmWeights {
            n: w.n,
            ks: 1,
            kc: w.k,
            weights: w.weights,
            scales: w.scales,
            bias: None,
        };
        if let Some(b) = w.bias {
            if let Some(bad) = b.iter().find(|v| !v.is_finite()) {
                return Err(Error::invalid_argument("bias", format!("contains {bad}")));
            }
        }
        Ok(PackedDynamicGemm {
            gemm: PackedGemm::pack_with(isa, &gw, &q, w.bias)?,
        })
    }

    /// The GEMM variant these weights were packed for.
    pub fn kernel(&self) -> &'static GemmKernelInfo {
        self.gemm.kernel()
    }

    /// Number of tiles of an `m`-row product.
    pub fn tile_count(&self, m: usize) -> usize {
        self.gemm.tile_count(m)
    }

    /// Computes tiles `tiles` of `out[m × n]` (row stride `out_stride`) from `rows`.
    pub fn run(
        &self,
        rows: &QuantizedRows,
        out: &mut [f32],
        out_stride: usize,
        tiles: Range<usize>,
    ) -> Result<()> {
        let len = out.len();
        // SAFETY: `out` is exclusively borrowed for this call, so no other writer exists.
        unsafe { self.run_shared(rows, out.as_mut_ptr(), len, out_stride, tiles) }
    }

    /// Like [`PackedDynamicGemm::run`] on a raw output of `out_len` floats, so several
    /// threads can compute different tiles of one output.
    ///
    /// # Safety
    /// `out` must be valid for writing `out_len` floats for the duration of the call, and
    /// calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        rows: &QuantizedRows,
        out: *mut f32,
        out_len: usize,
        out_stride: usize,
        tiles: Range<usize>,
    ) -> Result<()> {
        if rows.k != self.gemm.k() {
            return Err(Error::ShapeMismatch(format!(
                "rows have k = {}, weights {}",
                rows.k,
                self.gemm.k()
            )));
        }
        if rows.data.len() != rows.m * rows.k
            || rows.scales.len() != rows.m
            || rows.zero_points.len() != rows.m
        {
            return Err(Error::ShapeMismatch("quantized rows are inconsistent".into()));
        }
        check_matrix("out", rows.m, self.gemm.n(), out_stride, out_len)?;
        let k = rows.k;
        let y = out;
        let tile_out = |row0: usize, col0: usize| TileOut::Dequantized {
            // SAFETY: (row0, col0) is inside `out` (checked above).
            y: unsafe { y.add(row0 * out_stride + col0) },
            stride: out_stride,
            row_scale: rows.scales[row0..].as_ptr(),
            row_zp: rows.zero_points[row0..].as_ptr(),
            row_step: 1,
        };
        // SAFETY: `out` holds m rows of n at out_stride (checked above, validity is the
        // caller's contract); the per-row arrays hold m entries.
        unsafe {
            self.gemm.run_tiles(
                rows.m,
                |r, _| &rows.data[r * k..][..k],
                k.is_multiple_of(4).then_some((&rows.data[..], 0)),
                tile_out,
                tiles,
            )
        }
    }
}
