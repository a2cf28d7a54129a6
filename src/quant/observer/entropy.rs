//! Entropy (KL-divergence) calibration, TensorRT-style, as ONNX Runtime's
//! `CalibrationMethod.Entropy` implements it.

use super::range_histograms::SymmetricHistogram;
use super::{check_bins, narrow_to_observed, nothing_observed};
use crate::qscheme::finite_min_max;
use crate::quant::qparams::{QParams, QuantScheme};
use crate::{Error, Result};

/// Chooses the range whose quantized histogram loses the least information (smallest
/// Kullback-Leibler divergence).
///
/// Algorithm (ONNX Runtime's `HistogramCollector.get_entropy_threshold`, after TensorRT's
/// 8-bit calibration):
///
/// 1. Count values in a histogram over `[-T, T]`, `T = max |x|`, starting with `bins`
///    bins (even) and growing symmetrically as later batches exceed `T`.
/// 2. For every candidate `i` from `quantized_bins / 2` to `n / 2`: take the `2i + 1` bins
///    `n/2 - i ..= n/2 + i` (fewer at the top end) as `P`, with the mass outside added to
///    its first and last bin; merge the candidate bins (without the outside mass) into
///    `quantized_bins` groups of `len / quantized_bins` bins (the remainder joins the last
///    group); `Q` gives every bin of a group the group's sum divided by the number of
///    non-zero `P` bins in it, truncated to an integer (bins past the last whole group stay 0).
/// 3. Smooth both (zeros become `1e-4`, the same total is taken off the non-zero bins),
///    normalise, and compute `KL(P || Q) = Σ p ln(p / q)` in f32.
/// 4. The candidate with the smallest divergence (the first, on ties) gives the range
///    `[edge(start), edge(end)]`, narrowed to the observed `[min, max]`.
///
/// ONNX Runtime's quirks are kept on purpose (outside mass only in `P`, integer truncation
/// of `Q`) so results match it; a candidate whose smoothing fails (ONNX Runtime would
/// assert) is skipped. Bins are merged pairwise once the histogram has grown to 8 times its
/// initial size, so memory stays bounded. Cost: `O(n²)` per [`Self::clipped_range`] call.
#[derive(Clone, Debug)]
pub struct EntropyObserver {
    scheme: QuantScheme,
    quantized_bins: usize,
    histogram: SymmetricHistogram,
    range: Option<(f32, f32)>,
}

impl EntropyObserver {
    /// Initial histogram bins (TensorRT's choice; ONNX Runtime defaults to 128, which leaves
    /// a single candidate and makes the method equal to min/max).
    pub const DEFAULT_BINS: usize = 2048;
    /// Quantized bins per candidate (ONNX Runtime's and TensorRT's default).
    pub const DEFAULT_QUANTIZED_BINS: usize = 128;
    /// Value that smoothing gives to empty bins.
    const SMOOTHING_EPS: f64 = 1e-4;

    /// A fresh observer. `bins` must be even and at least `quantized_bins`, which must be at
    /// least 2.
    pub fn new(scheme: QuantScheme, bins: usize, quantized_bins: usize) -> Result<Self> {
        check_bins("bins", bins, 2)?;
        if !bins.is_multiple_of(2) {
            return Err(Error::invalid_argument(
                "bins",
                format!("must be even, got {bins}"),
            ));
        }
        if quantized_bins < 2 || quantized_bins > bins {
            return Err(Error::invalid_argument(
                "quantized_bins",
                format!("must be in [2, bins = {bins}], got {quantized_bins}"),
            ));
        }
        Ok(EntropyObserver {
            scheme,
            quantized_bins,
            histogram: SymmetricHistogram::new(bins),
            range: None,
        })
    }

    /// Records the finite values of one batch.
    pub fn observe(&mut self, data: &[f32]) {
        let Some((lo, hi)) = finite_min_max(data) else {
            return;
        };
        self.histogram.add(data, lo.abs().max(hi.abs()));
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
        self.histogram.counts().len()
    }

    /// The minimum-divergence range, if anything was observed.
    pub fn clipped_range(&self) -> Option<(f32, f32)> {
        let (min, max) = self.range?;
        let (start, end) = best_candidate(self.histogram.counts(), self.quantized_bins);
        let (lo, hi) = (self.histogram.edge(start), self.histogram.edge(end));
        Some(narrow_to_observed((lo, hi), (min, max)))
    }

    /// Parameters for [`Self::clipped_range`].
    pub fn per_tensor_qparams(&self) -> Result<QParams> {
        let (min, max) = self
            .clipped_range()
            .ok_or_else(|| nothing_observed("EntropyObserver"))?;
        self.scheme.qparams_from_range(min, max)
    }
}

/// The edge indices `(start, end)` of the candidate with the smallest divergence.
fn best_candidate(hist: &[u64], quantized_bins: usize) -> (usize, usize) {
    let n = hist.len();
    let zero = n / 2;
    let half_quantized = quantized_bins / 2;
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0u64);
    for &c in hist {
        prefix.push(prefix.last().copied().unwrap_or(0) + c);
    }
    let mut best = (zero - half_quantized, (zero + half_quantized + 1).min(n));
    let mut best_divergence = f32::INFINITY;
    for i in half_quantized..=zero {
        let start = zero - i;
        let end = (zero + i + 1).min(n);
        let divergence = candidate_divergence(hist, &prefix, start, end, quantized_bins);
        if divergence < best_divergence {
            best_divergence = divergence;
            best = (start, end);
        }
    }
    best
}

/// `KL(P || Q)` for the candidate bins `hist[start..end]` (infinite if either distribution
/// cannot be smoothed).
fn candidate_divergence(
    hist: &[u64],
    prefix: &[u64],
    start: usize,
    end: usize,
    quantized_bins: usize,
) -> f32 {
    let sliced = &hist[start..end];
    let len = sliced.len();
    let mut p = sliced.to_vec();
    p[0] += prefix[start];
    p[len - 1] += prefix[hist.len()] - prefix[end];

    let merged = len / quantized_bins;
    let mut q = vec![0u64; len];
    for k in 0..quantized_bins {
        let (a, b) = (k * merged, (k + 1) * merged);
        let mut group: u64 = sliced[a..b].iter().sum();
        if k == quantized_bins - 1 {
            group += sliced[quantized_bins * merged..].iter().sum::<u64>();
        }
        let nonzero = p[a..b].iter().filter(|&&v| v != 0).count() as u64;
        if nonzero != 0 {
            let share = (group as f64 / nonzero as f64) as u64;
            q[a..b].fill(share);
        }
    }
    match (smooth(&p), smooth(&q)) {
        (Some(p), Some(q)) => kl_divergence(&p, &q),
        _ => f32::INFINITY,
    }
}

/// ONNX Runtime's `smooth_distribution` in f32: zeros become `eps`, non-zeros lose
/// `eps * zeros / non_zeros`. `None` if all bins are zero or a bin would not stay positive.
fn smooth(counts: &[u64]) -> Option<Vec<f32>> {
    let zeros = counts.iter().filter(|&&c| c == 0).count();
    let nonzeros = counts.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let eps = EntropyObserver::SMOOTHING_EPS as f32;
    let taken = -(EntropyObserver::SMOOTHING_EPS * zeros as f64 / nonzeros as f64) as f32;
    let smoothed: Vec<f32> = counts
        .iter()
        .map(|&c| if c == 0 { eps } else { c as f32 + taken })
        .collect();
    smoothed.iter().all(|&v| v > 0.0).then_some(smoothed)
}

/// `Σ p ln(p / q)` after normalising both to sum 1, in f32 with numpy's summation order.
fn kl_divergence(p: &[f32], q: &[f32]) -> f32 {
    let p_total = pairwise_sum(p);
    let q_total = pairwise_sum(q);
    let terms: Vec<f32> = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (p / p_total, q / q_total);
            p * (p / q).ln()
        })
        .collect();
    pairwise_sum(&terms)
}

/// numpy's f32 pairwise summation (`np.sum` of a contiguous 1-D array): blocks of up to
/// 128 values summed with 8 interleaved accumulators, larger arrays split in two halves
/// (the first a multiple of 8 long).
fn pairwise_sum(values: &[f32]) -> f32 {
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |acc, &v| acc + v);
    }
    if n <= 128 {
        let mut lanes = [0.0f32; 8];
        lanes.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        for chunk in values[8..whole].chunks_exact(8) {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane += v;
            }
        }
        let mut total =
            ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        for &v in &values[whole..] {
            total += v;
        }
        return total;
    }
    let half = n / 2 - (n / 2) % 8;
    pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_follows_numpy_order() {
        // Expected values are numpy 2.4's `np.sum` of the same f32 arrays; a sequential or
        // f64 sum gives 1e8 and 45601884 instead.
        let mut v = vec![1.0f32; 300];
        v[0] = 1e8;
        assert_eq!(pairwise_sum(&v), 100000288.0);
        let w: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37 + 0.1).powi(2)).collect();
        assert_eq!(pairwise_sum(&w), 45601880.0);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
    }

    #[test]
    fn smoothing_moves_mass_to_empty_bins() {
        let s = smooth(&[0, 2, 0, 2]).unwrap();
        assert_eq!(s, [1e-4, 2.0 - 1e-4, 1e-4, 2.0 - 1e-4]);
        assert!(smooth(&[0, 0]).is_none());
    }

    #[test]
    fn identical_distributions_have_zero_divergence() {
        let p = [1.0, 2.0, 3.0];
        assert!(kl_divergence(&p, &[2.0, 4.0, 6.0]).abs() < 1e-7);
        // KL([0.5, 0.5] || [0.25, 0.75]) = 0.5 ln 2 + 0.5 ln(2/3)
        let expected = 0.5 * 2f32.ln() + 0.5 * (2.0f32 / 3.0).ln();
        assert!((kl_divergence(&[1.0, 1.0], &[1.0, 3.0]) - expected).abs() < 1e-6);
    }

    #[test]
    fn a_hand_computed_candidate() {
        // 8 bins, 4 quantized bins, candidate = all 8 bins (no outliers).
        let hist = [0, 4, 2, 2, 1, 3, 0, 0];
        let prefix: Vec<u64> = std::iter::once(0)
            .chain(hist.iter().scan(0, |acc, &c| {
                *acc += c;
                Some(*acc)
            }))
            .collect();
        // P = hist; groups of 2: [0,4] [2,2] [1,3] [0,0] -> sums 4, 4, 4, 0;
        // Q over non-zeros of P: [0,4] -> one non-zero -> [4, 4] (ORT fills the whole group),
        // [2,2] -> [2,2], [1,3] -> [2,2], [0,0] -> [0,0].
        let p = smooth(&hist).unwrap();
        let q = smooth(&[4, 4, 2, 2, 2, 2, 0, 0]).unwrap();
        let expected = kl_divergence(&p, &q);
        assert_eq!(candidate_divergence(&hist, &prefix, 0, 8, 4), expected);
        assert!(expected > 0.0);
    }

    #[test]
    fn an_outlier_is_clipped() {
        let mut obs = EntropyObserver::new(QuantScheme::INT8_ACTIVATION, 2048, 128).unwrap();
        let mut data: Vec<f32> = (0..50_000)
            .map(|i| ((i % 2001) as f32 - 1000.0) / 1000.0)
            .collect();
        data.push(5.0);
        obs.observe(&data);
        let (lo, hi) = obs.clipped_range().unwrap();
        // The window never needs to go below the data, so `lo` is the observed minimum.
        assert_eq!(lo, -1.0);
        assert!((1.0..2.5).contains(&hi), "hi = {hi}");
    }

    #[test]
    fn settings_are_validated() {
        let s = QuantScheme::INT8_ACTIVATION;
        assert!(EntropyObserver::new(s, 2047, 128).is_err());
        assert!(EntropyObserver::new(s, 64, 128).is_err());
        assert!(EntropyObserver::new(s, 64, 1).is_err());
        assert!(EntropyObserver::new(s, 64, 64).is_ok());
    }
}
