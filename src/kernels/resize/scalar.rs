//! The portable bilinear kernels, the oracle of the SIMD ones: the module docs' formula, one
//! `f32` operation at a time.

use super::{BlendArgs, ColumnsArgs, LinesArgs};

/// Row blend of `a.n` elements.
///
/// # Safety
/// `a` satisfies the [`LinesArgs`] contract.
pub(super) unsafe fn lines(a: &LinesArgs) {
    // SAFETY: the contract makes each pointer valid for `n` elements; `t` is an `f32` buffer
    // distinct from the `i8` inputs.
    let (top, bottom, t) = unsafe {
        (
            std::slice::from_raw_parts(a.top, a.n),
            std::slice::from_raw_parts(a.bottom, a.n),
            std::slice::from_raw_parts_mut(a.t, a.n),
        )
    };
    for ((t, &p), &q) in t.iter_mut().zip(top).zip(bottom) {
        *t = a.x.value(p) * a.wc + a.x.value(q) * a.w;
    }
}

/// Column blend and quantization of one output row.
///
/// # Safety
/// `a` satisfies the [`ColumnsArgs`] contract.
pub(super) unsafe fn columns(a: &ColumnsArgs) {
    let c = a.channels;
    for (j, col) in a.cols.iter().enumerate() {
        // SAFETY: the contract makes `t` readable at both pixels of the tap and `y` writable
        // for pixel `j` (`c` bytes at `j × c`).
        let (t0, t1, y) = unsafe {
            (
                std::slice::from_raw_parts(a.t.add(col.a0), c),
                std::slice::from_raw_parts(a.t.add(col.a1), c),
                std::slice::from_raw_parts_mut(a.y.add(j * c), c),
            )
        };
        for ((y, &p), &q) in y.iter_mut().zip(t0).zip(t1) {
            *y = a.q.byte(p * col.wc + q * col.w);
        }
    }
}

/// Column blend of one output row into `u` (no padding written).
///
/// # Safety
/// `a` satisfies the [`BlendArgs`] contract.
pub(super) unsafe fn blend(a: &BlendArgs) {
    let c = a.channels;
    for (j, col) in a.cols.iter().enumerate() {
        // SAFETY: the contract makes `t` readable at both pixels of the tap and `u` writable
        // for pixel `j` (`c` elements at `j × c`).
        let (t0, t1, u) = unsafe {
            (
                std::slice::from_raw_parts(a.t.add(col.a0), c),
                std::slice::from_raw_parts(a.t.add(col.a1), c),
                std::slice::from_raw_parts_mut(a.u.add(j * c), c),
            )
        };
        for ((u, &p), &q) in u.iter_mut().zip(t0).zip(t1) {
            *u = p * col.wc + q * col.w;
        }
    }
}
