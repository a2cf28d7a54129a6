//! C API of compiled programs: compile a (QDQ) model into a program, save / load program
//! files, query inputs and outputs, and execute. A program is immutable: `xq_execute` may be
//! called on one program from several threads at once.

use super::boundary::{arg_ref, arg_slice, arg_str, free_handle, guard, into_handle, Out};
use super::enums::{xq_io_side, xq_partition_mode};
use super::model::xq_model;
use super::status::xq_status;
use super::tensor::{tensor_assign_from_c, tensor_from_c, tensor_to_c, xq_dtype, xq_tensor};
use crate::delegate::int8_io::{io_quant, make_int8_io};
use crate::delegate::{lower, PartitionMode};
use crate::ir::{Dim, TensorInfo};
use crate::runtime::{Program, ProgramOptions};
use crate::{Error, Result};
use std::ffi::{c_char, c_void, CString};

/// Upper bound on input/output counts accepted from C.
pub(super) const MAX_C_COUNT: usize = 1 << 20;
/// Upper bound on a program buffer accepted from C (the container's own limits apply too).
const MAX_PROGRAM_BYTES: usize = 1 << 31;

/// `xq_partition_mode::XQ_PARTITION_ALL` as the `int32_t` that C passes.
pub const XQ_PARTITION_ALL: i32 = xq_partition_mode::XQ_PARTITION_ALL as i32;
/// `xq_partition_mode::XQ_PARTITION_PER_OP` as the `int32_t` that C passes.
pub const XQ_PARTITION_PER_OP: i32 = xq_partition_mode::XQ_PARTITION_PER_OP as i32;
/// `xq_partition_mode::XQ_PARTITION_NONE` as the `int32_t` that C passes.
pub const XQ_PARTITION_NONE: i32 = xq_partition_mode::XQ_PARTITION_NONE as i32;

/// Options of a compiled or loaded program (0.1). Its size is frozen; since 0.2 use
/// `xq_program_config`, which can grow.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_program_options {
    /// Threads per execution, the caller included; 0 = the number of physical cores.
    pub threads: usize,
    /// An `xq_partition_mode` (ignored when loading a program file).
    pub partition_mode: i32,
    /// Nonzero: int8 boundaries. Inputs that only feed partitions are taken as int8 (or
    /// uint8) tensors already quantized, outputs made by partitions are returned as int8
    /// (or uint8); `xq_program_io_qparams` gives their scale and zero point. 0 (default):
    /// every boundary is `f32`. Ignored when loading a program file (it keeps its own).
    pub int8_io: i32,
}

/// The default options: physical cores, `XQ_PARTITION_ALL`. Deprecated since 0.2 (removed
/// in 0.3): a struct returned by value can never grow.
#[no_mangle]
#[deprecated(note = "use xq_program_config_init")]
pub extern "C" fn xq_program_options_default() -> xq_program_options {
    let d = DEFAULT_CONFIG;
    xq_program_options {
        threads: d.threads,
        partition_mode: d.partition_mode,
        int8_io: d.int8_io,
    }
}

/// Options of a compiled or loaded program, versioned by size: fields are only ever appended.
/// Fill it with `xq_program_config_init(&config, sizeof config)`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_program_config {
    /// `sizeof(xq_program_config)` as the caller compiled it (set by `xq_program_config_init`).
    /// libxq takes defaults for fields past it and rejects nonzero bytes past its own size.
    pub struct_size: usize,
    /// Threads per execution, the caller included; 0 = the number of physical cores.
    pub threads: usize,
    /// An `xq_partition_mode` (ignored when loading a program file).
    pub partition_mode: i32,
    /// Nonzero: int8 boundaries (see `xq_program_options.int8_io`). 0 (default): every
    /// boundary is `f32`. Ignored when loading a program file (it keeps its own).
    pub int8_io: i32,
}

/// The size of the first version of `xq_program_config` (0.2): the smallest accepted.
const CONFIG_V1_SIZE: usize = std::mem::offset_of!(xq_program_config, int8_io) + std::mem::size_of::<i32>();
/// Upper bound on a `struct_size` accepted from C.
const MAX_CONFIG_SIZE: usize = 4096;

/// The defaults: physical cores, `XQ_PARTITION_ALL`, `f32` boundaries.
const DEFAULT_CONFIG: xq_program_config = xq_program_config {
    struct_size: std::mem::size_of::<xq_program_config>(),
    threads: 0,
    partition_mode: XQ_PARTITION_ALL,
    int8_io: 0,
};

/// Checks a `struct_size` from C: at least the first version, at most a sane bound.
fn check_config_size(size: usize) -> Result<()> {
    if size < CONFIG_V1_SIZE {
        return Err(Error::invalid_argument(
            "struct_size",
            format!("{size} is smaller than the first xq_program_config ({CONFIG_V1_SIZE} bytes)"),
        ));
    }
    if size > MAX_CONFIG_SIZE {
        return Err(Error::invalid_argument(
            "struct_size",
            format!("{size} bytes is larger than any xq_program_config (limit {MAX_CONFIG_SIZE})"),
        ));
    }
    Ok(())
}

/// Fills the `struct_size` bytes at `config` with the defaults (bytes past the fields this
/// libxq knows are zeroed) and sets `config->struct_size`. Pass
/// `sizeof(xq_program_config)`; a size below the first version's (24 bytes) is
/// `XQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` NULL or writable for `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn xq_program_config_init(
    config: *mut xq_program_config,
    struct_size: usize,
) -> xq_status {
    guard(|| {
        if config.is_null() {
            return Err(Error::NullPointer("config"));
        }
        check_config_size(struct_size)?;
        let defaults = xq_program_config {
            struct_size,
            ..DEFAULT_CONFIG
        };
        let known = struct_size.min(std::mem::size_of::<xq_program_config>());
        let dst = config as *mut u8;
        // SAFETY: `config` is non-null and writable for `struct_size` bytes (caller's
        // contract); `known <= struct_size` bytes are copied from a local of at least `known`
        // bytes, and the tail `known..struct_size` lies inside the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(&defaults as *const xq_program_config as *const u8, dst, known);
            std::ptr::write_bytes(dst.add(known), 0, struct_size - known);
        }
        Ok(())
    })
}

/// An opaque compiled program.
pub struct xq_program {
    pub(super) program: Program,
    /// The C strings of the report data, made at the first query.
    pub(super) report_strings: super::report::ReportStrings,
    report: CString,
    input_names: Vec<CString>,
    output_names: Vec<CString>,
    /// Input and output tensors of `xq_execute` calls not in use, kept so that a
    /// steady-state call copies into them instead of allocating.
    pub(super) io: std::sync::Mutex<Vec<ExecuteIo>>,
}

/// The tensors one `xq_execute` call copies the caller's inputs into and the program's
/// outputs out of.
#[derive(Default)]
pub(super) struct ExecuteIo {
    inputs: Vec<crate::ir::Tensor>,
    outputs: Vec<crate::ir::Tensor>,
}

impl xq_program {
    fn new(program: Program) -> xq_program {
        let c = |s: &str| CString::new(s.replace('\0', "?")).unwrap_or_default();
        xq_program {
            report: c(program.report()),
            input_names: program.inputs().iter().map(|i| c(&i.name)).collect(),
            output_names: program.outputs().iter().map(|i| c(&i.name)).collect(),
            report_strings: Default::default(),
            io: Default::default(),
            program,
        }
    }
}

/// The options of `xq_program_compile` / `_load_*` in Rust terms.
struct Options {
    program: ProgramOptions,
    mode: PartitionMode,
    int8_io: bool,
}

/// Converts C option values into [`Options`]; `field` prefixes the names in errors.
fn options_from_values(
    threads: usize,
    partition_mode: i32,
    int8_io: i32,
    field: &'static str,
) -> Result<Options> {
    let mode = match partition_mode {
        XQ_PARTITION_ALL => PartitionMode::All,
        XQ_PARTITION_PER_OP => PartitionMode::PerOp,
        XQ_PARTITION_NONE => PartitionMode::None,
        m => {
            return Err(Error::invalid_argument(
                field,
                format!("{m} is not an xq_partition_mode (XQ_PARTITION_*) value"),
            ))
        }
    };
    Ok(Options {
        program: ProgramOptions { threads },
        mode,
        int8_io: int8_io != 0,
    })
}

fn options_from_c(options: Option<&xq_program_options>) -> Result<Options> {
    match options {
        Some(o) => options_from_values(o.threads, o.partition_mode, o.int8_io, "partition_mode"),
        None => config_options(&DEFAULT_CONFIG),
    }
}

/// The options of a complete (libxq-sized) config.
fn config_options(c: &xq_program_config) -> Result<Options> {
    options_from_values(c.threads, c.partition_mode, c.int8_io, "config.partition_mode")
}

/// Reads a size-versioned config: defaults for fields past `struct_size`; nonzero bytes past
/// the fields this libxq knows are `XQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `config` must be NULL or readable for `config->struct_size` bytes.
unsafe fn read_config(config: *const xq_program_config) -> Result<Options> {
    if config.is_null() {
        return config_options(&DEFAULT_CONFIG);
    }
    // SAFETY: non-null; every version starts with `struct_size` (caller's contract).
    let size = unsafe { std::ptr::read(config as *const usize) };
    check_config_size(size)?;
    let known = size.min(std::mem::size_of::<xq_program_config>());
    let src = config as *const u8;
    // SAFETY: the caller's buffer holds `size >= known` readable bytes.
    let tail = unsafe { std::slice::from_raw_parts(src.add(known), size - known) };
    if let Some(at) = tail.iter().position(|&b| b != 0) {
        return Err(Error::Unsupported(format!(
            "xq_program_config has a nonzero byte at offset {} (struct_size {size}): an option \
             not known to libxq {} (which knows {known} bytes)",
            known + at,
            env!("CARGO_PKG_VERSION"),
        )));
    }
    let mut c = DEFAULT_CONFIG;
    // SAFETY: `known` bytes are readable at `src` (caller's contract) and fit in `c`, a
    // plain-data struct for which any bytes of its integer fields are valid.
    unsafe { std::ptr::copy_nonoverlapping(src, &mut c as *mut xq_program_config as *mut u8, known) };
    config_options(&c)
}

/// # Safety
/// `options` must be NULL or point to a readable `xq_program_options`.
unsafe fn read_options(options: *const xq_program_options) -> Result<Options> {
    if options.is_null() {
        return options_from_c(None);
    }
    // SAFETY: non-null and readable (caller's contract).
    options_from_c(Some(unsafe { arg_ref(options, "options") }?))
}

/// Partitions and lowers the model's graph into a program.
fn compile(m: &xq_model, opts: Options) -> Result<xq_program> {
    let (mut spec, _) = m.with_prepared_graph(|g| lower(g, opts.mode))?;
    if opts.int8_io {
        make_int8_io(&mut spec);
    }
    Ok(xq_program::new(Program::new(spec, opts.program)?))
}

/// Partitions and lowers a QDQ model into a program. NULL `config` means the defaults.
/// Every input shape must be fixed (`xq_model_fix_input_shape`), else the call fails with
/// `XQ_ERROR_INVALID_STATE` naming the input and dim. Two kinds of program accept unfixed
/// dims and then run inputs of any size: `XQ_PARTITION_NONE` (interpreter only), and a model
/// quantized with `XQ_ACTIVATIONS_DYNAMIC` (its linear layers run int8 at any number of rows,
/// the rest in the interpreter): compile a decoder once and feed it every sequence and cache
/// length. A model without nodes or outputs is `XQ_ERROR_INVALID_MODEL`.
///
/// # Safety
/// `model` must be a live model handle not modified concurrently; `config` NULL or readable
/// for `config->struct_size` bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_compile_with_config(
    model: *const xq_model,
    config: *const xq_program_config,
    out: *mut *mut xq_program,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: caller's contract.
        let opts = unsafe { read_config(config) }?;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(into_handle(compile(m, opts)?));
        Ok(())
    })
}

/// As `xq_program_compile_with_config`, with 0.1 options (NULL means the defaults).
/// Deprecated since 0.2 (removed in 0.3).
///
/// # Safety
/// `model` must be a live model handle not modified concurrently; `options` NULL or
/// readable; `out` writable.
#[no_mangle]
#[deprecated(note = "use xq_program_compile_with_config")]
pub unsafe extern "C" fn xq_program_compile(
    model: *const xq_model,
    options: *const xq_program_options,
    out: *mut *mut xq_program,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: caller's contract.
        let opts = unsafe { read_options(options) }?;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(into_handle(compile(m, opts)?));
        Ok(())
    })
}

/// Loads a program file through a read-only memory map, open until the program is freed
/// (the file must not be modified meanwhile); the ONNX model is not needed. When the file
/// holds weights packed for this CPU's kernels (saved on a machine of the same kind), they
/// are used in place; otherwise they are packed at load. Of `config` (NULL: defaults) only
/// `threads` applies.
///
/// # Safety
/// `path` NUL-terminated; `config` NULL or readable for `config->struct_size` bytes; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_load_file_with_config(
    path: *const c_char,
    config: *const xq_program_config,
    out: *mut *mut xq_program,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: caller's contract.
        let opts = unsafe { read_config(config) }?.program;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(into_handle(xq_program::new(Program::load_file(path, opts)?)));
        Ok(())
    })
}

/// As `xq_program_load_file_with_config`, with 0.1 options. Deprecated since 0.2 (removed
/// in 0.3).
///
/// # Safety
/// `path` NUL-terminated; `options` NULL or readable; `out` writable.
#[no_mangle]
#[deprecated(note = "use xq_program_load_file_with_config")]
pub unsafe extern "C" fn xq_program_load_file(
    path: *const c_char,
    options: *const xq_program_options,
    out: *mut *mut xq_program,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: caller's contract.
        let opts = unsafe { read_options(options) }?.program;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(into_handle(xq_program::new(Program::load_file(path, opts)?)));
        Ok(())
    })
}

/// Loads a program from `length` bytes at `data` (copied; the caller keeps its buffer). Of
/// `config` (NULL: defaults) only `threads` applies.
///
/// # Safety
/// `data` readable for `length` bytes; `config` NULL or readable for `config->struct_size`
/// bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_load_buffer_with_config(
    data: *const c_void,
    length: usize,
    config: *const xq_program_config,
    out: *mut *mut xq_program,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract; length bounded.
        let bytes = unsafe { arg_slice(data as *const u8, length, MAX_PROGRAM_BYTES, "data") }?;
        // SAFETY: caller's contract.
        let opts = unsafe { read_config(config) }?.program;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        let aligned = crate::format::ProgramBytes::copy_from(bytes)?;
        out.write(into_handle(xq_program::new(Program::load_bytes(aligned, opts)?)));
        Ok(())
    })
}

/// As `xq_program_load_buffer_with_config`, with 0.1 options. Deprecated since 0.2 (removed
/// in 0.3).
///
/// # Safety
/// `data` readable for `length` bytes; `options` NULL or readable; `out` writable.
#[no_mangle]
#[deprecated(note = "use xq_program_load_buffer_with_config")]
pub unsafe extern "C" fn xq_program_load_buffer(
    data: *const c_void,
    length: usize,
    options: *const xq_program_options,
    out: *mut *mut xq_program,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract; length bounded.
        let bytes = unsafe { arg_slice(data as *const u8, length, MAX_PROGRAM_BYTES, "data") }?;
        // SAFETY: caller's contract.
        let opts = unsafe { read_options(options) }?.program;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        let aligned = crate::format::ProgramBytes::copy_from(bytes)?;
        out.write(into_handle(xq_program::new(Program::load_bytes(aligned, opts)?)));
        Ok(())
    })
}

/// Writes the program to a `.xq` file.
///
/// # Safety
/// `program` live handle; `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn xq_program_save(program: *const xq_program, path: *const c_char) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let path = unsafe { arg_str(path, "path") }?;
        p.program.save(path)
    })
}

/// The partitioning report: partitions and, for each node not delegated, why. The string
/// is valid until the program is freed. The same report as data: `xq_program_report_summary`,
/// `xq_program_report_node` and `xq_program_report_json`.
///
/// # Safety
/// `program` live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_report(program: *const xq_program, out: *mut *const c_char) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(p.report.as_ptr());
        Ok(())
    })
}

/// Reads the `output` selector (an `xq_io_side`) of the `xq_program_io_*` functions.
fn io_side(output: i32) -> Result<bool> {
    const INPUT: i32 = xq_io_side::XQ_IO_INPUT as i32;
    const OUTPUT: i32 = xq_io_side::XQ_IO_OUTPUT as i32;
    match output {
        INPUT => Ok(false),
        OUTPUT => Ok(true),
        v => Err(Error::invalid_argument(
            "output",
            format!("{v} is neither 0 (inputs) nor 1 (outputs)"),
        )),
    }
}

/// Number of inputs (`output` = `XQ_IO_INPUT`) or outputs (`XQ_IO_OUTPUT`); `output` is an
/// `xq_io_side`, any other value is `XQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `program` live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_io_count(
    program: *const xq_program,
    output: i32,
    out: *mut usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(if io_side(output)? {
            p.output_names.len()
        } else {
            p.input_names.len()
        });
        Ok(())
    })
}

/// Name, element type and shape of input (`output` = `XQ_IO_INPUT`) or output
/// (`XQ_IO_OUTPUT`) `index`.
/// `dims` receives up to `max_rank` sizes (-1 for a symbolic size); `*rank` the rank. Any
/// other `output`, or an `index` out of range, is `XQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `program` live handle; `name`, `dtype`, `rank` writable; `dims` writable for `max_rank`
/// entries (may be NULL when `max_rank` is 0).
#[no_mangle]
pub unsafe extern "C" fn xq_program_io_info(
    program: *const xq_program,
    output: i32,
    index: usize,
    name: *mut *const c_char,
    dtype: *mut xq_dtype,
    dims: *mut i64,
    max_rank: usize,
    rank: *mut usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract (all four outputs).
        let (name_out, dtype_out, rank_out) = unsafe {
            (
                Out::new(name, "name")?,
                Out::new(dtype, "dtype")?,
                Out::new(rank, "rank")?,
            )
        };
        let (infos, names): (&[TensorInfo], &[CString]) = if io_side(output)? {
            (p.program.outputs(), &p.output_names)
        } else {
            (p.program.inputs(), &p.input_names)
        };
        let info = infos.get(index).ok_or_else(|| {
            Error::invalid_argument(
                "index",
                format!("{index} is out of range ({} values)", infos.len()),
            )
        })?;
        let shape = info.shape.clone().unwrap_or_default();
        if shape.len() > max_rank {
            return Err(Error::invalid_argument(
                "max_rank",
                format!("the value has rank {}, room for {max_rank}", shape.len()),
            ));
        }
        if !shape.is_empty() {
            if dims.is_null() {
                return Err(Error::NullPointer("dims"));
            }
            // SAFETY: `dims` has room for `max_rank >= shape.len()` entries (caller's contract).
            let d = unsafe { std::slice::from_raw_parts_mut(dims, shape.len()) };
            for (o, s) in d.iter_mut().zip(&shape) {
                *o = match s {
                    Dim::Known(n) => *n as i64,
                    Dim::Symbolic(_) => -1,
                };
            }
        }
        name_out.write(names[index].as_ptr());
        dtype_out.write(info.dtype.into());
        rank_out.write(shape.len());
        Ok(())
    })
}

/// Scale and zero point of an int8 (or uint8) input (`output` = `XQ_IO_INPUT`) or output
/// (`XQ_IO_OUTPUT`) `index` of a program compiled with `int8_io`: the tensor holds
/// `round(x / scale) + zero_point`. An `f32` boundary, an `output` that is not an
/// `xq_io_side` or an `index` out of range is `XQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `program` live handle; `scale` and `zero_point` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_io_qparams(
    program: *const xq_program,
    output: i32,
    index: usize,
    scale: *mut f32,
    zero_point: *mut i32,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract (both outputs).
        let (scale_out, zp_out) = unsafe { (Out::new(scale, "scale")?, Out::new(zero_point, "zero_point")?) };
        let output = io_side(output)?;
        let count = if output {
            p.program.outputs().len()
        } else {
            p.program.inputs().len()
        };
        if index >= count {
            return Err(Error::invalid_argument(
                "index",
                format!("{index} is out of range ({count} values)"),
            ));
        }
        let q = io_quant(p.program.spec(), output, index)
            .ok_or_else(|| Error::invalid_argument("index", format!("boundary {index} is f32, not int8")))?;
        scale_out.write(q.scale);
        zp_out.write(q.zero_point);
        Ok(())
    })
}

/// Executes the program. `inputs` follow the program's input order; `outputs` its output
/// order (each with room for the result's rank and bytes; written only on success).
/// Safe to call concurrently on one program.
///
/// # Safety
/// `program` live handle; `inputs`/`outputs` point to `n_inputs`/`n_outputs` descriptors
/// following the `xq_tensor` contract.
#[no_mangle]
pub unsafe extern "C" fn xq_execute(
    program: *const xq_program,
    inputs: *const xq_tensor,
    n_inputs: usize,
    outputs: *mut xq_tensor,
    n_outputs: usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract; count bounded.
        let descs = unsafe { arg_slice(inputs, n_inputs, MAX_C_COUNT, "inputs") }?;
        // SAFETY: forwarded contract.
        unsafe { execute_pooled(p, descs, outputs, n_outputs, None) }
    })
}

/// `xq_execute`'s body on I/O tensors taken from the program's pool (one set per concurrent
/// call, reused by the next), recording the steps' times into `profile` when given.
///
/// # Safety
/// As `xq_execute`, with `descs` its input descriptors.
pub(super) unsafe fn execute_pooled(
    p: &xq_program,
    descs: &[xq_tensor],
    outputs: *mut xq_tensor,
    n_outputs: usize,
    profile: Option<&mut Vec<(String, std::time::Duration)>>,
) -> Result<()> {
    let mut io =
        p.io.lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
    // SAFETY: forwarded contract.
    let result = unsafe { execute_with(p, &mut io, descs, outputs, n_outputs, profile) };
    p.io.lock().unwrap_or_else(|e| e.into_inner()).push(io);
    result
}

/// The body of `xq_execute`, with the tensors `io` to copy inputs and outputs through.
///
/// # Safety
/// As `xq_execute`, with `descs` its input descriptors.
unsafe fn execute_with(
    p: &xq_program,
    io: &mut ExecuteIo,
    descs: &[xq_tensor],
    outputs: *mut xq_tensor,
    n_outputs: usize,
    profile: Option<&mut Vec<(String, std::time::Duration)>>,
) -> Result<()> {
    io.inputs.truncate(descs.len());
    for (i, d) in descs.iter().enumerate() {
        match io.inputs.get_mut(i) {
            // SAFETY: each descriptor follows the xq_tensor contract (caller).
            Some(t) => unsafe { tensor_assign_from_c(d, t, "inputs") }?,
            // SAFETY: as above.
            None => io.inputs.push(unsafe { tensor_from_c(d, "inputs") }?),
        }
    }
    if n_outputs != p.output_names.len() {
        return Err(Error::invalid_argument(
            "n_outputs",
            format!("the program has {} outputs", p.output_names.len()),
        ));
    }
    if outputs.is_null() && n_outputs > 0 {
        return Err(Error::NullPointer("outputs"));
    }
    io.outputs
        .resize_with(n_outputs, || crate::ir::Tensor::scalar_f32(0.0));
    match profile {
        Some(steps) => *steps = p.program.profile_into(&io.inputs, &mut io.outputs)?,
        None => p.program.execute_into(&io.inputs, &mut io.outputs)?,
    }
    let results = &io.outputs;
    // SAFETY: `outputs` points to `n_outputs` descriptors (caller's contract), non-null.
    let outs = unsafe { std::slice::from_raw_parts_mut(outputs, n_outputs) };
    for (r, o) in results.iter().zip(outs.iter()) {
        let need = r.le_byte_len();
        if o.rank < r.dims().len() || o.byte_length < need {
            return Err(Error::invalid_argument(
                "outputs",
                format!("an output of shape {:?} needs {need} bytes", r.dims()),
            ));
        }
    }
    for (r, o) in results.iter().zip(outs.iter_mut()) {
        // SAFETY: sizes checked above; buffers per the caller's contract.
        unsafe { tensor_to_c(r, o, "outputs") }?;
    }
    Ok(())
}

/// Frees a program; NULL is a no-op.
///
/// # Safety
/// `program` NULL or a live handle not used by any other thread.
#[no_mangle]
pub unsafe extern "C" fn xq_program_free(program: *mut xq_program) {
    // SAFETY: caller's contract.
    unsafe { free_handle(program) }
}
