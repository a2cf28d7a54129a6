//! Typed C enumerations of the option values that C passes as `int32_t` fields and
//! parameters. They give the header named, typed constants; libxq itself reads those values
//! as `i32` (an out-of-range C value must never be read as a Rust enum) and compares them
//! with the `XQ_*` constants defined from these enumerators.

/// Values of `xq_program_config.partition_mode` (and `xq_program_options.partition_mode`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_partition_mode {
    /// Delegate every supported pattern; connected patterns share a partition (the default).
    XQ_PARTITION_ALL = 0,
    /// One partition per delegated operator, with `f32` boundaries.
    XQ_PARTITION_PER_OP = 1,
    /// Delegate nothing (interpreter only).
    XQ_PARTITION_NONE = 2,
}

/// Values of `xq_quant_config.weight_granularity`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_weight_granularity {
    /// One scale per output channel.
    XQ_WEIGHTS_PER_CHANNEL = 0,
    /// One scale per weight tensor.
    XQ_WEIGHTS_PER_TENSOR = 1,
}

/// Values of `xq_quant_config.activation_mode`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_activation_mode {
    /// Activation ranges from calibration.
    XQ_ACTIVATIONS_STATIC = 0,
    /// Activations quantized per row at run time.
    XQ_ACTIVATIONS_DYNAMIC = 1,
}

/// Values of `xq_quant_config.observer` (static activations only).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_observer {
    /// PyTorch's HistogramObserver (L2-optimal range); the default.
    XQ_OBSERVER_HISTOGRAM = 0,
    /// Running min / max.
    XQ_OBSERVER_MINMAX = 1,
    /// Moving-average min / max.
    XQ_OBSERVER_MOVING_AVERAGE_MINMAX = 2,
    /// The `percentile` field's percentile of the observed values.
    XQ_OBSERVER_PERCENTILE = 3,
    /// KL-divergence (entropy) calibration.
    XQ_OBSERVER_ENTROPY = 4,
}

/// Values of the `output` parameter of `xq_program_io_count`, `_io_info` and `_io_qparams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_io_side {
    /// The program's inputs.
    XQ_IO_INPUT = 0,
    /// The program's outputs.
    XQ_IO_OUTPUT = 1,
}
