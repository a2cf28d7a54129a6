//! The crate-wide error type. Each variant maps to one stable C status code
//! ([`crate::ffi::xq_status`]); the `Display` text becomes `xq_last_error_message()`.

use std::fmt;

/// Every way a libxq operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required pointer argument was NULL; the payload names the argument.
    #[error("argument `{0}` is NULL")]
    NullPointer(&'static str),
    /// An argument had a value the function cannot accept.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name as written in the C header.
        name: &'static str,
        /// What was wrong with it, in words the caller can act on.
        reason: String,
    },
    /// A model (ONNX file, graph built through the API) is malformed or inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A valid request that libxq does not (yet) implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A tensor's shape does not match what the model or kernel expects.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// A tensor's element type does not match what the model or kernel expects.
    #[error("dtype mismatch: {0}")]
    DtypeMismatch(String),
    /// The call is not valid in the object's current state (e.g. calibrate before prepare).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// Reading or writing a file failed.
    #[error("I/O error on `{path}`: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A program file or serialized buffer is truncated, corrupt or of an unknown version.
    #[error("corrupt file: {0}")]
    CorruptFile(String),
    /// A size taken from input exceeds a safety limit (protects against unbounded allocation).
    #[error("resource limit exceeded: {0}")]
    ResourceLimit(String),
    /// A bug in libxq (including a caught panic). Please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_argument(name: &'static str, reason: impl fmt::Display) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}
