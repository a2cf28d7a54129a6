//! PyTorch's `HistogramObserver`: a running histogram plus an L2-error range search.
//!
//! Algorithm (torchao `quantization.pt2e.observer.HistogramObserver`, the static activation
//! observer of `XNNPACKQuantizer`):
//!
//! 1. **Histogram.** The first batch sets the range `[min, max]` and is binned into `bins`
//!    equal bins (`torch.histc`: bin `trunc((x - min) * bins / (max - min))`, the last bin
//!    closed). A later batch inside the range is binned and added. A batch that widens the
//!    range is binned over the new range; the old histogram is moved into the new range by
//!    splitting each old bin into `upsample_rate` (16) equal sub-bins, each carrying 1/16 of
//!    the count, and dropping every sub-bin's mass into the new bin that contains its
//!    centre. (If the old range was a single value, its whole count goes to that value's
//!    new bin.)
//! 2. **Search** (`_non_linear_param_search`). Starting from all bins `[0, bins - 1]`, move
//!    a lower and an upper quantile bound inwards in steps of `1e-5`; at each step, shrink
//!    whichever side would drop more bins. For each new candidate `[start, end]` compute
//!    the L2 error of quantizing the histogram into `2^bits` (256 for int8) equal
//!    destination bins spanning it (`_compute_quantization_error`: each source bin's mass
//!    is spread uniformly, error `∫ x² density` against the nearest destination centre,
//!    out-of-range mass clamped into the outer destination bins). Stop at the first
//!    candidate whose error exceeds the best so far.
//! 3. The chosen range is `[min + start * w, min + (end + 1) * w]` with `w = (max - min) /
//!    bins`, and the scale and zero point follow from [`QuantScheme::qparams_from_range`].
//!
//! Arithmetic follows PyTorch's dtypes and operation order (f32 tensors, f64 Python scalars,
//! fused multiply-add in `linspace`), so results match PyTorch's closely; sums are
//! accumulated in f64 where PyTorch uses a vectorised f32 reduction.

use super::{check_bins, nothing_observed};
use crate::qscheme::finite_min_max;
use crate::quant::qparams::{QParams, QuantScheme};
use crate::Result;

/// PyTorch's `HistogramObserver` (see the module documentation for the algorithm).
///
/// Memory: `bins` floats, plus about `3 * bins` values of scratch while binning a batch,
/// merging a wider one or searching.
#[derive(Clone, Debug)]
pub struct HistogramObserver {
    scheme: QuantScheme,
    bins: usize,
    /// Number of destination bins of the error model: `2^bits` of the quantized type.
    dst_bins: usize,
    histogram: Vec<f32>,
    range: Option<(f32, f32)>,
}

impl HistogramObserver {
    /// PyTorch's default bin count.
    pub const DEFAULT_BINS: usize = 2048;
    /// Sub-bins per bin when the histogram is moved into a wider range (PyTorch's value).
    pub const UPSAMPLE_RATE: usize = 16;
    /// Step of the quantile bounds in the range search (PyTorch's value).
    const SEARCH_STEP: f64 = 1e-5;

    /// A fresh observer with `bins` bins (at least 2), producing parameters in `scheme`.
    pub fn new(scheme: QuantScheme, bins: usize) -> Result<Self> {
        check_bins("bins", bins, 2)?;
        let levels = (i64::from(scheme.qmax()) - i64::from(scheme.qmin()) + 1) as u64;
        Ok(HistogramObserver {
            scheme,
            bins,
            dst_bins: levels.next_power_of_two() as usize,
            histogram: vec![0.0; bins],
            range: None,
        })
    }

    /// Records the finite values of one batch.
    pub fn observe(&mut self, data: &[f32]) {
        let Some((lo, hi)) = finite_min_max(data) else {
            return;
        };
        match self.range {
            None => {
                self.histogram = histc(data, self.bins, lo, hi);
                self.range = Some((lo, hi));
            }
            Some((min, max)) => {
                let (new_min, new_max) = (min.min(lo), max.max(hi));
                let update = histc(data, self.bins, new_min, new_max);
                if (new_min, new_max) == (min, max) {
                    add_assign(&mut self.histogram, &update);
                } else {
                    let moved = self.moved_into(min, max, new_min, new_max);
                    self.histogram = update;
                    add_assign(&mut self.histogram, &moved);
                    self.range = Some((new_min, new_max));
                }
            }
        }
    }

    /// The range of all finite values observed so far.
    pub fn observed_range(&self) -> Option<(f32, f32)> {
        self.range
    }

    /// The histogram (bin counts over [`Self::observed_range`]).
    pub fn histogram(&self) -> &[f32] {
        &self.histogram
    }

    /// The range chosen by the L2 error search, if anything was observed.
    pub fn search_range(&self) -> Option<(f32, f32)> {
        let (min, max) = self.range?;
        if min == max || !(max - min).is_finite() {
            // Zero-width bins: every candidate has zero error and the search keeps [min, max].
            // A range wider than f32 can hold cannot be quantized; [min, max] reports it.
            return Some((min, max));
        }
        let (start, end) = self.search_bins(min, max);
        let bin_width = (max - min) / self.bins as f32;
        Some((min + bin_width * start as f32, min + bin_width * (end + 1) as f32))
    }

    /// Parameters for [`Self::search_range`].
    pub fn per_tensor_qparams(&self) -> Result<QParams> {
        let (min, max) = self
            .search_range()
            .ok_or_else(|| nothing_observed("HistogramObserver"))?;
        self.scheme.qparams_from_range(min, max)
    }

    /// The current histogram re-binned into `[new_min, new_max] ⊇ [min, max]`.
    fn moved_into(&self, min: f32, max: f32, new_min: f32, new_max: f32) -> Vec<f32> {
        let bins = self.bins;
        let mut moved = vec![0.0f32; bins];
        if min == max {
            let total: f32 = sum_f32(&self.histogram);
            moved[histc_bin(min, bins, new_min, new_max)] += total;
            return moved;
        }
        let rate = Self::UPSAMPLE_RATE;
        let sub_bins = bins * rate;
        let sub_width = (max - min) / sub_bins as f32;
        let half_sub_width = 0.5 * sub_width;
        let new_edges: Vec<f32> = (0..=bins)
            .map(|i| linspace_at(new_min, new_max, bins + 1, i))
            .collect();
        for j in 0..sub_bins {
            let mass = self.histogram[j / rate] / rate as f32;
            let centre = linspace_at(min, max, sub_bins + 1, j) + half_sub_width;
            let upper = new_edges.partition_point(|&edge| edge <= centre);
            moved[upper.saturating_sub(1).min(bins - 1)] += mass;
        }
        moved
    }

    /// `_non_linear_param_search`: the bin interval `[start, end]` to quantize.
    fn search_bins(&self, min: f32, max: f32) -> (usize, usize) {
        let cumulative = cumsum(&self.histogram);
        let total = f64::from(sum_f32(&self.histogram));
        let (mut alpha, mut beta) = (0.0f64, 1.0f64);
        let (mut start, mut end) = (0usize, self.bins - 1);
        let mut best_error = f64::INFINITY;
        while alpha < beta {
            let next_alpha = alpha + Self::SEARCH_STEP;
            let next_beta = beta - Self::SEARCH_STEP;
            let lower_mass = (next_alpha * total) as f32;
            let upper_mass = (next_beta * total) as f32;
            // First bin in [start, end) whose cumulative mass reaches `lower_mass`, else `end`.
            let l = start + cumulative[start..end].partition_point(|&c| c < lower_mass);
            // Last bin in (start, end] whose cumulative mass is within `upper_mass`, else `start`.
            let r = start + cumulative[start + 1..=end].partition_point(|&c| c <= upper_mass);
            let (mut next_start, mut next_end) = (start, end);
            if l - start > end - r {
                next_start = l;
                alpha = next_alpha;
            } else {
                next_end = r;
                beta = next_beta;
            }
            if (next_start, next_end) == (start, end) {
                continue;
            }
            let error = self.quantization_error(min, max, next_start, next_end);
            if error > best_error {
                break;
            }
            best_error = error;
            start = next_start;
            end = next_end;
        }
        (start, end)
    }

    /// `_compute_quantization_error`: L2 error of quantizing the histogram with the range
    /// `[start, end]` (in bins) split into `dst_bins` equal destination bins.
    fn quantization_error(&self, min: f32, max: f32, start: usize, end: usize) -> f64 {
        let bin_width = (f64::from(max) - f64::from(min)) / self.bins as f64;
        let dst_bin_width = bin_width * (end - start + 1) as f64 / self.dst_bins as f64;
        if dst_bin_width == 0.0 {
            return 0.0;
        }
        let last_dst = (self.dst_bins - 1) as f32;
        let width = bin_width as f32;
        let dst_width = dst_bin_width as f32;
        let half_dst = (dst_bin_width / 2.0) as f32;
        let neg_half_dst = (-dst_bin_width / 2.0) as f32;
        let full_bin_norm = cubic_span(neg_half_dst, half_dst);
        let mut total = 0.0f64;
        for (i, &count) in self.histogram.iter().enumerate() {
            let begin = (i as f32 - start as f32) * width;
            let finish = begin + width;
            let dst_of_begin = div_floor(begin, dst_width).clamp(0.0, last_dst);
            let dst_of_end = div_floor(finish, dst_width).clamp(0.0, last_dst);
            let begin_centre = (dst_of_begin + 0.5) * dst_width;
            let end_centre = dst_of_end * dst_width + half_dst;
            let density = count / width;
            let mut norm = density * cubic_span(begin - begin_centre, half_dst);
            norm += (dst_of_end - dst_of_begin - 1.0) * (density * full_bin_norm);
            norm += density * cubic_span(neg_half_dst, finish - end_centre);
            total += f64::from(norm);
        }
        f64::from(total as f32)
    }
}

/// `(end³ - begin³) / 3`, the integral of `x²` over `[begin, end]`, in PyTorch's f32 order.
fn cubic_span(begin: f32, end: f32) -> f32 {
    (end * end * end - begin * begin * begin) / 3.0
}

/// `torch.histc(data, bins, lo, hi)` over the finite values of `data` (all in `[lo, hi]`).
/// An empty range (`lo == hi`) puts everything into the middle bin, as `histc` does.
fn histc(data: &[f32], bins: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut counts = vec![0u64; bins];
    for &x in data.iter().filter(|x| x.is_finite()) {
        counts[histc_bin(x, bins, lo, hi)] += 1;
    }
    counts.into_iter().map(|c| c as f32).collect()
}

/// The `histc` bin of `x` in `[lo, hi]`: `trunc((x - lo) * bins / (hi - lo))` in f32, with
/// the top edge falling into the last bin.
fn histc_bin(x: f32, bins: usize, lo: f32, hi: f32) -> usize {
    if lo == hi {
        return bins / 2;
    }
    let position = (x - lo) * bins as f32 / (hi - lo);
    // `as usize` truncates and saturates (NaN would map to 0; inputs here are finite).
    (position as usize).min(bins - 1)
}

/// Element `i` of `torch.linspace(start, end, steps)` in f32, as PyTorch's CPU kernel
/// computes it (the first half counts up from `start`, the second down from `end`, each
/// with a fused multiply-add).
fn linspace_at(start: f32, end: f32, steps: usize, i: usize) -> f32 {
    let step = (end - start) / (steps - 1) as f32;
    if i < steps / 2 {
        step.mul_add(i as f32, start)
    } else {
        (-step).mul_add((steps - 1 - i) as f32, end)
    }
}

/// `torch.div(a, b, rounding_mode="floor")` for f32 (Python's floor division).
fn div_floor(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        return a / b;
    }
    let rem = a % b;
    let mut div = (a - rem) / b;
    if rem != 0.0 && ((b < 0.0) != (rem < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0f32.copysign(a / b);
    }
    let mut floored = div.floor();
    if div - floored > 0.5 {
        floored += 1.0;
    }
    floored
}

/// Running sums accumulated in f64 and stored as f32 (`torch.cumsum` on CPU).
fn cumsum(values: &[f32]) -> Vec<f32> {
    let mut acc = 0.0f64;
    values
        .iter()
        .map(|&v| {
            acc += f64::from(v);
            acc as f32
        })
        .collect()
}

fn sum_f32(values: &[f32]) -> f32 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() as f32
}

fn add_assign(into: &mut [f32], from: &[f32]) {
    for (a, &b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observer() -> HistogramObserver {
        HistogramObserver::new(QuantScheme::INT8_ACTIVATION, HistogramObserver::DEFAULT_BINS).unwrap()
    }

    #[test]
    fn linspace_matches_known_torch_values() {
        // torch.linspace(0, 1, 5) == [0, 0.25, 0.5, 0.75, 1]; endpoints are exact.
        let v: Vec<f32> = (0..5).map(|i| linspace_at(0.0, 1.0, 5, i)).collect();
        assert_eq!(v, [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace_at(-3.7, 9.1, 2049, 0), -3.7);
        assert_eq!(linspace_at(-3.7, 9.1, 2049, 2048), 9.1);
    }

    #[test]
    fn div_floor_is_python_floor_division() {
        assert_eq!(div_floor(7.0, 2.0), 3.0);
        assert_eq!(div_floor(-7.0, 2.0), -4.0);
        assert_eq!(div_floor(6.0, 2.0), 3.0);
        assert_eq!(div_floor(-0.5, 2.0), -1.0);
        assert_eq!(div_floor(0.0, 2.0), 0.0);
    }

    #[test]
    fn histc_puts_the_maximum_in_the_last_bin() {
        let h = histc(&[0.0, 0.5, 1.0, 0.99, f32::NAN], 4, 0.0, 1.0);
        assert_eq!(h, [1.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn growing_the_range_preserves_the_total_count() {
        let mut obs = observer();
        let a: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let b: Vec<f32> = (0..500).map(|i| -2.0 + i as f32 / 100.0).collect();
        obs.observe(&a);
        obs.observe(&b);
        assert_eq!(obs.observed_range(), Some((-2.0, -2.0 + 499.0 / 100.0)));
        assert_eq!(sum_f32(obs.histogram()), 1500.0);
        assert_eq!(obs.histogram().len(), HistogramObserver::DEFAULT_BINS);
    }

    #[test]
    fn a_constant_input_keeps_its_value_as_the_range() {
        let mut obs = observer();
        obs.observe(&[0.75; 64]);
        assert_eq!(obs.search_range(), Some((0.75, 0.75)));
        let q = obs.per_tensor_qparams().unwrap();
        assert_eq!(q.scale(), 0.75 / 255.0);
        assert_eq!(q.zero_point(), -128);
        // The constant batch's mass moves to the bin of 0.75 when the range grows.
        obs.observe(&[-1.0, 1.0]);
        let bin = histc_bin(0.75, HistogramObserver::DEFAULT_BINS, -1.0, 1.0);
        assert_eq!(obs.histogram()[bin], 64.0);
    }

    #[test]
    fn the_search_keeps_a_single_far_outlier() {
        // Clamping one value at 100 to ~1 costs ~98² of squared error, far more than the
        // rounding error of 20000 values at scale ~0.4: the L2 search keeps (nearly) all bins.
        let mut obs = observer();
        let mut data: Vec<f32> = (0..20_000)
            .map(|i| ((i % 2001) as f32 - 1000.0) / 1000.0)
            .collect();
        data.push(100.0);
        obs.observe(&data);
        let (lo, hi) = obs.search_range().unwrap();
        assert_eq!(lo, -1.0);
        assert!(hi > 99.0 && hi <= 100.0, "hi = {hi}");
    }

    #[test]
    fn the_search_trims_a_sparse_tail() {
        // 100000 values spread over [-1, 1] and 10 values spread over (1, 64]: trimming the
        // tail lowers the rounding error of the bulk more than it costs to clamp the tail.
        let mut obs = observer();
        let mut data: Vec<f32> = (0..100_000).map(|i| (i % 2001) as f32 / 1000.0 - 1.0).collect();
        data.extend((1..=10).map(|i| 1.0 + 6.3 * i as f32));
        obs.observe(&data);
        let (lo, hi) = obs.search_range().unwrap();
        assert_eq!(lo, -1.0);
        assert!(hi < 60.0, "hi = {hi}");
    }

    #[test]
    fn nothing_observed_is_an_error() {
        let mut obs = observer();
        obs.observe(&[f32::NAN, f32::INFINITY]);
        assert!(obs.per_tensor_qparams().is_err());
        assert!(HistogramObserver::new(QuantScheme::INT8_ACTIVATION, 1).is_err());
    }
}
