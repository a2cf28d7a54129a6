//! `xq_tensor`: the plain descriptor every tensor crosses the C boundary with, and
//! `xq_dtype`, its element type (numbered as ONNX's `TensorProto.DataType`).

use super::boundary::arg_slice;
use crate::ir::{checked_numel, DType, Tensor};
use crate::{Error, Result};
use std::ffi::c_void;

/// Largest rank a tensor descriptor may have.
pub const XQ_MAX_RANK: usize = 16;

/// Element type of a tensor. The numbers equal ONNX's `TensorProto.DataType` and never change.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_dtype {
    /// 32-bit float.
    XQ_DTYPE_F32 = 1,
    /// Unsigned 8-bit integer.
    XQ_DTYPE_U8 = 2,
    /// Signed 8-bit integer.
    XQ_DTYPE_I8 = 3,
    /// Unsigned 16-bit integer.
    XQ_DTYPE_U16 = 4,
    /// Signed 16-bit integer.
    XQ_DTYPE_I16 = 5,
    /// Signed 32-bit integer.
    XQ_DTYPE_I32 = 6,
    /// Signed 64-bit integer.
    XQ_DTYPE_I64 = 7,
    /// Boolean, one byte per element (0 or 1).
    XQ_DTYPE_BOOL = 9,
    /// IEEE half precision.
    XQ_DTYPE_F16 = 10,
    /// bfloat16.
    XQ_DTYPE_BF16 = 16,
    /// Unsigned 4-bit integer, two per byte (low nibble first).
    XQ_DTYPE_U4 = 21,
    /// Signed 4-bit integer, two per byte (low nibble first).
    XQ_DTYPE_I4 = 22,
    /// Unsigned 2-bit integer, four per byte.
    XQ_DTYPE_U2 = 25,
    /// Signed 2-bit integer, four per byte.
    XQ_DTYPE_I2 = 26,
}

impl From<DType> for xq_dtype {
    fn from(d: DType) -> Self {
        match d {
            DType::F32 => xq_dtype::XQ_DTYPE_F32,
            DType::U8 => xq_dtype::XQ_DTYPE_U8,
            DType::I8 => xq_dtype::XQ_DTYPE_I8,
            DType::U16 => xq_dtype::XQ_DTYPE_U16,
            DType::I16 => xq_dtype::XQ_DTYPE_I16,
            DType::I32 => xq_dtype::XQ_DTYPE_I32,
            DType::I64 => xq_dtype::XQ_DTYPE_I64,
            DType::Bool => xq_dtype::XQ_DTYPE_BOOL,
            DType::F16 => xq_dtype::XQ_DTYPE_F16,
            DType::Bf16 => xq_dtype::XQ_DTYPE_BF16,
            DType::U4 => xq_dtype::XQ_DTYPE_U4,
            DType::I4 => xq_dtype::XQ_DTYPE_I4,
            DType::U2 => xq_dtype::XQ_DTYPE_U2,
            DType::I2 => xq_dtype::XQ_DTYPE_I2,
        }
    }
}

/// Converts a dtype number received from C (validated, since C may pass any integer).
pub fn dtype_from_c(raw: i32) -> Result<DType> {
    DType::from_onnx_code(raw)
        .map_err(|_| Error::invalid_argument("dtype", format!("{raw} is not an xq_dtype")))
}

/// A tensor as C sees it. The caller owns `dims` and `data`.
///
/// As an input: `dtype`, `rank`, `dims[0..rank]` and `data` with `byte_length` bytes
/// (exactly the packed size of the shape) describe the value.
/// As an output: the caller provides `dims` with room for `rank` entries and `data` with room
/// for `byte_length` bytes; on success libxq writes the actual `dtype`, `rank`, `dims` and
/// `byte_length`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_tensor {
    /// Element type (an `xq_dtype` value).
    pub dtype: i32,
    /// Number of dimensions (at most 16).
    pub rank: usize,
    /// The dimensions (`rank` entries, each >= 0).
    pub dims: *mut i64,
    /// Element data, little-endian, row-major, packed for sub-byte types.
    pub data: *mut c_void,
    /// Size of `data` in bytes.
    pub byte_length: usize,
}

/// Reads an input descriptor into an owned tensor (copying the data).
///
/// # Safety
/// `t.dims` must point to `t.rank` readable `i64`s and `t.data` to `t.byte_length` readable
/// bytes (both may be NULL when the count is 0).
pub unsafe fn tensor_from_c(t: &xq_tensor, what: &'static str) -> Result<Tensor> {
    let dtype = dtype_from_c(t.dtype)?;
    // SAFETY: the caller's contract: `dims` holds `rank` elements; the rank is bounded first.
    let dims = unsafe { arg_slice(t.dims as *const i64, t.rank, XQ_MAX_RANK, "dims") }?;
    let dims: Vec<usize> = dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::invalid_argument(what, format!("dimension {d} is negative")))
        })
        .collect::<Result<_>>()?;
    let numel = checked_numel(&dims)?;
    let expected = dtype
        .storage_bytes(numel)
        .ok_or_else(|| Error::ResourceLimit("tensor size overflows".into()))?;
    if t.byte_length != expected {
        return Err(Error::invalid_argument(
            what,
            format!(
                "byte_length is {} but a {dtype} tensor of shape {dims:?} has {expected} bytes",
                t.byte_length
            ),
        ));
    }
    // SAFETY: `data` holds `byte_length` bytes (caller's contract); the length was just checked
    // against the shape, which is bounded by MAX_TENSOR_ELEMENTS.
    let bytes = unsafe { arg_slice(t.data as *const u8, expected, usize::MAX, "data") }?;
    Tensor::from_le_bytes(dtype, dims, bytes)
}

/// Reads an input descriptor into `into`, overwriting its elements in place when the
/// descriptor has its type and shape (no allocation), or replacing it with
/// [`tensor_from_c`] otherwise.
///
/// # Safety
/// As [`tensor_from_c`].
pub unsafe fn tensor_assign_from_c(t: &xq_tensor, into: &mut Tensor, what: &'static str) -> Result<()> {
    let same = dtype_from_c(t.dtype).is_ok_and(|d| d == into.dtype())
        && t.rank == into.dims().len()
        && t.byte_length == into.le_byte_len()
        && (t.rank == 0 || !t.dims.is_null());
    if same {
        // SAFETY: `dims` holds `rank` elements (caller's contract), non-null when rank > 0.
        let dims = unsafe { arg_slice(t.dims as *const i64, t.rank, XQ_MAX_RANK, "dims") }?;
        if dims
            .iter()
            .zip(into.dims())
            .all(|(&d, &n)| usize::try_from(d) == Ok(n))
        {
            // SAFETY: `data` holds `byte_length` bytes (caller's contract), which equal the
            // tensor's byte size.
            let bytes = unsafe { arg_slice(t.data as *const u8, t.byte_length, usize::MAX, "data") }?;
            return into.assign_le_bytes(bytes);
        }
    }
    // SAFETY: forwarded contract.
    *into = unsafe { tensor_from_c(t, what) }?;
    Ok(())
}

/// Writes a tensor into a caller-provided output descriptor.
///
/// # Safety
/// `t.dims` must point to `t.rank` writable `i64`s and `t.data` to `t.byte_length` writable
/// bytes.
pub unsafe fn tensor_to_c(value: &Tensor, t: &mut xq_tensor, what: &'static str) -> Result<()> {
    let rank = value.dims().len();
    if t.rank < rank {
        return Err(Error::invalid_argument(
            what,
            format!("dims has room for {} entries, the output has rank {rank}", t.rank),
        ));
    }
    let length = value.le_byte_len();
    if t.byte_length < length {
        return Err(Error::invalid_argument(
            what,
            format!(
                "data has room for {} bytes, the output needs {} (shape {:?})",
                t.byte_length,
                length,
                value.dims()
            ),
        ));
    }
    if (rank > 0 && t.dims.is_null()) || (length > 0 && t.data.is_null()) {
        return Err(Error::NullPointer(what));
    }
    if rank > 0 && !(t.dims as usize).is_multiple_of(std::mem::align_of::<i64>()) {
        return Err(Error::invalid_argument(what, "dims is not aligned"));
    }
    // SAFETY: `dims` has room for `t.rank >= rank` i64s and `data` for `t.byte_length >=
    // length` bytes (caller's contract, sizes checked above); the regions are the caller's
    // and do not overlap our buffers.
    unsafe {
        for (i, &d) in value.dims().iter().enumerate() {
            t.dims.add(i).write(d as i64);
        }
        if length > 0 {
            value.write_le_bytes(std::slice::from_raw_parts_mut(t.data as *mut u8, length))?;
        }
    }
    t.rank = rank;
    t.byte_length = length;
    t.dtype = value.dtype().onnx_code();
    Ok(())
}
