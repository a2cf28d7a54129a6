//! Convert: rewrite an annotated, calibrated float graph into the standard QDQ form.
//!
//! - Static activation `t` (f32): `producer → t_float → QuantizeLinear → t_quantized (i8) →
//!   DequantizeLinear → t`, so the dequantized tensor keeps the original name and every
//!   reader (and a graph output) reads it: one Q and one DQ per tensor, the DQ shared by all
//!   readers. A graph input keeps its name; its readers read `t_dequantized`. Scale is an
//!   f32 scalar, zero point an i8 scalar. A quantized f32 constant (e.g. an Add's constant
//!   operand) becomes an i8 initializer behind a DQ, like a weight.
//! - Weight: an i8 initializer `w_quantized` → DequantizeLinear (per tensor: scalar scale and
//!   zero point; per channel: 1-D scale, i8 zero zero points, `axis` = the output-channel
//!   axis: 0 for Conv and Gemm with transB, 1 for Gemm without transB, last for MatMul) → op.
//!   Bias stays f32.
//! - Dynamic activation (one node input edge): `x → DynamicQuantizeLinear → (u8, scale, zp)
//!   → DequantizeLinear → op`, ONNX's standard form. ONNX Runtime runs it per tensor (u8);
//!   the pair, followed by a linear / conv op reading an int8 weight through a DQ, is the
//!   marker for "activation quantized at run time", which the delegate implements per row
//!   with the kernels' rule ([`RowRule::Qd8`](crate::qscheme::RowRule::Qd8), XNNPACK `qd8`
//!   style, no nudge). [`dynamic_row_qparams`](crate::quant::dynamic_row_qparams) is torch's
//!   per-token rule, kept for the observer API and the tests against torch.

use super::annotate::{Annotation, WeightSpec};
use super::qparams::QParams;
use crate::ir::op::QuantAttrs;
use crate::ir::qdq::{self, DqInputs};
use crate::ir::{DType, Graph, Node, Op, Tensor};
use crate::qscheme::{Granularity, QTensorParams};
use crate::{Error, Result};
use std::collections::HashMap;

/// Rewrites `graph` (the prepared float graph) into QDQ form with the activation parameters
/// `group_qparams` (one per annotation group). Nodes appended by the rewrite are put in
/// topological order by [`Graph::validate`].
pub fn convert(graph: &Graph, annotation: &Annotation, group_qparams: &[QParams]) -> Result<Graph> {
    if group_qparams.len() != annotation.groups.len() {
        return Err(Error::Internal("one qparams per sharing group expected".into()));
    }
    let mut g = graph.clone();
    quantize_weights(&mut g, &annotation.weights)?;
    for &(node, input) in &annotation.dynamic_inputs {
        let x = g.nodes[node].inputs[input].clone();
        if !annotation.tensor_group.contains_key(&x) {
            insert_dynamic(&mut g, node, input, &x);
        }
    }
    let mut tensors: Vec<(&String, &usize)> = annotation.tensor_group.iter().collect();
    tensors.sort();
    for (tensor, &group) in tensors {
        insert_qdq(&mut g, tensor, &group_qparams[group])?;
    }
    // Float weights no one reads any more are dropped; appended nodes are sorted into place.
    g.remove_dead();
    g.value_info.clear();
    g.validate()?;
    g.infer_shapes()?;
    Ok(g)
}

/// The parameters of a weight tensor by its spec's scheme ([`QScheme::choose`](crate::qscheme::QScheme::choose):
/// per channel or per tensor, as the min/max observers give them).
pub fn weight_qparams(w: &Tensor, spec: &WeightSpec) -> Result<QTensorParams> {
    spec.scheme.choose(w.as_f32()?, w.dims())
}

fn quantize_weights(g: &mut Graph, specs: &[WeightSpec]) -> Result<()> {
    // A weight read by several nodes with the same granularity is quantized once.
    let mut done: HashMap<(String, Granularity), String> = HashMap::new();
    for spec in specs {
        let name = g.nodes[spec.node].inputs[spec.input].clone();
        let granularity = spec.scheme.granularity();
        if let Some(dq_out) = done.get(&(name.clone(), granularity)) {
            g.nodes[spec.node].inputs[spec.input] = dq_out.clone();
            continue;
        }
        let w = g
            .initializers
            .get(&name)
            .ok_or_else(|| Error::Internal(format!("weight `{name}` is not an initializer")))?
            .clone();
        let qparams = weight_qparams(&w, spec)?;
        let mut q = vec![0i8; w.numel()];
        qparams.quantize_i8(w.as_f32()?, w.dims(), &mut q)?;
        let DqInputs {
            attrs,
            scale,
            zero_point,
        } = qdq::dq_inputs(&qparams, w.dims())?;
        let q_name = g.fresh_name(&format!("{name}_quantized"));
        g.initializers
            .insert(q_name.clone(), Tensor::from_i8(w.dims().to_vec(), q)?);
        let s_name = g.fresh_name(&format!("{name}_scale"));
        g.initializers.insert(s_name.clone(), scale);
        let z_name = g.fresh_name(&format!("{name}_zero_point"));
        g.initializers.insert(z_name.clone(), zero_point);
        let dq_out = g.fresh_name(&format!("{name}_dequantized"));
        let dq = Node {
            name: g.fresh_name(&format!("{name}_DequantizeLinear")),
            op: Op::DequantizeLinear(attrs),
            inputs: vec![q_name, s_name, z_name],
            outputs: vec![dq_out.clone()],
        };
        g.nodes.push(dq);
        g.nodes[spec.node].inputs[spec.input] = dq_out.clone();
        done.insert((name, granularity), dq_out);
    }
    Ok(())
}

/// Inserts `Q → DQ` on activation `tensor`.
fn insert_qdq(g: &mut Graph, tensor: &str, p: &QParams) -> Result<()> {
    let scale = g.fresh_name(&format!("{tensor}_scale"));
    g.initializers
        .insert(scale.clone(), Tensor::scalar_f32(p.scale()));
    let zp = g.fresh_name(&format!("{tensor}_zero_point"));
    g.initializers
        .insert(zp.clone(), Tensor::from_i8(vec![], vec![zp_i8(p.zero_point())?])?);
    let quantized = g.fresh_name(&format!("{tensor}_quantized"));
    if let Some(constant) = g.initializers.get(tensor).filter(|t| t.dtype() == DType::F32) {
        // A constant operand (e.g. of an Add) becomes an i8 initializer behind a DQ.
        let mut q = vec![0i8; constant.numel()];
        p.quantize_i8(constant.as_f32()?, &mut q)?;
        let dims = constant.dims().to_vec();
        g.initializers
            .insert(quantized.clone(), Tensor::from_i8(dims, q)?);
        let dq_output = g.fresh_name(&format!("{tensor}_dequantized"));
        replace_node_inputs(g, tensor, &dq_output);
        g.nodes
            .push(dequantize_node(g, tensor, quantized, scale, zp, dq_output));
        return Ok(());
    }
    let producer = g.producer(tensor);
    let (q_input, dq_output) = match producer {
        Some(p) => {
            // The producer now writes `t_float`; the DQ re-creates `t` for every reader.
            let float_name = g.fresh_name(&format!("{tensor}_float"));
            for o in g.nodes[p].outputs.iter_mut().filter(|o| *o == tensor) {
                *o = float_name.clone();
            }
            (float_name, tensor.to_string())
        }
        None => {
            // A graph input keeps its name; its readers read the DQ output.
            let dq_output = g.fresh_name(&format!("{tensor}_dequantized"));
            replace_node_inputs(g, tensor, &dq_output);
            (tensor.to_string(), dq_output)
        }
    };
    let q = Node {
        name: g.fresh_name(&format!("{tensor}_QuantizeLinear")),
        op: Op::QuantizeLinear(QuantAttrs::default()),
        inputs: vec![q_input, scale.clone(), zp.clone()],
        outputs: vec![quantized.clone()],
    };
    let dq = dequantize_node(g, tensor, quantized, scale, zp, dq_output);
    g.nodes.push(q);
    g.nodes.push(dq);
    Ok(())
}

/// A per-tensor `DequantizeLinear` node for activation or constant `tensor`.
fn dequantize_node(
    g: &Graph,
    tensor: &str,
    quantized: String,
    scale: String,
    zp: String,
    out: String,
) -> Node {
    Node {
        name: g.fresh_name(&format!("{tensor}_DequantizeLinear")),
        op: Op::DequantizeLinear(QuantAttrs::default()),
        inputs: vec![quantized, scale, zp],
        outputs: vec![out],
    }
}

/// Makes every node that reads `old` read `new` (graph outputs keep their names).
fn replace_node_inputs(g: &mut Graph, old: &str, new: &str) {
    for n in &mut g.nodes {
        for i in n.inputs.iter_mut().filter(|i| *i == old) {
            *i = new.to_string();
        }
    }
}

/// Inserts `DynamicQuantizeLinear → DequantizeLinear` on input `input` of node `node`.
fn insert_dynamic(g: &mut Graph, node: usize, input: usize, x: &str) {
    let base = format!("{}_input{input}", g.nodes[node].name);
    let names: Vec<String> = ["quantized", "scale", "zero_point", "dequantized"]
        .iter()
        .map(|s| g.fresh_name(&format!("{base}_dynamic_{s}")))
        .collect();
    let dyn_q = Node {
        name: g.fresh_name(&format!("{base}_DynamicQuantizeLinear")),
        op: Op::DynamicQuantizeLinear,
        inputs: vec![x.to_string()],
        outputs: names[..3].to_vec(),
    };
    let dq = Node {
        name: g.fresh_name(&format!("{base}_DequantizeLinear")),
        op: Op::DequantizeLinear(QuantAttrs::default()),
        inputs: names[..3].to_vec(),
        outputs: vec![names[3].clone()],
    };
    g.nodes[node].inputs[input] = names[3].clone();
    g.nodes.push(dyn_q);
    g.nodes.push(dq);
}
fn zp_i8(z: i32) -> Result<i8> {
    i8::try_from(z).map_err(|_| Error::Internal(format!("zero point {z} does not fit i8")))
}
