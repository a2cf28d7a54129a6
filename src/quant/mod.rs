//! The quantizer: what to quantize (config and scopes, whose recipes are
//! [`QScheme`](crate::qscheme::QScheme) values), the numerics (quantization parameters,
//! quantize / dequantize, DESIGN §3, defined in [`crate::qscheme`]) and the observers that choose parameters
//! from calibration data. Observers and qparams work on plain `f32` slices and shapes; the
//! graph-level flow (annotation, prepare, calibrate, convert) builds on them.

pub mod annotate;
pub mod config;
pub mod convert;
pub mod observer;
pub mod pointwise_unit;
pub mod qparams;
mod quantizer;

pub use config::{ActivationMode, NameMatch, QuantConfig, QuantScopes, WeightGranularity};
pub use observer::{Observer, ObserverConfig};
pub use qparams::{
    dynamic_per_row_qparams, dynamic_row_qparams, PerAxisQParams, QParams, QuantScheme, XNNPACK_EPS,
};
pub use quantizer::{ProgressFn, Quantizer};
