//! `xq_model`: load an ONNX model (file or memory) or build a graph node by node, inspect its
//! inputs and outputs, fix input shapes, run it with the float interpreter, save it as ONNX.

use super::boundary::{arg_mut, arg_ref, arg_slice, arg_str, free_handle, guard, into_handle, Out};
use super::status::xq_status;
use super::tensor::{dtype_from_c, tensor_from_c, tensor_to_c, xq_dtype, xq_tensor, XQ_MAX_RANK};
use crate::interp::Interpreter;
use crate::ir::{Dim, Graph, TensorInfo};
use crate::onnx::AttrValue;
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

/// Upper bound on counts passed from C (inputs, outputs, attributes, list lengths).
const MAX_C_COUNT: usize = 1 << 20;

/// An opaque model: a graph plus, once the graph is complete and valid, its execution plan.
///
/// Building calls take `xq_model *` (exclusive access); queries take `const xq_model *` and
/// may run concurrently: the first query after a change prepares the model under the write
/// lock, the others read under the read lock.
pub struct xq_model {
    state: RwLock<ModelState>,
    /// NUL-terminated copies of input/output names and dim symbols handed out to C (one per
    /// distinct string, so repeated queries do not grow it). A `CString`'s bytes never move,
    /// so a pointer stays valid while the map grows.
    names: Mutex<HashMap<String, CString>>,
}

/// The mutable part of a model.
struct ModelState {
    graph: Graph,
    /// Set when the graph changed; cleared by `prepare`.
    dirty: bool,
    plan: Option<Interpreter>,
    /// Outputs declared by `xq_model_add_output` whose types are not known yet, in call order;
    /// `prepare` types them all with one shape-inference pass.
    pending_outputs: Vec<String>,
    /// Names of the graph's inputs, constants and node outputs (what an output may name).
    defined: HashSet<String>,
    /// Names of the graph's outputs, pending ones included.
    outputs: HashSet<String>,
    /// Shape-inference passes run to type pending outputs (observed by tests).
    output_inference_passes: usize,
}

impl ModelState {
    fn new(graph: Graph) -> ModelState {
        let mut state = ModelState {
            graph,
            dirty: true,
            plan: None,
            pending_outputs: Vec::new(),
            defined: HashSet::new(),
            outputs: HashSet::new(),
            output_inference_passes: 0,
        };
        state.reindex();
        state
    }

    /// Rebuilds `defined` and `outputs` from the graph (after load and after the graph was
    /// rewritten by simplification or shape fixing).
    fn reindex(&mut self) {
        let g = &self.graph;
        self.defined = g
            .inputs
            .iter()
            .map(|i| i.name.clone())
            .chain(g.initializers.keys().cloned())
            .chain(
                g.nodes
                    .iter()
                    .flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()).cloned()),
            )
            .collect();
        self.outputs = g
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .chain(self.pending_outputs.iter().cloned())
            .collect();
    }

    /// True when the graph is validated, simplified and planned.
    fn is_prepared(&self) -> bool {
        !self.dirty && self.plan.is_some() && self.pending_outputs.is_empty()
    }

    /// Types the pending outputs with one validation and shape-inference pass over a copy of
    /// the graph, then appends them to the graph's outputs in the order they were added.
    fn resolve_pending_outputs(&mut self) -> Result<()> {
        if self.pending_outputs.is_empty() {
            return Ok(());
        }
        let mut probe = self.graph.clone();
        probe.validate()?;
        self.output_inference_passes += 1;
        probe.infer_shapes()?;
        let inputs: HashMap<&str, &TensorInfo> = probe.inputs.iter().map(|i| (i.name.as_str(), i)).collect();
        let mut typed = Vec::with_capacity(self.pending_outputs.len());
        for name in &self.pending_outputs {
            let dtype = probe
                .initializers
                .get(name)
                .map(|t| t.dtype())
                .or_else(|| inputs.get(name.as_str()).map(|i| i.dtype))
                .or_else(|| probe.value_info.get(name).map(|i| i.dtype))
                .ok_or_else(|| {
                    Error::invalid_argument(
                        "name",
                        format!("no input, constant or node output is named `{name}`"),
                    )
                })?;
            typed.push(TensorInfo {
                name: name.clone(),
                dtype,
                shape: None,
            });
        }
        self.graph.outputs.extend(typed);
        self.pending_outputs.clear();
        self.dirty = true;
        Ok(())
    }

    /// Types pending outputs, then validates, simplifies and plans the graph if it changed
    /// since the last call.
    fn prepare(&mut self) -> Result<&Interpreter> {
        self.resolve_pending_outputs()?;
        if self.dirty || self.plan.is_none() {
            self.graph.validate()?;
            crate::interp::simplify(&mut self.graph)?;
            self.reindex();
            self.plan = Some(Interpreter::new(&self.graph)?);
            self.dirty = false;
        }
        self.plan
            .as_ref()
            .ok_or_else(|| Error::Internal("model plan missing".into()))
    }

    fn info(&self, output: bool, index: usize) -> Result<TensorInfo> {
        let list = if output {
            &self.graph.outputs
        } else {
            &self.graph.inputs
        };
        list.get(index).cloned().ok_or_else(|| {
            Error::invalid_argument(
                "index",
                format!("{index} is out of range ({} values)", list.len()),
            )
        })
    }

    /// The plan of a prepared model.
    fn plan(&self) -> Result<&Interpreter> {
        self.plan
            .as_ref()
            .ok_or_else(|| Error::Internal("model plan missing".into()))
    }
}

impl xq_model {
    fn new(graph: Graph) -> xq_model {
        xq_model {
            state: RwLock::new(ModelState::new(graph)),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Exclusive access for building calls (no lock needed: the caller holds the only
    /// reference). A poisoned lock is recovered: a panic inside `prepare` leaves the model
    /// dirty, and the next `prepare` starts over.
    fn state_mut(&mut self) -> &mut ModelState {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shared access to the prepared model, preparing it first (under the write lock) when
    /// the graph changed.
    fn prepared(&self) -> Result<RwLockReadGuard<'_, ModelState>> {
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.is_prepared() {
                return Ok(state);
            }
        }
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .prepare()?;
        Ok(self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Keeps a C copy of `s` alive as long as the model and returns its pointer.
    fn c_name(&self, s: &str) -> *const c_char {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .entry(s.to_string())
            .or_insert_with(|| CString::new(s.replace('\0', "?")).unwrap_or_default())
            .as_ptr()
    }
}

/// Access for the quantizer's and the program's C API (same crate).
impl xq_model {
    /// Calls `f` with the validated, simplified graph.
    pub(crate) fn with_prepared_graph<T>(&self, f: impl FnOnce(&Graph) -> Result<T>) -> Result<T> {
        f(&self.prepared()?.graph)
    }

    /// A model wrapping `graph` (planned lazily on first use).
    pub(crate) fn from_graph(graph: Graph) -> xq_model {
        xq_model::new(graph)
    }
}

/// What C learns about one model input or output.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_value_info {
    /// The value's name (valid until the model is freed).
    pub name: *const c_char,
    /// Element type.
    pub dtype: xq_dtype,
    /// Rank, or -1 when unknown.
    pub rank: i64,
}

/// Loads an ONNX model file (external-data initializers are read next to it).
///
/// # Safety
/// `path` must be a NUL-terminated string; `out` must point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn xq_model_load_file(path: *const c_char, out: *mut *mut xq_model) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract on `path`.
        let path = unsafe { arg_str(path, "path") }?;
        let out = Out::new(out, "out")?;
        let mut model = xq_model::new(crate::onnx::load_file(path)?);
        model.state_mut().prepare()?;
        out.write(into_handle(model));
        Ok(())
    })
}

/// Loads an ONNX model from memory (models with external data must be loaded from a file).
///
/// # Safety
/// `data` must point to `length` readable bytes; `out` must point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn xq_model_load_buffer(
    data: *const c_void,
    length: usize,
    out: *mut *mut xq_model,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract; the length is bounded before use.
        let bytes = unsafe { arg_slice(data as *const u8, length, crate::onnx::MAX_MODEL_BYTES, "data") }?;
        let out = Out::new(out, "out")?;
        let mut model = xq_model::new(crate::onnx::load_bytes(bytes, None)?);
        model.state_mut().prepare()?;
        out.write(into_handle(model));
        Ok(())
    })
}

/// Creates an empty model to be built with `xq_model_add_*`.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` must point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn xq_model_new(name: *const c_char, out: *mut *mut xq_model) -> xq_status {
    guard(|| {
        let name = if name.is_null() {
            ""
        } else {
            // SAFETY: a non-NULL `name` is NUL-terminated (this function's contract).
            unsafe { arg_str(name, "name") }?
        };
        let out = Out::new(out, "out")?;
        out.write(into_handle(xq_model::new(Graph {
            name: name.to_string(),
            ..Default::default()
        })));
        Ok(())
    })
}

/// Frees a model; NULL is a no-op.
///
/// # Safety
/// `model` must be NULL or a model from `xq_model_*` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn xq_model_free(model: *mut xq_model) {
    // SAFETY: caller's contract.
    unsafe { free_handle(model) }
}

/// # Safety
/// `model` must be NULL or a live model handle not modified concurrently; `out` NULL or
/// writable.
unsafe fn counts(model: *const xq_model, output: bool, out: *mut usize) -> xq_status {
    guard(|| {
        // SAFETY: `model` is NULL or a live handle (this function's contract).
        let m = unsafe { arg_ref(model, "model") }?;
        let out = Out::new(out, "out")?;
        let state = m.prepared()?;
        out.write(if output {
            state.graph.outputs.len()
        } else {
            state.graph.inputs.len()
        });
        Ok(())
    })
}

/// Number of model inputs (initializers are not inputs).
///
/// # Safety
/// `model` must be a live model handle, not modified concurrently (queries may run
/// concurrently); `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_model_input_count(model: *const xq_model, out: *mut usize) -> xq_status {
    // SAFETY: forwarded caller contract (see this function's docs).
    unsafe { counts(model, false, out) }
}

/// Number of model outputs.
///
/// # Safety
/// As `xq_model_input_count`.
#[no_mangle]
pub unsafe extern "C" fn xq_model_output_count(model: *const xq_model, out: *mut usize) -> xq_status {
    // SAFETY: forwarded caller contract.
    unsafe { counts(model, true, out) }
}

/// # Safety
/// As [`counts`].
unsafe fn value_info(
    model: *const xq_model,
    output: bool,
    index: usize,
    out: *mut xq_value_info,
) -> xq_status {
    guard(|| {
        // SAFETY: `model` is NULL or a live handle (this function's contract).
        let m = unsafe { arg_ref(model, "model") }?;
        let out = Out::new(out, "out")?;
        let info = m.prepared()?.info(output, index)?;
        let name = m.c_name(&info.name);
        let rank = info.shape.as_ref().map_or(-1, |s| s.len() as i64);
        out.write(xq_value_info {
            name,
            dtype: info.dtype.into(),
            rank,
        });
        Ok(())
    })
}

/// Name, element type and rank of input `index`.
///
/// # Safety
/// `model` must be a live model handle, not modified concurrently (queries may run
/// concurrently); `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_model_input(
    model: *const xq_model,
    index: usize,
    out: *mut xq_value_info,
) -> xq_status {
    // SAFETY: forwarded caller contract.
    unsafe { value_info(model, false, index, out) }
}

/// Name, element type and rank of output `index`.
///
/// # Safety
/// As `xq_model_input`.
#[no_mangle]
pub unsafe extern "C" fn xq_model_output(
    model: *const xq_model,
    index: usize,
    out: *mut xq_value_info,
) -> xq_status {
    // SAFETY: forwarded caller contract.
    unsafe { value_info(model, true, index, out) }
}

/// # Safety
/// As [`counts`]; `size` and `symbol` NULL or writable.
unsafe fn dim(
    model: *const xq_model,
    output: bool,
    index: usize,
    axis: usize,
    size: *mut i64,
    symbol: *mut *const c_char,
) -> xq_status {
    guard(|| {
        // SAFETY: `model` is NULL or a live handle (this function's contract).
        let m = unsafe { arg_ref(model, "model") }?;
        let size = Out::new(size, "size")?;
        let symbol = Out::new(symbol, "symbol")?;
        let info = m.prepared()?.info(output, index)?;
        let shape = info
            .shape
            .ok_or_else(|| Error::InvalidState(format!("the rank of `{}` is unknown", info.name)))?;
        let d = shape.get(axis).ok_or_else(|| {
            Error::invalid_argument("axis", format!("{axis} is out of range for rank {}", shape.len()))
        })?;
        let (n, s) = match d {
            Dim::Known(n) => (*n as i64, std::ptr::null()),
            Dim::Symbolic(name) => (-1, m.c_name(name)),
        };
        size.write(n);
        symbol.write(s);
        Ok(())
    })
}

/// Size of axis `axis` of input `index`: `*size` is the size, or -1 for a symbolic dimension
/// whose name is stored in `*symbol` (NULL for known sizes; valid until the model is freed).
///
/// # Safety
/// `model` must be a live model handle, not modified concurrently (queries may run
/// concurrently); `size` and `symbol` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_model_input_dim(
    model: *const xq_model,
    index: usize,
    axis: usize,
    size: *mut i64,
    symbol: *mut *const c_char,
) -> xq_status {
    // SAFETY: forwarded caller contract.
    unsafe { dim(model, false, index, axis, size, symbol) }
}

/// As `xq_model_input_dim`, for output `index`.
///
/// # Safety
/// As `xq_model_input_dim`.
#[no_mangle]
pub unsafe extern "C" fn xq_model_output_dim(
    model: *const xq_model,
    index: usize,
    axis: usize,
    size: *mut i64,
    symbol: *mut *const c_char,
) -> xq_status {
    // SAFETY: forwarded caller contract.
    unsafe { dim(model, true, index, axis, size, symbol) }
}

/// Fixes the shape of input `name` (known dims must match; its symbolic dims are bound, also
/// on other inputs using the same symbols). Constant subgraphs are then folded.
///
/// # Safety
/// `model` live handle; `name` NUL-terminated; `dims` points to `rank` int64 values.
#[no_mangle]
pub unsafe extern "C" fn xq_model_fix_input_shape(
    model: *mut xq_model,
    name: *const c_char,
    dims: *const i64,
    rank: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract for each pointer; lengths bounded.
        let (m, name, dims) = unsafe {
            (
                arg_mut(model, "model")?,
                arg_str(name, "name")?,
                arg_slice(dims, rank, XQ_MAX_RANK, "dims")?,
            )
        };
        let dims: Vec<usize> = dims
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| Error::invalid_argument("dims", format!("{d} is negative")))
            })
            .collect::<Result<_>>()?;
        let state = m.state_mut();
        // Pending outputs join the graph first, so that simplification keeps what they need.
        state.resolve_pending_outputs()?;
        let mut graph = state.graph.clone();
        graph.validate()?;
        graph.fix_input_shapes(&[(name, &dims)])?;
        crate::interp::simplify(&mut graph)?;
        state.graph = graph;
        state.dirty = true;
        state.prepare()?;
        Ok(())
    })
}

/// Runs the model with the float interpreter. `inputs` follow the model's input order;
/// `outputs` follow its output order and are written only if every output fits.
///
/// # Safety
/// `model` live handle; `inputs`/`outputs` point to `n_inputs`/`n_outputs` descriptors whose
/// buffers follow the `xq_tensor` contract.
#[no_mangle]
pub unsafe extern "C" fn xq_model_run_float(
    model: *const xq_model,
    inputs: *const xq_tensor,
    n_inputs: usize,
    outputs: *mut xq_tensor,
    n_outputs: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract; counts bounded.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: `inputs` holds `n_inputs` descriptors (caller's contract); count bounded.
        let descs = unsafe { arg_slice(inputs, n_inputs, MAX_C_COUNT, "inputs") }?;
        let state = m.prepared()?;
        let plan = state.plan()?;
        let values: Vec<_> = descs
            .iter()
            // SAFETY: each descriptor follows the xq_tensor input contract (caller).
            .map(|d| unsafe { tensor_from_c(d, "inputs") })
            .collect::<Result<_>>()?;
        let results = plan.run(&values)?;
        if n_outputs != results.len() {
            return Err(Error::invalid_argument(
                "n_outputs",
                format!("the model has {} outputs", results.len()),
            ));
        }
        if outputs.is_null() && n_outputs > 0 {
            return Err(Error::NullPointer("outputs"));
        }
        // SAFETY: `outputs` points to `n_outputs` descriptors (caller's contract), non-null.
        let outs = unsafe { std::slice::from_raw_parts_mut(outputs, n_outputs) };
        for (r, o) in results.iter().zip(outs.iter()) {
            let need = r.to_le_bytes().len();
            if o.rank < r.dims().len() || o.byte_length < need {
                return Err(Error::invalid_argument(
                    "outputs",
                    format!(
                        "an output of shape {:?} needs rank room {} and {need} bytes",
                        r.dims(),
                        r.dims().len()
                    ),
                ));
            }
        }
        for (r, o) in results.iter().zip(outs.iter_mut()) {
            // SAFETY: sizes checked above; buffers per the caller's contract.
            unsafe { tensor_to_c(r, o, "outputs") }?;
        }
        Ok(())
    })
}

/// Saves the model as an ONNX file (opset 21).
///
/// # Safety
/// `model` live handle; `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn xq_model_save_onnx(model: *const xq_model, path: *const c_char) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let (m, path) = unsafe { (arg_ref(model, "model")?, arg_str(path, "path")?) };
        crate::onnx::save_file(&m.prepared()?.graph, path)
    })
}

/// Serialises the model as ONNX into `buffer` (capacity `capacity`). `*size` receives the
/// size needed; call with `buffer = NULL, capacity = 0` to query it. Fails with
/// XQ_ERROR_INVALID_ARGUMENT (after writing `*size`) when the buffer is too small.
///
/// # Safety
/// `model` live handle; `buffer` has `capacity` writable bytes; `size` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_model_serialize_onnx(
    model: *const xq_model,
    buffer: *mut c_void,
    capacity: usize,
    size: *mut usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let m = unsafe { arg_ref(model, "model") }?;
        if size.is_null() {
            return Err(Error::NullPointer("size"));
        }
        let bytes = crate::onnx::to_bytes(&m.prepared()?.graph)?;
        // SAFETY: `size` is non-null and writable (caller's contract); the size is written
        // even on failure so the caller learns the capacity to provide.
        unsafe { size.write(bytes.len()) };
        if buffer.is_null() && capacity == 0 {
            return Ok(());
        }
        if capacity < bytes.len() || buffer.is_null() {
            return Err(Error::invalid_argument(
                "capacity",
                format!("{capacity} bytes; the model needs {}", bytes.len()),
            ));
        }
        // SAFETY: `buffer` holds `capacity >= bytes.len()` writable bytes (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer as *mut u8, bytes.len()) };
        Ok(())
    })
}

/// Adds a graph input. Negative `dims` entries are symbolic dimensions.
///
/// # Safety
/// `model` live handle; `name` NUL-terminated; `dims` points to `rank` int64 values.
#[no_mangle]
pub unsafe extern "C" fn xq_model_add_input(
    model: *mut xq_model,
    name: *const c_char,
    dtype: i32,
    dims: *const i64,
    rank: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract; rank bounded.
        let (m, name, dims) = unsafe {
            (
                arg_mut(model, "model")?,
                arg_str(name, "name")?,
                arg_slice(dims, rank, XQ_MAX_RANK, "dims")?,
            )
        };
        let dtype = dtype_from_c(dtype)?;
        let m = m.state_mut();
        if name.is_empty() || m.graph.tensor_info(name).is_some() || m.outputs.contains(name) {
            return Err(Error::invalid_argument(
                "name",
                format!("`{name}` is empty or already defined"),
            ));
        }
        let shape: Vec<Dim> = dims
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d < 0 {
                    Dim::Symbolic(format!("{name}_dim{i}"))
                } else {
                    Dim::Known(d as usize)
                }
            })
            .collect();
        let known: Vec<usize> = shape
            .iter()
            .filter_map(|d| if let Dim::Known(n) = d { Some(*n) } else { None })
            .collect();
        crate::ir::checked_numel(&known)?;
        m.graph.inputs.push(TensorInfo {
            name: name.to_string(),
            dtype,
            shape: Some(shape),
        });
        m.defined.insert(name.to_string());
        m.dirty = true;
        Ok(())
    })
}

/// Adds a constant tensor (weights); the data is copied.
///
/// # Safety
/// `model` live handle; `name` NUL-terminated; `value` follows the `xq_tensor` input contract.
#[no_mangle]
pub unsafe extern "C" fn xq_model_add_constant(
    model: *mut xq_model,
    name: *const c_char,
    value: *const xq_tensor,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let (m, name, value) = unsafe {
            (
                arg_mut(model, "model")?,
                arg_str(name, "name")?,
                arg_ref(value, "value")?,
            )
        };
        let m = m.state_mut();
        if name.is_empty() || m.graph.tensor_info(name).is_some() || m.outputs.contains(name) {
            return Err(Error::invalid_argument(
                "name",
                format!("`{name}` is empty or already defined"),
            ));
        }
        // SAFETY: `value` follows the input descriptor contract (caller).
        let t = unsafe { tensor_from_c(value, "value") }?;
        m.graph.initializers.insert(name.to_string(), t);
        m.defined.insert(name.to_string());
        m.dirty = true;
        Ok(())
    })
}

/// Kind of an `xq_attribute`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_attr_type {
    /// `i` holds the value.
    XQ_ATTR_INT = 0,
    /// `f` holds the value.
    XQ_ATTR_FLOAT = 1,
    /// `ints` holds `count` values.
    XQ_ATTR_INTS = 2,
    /// `floats` holds `count` values.
    XQ_ATTR_FLOATS = 3,
    /// `s` holds a NUL-terminated string.
    XQ_ATTR_STRING = 4,
}

/// A named node attribute, with ONNX's attribute names and meanings.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_attribute {
    /// Attribute name, e.g. "strides".
    pub name: *const c_char,
    /// Which field holds the value (an `xq_attr_type` value).
    pub r#type: i32,
    /// XQ_ATTR_INT value.
    pub i: i64,
    /// XQ_ATTR_FLOAT value.
    pub f: f32,
    /// XQ_ATTR_INTS values.
    pub ints: *const i64,
    /// XQ_ATTR_FLOATS values.
    pub floats: *const f32,
    /// Number of `ints` or `floats`.
    pub count: usize,
    /// XQ_ATTR_STRING value.
    pub s: *const c_char,
}

/// Reads an array of optional names (NULL entries become "").
///
/// # Safety
/// `ptr` must hold `n` pointers, each NULL or NUL-terminated.
unsafe fn names(ptr: *const *const c_char, n: usize, what: &'static str) -> Result<Vec<String>> {
    // SAFETY: caller's contract: `ptr` holds `n` pointers, each NULL (absent optional input)
    // or NUL-terminated.
    let list = unsafe { arg_slice(ptr, n, MAX_C_COUNT, what) }?;
    list.iter()
        .map(|&p| {
            if p.is_null() {
                Ok(String::new())
            } else {
                // SAFETY: non-null entries are NUL-terminated (this function's contract).
                unsafe { arg_str(p, what) }.map(str::to_string)
            }
        })
        .collect()
}

/// Reads one attribute.
///
/// # Safety
/// The pointer fields that `a.type` selects must be valid as `xq_attribute` documents.
unsafe fn attribute(a: &xq_attribute) -> Result<(String, AttrValue)> {
    // SAFETY: `name` is NULL (rejected) or NUL-terminated (the xq_attribute contract).
    let name = unsafe { arg_str(a.name, "attrs.name") }?.to_string();
    let value = match a.r#type {
        0 => AttrValue::Int(a.i),
        1 => AttrValue::Float(a.f),
        2 => {
            // SAFETY: for XQ_ATTR_INTS, `ints` holds `count` values (the xq_attribute
            // contract); counts above MAX_C_COUNT and NULL are rejected before reading.
            let ints = unsafe { arg_slice(a.ints, a.count, MAX_C_COUNT, "attrs.ints") }?;
            AttrValue::Ints(ints.to_vec())
        }
        3 => {
            // SAFETY: for XQ_ATTR_FLOATS, `floats` holds `count` values (the xq_attribute
            // contract); counts above MAX_C_COUNT and NULL are rejected before reading.
            let floats = unsafe { arg_slice(a.floats, a.count, MAX_C_COUNT, "attrs.floats") }?;
            AttrValue::Floats(floats.to_vec())
        }
        4 => {
            // SAFETY: for XQ_ATTR_STRING, `s` is NULL (rejected) or NUL-terminated (the
            // xq_attribute contract).
            AttrValue::String(unsafe { arg_str(a.s, "attrs.s") }?.to_string())
        }
        t => {
            return Err(Error::invalid_argument(
                "attrs.type",
                format!("{t} is not an xq_attr_type"),
            ))
        }
    };
    Ok((name, value))
}

/// Adds a node given by its ONNX op type (opset 21 semantics) and attributes. A NULL entry in
/// `inputs` marks an absent optional input. The graph is validated when it is next used.
///
/// # Safety
/// `model` live handle; strings NUL-terminated; arrays hold the given counts.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn xq_model_add_node(
    model: *mut xq_model,
    op_type: *const c_char,
    name: *const c_char,
    inputs: *const *const c_char,
    n_inputs: usize,
    outputs: *const *const c_char,
    n_outputs: usize,
    attrs: *const xq_attribute,
    n_attrs: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract for every pointer; counts bounded.
        let (m, op_type, name) = unsafe {
            (
                arg_mut(model, "model")?,
                arg_str(op_type, "op_type")?,
                arg_str(name, "name")?,
            )
        };
        // SAFETY: the arrays hold the given counts of valid entries (caller's contract).
        let inputs = unsafe { names(inputs, n_inputs, "inputs") }?;
        // SAFETY: as above.
        let outputs = unsafe { names(outputs, n_outputs, "outputs") }?;
        // SAFETY: `attrs` holds `n_attrs` entries (caller's contract); counts above MAX_C_COUNT
        // are rejected before reading.
        let attrs = unsafe { arg_slice(attrs, n_attrs, MAX_C_COUNT, "attrs") }?
            .iter()
            .map(|a| {
                // SAFETY: each entry follows the xq_attribute contract (caller's contract).
                unsafe { attribute(a) }
            })
            .collect::<Result<Vec<_>>>()?;
        let m = m.state_mut();
        crate::onnx::add_onnx_node(&mut m.graph, op_type, name, &inputs, &outputs, &attrs)?;
        m.defined.extend(outputs.into_iter().filter(|o| !o.is_empty()));
        m.dirty = true;
        Ok(())
    })
}

/// Declares tensor `name` a graph output (its type is inferred); add it after the node
/// that produces it. A name that no input, constant or node defines, or that is already an
/// output, fails at once; the types of the new outputs are inferred together, in one pass,
/// when the model is next used.
///
/// # Safety
/// `model` live handle; `name` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn xq_model_add_output(model: *mut xq_model, name: *const c_char) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let (m, name) = unsafe { (arg_mut(model, "model")?, arg_str(name, "name")?) };
        let m = m.state_mut();
        if m.outputs.contains(name) {
            return Err(Error::invalid_argument(
                "name",
                format!("`{name}` is already an output"),
            ));
        }
        if !m.defined.contains(name) {
            return Err(Error::invalid_argument(
                "name",
                format!("no input, constant or node output is named `{name}`"),
            ));
        }
        m.pending_outputs.push(name.to_string());
        m.outputs.insert(name.to_string());
        m.dirty = true;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};

    fn ok(status: xq_status) {
        assert_eq!(status, xq_status::XQ_OK, "{}", crate::ffi::boundary::last_error());
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// Adds `name` as an output; the status.
    fn add_output(m: *mut xq_model, name: &str) -> xq_status {
        // SAFETY: live model; NUL-terminated name.
        unsafe { xq_model_add_output(m, c(name).as_ptr()) }
    }

    fn passes(m: *mut xq_model) -> usize {
        // SAFETY: live model, not used elsewhere during this read.
        unsafe { &*m }.state.read().unwrap().output_inference_passes
    }

    /// A chain of 1000 Relu nodes with every node output declared an output: the checks of
    /// `xq_model_add_output` are immediate, and the types of all 1000 outputs come from one
    /// shape-inference pass at the next query.
    #[test]
    fn outputs_are_typed_by_one_inference_pass() {
        const N: usize = 1000;
        let mut m = null_mut();
        // SAFETY: NULL name is allowed; writable out.
        ok(unsafe { xq_model_new(null(), &mut m) });
        let dims = [1i64, 4];
        // SAFETY: live model; NUL-terminated name; `dims` holds 2 values.
        ok(unsafe {
            xq_model_add_input(
                m,
                c("x").as_ptr(),
                xq_dtype::XQ_DTYPE_F32 as i32,
                dims.as_ptr(),
                2,
            )
        });
        for i in 0..N {
            let input = c(&if i == 0 {
                "x".to_string()
            } else {
                format!("t{}", i - 1)
            });
            let output = c(&format!("t{i}"));
            let (ins, outs) = ([input.as_ptr()], [output.as_ptr()]);
            // SAFETY: live model; arrays hold the given counts of NUL-terminated strings.
            ok(unsafe {
                xq_model_add_node(
                    m,
                    c("Relu").as_ptr(),
                    c(&format!("relu{i}")).as_ptr(),
                    ins.as_ptr(),
                    1,
                    outs.as_ptr(),
                    1,
                    null(),
                    0,
                )
            });
        }
        for i in 0..N {
            ok(add_output(m, &format!("t{i}")));
        }
        // Unknown names and duplicates fail at once.
        assert_eq!(add_output(m, "nowhere"), xq_status::XQ_ERROR_INVALID_ARGUMENT);
        assert!(crate::ffi::boundary::last_error().contains("no input, constant or node output"));
        assert_eq!(add_output(m, "t7"), xq_status::XQ_ERROR_INVALID_ARGUMENT);
        assert!(crate::ffi::boundary::last_error().contains("already an output"));
        assert_eq!(passes(m), 0);

        let mut count = 0;
        // SAFETY: live model; writable out.
        ok(unsafe { xq_model_output_count(m, &mut count) });
        assert_eq!(count, N);
        assert_eq!(passes(m), 1);
        for i in 0..N {
            let mut info = xq_value_info {
                name: null(),
                dtype: xq_dtype::XQ_DTYPE_F32,
                rank: 0,
            };
            // SAFETY: live model; writable out.
            ok(unsafe { xq_model_output(m, i, &mut info) });
            // SAFETY: the name lives as long as the model.
            let name = unsafe { std::ffi::CStr::from_ptr(info.name) };
            assert_eq!(name.to_str().unwrap(), format!("t{i}"));
            assert_eq!(info.dtype, xq_dtype::XQ_DTYPE_F32);
        }
        assert_eq!(passes(m), 1, "queries of a prepared model infer nothing");
        // One more output after the model was prepared: one more pass.
        ok(add_output(m, "x"));
        // SAFETY: live model; writable out.
        ok(unsafe { xq_model_output_count(m, &mut count) });
        assert_eq!((count, passes(m)), (N + 1, 2));
        // SAFETY: live model, freed once.
        unsafe { xq_model_free(m) };
    }

    /// Queries take `const xq_model *` and may run at once, so the handle must be shareable.
    #[test]
    fn model_handles_are_sync() {
        fn sync<T: Sync + Send>() {}
        sync::<xq_model>();
    }
}
