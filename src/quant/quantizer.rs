//! The quantizer object behind `xq_quantizer`: it owns the scoped configuration and (as the
//! flow is built) the prepared graph and its observers.

use super::config::{NameMatch, QuantConfig, QuantScopes};
use crate::Result;

/// A quantizer: scoped recipes now, the prepare → calibrate → convert state later.
#[derive(Clone, Debug)]
pub struct Quantizer {
    scopes: QuantScopes,
}

impl Quantizer {
    /// A quantizer whose global recipe is `global` (`None`: nothing quantized unless scoped).
    pub fn new(global: Option<QuantConfig>) -> Result<Self> {
        Ok(Quantizer {
            scopes: QuantScopes::new(global)?,
        })
    }

    /// Sets the recipe for an ONNX op type (`None` leaves it float).
    pub fn set_operator_type(&mut self, op_type: &str, config: Option<QuantConfig>) -> Result<()> {
        self.scopes.set_op_type(op_type, config)
    }

    /// Sets the recipe for one node name or a name prefix (`None` leaves it float).
    pub fn set_node_name(&mut self, name: NameMatch, config: Option<QuantConfig>) -> Result<()> {
        self.scopes.set_name(name, config)
    }

    /// The scoped recipes.
    pub fn scopes(&self) -> &QuantScopes {
        &self.scopes
    }
}
