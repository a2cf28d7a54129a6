//! ONNX (numpy) broadcasting of an add / mul mapped onto the elementwise kernel's
//! `[n, p, c]` index with per-operand strides, given how the arena stores values: rank-4
//! values NHWC, every other rank row-major in logical order.
//!
//! A rank-4 output is `n = N`, `p = H·W`, `c = C`; a lower-rank output is `n` = all leading
//! axes, `p = 1`, `c` = the last axis. With this choice the kernel's rule for which operand
//! it streams (the one not repeated along the innermost ONNX axis) is ONNX Runtime's.

use crate::kernels::elementwise::{BinaryShape, OperandStrides};
use crate::{Error, Result};

/// The kernel shape of `a op b -> out` for the given logical (ONNX) dimensions; an error says
/// why a broadcast is not one the kernel's strides express (or is not a valid broadcast).
pub fn binary_shape(a: &[usize], b: &[usize], out: &[usize]) -> Result<BinaryShape> {
    let rank = out.len();
    if rank > 4 || a.len() > rank || b.len() > rank {
        return Err(unsupported(format!(
            "ranks {} and {} into {rank} (at most 4, output rank the largest)",
            a.len(),
            b.len()
        )));
    }
    for axis in 0..rank {
        let dim = |d: &[usize]| (axis + d.len()).checked_sub(rank).map_or(1, |i| d[i]);
        let (da, db) = (dim(a), dim(b));
        let broadcast = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            0
        };
        if broadcast != out[axis] || (da != db && da != 1 && db != 1) {
            return Err(Error::ShapeMismatch(format!(
                "{a:?} and {b:?} do not broadcast to {out:?}"
            )));
        }
    }
    // Axis groups of the output for n, p and c.
    let (n_axes, p_axes, c_axes): (Vec<usize>, Vec<usize>, Vec<usize>) = match rank {
        0 => (vec![], vec![], vec![]),
        4 => (vec![0], vec![2, 3], vec![1]),
        r => ((0..r - 1).collect(), vec![], vec![r - 1]),
    };
    let size = |axes: &[usize]| axes.iter().map(|&i| out[i]).product::<usize>();
    let strides = |d: &[usize], name: &str| -> Result<OperandStrides> {
        let storage = storage_strides(d, rank);
        let group = |axes: &[usize], what: &str| {
            group_stride(axes, out, &storage).ok_or_else(|| {
                unsupported(format!(
                    "{name} {d:?} into {out:?}: its {what} axes do not collapse into one stride"
                ))
            })
        };
        let s = OperandStrides {
            n: group(&n_axes, "batch")?,
            p: group(&p_axes, "pixel")?,
            c: group(&c_axes, "channel")?,
        };
        if s.c > 1 {
            return Err(unsupported(format!(
                "{name} {d:?} into {out:?}: channels are not contiguous in its storage"
            )));
        }
        Ok(s)
    };
    Ok(BinaryShape {
        n: size(&n_axes),
        p: size(&p_axes),
        c: size(&c_axes),
        a: strides(a, "a")?,
        b: strides(b, "b")?,
    })
}

fn unsupported(detail: String) -> Error {
    Error::Unsupported(format!("broadcast {detail}"))
}

/// Element strides of a value with dimensions `d`, per axis of the rank-`rank` output (axes
/// `d` lacks or has as 1 get stride 0: they broadcast).
fn storage_strides(d: &[usize], rank: usize) -> Vec<usize> {
    let lead = rank - d.len();
    let mut s = vec![0usize; d.len()];
    if d.len() == 4 {
        // NHWC storage of logical NCHW.
        let (c, h, w) = (d[1], d[2], d[3]);
        s = vec![h * w * c, 1, w * c, c];
    } else {
        let mut acc = 1;
        for i in (0..d.len()).rev() {
            s[i] = acc;
            acc *= d[i];
        }
    }
    let mut full = vec![0usize; rank];
    for (i, &dim) in d.iter().enumerate() {
        full[lead + i] = if dim == 1 { 0 } else { s[i] };
    }
    full
}

/// One stride over the output axes `axes` (outer to inner) taken as one flattened index, if
/// the operand's strides on them are consistent with it. Axes of output size 1 are ignored.
fn group_stride(axes: &[usize], out: &[usize], storage: &[usize]) -> Option<usize> {
    let mut inner: Option<(usize, usize)> = None; // (stride of the flat index, span so far)
    for &axis in axes.iter().rev() {
        if out[axis] == 1 {
            continue;
        }
        match inner {
            None => inner = Some((storage[axis], out[axis])),
            Some((unit, span)) => {
                if storage[axis] != unit.checked_mul(span)? {
                    return None;
                }
                inner = Some((unit, span.checked_mul(out[axis])?));
            }
        }
    }
    Some(inner.map_or(0, |(unit, _)| unit))
}

#[cfg(test)]
mod tests {
    use super::binary_shape;
    use crate::kernels::elementwise::OperandStrides;

    fn st(n: usize, p: usize, c: usize) -> OperandStrides {
        OperandStrides { n, p, c }
    }

    #[test]
    fn squeeze_excitation_scale_and_bias() {
        let s = binary_shape(&[2, 8, 3, 5], &[2, 8, 1, 1], &[2, 8, 3, 5]).unwrap();
        assert_eq!((s.n, s.p, s.c), (2, 15, 8));
        assert_eq!((s.a, s.b), (st(120, 8, 1), st(8, 0, 1)));
        let s = binary_shape(&[1, 8, 1, 1], &[2, 8, 3, 5], &[2, 8, 3, 5]).unwrap();
        assert_eq!((s.a, s.b), (st(0, 0, 1), st(120, 8, 1)));
        // `[C, 1, 1]` is row-major, which for one pixel is channels-contiguous too.
        let s = binary_shape(&[2, 8, 3, 5], &[8, 1, 1], &[2, 8, 3, 5]).unwrap();
        assert_eq!(s.b, st(0, 0, 1));
    }

    #[test]
    fn scalars_and_pixel_planes() {
        for scalar in [&[][..], &[1][..], &[1, 1, 1, 1][..]] {
            let s = binary_shape(scalar, &[1, 4, 2, 2], &[1, 4, 2, 2]).unwrap();
            assert_eq!(s.a, st(0, 0, 0), "{scalar:?}");
        }
        // One value per pixel shared by every channel: `[N, 1, H, W]` and row-major `[H, W]`.
        let s = binary_shape(&[2, 4, 3, 5], &[2, 1, 3, 5], &[2, 4, 3, 5]).unwrap();
        assert_eq!(s.b, st(15, 1, 0));
        let s = binary_shape(&[2, 4, 3, 5], &[3, 5], &[2, 4, 3, 5]).unwrap();
        assert_eq!(s.b, st(0, 1, 0));
    }

    #[test]
    fn row_major_rows_and_columns() {
        let s = binary_shape(&[3, 6], &[6], &[3, 6]).unwrap();
        assert_eq!((s.n, s.p, s.c), (3, 1, 6));
        assert_eq!((s.a, s.b), (st(6, 0, 1), st(0, 0, 1)));
        let s = binary_shape(&[3, 1], &[3, 6], &[3, 6]).unwrap();
        assert_eq!(s.a, st(1, 0, 0));
        let s = binary_shape(&[2, 3, 6], &[1, 1, 6], &[2, 3, 6]).unwrap();
        assert_eq!((s.n, s.c, s.b), (6, 6, st(0, 0, 1)));
    }

    #[test]
    fn refusals() {
        // Not a broadcast.
        assert!(binary_shape(&[1, 4, 2, 2], &[1, 3, 1, 1], &[1, 4, 2, 2]).is_err());
        assert!(binary_shape(&[1, 4, 2, 2], &[1, 4, 1, 1], &[1, 4, 2, 3]).is_err());
        // Broadcast over H but not W: pixels do not collapse into one stride.
        assert!(binary_shape(&[1, 4, 2, 3], &[1, 4, 1, 3], &[1, 4, 2, 3]).is_err());
        // Row-major `[C, H, W]` into NHWC: channels are not contiguous.
        assert!(binary_shape(&[1, 4, 2, 3], &[4, 2, 3], &[1, 4, 2, 3]).is_err());
        // Row-major `[A, B, D] + [1, B, D]`: leading axes do not collapse.
        assert!(binary_shape(&[2, 3, 6], &[1, 3, 6], &[2, 3, 6]).is_err());
        // Rank 5.
        assert!(binary_shape(&[1, 1, 1, 1, 2], &[2], &[1, 1, 1, 1, 2]).is_err());
    }
}
