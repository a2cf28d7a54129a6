//! Observers: they watch the float values a tensor takes during calibration and turn what
//! they saw into quantization parameters.
//!
//! Every observer follows PyTorch's (torchao `quantization.pt2e`) or ONNX Runtime's
//! semantics, named in its own documentation, with two deliberate rules common to all:
//!
//! - **Non-finite values are ignored.** NaN and ±infinity never widen a range or enter a
//!   histogram (PyTorch's histogram observer drops infinities too; its min/max observers
//!   would propagate them and produce an unusable scale). A batch with no finite value is a
//!   no-op, and so is an empty batch.
//! - **Memory is bounded** by the observer's configuration (bins, channels), never by how
//!   much data it has seen.
//!
//! Asking an observer that has seen no finite value for parameters is an
//! [`Error::InvalidState`] (PyTorch silently returns scale 1,
//! zero point 0 with a warning).
//!
//! ExecuTorch's `get_symmetric_quantization_config(is_per_channel, is_dynamic)` maps to:
//!
//! | tensor                         | observer                                   | scheme                          |
//! |--------------------------------|--------------------------------------------|---------------------------------|
//! | static activation              | [`ObserverConfig::HISTOGRAM`] (2048 bins)   | [`QuantScheme::INT8_ACTIVATION`] |
//! | weight, `is_per_channel=True`  | [`ObserverConfig::PerChannelMinMax`] axis 0 | [`QuantScheme::INT8_WEIGHT`]     |
//! | weight, `is_per_channel=False` | [`ObserverConfig::MinMax`]                  | [`QuantScheme::INT8_WEIGHT`]     |
//! | dynamic activation             | none: per row at run time, [`RowRule::Qd8`](crate::qscheme::RowRule::Qd8) | |
//!
//! The axis is 1 for transposed-convolution weights (`IOHW`). Bias stays float.

mod entropy;
mod histogram;
mod minmax;
mod per_channel;
mod percentile;
mod range_histograms;

pub use entropy::EntropyObserver;
pub use histogram::HistogramObserver;
pub use minmax::{MinMaxObserver, MovingAverageMinMaxObserver};
pub use per_channel::PerChannelMinMaxObserver;
pub use percentile::{PercentileObserver, PercentileTails};

use std::fmt;

use super::qparams::QuantScheme;
use crate::qscheme::{check_element_count, QTensorParams};
use crate::{Error, Result};

/// Something that watches a tensor during calibration and proposes its quantization
/// parameters.
pub trait Observer: fmt::Debug + Send {
    /// Records one value of the tensor. `data` is row-major with dimensions `shape`
    /// (their product must equal `data.len()`). Non-finite values are ignored.
    fn update(&mut self, data: &[f32], shape: &[usize]) -> Result<()>;

    /// The quantization parameters for everything observed so far. Fails with
    /// [`Error::InvalidState`] if no finite value has been observed.
    fn qparams(&self) -> Result<QTensorParams>;
}

/// Implements [`Observer`] for per-tensor observers, each with an inherent
/// `observe(&mut self, &[f32])` and `per_tensor_qparams(&self) -> Result<QParams>`.
macro_rules! per_tensor_observers {
    ($($observer:ty),+ $(,)?) => {$(
        impl Observer for $observer {
            fn update(&mut self, data: &[f32], shape: &[usize]) -> Result<()> {
                check_element_count(shape, data.len())?;
                self.observe(data);
                Ok(())
            }

            fn qparams(&self) -> Result<QTensorParams> {
                self.per_tensor_qparams().map(QTensorParams::from)
            }
        }
    )+};
}

per_tensor_observers!(
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    HistogramObserver,
    PercentileObserver,
    EntropyObserver,
);

/// Which observer to build, with its settings. [`ObserverConfig::build`] pairs it with a
/// [`QuantScheme`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ObserverConfig {
    /// Running minimum and maximum ([`MinMaxObserver`]).
    MinMax,
    /// Exponential moving average of each batch's minimum and maximum
    /// ([`MovingAverageMinMaxObserver`]).
    MovingAverageMinMax {
        /// Weight of the newest batch, in `(0, 1]`; PyTorch's default is 0.01.
        averaging_constant: f32,
    },
    /// Running minimum and maximum per index of `axis` ([`PerChannelMinMaxObserver`]).
    PerChannelMinMax {
        /// The channel axis (0 for conv OIHW and linear weights, 1 for transposed conv).
        axis: usize,
    },
    /// PyTorch's L2-minimizing histogram observer ([`HistogramObserver`]).
    Histogram {
        /// Number of histogram bins; PyTorch's default is 2048.
        bins: usize,
    },
    /// Percentile clipping ([`PercentileObserver`]).
    Percentile {
        /// Percentage of values kept, in `(0, 100]` (e.g. 99.99).
        percentile: f64,
        /// Whether the percentile is taken of `|x|` or of each tail.
        tails: PercentileTails,
        /// Initial number of histogram bins (ONNX Runtime's default is 2048).
        bins: usize,
    },
    /// TensorRT-style KL-divergence calibration, as ONNX Runtime implements it
    /// ([`EntropyObserver`]).
    Entropy {
        /// Initial number of histogram bins over `[-max|x|, max|x|]`.
        bins: usize,
        /// Number of quantized bins each candidate range is compressed to.
        quantized_bins: usize,
    },
}

impl ObserverConfig {
    /// PyTorch's default histogram observer (2048 bins), used by `XNNPACKQuantizer` for
    /// static activations.
    pub const HISTOGRAM: ObserverConfig = ObserverConfig::Histogram {
        bins: HistogramObserver::DEFAULT_BINS,
    };

    /// PyTorch's default moving-average min/max observer (averaging constant 0.01).
    pub const MOVING_AVERAGE_MIN_MAX: ObserverConfig = ObserverConfig::MovingAverageMinMax {
        averaging_constant: MovingAverageMinMaxObserver::DEFAULT_AVERAGING_CONSTANT,
    };

    /// 99.99th percentile of `|x|` over a 2048-bin histogram.
    pub const PERCENTILE: ObserverConfig = ObserverConfig::Percentile {
        percentile: PercentileObserver::DEFAULT_PERCENTILE,
        tails: PercentileTails::Absolute,
        bins: PercentileObserver::DEFAULT_BINS,
    };

    /// KL-divergence calibration with 2048 histogram bins and 128 quantized bins.
    pub const ENTROPY: ObserverConfig = ObserverConfig::Entropy {
        bins: EntropyObserver::DEFAULT_BINS,
        quantized_bins: EntropyObserver::DEFAULT_QUANTIZED_BINS,
    };

    /// Builds a fresh observer that produces parameters in `scheme`. Fails if a setting is
    /// out of range or the observer does not support the scheme.
    pub fn build(&self, scheme: QuantScheme) -> Result<Box<dyn Observer>> {
        Ok(match *self {
            ObserverConfig::MinMax => Box::new(MinMaxObserver::new(scheme)),
            ObserverConfig::MovingAverageMinMax { averaging_constant } => {
                Box::new(MovingAverageMinMaxObserver::new(scheme, averaging_constant)?)
            }
            ObserverConfig::PerChannelMinMax { axis } => {
                Box::new(PerChannelMinMaxObserver::new(scheme, axis))
            }
            ObserverConfig::Histogram { bins } => Box::new(HistogramObserver::new(scheme, bins)?),
            ObserverConfig::Percentile {
                percentile,
                tails,
                bins,
            } => Box::new(PercentileObserver::new(scheme, percentile, tails, bins)?),
            ObserverConfig::Entropy { bins, quantized_bins } => {
                Box::new(EntropyObserver::new(scheme, bins, quantized_bins)?)
            }
        })
    }
}

/// The error every observer returns when asked for parameters before seeing finite data.
fn nothing_observed(observer: &str) -> Error {
    Error::InvalidState(format!(
        "{observer} has observed no finite values; run calibration before asking for qparams"
    ))
}

/// Narrows a clipping range `[lo, hi]` to the observed `[min, max]`.
///
/// If every value has one sign and the clip point falls inside the gap between zero and
/// the smallest magnitude, the narrowed bounds cross; the bound on the far side of zero is
/// then moved onto the other one. Quantization parameters always cover zero, so this gives
/// the range ONNX Runtime quantizes to (`[0, hi]` or `[lo, 0]`).
fn narrow_to_observed((lo, hi): (f32, f32), (min, max): (f32, f32)) -> (f32, f32) {
    let (lo, hi) = (lo.max(min), hi.min(max));
    match (lo > hi, hi >= 0.0) {
        (false, _) => (lo, hi),
        (true, true) => (hi, hi),
        (true, false) => (lo, lo),
    }
}

/// Validates a histogram bin count against `[min, MAX_BINS]`.
fn check_bins(name: &'static str, bins: usize, min: usize) -> Result<()> {
    if bins < min || bins > MAX_BINS {
        return Err(Error::invalid_argument(
            name,
            format!("must be in [{min}, {MAX_BINS}], got {bins}"),
        ));
    }
    Ok(())
}

/// Upper bound on any configured bin count (keeps observer memory small and bounded).
const MAX_BINS: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::XNNPACK_EPS;

    /// Every per-tensor observer (percentile and entropy with 256 bins to keep debug tests fast).
    fn all_per_tensor_configs() -> Vec<ObserverConfig> {
        vec![
            ObserverConfig::MinMax,
            ObserverConfig::MovingAverageMinMax {
                averaging_constant: 0.01,
            },
            ObserverConfig::HISTOGRAM,
            ObserverConfig::Percentile {
                percentile: 99.99,
                tails: PercentileTails::Absolute,
                bins: 256,
            },
            ObserverConfig::Percentile {
                percentile: 99.99,
                tails: PercentileTails::Both,
                bins: 256,
            },
            ObserverConfig::Entropy {
                bins: 256,
                quantized_bins: 128,
            },
        ]
    }

    #[test]
    fn all_zeros_give_the_smallest_scale() {
        for config in all_per_tensor_configs() {
            let mut obs = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
            obs.update(&[0.0; 12], &[3, 4]).unwrap();
            let q = obs.qparams().unwrap();
            let q = q.as_per_tensor().unwrap();
            assert_eq!((q.scale(), q.zero_point()), (XNNPACK_EPS, -128), "{config:?}");
        }
    }

    #[test]
    fn a_single_value_covers_zero_and_at_most_the_value() {
        for value in [3.0f32, -3.0] {
            for config in all_per_tensor_configs() {
                let mut obs = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
                obs.update(&[value], &[1]).unwrap();
                let q = obs.qparams().unwrap();
                let q = q.as_per_tensor().unwrap();
                // Min/max-like observers give exactly 3/255; histogram observers may clip at
                // a bin edge just inside the value.
                assert!(
                    q.scale() <= 3.0 / 255.0 && q.scale() > 2.9 / 255.0,
                    "{config:?}: {q:?}"
                );
                let expected_zp = if value > 0.0 { -128 } else { 127 };
                assert_eq!(q.zero_point(), expected_zp, "{config:?} {value}");
            }
        }
    }

    #[test]
    fn no_finite_data_is_an_invalid_state() {
        let mut configs = all_per_tensor_configs();
        configs.push(ObserverConfig::PerChannelMinMax { axis: 0 });
        for config in configs {
            let mut obs = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
            assert!(matches!(obs.qparams(), Err(Error::InvalidState(_))), "{config:?}");
            obs.update(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY], &[3])
                .unwrap();
            obs.update(&[], &[0, 5]).unwrap();
            let result = obs.qparams();
            assert!(
                matches!(result, Err(Error::InvalidState(_))),
                "{config:?}: {result:?}"
            );
        }
    }

    #[test]
    fn non_finite_values_do_not_change_the_result() {
        let clean: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 25.0 - 1.5).collect();
        let mut dirty = clean.clone();
        dirty.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        for config in all_per_tensor_configs() {
            let mut a = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
            let mut b = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
            a.update(&clean, &[clean.len()]).unwrap();
            b.update(&dirty, &[dirty.len()]).unwrap();
            assert_eq!(a.qparams().unwrap(), b.qparams().unwrap(), "{config:?}");
        }
    }

    #[test]
    fn named_configs_build() {
        for config in [
            ObserverConfig::HISTOGRAM,
            ObserverConfig::MOVING_AVERAGE_MIN_MAX,
            ObserverConfig::PERCENTILE,
            ObserverConfig::ENTROPY,
        ] {
            let mut obs = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
            obs.update(&[-1.0, 0.5, 2.0], &[3]).unwrap();
            let q = obs.qparams().unwrap();
            assert!(q.as_per_tensor().is_some(), "{config:?}");
        }
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let s = QuantScheme::INT8_ACTIVATION;
        let bad = [
            ObserverConfig::MovingAverageMinMax {
                averaging_constant: 0.0,
            },
            ObserverConfig::Histogram { bins: 0 },
            ObserverConfig::Histogram { bins: MAX_BINS + 1 },
            ObserverConfig::Percentile {
                percentile: 101.0,
                tails: PercentileTails::Absolute,
                bins: 2048,
            },
            ObserverConfig::Entropy {
                bins: 100,
                quantized_bins: 128,
            },
        ];
        for config in bad {
            assert!(
                matches!(config.build(s), Err(Error::InvalidArgument { .. })),
                "{config:?}"
            );
        }
    }

    #[test]
    fn extreme_values_and_jumps_never_panic() {
        let batches: [&[f32]; 5] = [
            &[1e-30, -1e-30],
            &[3e30, -1.0],
            &[f32::MAX, 1.0],
            &[f32::MIN, f32::MIN_POSITIVE],
            &[0.5],
        ];
        for config in all_per_tensor_configs() {
            let mut obs = config.build(QuantScheme::INT8_ACTIVATION).unwrap();
            for (i, batch) in batches.iter().enumerate() {
                obs.update(batch, &[batch.len()]).unwrap();
                // A range as wide as f32 has no finite scale: an error, never a panic.
                if let Ok(q) = obs.qparams() {
                    let q = q.as_per_tensor().unwrap().to_owned();
                    assert!(q.scale().is_finite() && q.scale() > 0.0, "{config:?} batch {i}");
                }
            }
        }
    }

    #[test]
    fn narrowing_keeps_bounds_ordered() {
        assert_eq!(narrow_to_observed((-2.0, 2.0), (-1.0, 3.0)), (-1.0, 2.0));
        assert_eq!(narrow_to_observed((-2.9, 2.9), (3.0, 3.0)), (2.9, 2.9));
        assert_eq!(narrow_to_observed((-2.9, 2.9), (-3.0, -3.0)), (-2.9, -2.9));
    }

    #[test]
    fn histogram_memory_stays_bounded_while_the_range_keeps_growing() {
        let mut percentile = PercentileObserver::new(
            QuantScheme::INT8_ACTIVATION,
            99.0,
            PercentileTails::Absolute,
            PercentileObserver::DEFAULT_BINS,
        )
        .unwrap();
        let mut two_tailed =
            PercentileObserver::new(QuantScheme::INT8_ACTIVATION, 99.0, PercentileTails::Both, 256).unwrap();
        let mut entropy = EntropyObserver::new(QuantScheme::INT8_ACTIVATION, 256, 128).unwrap();
        let mut histogram = HistogramObserver::new(QuantScheme::INT8_ACTIVATION, 2048).unwrap();
        for k in 0..60 {
            let scale = 1.5f32.powi(k);
            let batch: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * scale).collect();
            percentile.observe(&batch);
            two_tailed.observe(&batch);
            entropy.observe(&batch);
            histogram.observe(&batch);
        }
        assert!(percentile.bin_count() <= 8 * PercentileObserver::DEFAULT_BINS);
        assert!(two_tailed.bin_count() <= 8 * 256 + 2);
        assert!(entropy.bin_count() <= 8 * 256 + 2);
        assert_eq!(histogram.histogram().len(), 2048);
        for q in [
            percentile.per_tensor_qparams(),
            two_tailed.per_tensor_qparams(),
            entropy.per_tensor_qparams(),
            histogram.per_tensor_qparams(),
        ] {
            let q = q.unwrap();
            assert!(q.scale().is_finite() && q.scale() > 0.0);
        }
    }
}
