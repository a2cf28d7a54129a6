//! Constant folding and graph cleanup once input shapes are known.

use super::kernels;
use crate::ir::infer::{infer_op, with_node, Fact};
use crate::ir::{DType, Graph, Op, Tensor};
use crate::Result;
use std::collections::HashMap;

/// Largest tensor folding may create (bigger results stay computed at run time).
const MAX_FOLDED_ELEMENTS: usize = 1 << 24;

/// Simplifies a graph: evaluates every node whose inputs are all constant (and Shape nodes
/// whose input shape is known) into initializers, folds BatchNormalization into preceding
/// Convs, removes Identity nodes and dead code, then re-validates and re-infers shapes.
/// DequantizeLinear nodes are never folded: they carry a QDQ graph's meaning. A
/// QuantizeLinear of constants is (an exporter's quantized weight whose float value is a
/// constant, e.g. a `Constant` node): its int8 result becomes an initializer, so that the
/// DequantizeLinear reading it is a quantized weight.
pub fn simplify(graph: &mut Graph) -> Result<()> {
    graph.validate()?;
    let mut facts: HashMap<String, (DType, Option<Vec<usize>>)> = HashMap::new();
    for i in &graph.inputs {
        facts.insert(i.name.clone(), (i.dtype, i.concrete_shape()));
    }
    for (n, t) in &graph.initializers {
        facts.insert(n.clone(), (t.dtype(), Some(t.dims().to_vec())));
    }
    let mut kept = Vec::with_capacity(graph.nodes.len());
    for node in std::mem::take(&mut graph.nodes) {
        let input_facts: Vec<Option<Fact>> = node
            .inputs
            .iter()
            .map(|n| {
                if n.is_empty() {
                    return None;
                }
                facts.get(n).map(|(d, s)| Fact {
                    dtype: *d,
                    shape: s.as_deref(),
                    value: graph.initializers.get(n),
                })
            })
            .collect();
        let outs =
            infer_op(&node.op, &input_facts).map_err(|e| with_node(e, &node.name, node.op.onnx_name()))?;
        let folded: Option<Vec<Tensor>> = match &node.op {
            Op::DequantizeLinear(_) | Op::DynamicQuantizeLinear => None,
            Op::QuantizeLinear(_) if !node.input(0).is_some_and(|x| graph.initializers.contains_key(x)) => {
                None
            }
            Op::Shape { start, end } => input_facts[0].and_then(|f| f.shape).map(|dims| {
                let (s, e) = crate::ir::shapes::shape_range(dims.len(), *start, *end);
                vec![Tensor::vec_i64(dims[s..e].iter().map(|&d| d as i64).collect())]
            }),
            Op::Size => input_facts[0]
                .and_then(|f| f.shape)
                .map(|dims| vec![Tensor::scalar_i64(dims.iter().product::<usize>() as i64)]),
            // CastLike reads only the dtype of its second input: a constant first input casts
            // now. Exporters build constants this way from an activation (e.g. the zero bias
            // given to a bias-free Conv, `Expand(CastLike(0, x), [C])`, or clamp bounds); left
            // to run time they keep a Conv's bias non-constant and its BatchNormalization unfolded.
            Op::CastLike => match (
                graph.initializers.get(&node.inputs[0]),
                input_facts.get(1).copied().flatten(),
            ) {
                (Some(x), Some(like)) => Some(
                    kernels::eval(&Op::Cast { to: like.dtype }, &[Some(x)])
                        .map_err(|e| with_node(e, &node.name, node.op.onnx_name()))?,
                ),
                _ => None,
            },
            _ => {
                let all_const = node
                    .inputs
                    .iter()
                    .all(|n| n.is_empty() || graph.initializers.contains_key(n));
                let small = outs.iter().all(|(_, s)| {
                    s.as_ref()
                        .is_some_and(|s| s.iter().product::<usize>() <= MAX_FOLDED_ELEMENTS)
                });
                if all_const && small {
                    let args: Vec<Option<&Tensor>> = node
                        .inputs
                        .iter()
                        .map(|n| {
                            if n.is_empty() {
                                None
                            } else {
                                graph.initializers.get(n)
                            }
                        })
                        .collect();
                    Some(
                        kernels::eval(&node.op, &args)
                            .map_err(|e| with_node(e, &node.name, node.op.onnx_name()))?,
                    )
                } else {
                    None
                }
            }
        };
        match folded {
            Some(values) => {
                for (name, t) in node.outputs.iter().zip(values) {
                    if !name.is_empty() {
                        facts.insert(name.clone(), (t.dtype(), Some(t.dims().to_vec())));
                        graph.initializers.insert(name.clone(), t);
                    }
                }
            }
            None => {
                for (name, f) in node.outputs.iter().zip(outs) {
                    facts.insert(name.clone(), f);
                }
                kept.push(node);
            }
        }
    }
    graph.nodes = kept;
    // Graph outputs that became constants stay reachable: keep them as initializers.
    graph.fold_batchnorm_into_conv()?;
    graph.remove_identities();
    graph.remove_dead();
    graph.validate()?;
    graph.value_info.clear();
    graph.infer_shapes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::op::ConvAttrs;
    use crate::ir::{Node, TensorInfo};

    fn node(op: Op, inputs: &[&str], output: &str) -> Node {
        Node {
            name: format!("{output}_node"),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
        }
    }

    /// PyTorch's exporter gives a bias-free Conv the bias `Expand(CastLike(0, x), [C])`: it
    /// must fold to a constant so that the BatchNormalization after the Conv folds too.
    #[test]
    fn exported_zero_bias_folds_and_batchnorm_folds_into_the_conv() {
        let mut g = Graph {
            inputs: vec![TensorInfo::known("x", DType::F32, &[1, 2, 3, 3])],
            outputs: vec![TensorInfo::known("y", DType::F32, &[1, 2, 3, 3])],
            ..Graph::default()
        };
        let init = |g: &mut Graph, name: &str, t: Tensor| {
            g.initializers.insert(name.into(), t);
        };
        init(
            &mut g,
            "w",
            Tensor::from_f32(vec![2, 1, 1, 1], vec![0.01, 0.02]).unwrap(),
        );
        init(&mut g, "zero", Tensor::scalar_f32(0.0));
        init(&mut g, "channels", Tensor::vec_i64(vec![2]));
        for (name, v) in [
            ("gamma", [1.0, 2.0]),
            ("beta", [0.5, -0.5]),
            ("mean", [0.1, 0.2]),
            ("var", [1e-4, 4e-4]),
        ] {
            init(&mut g, name, Tensor::from_f32(vec![2], v.to_vec()).unwrap());
        }
        g.nodes = vec![
            node(Op::CastLike, &["zero", "x"], "zero_like"),
            node(Op::Expand, &["zero_like", "channels"], "bias"),
            node(
                Op::Conv(ConvAttrs {
                    kernel_shape: vec![1, 1],
                    strides: vec![1, 1],
                    pads: vec![0; 4],
                    dilations: vec![1, 1],
                    group: 2,
                    ..ConvAttrs::default()
                }),
                &["x", "w", "bias"],
                "conv",
            ),
            node(
                Op::BatchNormalization { epsilon: 1e-5 },
                &["conv", "gamma", "beta", "mean", "var"],
                "y",
            ),
        ];
        let x = Tensor::from_f32(vec![1, 2, 3, 3], (0..18).map(|i| i as f32 * 0.3 - 2.0).collect()).unwrap();
        let before = crate::interp::run_once(&g, std::slice::from_ref(&x)).unwrap();
        simplify(&mut g).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.onnx_name()).collect();
        assert_eq!(ops, ["Conv"]);
        let after = crate::interp::run_once(&g, std::slice::from_ref(&x)).unwrap();
        for (a, b) in before[0].as_f32().unwrap().iter().zip(after[0].as_f32().unwrap()) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn cast_like_of_an_activation_stays() {
        let mut g = Graph {
            inputs: vec![TensorInfo::known("x", DType::F32, &[2])],
            outputs: vec![TensorInfo::known("y", DType::I64, &[2])],
            ..Graph::default()
        };
        g.initializers.insert("like".into(), Tensor::vec_i64(vec![0]));
        g.nodes = vec![node(Op::CastLike, &["x", "like"], "y")];
        simplify(&mut g).unwrap();
        assert_eq!(g.nodes.len(), 1);
    }
}
