//! The portable rows: the test oracle of the SIMD rows.

use crate::kernels::QuantParams;
use crate::qscheme::{NanRule, QRange};

/// `y[i] = quantize(x[i])` in int8, NaN to -128 (see the module docs of the family).
pub(super) fn quantize_row(x: &[f32], q: QuantParams, y: &mut [i8]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = quantize_one(v, q);
    }
}

/// One element of [`quantize_row`].
#[inline(always)]
pub(super) fn quantize_one(x: f32, q: QuantParams) -> i8 {
    // `quantize` returns an integer in [-128, 127] as an f32 (NaN becomes -128 under
    // `RangeMin`), so the saturating conversion is exact.
    q.quantize(x, QRange::I8, NanRule::RangeMin) as i8
}

/// `y[i] = (x[i] - zero_point) · scale`.
pub(super) fn dequantize_row(x: &[i8], q: QuantParams, y: &mut [f32]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = q.dequantize(i32::from(v));
    }
}

/// `(min, max)` of a non-empty row when every value is finite, else `None` (the range of a
/// row quantized at run time; any order of comparisons gives the same two values, up to the
/// sign of a zero, which no quantization parameter depends on).
pub(super) fn finite_range(x: &[f32]) -> Option<(f32, f32)> {
    let (mut lo, mut hi, mut nan) = (f32::INFINITY, f32::NEG_INFINITY, false);
    for &v in x {
        lo = lo.min(v);
        hi = hi.max(v);
        nan |= v.is_nan();
    }
    (!x.is_empty() && !nan && lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}
