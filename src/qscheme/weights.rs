//! Quantized constant weights ([`QWeights`]): the int8 values of a convolution, fully
//! connected or dynamically quantized linear layer with their scales.

/// Quantized constant weights: int8 values with zero point 0 (symmetric), output channel
/// first, and their scales, one shared by the whole tensor or one per output channel
/// ([`super::ChannelScales`] reads the "1 or n" rule).
///
/// This is the one (weights, scales) pair of the program contract; a program file stores
/// it as the values, then the scales. `values` is empty when the values are read from a
/// mapped file instead.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QWeights {
    /// The int8 values, output channel first (OHWI, HWC for depthwise, or `n × k`).
    pub values: Vec<i8>,
    /// One scale, or one per output channel.
    pub scales: Vec<f32>,
}

impl QWeights {
    /// Weights of `values` with `scales`.
    pub fn new(values: Vec<i8>, scales: Vec<f32>) -> Self {
        QWeights { values, scales }
    }
}
