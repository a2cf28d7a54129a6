//! DepthToSpace and SpaceToDepth as one strided read (one source of truth for shape inference,
//! the interpreter and the delegate's index maps).
//!
//! Both operators are ONNX's reshape → transpose → reshape of a 4-D NCHW tensor. Written as
//! a 6-D view of the output (row-major, the same elements in the same order as the 4-D
//! output) with, per view axis, the input element stride it advances by, the output element
//! at view index `v` is input element `Σ v[a] · strides[a]`.

use super::op::{DepthSpaceMode, Op};
use super::tensor::checked_numel;
use crate::{Error, Result};

/// The strided read of one DepthToSpace / SpaceToDepth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepthSpaceView {
    /// The 4-D output dimensions (NCHW).
    pub out_dims: Vec<usize>,
    /// The 6-D view of the output, row-major.
    pub view_dims: [usize; 6],
    /// The input element stride of each view axis.
    pub strides: [usize; 6],
}

fn shape_err(op: &str, msg: String) -> Error {
    Error::ShapeMismatch(format!("{op}: {msg}"))
}

/// The input's N, C, H, W and the block side, checked (4-D input, `blocksize ≥ 1`).
fn nchw(op: &str, input: &[usize], blocksize: usize) -> Result<[usize; 5]> {
    if blocksize == 0 {
        return Err(Error::InvalidModel(format!("{op}: blocksize must be at least 1")));
    }
    let &[n, c, h, w] = input else {
        return Err(shape_err(
            op,
            format!("input has rank {} where 4 (NCHW) is required", input.len()),
        ));
    };
    checked_numel(input)?;
    Ok([n, c, h, w, blocksize])
}

/// The strided read of DepthToSpace (`mode`) with block side `blocksize` over an input of
/// dimensions `input`; errors when the input is not 4-D, `blocksize` is 0 or the channels are
/// not a multiple of `blocksize²`.
pub fn depth_to_space(input: &[usize], blocksize: usize, mode: DepthSpaceMode) -> Result<DepthSpaceView> {
    let [n, c, h, w, b] = nchw("DepthToSpace", input, blocksize)?;
    let bb = b
        .checked_mul(b)
        .ok_or_else(|| shape_err("DepthToSpace", format!("blocksize {b} is too large")))?;
    if c % bb != 0 {
        return Err(shape_err(
            "DepthToSpace",
            format!("{c} channels are not a multiple of blocksize² = {bb}"),
        ));
    }
    let cc = c / bb;
    let too_large = || shape_err("DepthToSpace", "output dimensions overflow".into());
    let out_dims = vec![
        n,
        cc,
        h.checked_mul(b).ok_or_else(too_large)?,
        w.checked_mul(b).ok_or_else(too_large)?,
    ];
    checked_numel(&out_dims)?;
    // Input element strides of n, channel c, row, column (the input's numel fits a usize).
    let (sn, sc, sh, sw) = (c * h * w, h * w, w, 1);
    // Channel strides of the output channel c' and the block row i / column j.
    let (s_cc, s_i, s_j) = match mode {
        DepthSpaceMode::Dcr => (sc, b * cc * sc, cc * sc),
        DepthSpaceMode::Crd => (bb * sc, b * sc, sc),
    };
    Ok(DepthSpaceView {
        out_dims,
        view_dims: [n, cc, h, b, w, b],
        strides: [sn, s_cc, sh, s_i, sw, s_j],
    })
}

/// The strided read of SpaceToDepth (`mode`) with block side `blocksize` over an input of
/// dimensions `input`; errors when the input is not 4-D, `blocksize` is 0 or H or W is not a
/// multiple of it.
pub fn space_to_depth(input: &[usize], blocksize: usize, mode: DepthSpaceMode) -> Result<DepthSpaceView> {
    let [n, c, h, w, b] = nchw("SpaceToDepth", input, blocksize)?;
    if h % b != 0 || w % b != 0 {
        return Err(shape_err(
            "SpaceToDepth",
            format!("spatial size {h}×{w} is not a multiple of blocksize {b}"),
        ));
    }
    let (oh, ow) = (h / b, w / b);
    let oc = c
        .checked_mul(b)
        .and_then(|v| v.checked_mul(b))
        .ok_or_else(|| shape_err("SpaceToDepth", "output channels overflow".into()))?;
    let out_dims = vec![n, oc, oh, ow];
    checked_numel(&out_dims)?;
    // Input element strides of the block row i / column j and the channel c.
    let (s_i, s_j, s_c) = (w, 1, h * w);
    let (view_dims, strides) = match mode {
        DepthSpaceMode::Dcr => ([n, b, b, c, oh, ow], [c * h * w, s_i, s_j, s_c, b * w, b]),
        DepthSpaceMode::Crd => ([n, c, b, b, oh, ow], [c * h * w, s_c, s_i, s_j, b * w, b]),
    };
    Ok(DepthSpaceView {
        out_dims,
        view_dims,
        strides,
    })
}

/// The strided read of `op` (DepthToSpace or SpaceToDepth) over an input of dimensions
/// `input`; `None` for any other operator.
pub fn view_of(op: &Op, input: &[usize]) -> Option<Result<DepthSpaceView>> {
    match op {
        Op::DepthToSpace { blocksize, mode } => Some(depth_to_space(input, *blocksize, *mode)),
        Op::SpaceToDepth { blocksize, mode } => Some(space_to_depth(input, *blocksize, *mode)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input index each output element reads, in output order.
    fn sources(v: &DepthSpaceView) -> Vec<usize> {
        let mut out = Vec::new();
        let d = v.view_dims;
        for a in 0..d[0] {
            for b in 0..d[1] {
                for c in 0..d[2] {
                    for e in 0..d[3] {
                        for f in 0..d[4] {
                            for g in 0..d[5] {
                                let idx = [a, b, c, e, f, g];
                                out.push(idx.iter().zip(&v.strides).map(|(i, s)| i * s).sum());
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn depth_to_space_follows_onnx_reference_order() {
        // ONNX's DepthToSpace examples: [1, 8, 2, 3] with blocksize 2; DCR reads channels
        // 0, 2 on the first output row, 4, 6 on the second; CRD channels 0, 1 then 2, 3.
        let v = depth_to_space(&[1, 8, 2, 3], 2, DepthSpaceMode::Dcr).unwrap();
        assert_eq!(v.out_dims, [1, 2, 4, 6]);
        let s = sources(&v);
        assert_eq!(&s[..12], &[0, 12, 1, 13, 2, 14, 24, 36, 25, 37, 26, 38]);
        assert_eq!(&s[12..15], &[3, 15, 4]);
        let v = depth_to_space(&[1, 8, 2, 3], 2, DepthSpaceMode::Crd).unwrap();
        assert_eq!(&sources(&v)[..12], &[0, 6, 1, 7, 2, 8, 12, 18, 13, 19, 14, 20]);
    }

    #[test]
    fn space_to_depth_inverts_depth_to_space_in_either_mode() {
        for mode in [DepthSpaceMode::Dcr, DepthSpaceMode::Crd] {
            let d2s = depth_to_space(&[2, 18, 2, 3], 3, mode).unwrap();
            let s2d = space_to_depth(&d2s.out_dims, 3, mode).unwrap();
            assert_eq!(s2d.out_dims, [2, 18, 2, 3]);
            let (a, b) = (sources(&d2s), sources(&s2d));
            let round: Vec<usize> = b.iter().map(|&i| a[i]).collect();
            assert_eq!(round, (0..a.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn bad_shapes_and_blocksizes_are_errors() {
        assert!(depth_to_space(&[1, 6, 2, 2], 2, DepthSpaceMode::Dcr).is_err());
        assert!(depth_to_space(&[1, 4, 2], 2, DepthSpaceMode::Crd).is_err());
        assert!(depth_to_space(&[1, 4, 2, 2], 0, DepthSpaceMode::Dcr).is_err());
        assert!(depth_to_space(&[1, 4, 2, 2], usize::MAX, DepthSpaceMode::Dcr).is_err());
        assert!(space_to_depth(&[1, 1, 3, 4], 2, DepthSpaceMode::Dcr).is_err());
        assert!(space_to_depth(&[1, 1, 4, 4], 0, DepthSpaceMode::Crd).is_err());
        assert!(space_to_depth(&[1, usize::MAX / 2, 2, 2], 2, DepthSpaceMode::Dcr).is_err());
    }
}
