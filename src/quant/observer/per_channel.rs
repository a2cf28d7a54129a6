//! Per-channel minimum / maximum observer for weights.

use super::{nothing_observed, Observer};
use crate::qscheme::{BlockLayout, QTensorParams};
use crate::quant::qparams::{PerAxisQParams, QuantScheme};
use crate::{Error, Result};

/// Running minimum and maximum per index of one axis, as PyTorch's
/// `PerChannelMinMaxObserver`; with [`QuantScheme::INT8_WEIGHT`] and axis 0 this is
/// `XNNPACKQuantizer`'s per-channel weight observer. Any axis of any rank is supported.
///
/// Memory: two floats per channel. The channel count is fixed by the first non-empty update.
#[derive(Clone, Debug)]
pub struct PerChannelMinMaxObserver {
    scheme: QuantScheme,
    axis: usize,
    /// Per-channel `(min, max)`; `(+inf, -inf)` for a channel with no finite value yet.
    ranges: Vec<(f32, f32)>,
}

impl PerChannelMinMaxObserver {
    /// A fresh observer for channels along `axis`.
    pub fn new(scheme: QuantScheme, axis: usize) -> Self {
        PerChannelMinMaxObserver {
            scheme,
            axis,
            ranges: Vec::new(),
        }
    }

    /// The channel axis.
    pub fn axis(&self) -> usize {
        self.axis
    }

    /// Per-channel `(min, max)` observed so far (empty before the first update).
    pub fn ranges(&self) -> &[(f32, f32)] {
        &self.ranges
    }

    /// Parameters per channel. Fails if nothing was observed or some channel never had a
    /// finite value.
    pub fn per_axis_qparams(&self) -> Result<PerAxisQParams> {
        if self.ranges.is_empty() {
            return Err(nothing_observed("PerChannelMinMaxObserver"));
        }
        let mut scales = Vec::with_capacity(self.ranges.len());
        let mut zero_points = Vec::with_capacity(self.ranges.len());
        for (c, &(min, max)) in self.ranges.iter().enumerate() {
            if min > max {
                return Err(Error::InvalidState(format!(
                    "PerChannelMinMaxObserver: channel {c} has observed no finite values"
                )));
            }
            let q = self.scheme.qparams_from_range(min, max)?;
            scales.push(q.scale());
            zero_points.push(q.zero_point());
        }
        PerAxisQParams::new(
            self.axis,
            scales,
            zero_points,
            self.scheme.qmin(),
            self.scheme.qmax(),
        )
    }
}

impl Observer for PerChannelMinMaxObserver {
    fn update(&mut self, data: &[f32], shape: &[usize]) -> Result<()> {
        let layout = BlockLayout::new(shape, self.axis, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        if self.ranges.is_empty() {
            self.ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); layout.channels];
        } else if self.ranges.len() != layout.channels {
            return Err(Error::ShapeMismatch(format!(
                "axis {} of shape {shape:?} has {} channels but earlier updates had {}",
                self.axis,
                layout.channels,
                self.ranges.len()
            )));
        }
        for (block, values) in data.chunks(layout.inner).enumerate() {
            let range = &mut self.ranges[block % layout.channels];
            for &x in values.iter().filter(|x| x.is_finite()) {
                range.0 = range.0.min(x);
                range.1 = range.1.max(x);
            }
        }
        Ok(())
    }

    fn qparams(&self) -> Result<QTensorParams> {
        self.per_axis_qparams().map(QTensorParams::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_follow_the_axis() {
        // shape [2, 3]: axis 1 has channels (col 0, col 1, col 2).
        let data = [1.0, -2.0, 0.0, -4.0, 0.5, 0.0];
        let mut obs = PerChannelMinMaxObserver::new(QuantScheme::INT8_WEIGHT, 1);
        obs.update(&data, &[2, 3]).unwrap();
        assert_eq!(obs.ranges(), &[(-4.0, 1.0), (-2.0, 0.5), (0.0, 0.0)]);
        let q = obs.per_axis_qparams().unwrap();
        assert_eq!(q.scales(), &[4.0 / 127.0, 2.0 / 127.0, crate::quant::XNNPACK_EPS]);
        assert_eq!(q.zero_points(), &[0, 0, 0]);
    }

    #[test]
    fn a_channel_count_change_is_an_error() {
        let mut obs = PerChannelMinMaxObserver::new(QuantScheme::INT8_WEIGHT, 0);
        obs.update(&[1.0, 2.0], &[2, 1]).unwrap();
        assert!(obs.update(&[1.0, 2.0, 3.0], &[3, 1]).is_err());
        assert!(obs.update(&[1.0], &[1]).is_err());
        assert!(obs.update(&[1.0, 2.0], &[2]).is_ok());
    }

    #[test]
    fn a_channel_without_finite_values_is_reported() {
        let mut obs = PerChannelMinMaxObserver::new(QuantScheme::INT8_WEIGHT, 0);
        obs.update(&[1.0, f32::NAN], &[2]).unwrap();
        assert!(matches!(obs.per_axis_qparams(), Err(Error::InvalidState(_))));
        obs.update(&[f32::NAN, 3.0], &[2]).unwrap();
        assert_eq!(obs.ranges(), &[(1.0, 1.0), (3.0, 3.0)]);
    }

    #[test]
    fn an_axis_out_of_range_is_an_error() {
        let mut obs = PerChannelMinMaxObserver::new(QuantScheme::INT8_WEIGHT, 2);
        assert!(obs.update(&[1.0, 2.0], &[1, 2]).is_err());
    }
}
