//! The definition of the row normalisations: 16 lanes of plain `f32` operations in a fixed
//! order, the oracle of the SIMD variants.
//!
//! A lane sum gives element `i` to lane `i % 16` (the last, partial block padded with zeros),
//! accumulating blocks in order, then folds the lanes by halves: lane `j` + lane `j + 8`,
//! then `j + 4`, `j + 2`, `j + 1` ([`fold`]). No fused multiply-add anywhere: a product is
//! rounded before it is added.

/// Lanes of a lane sum.
pub const LANES: usize = 16;

/// Folds the lanes by halves: `[j] + [j + 8]`, `[j] + [j + 4]`, `[j] + [j + 2]`, `[0] + [1]`.
pub fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width >= 1 {
        for j in 0..width {
            acc[j] += acc[j + width];
        }
        width /= 2;
    }
    acc[0]
}

/// The lane sum of `f(x[i])` (padding lanes add nothing).
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let blocks = x.chunks_exact(LANES);
    let tail = blocks.remainder();
    for b in blocks {
        for (a, &v) in acc.iter_mut().zip(b) {
            *a += f(v);
        }
    }
    if !tail.is_empty() {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += tail.get(j).map_or(0.0, |&v| f(v));
        }
    }
    fold(acc)
}

/// The lane sum of `x`.
pub fn sum(x: &[f32]) -> f32 {
    lane_sum(x, |v| v)
}

/// The lane sum of `(x - mean)²` (the difference rounded, then the square).
pub fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    lane_sum(x, |v| {
        let d = v - mean;
        d * d
    })
}

/// The lane sum of `x²`.
pub fn sum_sq(x: &[f32]) -> f32 {
    lane_sum(x, |v| v * v)
}

/// One output of a layer normalisation: `(x - mean) * inv * scale + bias`, left to right,
/// each step rounded (no bias adds `+0.0`).
pub fn layer_element(x: f32, scale: f32, bias: f32, mean: f32, inv: f32) -> f32 {
    (x - mean) * inv * scale + bias
}

/// One output of an RMS normalisation: `x * inv * scale`, left to right.
pub fn rms_element(x: f32, scale: f32, inv: f32) -> f32 {
    x * inv * scale
}
