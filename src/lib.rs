//! libxq: int8 quantization and CPU inference delegate.
//!
//! The crate is organised as a one-way pipeline (see `DESIGN.md` §2):
//! graph IR → quantizer → partitioner → lowering → runtime + kernels.
//! The C API lives in [`ffi`] and only wraps the Rust API; every other module is usable
//! from Rust directly.

pub mod cpu;
pub mod delegate;
pub mod error;
pub mod ffi;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod interp;
pub mod ir;
pub mod kernels;
pub mod npy;
pub mod onnx;
pub mod quant;
pub mod runtime;

pub use error::{Error, Result};

/// The crate version, as written in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
