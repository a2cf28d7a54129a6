//! Scaled dot-product attention over strided `f32` views, one block of query rows at a time:
//! `scores = Q·Kᵀ` (a GEMM reading Kᵀ through its strides), scale, add a broadcast mask,
//! softmax along the keys, optionally NaN → 0, then `·V` (a GEMM writing the output through
//! its strides). It computes what the graph chain MatMul → Mul/Div → Add → Softmax →
//! [IsNaN/Where] → MatMul computes, without materializing scores of more than one block or
//! any transposed operand. Where Q's rows and the output's rows are contiguous, Kᵀ and V are
//! packed once per head (and thread) for the packed GEMM ([`super::sgemm`]), whose blocks
//! then read only the keys the causal mask leaves visible.

use super::sgemm::{sgemm_view, PackedB};
use super::softmax_in_place;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut, Range};

/// Query blocks of at most this many rows (decoding) compute their products directly, one
/// dot product per score and one scaled sum of V's rows per output row: a GEMM would pack
/// Kᵀ and V for every block, which costs more than the products themselves.
const FEW_ROWS: usize = 4;

/// `Σ a[i]·b[i]` in eight interleaved partial sums, added in a fixed tree.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Most axes of an operand the kernel takes (higher ranks run the graph's own nodes).
pub const MAX_RANK: usize = 8;

/// Up to [`MAX_RANK`] sizes or strides, held inline: planning an attention allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dims {
    len: usize,
    v: [usize; MAX_RANK],
}

impl Dims {
    /// `n` zeros; None above [`MAX_RANK`].
    pub fn zeros(n: usize) -> Option<Dims> {
        (n <= MAX_RANK).then_some(Dims {
            len: n,
            v: [0; MAX_RANK],
        })
    }

    /// A copy of `x`; None above [`MAX_RANK`].
    pub fn from_slice(x: &[usize]) -> Option<Dims> {
        let mut d = Dims::zeros(x.len())?;
        d.copy_from_slice(x);
        Some(d)
    }

    /// The values of `it`; None past [`MAX_RANK`] values or when one is None.
    fn try_collect(it: impl Iterator<Item = Option<usize>>) -> Option<Dims> {
        let mut d = Dims::default();
        for x in it {
            d.push(x?)?;
        }
        Some(d)
    }

    /// Appends `x`; None when full.
    fn push(&mut self, x: usize) -> Option<()> {
        *self.v.get_mut(self.len)? = x;
        self.len += 1;
        Some(())
    }
}

impl Deref for Dims {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.v[..self.len]
    }
}

impl DerefMut for Dims {
    fn deref_mut(&mut self) -> &mut [usize] {
        &mut self.v[..self.len]
    }
}

/// Mask values at most this remove a key from the attention of a row that keeps another
/// key (see [`SdpaPlan::visible_keys`]).
const MASKED: f32 = -1e30;
/// A mask value at least this keeps its key in a way that makes [`MASKED`] keys' weights
/// exact zeros.
const KEPT: f32 = -1e20;

/// Query rows per unit of work: the scores of one unit are `BLOCK_ROWS × keys` floats.
pub const BLOCK_ROWS: usize = 32;

/// An operand as the kernel reads it: `dims` (batch axes, then rows and columns) and the
/// element stride of each axis (0 on a broadcast axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Logical dims, at least 2.
    pub dims: Dims,
    /// Element stride of each axis.
    pub strides: Dims,
}

impl Layout {
    /// The row-major layout of a tensor of `dims`; None above [`MAX_RANK`] axes.
    pub fn contiguous(dims: &[usize]) -> Option<Layout> {
        let mut strides = Dims::zeros(dims.len())?;
        let mut s = 1usize;
        for (st, &d) in strides.iter_mut().zip(dims).rev() {
            *st = s;
            s = s.saturating_mul(d);
        }
        Some(Layout {
            dims: Dims::from_slice(dims)?,
            strides,
        })
    }

    /// This layout with its axes permuted (`axis i` of the result is axis `perm[i]` of
    /// this one), or None when `perm` is not a permutation of the axes.
    pub fn permuted(&self, perm: &[usize]) -> Option<Layout> {
        if perm.len() != self.dims.len() {
            return None;
        }
        let mut seen = [false; MAX_RANK];
        for &p in perm {
            if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                return None;
            }
        }
        Some(Layout {
            dims: Dims::try_collect(perm.iter().map(|&p| Some(self.dims[p])))?,
            strides: Dims::try_collect(perm.iter().map(|&p| Some(self.strides[p])))?,
        })
    }

    /// The largest element offset the layout addresses plus one (0 when it is empty).
    fn span(&self) -> usize {
        if self.dims.contains(&0) {
            return 0;
        }
        self.dims
            .iter()
            .zip(self.strides.iter())
            .fold(1usize, |acc, (&d, &s)| {
                acc.saturating_add((d - 1).saturating_mul(s))
            })
    }
}

/// How the scores are scaled before the mask is added.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreScale {
    /// Not scaled.
    None,
    /// `scores * c`.
    Mul(f32),
    /// `scores / c`.
    Div(f32),
}

/// The shapes of one attention, checked: Q `[..., Sq, D]`, Kᵀ `[..., D, Sk]`, V
/// `[..., Sk, Dv]`, the mask broadcast to the scores `[batch..., Sq, Sk]` without expanding
/// them, the output `[batch..., Sq, Dv]` stored transposed by a permutation (identity
/// when none).
#[derive(Clone, Debug)]
pub struct SdpaPlan {
    batch: Dims,
    sq: usize,
    d: usize,
    sk: usize,
    dv: usize,
    /// Per operand (Q, Kᵀ, V, mask, output): batch strides aligned to `batch`, then the
    /// row and column strides.
    q: Layout,
    kt: Layout,
    v: Layout,
    mask: Option<Layout>,
    out: Layout,
    /// The dims of the stored output (the logical output's permuted by `out_perm`).
    out_dims: Dims,
    scale: ScoreScale,
    nan_to_zero: bool,
    /// Query heads per key / value head along the last batch axis (grouped-query
    /// attention): head `h` reads Kᵀ's and V's head `h / kv_repeat`. 1 otherwise.
    kv_repeat: usize,
}

/// `layout`'s batch axes aligned to `batch` (ONNX broadcasting: missing leading axes and
/// axes of size 1 get stride 0), then its two matrix axes; None when they do not broadcast.
fn align(layout: &Layout, batch: &[usize]) -> Option<Layout> {
    let r = layout.dims.len();
    let own = r.checked_sub(2)?;
    if own > batch.len() {
        return None;
    }
    let lead = batch.len() - own;
    let mut dims = Dims::from_slice(batch)?;
    let mut strides = Dims::zeros(batch.len())?;
    for i in 0..own {
        let (d, s) = (layout.dims[i], layout.strides[i]);
        if d == batch[lead + i] {
            strides[lead + i] = if d == 1 { 0 } else { s };
        } else if d != 1 {
            return None;
        }
    }
    for i in own..r {
        dims.push(layout.dims[i])?;
        strides.push(layout.strides[i])?;
    }
    Some(Layout { dims, strides })
}

/// ONNX (numpy) broadcast of two batch shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Dims> {
    let rank = a.len().max(b.len());
    Dims::try_collect((0..rank).map(|i| {
        let x = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let y = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        match (x, y) {
            _ if x == y => Some(x),
            (1, _) => Some(y),
            (_, 1) => Some(x),
            _ => None,
        }
    }))
}

impl SdpaPlan {
    /// Checks the operand layouts against each other; None when the fused computation does
    /// not apply (ranks below 2, mismatched inner sizes, batches that do not broadcast the
    /// way the two MatMuls would, a mask that would expand the scores, an output permutation
    /// that is not one of its axes), in which case the graph's own steps must run instead.
    /// The output is stored as ONNX Transpose with `out_perm` would store it.
    ///
    /// With `kv_repeat` > 1, Kᵀ and V are shared by groups of query heads (grouped-query
    /// attention, read without repeating them): their axis before the matrix axes holds
    /// `heads / kv_repeat` heads and stands for `heads`, each repeated `kv_repeat` times in
    /// a row, as the exporters' Unsqueeze → Expand → Reshape ("repeat_kv") builds them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        q: &Layout,
        kt: &Layout,
        v: &Layout,
        mask: Option<&Layout>,
        out_perm: Option<&[usize]>,
        scale: ScoreScale,
        nan_to_zero: bool,
        kv_repeat: usize,
    ) -> Option<SdpaPlan> {
        let (qr, kr, vr) = (q.dims.len(), kt.dims.len(), v.dims.len());
        if qr < 2 || kr < 2 || vr < 2 || kv_repeat == 0 {
            return None;
        }
        // Kᵀ and V as the logical operands: their head axis `kv_repeat` times larger (the
        // offsets divide the head index back, see `offsets`).
        let repeated = |l: &Layout| -> Option<Layout> {
            let mut l = *l;
            if kv_repeat > 1 {
                let n = l.dims.len();
                let axis = n.checked_sub(3)?;
                l.dims[axis] = l.dims[axis].checked_mul(kv_repeat)?;
            }
            Some(l)
        };
        let (kt, v) = (&repeated(kt)?, &repeated(v)?);
        let (sq, d) = (q.dims[qr - 2], q.dims[qr - 1]);
        let (kd, sk) = (kt.dims[kr - 2], kt.dims[kr - 1]);
        let (vk, dv) = (v.dims[vr - 2], v.dims[vr - 1]);
        if kd != d || vk != sk {
            return None;
        }
        let batch = broadcast(&q.dims[..qr - 2], &kt.dims[..kr - 2])?;
        if broadcast(&batch, &v.dims[..vr - 2])? != batch {
            return None;
        }
        let mut scores_dims = batch;
        scores_dims.push(sq)?;
        scores_dims.push(sk)?;
        let mask = match mask {
            Some(m) => {
                if m.dims.len() > scores_dims.len() || broadcast(&m.dims, &scores_dims)? != scores_dims {
                    return None;
                }
                // Left-pad to the scores' rank, then align like a matrix operand.
                let pad = scores_dims.len() - m.dims.len();
                let padded = Layout {
                    dims: Dims::try_collect(
                        std::iter::repeat_n(1, pad)
                            .chain(m.dims.iter().copied())
                            .map(Some),
                    )?,
                    strides: Dims::try_collect(
                        std::iter::repeat_n(0, pad)
                            .chain(m.strides.iter().copied())
                            .map(Some),
                    )?,
                };
                let mut a = align(&padded, &batch)?;
                let r = a.dims.len();
                for i in [r - 2, r - 1] {
                    if a.dims[i] == 1 {
                        a.strides[i] = 0;
                    }
                }
                a.dims[r - 2] = sq;
                a.dims[r - 1] = sk;
                Some(a)
            }
            None => None,
        };
        let mut logical = batch;
        logical.push(sq)?;
        logical.push(dv)?;
        let identity = Dims::try_collect((0..logical.len()).map(Some))?;
        let perm = out_perm.unwrap_or(&identity);
        let stored = Layout::contiguous(&logical)?.permuted(perm)?;
        let stored = Layout::contiguous(&stored.dims)?;
        let mut out = Layout {
            dims: logical,
            strides: Dims::zeros(perm.len())?,
        };
        for (i, &p) in perm.iter().enumerate() {
            out.strides[p] = stored.strides[i];
        }
        Some(SdpaPlan {
            q: align(q, &batch)?,
            kt: align(kt, &batch)?,
            v: align(v, &batch)?,
            mask,
            out,
            out_dims: stored.dims,
            batch,
            sq,
            d,
            sk,
            dv,
            scale,
            nan_to_zero,
            kv_repeat,
        })
    }

    /// The dims of the stored output.
    pub fn out_dims(&self) -> &[usize] {
        &self.out_dims
    }

    /// Units of work: every (batch…, block of [`BLOCK_ROWS`] query rows); each writes its
    /// own output rows only, and the result of a unit does not depend on which other units
    /// run or where.
    pub fn units(&self) -> usize {
        if self.dv == 0 {
            return 0;
        }
        self.batch.iter().product::<usize>() * self.sq.div_ceil(BLOCK_ROWS)
    }

    /// Multiply-adds of the whole attention (both products), saturating.
    pub fn macs(&self) -> usize {
        let per = self
            .sq
            .saturating_mul(self.sk)
            .saturating_mul(self.d.saturating_add(self.dv));
        self.batch.iter().fold(per, |a, &b| a.saturating_mul(b))
    }

    /// Whether each operand slice is long enough for its layout (and an output of
    /// `out_len` elements for the output's).
    pub fn fits(&self, q: &[f32], kt: &[f32], v: &[f32], mask: Option<&[f32]>, out_len: usize) -> bool {
        let m_ok = match (&self.mask, mask) {
            (Some(l), Some(m)) => l.span() <= m.len(),
            (None, None) => true,
            _ => false,
        };
        m_ok && self.q.span() <= q.len()
            && self.kv_span(&self.kt) <= kt.len()
            && self.kv_span(&self.v) <= v.len()
            && self.out.span() <= out_len
    }

    /// The span of Kᵀ's or V's aligned layout `l`: its head axis (the last batch axis)
    /// holds `1 / kv_repeat` of the heads it stands for.
    fn kv_span(&self, l: &Layout) -> usize {
        let mut own = *l;
        if let Some(axis) = self.batch.len().checked_sub(1).filter(|_| self.kv_repeat > 1) {
            own.dims[axis] = own.dims[axis].div_ceil(self.kv_repeat);
        }
        own.span()
    }

    /// Element offsets of batch `b` (row-major over `self.batch`) in Q, Kᵀ, V, mask, output.
    fn offsets(&self, mut b: usize) -> [usize; 5] {
        let mut off = [0usize; 5];
        let ls = [
            &self.q,
            &self.kt,
            &self.v,
            self.mask.as_ref().unwrap_or(&self.q),
            &self.out,
        ];
        let head_axis = self.batch.len().wrapping_sub(1);
        for axis in (0..self.batch.len()).rev() {
            let i = b % self.batch[axis];
            b /= self.batch[axis];
            for (k, (o, l)) in off.iter_mut().zip(ls).enumerate() {
                // Kᵀ (1) and V (2) are shared by `kv_repeat` consecutive heads.
                let shared = axis == head_axis && (k == 1 || k == 2);
                *o += if shared { i / self.kv_repeat } else { i } * l.strides[axis];
            }
        }
        off
    }

    /// Computes units `units` into `out`.
    ///
    /// # Safety
    /// `out` must address at least the output layout's span of writable `f32`s that nothing
    /// reads or writes during the call except other calls on disjoint unit ranges; the
    /// operand slices must fit the plan ([`SdpaPlan::fits`]).
    pub unsafe fn run_units(
        &self,
        q: &[f32],
        kt: &[f32],
        v: &[f32],
        mask: Option<&[f32]>,
        out: *mut f32,
        units: Range<usize>,
    ) {
        let blocks = self.sq.div_ceil(BLOCK_ROWS);
        let r = |l: &Layout| {
            let n = l.strides.len();
            (l.strides[n - 2] as isize, l.strides[n - 1] as isize)
        };
        let (qs, ks, vs, os) = (r(&self.q), r(&self.kt), r(&self.v), r(&self.out));
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let need = BLOCK_ROWS * self.sk + self.dv;
            if scratch.len() < need {
                scratch.resize(need, 0.0);
            }
            let (scores, row_out) = scratch.split_at_mut(BLOCK_ROWS * self.sk);
            PACKED.with(|cell| {
                let mut head = cell.borrow_mut();
                head.offsets = None;
                let mut packed = self.packed_path(qs, os).then_some(&mut *head);
                for u in units {
                    let (b, r0) = (u / blocks, (u % blocks) * BLOCK_ROWS);
                    let rows = BLOCK_ROWS.min(self.sq - r0);
                    let [qo, ko, vo, mo, oo] = self.offsets(b);
                    let few = rows <= FEW_ROWS;
                    // Keys every row of the block masks out with -inf at the end (a causal mask)
                    // add exact zeros after the softmax: they are left out of both products.
                    let keys = if few {
                        self.sk
                    } else {
                        self.visible_keys(mask, mo, r0, rows)
                    };
                    let s = &mut scores[..rows * keys];
                    if self.d == 0 {
                        s.fill(0.0);
                    } else if few && self.sk > 0 {
                        // SAFETY: as for the GEMM below: `fits` bounds every element addressed.
                        unsafe {
                            self.scores_few(
                                q.as_ptr().add(qo + r0 * qs.0 as usize),
                                qs,
                                kt.as_ptr().add(ko),
                                ks,
                                rows,
                                s,
                            )
                        };
                    } else if let Some(head) = packed.as_mut().and_then(|p| p.head(self, kt, v, ko, vo)) {
                        let a = &q[qo + r0 * qs.0 as usize..];
                        // SAFETY: `s` is exclusively borrowed scratch of rows × keys, every
                        // element written (keys <= sk columns, row stride keys).
                        unsafe {
                            sgemm_view(
                                a,
                                qs.0 as usize,
                                rows,
                                &head.kt,
                                self.d,
                                0..keys,
                                None,
                                s.as_mut_ptr(),
                                keys,
                            )
                        };
                    } else if self.sk > 0 {
                        // SAFETY: `fits` bounds every element of the Q rows and of Kᵀ this view
                        // addresses (batch offset + row/column strides below the span); `s` is
                        // exclusively borrowed scratch of rows × sk, written with beta = 0.
                        unsafe {
                            matrixmultiply::sgemm(
                                rows,
                                self.d,
                                keys,
                                1.0,
                                q.as_ptr().add(qo + r0 * qs.0 as usize),
                                qs.0,
                                qs.1,
                                kt.as_ptr().add(ko),
                                ks.0,
                                ks.1,
                                0.0,
                                s.as_mut_ptr(),
                                keys as isize,
                                1,
                            );
                        }
                    }
                    self.mask_rows(s, keys, mask, mo, r0);
                    if self.sk > 0 {
                        let _ = softmax_in_place(&[rows, keys], 1, false, s);
                    }
                    if self.nan_to_zero {
                        s.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = 0.0);
                    }
                    let dst = oo + r0 * os.0 as usize;
                    if self.sk == 0 {
                        for i in 0..rows {
                            for j in 0..self.dv {
                                // SAFETY: the element is in this unit's output rows (caller).
                                unsafe { *out.add(dst + i * os.0 as usize + j * os.1 as usize) = 0.0 };
                            }
                        }
                        continue;
                    }
                    if few {
                        // SAFETY: as for the GEMM below.
                        unsafe {
                            self.values_few(s, v.as_ptr().add(vo), vs, rows, row_out, out.add(dst), os)
                        };
                        continue;
                    }
                    if let Some(head) = packed.as_ref().and_then(|p| p.offsets.is_some().then_some(p)) {
                        // SAFETY: the output rows r0..r0+rows of batch `b` (row stride os.0 >=
                        // dv, unit column stride: `packed_path`) belong to this unit alone
                        // (caller), `s` does not alias them; V's packing holds every key.
                        unsafe {
                            sgemm_view(
                                s,
                                keys,
                                rows,
                                &head.v,
                                keys,
                                0..self.dv,
                                None,
                                out.add(dst),
                                os.0 as usize,
                            )
                        };
                        continue;
                    }
                    // SAFETY: `fits` bounds V's view; the output rows r0..r0+rows of batch `b`
                    // belong to this unit alone (caller), `s` does not alias them.
                    unsafe {
                        matrixmultiply::sgemm(
                            rows,
                            keys,
                            self.dv,
                            1.0,
                            s.as_ptr(),
                            keys as isize,
                            1,
                            v.as_ptr().add(vo),
                            vs.0,
                            vs.1,
                            0.0,
                            out.add(dst),
                            os.0,
                            os.1,
                        );
                    }
                }
            });
        });
    }

    /// Whether the blocks may use the packed GEMM: Q's rows and the output's rows are
    /// contiguous (unit column stride) and output rows do not overlap.
    fn packed_path(&self, qs: (isize, isize), os: (isize, isize)) -> bool {
        self.d > 0 && self.sk > 0 && qs.1 == 1 && os.1 == 1 && os.0 >= self.dv as isize
    }

    /// `s = Q rows · Kᵀ` for at most [`FEW_ROWS`] query rows (decoding): one dot product per
    /// score, no GEMM packing of Kᵀ.
    ///
    /// # Safety
    /// `q` (rows at row stride `qs.0`, `d` columns at `qs.1`) and `kt` (`d` rows at `ks.0`,
    /// `sk` columns at `ks.1`) address readable elements; `s` holds `rows × sk`.
    unsafe fn scores_few(
        &self,
        q: *const f32,
        qs: (isize, isize),
        kt: *const f32,
        ks: (isize, isize),
        rows: usize,
        s: &mut [f32],
    ) {
        let (d, sk) = (self.d, self.sk);
        for i in 0..rows {
            // SAFETY: the caller's bounds; row i's elements lie at i·qs.0 + c·qs.1, c < d.
            let qi = unsafe { q.offset(i as isize * qs.0) };
            for j in 0..sk {
                // SAFETY: column j of Kᵀ lies at j·ks.1 + c·ks.0, c < d (caller's bounds).
                let kj = unsafe { kt.offset(j as isize * ks.1) };
                s[i * sk + j] = if qs.1 == 1 && ks.0 == 1 {
                    // SAFETY: contiguous runs of `d` elements inside the bounds above.
                    unsafe {
                        dot(
                            std::slice::from_raw_parts(qi, d),
                            std::slice::from_raw_parts(kj, d),
                        )
                    }
                } else {
                    (0..d as isize)
                        // SAFETY: as above, element by element.
                        .map(|c| unsafe { *qi.offset(c * qs.1) * *kj.offset(c * ks.0) })
                        .sum()
                };
            }
        }
    }

    /// `out rows = s · V` for at most [`FEW_ROWS`] rows: the rows of V scaled and summed
    /// into `row` (one output row at a time), then stored through the output's strides.
    ///
    /// # Safety
    /// `v` addresses `sk` rows (stride `vs.0`) of `dv` columns (stride `vs.1`); `out` the
    /// `rows × dv` output elements at strides `os`, written by this call alone.
    #[allow(clippy::too_many_arguments)]
    unsafe fn values_few(
        &self,
        s: &[f32],
        v: *const f32,
        vs: (isize, isize),
        rows: usize,
        row: &mut [f32],
        out: *mut f32,
        os: (isize, isize),
    ) {
        let (sk, dv) = (self.sk, self.dv);
        let row = &mut row[..dv];
        for i in 0..rows {
            row.fill(0.0);
            for (j, &p) in s[i * sk..(i + 1) * sk].iter().enumerate() {
                // SAFETY: row j of V is inside the caller's bounds.
                let vj = unsafe { v.offset(j as isize * vs.0) };
                if vs.1 == 1 {
                    // SAFETY: a contiguous row of `dv` elements.
                    let vr = unsafe { std::slice::from_raw_parts(vj, dv) };
                    row.iter_mut().zip(vr).for_each(|(o, &x)| *o += p * x);
                } else {
                    for (c, o) in row.iter_mut().enumerate() {
                        // SAFETY: element c of row j, inside the bounds.
                        *o += p * unsafe { *vj.offset(c as isize * vs.1) };
                    }
                }
            }
            for (c, &x) in row.iter().enumerate() {
                // SAFETY: output element (i, c) of this unit (caller).
                unsafe { *out.offset(i as isize * os.0 + c as isize * os.1) = x };
            }
        }
    }

    /// The keys rows `r0..r0 + rows` attend to: all `sk`, less the trailing keys the mask
    /// removes in every one of these rows (a causal mask), whose softmax weights are exact
    /// zeros: a mask value of -inf, or one at most [`MASKED`] (what exporters write:
    /// `f32::MIN`) in a row that keeps a key whose mask is at least [`KEPT`], so its
    /// exponential underflows to 0 for any finite scores below 1e19. At least one key stays,
    /// so a row masked throughout gives what it gives without the cut. (Non-finite values in
    /// the K / V rows of removed keys do not reach the output, where without the cut they
    /// would make it NaN.)
    fn visible_keys(&self, mask: Option<&[f32]>, mo: usize, r0: usize, rows: usize) -> usize {
        let (Some(l), Some(m)) = (&self.mask, mask) else {
            return self.sk;
        };
        let n = l.strides.len();
        let (rs, cs) = (l.strides[n - 2], l.strides[n - 1]);
        let mut keys = 1;
        for i in 0..rows {
            let at = mo + (r0 + i) * rs;
            let value = |j: usize| m[at + j * cs];
            // NaN counts as visible.
            let visible = (0..self.sk)
                .rev()
                .find(|&j| value(j) > MASKED || value(j).is_nan())
                .map_or(0, |j| j + 1);
            let kept = (0..visible).any(|j| value(j) >= KEPT);
            if !kept && (visible..self.sk).any(|j| value(j) != f32::NEG_INFINITY) {
                return self.sk;
            }
            keys = keys.max(visible);
            if keys >= self.sk {
                break;
            }
        }
        keys.min(self.sk)
    }

    /// Scales the `rows × keys` scores `s` (query rows from `r0`) and adds the mask rows'
    /// first `keys` values.
    fn mask_rows(&self, s: &mut [f32], keys: usize, mask: Option<&[f32]>, mo: usize, r0: usize) {
        match self.scale {
            ScoreScale::None => {}
            ScoreScale::Mul(c) => s.iter_mut().for_each(|x| *x *= c),
            ScoreScale::Div(c) => s.iter_mut().for_each(|x| *x /= c),
        }
        let (Some(l), Some(m)) = (&self.mask, mask) else {
            return;
        };
        let n = l.strides.len();
        let (rs, cs) = (l.strides[n - 2], l.strides[n - 1]);
        for (i, row) in s.chunks_mut(keys.max(1)).enumerate() {
            let at = mo + (r0 + i) * rs;
            if cs == 1 {
                row.iter_mut().zip(&m[at..at + keys]).for_each(|(x, y)| *x += y);
            } else {
                row.iter_mut().enumerate().for_each(|(j, x)| *x += m[at + j * cs]);
            }
        }
    }
}

thread_local! {
    /// The scores of one unit, per thread: grown to the largest block once, then reused, so
    /// a steady-state run allocates nothing.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Kᵀ and V of the head a thread works on, packed for the GEMM ([`PackedHead`]).
    static PACKED: RefCell<PackedHead> = RefCell::new(PackedHead::default());
}

/// Kᵀ (`d × sk`) and V (`sk × dv`) of one head packed for [`sgemm_view`], tagged with
/// their element offsets in the call's operands (`None`: nothing packed for this call).
/// Grouped heads share their key / value offsets, so they share one packing.
#[derive(Default)]
struct PackedHead {
    kt: PackedB,
    v: PackedB,
    offsets: Option<(usize, usize)>,
}

impl PackedHead {
    /// This head's Kᵀ and V (at offsets `ko`, `vo` of the operands) packed for `plan`,
    /// packing them unless they already are; None when packing fails (the caller then uses
    /// the unpacked GEMM).
    fn head(&mut self, plan: &SdpaPlan, kt: &[f32], v: &[f32], ko: usize, vo: usize) -> Option<&Self> {
        if self.offsets != Some((ko, vo)) {
            self.offsets = None;
            let isa = crate::cpu::selected_isa().unwrap_or(crate::cpu::Isa::Scalar);
            let (kl, vl) = (&plan.kt, &plan.v);
            let strides = |l: &Layout| {
                let n = l.strides.len();
                (l.strides[n - 2], l.strides[n - 1])
            };
            self.kt
                .pack(isa, kt.get(ko..)?, strides(kl), plan.d, plan.sk)
                .ok()?;
            self.v
                .pack(isa, v.get(vo..)?, strides(vl), plan.sk, plan.dv)
                .ok()?;
            self.offsets = Some((ko, vo));
        }
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The triple-loop reference, in f64, of the plan's computation on contiguous-index
    /// accessors.
    #[allow(clippy::too_many_arguments)]
    fn reference(p: &SdpaPlan, q: &[f32], kt: &[f32], v: &[f32], mask: Option<&[f32]>, out: &mut [f32]) {
        let nb: usize = p.batch.iter().product();
        for b in 0..nb {
            let [qo, ko, vo, mo, oo] = p.offsets(b);
            let at = |l: &Layout, o: usize, i: usize, j: usize| {
                let n = l.strides.len();
                o + i * l.strides[n - 2] + j * l.strides[n - 1]
            };
            for i in 0..p.sq {
                let mut row: Vec<f64> = (0..p.sk)
                    .map(|j| {
                        let mut acc = 0f64;
                        for t in 0..p.d {
                            acc += q[at(&p.q, qo, i, t)] as f64 * kt[at(&p.kt, ko, t, j)] as f64;
                        }
                        acc = match p.scale {
                            ScoreScale::None => acc,
                            ScoreScale::Mul(c) => acc * c as f64,
                            ScoreScale::Div(c) => acc / c as f64,
                        };
                        if let (Some(l), Some(m)) = (&p.mask, mask) {
                            acc += m[at(l, mo, i, j)] as f64;
                        }
                        acc
                    })
                    .collect();
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                row.iter_mut().for_each(|x| *x = (*x - max).exp());
                let sum: f64 = row.iter().sum();
                row.iter_mut().for_each(|x| {
                    *x /= sum;
                    if p.nan_to_zero && x.is_nan() {
                        *x = 0.0;
                    }
                });
                for j in 0..p.dv {
                    let y: f64 = (0..p.sk).map(|t| row[t] * v[at(&p.v, vo, t, j)] as f64).sum();
                    out[at(&p.out, oo, i, j)] = y as f32;
                }
            }
        }
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        (0..n as u64)
            .map(|i| (((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// A layout of `dims` whose axes are stored in the order `order` (a permutation).
    fn stored(dims: &[usize], order: &[usize]) -> Layout {
        let stored_dims: Vec<usize> = order.iter().map(|&a| dims[a]).collect();
        let c = Layout::contiguous(&stored_dims).unwrap();
        let mut strides = Dims::zeros(dims.len()).unwrap();
        for (k, &a) in order.iter().enumerate() {
            strides[a] = c.strides[k];
        }
        Layout {
            dims: Dims::from_slice(dims).unwrap(),
            strides,
        }
    }

    fn order(rank: usize, seed: u64) -> Vec<usize> {
        let mut o: Vec<usize> = (0..rank).collect();
        let mut s = seed;
        for i in (1..rank).rev() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            o.swap(i, (s >> 33) as usize % (i + 1));
        }
        o
    }

    proptest! {
        #[test]
        fn matches_the_scalar_reference(
            b in 1usize..3, h in 1usize..4, kv_one in any::<bool>(),
            sq in 1usize..40, sk in 1usize..20, d in 1usize..9, dv in 1usize..9,
            seed in any::<u64>(), mask_kind in 0usize..6, scale_kind in 0usize..3,
            nan_to_zero in any::<bool>(), dead_row in any::<bool>(),
        ) {
            let hk = if kv_one { 1 } else { h };
            let q = stored(&[b, h, sq, d], &order(4, seed));
            let kt = stored(&[b, hk, d, sk], &order(4, seed >> 8));
            let v = stored(&[b, hk, sk, dv], &order(4, seed >> 16));
            let out_perm = order(4, seed >> 24);
            let mask_dims: Vec<usize> = match mask_kind {
                0 => vec![],
                1 => vec![b, 1, 1, sk],
                2 | 4 | 5 => vec![sq, sk],
                _ => vec![b, h, sq, sk],
            };
            let ml = (!mask_dims.is_empty()).then(|| Layout::contiguous(&mask_dims).unwrap());
            let scale = [ScoreScale::None, ScoreScale::Mul(0.35), ScoreScale::Div(2.8)][scale_kind];
            let plan = SdpaPlan::new(&q, &kt, &v, ml.as_ref(), Some(&out_perm), scale, nan_to_zero, 1).unwrap();
            let (qv, kv, vv) = (values(q.span(), seed), values(kt.span(), seed ^ 1), values(v.span(), seed ^ 2));
            let mut mv = ml.as_ref().map(|l| values(l.span(), seed ^ 3));
            if let (Some(m), 4 | 5) = (mv.as_mut(), mask_kind) {
                // Causal (query i sees keys up to i + sk - sq), as -inf or as exporters'
                // f32::MIN: the blocks of more than a few rows leave the masked keys out.
                let hidden = if mask_kind == 4 { f32::NEG_INFINITY } else { f32::MIN };
                for i in 0..sq {
                    for j in 0..sk {
                        m[i * sk + j] = if j + sq <= i + sk { 0.0 } else { hidden };
                    }
                }
            }
            if dead_row {
                if let (Some(m), 2 | 4) = (mv.as_mut(), mask_kind) {
                    m[..sk].fill(f32::NEG_INFINITY);
                }
            }
            let mut got = vec![7f32; plan.out_dims().iter().product()];
            let mut want = got.clone();
            prop_assert!(plan.fits(&qv, &kv, &vv, mv.as_deref(), got.len()));
            let units = plan.units();
            let mid = units / 2;
            // SAFETY: `got` spans the output; the two calls cover disjoint unit ranges.
            unsafe {
                plan.run_units(&qv, &kv, &vv, mv.as_deref(), got.as_mut_ptr(), 0..mid);
                plan.run_units(&qv, &kv, &vv, mv.as_deref(), got.as_mut_ptr(), mid..units);
            }
            reference(&plan, &qv, &kv, &vv, mv.as_deref(), &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-5 + 1e-4 * w.abs();
                prop_assert!(ok, "element {i}: {g} vs {w}");
            }
        }
    }

    /// `x` (a `[b, h, r, c]` tensor stored as `l`) with each head repeated `g` times in a
    /// row, stored as `to` (`[b, h · g, r, c]`, its axes in the same order as `l`'s): what
    /// the exporters' repeat_kv materializes.
    fn repeat_heads(x: &[f32], l: &Layout, g: usize, to: &Layout) -> Vec<f32> {
        let [b, h, r, c] = [l.dims[0], l.dims[1], l.dims[2], l.dims[3]];
        let at =
            |l: &Layout, i: [usize; 4]| i.iter().zip(l.strides.iter()).map(|(i, s)| i * s).sum::<usize>();
        let mut y = vec![0f32; to.span()];
        for bi in 0..b {
            for hi in 0..h * g {
                for ri in 0..r {
                    for ci in 0..c {
                        y[at(to, [bi, hi, ri, ci])] = x[at(l, [bi, hi / g, ri, ci])];
                    }
                }
            }
        }
        y
    }

    proptest! {
        #[test]
        fn grouped_key_values_equal_repeated_ones_bit_for_bit(
            b in 1usize..3, kv_heads in 1usize..3, groups in 2usize..5,
            sq in 1usize..40, sk in 1usize..20, d in 1usize..9, dv in 1usize..9,
            seed in any::<u64>(), masked in any::<bool>(),
        ) {
            let h = kv_heads * groups;
            let q = stored(&[b, h, sq, d], &order(4, seed));
            let (kt_order, v_order) = (order(4, seed >> 8), order(4, seed >> 16));
            let kt = stored(&[b, kv_heads, d, sk], &kt_order);
            let v = stored(&[b, kv_heads, sk, dv], &v_order);
            let (kt_full, v_full) = (stored(&[b, h, d, sk], &kt_order), stored(&[b, h, sk, dv], &v_order));
            let out_perm = order(4, seed >> 24);
            let ml = masked.then(|| Layout::contiguous(&[sq, sk]).unwrap());
            let scale = ScoreScale::Mul(0.35);
            let grouped = SdpaPlan::new(&q, &kt, &v, ml.as_ref(), Some(&out_perm), scale, false, groups).unwrap();
            let (qv, kv, vv) = (values(q.span(), seed), values(kt.span(), seed ^ 1), values(v.span(), seed ^ 2));
            let mv = ml.as_ref().map(|l| values(l.span(), seed ^ 3));
            let (kr, vr) = (repeat_heads(&kv, &kt, groups, &kt_full), repeat_heads(&vv, &v, groups, &v_full));
            let full = SdpaPlan::new(
                &q,
                &kt_full,
                &v_full,
                ml.as_ref(),
                Some(&out_perm),
                scale,
                false,
                1,
            )
            .unwrap();
            let mut got = vec![7f32; grouped.out_dims().iter().product()];
            let mut want = got.clone();
            prop_assert!(grouped.fits(&qv, &kv, &vv, mv.as_deref(), got.len()));
            // The grouped operands are shorter than the heads they stand for.
            prop_assert!(!full.fits(&qv, &kv, &vv, mv.as_deref(), got.len()) || groups == 1);
            // SAFETY: each output spans its plan's output; one call covers every unit.
            unsafe {
                grouped.run_units(&qv, &kv, &vv, mv.as_deref(), got.as_mut_ptr(), 0..grouped.units());
                full.run_units(&qv, &kr, &vr, mv.as_deref(), want.as_mut_ptr(), 0..full.units());
            }
            prop_assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn mismatched_shapes_are_not_planned() {
        let c = |d: &[usize]| Layout::contiguous(d).unwrap();
        let none = ScoreScale::None;
        let plan = |q: &[usize], kt: &[usize], v: &[usize], m: Option<&[usize]>, perm: Option<&[usize]>| {
            SdpaPlan::new(&c(q), &c(kt), &c(v), m.map(c).as_ref(), perm, none, false, 1)
        };
        assert!(plan(
            &[1, 3, 4],
            &[1, 4, 6],
            &[1, 6, 4],
            Some(&[3, 6]),
            Some(&[1, 0, 2])
        )
        .is_some());
        // Inner sizes.
        assert!(plan(&[2, 3, 4], &[2, 5, 6], &[2, 6, 4], None, None).is_none());
        // A mask that would expand the scores.
        assert!(plan(&[1, 3, 4], &[1, 4, 6], &[1, 6, 4], Some(&[2, 3, 6]), None).is_none());
        // V with a larger batch than the scores.
        assert!(plan(&[1, 3, 4], &[1, 4, 6], &[2, 6, 4], None, None).is_none());
        // Rank 1.
        assert!(plan(&[4], &[4, 6], &[6, 4], None, None).is_none());
        // Grouped key / values need a head axis, and a nonzero group.
        let grouped = |kt: &[usize], v: &[usize], r| {
            SdpaPlan::new(&c(&[4, 3, 4]), &c(kt), &c(v), None, None, none, false, r)
        };
        assert!(grouped(&[2, 4, 6], &[2, 6, 4], 2).is_some());
        assert!(grouped(&[4, 6], &[6, 4], 2).is_none());
        assert!(grouped(&[4, 4, 6], &[4, 6, 4], 0).is_none());
        // Heads that are not a multiple of the key / value heads.
        assert!(grouped(&[3, 4, 6], &[3, 6, 4], 2).is_none());
        // An output permutation of another rank.
        assert!(plan(&[1, 3, 4], &[1, 4, 6], &[1, 6, 4], None, Some(&[1, 0])).is_none());
        // Bad permutation.
        assert!(c(&[1, 2]).permuted(&[0, 0]).is_none());
    }
}
