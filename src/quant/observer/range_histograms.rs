//! Growing histograms for the percentile and entropy observers, after ONNX Runtime's
//! `HistogramCollector` (`onnxruntime.quantization.calibrate`).
//!
//! Both keep their bin width when later data falls inside the range and append bins of the
//! same width when it does not, so earlier counts never move. Unlike ONNX Runtime, both cap
//! their bin count at [`GROWTH_LIMIT`] times the initial count: past that, adjacent bins
//! are merged pairwise (the width doubles), so memory stays bounded however far the range
//! grows. Below the cap the bins are exactly ONNX Runtime's.

/// How many times its initial bin count a histogram may grow to before it merges bins.
pub(crate) const GROWTH_LIMIT: usize = 8;

/// Histogram of `|x|` over `[0, len * width]` (ONNX Runtime's `collect_absolute_value`,
/// except that the lowest edge is 0 instead of the first batch's smallest `|x|`, so no
/// later value can fall below it).
#[derive(Clone, Debug)]
pub(crate) struct AbsHistogram {
    initial_bins: usize,
    /// Bin width, fixed by the first batch with a non-zero `|x|`.
    width: Option<f64>,
    /// Upper edge of the last bin.
    top: f64,
    counts: Vec<u64>,
    /// Exact zeros seen before the width was known (they belong to bin 0).
    early_zeros: u64,
}

impl AbsHistogram {
    /// An empty histogram that starts with `bins` bins over the first batch's `max |x|`.
    pub(crate) fn new(bins: usize) -> Self {
        AbsHistogram {
            initial_bins: bins,
            width: None,
            top: 0.0,
            counts: Vec::new(),
            early_zeros: 0,
        }
    }

    /// Current number of bins.
    pub(crate) fn bin_count(&self) -> usize {
        self.counts.len()
    }

    /// Adds the finite values of `data`; `max_abs` is their largest `|x|`.
    pub(crate) fn add(&mut self, data: &[f32], max_abs: f32) {
        let width = match self.width {
            Some(width) => self.grow_to(f64::from(max_abs), width),
            None if max_abs == 0.0 => {
                self.early_zeros += data.iter().filter(|x| x.is_finite()).count() as u64;
                return;
            }
            None => {
                // The first batch spans exactly the initial bins (its maximum in the last).
                let width = f64::from(max_abs) / self.initial_bins as f64;
                self.counts = vec![0; self.initial_bins];
                self.counts[0] = std::mem::take(&mut self.early_zeros);
                self.width = Some(width);
                self.top = f64::from(max_abs);
                width
            }
        };
        let last = self.counts.len() - 1;
        for &x in data.iter().filter(|x| x.is_finite()) {
            let bin = (f64::from(x.abs()) / width) as usize;
            self.counts[bin.min(last)] += 1;
        }
    }

    /// Appends bins until `top` is covered, merging pairs past the growth limit; returns the
    /// (possibly doubled) width.
    fn grow_to(&mut self, top: f64, mut width: f64) -> f64 {
        if top <= self.top {
            return width;
        }
        let limit = self.initial_bins * GROWTH_LIMIT;
        loop {
            let needed = ((top / width).ceil() as usize).max(self.counts.len());
            if needed <= limit {
                self.counts.resize(needed, 0);
                break;
            }
            self.counts = merge_pairs(&self.counts);
            width *= 2.0;
        }
        self.width = Some(width);
        self.top = top.max(self.counts.len() as f64 * width);
        width
    }

    /// The left edge of the first bin at which the cumulative fraction of values reaches
    /// `fraction` (ONNX Runtime's `searchsorted(cdf, fraction)` edge); `None` if empty.
    pub(crate) fn quantile_edge(&self, fraction: f64) -> Option<f32> {
        match self.width {
            None if self.early_zeros > 0 => Some(0.0),
            None => None,
            Some(width) => Some((first_reaching(&self.counts, fraction) as f64 * width) as f32),
        }
    }
}

/// Histogram over `[-threshold, threshold]` with an even bin count, zero on a bin edge
/// (ONNX Runtime's `collect_value` / `merge_histogram`).
#[derive(Clone, Debug)]
pub(crate) struct SymmetricHistogram {
    initial_bins: usize,
    /// Half-width of the range; 0 until a batch with a non-zero value arrives.
    threshold: f32,
    counts: Vec<u64>,
}

impl SymmetricHistogram {
    /// An empty histogram that starts with `bins` bins (must be even and at least 2).
    pub(crate) fn new(bins: usize) -> Self {
        debug_assert!(bins >= 2 && bins.is_multiple_of(2));
        SymmetricHistogram {
            initial_bins: bins,
            threshold: 0.0,
            counts: vec![0; bins],
        }
    }

    /// The bin counts.
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Adds the finite values of `data`; `max_abs` is their largest `|x|`.
    pub(crate) fn add(&mut self, data: &[f32], max_abs: f32) {
        if max_abs > self.threshold {
            self.grow_to(max_abs);
        }
        let n = self.counts.len();
        if self.threshold == 0.0 {
            // Only zeros so far: they sit in the bin just right of the centre.
            self.counts[n / 2] += data.iter().filter(|x| x.is_finite()).count() as u64;
            return;
        }
        let stride = f64::from(self.threshold) * 2.0 / n as f64;
        for &x in data.iter().filter(|x| x.is_finite()) {
            let guess = ((f64::from(x) + f64::from(self.threshold)) / stride) as usize;
            let mut bin = guess.min(n - 1);
            // Settle the bin against the f32 edges, as numpy.histogram does.
            if bin > 0 && x < self.edge(bin) {
                bin -= 1;
            } else if bin + 1 < n && x >= self.edge(bin + 1) {
                bin += 1;
            }
            self.counts[bin] += 1;
        }
    }

    /// Edge `k` of `n + 1`: numpy's f32 `linspace(-threshold, threshold, n + 1)`
    /// (`k * step - threshold`; `2 * threshold / n` equals numpy's step bit for bit).
    pub(crate) fn edge(&self, k: usize) -> f32 {
        let n = self.counts.len();
        if k >= n {
            return self.threshold;
        }
        k as f32 * self.stride() + -self.threshold
    }

    /// Widens the range to cover `max_abs`, keeping the old counts centred (ONNX Runtime's
    /// `merge_histogram`). If the widened histogram would pass the growth limit, pairs of
    /// bins are merged first (doubling the stride) until it fits, so nothing larger than the
    /// limit is ever allocated.
    fn grow_to(&mut self, max_abs: f32) {
        if self.threshold == 0.0 {
            self.threshold = max_abs;
            return;
        }
        let limit = self.initial_bins * GROWTH_LIMIT;
        loop {
            let n = self.counts.len();
            let stride = self.stride();
            // f64 so that a huge jump in range cannot overflow the bin arithmetic.
            let half_added = (f64::from((max_abs - self.threshold) / stride)).floor() + 1.0;
            if n as f64 + 2.0 * half_added <= limit as f64 {
                let half_added = half_added as usize;
                let mut grown = vec![0u64; n + 2 * half_added];
                grown[half_added..half_added + n].copy_from_slice(&self.counts);
                self.counts = grown;
                self.threshold = (self.threshold + half_added as f32 * stride).min(f32::MAX);
                return;
            }
            self.coarsen();
        }
    }

    /// Halves the bin count by merging pairs, first padding one empty bin per side when a
    /// half has an odd count, so zero stays on a bin edge.
    fn coarsen(&mut self) {
        if (self.counts.len() / 2) % 2 == 1 {
            let stride = self.stride();
            let mut padded = vec![0u64; self.counts.len() + 2];
            padded[1..=self.counts.len()].copy_from_slice(&self.counts);
            self.counts = padded;
            self.threshold = (self.threshold + stride).min(f32::MAX);
        }
        self.counts = merge_pairs(&self.counts);
    }

    /// Width of one bin, `2 * threshold / n` in f32 (computed without overflowing).
    fn stride(&self) -> f32 {
        self.threshold / self.counts.len() as f32 * 2.0
    }

    /// The edge index at which the cumulative fraction first reaches `fraction`.
    pub(crate) fn quantile_edge_index(&self, fraction: f64) -> usize {
        first_reaching(&self.counts, fraction)
    }
}

/// Index of the first bin whose cumulative fraction of the total is `>= fraction`
/// (`numpy.searchsorted(cumsum(counts / total), fraction)`); `counts.len()` if none.
fn first_reaching(counts: &[u64], fraction: f64) -> usize {
    let total = counts.iter().sum::<u64>() as f64;
    let mut cumulative = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        cumulative += c;
        if cumulative as f64 / total >= fraction {
            return i;
        }
    }
    counts.len()
}

/// Sums adjacent pairs of bins; an odd last bin stays on its own.
fn merge_pairs(counts: &[u64]) -> Vec<u64> {
    counts.chunks(2).map(|pair| pair.iter().sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abs_histogram_quantiles_use_left_edges() {
        let mut h = AbsHistogram::new(10);
        let data: Vec<f32> = (1..=100).map(|i| i as f32 / 10.0).collect();
        h.add(&data, 10.0);
        // Bins of width 1 hold 9, 10, ..., 10, 11 values (10.0 falls in the closed last bin).
        assert_eq!(h.quantile_edge(0.5), Some(5.0));
        assert_eq!(h.quantile_edge(1.0), Some(9.0));
        assert_eq!(h.quantile_edge(0.0), Some(0.0));
    }

    #[test]
    fn abs_histogram_grows_then_merges_within_the_limit() {
        let mut h = AbsHistogram::new(8);
        h.add(&[1.0, -2.0], 2.0);
        h.add(&[-7.0], 7.0);
        assert_eq!(h.counts.len(), 28);
        h.add(&[1000.0], 1000.0);
        assert!(h.counts.len() <= 8 * GROWTH_LIMIT);
        assert_eq!(h.counts.iter().sum::<u64>(), 4);
    }

    #[test]
    fn abs_histogram_keeps_its_bins_while_data_stays_in_range() {
        let mut h = AbsHistogram::new(2048);
        for _ in 0..3 {
            h.add(&[0.3, -1.7, 1.9], 1.9);
            h.add(&[0.1], 0.1);
        }
        assert_eq!(h.bin_count(), 2048);
        assert_eq!(h.counts.iter().sum::<u64>(), 12);
        assert_eq!(h.counts[2047], 3);
    }

    #[test]
    fn abs_histogram_keeps_early_zeros() {
        let mut h = AbsHistogram::new(4);
        h.add(&[0.0, 0.0, 0.0], 0.0);
        assert_eq!(h.quantile_edge(0.99), Some(0.0));
        h.add(&[4.0], 4.0);
        assert_eq!(h.counts, [3, 0, 0, 1]);
    }

    #[test]
    fn symmetric_histogram_grows_around_zero() {
        let mut h = SymmetricHistogram::new(4);
        h.add(&[-1.0, -0.25, 0.25, 1.0], 1.0);
        assert_eq!(h.counts(), &[1, 1, 1, 1]);
        // stride 0.5; 2.2 needs floor(1.2 / 0.5) + 1 = 3 more bins per side.
        h.add(&[2.2], 2.2);
        assert_eq!(h.counts().len(), 10);
        assert_eq!(h.threshold, 2.5);
        assert_eq!(h.counts(), &[0, 0, 0, 1, 1, 1, 1, 0, 0, 1]);
        assert_eq!(h.edge(5), 0.0);
    }

    #[test]
    fn symmetric_histogram_merges_and_keeps_zero_on_an_edge() {
        let mut h = SymmetricHistogram::new(4);
        h.add(&[-1.0, 1.0], 1.0);
        h.add(&[100.0], 100.0);
        let n = h.counts().len();
        assert!(n <= 4 * GROWTH_LIMIT && n.is_multiple_of(2));
        assert!(h.edge(n / 2).abs() < 1e-6 * h.threshold);
        assert_eq!(h.counts().iter().sum::<u64>(), 3);
    }
}
