//! Building IR nodes from ONNX vocabulary (op type + named attributes) for hosts whose graphs
//! are not ONNX files: the C graph builder speaks ONNX opset 21 names without protobuf.

use super::ops;
use super::proto::{attr_type, AttributeProto, NodeProto};
use crate::ir::{Graph, Node};
use crate::{Error, Result};

/// An attribute value given by a graph-building host.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A single integer.
    Int(i64),
    /// A single float.
    Float(f32),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A string.
    String(String),
}

fn to_proto(name: &str, v: &AttrValue) -> AttributeProto {
    let mut a = AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match v {
        AttrValue::Int(i) => (a.r#type, a.i) = (attr_type::INT, Some(*i)),
        AttrValue::Float(f) => (a.r#type, a.f) = (attr_type::FLOAT, Some(*f)),
        AttrValue::Ints(v) => (a.r#type, a.ints) = (attr_type::INTS, v.clone()),
        AttrValue::Floats(v) => (a.r#type, a.floats) = (attr_type::FLOATS, v.clone()),
        AttrValue::String(s) => (a.r#type, a.s) = (attr_type::STRING, Some(s.as_bytes().to_vec())),
    }
    a
}

/// Appends a node given by its ONNX op type (default domain, opset 21 semantics) and
/// attributes. `Constant` nodes become initializers. The graph is not re-validated here;
/// callers validate once the graph is complete.
pub fn add_onnx_node(
    graph: &mut Graph,
    op_type: &str,
    name: &str,
    inputs: &[String],
    outputs: &[String],
    attrs: &[(String, AttrValue)],
) -> Result<()> {
    if !ops::is_supported(op_type) {
        return Err(Error::Unsupported(format!(
            "op type `{op_type}` (supported: {})",
            ops::SUPPORTED.join(", ")
        )));
    }
    if name.is_empty() || graph.nodes.iter().any(|n| n.name == name) {
        return Err(Error::invalid_argument(
            "name",
            format!("node name `{name}` is empty or already used"),
        ));
    }
    let proto = NodeProto {
        input: inputs.to_vec(),
        output: outputs.to_vec(),
        name: name.to_string(),
        op_type: op_type.to_string(),
        attribute: attrs.iter().map(|(n, v)| to_proto(n, v)).collect(),
        ..Default::default()
    };
    if op_type == "Constant" {
        let out = outputs
            .first()
            .ok_or_else(|| Error::invalid_argument("outputs", "Constant needs one output"))?;
        let value = ops::constant_value(&proto, None)?;
        graph.initializers.insert(out.clone(), value);
        return Ok(());
    }
    let mut used: std::collections::HashSet<String> = graph.initializers.keys().cloned().collect();
    let mut fresh = |base: &str| {
        let mut n = base.to_string();
        let mut i = 0;
        while !used.insert(n.clone()) || graph.nodes.iter().any(|node| node.outputs.contains(&n)) {
            i += 1;
            n = format!("{base}_{i}");
        }
        n
    };
    let converted = ops::convert(&proto, super::EXPORT_OPSET, &mut fresh)?;
    graph.initializers.extend(converted.constants);
    graph.nodes.push(Node {
        name: name.to_string(),
        op: converted.op,
        inputs: converted.inputs,
        outputs: outputs.to_vec(),
    });
    Ok(())
}
