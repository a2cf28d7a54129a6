//! libxq: int8 quantization and CPU inference delegate.
//!
//! The crate is organised as a one-way pipeline (see `DESIGN.md` §2):
//! graph IR → quantizer → partitioner → lowering → program → runtime + kernels.
//! The C API lives in [`ffi`] and only wraps the Rust API; every other module is usable
//! from Rust directly.
//!
//! Top-level modules and the ones each uses (no cycles; [`error`] is used by all;
//! `scripts/module-graph.sh` prints this graph from the sources and fails on a cycle):
//!
//! | module | uses |
//! |---|---|
//! | [`cpu`], [`qscheme`] | — |
//! | [`ir`] | `qscheme` |
//! | [`kernels`] | `cpu`, `qscheme` |
//! | [`onnx`] | `ir` |
//! | [`interp`] | `ir`, `cpu` (SIMD choice of its f32 kernels), `qscheme` |
//! | [`npy`] | `ir` |
//! | [`quant`] | `ir`, `interp` (calibration), `qscheme` |
//! | [`program`] | `cpu`, `ir`, `kernels`, `qscheme` (parameter types) |
//! | [`delegate`] | `ir`, `kernels`, `program`, `qscheme` |
//! | [`format`](mod@format) | `cpu`, `ir`, `kernels`, `onnx` (fallback graph), `program` |
//! | [`runtime`] | `cpu`, `ir`, `kernels`, `interp` (fallback nodes), `program`, `format` (loading), `qscheme` |
//! | [`ffi`], `fuzzing`, the `xq` binary | everything below |
//!
//! The importer ([`onnx`]) does not run the interpreter: a caller that wants a loaded model
//! simplified composes [`onnx::load_file`] with [`interp::simplify_with_shapes`].

pub mod cpu;
pub mod delegate;
pub mod error;
pub mod ffi;
pub mod fmath;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod interp;
pub mod ir;
pub mod kernels;
pub mod npy;
pub mod onnx;
pub mod program;
pub mod qscheme;
pub mod quant;
pub mod runtime;

pub use error::{Error, Result};

/// The crate version, as written in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
