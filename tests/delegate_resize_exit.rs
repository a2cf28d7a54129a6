//! A Resize at a partition's exit: `… → Q → DQ → Resize → float output` with no `Q` after the
//! Resize (PyTorch's PT2E export of LR-ASPP ends so). QDQ graphs built here:
//! `MaxPool(1×1) → Q → DQ → Resize`, on int8 and uint8 tensors, nearest and bilinear, over
//! every coordinate transformation, up- and down-sampling, scales and sizes. The Resize is
//! delegated (nothing refused, nothing interpreted, one [`StepSpec::ResizeExit`] that reads
//! the int8 value and writes the `f32` output) and its output equals the interpreter's
//! DequantizeLinear → Resize (`PartitionMode::None`) bit for bit, also on two threads, per
//! operator and saved and loaded; every ISA's step writes the same bits; ONNX Runtime's
//! reference session agrees to `f32` rounding; corrupted programs are rejected.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{CoordinateTransform, NearestMode, PoolAttrs, QuantAttrs, ResizeAttrs, ResizeMode};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::program::{ProgramSpec, StepSpec};
use xq::runtime::{Program, ProgramOptions};

const DIMS: [usize; 4] = [2, 21, 5, 7];

/// How the output size is given.
#[derive(Clone, Debug)]
enum Size {
    Scales([f32; 4]),
    Sizes([i64; 4]),
}

/// Both modes over every coordinate transformation (nearest with two roundings), up- and
/// down-sampling, scales and sizes.
fn cases() -> Vec<(ResizeAttrs, Size)> {
    use CoordinateTransform as C;
    let transforms = [
        C::Asymmetric,
        C::HalfPixel,
        C::PytorchHalfPixel,
        C::AlignCorners,
        C::HalfPixelSymmetric,
    ];
    let sizes = [
        Size::Scales([1.0, 1.0, 2.0, 2.0]),
        Size::Scales([1.0, 1.0, 0.6, 1.5]),
        Size::Sizes([2, 21, 9, 3]),
    ];
    let mut out = Vec::new();
    for mode in [ResizeMode::Nearest, ResizeMode::Linear] {
        for t in transforms {
            let roundings: &[NearestMode] = match mode {
                ResizeMode::Nearest => &[NearestMode::RoundPreferFloor, NearestMode::Floor],
                _ => &[NearestMode::RoundPreferFloor],
            };
            for &nearest_mode in roundings {
                for s in &sizes {
                    let attrs = ResizeAttrs {
                        mode,
                        coordinate_transform: t,
                        nearest_mode,
                        cubic_coeff_a: -0.75,
                        ..ResizeAttrs::default()
                    };
                    out.push((attrs, s.clone()));
                }
            }
        }
    }
    out
}

/// Bilinear, half-pixel, 2× (LR-ASPP's last layer).
fn bilinear_half_pixel() -> (ResizeAttrs, Size) {
    cases()
        .into_iter()
        .find(|(a, s)| {
            a.mode == ResizeMode::Linear
                && a.coordinate_transform == CoordinateTransform::HalfPixel
                && matches!(s, Size::Scales(s) if s[2] == 2.0)
        })
        .unwrap()
}

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// `Q → DQ → MaxPool(1×1) → Q → DQ → Resize → y` (`y` a float graph output).
fn exit_graph(attrs: &ResizeAttrs, size: &Size, unsigned: bool) -> Graph {
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    let mut g = Graph {
        name: "resize_exit".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &DIMS)],
        ..Graph::default()
    };
    let resize_inputs: &[&str] = match size {
        Size::Scales(s) => {
            let t = Tensor::new(vec![4], TensorData::F32(s.to_vec())).unwrap();
            g.initializers.insert("scales".into(), t);
            &["p_dq", "", "scales"]
        }
        Size::Sizes(s) => {
            g.initializers.insert("sizes".into(), Tensor::vec_i64(s.to_vec()));
            &["p_dq", "", "", "sizes"]
        }
    };
    let zp = if unsigned { 140 } else { 3 };
    g.initializers.insert("s".into(), Tensor::scalar_f32(0.05));
    g.initializers.insert("z".into(), zero_point(zp, unsigned));
    let (q, dq) = (
        Op::QuantizeLinear(QuantAttrs::default()),
        Op::DequantizeLinear(QuantAttrs::default()),
    );
    g.nodes = vec![
        node("qx", q.clone(), &["x", "s", "z"], "x_q"),
        node("dqx", dq.clone(), &["x_q", "s", "z"], "x_dq"),
        node("pool", Op::MaxPool(pool), &["x_dq"], "p"),
        node("qp", q, &["p", "s", "z"], "p_q"),
        node("dqp", dq, &["p_q", "s", "z"], "p_dq"),
        node("resize", Op::Resize(attrs.clone()), resize_inputs, "y"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let out = g.tensor_info("y").and_then(|i| i.concrete_shape()).unwrap();
    g.outputs = vec![TensorInfo::known("y", DType::F32, &out)];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

/// Values over the whole quantized range.
fn input(seed: u32) -> Tensor {
    let n: usize = DIMS.iter().product();
    let v = noise(n, seed).into_iter().map(|v| v * 7.0).collect();
    Tensor::from_f32(DIMS.to_vec(), v).unwrap()
}

fn run(program: &Program, x: &Tensor) -> Vec<u32> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y[0].as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn exits(spec: &ProgramSpec) -> usize {
    spec.steps
        .iter()
        .filter(|s| matches!(s, StepSpec::ResizeExit { node, .. } if node == "resize"))
        .count()
}

#[test]
fn a_resize_to_a_float_output_is_delegated_and_equals_the_interpreter_bit_for_bit() {
    for (attrs, size) in cases() {
        for unsigned in [false, true] {
            let what = format!("{attrs:?} {size:?} unsigned {unsigned}");
            let g = exit_graph(&attrs, &size, unsigned);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{what}: {}", report.text());
            assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
            assert_eq!(report.partitions.len(), 1, "{what}: {}", report.text());
            assert_eq!(
                report.partitions[0].ops.get("Resize"),
                Some(&1),
                "{}",
                report.text()
            );
            assert_eq!(exits(&spec), 1, "{what}");
            // The int8 value is not dequantized on its own: the exit writes the output.
            assert!(
                !spec
                    .steps
                    .iter()
                    .any(|s| matches!(s, StepSpec::Dequantize { .. })),
                "{what}: {:?}",
                spec.steps
            );
            let (programs, interpreter) = delegated_and_interpreted(&g, spec);
            for seed in 0..2 {
                let x = input(seed);
                let want = run(&interpreter, &x);
                for (p, program) in programs.iter().enumerate() {
                    assert_eq!(run(program, &x), want, "{what} program {p} seed {seed}");
                }
            }
        }
    }
}

#[test]
fn the_exit_writes_the_same_bits_under_every_isa() {
    use xq::cpu::{features, Isa};
    for (attrs, size) in cases() {
        let g = exit_graph(&attrs, &size, false);
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let Some((value, taps)) = spec.steps.iter().find_map(|s| match s {
            StepSpec::ResizeExit { value, resize, .. } => Some((*value, resize.clone())),
            _ => None,
        }) else {
            panic!("no exit step");
        };
        let v = &spec.values[value];
        let x: Vec<i8> = (0..v.numel()).map(|i| (i * 37 % 256) as u8 as i8).collect();
        let dims = taps.output_dims(v).unwrap();
        let run = |isa: Isa| {
            let r = taps.build(isa, v).unwrap();
            let mut y = vec![0f32; dims.iter().product()];
            r.run(&x, &mut y).unwrap();
            y.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let want = run(Isa::Scalar);
        for isa in Isa::ALL.into_iter().filter(|&i| features().supports(i)) {
            assert_eq!(run(isa), want, "{attrs:?} {size:?} under {}", isa.name());
        }
    }
}

#[test]
fn a_resize_exit_agrees_with_onnxruntime() {
    let Some(python) = python("delegate_resize_exit") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (attrs, size) in cases()
        .into_iter()
        .filter(|(a, s)| a.nearest_mode == NearestMode::RoundPreferFloor && matches!(s, Size::Scales(_)))
    {
        // ONNX Runtime divides by the integer output length in align_corners where ONNX (and
        // libxq) divide by `in * scale` (tests/delegate_resize.rs): other taps at 5 × 0.6.
        if attrs.coordinate_transform == CoordinateTransform::AlignCorners
            && matches!(size, Size::Scales(s) if s[2] != 2.0)
        {
            continue;
        }
        for unsigned in [false, true] {
            let what = format!("{attrs:?} {size:?} unsigned {unsigned}");
            let g = exit_graph(&attrs, &size, unsigned);
            let model = dir.path().join("m.onnx");
            xq::onnx::save_file(&g, &model).unwrap();
            let x = input(9);
            let path = dir.path().join("x.npy");
            write_npy(&path, &DIMS, x.as_f32().unwrap());
            run_python(
                &python,
                &root().join("tests/python/run_onnx.py"),
                &[
                    model.to_str().unwrap(),
                    dir.path().join("ort").to_str().unwrap(),
                    path.to_str().unwrap(),
                ],
            );
            let ort = xq::npy::read(dir.path().join("ort0.npy")).unwrap();
            let theirs = ort.as_f32().unwrap();
            let (spec, _) = lower(&g, PartitionMode::All).unwrap();
            let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
            let ours = program.execute(std::slice::from_ref(&x)).unwrap();
            let ours = ours[0].as_f32().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{what}");
            // Within a few `f32` roundings of values up to 128 × 0.05.
            let worst = ours
                .iter()
                .zip(theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "{what}: worst difference {worst}");
        }
    }
}

#[test]
fn a_resize_exit_that_also_reads_a_dequantized_output_keeps_the_dequantize() {
    let (attrs, size) = bilinear_half_pixel();
    let mut g = exit_graph(&attrs, &size, false);
    let dims = g.tensor_info("p_dq").and_then(|i| i.concrete_shape()).unwrap();
    g.outputs.push(TensorInfo::known("p_dq", DType::F32, &dims));
    let (spec, report) = lower(&g, PartitionMode::All).unwrap();
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    assert_eq!(exits(&spec), 1);
    let (programs, interpreter) = delegated_and_interpreted(&g, spec);
    let x = input(4);
    let want = interpreter.execute(std::slice::from_ref(&x)).unwrap();
    for program in &programs {
        let got = program.execute(std::slice::from_ref(&x)).unwrap();
        for (a, b) in got.iter().zip(&want) {
            let bits = |t: &Tensor| {
                t.as_f32()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(a), bits(b));
        }
    }
}

#[test]
fn corrupted_resize_exits_fail_to_load_without_panicking() {
    let (attrs, size) = bilinear_half_pixel();
    let g = exit_graph(&attrs, &size, false);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    let bytes = Program::new(spec.clone(), ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    xq::fuzzing::program_load(&bytes);
    corrupted_program_loads(&bytes);
    let at = spec
        .steps
        .iter()
        .position(|s| matches!(s, StepSpec::ResizeExit { .. }))
        .unwrap();
    type Edit = fn(&mut StepSpec);
    let edits: [Edit; 3] = [
        |s| {
            if let StepSpec::ResizeExit { resize, .. } = s {
                resize.rows[0].i1 = 1 << 30;
            }
        },
        |s| {
            if let StepSpec::ResizeExit { resize, .. } = s {
                resize.cols[1].w = f32::NAN;
            }
        },
        |s| {
            if let StepSpec::ResizeExit { value, .. } = s {
                *value = 1 << 40;
            }
        },
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut bad = spec.clone();
        edit(&mut bad.steps[at]);
        let loaded = xq::format::program_file::to_bytes(&bad).and_then(|file| {
            Program::load_bytes(
                xq::format::ProgramBytes::copy_from(&file)?,
                ProgramOptions { threads: 1 },
            )
        });
        assert!(loaded.is_err(), "edit {i} loaded");
    }
}

/// An output large enough to split over the threads (8× upsampling: 2 × 21 × 40 × 56 floats).
#[test]
fn a_large_resize_exit_on_two_threads_equals_the_interpreter() {
    for mode in [ResizeMode::Linear, ResizeMode::Nearest] {
        let attrs = ResizeAttrs {
            mode,
            coordinate_transform: CoordinateTransform::HalfPixel,
            ..ResizeAttrs::default()
        };
        let g = exit_graph(&attrs, &Size::Scales([1.0, 1.0, 8.0, 8.0]), false);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        let x = input(3);
        let want = run(&interpreter, &x);
        for (p, program) in programs.iter().enumerate() {
            assert_eq!(run(program, &x), want, "{mode:?} program {p}");
        }
    }
}
