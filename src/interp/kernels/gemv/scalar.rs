//! The definition of [`super::gemv`]: one chain of fused multiply-adds per column.

use std::ops::Range;

/// `y[j] = Σₖ x[k] · w[k · n + cols.start + j]`, each sum a chain of fused multiply-adds over
/// `k` from 0, starting from +0.
pub fn gemv(x: &[f32], w: &[f32], n: usize, cols: Range<usize>, y: &mut [f32]) {
    for (c, out) in cols.zip(y.iter_mut()) {
        let mut acc = 0f32;
        for (kk, &xv) in x.iter().enumerate() {
            acc = xv.mul_add(w[kk * n + c], acc);
        }
        *out = acc;
    }
}
