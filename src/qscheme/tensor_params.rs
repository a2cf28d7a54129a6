//! The quantization parameters of one tensor at any granularity.

use super::formula::{dequantize, quantize, quantize_value, NanRule};
use super::layout::BlockLayout;
use super::params::{check_i8_range, check_same_len, RangedQParams};
use super::types::{Granularity, QRange};
use crate::{Error, Result};

/// The parameters of one tensor: a [`Granularity`], the integer range values are clamped
/// to, and one scale and zero point per pair the granularity implies for the tensor's
/// shape (1 per tensor, the axis size per axis, `outer · ceil(axis / size) · inner` per
/// group). `real = (q - zero_point) * scale` with the pair of each element
/// ([`BlockLayout`]).
///
/// [`QTensorParams::new`] checks the structure only and takes scales as given (an imported
/// ONNX graph may hold any float); [`QTensorParams::per_tensor`],
/// [`QTensorParams::per_axis`] and [`QTensorParams::per_group`] also check every pair as
/// [`RangedQParams::new`] does.
#[derive(Clone, Debug, PartialEq)]
pub struct QTensorParams {
    granularity: Granularity,
    range: QRange,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

impl QTensorParams {
    /// Parameters of `granularity` with `scales` and `zero_points` of equal lengths (exactly
    /// one pair per tensor; groups of a positive size). The values are not checked.
    pub fn new(
        granularity: Granularity,
        range: QRange,
        scales: Vec<f32>,
        zero_points: Vec<i32>,
    ) -> Result<Self> {
        if scales.len() != zero_points.len() {
            return Err(Error::ShapeMismatch(format!(
                "{} scales but {} zero points",
                scales.len(),
                zero_points.len()
            )));
        }
        match granularity {
            Granularity::Tensor if scales.len() != 1 => {
                return Err(Error::ShapeMismatch(format!(
                    "per-tensor parameters hold one scale, got {}",
                    scales.len()
                )))
            }
            Granularity::Group { size: 0, .. } => {
                return Err(Error::invalid_argument("group size", "must be > 0"))
            }
            _ => {}
        }
        Ok(QTensorParams {
            granularity,
            range,
            scales,
            zero_points,
        })
    }

    /// Checked per-tensor parameters (as [`RangedQParams::new`]).
    pub fn per_tensor(scale: f32, zero_point: i32, range: QRange) -> Result<Self> {
        RangedQParams::new(scale, zero_point, range.qmin(), range.qmax())?;
        QTensorParams::new(Granularity::Tensor, range, vec![scale], vec![zero_point])
    }

    /// Checked per-axis parameters: at least one channel, and every pair valid as in
    /// [`RangedQParams::new`].
    pub fn per_axis(axis: usize, scales: Vec<f32>, zero_points: Vec<i32>, range: QRange) -> Result<Self> {
        check_pairs(&scales, &zero_points, range)?;
        QTensorParams::new(Granularity::Axis(axis), range, scales, zero_points)
    }

    /// Checked per-group parameters (`size` elements along `axis`): at least one pair, and
    /// every pair valid as in [`RangedQParams::new`].
    pub fn per_group(
        axis: usize,
        size: usize,
        scales: Vec<f32>,
        zero_points: Vec<i32>,
        range: QRange,
    ) -> Result<Self> {
        check_pairs(&scales, &zero_points, range)?;
        QTensorParams::new(Granularity::Group { axis, size }, range, scales, zero_points)
    }

    /// Which elements share a pair.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The integer range values are clamped to.
    pub fn range(&self) -> QRange {
        self.range
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.range.qmin()
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.range.qmax()
    }

    /// The scales, one per pair.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The zero points, one per pair.
    pub fn zero_points(&self) -> &[i32] {
        &self.zero_points
    }

    /// The per-tensor parameters, if these are per tensor.
    pub fn as_per_tensor(&self) -> Option<RangedQParams> {
        (self.granularity == Granularity::Tensor).then(|| {
            RangedQParams::new_unchecked(self.scales[0], self.zero_points[0], self.qmin(), self.qmax())
        })
    }

    /// The layout of these parameters over a tensor of `shape` holding `len` elements;
    /// fails if the shape does not match the number of pairs.
    pub fn layout(&self, shape: &[usize], len: usize) -> Result<BlockLayout> {
        let (layout, pairs) = BlockLayout::for_granularity(self.granularity, shape, len)?;
        if pairs != self.scales.len() {
            return Err(Error::ShapeMismatch(match self.granularity {
                Granularity::Axis(axis) => format!(
                    "axis {axis} of shape {shape:?} has {} entries but the parameters have {} channels",
                    layout.channels,
                    self.scales.len()
                ),
                _ => format!(
                    "shape {shape:?} needs {pairs} parameter pairs ({:?}) but there are {}",
                    self.granularity,
                    self.scales.len()
                ),
            }));
        }
        Ok(layout)
    }

    /// Quantizes `x` (row-major, `shape`) into `out`: each element by [`quantize`] with
    /// its pair, NaN as `nan` says, saturated to the range (also for 32-bit ranges, whose
    /// `f32` bound rounds to `2^31`).
    pub fn quantize(&self, x: &[f32], shape: &[usize], nan: NanRule, out: &mut [i32]) -> Result<()> {
        check_same_len(x.len(), out.len())?;
        let layout = self.layout(shape, x.len())?;
        let (lo, hi) = (i64::from(self.qmin()), i64::from(self.qmax()));
        for ((q, &v), p) in out.iter_mut().zip(x).zip(layout.param_indices()) {
            let (s, z) = (self.scales[p], self.zero_points[p]);
            *q = if nan == NanRule::ZeroPoint {
                quantize_value(v, s, z, self.qmin(), self.qmax())
            } else {
                (quantize(v, s, z, self.range, nan) as i64).clamp(lo, hi) as i32
            };
        }
        Ok(())
    }

    /// Dequantizes the integers `q` (row-major, `shape`) into `out`: [`dequantize`] with
    /// each element's pair.
    pub fn dequantize(&self, q: &[i64], shape: &[usize], out: &mut [f32]) -> Result<()> {
        check_same_len(q.len(), out.len())?;
        let layout = self.layout(shape, q.len())?;
        for ((x, &v), p) in out.iter_mut().zip(q).zip(layout.param_indices()) {
            *x = dequantize(v, self.scales[p], i64::from(self.zero_points[p]));
        }
        Ok(())
    }

    /// Quantizes `input` (row-major, `shape`) into int8 `output` with NaN as the zero point
    /// (the quantizer's weights); the range must fit in `i8`.
    pub fn quantize_i8(&self, input: &[f32], shape: &[usize], output: &mut [i8]) -> Result<()> {
        check_i8_range(self.qmin(), self.qmax())?;
        check_same_len(input.len(), output.len())?;
        let layout = self.layout(shape, input.len())?;
        for ((q, &x), p) in output.iter_mut().zip(input).zip(layout.param_indices()) {
            *q = quantize_value(x, self.scales[p], self.zero_points[p], self.qmin(), self.qmax()) as i8;
        }
        Ok(())
    }

    /// Dequantizes int8 `input` (row-major, `shape`) into `output`.
    pub fn dequantize_i8(&self, input: &[i8], shape: &[usize], output: &mut [f32]) -> Result<()> {
        check_same_len(input.len(), output.len())?;
        let layout = self.layout(shape, input.len())?;
        for ((x, &q), p) in output.iter_mut().zip(input).zip(layout.param_indices()) {
            *x = dequantize(i64::from(q), self.scales[p], i64::from(self.zero_points[p]));
        }
        Ok(())
    }
}

impl From<RangedQParams> for QTensorParams {
    fn from(p: RangedQParams) -> Self {
        QTensorParams {
            granularity: Granularity::Tensor,
            range: QRange::new_unchecked(p.qmin(), p.qmax()),
            scales: vec![p.scale()],
            zero_points: vec![p.zero_point()],
        }
    }
}

/// At least one pair, equal lengths, and every pair valid as in [`RangedQParams::new`].
fn check_pairs(scales: &[f32], zero_points: &[i32], range: QRange) -> Result<()> {
    if scales.is_empty() || scales.len() != zero_points.len() {
        return Err(Error::invalid_argument(
            "scales",
            format!(
                "need one scale and one zero point per channel, got {} scales and {} zero points",
                scales.len(),
                zero_points.len()
            ),
        ));
    }
    for (&s, &z) in scales.iter().zip(zero_points) {
        RangedQParams::new(s, z, range.qmin(), range.qmax())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_group_round_trip_and_checks() {
        let range = QRange::new(-8, 7).unwrap();
        // [2, 4] in groups of 2 along axis 1.
        let p = QTensorParams::per_group(1, 2, vec![1.0, 2.0, 0.5, 1.0], vec![0; 4], range).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0];
        let mut q = [0i32; 8];
        p.quantize(&x, &[2, 4], NanRule::Zero, &mut q).unwrap();
        assert_eq!(q, [1, 2, 2, 2, -2, -4, -3, -4]);
        let mut back = [0f32; 8];
        let wide: Vec<i64> = q.iter().map(|&v| i64::from(v)).collect();
        p.dequantize(&wide, &[2, 4], &mut back).unwrap();
        assert_eq!(back, [1.0, 2.0, 4.0, 4.0, -1.0, -2.0, -3.0, -4.0]);
        assert!(p.quantize(&x, &[8, 1], NanRule::Zero, &mut q).is_err());
        assert!(p.as_per_tensor().is_none());
        assert!(QTensorParams::per_group(1, 2, vec![1.0, 0.0], vec![0, 0], range).is_err());
        assert!(QTensorParams::new(Granularity::Tensor, range, vec![1.0; 2], vec![0; 2]).is_err());
        assert!(QTensorParams::new(Granularity::Axis(0), range, vec![1.0; 2], vec![0]).is_err());
        let t = QTensorParams::per_tensor(0.5, 3, QRange::I8).unwrap();
        assert_eq!(t.as_per_tensor().unwrap().zero_point(), 3);
        assert!(QTensorParams::per_tensor(0.5, 300, QRange::I8).is_err());
    }
}
