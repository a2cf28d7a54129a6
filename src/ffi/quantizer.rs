//! C API of the quantizer: configuration structs, scope setters, and the flow
//! `xq_quantizer_prepare` → `xq_calibrate` (repeated) → `xq_convert`, with a progress
//! callback, a pollable sample counter and a text report.

use super::boundary::{arg_mut, arg_ref, arg_slice, arg_str, free_handle, guard, into_handle, Out};
use super::enums::{xq_activation_mode, xq_observer, xq_weight_granularity};
use super::model::xq_model;
use super::status::xq_status;
use super::tensor::{tensor_from_c, xq_tensor};
use crate::quant::observer::{PercentileObserver, PercentileTails};
use crate::quant::{ActivationMode, NameMatch, ObserverConfig, QuantConfig, Quantizer, WeightGranularity};
use crate::{Error, Result};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Mutex, PoisonError};

/// `xq_weight_granularity::XQ_WEIGHTS_PER_CHANNEL` as the `int32_t` that C passes.
pub const XQ_WEIGHTS_PER_CHANNEL: i32 = xq_weight_granularity::XQ_WEIGHTS_PER_CHANNEL as i32;
/// `xq_weight_granularity::XQ_WEIGHTS_PER_TENSOR` as the `int32_t` that C passes.
pub const XQ_WEIGHTS_PER_TENSOR: i32 = xq_weight_granularity::XQ_WEIGHTS_PER_TENSOR as i32;
/// `xq_activation_mode::XQ_ACTIVATIONS_STATIC` as the `int32_t` that C passes.
pub const XQ_ACTIVATIONS_STATIC: i32 = xq_activation_mode::XQ_ACTIVATIONS_STATIC as i32;
/// `xq_activation_mode::XQ_ACTIVATIONS_DYNAMIC` as the `int32_t` that C passes.
pub const XQ_ACTIVATIONS_DYNAMIC: i32 = xq_activation_mode::XQ_ACTIVATIONS_DYNAMIC as i32;
/// `xq_observer::XQ_OBSERVER_HISTOGRAM` as the `int32_t` that C passes.
pub const XQ_OBSERVER_HISTOGRAM: i32 = xq_observer::XQ_OBSERVER_HISTOGRAM as i32;
/// `xq_observer::XQ_OBSERVER_MINMAX` as the `int32_t` that C passes.
pub const XQ_OBSERVER_MINMAX: i32 = xq_observer::XQ_OBSERVER_MINMAX as i32;
/// `xq_observer::XQ_OBSERVER_MOVING_AVERAGE_MINMAX` as the `int32_t` that C passes.
pub const XQ_OBSERVER_MOVING_AVERAGE_MINMAX: i32 = xq_observer::XQ_OBSERVER_MOVING_AVERAGE_MINMAX as i32;
/// `xq_observer::XQ_OBSERVER_PERCENTILE` as the `int32_t` that C passes.
pub const XQ_OBSERVER_PERCENTILE: i32 = xq_observer::XQ_OBSERVER_PERCENTILE as i32;
/// `xq_observer::XQ_OBSERVER_ENTROPY` as the `int32_t` that C passes.
pub const XQ_OBSERVER_ENTROPY: i32 = xq_observer::XQ_OBSERVER_ENTROPY as i32;

/// A quantization recipe (PT2E `get_symmetric_quantization_config`). Start from
/// `xq_quant_config_default()` and change fields; the option fields hold values of the `xq_*` enumerations (as `int32_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_quant_config {
    /// An `xq_weight_granularity`.
    pub weight_granularity: i32,
    /// An `xq_activation_mode`.
    pub activation_mode: i32,
    /// An `xq_observer` (static activations only).
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

/// The opaque quantizer handle: the quantizer and the last report handed out to C.
pub struct xq_quantizer(pub(crate) Quantizer, Mutex<Option<CString>>);

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
        out.write(into_handle(xq_quantizer(
            Quantizer::new(global)?,
            Mutex::new(None),
        )));
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

/// Upper bound on the number of inputs passed to `xq_calibrate`.
const MAX_CALIBRATION_INPUTS: usize = 1 << 16;

/// Prepares the quantizer for `model`: copies its graph (validated and simplified, with
/// BatchNormalization folded into Conv), annotates it with the scoped recipes and creates
/// the observers. Scopes cannot change afterwards. A second prepare is
/// `XQ_ERROR_INVALID_STATE`; the model stays usable and owned by the caller.
///
/// # Safety
/// `quantizer` must be NULL or a live handle not used concurrently; `model` NULL or a live
/// handle not modified concurrently.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_prepare(
    quantizer: *mut xq_quantizer,
    model: *const xq_model,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; a live, unshared handle per this function's contract.
        let q = unsafe { arg_mut(quantizer, "quantizer") }?;
        // SAFETY: checked for NULL; a live handle per this function's contract.
        let m = unsafe { arg_ref(model, "model") }?;
        m.with_prepared_graph(|g| q.0.prepare(g))
    })
}

/// Runs the float model on one calibration sample or batch (batch = leading dimension) and
/// updates the observers. `inputs` holds one tensor per model input, in model input order.
/// A batch of B > 1 for a model whose inputs have a fixed leading dimension of 1 is run one
/// sample at a time (the progress callback fires per sample).
/// Errors: `XQ_ERROR_INVALID_STATE` before `xq_quantizer_prepare`;
/// `XQ_ERROR_SHAPE_MISMATCH` / `XQ_ERROR_DTYPE_MISMATCH` for inputs that do not match the
/// model; `XQ_ERROR_INVALID_ARGUMENT` for a wrong input count or a malformed descriptor.
///
/// # Safety
/// `quantizer` must be NULL or a live handle; `inputs` must point to `n_inputs` valid
/// descriptors whose `dims` and `data` are readable as documented for `xq_tensor`.
#[no_mangle]
pub unsafe extern "C" fn xq_calibrate(
    quantizer: *mut xq_quantizer,
    inputs: *const xq_tensor,
    n_inputs: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; a live, unshared handle per this function's contract.
        let q = unsafe { arg_mut(quantizer, "quantizer") }?;
        if !q.0.is_prepared() {
            return Err(Error::InvalidState(
                "xq_calibrate called before xq_quantizer_prepare".into(),
            ));
        }
        // SAFETY: `inputs` holds `n_inputs` descriptors (caller's contract); the count is bounded.
        let descriptors = unsafe { arg_slice(inputs, n_inputs, MAX_CALIBRATION_INPUTS, "inputs") }?;
        let tensors = descriptors
            .iter()
            // SAFETY: each descriptor's buffers are valid per this function's contract.
            .map(|t| unsafe { tensor_from_c(t, "inputs") })
            .collect::<Result<Vec<_>>>()?;
        q.0.calibrate(&tensors)
    })
}

/// Converts the prepared, calibrated model into a new QDQ model written to `*out` (free it
/// with `xq_model_free`; save it with `xq_model_save`). Errors: `XQ_ERROR_INVALID_STATE`
/// before prepare, or with static activations and no `xq_calibrate` call yet. The quantizer
/// stays usable (more calibration, another convert).
///
/// # Safety
/// `quantizer` must be NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn xq_convert(quantizer: *const xq_quantizer, out: *mut *mut xq_model) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; validity is the caller's contract.
        let q = unsafe { arg_ref(quantizer, "quantizer") }?;
        // SAFETY: as above.
        let out = unsafe { Out::new(out, "out") }?;
        let graph = q.0.convert()?;
        out.write(into_handle(xq_model::from_graph(graph)));
        Ok(())
    })
}

/// A progress callback: `done` samples calibrated so far out of `total` expected.
pub type xq_progress_fn = Option<unsafe extern "C" fn(user: *mut c_void, done: usize, total: usize)>;

/// The C callback and its user pointer, called on the thread that calls `xq_calibrate`.
struct CProgress {
    callback: unsafe extern "C" fn(*mut c_void, usize, usize),
    user: *mut c_void,
}

impl CProgress {
    fn report(&self, done: usize, total: usize) {
        // SAFETY: the caller's callback with its own pointer (contract of
        // `xq_quantizer_set_progress`).
        unsafe { (self.callback)(self.user, done, total) }
    }
}

// SAFETY: the pointer is only handed back to the caller's own callback, on whichever thread
// calls `xq_calibrate`; `xq_quantizer_set_progress` documents that the callback and `user`
// must tolerate that thread.
unsafe impl Send for CProgress {}

/// Installs a progress callback, called after every `xq_calibrate` with the number of
/// samples calibrated so far and `expected_samples` (or the count so far, if larger or
/// `expected_samples` is 0). A NULL `callback` removes it. A pollable alternative is
/// `xq_quantizer_samples_seen`.
///
/// # Safety
/// `quantizer` must be NULL or a live handle; `callback` (if not NULL) must be safe to call
/// with `user` from any thread that calls `xq_calibrate` on this quantizer.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_set_progress(
    quantizer: *mut xq_quantizer,
    callback: xq_progress_fn,
    user: *mut c_void,
    expected_samples: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; a live, unshared handle per this function's contract.
        let q = unsafe { arg_mut(quantizer, "quantizer") }?;
        let progress = callback.map(|callback| {
            let c = CProgress { callback, user };
            Box::new(move |done: usize, total: usize| c.report(done, total)) as crate::quant::ProgressFn
        });
        q.0.set_progress(progress, expected_samples);
        Ok(())
    })
}

/// Writes the number of samples calibrated so far (0 before prepare) to `*samples`.
///
/// # Safety
/// `quantizer` must be NULL or a live handle; `samples` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_samples_seen(
    quantizer: *const xq_quantizer,
    samples: *mut usize,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; validity is the caller's contract.
        let q = unsafe { arg_ref(quantizer, "quantizer") }?;
        // SAFETY: as above.
        let out = unsafe { Out::new(samples, "samples") }?;
        out.write(q.0.samples_seen());
        Ok(())
    })
}

/// Sets `*report` to a NUL-terminated text summary: one line per node saying how it was
/// annotated or why it stays float ("not prepared" before prepare). The string stays valid
/// until the report changes (by `xq_quantizer_prepare` or `xq_calibrate`) and
/// `xq_quantizer_report` is called again, or until `xq_quantizer_free`; repeated calls on an
/// unchanged quantizer return the same string.
///
/// # Safety
/// `quantizer` must be NULL or a live handle not modified concurrently; `report` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn xq_quantizer_report(
    quantizer: *const xq_quantizer,
    report: *mut *const c_char,
) -> xq_status {
    guard(|| {
        // SAFETY: checked for NULL; a live handle per this function's contract.
        let q = unsafe { arg_ref(quantizer, "quantizer") }?;
        // SAFETY: as above.
        let out = unsafe { Out::new(report, "report") }?;
        let text = CString::new(q.0.report().replace('\0', "?"))
            .map_err(|_| Error::Internal("report contains NUL".into()))?;
        let mut cached = q.1.lock().unwrap_or_else(PoisonError::into_inner);
        // An unchanged report keeps its pointer, which other threads may hold.
        if cached.as_ref() != Some(&text) {
            *cached = Some(text);
        }
        out.write(cached.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()));
        Ok(())
    })
}
