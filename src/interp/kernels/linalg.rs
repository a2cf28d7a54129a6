//! Matrix products through `matrixmultiply` (f32 for float ops, f64 for exact integer ops).

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

/// Whether the CPU runs AVX2 + FMA code (detected once).
#[cfg(target_arch = "x86_64")]
pub static HAS_AVX2_FMA: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));

macro_rules! gemm_impl {
    ($t:ty, $f:ident) => {
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
gemm_impl!(f32, sgemm);
gemm_impl!(f64, dgemm);

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
    let mut out = vec![0f32; m * n];
    let beta = match c {
        Some(c) if g.beta != 0.0 => {
            let (dims, cv) = (c.dims(), c.as_f32()?);
            if broadcast(dims, &[m, n])? != [m, n] {
                return Err(Error::ShapeMismatch(format!(
                    "Gemm C {dims:?} does not broadcast to [{m}, {n}]"
                )));
            }
            let zeros = vec![0f32; m * n];
            let (_, v) = super::elementwise::broadcast_zip(&zeros, &[m, n], cv, dims, |_, y| y)?;
            out = v;
            g.beta
        }
        _ => 0.0,
    };
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
    f32::gemm(
        m,
        k,
        n,
        g.alpha,
        a.as_f32()?,
        a_st,
        b.as_f32()?,
        b_st,
        beta,
        &mut out,
        (n as isize, 1),
    );
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
    let a2: Vec<usize> = if ad.len() == 1 {
        vec![1, ad[0]]
    } else {
        ad.to_vec()
    };
    let b2: Vec<usize> = if bd.len() == 1 {
        vec![bd[0], 1]
    } else {
        bd.to_vec()
    };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let batch = broadcast(ab, bb)?;
    let nb: usize = batch.iter().product();
    let mut out = vec![T::default(); nb * m * n];
    // Offsets of each broadcast batch in A and B.
    let offsets = |dims: &[usize], mat: usize| -> Vec<usize> {
        let rank = batch.len();
        let mut strides = vec![0usize; rank];
        let mut acc = mat;
        for i in (0..dims.len()).rev() {
            strides[i + rank - dims.len()] = if dims[i] == 1 { 0 } else { acc };
            acc *= dims[i];
        }
        (0..nb)
            .map(|mut flat| {
                let mut off = 0;
                for ax in (0..rank).rev() {
                    off += (flat % batch[ax]) * strides[ax];
                    flat /= batch[ax];
                }
                off
            })
            .collect()
    };
    let (oa, ob) = (offsets(ab, m * k), offsets(bb, k * n));
    for i in 0..nb {
        let c = &mut out[i * m * n..(i + 1) * m * n];
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            &a[oa[i]..oa[i] + m * k],
            (k as isize, 1),
            &b[ob[i]..ob[i] + k * n],
            (n as isize, 1),
            T::default(),
            c,
            (n as isize, 1),
        );
    }
    Ok((out_dims, out))
}

/// numpy matmul on f32 tensors.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (dims, v) = matmul_generic(a.as_f32()?, a.dims(), b.as_f32()?, b.dims())?;
    Tensor::from_f32(dims, v)
}
