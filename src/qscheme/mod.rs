//! How a tensor is quantized: the one home of the quantization vocabulary (parameter types,
//! integer types and ranges) and of the element formulas every other module uses.
//!
//! `qscheme` is a leaf: it depends on nothing in the crate but the error type, so the
//! quantizer, the interpreter, the partitioner, the kernels and the runtime can all use it.
//!
//! - [`QParams`]: one scale and zero point, the per-tensor parameters of every executing
//!   module (the kernels name it `QuantParams`).
//! - [`IntType`] and [`QRange`]: the integer storage of quantized values and the range the
//!   quantize formula clamps to.
//! - [`round_half_even_small`]: the exact fast rounding of the kernels' requantization.
//! - [`bf16`]: bfloat16 conversions (for bf16 scales).

pub mod bf16;
mod formula;
mod params;
mod types;

pub use formula::round_half_even_small;
pub use params::{validate_multiplier, validate_scale, QParams};
pub use types::{IntType, QRange};
