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
