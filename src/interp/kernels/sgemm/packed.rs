//! [`PackedB`]: the B operand of [`super::sgemm`] in column panels, packed once.

use super::Variant;
use crate::cpu::Isa;
use crate::kernels::buffer::MAX_PACKED_BYTES;
use crate::{Error, Result};

/// One cache line of `f32`s: the unit of [`PackedB`]'s storage, so panels start 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A `k × n` matrix in panels of `width` columns: panel `p` holds, row after row, columns
/// `p · width .. (p + 1) · width` of each of the `k` rows (zero past column `n`). Panels are
/// contiguous and start on a cache line. The panel width is the one of the kernel variant
/// chosen at packing ([`PackedB::pack`]), which [`super::sgemm`] then runs.
#[derive(Clone)]
pub struct PackedB {
    lines: Vec<Line>,
    k: usize,
    n: usize,
    variant: Variant,
}

impl Default for PackedB {
    fn default() -> Self {
        PackedB {
            lines: Vec::new(),
            k: 0,
            n: 0,
            variant: Variant::Scalar,
        }
    }
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedB({} x {}, {:?})", self.k, self.n, self.variant)
    }
}

impl PackedB {
    /// The row-major `k × n` matrix `b` packed for `isa`'s kernel (see [`PackedB::pack`]).
    pub fn new(isa: Isa, b: &[f32], k: usize, n: usize) -> Result<Self> {
        let mut p = PackedB::default();
        p.pack(isa, b, (n, 1), k, n)?;
        Ok(p)
    }

    /// Packs the `k × n` matrix whose element `(r, j)` is `b[r · strides.0 + j · strides.1]`
    /// for `isa`'s kernel (the scalar one where the CPU lacks `isa`'s instructions), reusing
    /// this buffer's storage (no allocation once it has held a matrix as large).
    ///
    /// # Errors
    /// When `b` is too short for the view or the packed matrix exceeds
    /// [`MAX_PACKED_BYTES`]; the buffer then holds an empty matrix.
    pub fn pack(&mut self, isa: Isa, b: &[f32], strides: (usize, usize), k: usize, n: usize) -> Result<()> {
        self.k = 0;
        self.n = 0;
        let variant = Variant::for_isa(isa);
        let width = variant.width();
        let last = |count: usize, stride: usize| count.checked_sub(1).and_then(|c| c.checked_mul(stride));
        // An empty matrix reads nothing; otherwise its last element must be inside `b`.
        let fits = k == 0
            || n == 0
            || match (last(k, strides.0), last(n, strides.1)) {
                (Some(r), Some(c)) => r.checked_add(c).is_some_and(|end| end < b.len()),
                _ => false,
            };
        if !fits {
            return Err(Error::ShapeMismatch(format!(
                "a {k} x {n} matrix at strides {strides:?} does not fit {} values",
                b.len()
            )));
        }
        let floats = n
            .div_ceil(width)
            .checked_mul(width)
            .and_then(|w| w.checked_mul(k))
            .filter(|&f| f.saturating_mul(4) <= MAX_PACKED_BYTES);
        let Some(floats) = floats else {
            return Err(Error::ResourceLimit(format!(
                "a packed {k} x {n} matrix exceeds {MAX_PACKED_BYTES} bytes"
            )));
        };
        let lines = floats.div_ceil(16);
        self.lines.clear();
        self.lines.resize(lines, Line([0.0; 16]));
        let data = self.data_mut();
        // With k = 0 there is nothing to copy (and no panel to split into).
        for (p, panel) in data
            .chunks_exact_mut((k * width).max(1))
            .enumerate()
            .filter(|_| k > 0)
        {
            // The panel's columns that exist (the rest stay zero).
            let first = p * width;
            let cols = (n - first).min(width);
            if strides.1 == 1 {
                // Rows contiguous (a weight matrix, V): one slice per row.
                for (r, row) in panel.chunks_exact_mut(width).enumerate() {
                    let at = r * strides.0 + first;
                    row[..cols].copy_from_slice(&b[at..at + cols]);
                }
            } else if strides.0 == 1 {
                // Columns contiguous (Kᵀ read from K's rows): one slice per column, scattered
                // down the panel.
                for j in 0..cols {
                    let at = (first + j) * strides.1;
                    for (row, &v) in panel.chunks_exact_mut(width).zip(&b[at..at + k]) {
                        row[j] = v;
                    }
                }
            } else {
                for (r, row) in panel.chunks_exact_mut(width).enumerate() {
                    for (j, v) in row[..cols].iter_mut().enumerate() {
                        *v = b[r * strides.0 + (first + j) * strides.1];
                    }
                }
            }
        }
        self.k = k;
        self.n = n;
        self.variant = variant;
        Ok(())
    }

    /// Rows of the packed matrix (the GEMM's inner size).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of the packed matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns per panel: a column range given to [`super::sgemm_bias_cols`] starts on a
    /// multiple of it.
    pub fn panel_width(&self) -> usize {
        self.variant.width()
    }

    /// The kernel these panels were packed for.
    pub(super) fn variant(&self) -> Variant {
        self.variant
    }

    /// The panels, `n.div_ceil(width) · width · k` values (plus up to one line of padding).
    pub(super) fn data(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)`, 16 `f32`s and no padding, so `lines` is
        // `lines.len() × 16` contiguous initialised `f32`s.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.lines.len() * 16) }
    }

    fn data_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `data`, and `&mut self` gives exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.lines.len() * 16)
        }
    }
}
