//! int8 Softmax along one axis: rows of `len` elements, `inner` bytes apart in storage.
//!
//! Per row, with input scale `s_x` and output qparams `(s_y, zp_y)`:
//!
//! ```text
//! m     = max_j q_j                                  (exact, i8)
//! e_j   = T[m - q_j]        T[d] = exp(-s_x · d) rounded to f32 (computed in f64), d ∈ [0, 255]
//! sum   = ((e_0 + e_1) + e_2) + …                    (f32, in the row's logical order)
//! y_j   = requantize((e_j / sum) / s_y)              (two f32 divisions, then the kernels'
//!                                                      clamp / round-half-even / + zp_y)
//! ```
//!
//! `T[0] = 1`, so `sum >= 1` and no division is by zero. The table depends only on `s_x`, not
//! on the zero point (a softmax is shift-invariant), so it is built once per step.
//!
//! **Agreement with the QDQ float graph** (DequantizeLinear → the interpreter's f32 Softmax,
//! which sums `exp(x_j - max)` in the same order and divides by the sum → QuantizeLinear):
//! two values less than 1 apart round to integers at most 1 apart, so the outputs differ by
//! at most one quantization step whenever the values before rounding do by less than 1:
//!
//! ```text
//! |Δ| ≤ ((len + 8) · 2^-24 + 2^-14 · min(s_x, max(1, ln len))) / s_y  <  1
//! ```
//!
//! (for PyTorch's `s_y = 1/256`: every row of up to 30 000 elements, whatever `s_x`; for
//! `s_y = 1/2048`, rows of 1000). Why: the table entry is `exp(-s_x·d)` rounded once; the
//! interpreter's `exp(x_j - max)` carries the f32 `exp` error (an ulp or two), and the
//! rounding of `x_j = (q_j - zp)·s_x` and `max`, an absolute error below
//! `2^-24 · 510 · s_x < 2^-15 · s_x` in the exponent, hence a relative one in the term, that
//! is 0 where `q_j = m` and weighs `e^(-s_x·d)` elsewhere (at most `len · s_x · e^(-s_x)`
//! against a sum ≥ 1, so `min(s_x, max(1, ln len))` overall); a sum of `len` positive
//! terms in a fixed order adds at most `len · 2^-24` relatively, the two divisions `2^-23`;
//! and the value before rounding is at most `1 / s_y`.
//!
//! The kernel is scalar only: every operation is a single IEEE `f32` operation in the order
//! above, so its bytes are the same on every CPU and ISA.

use super::output::SharedOutput;
use super::requant::Requantizer;
use super::{OutputRange, QuantParams};
use crate::{Error, Result};
use std::ops::Range;

/// Where the rows of a softmax lie in a value's storage: `outer` blocks of `len × inner`
/// bytes; row `r` starts at `(r / inner) · len · inner + r % inner` and its elements are
/// `inner` bytes apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    /// Blocks before the softmax axis (product of the storage dimensions before it).
    pub outer: usize,
    /// Elements per row (the softmax axis).
    pub len: usize,
    /// Distance between a row's elements (product of the storage dimensions after it).
    pub inner: usize,
}

impl RowLayout {
    /// The layout of the softmax along storage axis `axis` of storage dimensions `dims`;
    /// errors when `axis` is out of range, a dimension is 0 or the element count overflows.
    pub fn along(dims: &[usize], axis: usize) -> Result<Self> {
        if axis >= dims.len() {
            return Err(Error::InvalidModel(format!(
                "softmax axis {axis} of a rank-{} value",
                dims.len()
            )));
        }
        let product = |d: &[usize]| {
            d.iter()
                .try_fold(1usize, |acc, &v| acc.checked_mul(v))
                .ok_or_else(|| Error::InvalidModel("softmax value size overflows".into()))
        };
        let layout = RowLayout {
            outer: product(&dims[..axis])?,
            len: dims[axis],
            inner: product(&dims[axis + 1..])?,
        };
        if layout.numel()? == 0 {
            return Err(Error::InvalidModel("softmax of an empty value".into()));
        }
        Ok(layout)
    }

    /// Number of rows.
    pub fn rows(&self) -> Result<usize> {
        self.outer
            .checked_mul(self.inner)
            .ok_or_else(|| Error::InvalidModel("softmax row count overflows".into()))
    }

    /// Number of elements.
    pub fn numel(&self) -> Result<usize> {
        self.rows()?
            .checked_mul(self.len)
            .ok_or_else(|| Error::InvalidModel("softmax value size overflows".into()))
    }
}

/// A softmax prepared for one input scale, output qparams and row layout.
#[derive(Clone, Debug)]
pub struct Softmax {
    /// `exp(-s_x · d)` at index `d`.
    table: [f32; 256],
    /// Output scale.
    out_scale: f32,
    /// Output zero point and range.
    requant: Requantizer,
    /// Where the rows lie.
    layout: RowLayout,
    /// `layout.rows()`, checked once.
    rows: usize,
    /// `layout.numel()`, checked once.
    numel: usize,
}

/// The 256 exponentials `exp(-scale · d)` for `d` in `0..256`, each computed in `f64` and
/// rounded once to `f32` (entry 0 is exactly 1).
pub fn exp_table(scale: f32) -> [f32; 256] {
    std::array::from_fn(|d| (-(f64::from(scale)) * d as f64).exp() as f32)
}

impl Softmax {
    /// Prepares the table; both scales must be positive and finite.
    pub fn new(x: QuantParams, y: QuantParams, range: OutputRange, layout: RowLayout) -> Result<Self> {
        for (what, s) in [("input", x.scale), ("output", y.scale)] {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::InvalidModel(format!("softmax {what} scale {s}")));
            }
        }
        Ok(Softmax {
            table: exp_table(x.scale),
            out_scale: y.scale,
            requant: Requantizer::new(y.zero_point, range),
            rows: layout.rows()?,
            numel: layout.numel()?,
            layout,
        })
    }

    /// Number of rows (the unit [`Softmax::run_shared`] splits work by).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub fn row_len(&self) -> usize {
        self.layout.len
    }

    /// Computes rows `rows` of `x` into `out` (both of [`RowLayout::numel`] bytes).
    ///
    /// # Safety
    /// Concurrent callers sharing `out` must pass disjoint row ranges (rows are disjoint
    /// sets of elements).
    pub unsafe fn run_shared(&self, x: &[i8], out: &SharedOutput<'_>, rows: Range<usize>) -> Result<()> {
        if x.len() != self.numel || out.len() != self.numel || rows.start > rows.end || rows.end > self.rows {
            return Err(Error::ShapeMismatch(format!(
                "softmax rows {rows:?} of {} over {} input and {} output bytes (want {})",
                self.rows,
                x.len(),
                out.len(),
                self.numel
            )));
        }
        let RowLayout { len, inner, .. } = self.layout;
        for r in rows {
            // In bounds: r < outer · inner, so start + (len - 1) · inner < outer · len · inner.
            let start = (r / inner) * len * inner + r % inner;
            let row = (0..len).map(|j| start + j * inner);
            let m = row.clone().map(|i| x[i]).max().unwrap_or(0);
            let mut sum = 0.0f32;
            for i in row.clone() {
                sum += self.table[(i32::from(m) - i32::from(x[i])) as usize];
            }
            for i in row {
                let e = self.table[(i32::from(m) - i32::from(x[i])) as usize];
                let q = self.requant.apply(e / sum / self.out_scale);
                // SAFETY: `i < numel == out.len()` (checked above); rows are disjoint sets
                // of elements and concurrent callers pass disjoint rows (this function's
                // contract), so no other thread writes element `i`.
                unsafe { out.as_ptr().add(i).write(q) };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(scale: f32, zero_point: i32) -> QuantParams {
        QuantParams { scale, zero_point }
    }

    fn run(x: &[i8], sx: f32, layout: RowLayout) -> Vec<i8> {
        let s = Softmax::new(q(sx, 7), q(1.0 / 256.0, -128), OutputRange::FULL, layout).unwrap();
        let mut y = vec![0i8; x.len()];
        let out = SharedOutput::new(&mut y);
        // SAFETY: one caller.
        unsafe { s.run_shared(x, &out, 0..s.rows()).unwrap() };
        y
    }

    #[test]
    fn equal_values_share_the_mass_and_a_single_element_is_one() {
        let row = |len| RowLayout {
            outer: 1,
            len,
            inner: 1,
        };
        assert_eq!(run(&[5; 4], 0.1, row(4)), vec![-128 + 64; 4]);
        // 1.0 / (1/256) = 256 clamps to 127.
        assert_eq!(run(&[-3], 0.1, row(1)), vec![127]);
    }

    #[test]
    fn strided_rows_equal_contiguous_rows() {
        // Two rows of three, interleaved (inner = 2) or one after the other.
        let rows = [[10i8, 20, 30], [-5, 60, 60]];
        let contiguous: Vec<i8> = rows.concat();
        let strided: Vec<i8> = (0..3).flat_map(|j| [rows[0][j], rows[1][j]]).collect();
        let c = run(&contiguous, 0.05, RowLayout::along(&[2, 3], 1).unwrap());
        let s = run(&strided, 0.05, RowLayout::along(&[3, 2], 0).unwrap());
        let s_back: Vec<i8> = (0..2)
            .flat_map(|r| (0..3).map(move |j| (r, j)))
            .map(|(r, j)| s[j * 2 + r])
            .collect();
        assert_eq!(c, s_back);
    }

    #[test]
    fn refuses_bad_layouts_scales_and_ranges() {
        assert!(RowLayout::along(&[2, 0, 3], 2).is_err());
        assert!(RowLayout::along(&[2, 3], 2).is_err());
        assert!(RowLayout::along(&[usize::MAX, 3], 1).is_err());
        let layout = RowLayout::along(&[2, 3], 1).unwrap();
        assert!(Softmax::new(q(0.0, 0), q(0.1, 0), OutputRange::FULL, layout).is_err());
        assert!(Softmax::new(q(0.1, 0), q(f32::INFINITY, 0), OutputRange::FULL, layout).is_err());
        let s = Softmax::new(q(0.1, 0), q(0.1, 0), OutputRange::FULL, layout).unwrap();
        let (x, mut y) = ([0i8; 6], [0i8; 6]);
        let out = SharedOutput::new(&mut y);
        // SAFETY: one caller; the ranges are refused before any write.
        unsafe {
            assert!(s.run_shared(&x, &out, 0..3).is_err());
            assert!(s.run_shared(&x[..5], &out, 0..1).is_err());
        }
    }
}
