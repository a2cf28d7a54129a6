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
//! [`Error::InvalidState`](crate::Error::InvalidState) (PyTorch silently returns scale 1,
//! zero point 0 with a warning).

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

use super::qparams::{QuantParams, QuantScheme};
use crate::{Error, Result};

/// Something that watches a tensor during calibration and proposes its quantization
/// parameters.
pub trait Observer: fmt::Debug + Send {
    /// Records one value of the tensor. `data` is row-major with dimensions `shape`
    /// (their product must equal `data.len()`). Non-finite values are ignored.
    fn update(&mut self, data: &[f32], shape: &[usize]) -> Result<()>;

    /// The quantization parameters for everything observed so far. Fails with
    /// [`Error::InvalidState`] if no finite value has been observed.
    fn qparams(&self) -> Result<QuantParams>;
}

/// Which observer to build, with its settings. [`ObserverConfig::build`] pairs it with a
/// [`QuantScheme`].
#[derive(Clone, Debug, PartialEq)]
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
