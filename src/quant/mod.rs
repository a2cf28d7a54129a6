//! The quantizer's numerics: quantization parameters, quantize / dequantize, and the
//! observers that choose parameters from calibration data (DESIGN §3).
//!
//! Everything here works on plain `f32` slices and shapes; the graph-level quantizer
//! (annotation, prepare, calibrate, convert) builds on it.

pub mod observer;
pub mod qparams;

pub use observer::{Observer, ObserverConfig};
pub use qparams::{
    dynamic_per_row_qparams, dynamic_row_qparams, PerAxisQParams, QParams, QuantParams, QuantScheme,
    XNNPACK_EPS,
};
