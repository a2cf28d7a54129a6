//! The quantizer: what to quantize (config and scopes) and, as it grows, the observers and the
//! prepare → calibrate → convert flow that turns a float graph into a QDQ graph.

pub mod config;
mod quantizer;

pub use config::{ActivationMode, NameMatch, ObserverKind, QuantConfig, QuantScopes, WeightGranularity};
pub use quantizer::Quantizer;
