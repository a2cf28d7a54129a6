//! Matrix products: f32 ones through the chained kernels ([`super::gemv`], [`super::sgemm`];
//! `matrixmultiply` only for Gemm's scaled or transposed-A forms), f64 ones (exact integer
//! ops) through `matrixmultiply`.

use crate::ir::op::GemmAttrs;
use crate::ir::shapes::{broadcast, matmul_shape};
use crate::ir::Tensor;
use crate::{Error, Result};

/// A scalar type with a GEMM: `C = alpha * A·B + beta * C` over strided row/column views.
pub trait GemmScalar: Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    /// The multiplicative identity.
    const ONE: Self;
    /// `c[m×n] = alpha * a[m×k] · b[k×n] + beta * c`, with element strides (rows, columns).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        a_st: (isize, isize),
        b: &[Self],
        b_st: (isize, isize),
        beta: Self,
        c: &mut [Self],
        c_st: (isize, isize),
    );
}

/// Panics-free bound check of a strided view before handing raw pointers to the GEMM.
fn view_fits(len: usize, rows: usize, cols: usize, st: (isize, isize)) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    st.0 >= 0 && st.1 >= 0 && ((rows - 1) * st.0 as usize + (cols - 1) * st.1 as usize) < len
}

/// Whether the CPU runs AVX2 + FMA code (from the crate's one CPU detection).
#[cfg(target_arch = "x86_64")]
pub static HAS_AVX2_FMA: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    let f = crate::cpu::features();
    f.avx2 && f.fma
});

/// The f32 products the gemv definition computes (one fused multiply-add chain per output,
/// over `k` from 0): alpha 1, beta 0, A's and C's rows contiguous (any row strides), B any
/// non-negative strides. At most [`super::gemv::MAX_ROWS`] rows of a row-major A, B and C
/// run [`super::gemv`] (no packing); the others [`super::sgemm`], with B packed into this
/// thread's reusable buffer. Returns false, having written nothing, for any other product (or
/// one whose views do not fit their slices).
#[allow(clippy::too_many_arguments)]
fn chained_f32(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    a_st: (isize, isize),
    b: &[f32],
    b_st: (isize, isize),
    beta: f32,
    c: &mut [f32],
    c_st: (isize, isize),
) -> bool {
    let contiguous = |st: (isize, isize), cols: usize| st.1 == 1 && st.0 == cols as isize;
    if alpha != 1.0
        || beta != 0.0
        || a_st.1 != 1
        || c_st.1 != 1
        || a_st.0 < 0
        || c_st.0 < 0
        || b_st.0 < 0
        || b_st.1 < 0
        || !view_fits(a.len(), m, k, a_st)
        || !view_fits(c.len(), m, n, c_st)
        || (c_st.0 as usize) < n
    {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    if m <= super::gemv::MAX_ROWS
        && contiguous(a_st, k)
        && contiguous(b_st, n)
        && contiguous(c_st, n)
        && b.len() >= k * n
    {
        super::gemv::gemm_few_rows(a, m, k, b, n, c);
        return true;
    }
    let (lda, ldc) = (a_st.0 as usize, c_st.0 as usize);
    super::sgemm::with_packed(b, (b_st.0 as usize, b_st.1 as usize), k, n, |p| {
        super::sgemm::sgemm(a, lda, m, p, c, ldc)
    })
    .is_some()
}

/// The f64 GEMM has no chained path (it computes exact integer products).
#[allow(clippy::too_many_arguments)]
fn few_rows_f64(
    _: usize,
    _: usize,
    _: usize,
    _: f64,
    _: &[f64],
    _: (isize, isize),
    _: &[f64],
    _: (isize, isize),
    _: f64,
    _: &mut [f64],
    _: (isize, isize),
) -> bool {
    false
}

macro_rules! gemm_impl {
    ($t:ty, $f:ident, $few:ident) => {
        impl GemmScalar for $t {
            const ONE: Self = 1.0;

            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                a_st: (isize, isize),
                b: &[Self],
                b_st: (isize, isize),
                beta: Self,
                c: &mut [Self],
                c_st: (isize, isize),
            ) {
                if $few(m, k, n, alpha, a, a_st, b, b_st, beta, c, c_st) {
                    return;
                }
                assert!(
                    view_fits(a.len(), m, k, a_st)
                        && view_fits(b.len(), k, n, b_st)
                        && view_fits(c.len(), m, n, c_st),
                    "GEMM operand views exceed their buffers"
                );
                // SAFETY: the assertion above proves every element the GEMM addresses
                // (row r < rows, column j < cols at r*rs + j*cs) lies inside its slice; `c`
                // is exclusively borrowed and does not alias `a` or `b`.
                unsafe {
                    matrixmultiply::$f(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        a_st.0,
                        a_st.1,
                        b.as_ptr(),
                        b_st.0,
                        b_st.1,
                        beta,
                        c.as_mut_ptr(),
                        c_st.0,
                        c_st.1,
                    );
                }
            }
        }
    };
}
gemm_impl!(f32, sgemm, chained_f32);
gemm_impl!(f64, dgemm, few_rows_f64);

/// ONNX Gemm: `alpha * op(A) · op(B) + beta * C`.
pub fn gemm(g: &GemmAttrs, a: &Tensor, b: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    if ad.len() != 2 || bd.len() != 2 {
        return Err(Error::ShapeMismatch(format!(
            "Gemm operands {ad:?}, {bd:?} must be 2-D"
        )));
    }
    let (m, k) = if g.trans_a { (ad[1], ad[0]) } else { (ad[0], ad[1]) };
    let (k2, n) = if g.trans_b { (bd[1], bd[0]) } else { (bd[0], bd[1]) };
    if k != k2 {
        return Err(Error::ShapeMismatch(format!(
            "Gemm inner sizes differ: {ad:?}, {bd:?}"
        )));
    }
    crate::ir::checked_numel(&[m, n])?;
    let a_st = if g.trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let b_st = if g.trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // The product as a MatMul computes it, then scaled and C added (a scale of 1 is exact):
    // with alpha = beta = 1, the bits of MatMul followed by Add.
    let mut out = vec![0f32; m * n];
    f32::gemm(
        m,
        k,
        n,
        1.0,
        a.as_f32()?,
        a_st,
        b.as_f32()?,
        b_st,
        0.0,
        &mut out,
        (n as isize, 1),
    );
    let alpha = g.alpha;
    match c {
        Some(c) if g.beta != 0.0 => {
            let (dims, cv) = (c.dims(), c.as_f32()?);
            if broadcast(dims, &[m, n])? != [m, n] {
                return Err(Error::ShapeMismatch(format!(
                    "Gemm C {dims:?} does not broadcast to [{m}, {n}]"
                )));
            }
            let beta = g.beta;
            let (_, v) =
                super::elementwise::broadcast_zip(&out, &[m, n], cv, dims, |p, c| alpha * p + beta * c)?;
            out = v;
        }
        _ if alpha != 1.0 => out.iter_mut().for_each(|p| *p *= alpha),
        _ => {}
    }
    Tensor::from_f32(vec![m, n], out)
}

/// numpy matmul with batch broadcasting, generic over the GEMM scalar.
pub fn matmul_generic<T: GemmScalar>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
) -> Result<(Vec<usize>, Vec<T>)> {
    let out_dims = matmul_shape(ad, bd)?;
    let mut out = vec![T::default(); out_dims.iter().product()];
    matmul_into(a, ad, b, bd, &mut out)?;
    Ok((out_dims, out))
}

/// Whether `out` is the numpy matmul shape of `ad` × `bd` (checked without allocating).
pub fn is_matmul_shape(ad: &[usize], bd: &[usize], out: &[usize]) -> bool {
    let (Some(&ka), Some(&nb_last)) = (ad.last(), bd.last()) else {
        return false;
    };
    let (a_batch, m) = match ad.len() {
        1 => (&ad[..0], None),
        r => (&ad[..r - 2], Some(ad[r - 2])),
    };
    let (b_batch, kb, n) = match bd.len() {
        1 => (&bd[..0], nb_last, None),
        r => (&bd[..r - 2], bd[r - 2], Some(nb_last)),
    };
    let rank = a_batch.len().max(b_batch.len());
    let tail_len = usize::from(m.is_some()) + usize::from(n.is_some());
    ka == kb
        && out.len() == rank + tail_len
        && crate::interp::kernels::elementwise::is_broadcast_of(a_batch, b_batch, &out[..rank])
        && m.is_none_or(|m| out[rank] == m)
        && n.is_none_or(|n| out[out.len() - 1] == n)
}

/// `(rows, k, n)` of a MatMul whose B is one matrix (rank 2) and A has rank 2 or more: one
/// GEMM over A's folded batch rows (as the interpreter's matmul computes it).
pub fn folded_rows(ad: &[usize], bd: &[usize]) -> Option<(usize, usize, usize)> {
    match (ad, bd) {
        ([batch @ .., m, k], [kb, n]) if k == kb => Some((batch.iter().product::<usize>() * m, *k, *n)),
        _ => None,
    }
}

/// Rows `rows` of the folded f32 GEMM `a[· × k] · b[k × n]` into `out` (those rows' `n`
/// elements each): the same bits as those rows of the whole product.
pub fn matmul_rows_f32(
    a: &[f32],
    b: &[f32],
    k: usize,
    n: usize,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    f32::gemm(
        rows.len(),
        k,
        n,
        1.0,
        &a[rows.start * k..rows.end * k],
        (k as isize, 1),
        b,
        (n as isize, 1),
        0.0,
        out,
        (n as isize, 1),
    );
}

/// numpy matmul into `out` (of the element count of the result shape; its values are
/// overwritten). When B has no batch axes, A's batch axes are folded into its rows: one GEMM.
pub fn matmul_into<T: GemmScalar>(a: &[T], ad: &[usize], b: &[T], bd: &[usize], out: &mut [T]) -> Result<()> {
    matmul_range(a, ad, b, bd, None, out)
}

/// `(batches, m, n)` of a MatMul whose operands are both batched (B of rank 3 or more, A of
/// rank 2 or more): its broadcast batch count and each product's size.
pub fn batched_matmul_size(ad: &[usize], bd: &[usize]) -> Option<(usize, usize, usize)> {
    if ad.len() < 2 || bd.len() < 3 || ad[ad.len() - 1] != bd[bd.len() - 2] {
        return None;
    }
    let batch = broadcast(&ad[..ad.len() - 2], &bd[..bd.len() - 2]).ok()?;
    Some((batch.iter().product(), ad[ad.len() - 2], bd[bd.len() - 1]))
}

/// The products `batches` (of [`batched_matmul_size`]'s count) of a batched f32 MatMul into
/// `out`, which holds just those products' `m × n` blocks: the same bits as the whole matmul.
pub fn matmul_batches_f32(
    a: &[f32],
    ad: &[usize],
    b: &[f32],
    bd: &[usize],
    batches: std::ops::Range<usize>,
    out: &mut [f32],
) -> Result<()> {
    if bd.len() < 3 {
        return Err(Error::Internal(format!(
            "MatMul of {ad:?} and {bd:?} has no batched B"
        )));
    }
    matmul_range(a, ad, b, bd, Some(batches), out)
}

/// [`matmul_into`], or with `batches` only those broadcast batches (B batched).
fn matmul_range<T: GemmScalar>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    batches: Option<std::ops::Range<usize>>,
    out: &mut [T],
) -> Result<()> {
    let b_vec;
    let b2: &[usize] = if bd.len() == 1 {
        b_vec = [bd[0], 1];
        &b_vec
    } else {
        bd
    };
    let a2_owned;
    let a2: &[usize] = if ad.len() == 1 {
        a2_owned = [1, ad[0]];
        &a2_owned
    } else {
        ad
    };
    if a2.len() < 2 || b2.len() < 2 || a2[a2.len() - 1] != b2[b2.len() - 2] {
        return Err(Error::ShapeMismatch(format!("MatMul of {ad:?} and {bd:?}")));
    }
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let a_batches: usize = ab.iter().product();
    if bb.is_empty() && batches.is_none() {
        // Every A matrix meets the one B: A's rows of all batches are one matrix.
        let rows = a_batches * m;
        if out.len() != rows * n || a.len() != rows * k || b.len() != k * n {
            return Err(Error::Internal(format!(
                "MatMul buffers do not fit {ad:?} x {bd:?}"
            )));
        }
        T::gemm(
            rows,
            k,
            n,
            T::ONE,
            a,
            (k as isize, 1),
            b,
            (n as isize, 1),
            T::default(),
            out,
            (n as isize, 1),
        );
        return Ok(());
    }
    let batch = broadcast(ab, bb)?;
    let nb: usize = batch.iter().product();
    let range = batches.unwrap_or(0..nb);
    if range.end > nb
        || out.len() != range.len() * m * n
        || a.len() != a_batches * m * k
        || b.len() != bb.iter().product::<usize>() * k * n
    {
        return Err(Error::Internal(format!(
            "MatMul buffers do not fit {ad:?} x {bd:?}"
        )));
    }
    // The offset of broadcast batch `flat` in an operand with batch dims `dims`.
    let offset = |dims: &[usize], mat: usize, mut flat: usize| -> usize {
        let rank = batch.len();
        let (mut off, mut acc) = (0, mat);
        for ax in (0..rank).rev() {
            let i = flat % batch[ax];
            flat /= batch[ax];
            if let Some(d) = (ax + dims.len()).checked_sub(rank).map(|j| dims[j]) {
                if d != 1 {
                    off += i * acc;
                }
                acc *= d;
            }
        }
        off
    };
    for (j, i) in range.enumerate() {
        let (oa, ob) = (offset(ab, m * k, i), offset(bb, k * n, i));
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            &a[oa..oa + m * k],
            (k as isize, 1),
            &b[ob..ob + k * n],
            (n as isize, 1),
            T::default(),
            &mut out[j * m * n..(j + 1) * m * n],
            (n as isize, 1),
        );
    }
    Ok(())
}

/// numpy matmul on f32 tensors.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (dims, v) = matmul_generic(a.as_f32()?, a.dims(), b.as_f32()?, b.dims())?;
    Tensor::from_f32(dims, v)
}
