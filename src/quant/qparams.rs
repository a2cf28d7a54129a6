//! Affine quantization parameters and the quantize / dequantize helpers (DESIGN §3). The
//! per-tensor parameters and the static rule are [`crate::qscheme`]'s
//! ([`RangedQParams`](crate::qscheme::RangedQParams), [`RangeRule`](crate::qscheme::RangeRule)),
//! re-exported here under the quantizer's names [`QParams`] and [`QuantScheme`].
//!
//! A real value `x` maps to the integer `q = clamp(round_half_even(x / scale) + zero_point,
//! qmin, qmax)` (ONNX `QuantizeLinear`) and back to `(q - zero_point) * scale`
//! (`DequantizeLinear`). All arithmetic is `f32`, in the order PyTorch's observers use, so
//! scales derived here equal PyTorch's bit for bit on the same range.

use crate::qscheme::{row_qparams, Granularity, QRange, QTensorParams, RowRule};
/// The quantizer's names for the static rule and the per-tensor parameters (defined in
/// [`crate::qscheme`]).
pub use crate::qscheme::{RangeRule as QuantScheme, RangedQParams as QParams, XNNPACK_EPS};
use crate::{Error, Result};

/// Quantization parameters with one scale and zero point per index of `axis`
/// (per output channel for weights): [`QTensorParams`] checked to be per axis.
#[derive(Clone, Debug, PartialEq)]
pub struct PerAxisQParams(QTensorParams);

impl PerAxisQParams {
    /// Checks that there is at least one channel, `scales` and `zero_points` have equal
    /// lengths, and every channel is valid as in [`QParams::new`].
    pub fn new(axis: usize, scales: Vec<f32>, zero_points: Vec<i32>, qmin: i32, qmax: i32) -> Result<Self> {
        let range = QRange::new_unchecked(qmin, qmax);
        QTensorParams::per_axis(axis, scales, zero_points, range).map(PerAxisQParams)
    }

    /// The axis the parameters vary along.
    pub fn axis(&self) -> usize {
        match self.0.granularity() {
            Granularity::Axis(axis) => axis,
            // The constructor only builds per-axis parameters.
            _ => unreachable!("PerAxisQParams holds per-axis parameters"),
        }
    }

    /// One scale per channel.
    pub fn scales(&self) -> &[f32] {
        self.0.scales()
    }

    /// One zero point per channel.
    pub fn zero_points(&self) -> &[i32] {
        self.0.zero_points()
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.0.scales().len()
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.0.qmin()
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.0.qmax()
    }

    /// The per-tensor parameters of channel `c`, if it exists.
    pub fn channel(&self, c: usize) -> Option<QParams> {
        Some(QParams::new_unchecked(
            *self.scales().get(c)?,
            self.zero_points()[c],
            self.qmin(),
            self.qmax(),
        ))
    }

    /// The parameters as a [`QTensorParams`].
    pub fn as_tensor_params(&self) -> &QTensorParams {
        &self.0
    }

    /// Quantizes a tensor of `shape` (row-major) channel by channel into `output`.
    pub fn quantize_i8(&self, input: &[f32], shape: &[usize], output: &mut [i8]) -> Result<()> {
        self.0.quantize_i8(input, shape, output)
    }

    /// Dequantizes a tensor of `shape` (row-major) channel by channel into `output`.
    pub fn dequantize_i8(&self, input: &[i8], shape: &[usize], output: &mut [f32]) -> Result<()> {
        self.0.dequantize_i8(input, shape, output)
    }
}

impl From<PerAxisQParams> for QTensorParams {
    fn from(p: PerAxisQParams) -> Self {
        p.0
    }
}

/// Dynamic (run-time) int8 parameters for one row by PyTorch's
/// `choose_qparams_per_token_asymmetric` ([`RowRule::TorchPerToken`]):
/// `rmin = min(0, min row)`, `rmax = max(0, max row)`,
/// `scale = max((rmax - rmin) / 255, f32::EPSILON)`, and a "nudged" zero point: whichever of
/// `-128 - rmin / scale` and `127 - rmax / scale` has the smaller rounding error, clamped
/// to `[-128, 127]` and rounded half to even.
///
/// Non-finite values are ignored; a row without finite values is treated as all zeros.
///
/// This is the reference to compare with torch. Programs do not run it: the kernels
/// quantize rows with [`RowRule::Qd8`] (no nudge, scale 1 for a zero row), which can give
/// a different zero point (by one) or scale at the edges.
pub fn dynamic_row_qparams(row: &[f32]) -> QParams {
    let p = row_qparams(row, RowRule::TorchPerToken);
    QParams::new_unchecked(p.scale, p.zero_point, -128, 127)
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
