//! The definition of [`super::sgemm`]: one chain of fused multiply-adds per output, over the
//! packed panels (any panel width).

/// `c[r · ldc + j] = Σₖ a[r · lda + k] · B[k][j]` for `r < m`, `j < n`, each sum a chain of
/// fused multiply-adds over `k` from 0, starting from +0; `b` holds B's `k`-row panels of
/// `width` columns; with a `bias`, `bias[j]` is added to each sum (one rounding after the
/// chain). Bounds are the caller's ([`super::sgemm`] checks them).
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    b: &[f32],
    width: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    bias: Option<&[f32]>,
) {
    for r in 0..m {
        for j in 0..n {
            c[r * ldc + j] = output(a, lda, k, b, width, bias, r, j);
        }
    }
}

/// Output `(r, j)` of [`sgemm`]: the chain over `k`, then the bias.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn output(
    a: &[f32],
    lda: usize,
    k: usize,
    b: &[f32],
    width: usize,
    bias: Option<&[f32]>,
    r: usize,
    j: usize,
) -> f32 {
    let x = &a[r * lda..r * lda + k];
    let panel = &b[j / width * width * k..];
    let mut acc = 0f32;
    for (kk, &xv) in x.iter().enumerate() {
        acc = xv.mul_add(panel[kk * width + j % width], acc);
    }
    match bias {
        Some(b) => acc + b[j],
        None => acc,
    }
}
