//! ONNX model → IR graph.

use super::ops::{self, Converted};
use super::proto::{ModelProto, ValueInfoProto};
use super::tensor::tensor_from_proto;
use crate::ir::{DType, Dim, Graph, Node, TensorInfo};
use crate::{Error, Result};
use prost::Message;
use std::collections::HashSet;
use std::path::Path;

/// Largest model file or buffer accepted (2 GiB, protobuf's own limit).
pub const MAX_MODEL_BYTES: usize = 2 << 30;
/// Oldest and newest default-domain opsets accepted. Opset 7 is the first with numpy-style
/// broadcasting; operators whose older versions differ (Slice < 10, Pad < 11, Clip < 11,
/// Resize 10, BatchNormalization spatial=0, axes attributes) are normalised or rejected by
/// the op mapping. Versions of the imported ops after 21 only add element types
/// (float8/float4/int2, bf16) or attributes that matter only for those types; attributes
/// that would change integer/f32 semantics are rejected by the op mapping.
pub const OPSET_RANGE: (i64, i64) = (7, 28);

/// Loads an ONNX model file (external-data initializers are read relative to its directory).
pub fn load_file(path: impl AsRef<Path>) -> Result<Graph> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path.display(), e))?;
    if meta.len() > MAX_MODEL_BYTES as u64 {
        return Err(Error::ResourceLimit(format!(
            "model file is {} bytes (limit {MAX_MODEL_BYTES})",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    load_bytes(&bytes, path.parent())
}

/// Loads an ONNX model from memory. `base_dir` resolves external data (None: not allowed).
pub fn load_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Graph> {
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(Error::ResourceLimit(format!(
            "model is {} bytes (limit {MAX_MODEL_BYTES})",
            bytes.len()
        )));
    }
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::CorruptFile(format!("not a valid ONNX protobuf: {e}")))?;
    import_model(&model, base_dir)
}

fn default_opset(model: &ModelProto) -> Result<i64> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| Error::InvalidModel("the model imports no default-domain opset".into()))?;
    if opset < OPSET_RANGE.0 || opset > OPSET_RANGE.1 {
        return Err(Error::Unsupported(format!(
            "opset {opset} (libxq reads opsets {}..={})",
            OPSET_RANGE.0, OPSET_RANGE.1
        )));
    }
    Ok(opset)
}

/// `dim_param` names that mean "unknown" rather than a symbol shared by every dim that
/// names it: empty, and the placeholders `?` and `-1` some exporters write for each unknown
/// dim (named symbols such as tf2onnx's `unk__123` are real symbols and are kept).
fn is_placeholder_symbol(p: &str) -> bool {
    matches!(p.trim(), "" | "?" | "-1")
}

/// A fresh unknown dim of axis `axis` of value `value`: a symbol no other dim shares.
fn unknown_dim(value: &str, axis: usize) -> Dim {
    Dim::Symbolic(format!("{value}_dim{axis}"))
}

fn value_info(v: &ValueInfoProto) -> Result<TensorInfo> {
    let tt = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| Error::Unsupported(format!("value `{}` is not a tensor", v.name)))?;
    let dtype = DType::from_onnx_code(tt.elem_type).map_err(|e| {
        Error::Unsupported(format!(
            "value `{}`: {}",
            v.name,
            e.to_string().trim_start_matches("unsupported: ")
        ))
    })?;
    let shape = match &tt.shape {
        None => None,
        Some(s) => Some(
            s.dim
                .iter()
                .enumerate()
                .map(|(i, d)| match (d.dim_value, &d.dim_param) {
                    (Some(n), _) if n >= 0 => Ok(Dim::Known(n as usize)),
                    // -1 is how some exporters write "unknown".
                    (Some(-1), _) => Ok(unknown_dim(&v.name, i)),
                    (Some(n), _) => Err(Error::InvalidModel(format!(
                        "value `{}` has dimension {n}",
                        v.name
                    ))),
                    (None, Some(p)) if !is_placeholder_symbol(p) => Ok(Dim::Symbolic(p.clone())),
                    (None, _) => Ok(unknown_dim(&v.name, i)),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    if let Some(s) = &shape {
        let known: Vec<usize> = s
            .iter()
            .filter_map(|d| if let Dim::Known(n) = d { Some(*n) } else { None })
            .collect();
        crate::ir::checked_numel(&known)
            .map_err(|e| Error::InvalidModel(format!("value `{}`: {e}", v.name)))?;
    }
    Ok(TensorInfo {
        name: v.name.clone(),
        dtype,
        shape,
    })
}

fn import_model(model: &ModelProto, base_dir: Option<&Path>) -> Result<Graph> {
    let opset = default_opset(model)?;
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
    let mut graph = Graph {
        name: g.name.clone(),
        ..Default::default()
    };
    for t in &g.initializer {
        if t.name.is_empty() {
            return Err(Error::InvalidModel("an initializer has no name".into()));
        }
        if graph
            .initializers
            .insert(t.name.clone(), tensor_from_proto(t, base_dir)?)
            .is_some()
        {
            return Err(Error::InvalidModel(format!(
                "initializer `{}` is defined twice",
                t.name
            )));
        }
    }
    for v in &g.input {
        if !graph.initializers.contains_key(&v.name) {
            graph.inputs.push(value_info(v)?);
        }
    }
    graph.outputs = g.output.iter().map(value_info).collect::<Result<_>>()?;

    let mut unsupported: Vec<String> = Vec::new();
    let mut used_names: HashSet<String> = g.node.iter().flat_map(|n| n.output.iter().cloned()).collect();
    used_names.extend(graph.initializers.keys().cloned());
    used_names.extend(graph.inputs.iter().map(|i| i.name.clone()));
    let mut fresh = |base: &str| {
        let mut name = base.to_string();
        let mut i = 0;
        while !used_names.insert(name.clone()) {
            i += 1;
            name = format!("{base}_{i}");
        }
        name
    };
    for (index, node) in g.node.iter().enumerate() {
        let label = if node.name.is_empty() {
            format!("#{index}")
        } else {
            node.name.clone()
        };
        let foreign = !(node.domain.is_empty() || node.domain == "ai.onnx");
        if !ops::is_supported_in(&node.domain, &node.op_type) {
            let domain = if foreign {
                format!("{}::", node.domain)
            } else {
                String::new()
            };
            unsupported.push(format!("{domain}{} (node `{label}`)", node.op_type));
            continue;
        }
        if node.op_type == "Constant" {
            let out = node
                .output
                .first()
                .ok_or_else(|| Error::InvalidModel(format!("Constant `{label}` has no output")))?;
            let value = ops::constant_value(node, base_dir)?;
            if graph.initializers.insert(out.clone(), value).is_some() {
                return Err(Error::InvalidModel(format!("tensor `{out}` is defined twice")));
            }
            continue;
        }
        if node.op_type == "Sum" {
            // Variadic Sum becomes a chain of binary Adds.
            let ins: Vec<&String> = node.input.iter().filter(|i| !i.is_empty()).collect();
            let out = node
                .output
                .first()
                .ok_or_else(|| Error::InvalidModel(format!("Sum `{label}` has no output")))?;
            if ins.is_empty() {
                return Err(Error::InvalidModel(format!("Sum `{label}` has no inputs")));
            }
            if ins.len() == 1 {
                graph.nodes.push(Node {
                    name: label,
                    op: crate::ir::Op::Identity,
                    inputs: vec![ins[0].clone()],
                    outputs: vec![out.clone()],
                });
                continue;
            }
            let mut acc = ins[0].clone();
            for (k, next) in ins.iter().enumerate().skip(1) {
                let dst = if k + 1 == ins.len() {
                    out.clone()
                } else {
                    fresh(&format!("{label}_partial{k}"))
                };
                let name = if k + 1 == ins.len() {
                    label.clone()
                } else {
                    format!("{label}_add{k}")
                };
                graph.nodes.push(Node {
                    name,
                    op: crate::ir::Op::Binary(crate::ir::op::BinaryOp::Add),
                    inputs: vec![acc, (*next).clone()],
                    outputs: vec![dst.clone()],
                });
                acc = dst;
            }
            continue;
        }
        if ops::is_microsoft(&node.domain) && !model.opset_import.iter().any(|o| ops::is_microsoft(&o.domain))
        {
            return Err(Error::InvalidModel(format!(
                "node `{label}` is in domain com.microsoft, which the model does not import"
            )));
        }
        let mut named = node.clone();
        named.name = label.clone();
        match ops::convert(&named, opset, &mut fresh) {
            Ok(Converted {
                op,
                inputs,
                constants,
            }) => {
                graph.initializers.extend(constants);
                graph.nodes.push(Node {
                    name: label,
                    op,
                    inputs,
                    outputs: node.output.clone(),
                });
            }
            Err(Error::Unsupported(why)) => unsupported.push(format!("{why} (node `{label}`)")),
            Err(e) => return Err(e),
        }
    }
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(format!(
            "the model uses {} unsupported node(s): {}",
            unsupported.len(),
            unsupported.join(", ")
        )));
    }
    graph.validate()?;
    graph.infer_shapes()?;
    Ok(graph)
}

/// Decodes a serialized TensorProto (the `input_0.pb` files of ONNX test data), returning
/// its name and value.
pub fn load_tensor_bytes(bytes: &[u8]) -> Result<(String, crate::ir::Tensor)> {
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(Error::ResourceLimit(format!(
            "tensor file is {} bytes (limit {MAX_MODEL_BYTES})",
            bytes.len()
        )));
    }
    let proto = super::proto::TensorProto::decode(bytes)
        .map_err(|e| Error::CorruptFile(format!("not a valid ONNX TensorProto: {e}")))?;
    Ok((proto.name.clone(), tensor_from_proto(&proto, None)?))
}

/// Serialises a tensor as a TensorProto (the format of ONNX test data files).
pub fn tensor_to_bytes(name: &str, t: &crate::ir::Tensor) -> Vec<u8> {
    super::tensor::tensor_to_proto(name, t).encode_to_vec()
}
