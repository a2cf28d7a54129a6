//! C API of the partitioning report as data: the counts (`xq_program_report_summary`), one
//! record per compute node (`xq_program_report_node_count`, `xq_program_report_node`), the
//! whole report as JSON (`xq_program_report_json`) and the names of the reason codes
//! (`xq_reason_name`).
//!
//! The out structs are versioned by size: the caller sets `struct_size` to the size it was
//! compiled with, libxq writes the fields it knows and zeroes the rest of those bytes. A
//! program loaded from a file that predates the report data answers these queries with
//! `XQ_ERROR_UNSUPPORTED`; its text report (`xq_program_report`) still works.

use super::boundary::{arg_ref, guard, Out};
use super::program::xq_program;
use super::status::xq_status;
use crate::program::{Reason, ReportData};
use crate::{Error, Result};
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

/// Why a compute node was not delegated (`xq_report_node.reason`). The numbers are part of
/// the ABI and of program files: never renumbered, only appended, so treat a value this
/// header does not name as "another reason".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_reason {
    /// The node is delegated (no reason).
    XQ_REASON_NONE = 0,
    /// No int8 kernel implements the operator.
    XQ_REASON_UNSUPPORTED_OP = 1,
    /// An operand has an element type the kernels do not take.
    XQ_REASON_DTYPE = 2,
    /// A shape is unknown or not supported (rank, broadcast, axis).
    XQ_REASON_SHAPE = 3,
    /// An attribute value is not supported.
    XQ_REASON_ATTRIBUTE = 4,
    /// Quantization parameters are missing, per-axis where per-tensor is needed, or differ
    /// where they must be equal.
    XQ_REASON_QPARAMS = 5,
    /// A weight (or bias) is not a constant.
    XQ_REASON_NON_CONSTANT_WEIGHT = 6,
    /// The node's inputs or outputs are not quantized (no DQ before / Q after).
    XQ_REASON_NOT_QUANTIZED = 7,
}

impl xq_reason {
    /// The enumerator of a reason of the delegate.
    pub fn of(reason: Reason) -> xq_reason {
        match reason {
            Reason::UnsupportedOp => xq_reason::XQ_REASON_UNSUPPORTED_OP,
            Reason::Dtype => xq_reason::XQ_REASON_DTYPE,
            Reason::Shape => xq_reason::XQ_REASON_SHAPE,
            Reason::Attribute => xq_reason::XQ_REASON_ATTRIBUTE,
            Reason::QParams => xq_reason::XQ_REASON_QPARAMS,
            Reason::NonConstantWeight => xq_reason::XQ_REASON_NON_CONSTANT_WEIGHT,
            Reason::NotQuantized => xq_reason::XQ_REASON_NOT_QUANTIZED,
        }
    }
}

/// The counts of the partitioning report (the first line of `xq_program_report`'s text).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct xq_report_summary {
    /// Set by the caller to `sizeof(xq_report_summary)` as it was compiled; libxq writes at
    /// most that many bytes and leaves this field as it is.
    pub struct_size: usize,
    /// Number of partitions.
    pub partitions: usize,
    /// Compute nodes delegated to a partition.
    pub delegated_nodes: usize,
    /// Compute nodes left to the interpreter (each with a reason).
    pub refused_nodes: usize,
    /// Nodes the interpreter runs (compute and quantize / dequantize plumbing).
    pub interpreted_nodes: usize,
    /// Nodes in the source graph.
    pub graph_nodes: usize,
}

/// One compute node of the source graph, in graph order. The strings are valid until the
/// program is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_report_node {
    /// Set by the caller to `sizeof(xq_report_node)` as it was compiled; libxq writes at most
    /// that many bytes and leaves this field as it is.
    pub struct_size: usize,
    /// Node name (may be empty).
    pub name: *const c_char,
    /// ONNX op type.
    pub op_type: *const c_char,
    /// The partition that lowers the node, or -1 when it is not delegated.
    pub partition: i32,
    /// An `xq_reason`: `XQ_REASON_NONE` when delegated. New codes are appended; a program
    /// file of a newer libxq may hold values this header does not name.
    pub reason: i32,
    /// Why the node is not delegated, in words (empty when delegated).
    pub detail: *const c_char,
}

/// The C strings of a program's report data, made at the first query.
#[derive(Default)]
pub(super) struct ReportStrings {
    /// Per node: name, op type, detail.
    nodes: OnceLock<Vec<[CString; 3]>>,
    /// The JSON text.
    json: OnceLock<CString>,
}

/// Upper bound on a `struct_size` accepted from C.
const MAX_STRUCT_SIZE: usize = 4096;

/// A C string of `s` (a NUL inside becomes `?`).
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "?")).unwrap_or_default()
}

/// The program's report data, or `XQ_ERROR_UNSUPPORTED` for a file that predates it.
fn report_data(p: &xq_program) -> Result<&ReportData> {
    p.program
        .spec()
        .report_data
        .as_ref()
        .ok_or_else(|| Error::Unsupported("this program file predates report data; recompile it".into()))
}

/// An out struct whose first field is `struct_size`, checked before anything is written.
struct SizedOut<T> {
    ptr: *mut T,
    size: usize,
}

impl<T: Copy> SizedOut<T> {
    /// Checks `ptr` and the `struct_size` the caller set: at least the first version of `T`
    /// (its size in this libxq, since `T` has one version so far), at most a sane bound.
    ///
    /// # Safety
    /// `ptr` NULL or pointing to a `T` whose first `usize` is readable and whose
    /// `struct_size` bytes are writable.
    unsafe fn new(ptr: *mut T, name: &'static str) -> Result<Self> {
        if ptr.is_null() {
            return Err(Error::NullPointer(name));
        }
        // SAFETY: non-null; every version of `T` starts with `struct_size` (caller's contract).
        let size = unsafe { std::ptr::read(ptr.cast::<usize>()) };
        let first = std::mem::size_of::<T>();
        if size < first || size > MAX_STRUCT_SIZE {
            return Err(Error::invalid_argument(
                "struct_size",
                format!(
                    "{name}->struct_size is {size}; set it to sizeof the struct ({first} bytes in \
                     this libxq; at most {MAX_STRUCT_SIZE})"
                ),
            ));
        }
        Ok(SizedOut { ptr, size })
    }

    /// The `struct_size` the caller set.
    fn size(&self) -> usize {
        self.size
    }

    /// Writes `value` (whose `struct_size` the caller of this function set to
    /// [`SizedOut::size`]) and zeroes the caller's bytes past it.
    fn write(self, value: T) {
        let known = std::mem::size_of::<T>();
        // SAFETY: `ptr` is non-null and writable for `size >= known` bytes (checked in `new`,
        // caller's contract); the tail `known..size` lies inside the caller's buffer.
        unsafe {
            std::ptr::write(self.ptr, value);
            std::ptr::write_bytes(self.ptr.cast::<u8>().add(known), 0, self.size - known);
        }
    }
}

/// The counts of the partitioning report. Set `out->struct_size` first. A program file
/// without report data (written by an older libxq) is `XQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `program` live handle; `out` NULL or writable for `out->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn xq_program_report_summary(
    program: *const xq_program,
    out: *mut xq_report_summary,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let out = unsafe { SizedOut::new(out, "out") }?;
        let r = report_data(p)?;
        let summary = xq_report_summary {
            struct_size: out.size(),
            partitions: r.partitions,
            delegated_nodes: r.delegated_nodes(),
            refused_nodes: r.refused_nodes(),
            interpreted_nodes: r.interpreted_nodes,
            graph_nodes: r.graph_nodes,
        };
        out.write(summary);
        Ok(())
    })
}

/// Number of node records (delegated plus refused compute nodes). A program file without
/// report data is `XQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `program` live handle; `count` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_report_node_count(
    program: *const xq_program,
    count: *mut usize,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let count = unsafe { Out::new(count, "count") }?;
        count.write(report_data(p)?.nodes.len());
        Ok(())
    })
}

/// Node record `index` (graph order; below `xq_program_report_node_count`). Set
/// `out->struct_size` first. Its strings are valid until the program is freed. An `index`
/// out of range is `XQ_ERROR_INVALID_ARGUMENT`; a program file without report data is
/// `XQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `program` live handle; `out` NULL or writable for `out->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn xq_program_report_node(
    program: *const xq_program,
    index: usize,
    out: *mut xq_report_node,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let out = unsafe { SizedOut::new(out, "out") }?;
        let r = report_data(p)?;
        let node = r.nodes.get(index).ok_or_else(|| {
            Error::invalid_argument(
                "index",
                format!("{index} is out of range ({} node records)", r.nodes.len()),
            )
        })?;
        let partition = match node.partition {
            None => -1,
            Some(i) => i32::try_from(i)
                .map_err(|_| Error::ResourceLimit(format!("partition {i} does not fit an int32_t")))?,
        };
        let strings = p.report_strings.nodes.get_or_init(|| {
            r.nodes
                .iter()
                .map(|n| [c_string(&n.name), c_string(&n.op_type), c_string(&n.detail)])
                .collect()
        });
        let [name, op_type, detail] = &strings[index];
        let record = xq_report_node {
            struct_size: out.size(),
            name: name.as_ptr(),
            op_type: op_type.as_ptr(),
            partition,
            // Codes are stored as 32 bits; the cast returns the file's bits unchanged.
            reason: node.reason as i32,
            detail: detail.as_ptr(),
        };
        out.write(record);
        Ok(())
    })
}

/// The partitioning report as a JSON object, valid until the program is freed:
/// `{"version": 1, "partitions", "delegated_nodes", "refused_nodes", "interpreted_nodes",
/// "graph_nodes", "nodes": [{"name", "op_type", "partition" (-1: not delegated), "reason"
/// (an `xq_reason` value), "reason_name", "detail"}, ...]}`. Keys are only ever added. A
/// program file without report data is `XQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `program` live handle; `json` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_program_report_json(
    program: *const xq_program,
    json: *mut *const c_char,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let json = unsafe { Out::new(json, "json") }?;
        let r = report_data(p)?;
        json.write(p.report_strings.json.get_or_init(|| c_string(&r.json())).as_ptr());
        Ok(())
    })
}

/// Every reason, in numeric order.
const ALL_REASONS: [xq_reason; 8] = [
    xq_reason::XQ_REASON_NONE,
    xq_reason::XQ_REASON_UNSUPPORTED_OP,
    xq_reason::XQ_REASON_DTYPE,
    xq_reason::XQ_REASON_SHAPE,
    xq_reason::XQ_REASON_ATTRIBUTE,
    xq_reason::XQ_REASON_QPARAMS,
    xq_reason::XQ_REASON_NON_CONSTANT_WEIGHT,
    xq_reason::XQ_REASON_NOT_QUANTIZED,
];

impl xq_reason {
    /// The enumerator's name as a NUL-terminated static string.
    fn name_cstr(self) -> &'static CStr {
        match self {
            xq_reason::XQ_REASON_NONE => c"XQ_REASON_NONE",
            xq_reason::XQ_REASON_UNSUPPORTED_OP => c"XQ_REASON_UNSUPPORTED_OP",
            xq_reason::XQ_REASON_DTYPE => c"XQ_REASON_DTYPE",
            xq_reason::XQ_REASON_SHAPE => c"XQ_REASON_SHAPE",
            xq_reason::XQ_REASON_ATTRIBUTE => c"XQ_REASON_ATTRIBUTE",
            xq_reason::XQ_REASON_QPARAMS => c"XQ_REASON_QPARAMS",
            xq_reason::XQ_REASON_NON_CONSTANT_WEIGHT => c"XQ_REASON_NON_CONSTANT_WEIGHT",
            xq_reason::XQ_REASON_NOT_QUANTIZED => c"XQ_REASON_NOT_QUANTIZED",
        }
    }
}

/// The name of an `xq_reason` value (e.g. `"XQ_REASON_QPARAMS"`), or `"XQ_UNKNOWN_REASON"`
/// for a number this libxq does not know. The string is static; never free it.
#[no_mangle]
pub extern "C" fn xq_reason_name(reason: i32) -> *const c_char {
    ALL_REASONS
        .into_iter()
        .find(|r| *r as i32 == reason)
        .map_or(c"XQ_UNKNOWN_REASON".as_ptr(), |r| r.name_cstr().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::report::reason_code_name;

    #[test]
    fn reasons_match_the_program_codes_and_names() {
        for (i, r) in ALL_REASONS.iter().enumerate() {
            assert_eq!(*r as usize, i);
            // SAFETY: xq_reason_name always returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(xq_reason_name(*r as i32)) };
            assert_eq!(name.to_str().unwrap(), format!("{r:?}"));
            assert_eq!(name.to_str().unwrap(), reason_code_name(i as u32));
        }
        for r in Reason::ALL {
            assert_eq!(xq_reason::of(r) as u32, r.code());
        }
        for unknown in [-1, 8, i32::MAX, i32::MIN] {
            // SAFETY: as above.
            let name = unsafe { CStr::from_ptr(xq_reason_name(unknown)) };
            assert_eq!(name.to_str().unwrap(), reason_code_name(u32::MAX));
        }
    }
}
