//! Percentile calibration, as ONNX Runtime's `CalibrationMethod.Percentile`.

use super::range_histograms::{AbsHistogram, SymmetricHistogram};
use super::{check_bins, narrow_to_observed, nothing_observed};
use crate::qscheme::finite_min_max;
use crate::quant::qparams::{QParams, QuantScheme};
use crate::{Error, Result};

/// Which part of the distribution a [`PercentileObserver`] clips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PercentileTails {
    /// Keep `p`% of `|x|`: the range is `[-t, t]` with `t` the `p`-th percentile of `|x|`,
    /// narrowed to the observed `[min, max]` (ONNX Runtime's default, `symmetric=True`).
    Absolute,
    /// Drop `(100 - p) / 2`% from each tail of the signed distribution, binned over
    /// `[-max|x|, max|x|]` (ONNX Runtime's `symmetric=False`).
    Both,
}

/// Clips the range at a percentile of the observed values.
///
/// Algorithm (ONNX Runtime's `HistogramCollector.compute_percentile`): values are counted in
/// a histogram that starts with `bins` bins over the first batch's range and appends bins
/// of the same width as later batches exceed it (see `range_histograms` for the growth
/// limit). The clipping point is the *left edge* of the first bin at which the cumulative
/// fraction of values reaches the requested one, and the resulting range is narrowed to
/// the observed `[min, max]`.
///
/// Differences from ONNX Runtime: the `|x|` histogram starts at 0 rather than at the first
/// batch's smallest `|x|` (ONNX Runtime drops later values below that edge), and bins are
/// merged pairwise once the histogram has grown to 8 times its initial size.
#[derive(Clone, Debug)]
pub struct PercentileObserver {
    scheme: QuantScheme,
    percentile: f64,
    histogram: TailHistogram,
    range: Option<(f32, f32)>,
}

#[derive(Clone, Debug)]
enum TailHistogram {
    Absolute(AbsHistogram),
    Both(SymmetricHistogram),
}

impl PercentileObserver {
    /// The percentile the C API and the quantizer use unless told otherwise.
    pub const DEFAULT_PERCENTILE: f64 = 99.99;
    /// ONNX Runtime's default initial bin count for percentile calibration.
    pub const DEFAULT_BINS: usize = 2048;

    /// A fresh observer keeping `percentile` % (in `(0, 100]`) of the values. `bins` is the
    /// initial bin count (at least 2, and even for [`PercentileTails::Both`]).
    pub fn new(scheme: QuantScheme, percentile: f64, tails: PercentileTails, bins: usize) -> Result<Self> {
        if !(percentile > 0.0 && percentile <= 100.0) {
            return Err(Error::invalid_argument(
                "percentile",
                format!("must be in (0, 100], got {percentile}"),
            ));
        }
        check_bins("bins", bins, 2)?;
        let histogram = match tails {
            PercentileTails::Absolute => TailHistogram::Absolute(AbsHistogram::new(bins)),
            PercentileTails::Both => {
                if !bins.is_multiple_of(2) {
                    return Err(Error::invalid_argument(
                        "bins",
                        format!("must be even, got {bins}"),
                    ));
                }
                TailHistogram::Both(SymmetricHistogram::new(bins))
            }
        };
        Ok(PercentileObserver {
            scheme,
            percentile,
            histogram,
            range: None,
        })
    }

    /// Records the finite values of one batch.
    pub fn observe(&mut self, data: &[f32]) {
        let Some((lo, hi)) = finite_min_max(data) else {
            return;
        };
        let max_abs = lo.abs().max(hi.abs());
        match &mut self.histogram {
            TailHistogram::Absolute(h) => h.add(data, max_abs),
            TailHistogram::Both(h) => h.add(data, max_abs),
        }
        self.range = Some(match self.range {
            None => (lo, hi),
            Some((min, max)) => (min.min(lo), max.max(hi)),
        });
    }

    /// The range of all finite values observed so far.
    pub fn observed_range(&self) -> Option<(f32, f32)> {
        self.range
    }

    /// Current number of histogram bins (bounded by 8 times the initial count).
    pub fn bin_count(&self) -> usize {
        match &self.histogram {
            TailHistogram::Absolute(h) => h.bin_count(),
            TailHistogram::Both(h) => h.counts().len(),
        }
    }

    /// The clipped range, if anything was observed.
    pub fn clipped_range(&self) -> Option<(f32, f32)> {
        let (min, max) = self.range?;
        let (lo, hi) = match &self.histogram {
            TailHistogram::Absolute(h) => {
                let t = h.quantile_edge(self.percentile / 100.0)?;
                (-t, t)
            }
            TailHistogram::Both(h) => {
                let cut = (100.0 - self.percentile) / 200.0;
                let left = h.quantile_edge_index(cut);
                let right = h.quantile_edge_index(1.0 - cut);
                (h.edge(left), h.edge(right))
            }
        };
        Some(narrow_to_observed((lo, hi), (min, max)))
    }

    /// Parameters for [`Self::clipped_range`].
    pub fn per_tensor_qparams(&self) -> Result<QParams> {
        let (min, max) = self
            .clipped_range()
            .ok_or_else(|| nothing_observed("PercentileObserver"))?;
        self.scheme.qparams_from_range(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<f32> {
        // -999..=1000 in steps of 1: 2000 values.
        (-999..=1000).map(|i| i as f32).collect()
    }

    #[test]
    fn absolute_percentile_clips_both_sides_symmetrically() {
        let mut obs = PercentileObserver::new(
            QuantScheme::INT8_ACTIVATION,
            90.0,
            PercentileTails::Absolute,
            1000,
        )
        .unwrap();
        obs.observe(&ramp());
        // |x| bins of width 1; 90% of 2000 values = 1800 have |x| < 900 plus the 1800th
        // value, which lies in bin 899 or 900: the left edge is 899 or 900.
        let (lo, hi) = obs.clipped_range().unwrap();
        assert!((899.0..=900.0).contains(&hi), "hi = {hi}");
        assert_eq!(lo, -hi);
    }

    #[test]
    fn two_tailed_percentile_cuts_each_tail() {
        let mut obs =
            PercentileObserver::new(QuantScheme::INT8_ACTIVATION, 90.0, PercentileTails::Both, 2000).unwrap();
        obs.observe(&ramp());
        // 5% = 100 values cut per side; bins of width 1 over [-1000, 1000].
        let (lo, hi) = obs.clipped_range().unwrap();
        assert!((-901.0..=-899.0).contains(&lo), "lo = {lo}");
        assert!((899.0..=901.0).contains(&hi), "hi = {hi}");
    }

    #[test]
    fn the_range_is_narrowed_to_the_observed_values() {
        let mut obs =
            PercentileObserver::new(QuantScheme::INT8_ACTIVATION, 100.0, PercentileTails::Absolute, 64)
                .unwrap();
        obs.observe(&[0.0, 0.5, 2.0, 1.0]);
        // |x| bins of width 2/64; 2.0 lies in the last bin, whose left edge is 63/32.
        assert_eq!(obs.clipped_range(), Some((0.0, 63.0 / 32.0)));
    }

    #[test]
    fn settings_are_validated() {
        let s = QuantScheme::INT8_ACTIVATION;
        assert!(PercentileObserver::new(s, 0.0, PercentileTails::Absolute, 64).is_err());
        assert!(PercentileObserver::new(s, 100.5, PercentileTails::Absolute, 64).is_err());
        assert!(PercentileObserver::new(s, f64::NAN, PercentileTails::Absolute, 64).is_err());
        assert!(PercentileObserver::new(s, 99.0, PercentileTails::Both, 63).is_err());
        assert!(PercentileObserver::new(s, 99.0, PercentileTails::Absolute, 1).is_err());
    }

    #[test]
    fn all_zeros_give_an_empty_range() {
        let mut obs =
            PercentileObserver::new(QuantScheme::INT8_ACTIVATION, 99.0, PercentileTails::Absolute, 64)
                .unwrap();
        obs.observe(&[0.0; 10]);
        assert_eq!(obs.clipped_range(), Some((0.0, 0.0)));
        let q = obs.per_tensor_qparams().unwrap();
        assert_eq!(q.scale(), crate::quant::XNNPACK_EPS);
        assert_eq!(q.zero_point(), -128);
    }
}
