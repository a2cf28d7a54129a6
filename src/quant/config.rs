//! What to quantize and how: the equivalent of PT2E's `QuantizationConfig` plus
//! `XNNPACKQuantizer`'s `set_global` / `set_operator_type` / `set_module_name` scopes.
//!
//! Scope resolution (as in PT2E, first match wins): a node-name rule (an exact name beats a
//! prefix; among prefixes the longest wins), then an op-type rule, then the global rule. Each
//! rule either quantizes with a [`QuantConfig`] or leaves the node float (`None`).

use super::observer::ObserverConfig;
use crate::qscheme::{Granularity, IntType, QScheme, RangeRule, ScaleDtype, XNNPACK_EPS};
use crate::{Error, Result};

/// How weights are quantized: symmetric int8, one scale per tensor or per output channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightGranularity {
    /// One scale for the whole weight tensor.
    PerTensor,
    /// One scale per output channel (axis 0 of OIHW / [N, K]; axis 1 for transposed conv).
    PerChannel,
}

/// When activation quantization parameters are decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationMode {
    /// From ranges observed during calibration.
    Static,
    /// At run time, per row (per token) of the activation.
    Dynamic,
}

/// The quantization recipe for one node (XNNPACKQuantizer's
/// `get_symmetric_quantization_config(is_per_channel, is_dynamic)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantConfig {
    /// Weight scale granularity.
    pub weights: WeightGranularity,
    /// Static or dynamic activations.
    pub activations: ActivationMode,
    /// Observer for static activations (ignored for dynamic ones).
    pub observer: ObserverConfig,
    /// Activation integer range, default [-128, 127].
    pub activation_range: (i32, i32),
    /// Weight integer range, default [-127, 127] (symmetric, zero point 0).
    pub weight_range: (i32, i32),
}

impl Default for QuantConfig {
    /// Static, per-channel, histogram observer, int8 ranges: XNNPACKQuantizer's
    /// `get_symmetric_quantization_config(is_per_channel=True)`.
    fn default() -> Self {
        QuantConfig {
            weights: WeightGranularity::PerChannel,
            activations: ActivationMode::Static,
            observer: ObserverConfig::HISTOGRAM,
            activation_range: (-128, 127),
            weight_range: (-127, 127),
        }
    }
}

impl QuantConfig {
    /// Checks the ranges fit int8 and are usable, and that observer parameters are sane.
    pub fn validate(&self) -> Result<()> {
        let (amin, amax) = self.activation_range;
        if !(amin >= -128 && amin < amax && amax <= 127) {
            return Err(Error::invalid_argument(
                "config",
                format!("activation range [{amin}, {amax}] must be a non-empty sub-range of [-128, 127]"),
            ));
        }
        let (wmin, wmax) = self.weight_range;
        if !((-128..0).contains(&wmin) && (1..=127).contains(&wmax)) {
            return Err(Error::invalid_argument(
                "config",
                format!(
                    "weight range [{wmin}, {wmax}] must contain 0 strictly inside and lie in [-128, 127]"
                ),
            ));
        }
        if matches!(self.observer, ObserverConfig::PerChannelMinMax { .. }) {
            return Err(Error::invalid_argument(
                "config",
                "activations are observed per tensor; a per-channel observer is for weights only",
            ));
        }
        self.observer.build(self.activation_scheme()?.rule()).map(|_| ())
    }

    /// The recipe of static activations: affine over `activation_range`, int8, per tensor,
    /// `f32` scales, smallest scale `2^-12`. Fails if the range is not usable.
    pub fn activation_scheme(&self) -> Result<QScheme> {
        let (qmin, qmax) = self.activation_range;
        let rule = RangeRule::new(qmin, qmax, false, XNNPACK_EPS)?;
        QScheme::new(IntType::I8, rule, Granularity::Tensor, ScaleDtype::F32)
    }

    /// The recipe of weights whose output channels run along `channel_axis`: symmetric
    /// over `weight_range` (zero point 0), int8, per tensor or per output channel as
    /// `weights` says, `f32` scales, smallest scale `2^-12`. Fails if the range is not
    /// usable.
    pub fn weight_scheme(&self, channel_axis: usize) -> Result<QScheme> {
        let (qmin, qmax) = self.weight_range;
        let rule = RangeRule::new(qmin, qmax, true, XNNPACK_EPS)?;
        let granularity = match self.weights {
            WeightGranularity::PerTensor => Granularity::Tensor,
            WeightGranularity::PerChannel => Granularity::Axis(channel_axis),
        };
        QScheme::new(IntType::I8, rule, granularity, ScaleDtype::F32)
    }
}

/// A node-name rule: an exact name or a name prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameMatch {
    /// Matches exactly this node name.
    Exact(String),
    /// Matches every node whose name starts with this prefix (e.g. `"/features/"`).
    Prefix(String),
}

/// The scoped rules of a quantizer. `None` as a rule's value means "leave float".
#[derive(Clone, Debug, Default)]
pub struct QuantScopes {
    global: Option<QuantConfig>,
    op_types: Vec<(String, Option<QuantConfig>)>,
    names: Vec<(NameMatch, Option<QuantConfig>)>,
}

impl QuantScopes {
    /// Scopes whose global rule is `global` (`None`: nothing is quantized unless scoped).
    pub fn new(global: Option<QuantConfig>) -> Result<Self> {
        global.as_ref().map(QuantConfig::validate).transpose()?;
        Ok(QuantScopes {
            global,
            ..Default::default()
        })
    }

    /// Sets the rule for every node of an ONNX op type (e.g. `"Conv"`); replaces an earlier
    /// rule for the same type.
    pub fn set_op_type(&mut self, op_type: &str, config: Option<QuantConfig>) -> Result<()> {
        if op_type.is_empty() {
            return Err(Error::invalid_argument("op_type", "must not be empty"));
        }
        config.as_ref().map(QuantConfig::validate).transpose()?;
        self.op_types.retain(|(t, _)| t != op_type);
        self.op_types.push((op_type.to_string(), config));
        Ok(())
    }

    /// Sets the rule for a node name or name prefix; replaces an earlier identical rule.
    pub fn set_name(&mut self, name: NameMatch, config: Option<QuantConfig>) -> Result<()> {
        if matches!(&name, NameMatch::Exact(s) | NameMatch::Prefix(s) if s.is_empty()) {
            return Err(Error::invalid_argument("name", "must not be empty"));
        }
        config.as_ref().map(QuantConfig::validate).transpose()?;
        self.names.retain(|(n, _)| *n != name);
        self.names.push((name, config));
        Ok(())
    }

    /// The recipe for a node, or `None` when it stays float (see the module docs for the order).
    pub fn resolve(&self, node_name: &str, op_type: &str) -> Option<QuantConfig> {
        let exact = self
            .names
            .iter()
            .find(|(n, _)| matches!(n, NameMatch::Exact(s) if s == node_name));
        let prefix = || {
            self.names
                .iter()
                .filter_map(|(n, c)| match n {
                    NameMatch::Prefix(p) if node_name.starts_with(p.as_str()) => Some((p.len(), c)),
                    _ => None,
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, c)| c)
        };
        if let Some((_, config)) = exact {
            return *config;
        }
        if let Some(config) = prefix() {
            return *config;
        }
        if let Some((_, config)) = self.op_types.iter().find(|(t, _)| t == op_type) {
            return *config;
        }
        self.global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic() -> QuantConfig {
        QuantConfig {
            activations: ActivationMode::Dynamic,
            ..QuantConfig::default()
        }
    }

    #[test]
    fn name_beats_op_type_beats_global() {
        let mut scopes = QuantScopes::new(Some(QuantConfig::default())).unwrap();
        scopes.set_op_type("Gemm", Some(dynamic())).unwrap();
        scopes.set_name(NameMatch::Prefix("/head/".into()), None).unwrap();
        scopes
            .set_name(
                NameMatch::Prefix("/head/keep/".into()),
                Some(QuantConfig::default()),
            )
            .unwrap();
        scopes
            .set_name(NameMatch::Exact("/head/keep/fc".into()), Some(dynamic()))
            .unwrap();

        assert_eq!(scopes.resolve("/body/conv", "Conv"), Some(QuantConfig::default()));
        assert_eq!(scopes.resolve("/body/fc", "Gemm"), Some(dynamic()));
        assert_eq!(scopes.resolve("/head/conv", "Conv"), None);
        assert_eq!(
            scopes.resolve("/head/keep/conv", "Gemm"),
            Some(QuantConfig::default())
        );
        assert_eq!(scopes.resolve("/head/keep/fc", "Conv"), Some(dynamic()));
    }

    #[test]
    fn no_global_means_float_and_later_rules_replace_earlier() {
        let mut scopes = QuantScopes::new(None).unwrap();
        assert_eq!(scopes.resolve("a", "Conv"), None);
        scopes.set_op_type("Conv", Some(QuantConfig::default())).unwrap();
        scopes.set_op_type("Conv", None).unwrap();
        assert_eq!(scopes.resolve("a", "Conv"), None);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad_act = QuantConfig {
            activation_range: (0, 300),
            ..QuantConfig::default()
        };
        assert!(QuantScopes::new(Some(bad_act)).is_err());
        let bad_w = QuantConfig {
            weight_range: (0, 127),
            ..QuantConfig::default()
        };
        assert!(bad_w.validate().unwrap_err().to_string().contains("weight range"));
        let bad_p = QuantConfig {
            observer: ObserverConfig::Percentile {
                percentile: 120.0,
                tails: crate::quant::observer::PercentileTails::Absolute,
                bins: 2048,
            },
            ..QuantConfig::default()
        };
        assert!(bad_p.validate().is_err());
        let mut scopes = QuantScopes::new(None).unwrap();
        assert!(scopes.set_op_type("", None).is_err());
        assert!(scopes.set_name(NameMatch::Prefix(String::new()), None).is_err());
    }
}
