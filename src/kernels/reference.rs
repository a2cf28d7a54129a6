//! Textbook reference implementations: dequantize → compute in `f64` → quantize.
//!
//! They share no code with the kernels and exist so tests can check that the scalar kernels
//! are within one quantization step of the mathematically exact answer.

use super::indirection::ConvGeometry;
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

/// Grouped 2-D convolution over NHWC input with OHWI weights
/// (`out_c × k_h × k_w × (in_c / groups)`); padding reads real zero.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &ConvGeometry,
    groups: usize,
    out_c: usize,
    x: &[i8],
    xq: QuantParams,
    w: &[i8],
    w_scales: &[f32],
    bias: Option<&[i32]>,
    yq: QuantParams,
    range: OutputRange,
) -> Vec<i8> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let cin_g = g.in_c / groups;
    let cout_g = out_c / groups;
    let mut y = vec![0i8; g.batch * oh * ow * out_c];
    for b in 0..g.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for oc in 0..out_c {
                    let sw = w_scales[if w_scales.len() == 1 { 0 } else { oc }] as f64;
                    let mut sum = bias.map_or(0.0, |bb| bb[oc] as f64 * xq.scale as f64 * sw);
                    let grp = oc / cout_g;
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.padding.0 as isize;
                            let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize - g.padding.1 as isize;
                            if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                                continue;
                            }
                            let pix = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                            for ic in 0..cin_g {
                                let xv = dequantize(x[pix + grp * cin_g + ic], xq);
                                let wv = w[((oc * g.k_h + ky) * g.k_w + kx) * cin_g + ic] as f64 * sw;
                                sum += xv * wv;
                            }
                        }
                    }
                    y[((b * oh + oy) * ow + ox) * out_c + oc] = quantize(sum, yq, range);
                }
            }
        }
    }
    y
}
