//! Index maps of the byte moves lowered to a gather step (Transpose, Slice, Pad, DepthToSpace,
//! SpaceToDepth):
//! for each logical output element, the logical input element it copies, or
//! [`GATHER_FILL`] where it is padding. They follow the IR's shape rules
//! ([`crate::ir::shapes`]), the same rules by which the interpreter runs these operators.
//!
//! Each function returns the output dimensions with the map. The caller bounds the input's
//! element count (a map entry is a `u32`).

use crate::ir::depth_space::view_of;
use crate::ir::op::{Op, PadMode};
use crate::ir::shapes::{pad_amounts, pad_shape, pad_source, slice_axes, transpose_shape};
use crate::program::GATHER_FILL;
use crate::{Error, Result};

/// Row-major element strides of `dims`.
fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Calls `f` with each index of `dims` in row-major order.
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    if dims.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; dims.len()];
    loop {
        f(&idx);
        let mut a = dims.len();
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// The map reading element `base + Σ idx[a] · strides[a]` for every index of `out_dims`.
fn strided(out_dims: &[usize], base: i64, strides: &[i64]) -> Vec<u32> {
    let mut map = Vec::with_capacity(out_dims.iter().product());
    for_each_index(out_dims, |idx| {
        let at = base + idx.iter().zip(strides).map(|(&i, &s)| i as i64 * s).sum::<i64>();
        map.push(at as u32);
    });
    map
}

/// Transpose of a tensor of dimensions `dims` by `perm` (reversed axes when `None`).
pub fn transpose(dims: &[usize], perm: Option<&[usize]>) -> Result<(Vec<usize>, Vec<u32>)> {
    let out_dims = transpose_shape(dims, perm)?;
    let st = row_major_strides(dims);
    let reversed: Vec<usize> = (0..dims.len()).rev().collect();
    let perm = perm.unwrap_or(&reversed);
    let strides: Vec<i64> = perm.iter().map(|&a| st[a] as i64).collect();
    let map = strided(&out_dims, 0, &strides);
    Ok((out_dims, map))
}

/// DepthToSpace / SpaceToDepth (`op`) of a tensor of dimensions `dims`: the strided read of
/// [`crate::ir::depth_space`], the interpreter's.
pub fn depth_space(dims: &[usize], op: &Op) -> Result<(Vec<usize>, Vec<u32>)> {
    let v = view_of(op, dims).ok_or_else(|| {
        Error::InvalidModel(format!("{} is not DepthToSpace / SpaceToDepth", op.onnx_name()))
    })??;
    let strides: Vec<i64> = v.strides.iter().map(|&s| s as i64).collect();
    Ok((v.out_dims, strided(&v.view_dims, 0, &strides)))
}

/// Slice of a tensor of dimensions `dims` (ONNX Slice inputs: starts, ends, axes?, steps?).
pub fn slice(
    dims: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<(Vec<usize>, Vec<u32>)> {
    let axes_taken = slice_axes(dims, starts, ends, axes, steps)?;
    let st = row_major_strides(dims);
    let out_dims: Vec<usize> = axes_taken.iter().map(|s| s.len).collect();
    let base = axes_taken
        .iter()
        .zip(&st)
        .filter(|(s, _)| s.len > 0)
        .map(|(s, &k)| s.start * k as i64)
        .sum();
    let strides: Vec<i64> = axes_taken
        .iter()
        .zip(&st)
        .map(|(s, &k)| s.step * k as i64)
        .collect();
    let map = strided(&out_dims, base, &strides);
    Ok((out_dims, map))
}

/// Pad in `mode` of a tensor of dimensions `dims` (ONNX Pad inputs: pads, axes?); negative
/// pads crop. Each output index copies the input index [`pad_source`] gives along every axis
/// (the interpreter's rule), or is [`GATHER_FILL`] (constant mode's padding).
pub fn pad(
    dims: &[usize],
    pads: &[i64],
    axes: Option<&[i64]>,
    mode: PadMode,
) -> Result<(Vec<usize>, Vec<u32>)> {
    let amounts = pad_amounts(dims.len(), pads, axes)?;
    let out_dims = pad_shape(dims, &amounts)?;
    if mode != PadMode::Constant && dims.contains(&0) && !out_dims.contains(&0) {
        return Err(Error::ShapeMismatch(
            "Pad cannot reflect, wrap or extend an empty axis".into(),
        ));
    }
    let st = row_major_strides(dims);
    let mut map = Vec::with_capacity(out_dims.iter().product());
    for_each_index(&out_dims, |idx| {
        let mut at = 0usize;
        for (a, &o) in idx.iter().enumerate() {
            match pad_source(mode, o as i64, amounts[a].0, dims[a] as i64) {
                Some(i) => at += i * st[a],
                None => {
                    map.push(GATHER_FILL);
                    return;
                }
            }
        }
        map.push(at as u32);
    });
    Ok((out_dims, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_reads_across_the_permuted_axes() {
        let (dims, map) = transpose(&[2, 3], None).unwrap();
        assert_eq!(dims, [3, 2]);
        assert_eq!(map, [0, 3, 1, 4, 2, 5]);
        let (dims, map) = transpose(&[1, 2, 2], Some(&[2, 0, 1])).unwrap();
        assert_eq!(dims, [2, 1, 2]);
        assert_eq!(map, [0, 2, 1, 3]);
        assert!(transpose(&[2, 3], Some(&[0, 0])).is_err());
    }

    #[test]
    fn slice_takes_strided_and_reversed_runs() {
        let (dims, map) = slice(&[2, 5], &[1], &[5], Some(&[1]), Some(&[2])).unwrap();
        assert_eq!(dims, [2, 2]);
        assert_eq!(map, [1, 3, 6, 8]);
        let (dims, map) = slice(&[4], &[-1], &[i64::MIN], None, Some(&[-1])).unwrap();
        assert_eq!(dims, [4]);
        assert_eq!(map, [3, 2, 1, 0]);
        let (dims, map) = slice(&[3, 2], &[3], &[9], None, None).unwrap();
        assert_eq!(dims, [0, 2]);
        assert!(map.is_empty());
    }

    #[test]
    fn pad_fills_and_crops() {
        let (dims, map) = pad(&[2, 2], &[0, 1, 1, 0], None, PadMode::Constant).unwrap();
        assert_eq!(dims, [3, 3]);
        let f = GATHER_FILL;
        assert_eq!(map, [f, 0, 1, f, 2, 3, f, f, f]);
        let (dims, map) = pad(&[1, 4], &[-1, 1], Some(&[1]), PadMode::Constant).unwrap();
        assert_eq!(dims, [1, 4]);
        assert_eq!(map, [1, 2, 3, f]);
        assert!(pad(&[2], &[-3, 0], None, PadMode::Constant).is_err());
    }

    #[test]
    fn reflect_edge_and_wrap_read_inside_the_input() {
        let cases = [
            (PadMode::Reflect, [2, 1, 0, 1, 2, 1, 0]),
            (PadMode::Edge, [0, 0, 0, 1, 2, 2, 2]),
            (PadMode::Wrap, [1, 2, 0, 1, 2, 0, 1]),
        ];
        for (mode, want) in cases {
            let (dims, map) = pad(&[3], &[2, 2], None, mode).unwrap();
            assert_eq!(dims, [7]);
            assert_eq!(map, want, "{mode:?}");
        }
        assert!(pad(&[0], &[1, 1], None, PadMode::Edge).is_err());
    }
}
