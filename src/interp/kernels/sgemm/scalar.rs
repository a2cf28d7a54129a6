//! The definition of [`super::sgemm`]: one chain of fused multiply-adds per output, over the
//! packed panels (any panel width).

/// Output `(r, j)` of the product: `Σₖ a[r · lda + k] · B[k][j]` over the first `k` rows of
/// B as a chain of fused multiply-adds over `k` from 0, starting from +0, then `bias[j]`
/// added when given (one rounding after the chain); `b` holds B's panels of `panel_rows` rows
/// and `width` columns. Bounds are the caller's ([`super::sgemm_view`] checks them).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn output(
    a: &[f32],
    lda: usize,
    k: usize,
    b: &[f32],
    panel_rows: usize,
    width: usize,
    bias: Option<&[f32]>,
    r: usize,
    j: usize,
) -> f32 {
    let x = &a[r * lda..r * lda + k];
    let panel = &b[j / width * width * panel_rows..];
    let mut acc = 0f32;
    for (kk, &xv) in x.iter().enumerate() {
        acc = xv.mul_add(panel[kk * width + j % width], acc);
    }
    match bias {
        Some(b) => acc + b[j],
        None => acc,
    }
}
