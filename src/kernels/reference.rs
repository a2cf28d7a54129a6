//! Textbook reference implementations: dequantize → compute in `f64` → quantize.
//!
//! They share no code with the kernels and exist so tests can check that the scalar kernels
//! are within one quantization step of the mathematically exact answer.

use super::requant::{OutputRange, QuantParams};

/// `clamp(round_half_even(real / scale) + zp, range)` in `f64`.
pub fn quantize(real: f64, q: QuantParams, range: OutputRange) -> i8 {
    let v = (real / q.scale as f64).round_ties_even() + q.zero_point as f64;
    v.clamp(range.min as f64, range.max as f64) as i8
}

/// `(q - zp) * scale` in `f64`.
pub fn dequantize(v: i8, q: QuantParams) -> f64 {
    (v as i32 - q.zero_point) as f64 * q.scale as f64
}

/// Fully connected / GEMM: `y[i][c] = Σ_k x[i][k]·w[c][k] + bias[c]` on real values.
/// `x` is `m × k` (dense), `w` is `n × k`, `w_scales` has 1 or `n` entries, `bias` is `i32`
/// with scale `s_x * s_w[c]`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    x: &[i8],
    xq: QuantParams,
    w: &[i8],
    w_scales: &[f32],
    bias: Option<&[i32]>,
    yq: QuantParams,
    range: OutputRange,
) -> Vec<i8> {
    let mut y = vec![0i8; m * n];
    for i in 0..m {
        for c in 0..n {
            let sw = w_scales[if w_scales.len() == 1 { 0 } else { c }] as f64;
            let mut sum = bias.map_or(0.0, |b| b[c] as f64 * xq.scale as f64 * sw);
            for kk in 0..k {
                sum += dequantize(x[i * k + kk], xq) * (w[c * k + kk] as f64 * sw);
            }
            y[i * n + c] = quantize(sum, yq, range);
        }
    }
    y
}
