//! `f32` matrix products against a B packed once (a weight matrix): `C[m × n] = A[m × k] ·
//! B[k × n]` where every output is exactly the [`super::gemv`] definition, one chain of fused
//! multiply-adds over `k` in order from +0. So it gives gemv's bits for any row count, on
//! every ISA, and for any split of the rows between threads.
//!
//! B is packed into column panels ([`PackedB`]) whose width is the kernel's: 32 columns (two
//! zmm registers) for AVX-512, 16 (two ymm) for AVX2, zero-padded at the right edge. The
//! kernels keep a tile of rows × one panel of accumulators in registers (12 × 32 for AVX-512,
//! 6 × 16 for AVX2) and broadcast A's elements straight from its rows (A is not packed); the
//! edge tiles take fewer rows and store fewer columns. The panels are the outer loop, so a
//! panel stays in cache while every row block runs against it.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod packed;
mod scalar;

pub use packed::PackedB;

use crate::cpu::Isa;
use std::cell::RefCell;

/// The kernel a [`PackedB`] was packed for, which fixes its panel width.
pub(crate) use crate::cpu::F32Simd as Variant;

impl Variant {
    /// Columns per panel.
    fn width(self) -> usize {
        match self {
            Variant::Scalar => 16,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => avx2::WIDTH,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => avx512::WIDTH,
        }
    }
}

/// `c[r · ldc + j] = Σₖ a[r · lda + k] · B[k][j]` for the rows `r < m` of A (row stride
/// `lda`) and every column `j < b.n()`, on the kernel `b` was packed for; `c`'s other
/// elements are left alone. Allocates nothing.
///
/// # Panics
/// When `a` is shorter than `m` rows of `b.k()` values at stride `lda`, or `c` shorter than
/// `m` rows of `b.n()` at stride `ldc`, or `ldc < b.n()` (callers size them from one shape).
pub fn sgemm(a: &[f32], lda: usize, m: usize, b: &PackedB, c: &mut [f32], ldc: usize) {
    sgemm_bias(a, lda, m, b, None, c, ldc)
}

/// [`sgemm`], then `bias[j]` added to every output of column `j` when given (one rounding
/// after the chain: the bits of adding it to [`sgemm`]'s output), as the tiles are stored.
///
/// # Panics
/// As [`sgemm`], and when `bias` does not hold `b.n()` values.
pub fn sgemm_bias(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedB,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    let n = b.n();
    let c_fits = m
        .checked_sub(1)
        .map_or(Some(0), |r| r.checked_mul(ldc).and_then(|o| o.checked_add(n)))
        .is_some_and(|s| s <= c.len());
    assert!(
        c_fits,
        "sgemm output does not fit: m {m}, n {n}, ldc {ldc}, c {}",
        c.len()
    );
    // SAFETY: `c` is exclusively borrowed and holds rows r < m of n values at stride ldc
    // (asserted), every element the call writes.
    unsafe { sgemm_bias_cols(a, lda, m, b, 0..n, bias, c.as_mut_ptr(), ldc) }
}

/// [`sgemm_bias`] on columns `cols` of B alone, written through a raw `c` (element `(r, j)`
/// of the whole output at `c + r · ldc + j`), so that threads can compute disjoint column
/// ranges of the same rows (a few rows against a large matrix: decoding). The same bits as
/// [`sgemm_bias`] for those columns.
///
/// # Safety
/// `c` must be valid for writing elements `(r, j)`, `r < m`, `j` in `cols`, for the duration
/// of the call, and nothing else may access them meanwhile (concurrent calls on the same
/// output take disjoint column ranges).
///
/// # Panics
/// As [`sgemm_bias`] (with `c` unchecked), and when `cols` is not inside `0..b.n()` or does
/// not start on a panel boundary ([`PackedB::panel_width`]) unless empty.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_bias_cols(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedB,
    cols: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { sgemm_view(a, lda, m, b, b.k(), cols, bias, c, ldc) }
}

/// [`sgemm_bias_cols`] against the first `depth` rows of B only (`depth ≤ b.k()`; A's rows
/// hold `depth` values): the product of A with a top slice of B packed once, e.g. attention
/// weights over the keys a causal mask leaves visible, times V packed for every key. Element
/// `(r, j)` is the definition's chain over those rows, on every variant.
///
/// # Safety
/// As [`sgemm_bias_cols`].
///
/// # Panics
/// As [`sgemm_bias_cols`], and when `depth > b.k()` or `ldc < cols.end`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_view(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedB,
    depth: usize,
    cols: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
) {
    let (k, n, width) = (depth, b.n(), b.panel_width());
    let a_fits = m
        .checked_sub(1)
        .map_or(Some(0), |r| r.checked_mul(lda).and_then(|o| o.checked_add(k)))
        .is_some_and(|s| s <= a.len());
    assert!(
        depth <= b.k()
            && ldc >= cols.end
            && cols.start <= cols.end
            && cols.end <= n
            && (cols.start.is_multiple_of(width) || cols.start == cols.end)
            && bias.is_none_or(|b| b.len() == n)
            && a_fits,
        "sgemm columns do not fit: m {m}, k {k} of {}, n {n}, columns {cols:?}, lda {lda}, ldc {ldc}, a {}",
        b.k(),
        a.len()
    );
    if m == 0 || cols.is_empty() {
        return;
    }
    // Panels before `cols.start` are skipped whole: panel p starts at p · width · b.k().
    let panels = &b.data()[cols.start / width * width * b.k()..];
    let cn = cols.len();
    // The register-tiled kernel of the variant B was packed for (asserting the CPU has its
    // instructions, as `PackedB::pack` checked), or the definition element by element.
    #[cfg(target_arch = "x86_64")]
    type Kernel =
        unsafe fn(*const f32, usize, usize, usize, *const f32, usize, usize, *mut f32, usize, *const f32);
    #[cfg(target_arch = "x86_64")]
    let kernel: Kernel = match b.variant() {
        Variant::Avx512 => {
            assert!(crate::cpu::features().supports(Isa::Avx512Vnni));
            avx512::sgemm
        }
        Variant::Avx2 => {
            assert!(crate::cpu::features().supports(Isa::Avx2));
            avx2::sgemm
        }
        Variant::Scalar => return scalar_cols(a, lda, m, b, depth, cols, bias, c, ldc),
    };
    #[cfg(not(target_arch = "x86_64"))]
    return scalar_cols(a, lda, m, b, depth, cols, bias, c, ldc);
    // SAFETY: the CPU has the kernel's instructions (asserted); A's rows and the bias are in
    // bounds (asserted), the panels from `cols.start` hold `cn.div_ceil(width) · width ·
    // b.k()` values of which the first `depth` rows are read (`PackedB` invariant), and C's
    // elements are the caller's.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        kernel(
            a.as_ptr(),
            lda,
            m,
            k,
            panels.as_ptr(),
            b.k(),
            cn,
            c.add(cols.start),
            ldc,
            bias.map_or(std::ptr::null(), |b| b[cols.start..].as_ptr()),
        )
    }
}

/// [`sgemm_view`] by the definition, element by element (bounds checked by the caller).
///
/// # Safety
/// As [`sgemm_view`].
#[allow(clippy::too_many_arguments)]
unsafe fn scalar_cols(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedB,
    depth: usize,
    cols: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
) {
    let width = b.panel_width();
    for r in 0..m {
        for j in cols.clone() {
            let v = scalar::output(a, lda, depth, b.data(), b.k(), width, bias, r, j);
            // SAFETY: element (r, j) is the caller's to write.
            unsafe { *c.add(r * ldc + j) = v };
        }
    }
}

thread_local! {
    /// The per-thread buffer B is packed into by [`with_packed`].
    static SCRATCH: RefCell<PackedB> = RefCell::new(PackedB::default());
}

/// Runs `f` on the `k × n` matrix with element `(r, j)` at `b[r · strides.0 + j · strides.1]`,
/// packed for the process's ISA into this thread's reusable buffer (no allocation once the
/// thread has packed a matrix as large). Returns `None`, without calling `f`, when the view
/// does not fit `b` or the matrix is too large to pack, or when called from inside `f`.
pub fn with_packed<R>(
    b: &[f32],
    strides: (usize, usize),
    k: usize,
    n: usize,
    f: impl FnOnce(&PackedB) -> R,
) -> Option<R> {
    SCRATCH.with(|cell| {
        let mut packed = cell.try_borrow_mut().ok()?;
        let isa = crate::cpu::selected_isa().unwrap_or(Isa::Scalar);
        packed.pack(isa, b, strides, k, n).ok()?;
        Some(f(&packed))
    })
}
