//! `xq_status`: the stable numeric result codes of the C API.

use crate::Error;
use std::ffi::{c_char, c_int};

/// Result code of every fallible C API function. The numbers are part of the ABI and are
/// never renumbered; new codes are only appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_status {
    /// Success.
    XQ_OK = 0,
    /// A required pointer argument was NULL.
    XQ_ERROR_NULL_POINTER = 1,
    /// An argument had an unacceptable value.
    XQ_ERROR_INVALID_ARGUMENT = 2,
    /// The model is malformed or inconsistent.
    XQ_ERROR_INVALID_MODEL = 3,
    /// The request is valid but not supported by libxq.
    XQ_ERROR_UNSUPPORTED = 4,
    /// A tensor shape does not match.
    XQ_ERROR_SHAPE_MISMATCH = 5,
    /// A tensor element type does not match.
    XQ_ERROR_DTYPE_MISMATCH = 6,
    /// The call is not valid in the object's current state.
    XQ_ERROR_INVALID_STATE = 7,
    /// A file could not be read or written.
    XQ_ERROR_IO = 8,
    /// A file or buffer is truncated, corrupt or of an unknown version.
    XQ_ERROR_CORRUPT_FILE = 9,
    /// A size taken from input exceeds a safety limit.
    XQ_ERROR_RESOURCE_LIMIT = 10,
    /// A bug inside libxq (including a caught panic).
    XQ_ERROR_INTERNAL = 11,
}

/// Every status, in numeric order.
const ALL_STATUSES: [xq_status; 12] = [
    xq_status::XQ_OK,
    xq_status::XQ_ERROR_NULL_POINTER,
    xq_status::XQ_ERROR_INVALID_ARGUMENT,
    xq_status::XQ_ERROR_INVALID_MODEL,
    xq_status::XQ_ERROR_UNSUPPORTED,
    xq_status::XQ_ERROR_SHAPE_MISMATCH,
    xq_status::XQ_ERROR_DTYPE_MISMATCH,
    xq_status::XQ_ERROR_INVALID_STATE,
    xq_status::XQ_ERROR_IO,
    xq_status::XQ_ERROR_CORRUPT_FILE,
    xq_status::XQ_ERROR_RESOURCE_LIMIT,
    xq_status::XQ_ERROR_INTERNAL,
];

impl xq_status {
    /// The status's name as a NUL-terminated static string.
    fn name_cstr(self) -> &'static std::ffi::CStr {
        match self {
            xq_status::XQ_OK => c"XQ_OK",
            xq_status::XQ_ERROR_NULL_POINTER => c"XQ_ERROR_NULL_POINTER",
            xq_status::XQ_ERROR_INVALID_ARGUMENT => c"XQ_ERROR_INVALID_ARGUMENT",
            xq_status::XQ_ERROR_INVALID_MODEL => c"XQ_ERROR_INVALID_MODEL",
            xq_status::XQ_ERROR_UNSUPPORTED => c"XQ_ERROR_UNSUPPORTED",
            xq_status::XQ_ERROR_SHAPE_MISMATCH => c"XQ_ERROR_SHAPE_MISMATCH",
            xq_status::XQ_ERROR_DTYPE_MISMATCH => c"XQ_ERROR_DTYPE_MISMATCH",
            xq_status::XQ_ERROR_INVALID_STATE => c"XQ_ERROR_INVALID_STATE",
            xq_status::XQ_ERROR_IO => c"XQ_ERROR_IO",
            xq_status::XQ_ERROR_CORRUPT_FILE => c"XQ_ERROR_CORRUPT_FILE",
            xq_status::XQ_ERROR_RESOURCE_LIMIT => c"XQ_ERROR_RESOURCE_LIMIT",
            xq_status::XQ_ERROR_INTERNAL => c"XQ_ERROR_INTERNAL",
        }
    }
}

impl From<&Error> for xq_status {
    fn from(e: &Error) -> Self {
        match e {
            Error::NullPointer(_) => xq_status::XQ_ERROR_NULL_POINTER,
            Error::InvalidArgument { .. } => xq_status::XQ_ERROR_INVALID_ARGUMENT,
            Error::InvalidModel(_) => xq_status::XQ_ERROR_INVALID_MODEL,
            Error::Unsupported(_) => xq_status::XQ_ERROR_UNSUPPORTED,
            Error::ShapeMismatch(_) => xq_status::XQ_ERROR_SHAPE_MISMATCH,
            Error::DtypeMismatch(_) => xq_status::XQ_ERROR_DTYPE_MISMATCH,
            Error::InvalidState(_) => xq_status::XQ_ERROR_INVALID_STATE,
            Error::Io { .. } => xq_status::XQ_ERROR_IO,
            Error::CorruptFile(_) => xq_status::XQ_ERROR_CORRUPT_FILE,
            Error::ResourceLimit(_) => xq_status::XQ_ERROR_RESOURCE_LIMIT,
            Error::Internal(_) => xq_status::XQ_ERROR_INTERNAL,
        }
    }
}

/// The name of a status code (e.g. `"XQ_ERROR_NULL_POINTER"`), or `"XQ_UNKNOWN_STATUS"` for a
/// number that is not a status. The string is static; never free it.
#[no_mangle]
pub extern "C" fn xq_status_name(status: c_int) -> *const c_char {
    ALL_STATUSES
        .into_iter()
        .find(|s| *s as c_int == status)
        .map_or(c"XQ_UNKNOWN_STATUS".as_ptr(), |s| s.name_cstr().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_and_dense() {
        for (i, s) in ALL_STATUSES.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        assert_eq!(xq_status::XQ_ERROR_INTERNAL as i32, 11);
    }

    #[test]
    fn names_round_trip() {
        for s in ALL_STATUSES {
            // SAFETY: xq_status_name always returns a pointer to a static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(xq_status_name(s as c_int)) };
            assert!(format!("{s:?}") == name.to_str().unwrap());
        }
        // SAFETY: as above.
        let unknown = unsafe { std::ffi::CStr::from_ptr(xq_status_name(-7)) };
        assert_eq!(unknown.to_str().unwrap(), "XQ_UNKNOWN_STATUS");
    }
}
