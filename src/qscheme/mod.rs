//! How a tensor is quantized: the one home of the quantization vocabulary (parameter types,
//! integer types and ranges) and of the element formulas every other module uses.
//!
//! `qscheme` is a leaf: it depends on nothing in the crate but the error type, so the
//! quantizer, the interpreter, the partitioner, the kernels and the runtime can all use it.
//!
//! - [`QParams`]: one scale and zero point, the per-tensor parameters of every executing
//!   module (the kernels name it `QuantParams`).
//! - [`RangedQParams`]: a scale and zero point with the range they quantize to (the
//!   quantizer's `QParams`).
//! - [`QTensorParams`]: the parameters of one tensor at any [`Granularity`] (per tensor,
//!   per axis, per group), with the [`BlockLayout`] that gives each element its pair.
//! - [`IntType`] and [`QRange`]: the integer storage of quantized values and the range the
//!   quantize formula clamps to.
//! - [`QScheme`]: a complete recipe (integer type, [`RangeRule`], granularity and
//!   [`ScaleDtype`]), with [`QScheme::choose`] for the parameters of a constant.
//! - [`RangeRule`]: the static choice of parameters from an observed range (the quantizer's
//!   `QuantScheme`), affine or symmetric ([`Mapping`]).
//! - [`row_qparams`] with a [`RowRule`]: the per-row parameters of dynamic quantization;
//!   the kernels run [`RowRule::Qd8`].
//! - [`quantize`] (what NaN becomes is a named [`NanRule`]) and [`dequantize`]: the element
//!   formulas, and [`round_half_even_small`], the exact fast rounding they and the kernels'
//!   requantization use.
//! - [`ChannelScales`], [`conv_multiplier`], [`add_constants`] ([`signed_add_constants`]), [`mul_multiplier`],
//!   [`mean_multiplier`] and [`requantize_ratio`]: the kernels' requantization set-up;
//!   [`conv_ratio`], [`bias_to_i32`] and [`clip_bounds`]: the same for the partitioner and
//!   the interpreter.
//! - [`PackedInts`]: integers stored in their own width, in ONNX's order (sub-byte
//!   values low bits first).
//! - [`Carrier`]: how uint8 values are held in int8 storage (`u - 128`).
//! - [`QWeights`]: the int8 values and scales of a layer's constant weights.
//! - [`bf16`]: bfloat16 conversions (for bf16 scales).

pub mod bf16;
mod carrier;
mod choose;
mod formula;
mod layout;
mod packed;
mod params;
mod requant;
mod scheme;
mod tensor_params;
mod types;
mod weights;

pub use carrier::Carrier;
pub use choose::{finite_min_max, qd8_qparams, row_qparams, Mapping, RangeRule, RowRule, XNNPACK_EPS};
pub use formula::{dequantize, quantize, round_half_even_small, NanRule};
pub use layout::BlockLayout;
pub use packed::{byte_len, unpack, PackedInts};
pub(crate) use params::check_element_count;
pub use params::{validate_multiplier, validate_scale, QParams, RangedQParams};
pub use requant::{
    add_constants, bias_to_i32, clip_bounds, conv_multiplier, conv_ratio, mean_multiplier, mul_multiplier,
    requantize_ratio, signed_add_constants, ChannelScales,
};
pub use scheme::{QScheme, ScaleDtype};
pub use tensor_params::QTensorParams;
pub use types::{Granularity, IntType, QRange};
pub use weights::QWeights;
