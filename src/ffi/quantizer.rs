//! C API of the quantizer: configuration structs and scope setters.

use super::boundary::{arg_mut, arg_ref, arg_str, free_handle, guard, into_handle, Out};
use super::status::xq_status;
use crate::quant::observer::{PercentileObserver, PercentileTails};
use crate::quant::{ActivationMode, NameMatch, ObserverConfig, QuantConfig, Quantizer, WeightGranularity};
use crate::{Error, Result};
use std::ffi::c_char;

/// `xq_quant_config.weight_granularity`: one scale per output channel.
pub const XQ_WEIGHTS_PER_CHANNEL: i32 = 0;
/// `xq_quant_config.weight_granularity`: one scale per weight tensor.
pub const XQ_WEIGHTS_PER_TENSOR: i32 = 1;
/// `xq_quant_config.activation_mode`: activation ranges from calibration.
pub const XQ_ACTIVATIONS_STATIC: i32 = 0;
/// `xq_quant_config.activation_mode`: activations quantized per row at run time.
pub const XQ_ACTIVATIONS_DYNAMIC: i32 = 1;
/// `xq_quant_config.observer`: PyTorch's HistogramObserver (L2-optimal range); the default.
pub const XQ_OBSERVER_HISTOGRAM: i32 = 0;
/// `xq_quant_config.observer`: running min / max.
pub const XQ_OBSERVER_MINMAX: i32 = 1;
/// `xq_quant_config.observer`: moving-average min / max.
pub const XQ_OBSERVER_MOVING_AVERAGE_MINMAX: i32 = 2;
/// `xq_quant_config.observer`: the `percentile` field's percentile of the observed values.
pub const XQ_OBSERVER_PERCENTILE: i32 = 3;
/// `xq_quant_config.observer`: KL-divergence (entropy) calibration.
pub const XQ_OBSERVER_ENTROPY: i32 = 4;

/// A quantization recipe (PT2E `get_symmetric_quantization_config`). Start from
/// `xq_quant_config_default()` and change fields; enumerations are the `XQ_*` constants.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_quant_config {
    /// `XQ_WEIGHTS_PER_CHANNEL` or `XQ_WEIGHTS_PER_TENSOR`.
    pub weight_granularity: i32,
    /// `XQ_ACTIVATIONS_STATIC` or `XQ_ACTIVATIONS_DYNAMIC`.
    pub activation_mode: i32,
    /// One of the `XQ_OBSERVER_*` constants (static activations only).
    pub observer: i32,
    /// Percentile of |x| in (0, 100] for `XQ_OBSERVER_PERCENTILE` (default 99.99); ignored
    /// otherwise.
    pub percentile: f32,
    /// Smallest activation integer (default -128).
    pub activation_qmin: i32,
    /// Largest activation integer (default 127).
    pub activation_qmax: i32,
    /// Smallest weight integer (default -127).
    pub weight_qmin: i32,
    /// Largest weight integer (default 127).
    pub weight_qmax: i32,
}

impl From<&QuantConfig> for xq_quant_config {
    fn from(c: &QuantConfig) -> Self {
        let default_percentile = DEFAULT_PERCENTILE as f32;
        let (observer, percentile) = match c.observer {
            ObserverConfig::Histogram { .. } => (XQ_OBSERVER_HISTOGRAM, default_percentile),
            ObserverConfig::MinMax | ObserverConfig::PerChannelMinMax { .. } => {
                (XQ_OBSERVER_MINMAX, default_percentile)
            }
            ObserverConfig::MovingAverageMinMax { .. } => {
                (XQ_OBSERVER_MOVING_AVERAGE_MINMAX, default_percentile)
            }
            ObserverConfig::Percentile { percentile, .. } => (XQ_OBSERVER_PERCENTILE, percentile as f32),
            ObserverConfig::Entropy { .. } => (XQ_OBSERVER_ENTROPY, default_percentile),
        };
        xq_quant_config {
            weight_granularity: match c.weights {
                WeightGranularity::PerChannel => XQ_WEIGHTS_PER_CHANNEL,
                WeightGranularity::PerTensor => XQ_WEIGHTS_PER_TENSOR,
            },
            activation_mode: match c.activations {
                ActivationMode::Static => XQ_ACTIVATIONS_STATIC,
                ActivationMode::Dynamic => XQ_ACTIVATIONS_DYNAMIC,
            },
            observer,
            percentile,
            activation_qmin: c.activation_range.0,
            activation_qmax: c.activation_range.1,
            weight_qmin: c.weight_range.0,
            weight_qmax: c.weight_range.1,
        }
    }
}

impl TryFrom<&xq_quant_config> for QuantConfig {
    type Error = Error;

    fn try_from(c: &xq_quant_config) -> Result<Self> {
        let bad = |field: &str, value: i32| {
            Error::invalid_argument("config", format!("field `{field}` has the unknown value {value}"))
        };
        let config = QuantConfig {
            weights: match c.weight_granularity {
                XQ_WEIGHTS_PER_CHANNEL => WeightGranularity::PerChannel,
                XQ_WEIGHTS_PER_TENSOR => WeightGranularity::PerTensor,
                v => return Err(bad("weight_granularity", v)),
            },
            activations: match c.activation_mode {
                XQ_ACTIVATIONS_STATIC => ActivationMode::Static,
                XQ_ACTIVATIONS_DYNAMIC => ActivationMode::Dynamic,
                v => return Err(bad("activation_mode", v)),
            },
            observer: match c.observer {
                XQ_OBSERVER_HISTOGRAM => ObserverConfig::HISTOGRAM,
                XQ_OBSERVER_MINMAX => ObserverConfig::MinMax,
                XQ_OBSERVER_MOVING_AVERAGE_MINMAX => ObserverConfig::MOVING_AVERAGE_MIN_MAX,
                XQ_OBSERVER_PERCENTILE => ObserverConfig::Percentile {
                    percentile: f64::from(c.percentile),
                    tails: PercentileTails::Absolute,
                    bins: PercentileObserver::DEFAULT_BINS,
                },
                XQ_OBSERVER_ENTROPY => ObserverConfig::ENTROPY,
                v => return Err(bad("observer", v)),
            },
            activation_range: (c.activation_qmin, c.activation_qmax),
            weight_range: (c.weight_qmin, c.weight_qmax),
        };
        config.validate()?;
        Ok(config)
    }
}

const DEFAULT_PERCENTILE: f64 = PercentileObserver::DEFAULT_PERCENTILE;

/// The opaque quantizer handle.
pub struct xq_quantizer(pub(crate) Quantizer);

/// Optional config pointer: NULL means "leave float".
///
/// # Safety
/// `config` must be NULL or point to a valid `xq_quant_config`.
unsafe fn optional_config(config: *const xq_quant_config) -> Result<Option<QuantConfig>> {
    // SAFETY: NULL is allowed; otherwise validity is the caller's contract.
    unsafe { config.as_ref() }.map(QuantConfig::try_from).transpose()
}

/// Fills `*config` with the default recipe: static activations (histogram observer,
/// [-128, 127]), per-channel symmetric weights ([-127, 127]) — XNNPACKQuantizer's
/// `get_symmetric_quantization_config(is_per_channel=True)`.
///
/// # Safety
/// `config` must be NULL or point to writable storage for an `xq_quant_config`.
#[no_mangle]
pub unsafe extern "C" fn xq_quant_config_default(config: *mut xq_quant_config) -> xq_status {
    guard(|| {
        // SAFETY: writable or NULL per this function's contract.
        unsafe { Out::new(config, "config") }?.write((&QuantConfig::default()).into());
        Ok(())
    })
}

/// Creates a quantizer whose global recipe is `*global_config`; a NULL `global_config`
/// quantizes nothing unless a scope says so (PT2E `set_global(None)`). Free with
/// `xq_quantizer_free`.
///
/// # Safety
/// `global_config` must be NULL or valid; `quantizer` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_new(
    global_config: *const xq_quant_config,
    quantizer: *mut *mut xq_quantizer,
) -> xq_status {
    guard(|| {
        // SAFETY: writable or NULL per this function's contract.
        let out = unsafe { Out::new(quantizer, "quantizer") }?;
        // SAFETY: NULL or a valid config, per the documented contract.
        let global = unsafe { optional_config(global_config) }?;
        out.write(into_handle(xq_quantizer(Quantizer::new(global)?)));
        Ok(())
    })
}

/// Releases a quantizer; NULL is a no-op.
///
/// # Safety
/// `quantizer` must be NULL or a handle from `xq_quantizer_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_free(quantizer: *mut xq_quantizer) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(quantizer) }
}

/// Sets the recipe for every node of ONNX op type `op_type` (e.g. "Conv"); a NULL `config`
/// leaves those nodes float. Node-name scopes take precedence over op-type scopes, which
/// take precedence over the global recipe.
///
/// # Safety
/// Pointers must be NULL or valid as documented for each argument.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_set_operator_type(
    quantizer: *mut xq_quantizer,
    op_type: *const c_char,
    config: *const xq_quant_config,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; validity is the caller's contract.
        let q = unsafe { arg_mut(quantizer, "quantizer") }?;
        // SAFETY: as above.
        let op_type = unsafe { arg_str(op_type, "op_type") }?;
        // SAFETY: as above.
        let config = unsafe { optional_config(config) }?;
        q.0.set_operator_type(op_type, config)
    })
}

/// Sets the recipe for the node named exactly `name`; a NULL `config` leaves it float.
///
/// # Safety
/// Pointers must be NULL or valid as documented for each argument.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_set_node_name(
    quantizer: *mut xq_quantizer,
    name: *const c_char,
    config: *const xq_quant_config,
) -> xq_status {
    // SAFETY: forwarded contract.
    unsafe { set_name(quantizer, name, config, false) }
}

/// Sets the recipe for every node whose name starts with `prefix` (like PT2E's
/// `set_module_name` on a submodule); the longest matching prefix wins, an exact name rule
/// beats any prefix. A NULL `config` leaves the nodes float.
///
/// # Safety
/// Pointers must be NULL or valid as documented for each argument.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_set_node_name_prefix(
    quantizer: *mut xq_quantizer,
    prefix: *const c_char,
    config: *const xq_quant_config,
) -> xq_status {
    // SAFETY: forwarded contract.
    unsafe { set_name(quantizer, prefix, config, true) }
}

/// # Safety
/// As for the exported setters.
unsafe fn set_name(
    quantizer: *mut xq_quantizer,
    name: *const c_char,
    config: *const xq_quant_config,
    is_prefix: bool,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; validity is the caller's contract.
        let q = unsafe { arg_mut(quantizer, "quantizer") }?;
        let arg_name = if is_prefix { "prefix" } else { "name" };
        // SAFETY: as above.
        let name = unsafe { arg_str(name, arg_name) }?.to_string();
        // SAFETY: as above.
        let config = unsafe { optional_config(config) }?;
        let rule = if is_prefix {
            NameMatch::Prefix(name)
        } else {
            NameMatch::Exact(name)
        };
        q.0.set_node_name(rule, config)
    })
}

/// Writes the recipe the quantizer would apply to a node named `node_name` of op type
/// `op_type` into `*config` and sets `*quantized` to true, or sets `*quantized` to false
/// (leaving `*config` untouched) when the node stays float.
///
/// # Safety
/// Pointers must be NULL or valid as documented for each argument.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_resolve(
    quantizer: *const xq_quantizer,
    node_name: *const c_char,
    op_type: *const c_char,
    quantized: *mut bool,
    config: *mut xq_quant_config,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; validity is the caller's contract.
        let q = unsafe { arg_ref(quantizer, "quantizer") }?;
        // SAFETY: as above.
        let node_name = unsafe { arg_str(node_name, "node_name") }?;
        // SAFETY: as above.
        let op_type = unsafe { arg_str(op_type, "op_type") }?;
        // SAFETY: as above.
        let quantized = unsafe { Out::new(quantized, "quantized") }?;
        // SAFETY: as above.
        let config = unsafe { Out::new(config, "config") }?;
        match q.0.scopes().resolve(node_name, op_type) {
            Some(c) => {
                config.write((&c).into());
                quantized.write(true);
            }
            None => quantized.write(false),
        }
        Ok(())
    })
}
