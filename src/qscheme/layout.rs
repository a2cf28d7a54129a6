//! Which scale and zero point each element of a row-major tensor uses, for every
//! [`Granularity`].

use super::params::check_element_count;
use super::types::Granularity;
use crate::{Error, Result};

/// A row-major tensor seen as `[outer, channels, inner]` around one axis, and the index of
/// the parameter pair of element `(o, c, i)`:
/// `o * outer_stride + (c / block) * channel_stride + i * inner_stride`.
///
/// - per tensor: every stride is 0 (one pair);
/// - per axis: pair `c` (`block` 1, channel stride 1);
/// - per group of `size` along the axis: pair `(o * blocks + c / size) * inner + i`, where
///   `blocks = ceil(channels / size)` (a ragged last block is allowed, as ONNX's
///   `block_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// Product of the dimensions before the axis.
    pub(crate) outer: usize,
    /// Size of the axis.
    pub(crate) channels: usize,
    /// Product of the dimensions after the axis.
    pub(crate) inner: usize,
    block: usize,
    outer_stride: usize,
    channel_stride: usize,
    inner_stride: usize,
}

impl BlockLayout {
    /// Splits `shape` around `axis` with one pair per index of the axis; fails if the axis is
    /// out of range or the shape's element count (checked for overflow) differs from `len`.
    pub fn new(shape: &[usize], axis: usize, len: usize) -> Result<Self> {
        if axis >= shape.len() {
            return Err(Error::invalid_argument(
                "axis",
                format!("axis {axis} is out of range for a tensor of rank {}", shape.len()),
            ));
        }
        let product = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| Error::invalid_argument("shape", format!("{shape:?} overflows usize")))
        };
        let layout = BlockLayout {
            outer: product(&shape[..axis])?,
            channels: shape[axis],
            inner: product(&shape[axis + 1..])?,
            block: 1,
            outer_stride: 0,
            channel_stride: 1,
            inner_stride: 0,
        };
        check_element_count(shape, len)?;
        Ok(layout)
    }

    /// The layout of `granularity` over a tensor of `shape` (`len` elements, checked), with
    /// the number of pairs it needs.
    pub fn for_granularity(granularity: Granularity, shape: &[usize], len: usize) -> Result<(Self, usize)> {
        match granularity {
            Granularity::Tensor => {
                check_element_count(shape, len)?;
                let layout = BlockLayout {
                    outer: 1,
                    channels: len,
                    inner: 1,
                    block: 1,
                    outer_stride: 0,
                    channel_stride: 0,
                    inner_stride: 0,
                };
                Ok((layout, 1))
            }
            Granularity::Axis(axis) => {
                let layout = BlockLayout::new(shape, axis, len)?;
                Ok((layout, layout.channels))
            }
            Granularity::Group { axis, size } => {
                if size == 0 {
                    return Err(Error::invalid_argument("group size", "must be > 0"));
                }
                let axis_layout = BlockLayout::new(shape, axis, len)?;
                let blocks = axis_layout.channels.div_ceil(size);
                let pairs = axis_layout
                    .outer
                    .checked_mul(blocks)
                    .and_then(|p| p.checked_mul(axis_layout.inner))
                    .ok_or_else(|| Error::invalid_argument("shape", format!("{shape:?} overflows usize")))?;
                let layout = BlockLayout {
                    block: size,
                    outer_stride: blocks * axis_layout.inner,
                    channel_stride: axis_layout.inner,
                    inner_stride: 1,
                    ..axis_layout
                };
                Ok((layout, pairs))
            }
        }
    }

    /// Product of the dimensions before the axis.
    pub fn outer(&self) -> usize {
        self.outer
    }

    /// Size of the axis.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Product of the dimensions after the axis.
    pub fn inner(&self) -> usize {
        self.inner
    }

    /// The index of the pair of element `(o, c, i)`.
    #[inline]
    pub fn index(&self, o: usize, c: usize, i: usize) -> usize {
        o * self.outer_stride + (c / self.block) * self.channel_stride + i * self.inner_stride
    }

    /// The index of the pair of every element, in row-major order.
    pub fn param_indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.outer).flat_map(move |o| {
            (0..self.channels).flat_map(move |c| (0..self.inner).map(move |i| self.index(o, c, i)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_of_each_granularity() {
        let all = |g, shape: &[usize]| {
            let len = shape.iter().product();
            let (layout, pairs) = BlockLayout::for_granularity(g, shape, len).unwrap();
            (layout.param_indices().collect::<Vec<_>>(), pairs)
        };
        assert_eq!(all(Granularity::Tensor, &[2, 2]), (vec![0; 4], 1));
        assert_eq!(all(Granularity::Axis(0), &[2, 2]), (vec![0, 0, 1, 1], 2));
        assert_eq!(all(Granularity::Axis(1), &[2, 2]), (vec![0, 1, 0, 1], 2));
        // [2, 5] in groups of 2 along axis 1: 3 blocks per row, the last one ragged.
        let group = Granularity::Group { axis: 1, size: 2 };
        assert_eq!(all(group, &[2, 5]), (vec![0, 0, 1, 1, 2, 3, 3, 4, 4, 5], 6));
        // [4, 2] in groups of 2 along axis 0: pair (c / 2) * 2 + i.
        let group = Granularity::Group { axis: 0, size: 2 };
        assert_eq!(all(group, &[4, 2]), (vec![0, 1, 0, 1, 2, 3, 2, 3], 4));
        assert!(BlockLayout::for_granularity(Granularity::Axis(2), &[2, 2], 4).is_err());
        assert!(BlockLayout::for_granularity(Granularity::Tensor, &[2, 2], 5).is_err());
        let zero = Granularity::Group { axis: 0, size: 0 };
        assert!(BlockLayout::for_granularity(zero, &[2, 2], 4).is_err());
    }
}
