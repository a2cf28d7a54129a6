//! Per-tensor observers that track a minimum and a maximum.

use super::nothing_observed;
use crate::qscheme::finite_min_max;
use crate::quant::qparams::{QParams, QuantScheme};
use crate::{Error, Result};

/// Running minimum and maximum of every finite value seen, as PyTorch's `MinMaxObserver`.
/// `XNNPACKQuantizer` uses it, with [`QuantScheme::INT8_WEIGHT`], for per-tensor weights.
#[derive(Clone, Debug)]
pub struct MinMaxObserver {
    scheme: QuantScheme,
    range: Option<(f32, f32)>,
}

impl MinMaxObserver {
    /// A fresh observer producing parameters in `scheme`.
    pub fn new(scheme: QuantScheme) -> Self {
        MinMaxObserver { scheme, range: None }
    }

    /// Records the finite values of `data` (any shape).
    pub fn observe(&mut self, data: &[f32]) {
        if let Some((lo, hi)) = finite_min_max(data) {
            self.range = Some(match self.range {
                None => (lo, hi),
                Some((min, max)) => (min.min(lo), max.max(hi)),
            });
        }
    }

    /// The observed `(min, max)`, if any finite value was seen.
    pub fn range(&self) -> Option<(f32, f32)> {
        self.range
    }

    /// Parameters for the observed range (see [`QuantScheme::qparams_from_range`]).
    pub fn per_tensor_qparams(&self) -> Result<QParams> {
        let (min, max) = self.range.ok_or_else(|| nothing_observed("MinMaxObserver"))?;
        self.scheme.qparams_from_range(min, max)
    }
}

/// Exponential moving average of each batch's minimum and maximum, as PyTorch's
/// `MovingAverageMinMaxObserver`: the first batch sets the range, every later batch moves it
/// by `range += c * (batch_range - range)` (in `f32`, with `c` the averaging constant).
#[derive(Clone, Debug)]
pub struct MovingAverageMinMaxObserver {
    scheme: QuantScheme,
    averaging_constant: f32,
    range: Option<(f32, f32)>,
}

impl MovingAverageMinMaxObserver {
    /// PyTorch's default averaging constant.
    pub const DEFAULT_AVERAGING_CONSTANT: f32 = 0.01;

    /// A fresh observer; `averaging_constant` must be in `(0, 1]` (1 keeps only the last batch).
    pub fn new(scheme: QuantScheme, averaging_constant: f32) -> Result<Self> {
        if !(averaging_constant > 0.0 && averaging_constant <= 1.0) {
            return Err(Error::invalid_argument(
                "averaging_constant",
                format!("must be in (0, 1], got {averaging_constant}"),
            ));
        }
        Ok(MovingAverageMinMaxObserver {
            scheme,
            averaging_constant,
            range: None,
        })
    }

    /// Records one batch: its finite minimum and maximum update the averages.
    pub fn observe(&mut self, data: &[f32]) {
        let Some((lo, hi)) = finite_min_max(data) else {
            return;
        };
        let c = self.averaging_constant;
        self.range = Some(match self.range {
            None => (lo, hi),
            Some((min, max)) => (min + c * (lo - min), max + c * (hi - max)),
        });
    }

    /// The averaged `(min, max)`, if any finite value was seen.
    pub fn range(&self) -> Option<(f32, f32)> {
        self.range
    }

    /// Parameters for the averaged range (see [`QuantScheme::qparams_from_range`]).
    pub fn per_tensor_qparams(&self) -> Result<QParams> {
        let (min, max) = self
            .range
            .ok_or_else(|| nothing_observed("MovingAverageMinMaxObserver"))?;
        self.scheme.qparams_from_range(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::observer::Observer;

    #[test]
    fn min_max_tracks_the_running_range_and_ignores_non_finite_values() {
        let mut obs = MinMaxObserver::new(QuantScheme::INT8_ACTIVATION);
        assert!(obs.per_tensor_qparams().is_err());
        obs.observe(&[0.5, f32::NAN, 2.0]);
        obs.observe(&[f32::INFINITY, -1.0, f32::NEG_INFINITY]);
        obs.observe(&[f32::NAN]);
        obs.observe(&[]);
        assert_eq!(obs.range(), Some((-1.0, 2.0)));
        let q = obs.per_tensor_qparams().unwrap();
        assert_eq!(q.scale(), 3.0f32 / 255.0);
        // -128 - round(-1 / (3/255)) = -128 + 85 = -43
        assert_eq!(q.zero_point(), -43);
    }

    #[test]
    fn moving_average_starts_from_the_first_batch() {
        let mut obs = MovingAverageMinMaxObserver::new(QuantScheme::INT8_ACTIVATION, 0.5).unwrap();
        obs.observe(&[-2.0, 4.0]);
        assert_eq!(obs.range(), Some((-2.0, 4.0)));
        obs.observe(&[0.0, 8.0]);
        assert_eq!(obs.range(), Some((-1.0, 6.0)));
        obs.observe(&[f32::NAN]);
        assert_eq!(obs.range(), Some((-1.0, 6.0)));
    }

    #[test]
    fn moving_average_rejects_bad_constants() {
        for c in [0.0, -0.1, 1.5, f32::NAN] {
            assert!(MovingAverageMinMaxObserver::new(QuantScheme::INT8_ACTIVATION, c).is_err());
        }
    }

    #[test]
    fn update_checks_the_shape() {
        let mut obs = MinMaxObserver::new(QuantScheme::INT8_ACTIVATION);
        assert!(obs.update(&[1.0, 2.0], &[3]).is_err());
        assert!(obs.update(&[1.0, 2.0], &[1, 2]).is_ok());
    }
}
