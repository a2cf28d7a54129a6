//! Byte moves described as strided blocks: each block writes a contiguous range of the
//! output, in row-major order of its dimensions, from source positions that are an affine
//! function of the index (one stride per dimension, negative for reversed reads). A
//! Transpose, Slice, Split, constant Pad, channel shuffle or a reshape between storage
//! orders is a handful of blocks whose innermost dimension is usually a contiguous run, so
//! the move copies runs instead of looking up every byte.
//!
//! [`copy_blocks_reference`] is the scalar oracle (one element at a time, in index order);
//! [`copy_blocks`] copies contiguous runs at once and interleaves two equal runs (a channel
//! shuffle of two groups in NHWC) sixteen bytes at a time. A copy has no arithmetic, so the
//! two agree bit for bit by construction; the tests pin it.

/// Most dimensions a block may have.
pub const MAX_BLOCK_RANK: usize = 8;

/// One block of a strided copy: output bytes `dst .. dst + Π dims`, in row-major order of
/// `dims`, read from input byte `src + Σ idx[a] · src_strides[a]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyBlock {
    /// First output byte.
    pub dst: usize,
    /// Input byte of the block's first element.
    pub src: usize,
    /// Block dimensions, outermost first (each at least 1).
    pub dims: Vec<usize>,
    /// Input stride of each dimension, in bytes.
    pub src_strides: Vec<isize>,
}

impl CopyBlock {
    /// Number of bytes the block writes (`None` on overflow).
    pub fn len(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// Whether the block writes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The lowest and highest input byte the block reads (`None` on overflow or a negative
    /// lowest byte).
    fn source_range(&self) -> Option<(usize, usize)> {
        let (mut lo, mut hi) = (self.src as i128, self.src as i128);
        for (&d, &s) in self.dims.iter().zip(&self.src_strides) {
            let reach = (d as i128 - 1) * s as i128;
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        Some((usize::try_from(lo).ok()?, usize::try_from(hi).ok()?))
    }
}

/// Checks that `blocks` are well formed by themselves: each of rank 1 ..= [`MAX_BLOCK_RANK`]
/// with one stride per dimension, no empty dimension, a size that fits `usize`, and the
/// blocks in increasing, non-overlapping output order.
pub fn check_block_shapes(blocks: &[CopyBlock]) -> Result<(), String> {
    let mut end = 0usize;
    for (i, b) in blocks.iter().enumerate() {
        if b.dims.is_empty() || b.dims.len() > MAX_BLOCK_RANK || b.dims.len() != b.src_strides.len() {
            return Err(format!("copy block {i} has a bad rank"));
        }
        if b.dims.contains(&0) {
            return Err(format!("copy block {i} is empty"));
        }
        let len = b.len().ok_or_else(|| format!("copy block {i} is too large"))?;
        if b.dst < end {
            return Err(format!("copy block {i} overlaps or precedes the previous one"));
        }
        end = b
            .dst
            .checked_add(len)
            .ok_or_else(|| format!("copy block {i} is too large"))?;
    }
    Ok(())
}

/// Checks `blocks` against an input of `in_len` bytes and an output of `out_len` bytes:
/// [`check_block_shapes`], every read inside the input, every write inside the output, and,
/// unless the output is first `filled`, every output byte written.
pub fn check_blocks(blocks: &[CopyBlock], in_len: usize, out_len: usize, filled: bool) -> Result<(), String> {
    check_block_shapes(blocks)?;
    let mut end = 0usize;
    for (i, b) in blocks.iter().enumerate() {
        let len = b.len().unwrap_or(usize::MAX);
        if !filled && b.dst != end {
            return Err(format!("copy block {i} leaves output bytes unwritten"));
        }
        end = b.dst + len;
        if end > out_len {
            return Err(format!("copy block {i} writes outside the output"));
        }
        match b.source_range() {
            Some((_, hi)) if hi < in_len => {}
            _ => return Err(format!("copy block {i} reads outside the input")),
        }
    }
    if !filled && end != out_len {
        return Err("copy blocks leave output bytes unwritten".into());
    }
    Ok(())
}

/// The scalar oracle: `out` filled with `fill` when given, then every block's bytes one at a
/// time, in index order. Panics on blocks that [`check_blocks`] refuses.
pub fn copy_blocks_reference(x: &[i8], blocks: &[CopyBlock], fill: Option<i8>, out: &mut [i8]) {
    if let Some(f) = fill {
        out.fill(f);
    }
    for b in blocks {
        let mut idx = vec![0usize; b.dims.len()];
        for k in 0..b.len().unwrap_or(0) {
            let at = b.src as isize
                + idx
                    .iter()
                    .zip(&b.src_strides)
                    .map(|(&i, &s)| i as isize * s)
                    .sum::<isize>();
            out[b.dst + k] = x[at as usize];
            for a in (0..idx.len()).rev() {
                idx[a] += 1;
                if idx[a] < b.dims[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    }
}

/// [`copy_blocks_reference`] with contiguous runs copied at once and two interleaved runs
/// zipped; the same bytes. Panics on blocks that [`check_blocks`] refuses.
pub fn copy_blocks(x: &[i8], blocks: &[CopyBlock], fill: Option<i8>, out: &mut [i8]) {
    if let Some(f) = fill {
        out.fill(f);
    }
    for b in blocks {
        let len = b.len().unwrap_or(0);
        walk(
            x,
            &mut out[b.dst..b.dst + len],
            b.src as isize,
            &b.dims,
            &b.src_strides,
        );
    }
}

/// Writes `out` (the block's `dims` in row-major order) from `x` at `src` with `strides`.
fn walk(x: &[i8], out: &mut [i8], src: isize, dims: &[usize], strides: &[isize]) {
    match (dims, strides) {
        ([n], [s]) => run(x, out, src, *n, *s),
        ([n, 2], [1, s]) => zip2(x, out, src as usize, *n, *s),
        _ => {
            let inner = out.len() / dims[0];
            for (i, chunk) in out.chunks_exact_mut(inner).enumerate() {
                walk(x, chunk, src + i as isize * strides[0], &dims[1..], &strides[1..]);
            }
        }
    }
}

/// `out[k] = x[src + k · s]` for `k < n`.
fn run(x: &[i8], out: &mut [i8], src: isize, n: usize, s: isize) {
    if s == 1 {
        let src = src as usize;
        out.copy_from_slice(&x[src..src + n]);
    } else {
        for (k, o) in out.iter_mut().enumerate() {
            *o = x[(src + k as isize * s) as usize];
        }
    }
}

/// `out[2k] = x[src + k]`, `out[2k + 1] = x[src + s + k]` for `k < n`: two runs interleaved.
fn zip2(x: &[i8], out: &mut [i8], src: usize, n: usize, s: isize) {
    let b_start = (src as isize + s) as usize;
    let (a, b) = (&x[src..src + n], &x[b_start..b_start + n]);
    let out = &mut out[..2 * n];
    #[allow(unused_mut)]
    let mut done = 0usize;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8};
        while done + 16 <= n {
            // SAFETY: SSE2 is part of every x86-64 CPU; the loads read `a[done..done + 16]`
            // and `b[done..done + 16]` and the stores write `out[2 * done..2 * done + 32]`,
            // all inside the slices (`done + 16 <= n`, `out.len() == 2 * n`).
            unsafe {
                let va = _mm_loadu_si128(a.as_ptr().add(done).cast());
                let vb = _mm_loadu_si128(b.as_ptr().add(done).cast());
                let o = out.as_mut_ptr().add(2 * done);
                _mm_storeu_si128(o.cast(), _mm_unpacklo_epi8(va, vb));
                _mm_storeu_si128(o.add(16).cast(), _mm_unpackhi_epi8(va, vb));
            }
            done += 16;
        }
    }
    for k in done..n {
        out[2 * k] = a[k];
        out[2 * k + 1] = b[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(dst: usize, src: usize, dims: &[usize], strides: &[isize]) -> CopyBlock {
        CopyBlock {
            dst,
            src,
            dims: dims.to_vec(),
            src_strides: strides.to_vec(),
        }
    }

    /// Both kernels on `blocks`, checked first.
    fn both(x: &[i8], blocks: &[CopyBlock], fill: Option<i8>, out_len: usize) -> Vec<i8> {
        check_blocks(blocks, x.len(), out_len, fill.is_some()).unwrap();
        let mut want = vec![0i8; out_len];
        copy_blocks_reference(x, blocks, fill, &mut want);
        let mut got = vec![1i8; out_len];
        copy_blocks(x, blocks, fill, &mut got);
        assert_eq!(got, want, "{blocks:?}");
        want
    }

    #[test]
    fn runs_zips_strides_and_reversals_match_the_reference() {
        let x: Vec<i8> = (0..512u32).map(|v| (v % 253) as i8).collect();
        // A channel shuffle of 2 groups of 37 channels over 3 pixels (NHWC).
        let shuffle = [block(0, 0, &[3, 37, 2], &[74, 1, 37])];
        let y = both(&x[..222], &shuffle, None, 222);
        assert_eq!(&y[..4], &[0, 37, 1, 38]);
        // A channel slice (runs of 5 of every 8) and a reversed row with padding around.
        let slice = [block(0, 2, &[4, 5], &[8, 1])];
        both(&x[..32], &slice, None, 20);
        let padded = [block(1, 9, &[2, 3], &[-3, -1]), block(8, 0, &[1], &[1])];
        let y = both(&x[..10], &padded, Some(-7), 9);
        assert_eq!(y, [-7, 9, 8, 7, 6, 5, 4, -7, 0]);
        // Rank 4 with a zip inside and odd lengths on both sides of 16.
        for n in [1usize, 15, 16, 17, 40] {
            let zip = [block(
                0,
                3,
                &[2, 3, n, 2],
                &[1, 2 * n as isize + 7, 1, n as isize],
            )];
            let need = 3 + 1 + 2 * (2 * n + 7) + 2 * n;
            both(&x[..need], &zip, None, 12 * n);
        }
    }

    #[test]
    fn bad_blocks_are_refused() {
        let ok = block(0, 0, &[2, 3], &[3, 1]);
        assert!(check_blocks(std::slice::from_ref(&ok), 6, 6, false).is_ok());
        // Reads past the input, before it, writes past the output, leaves a gap, overlaps.
        assert!(check_blocks(&[block(0, 1, &[2, 3], &[3, 1])], 6, 6, false).is_err());
        assert!(check_blocks(&[block(0, 1, &[3], &[-1])], 6, 3, false).is_err());
        assert!(check_blocks(std::slice::from_ref(&ok), 6, 5, false).is_err());
        assert!(check_blocks(&[block(1, 0, &[5], &[1])], 6, 6, false).is_err());
        assert!(check_blocks(&[block(1, 0, &[5], &[1])], 6, 6, true).is_ok());
        assert!(check_blocks(&[ok.clone(), block(5, 0, &[1], &[1])], 6, 7, true).is_err());
        // Empty, rank mismatch, sizes that overflow.
        assert!(check_block_shapes(&[block(0, 0, &[0], &[1])]).is_err());
        assert!(check_block_shapes(&[block(0, 0, &[2, 2], &[1])]).is_err());
        assert!(check_block_shapes(&[block(0, 0, &[usize::MAX, 2], &[1, 1])]).is_err());
        assert!(check_blocks(&[block(0, usize::MAX - 1, &[2], &[isize::MAX])], 6, 2, false).is_err());
    }
}
