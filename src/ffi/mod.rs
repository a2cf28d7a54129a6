//! The C API (`include/xq.h` is generated from this module by cbindgen).
//!
//! Conventions every exported function follows:
//! - Names start with `xq_`; handles are opaque structs created by `xq_*_new` / `xq_*_load`
//!   and released by `xq_*_free`, for which NULL is a no-op.
//! - Fallible functions return [`xq_status`]; on failure the thread-local
//!   [`xq_last_error_message`] says what went wrong. Output parameters are written only
//!   on success.
//! - Every body runs inside [`boundary::guard`], which validates pointers, catches panics
//!   and converts [`crate::Error`] into a status plus message. No call aborts the host.
//! - Lengths from C are bounded before use; the caller owns the buffers it passes.

#![allow(non_camel_case_types)]

pub mod boundary;
mod enums;
mod info;
mod model;
mod profile;
mod program;
mod quantizer;
mod report;
mod status;
mod tensor;

pub use boundary::xq_last_error_message;
pub use enums::*;
pub use info::*;
pub use model::*;
pub use profile::*;
pub use program::*;
pub use quantizer::*;
pub use report::*;
pub use status::*;
pub use tensor::*;
