//! Int8 Split: `MaxPool(1×1) → Split` with every output quantized with the input's qparams
//! (QDQ graphs built here, no Python), split by a `split` input on the channel and width axes
//! and into equal parts (as opset 18's `num_outputs` gives), on int8 and uint8 tensors: the
//! node is delegated (nothing refused, one gather step per output) and every output equals
//! the interpreter's (`PartitionMode::None`) bit for bit, also per operator and saved and
//! loaded. libxq's quantizer gives every output the input's qparams, so its QDQ graph of a
//! Split is delegated whole; an output with other qparams (PyTorch's quantizer) is
//! requantized by a table.

mod common;
mod delegate_common;

use delegate_common::delegated_and_interpreted;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{PoolAttrs, QuantAttrs};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::program::{KernelSpec, StepSpec};
use xq::runtime::Program;

const DIMS: [usize; 4] = [2, 6, 3, 5];

fn node(name: &str, op: Op, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    }
}

fn quant() -> Op {
    Op::QuantizeLinear(QuantAttrs::default())
}

fn dequant() -> Op {
    Op::DequantizeLinear(QuantAttrs::default())
}

/// `Q → DQ → MaxPool(1×1) → Q → DQ → Split(axis, split?) → (Q → DQ) per output`.
fn split_graph(axis: i64, split: Option<Vec<i64>>, parts: usize, unsigned: bool) -> Graph {
    let zp = if unsigned {
        TensorData::U8(vec![130])
    } else {
        TensorData::I8(vec![-5])
    };
    let mut g = Graph {
        name: "split".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &DIMS)],
        ..Graph::default()
    };
    g.initializers.insert("s".into(), Tensor::scalar_f32(0.04));
    g.initializers
        .insert("z".into(), Tensor::new(vec![], zp).unwrap());
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    let outs: Vec<String> = (0..parts).map(|k| format!("o{k}")).collect();
    let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let mut split_inputs = vec!["p_dq"];
    if let Some(s) = split {
        g.initializers.insert("split".into(), Tensor::vec_i64(s));
        split_inputs.push("split");
    }
    g.nodes = vec![
        node("qx", quant(), &["x", "s", "z"], &["x_q"]),
        node("dqx", dequant(), &["x_q", "s", "z"], &["x_dq"]),
        node("pool", Op::MaxPool(pool), &["x_dq"], &["p"]),
        node("qp", quant(), &["p", "s", "z"], &["p_q"]),
        node("dqp", dequant(), &["p_q", "s", "z"], &["p_dq"]),
        node(
            "split",
            Op::Split {
                axis,
                num_outputs: parts,
            },
            &split_inputs,
            &out_refs,
        ),
    ];
    for o in &outs {
        let (q, y) = (format!("{o}_q"), format!("y_{o}"));
        g.nodes
            .push(node(&format!("q_{o}"), quant(), &[o, "s", "z"], &[&q]));
        g.nodes
            .push(node(&format!("dq_{o}"), dequant(), &[&q, "s", "z"], &[&y]));
    }
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g.outputs = outs
        .iter()
        .map(|o| {
            let y = format!("y_{o}");
            let dims = g.tensor_info(&y).and_then(|i| i.concrete_shape()).unwrap();
            TensorInfo::known(&y, DType::F32, &dims)
        })
        .collect();
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn input() -> Tensor {
    let n: usize = DIMS.iter().product();
    let v = (0..n)
        .map(|i| ((i * 37 % 301) as f32 - 150.0) * 0.04 + 0.01)
        .collect();
    Tensor::from_f32(DIMS.to_vec(), v).unwrap()
}

fn run(program: &Program, x: &Tensor) -> Vec<Vec<u32>> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y.iter()
        .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn split_is_delegated_and_equals_the_interpreter_bit_for_bit() {
    let cases: [(i64, Option<Vec<i64>>, usize); 4] = [
        (1, Some(vec![1, 2, 3]), 3),
        (-1, Some(vec![4, 1]), 2),
        (1, None, 2),
        (3, None, 3),
    ];
    for (axis, split, parts) in cases {
        for unsigned in [false, true] {
            let what = format!("axis {axis} split {split:?} parts {parts} unsigned {unsigned}");
            let g = split_graph(axis, split.clone(), parts, unsigned);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{what}: {}", report.text());
            assert_eq!(report.partitions.len(), 1, "{}", report.text());
            assert_eq!(
                report.partitions[0].ops.get("Split"),
                Some(&1),
                "{}",
                report.text()
            );
            let gathers = spec
                .steps
                .iter()
                .filter(|s| {
                    matches!(s, StepSpec::Kernel { node, kernel: KernelSpec::Copy(_), .. } if node == "split")
                })
                .count();
            assert_eq!(gathers, parts, "{what}");
            let (programs, interpreter) = delegated_and_interpreted(&g, spec);
            let x = input();
            let want = run(&interpreter, &x);
            for (p, program) in programs.iter().enumerate() {
                assert_eq!(run(program, &x), want, "{what} program {p}");
            }
        }
    }
}

#[test]
fn a_split_output_with_other_qparams_is_requantized_by_a_table_and_equals_the_interpreter() {
    for unsigned in [false, true] {
        let mut g = split_graph(1, Some(vec![3, 3]), 2, unsigned);
        g.initializers.insert("s2".into(), Tensor::scalar_f32(0.08));
        for n in g.nodes.iter_mut().filter(|n| n.name.ends_with("_o1")) {
            n.inputs[1] = "s2".into();
        }
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{}", report.text());
        let tables = spec
            .steps
            .iter()
            .filter(
                |s| matches!(s, StepSpec::Kernel { kernel: KernelSpec::Copy(c), .. } if c.table.is_some()),
            )
            .count();
        assert_eq!(tables, 1);
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        let want = run(&interpreter, &input());
        for (p, program) in programs.iter().enumerate() {
            assert_eq!(run(program, &input()), want, "unsigned {unsigned} program {p}");
        }
    }
}
