//! The quantization recipe of a tensor ([`QScheme`]): its integer type, the rule that maps
//! an observed range onto it, its granularity and how its scales are stored.

use super::bf16;
use super::choose::RangeRule;
use super::layout::BlockLayout;
use super::tensor_params::QTensorParams;
use super::types::{Granularity, IntType};
use crate::{Error, Result};

/// How scales are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ScaleDtype {
    /// `f32` scales, kept as chosen.
    #[default]
    F32,
    /// bfloat16 scales: rounded (to nearest even) right after they are chosen, before any
    /// value is quantized with them.
    Bf16,
}

impl ScaleDtype {
    /// `scale` as this type stores it (an `f32` holding a bf16 value for [`ScaleDtype::Bf16`]).
    pub fn round(self, scale: f32) -> f32 {
        match self {
            ScaleDtype::F32 => scale,
            ScaleDtype::Bf16 => bf16::to_f32(bf16::from_f32(scale)),
        }
    }
}

/// A complete quantization recipe: what the quantizer is asked for, per weight or
/// activation. The integer type gives the bits and the signedness, the [`RangeRule`] the
/// range and the mapping (symmetric or affine), the [`Granularity`] which elements share a
/// pair, and the [`ScaleDtype`] how scales are stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QScheme {
    storage: IntType,
    rule: RangeRule,
    granularity: Granularity,
    scale_dtype: ScaleDtype,
}

impl QScheme {
    /// Static int8 activations as XNNPACK expects them: affine `[-128, 127]`, per tensor,
    /// `f32` scales.
    pub const INT8_ACTIVATION: QScheme = QScheme {
        storage: IntType::I8,
        rule: RangeRule::INT8_ACTIVATION,
        granularity: Granularity::Tensor,
        scale_dtype: ScaleDtype::F32,
    };

    /// A recipe; fails unless the rule's range lies within the integer type's.
    pub fn new(
        storage: IntType,
        rule: RangeRule,
        granularity: Granularity,
        scale_dtype: ScaleDtype,
    ) -> Result<Self> {
        let full = storage.full_range();
        if rule.qmin() < full.qmin() || rule.qmax() > full.qmax() {
            return Err(Error::invalid_argument(
                "range",
                format!(
                    "[{}, {}] does not fit {}-bit {} integers",
                    rule.qmin(),
                    rule.qmax(),
                    storage.bits(),
                    if storage.is_signed() { "signed" } else { "unsigned" }
                ),
            ));
        }
        Ok(QScheme {
            storage,
            rule,
            granularity,
            scale_dtype,
        })
    }

    /// The same recipe with another granularity.
    pub fn with_granularity(self, granularity: Granularity) -> Self {
        QScheme { granularity, ..self }
    }

    /// The integer type values are stored in.
    pub fn storage(&self) -> IntType {
        self.storage
    }

    /// The static rule: range, mapping and smallest scale.
    pub fn rule(&self) -> RangeRule {
        self.rule
    }

    /// Which elements share a scale and zero point.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// How scales are stored.
    pub fn scale_dtype(&self) -> ScaleDtype {
        self.scale_dtype
    }

    /// The parameters of a constant (weights) of `shape`, row-major: the minimum and
    /// maximum of the finite values of each block of the granularity, then the rule, then
    /// the scale rounded to the scale type. Per tensor and per axis with `f32` scales this
    /// is what the min/max observers give (PyTorch's `MinMaxObserver` and
    /// `PerChannelMinMaxObserver`), bit for bit. Fails if the shape does not match `data`
    /// or a block has no finite value.
    pub fn choose(&self, data: &[f32], shape: &[usize]) -> Result<QTensorParams> {
        let (layout, pairs) = BlockLayout::for_granularity(self.granularity, shape, data.len())?;
        let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); pairs];
        for (&x, p) in data.iter().zip(layout.param_indices()) {
            if x.is_finite() {
                let range = &mut ranges[p];
                range.0 = range.0.min(x);
                range.1 = range.1.max(x);
            }
        }
        let mut scales = Vec::with_capacity(pairs);
        let mut zero_points = Vec::with_capacity(pairs);
        for (block, &(min, max)) in ranges.iter().enumerate() {
            if min > max {
                return Err(Error::InvalidState(format!(
                    "block {block} of a {shape:?} tensor has no finite values"
                )));
            }
            let q = self.rule.qparams_from_range(min, max)?;
            scales.push(self.scale_dtype.round(q.scale()));
            zero_points.push(q.zero_point());
        }
        let range = self.rule.range();
        match self.granularity {
            Granularity::Tensor => QTensorParams::new(Granularity::Tensor, range, scales, zero_points),
            Granularity::Axis(axis) => QTensorParams::per_axis(axis, scales, zero_points, range),
            Granularity::Group { axis, size } => {
                QTensorParams::per_group(axis, size, scales, zero_points, range)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qscheme::{QRange, XNNPACK_EPS as EPS};

    fn weights(granularity: Granularity) -> QScheme {
        QScheme::new(IntType::I8, RangeRule::INT8_WEIGHT, granularity, ScaleDtype::F32).unwrap()
    }

    #[test]
    fn choose_per_tensor_axis_and_group() {
        let data = [1.0, -2.0, 0.0, -4.0, 0.5, f32::NAN];
        let t = weights(Granularity::Tensor).choose(&data, &[2, 3]).unwrap();
        assert_eq!((t.scales(), t.zero_points()), (&[4.0 / 127.0][..], &[0][..]));
        let a = weights(Granularity::Axis(1)).choose(&data, &[2, 3]).unwrap();
        assert_eq!(a.scales(), &[4.0 / 127.0, 2.0 / 127.0, EPS]);
        let finite = [1.0, -2.0, 0.0, -4.0, 0.5, 3.0];
        let g = weights(Granularity::Group { axis: 1, size: 2 })
            .choose(&finite, &[2, 3])
            .unwrap();
        assert_eq!(g.scales(), &[2.0 / 127.0, EPS, 4.0 / 127.0, 3.0 / 127.0]);
        assert!(weights(Granularity::Axis(0))
            .choose(&[f32::NAN, 1.0], &[2])
            .is_err());
        assert!(weights(Granularity::Axis(2)).choose(&data, &[2, 3]).is_err());
    }

    #[test]
    fn bf16_scales_are_rounded_before_use() {
        let s = QScheme::new(
            IntType::I8,
            RangeRule::INT8_WEIGHT,
            Granularity::Tensor,
            ScaleDtype::Bf16,
        )
        .unwrap();
        let p = s.choose(&[1.0, -3.0], &[2]).unwrap();
        let exact = 3.0f32 / 127.0;
        assert_ne!(p.scales()[0], exact);
        assert_eq!(p.scales()[0], bf16::to_f32(bf16::from_f32(exact)));
    }

    #[test]
    fn the_range_must_fit_the_storage() {
        let rule = RangeRule::new(-8, 7, true, 1e-6).unwrap();
        assert!(QScheme::new(IntType::I4, rule, Granularity::Tensor, ScaleDtype::F32).is_ok());
        assert!(QScheme::new(IntType::U4, rule, Granularity::Tensor, ScaleDtype::F32).is_err());
        assert!(QScheme::new(
            IntType::I2,
            RangeRule::INT8_WEIGHT,
            Granularity::Tensor,
            ScaleDtype::F32
        )
        .is_err());
        assert_eq!(QScheme::INT8_ACTIVATION.rule().range(), QRange::I8);
    }
}
