//! Affine quantization parameters and the quantize / dequantize helpers (DESIGN §3).
//!
//! A real value `x` maps to the integer `q = clamp(round_half_even(x / scale) + zero_point,
//! qmin, qmax)` (ONNX `QuantizeLinear`) and back to `(q - zero_point) * scale`
//! (`DequantizeLinear`). All arithmetic is `f32`, in the order PyTorch's observers use, so
//! scales derived here equal PyTorch's bit for bit on the same range.

use crate::{Error, Result};

/// `2^-12`, the smallest scale ExecuTorch's `XNNPACKQuantizer` lets an observer produce.
pub const XNNPACK_EPS: f32 = 1.0 / 4096.0;

/// How a tensor is quantized: its integer range, whether the scheme is symmetric, and the
/// smallest scale allowed.
///
/// Affine schemes map the observed range `[min(min, 0), max(max, 0)]` onto `[qmin, qmax]`
/// with a zero point; symmetric schemes map `[-max|x|, max|x|]` with zero point 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantScheme {
    qmin: i32,
    qmax: i32,
    symmetric: bool,
    eps: f32,
}

impl QuantScheme {
    /// Static int8 activations as XNNPACK expects them: affine, `[-128, 127]`, eps `2^-12`.
    pub const INT8_ACTIVATION: QuantScheme = QuantScheme {
        qmin: -128,
        qmax: 127,
        symmetric: false,
        eps: XNNPACK_EPS,
    };

    /// int8 weights as XNNPACK expects them: symmetric, `[-127, 127]`, zero point 0, eps `2^-12`.
    pub const INT8_WEIGHT: QuantScheme = QuantScheme {
        qmin: -127,
        qmax: 127,
        symmetric: true,
        eps: XNNPACK_EPS,
    };

    /// A custom scheme. Requires `qmin < qmax`, `qmin <= 0 <= qmax` (zero must be exactly
    /// representable), `qmin < 0` for symmetric schemes (their zero point is 0), and a finite
    /// positive `eps`.
    pub fn new(qmin: i32, qmax: i32, symmetric: bool, eps: f32) -> Result<Self> {
        if qmin >= qmax || qmin > 0 || qmax < 0 {
            return Err(Error::invalid_argument(
                "qmin/qmax",
                format!("need qmin < qmax and qmin <= 0 <= qmax, got [{qmin}, {qmax}]"),
            ));
        }
        if symmetric && qmin == 0 {
            return Err(Error::invalid_argument(
                "symmetric",
                "a symmetric scheme needs a signed range (qmin < 0)",
            ));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid_argument(
                "eps",
                format!("must be finite and > 0, got {eps}"),
            ));
        }
        Ok(QuantScheme {
            qmin,
            qmax,
            symmetric,
            eps,
        })
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.qmin
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.qmax
    }

    /// Whether the zero point is fixed at 0 and the range is made symmetric.
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Smallest scale the scheme produces (larger scales are kept as computed).
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// Scale and zero point for an observed range `[min, max]` (DESIGN §3, PyTorch's
    /// `_calculate_qparams`):
    ///
    /// - affine: `min_neg = min(min, 0)`, `max_pos = max(max, 0)`,
    ///   `scale = max((max_pos - min_neg) / (qmax - qmin), eps)`,
    ///   `zero_point = clamp(qmin - round_half_even(min_neg / scale), qmin, qmax)`;
    /// - symmetric: `scale = max(max(-min_neg, max_pos) / ((qmax - qmin) / 2), eps)`,
    ///   `zero_point = 0`.
    ///
    /// Fails if either bound is not finite or `min > max`.
    pub fn qparams_from_range(&self, min: f32, max: f32) -> Result<QParams> {
        if !(min.is_finite() && max.is_finite()) || min > max {
            return Err(Error::invalid_argument(
                "range",
                format!("need finite min <= max, got [{min}, {max}]"),
            ));
        }
        let min_neg = min.min(0.0);
        let max_pos = max.max(0.0);
        let span = i64::from(self.qmax) - i64::from(self.qmin);
        let levels = span as f32;
        let (scale, zero_point) = if self.symmetric {
            let half_levels = (span as f64 / 2.0) as f32;
            let scale = ((-min_neg).max(max_pos) / half_levels).max(self.eps);
            (scale, 0)
        } else {
            let scale = ((max_pos - min_neg) / levels).max(self.eps);
            let shift = (min_neg / scale).round_ties_even();
            // |min_neg / scale| <= qmax - qmin because scale >= (max_pos - min_neg) / levels.
            let zero_point = (self.qmin as f32 - shift).clamp(self.qmin as f32, self.qmax as f32);
            (scale, zero_point as i32)
        };
        QParams::new(scale, zero_point, self.qmin, self.qmax)
    }
}

/// Per-tensor affine quantization parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
}

impl QParams {
    /// Checks `scale` is finite and positive and `qmin <= zero_point <= qmax`.
    pub fn new(scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::invalid_argument(
                "scale",
                format!("must be finite and > 0, got {scale}"),
            ));
        }
        if qmin > qmax || zero_point < qmin || zero_point > qmax {
            return Err(Error::invalid_argument(
                "zero_point",
                format!("need qmin <= zero_point <= qmax, got {zero_point} in [{qmin}, {qmax}]"),
            ));
        }
        Ok(QParams {
            scale,
            zero_point,
            qmin,
            qmax,
        })
    }

    /// The step between two adjacent quantized values, in real units.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The quantized value that represents real 0.
    pub fn zero_point(&self) -> i32 {
        self.zero_point
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.qmin
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.qmax
    }

    /// `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`; NaN maps to the zero point.
    pub fn quantize(&self, x: f32) -> i32 {
        quantize_value(x, self.scale, self.zero_point, self.qmin, self.qmax)
    }

    /// `(q - zero_point) * scale`.
    pub fn dequantize(&self, q: i32) -> f32 {
        (i64::from(q) - i64::from(self.zero_point)) as f32 * self.scale
    }

    /// Quantizes `input` into `output` (same length); the range must fit in `i8`.
    pub fn quantize_i8(&self, input: &[f32], output: &mut [i8]) -> Result<()> {
        check_i8_range(self.qmin, self.qmax)?;
        check_same_len(input.len(), output.len())?;
        for (q, &x) in output.iter_mut().zip(input) {
            *q = self.quantize(x) as i8;
        }
        Ok(())
    }

    /// Dequantizes `input` into `output` (same length).
    pub fn dequantize_i8(&self, input: &[i8], output: &mut [f32]) -> Result<()> {
        check_same_len(input.len(), output.len())?;
        for (x, &q) in output.iter_mut().zip(input) {
            *x = self.dequantize(i32::from(q));
        }
        Ok(())
    }
}

/// Quantization parameters with one scale and zero point per index of `axis`
/// (per output channel for weights).
#[derive(Clone, Debug, PartialEq)]
pub struct PerAxisQParams {
    axis: usize,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    qmin: i32,
    qmax: i32,
}

impl PerAxisQParams {
    /// Checks that there is at least one channel, `scales` and `zero_points` have equal
    /// lengths, and every channel is valid as in [`QParams::new`].
    pub fn new(axis: usize, scales: Vec<f32>, zero_points: Vec<i32>, qmin: i32, qmax: i32) -> Result<Self> {
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
        for (&s, &z) in scales.iter().zip(&zero_points) {
            QParams::new(s, z, qmin, qmax)?;
        }
        Ok(PerAxisQParams {
            axis,
            scales,
            zero_points,
            qmin,
            qmax,
        })
    }

    /// The axis the parameters vary along.
    pub fn axis(&self) -> usize {
        self.axis
    }

    /// One scale per channel.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// One zero point per channel.
    pub fn zero_points(&self) -> &[i32] {
        &self.zero_points
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.scales.len()
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.qmin
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.qmax
    }

    /// The per-tensor parameters of channel `c`, if it exists.
    pub fn channel(&self, c: usize) -> Option<QParams> {
        Some(QParams {
            scale: *self.scales.get(c)?,
            zero_point: self.zero_points[c],
            qmin: self.qmin,
            qmax: self.qmax,
        })
    }

    /// Quantizes a tensor of `shape` (row-major) channel by channel into `output`.
    pub fn quantize_i8(&self, input: &[f32], shape: &[usize], output: &mut [i8]) -> Result<()> {
        check_i8_range(self.qmin, self.qmax)?;
        check_same_len(input.len(), output.len())?;
        let layout = self.layout_for(shape, input.len())?;
        if input.is_empty() {
            return Ok(());
        }
        for (block, (src, dst)) in input
            .chunks(layout.inner)
            .zip(output.chunks_mut(layout.inner))
            .enumerate()
        {
            let c = block % layout.channels;
            let (scale, zp) = (self.scales[c], self.zero_points[c]);
            for (q, &x) in dst.iter_mut().zip(src) {
                *q = quantize_value(x, scale, zp, self.qmin, self.qmax) as i8;
            }
        }
        Ok(())
    }

    /// Dequantizes a tensor of `shape` (row-major) channel by channel into `output`.
    pub fn dequantize_i8(&self, input: &[i8], shape: &[usize], output: &mut [f32]) -> Result<()> {
        check_same_len(input.len(), output.len())?;
        let layout = self.layout_for(shape, input.len())?;
        if input.is_empty() {
            return Ok(());
        }
        for (block, (src, dst)) in input
            .chunks(layout.inner)
            .zip(output.chunks_mut(layout.inner))
            .enumerate()
        {
            let c = block % layout.channels;
            let (scale, zp) = (self.scales[c], self.zero_points[c]);
            for (x, &q) in dst.iter_mut().zip(src) {
                *x = (i64::from(q) - i64::from(zp)) as f32 * scale;
            }
        }
        Ok(())
    }

    fn layout_for(&self, shape: &[usize], len: usize) -> Result<AxisLayout> {
        let layout = AxisLayout::new(shape, self.axis, len)?;
        if layout.channels != self.channels() {
            return Err(Error::ShapeMismatch(format!(
                "axis {} of shape {shape:?} has {} entries but the parameters have {} channels",
                self.axis,
                layout.channels,
                self.channels()
            )));
        }
        Ok(layout)
    }
}

/// Either kind of quantization parameters an observer can produce.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantParams {
    /// One scale and zero point for the whole tensor.
    PerTensor(QParams),
    /// One scale and zero point per index of an axis.
    PerAxis(PerAxisQParams),
}

impl QuantParams {
    /// The per-tensor parameters, if these are per tensor.
    pub fn as_per_tensor(&self) -> Option<&QParams> {
        match self {
            QuantParams::PerTensor(q) => Some(q),
            QuantParams::PerAxis(_) => None,
        }
    }
}

/// A row-major tensor seen as `[outer, channels, inner]` around one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AxisLayout {
    /// Product of the dimensions before the axis.
    pub(crate) outer: usize,
    /// Size of the axis.
    pub(crate) channels: usize,
    /// Product of the dimensions after the axis.
    pub(crate) inner: usize,
}

impl AxisLayout {
    /// Splits `shape` around `axis`; fails if the axis is out of range or the shape's element
    /// count (checked for overflow) differs from `len`.
    pub(crate) fn new(shape: &[usize], axis: usize, len: usize) -> Result<Self> {
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
        let layout = AxisLayout {
            outer: product(&shape[..axis])?,
            channels: shape[axis],
            inner: product(&shape[axis + 1..])?,
        };
        check_element_count(shape, len)?;
        Ok(layout)
    }
}

/// Fails unless `shape` (checked for overflow) has exactly `len` elements.
pub(crate) fn check_element_count(shape: &[usize], len: usize) -> Result<()> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(len) {
        return Err(Error::ShapeMismatch(format!(
            "shape {shape:?} does not describe {len} elements"
        )));
    }
    Ok(())
}

/// Dynamic (run-time) int8 parameters for one row, as PyTorch's
/// `choose_qparams_per_token_asymmetric` and XNNPACK's `qd8` quantization compute them:
/// `rmin = min(0, min row)`, `rmax = max(0, max row)`,
/// `scale = max((rmax - rmin) / 255, f32::EPSILON)`, and a "nudged" zero point: whichever of
/// `-128 - rmin / scale` and `127 - rmax / scale` has the smaller rounding error, clamped
/// to `[-128, 127]` and rounded half to even.
///
/// Non-finite values are ignored; a row without finite values is treated as all zeros.
pub fn dynamic_row_qparams(row: &[f32]) -> QParams {
    const QMIN: f32 = -128.0;
    const QMAX: f32 = 127.0;
    let (min, max) = finite_min_max(row).unwrap_or((0.0, 0.0));
    let rmin = min.min(0.0);
    let rmax = max.max(0.0);
    let scale = ((rmax - rmin) / (QMAX - QMIN)).max(f32::EPSILON);
    let descaled_min = rmin / scale;
    let descaled_max = rmax / scale;
    let error_from_min = QMIN + descaled_min;
    let error_from_max = QMAX + descaled_max;
    let zero_point = if error_from_min + error_from_max > 0.0 {
        QMIN - descaled_min
    } else {
        QMAX - descaled_max
    };
    let zero_point = zero_point.clamp(QMIN, QMAX).round_ties_even() as i32;
    QParams {
        scale,
        zero_point,
        qmin: QMIN as i32,
        qmax: QMAX as i32,
    }
}

/// [`dynamic_row_qparams`] for every row of a row-major `[rows, row_len]` matrix.
pub fn dynamic_per_row_qparams(data: &[f32], row_len: usize) -> Result<Vec<QParams>> {
    if row_len == 0 || !data.len().is_multiple_of(row_len) {
        return Err(Error::invalid_argument(
            "row_len",
            format!(
                "must be > 0 and divide the element count {}, got {row_len}",
                data.len()
            ),
        ));
    }
    Ok(data.chunks_exact(row_len).map(dynamic_row_qparams).collect())
}

/// Minimum and maximum of the finite values of `data`, or `None` if it has none.
pub(crate) fn finite_min_max(data: &[f32]) -> Option<(f32, f32)> {
    let mut min = f32::INFINITY;
    let mut max = f32::NEG_INFINITY;
    for &x in data.iter().filter(|x| x.is_finite()) {
        min = min.min(x);
        max = max.max(x);
    }
    (min <= max).then_some((min, max))
}

fn quantize_value(x: f32, scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    let rounded = (x / scale).round_ties_even();
    if rounded.is_nan() {
        return zero_point;
    }
    // Clamp in f32 before converting so that huge values (and infinities) saturate.
    let shifted = rounded + zero_point as f32;
    shifted.clamp(qmin as f32, qmax as f32) as i32
}

fn check_i8_range(qmin: i32, qmax: i32) -> Result<()> {
    if qmin < i32::from(i8::MIN) || qmax > i32::from(i8::MAX) {
        return Err(Error::invalid_argument(
            "qmin/qmax",
            format!("range [{qmin}, {qmax}] does not fit in int8"),
        ));
    }
    Ok(())
}

fn check_same_len(input: usize, output: usize) -> Result<()> {
    if input != output {
        return Err(Error::ShapeMismatch(format!(
            "input has {input} elements but output has {output}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(scale: f32, zero_point: i32) -> QParams {
        QParams::new(scale, zero_point, -128, 127).unwrap()
    }

    #[test]
    fn xnnpack_schemes() {
        let a = QuantScheme::INT8_ACTIVATION;
        assert_eq!(
            (a.qmin(), a.qmax(), a.is_symmetric(), a.eps()),
            (-128, 127, false, 1.0 / 4096.0)
        );
        let w = QuantScheme::INT8_WEIGHT;
        assert_eq!(
            (w.qmin(), w.qmax(), w.is_symmetric(), w.eps()),
            (-127, 127, true, 1.0 / 4096.0)
        );
    }

    #[test]
    fn scheme_validation() {
        assert!(QuantScheme::new(0, 255, false, 1e-8).is_ok());
        assert!(QuantScheme::new(5, 255, false, 1e-8).is_err());
        assert!(QuantScheme::new(-128, -1, false, 1e-8).is_err());
        assert!(QuantScheme::new(3, 3, false, 1e-8).is_err());
        assert!(QuantScheme::new(0, 255, true, 1e-8).is_err());
        assert!(QuantScheme::new(-8, 7, true, 0.0).is_err());
        assert!(QuantScheme::new(-8, 7, true, f32::NAN).is_err());
    }

    #[test]
    fn affine_parameters_follow_design_section_3() {
        let s = QuantScheme::INT8_ACTIVATION;
        let p = s.qparams_from_range(-1.0, 2.0).unwrap();
        assert_eq!(p.scale(), 3.0f32 / 255.0);
        assert_eq!(p.zero_point(), -128 + 85);
        // The range always covers zero.
        let p = s.qparams_from_range(1.0, 2.0).unwrap();
        assert_eq!((p.scale(), p.zero_point()), (2.0f32 / 255.0, -128));
        let p = s.qparams_from_range(-2.0, -1.0).unwrap();
        assert_eq!((p.scale(), p.zero_point()), (2.0f32 / 255.0, 127));
        // Tiny ranges get the eps scale.
        let p = s.qparams_from_range(-1e-6, 1e-6).unwrap();
        assert_eq!((p.scale(), p.zero_point()), (XNNPACK_EPS, -128));
        let p = s.qparams_from_range(0.0, 0.0).unwrap();
        assert_eq!((p.scale(), p.zero_point()), (XNNPACK_EPS, -128));
    }

    #[test]
    fn affine_zero_point_rounds_half_to_even() {
        // scale = (128.5 - -126.5) / 255 = 1 and min_neg / scale = -126.5 exactly:
        // half-to-even gives -126 (zp -2) where half-away-from-zero would give -127 (zp -1).
        let s = QuantScheme::new(-128, 127, false, 1e-12).unwrap();
        let p = s.qparams_from_range(-126.5, 128.5).unwrap();
        assert_eq!(p.scale(), 1.0);
        assert_eq!(p.zero_point(), -128 + 126);
    }

    #[test]
    fn symmetric_parameters_use_the_larger_magnitude() {
        let s = QuantScheme::INT8_WEIGHT;
        let p = s.qparams_from_range(-0.5, 0.3).unwrap();
        assert_eq!((p.scale(), p.zero_point()), (0.5f32 / 127.0, 0));
        let p = s.qparams_from_range(0.2, 0.9).unwrap();
        assert_eq!((p.scale(), p.zero_point()), (0.9f32 / 127.0, 0));
        // An even-sized signed range: (127 - -128) / 2 = 127.5.
        let p = QuantScheme::new(-128, 127, true, 1e-12)
            .unwrap()
            .qparams_from_range(-1.0, 0.0)
            .unwrap();
        assert_eq!(p.scale(), 1.0f32 / 127.5);
    }

    #[test]
    fn full_i32_ranges_do_not_overflow() {
        let s = QuantScheme::new(i32::MIN, i32::MAX, false, 1e-30).unwrap();
        let p = s.qparams_from_range(-1.0, 1.0).unwrap();
        assert_eq!(p.scale(), 2.0 / 4294967295.0);
        assert_eq!(
            p.dequantize(i32::MAX),
            (i64::from(i32::MAX) - i64::from(p.zero_point())) as f32 * p.scale()
        );
        let symmetric = QuantScheme::new(i32::MIN, i32::MAX, true, 1e-30).unwrap();
        assert!(symmetric.qparams_from_range(-1.0, 1.0).is_ok());
        assert!(crate::quant::observer::HistogramObserver::new(s, 64).is_ok());
    }

    #[test]
    fn invalid_ranges_are_rejected() {
        let s = QuantScheme::INT8_ACTIVATION;
        for (lo, hi) in [
            (1.0, -1.0),
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
            (f32::NEG_INFINITY, 0.0),
        ] {
            assert!(s.qparams_from_range(lo, hi).is_err(), "[{lo}, {hi}]");
        }
        // Finite bounds whose difference overflows give no finite scale.
        assert!(s.qparams_from_range(f32::MIN, f32::MAX).is_err());
    }

    #[test]
    fn quantize_rounds_half_to_even_and_clamps() {
        let p = q(1.0, 0);
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (0.49, 0),
            (0.51, 1),
        ];
        for (x, expected) in cases {
            assert_eq!(p.quantize(x), expected, "x = {x}");
        }
        let p = q(0.5, 3);
        // 1.25 / 0.5 = 2.5 -> 2, + 3 = 5
        assert_eq!(p.quantize(1.25), 5);
        assert_eq!(p.quantize(1000.0), 127);
        assert_eq!(p.quantize(-1000.0), -128);
        assert_eq!(p.quantize(f32::INFINITY), 127);
        assert_eq!(p.quantize(f32::NEG_INFINITY), -128);
        assert_eq!(p.quantize(f32::NAN), 3);
        assert_eq!(p.dequantize(5), 1.0);
        assert_eq!(p.dequantize(3), 0.0);
    }

    #[test]
    fn slices_round_trip_within_half_a_step() {
        let p = q(0.02, -7);
        let x: Vec<f32> = (0..200).map(|i| (i as f32 - 60.0) * 0.013).collect();
        let mut qx = vec![0i8; x.len()];
        p.quantize_i8(&x, &mut qx).unwrap();
        let mut back = vec![0f32; x.len()];
        p.dequantize_i8(&qx, &mut back).unwrap();
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() <= 0.01 + 1e-6, "{a} vs {b}");
        }
        assert!(p.quantize_i8(&x, &mut qx[..10]).is_err());
        let wide = QParams::new(1.0, 0, -300, 300).unwrap();
        assert!(wide.quantize_i8(&x, &mut qx).is_err());
    }

    #[test]
    fn qparams_validation() {
        assert!(QParams::new(0.0, 0, -128, 127).is_err());
        assert!(QParams::new(-1.0, 0, -128, 127).is_err());
        assert!(QParams::new(f32::INFINITY, 0, -128, 127).is_err());
        assert!(QParams::new(1.0, 128, -128, 127).is_err());
        assert!(PerAxisQParams::new(0, vec![], vec![], -127, 127).is_err());
        assert!(PerAxisQParams::new(0, vec![1.0, 2.0], vec![0], -127, 127).is_err());
        assert!(PerAxisQParams::new(0, vec![1.0, 0.0], vec![0, 0], -127, 127).is_err());
    }

    #[test]
    fn per_axis_uses_each_channels_parameters() {
        // shape [2, 3, 2], axis 1: element (o, c, i) uses channel c.
        let p = PerAxisQParams::new(1, vec![1.0, 0.5, 0.25], vec![0, 1, -1], -127, 127).unwrap();
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut qx = vec![0i8; 12];
        p.quantize_i8(&x, &[2, 3, 2], &mut qx).unwrap();
        let mut expected = vec![0i8; 12];
        for o in 0..2 {
            for c in 0..3 {
                for i in 0..2 {
                    let k = (o * 3 + c) * 2 + i;
                    expected[k] = p.channel(c).unwrap().quantize(x[k]) as i8;
                }
            }
        }
        assert_eq!(qx, expected);
        assert_eq!(&qx[..6], &[0, 1, 5, 7, 15, 19]);
        let mut back = vec![0f32; 12];
        p.dequantize_i8(&qx, &[2, 3, 2], &mut back).unwrap();
        assert_eq!(&back[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn per_axis_shape_errors() {
        let p = PerAxisQParams::new(1, vec![1.0, 1.0], vec![0, 0], -127, 127).unwrap();
        let mut out = vec![0i8; 6];
        assert!(p.quantize_i8(&[0.0; 6], &[2, 3], &mut out).is_err());
        assert!(p.quantize_i8(&[0.0; 6], &[6], &mut out).is_err());
        assert!(p.quantize_i8(&[0.0; 6], &[3, 3], &mut out).is_err());
        assert!(p.quantize_i8(&[0.0; 6], &[3, 2], &mut out).is_ok());
        assert!(p.quantize_i8(&[], &[0, 2], &mut []).is_ok());
        assert!(p.quantize_i8(&[0.0; 6], &[usize::MAX, 2, 2], &mut out).is_err());
    }

    #[test]
    fn dynamic_rows_use_a_nudged_zero_point() {
        let p = dynamic_row_qparams(&[-1.0, 0.5, 2.0]);
        assert_eq!(p.scale(), 3.0f32 / 255.0);
        assert_eq!(p.zero_point(), -43);
        let p = dynamic_row_qparams(&[0.0, 0.0]);
        assert_eq!((p.scale(), p.zero_point()), (f32::EPSILON, 127));
        let p = dynamic_row_qparams(&[f32::NAN, 1.0, f32::INFINITY]);
        assert_eq!((p.scale(), p.zero_point()), (1.0f32 / 255.0, -128));
        let rows = dynamic_per_row_qparams(&[1.0, -1.0, 2.0, 4.0], 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], dynamic_row_qparams(&[2.0, 4.0]));
        assert!(dynamic_per_row_qparams(&[1.0; 5], 2).is_err());
        assert!(dynamic_per_row_qparams(&[1.0; 4], 0).is_err());
    }
}
