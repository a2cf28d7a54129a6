//! Whole programs under every forced ISA compute the same bytes: each program below is run by
//! the `xq` tool once per ISA this CPU supports (`XQ_ISA=scalar|avx2|avx512vnni`, the scalar
//! run single-threaded, the others on two threads) and every output must equal the scalar
//! run's bit for bit. ISAs the CPU lacks are reported as SKIPPED; the test command's emulated
//! pass (`qemu-x86_64 -cpu Haswell`) runs this file again on an AVX2-only CPU, wrapping the
//! `xq` processes in `XQ_EMULATOR` so that they see the same CPU as the test.
//!
//! The programs cover every kernel family the delegate lowers to: dense and depthwise
//! convolution, fully connected (static and dynamic), add / mul, max / average / global
//! pools, concat, transposes, table lookups (SiLU, HardSwish, Tanh; the AVX-512 row looks up
//! with VBMI where the CPU has it), bilinear and nearest resize, arithmetic with constants (one
//! table, or one per channel), and the interpreter's fallback between partitions. Their inputs
//! are committed fixtures or seeded values; the models quantized here are quantized once,
//! before the runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use xq::cpu::Isa;

/// The repository's fixtures directory.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The `xq` tool, behind the emulator of `XQ_EMULATOR` when it is set.
fn xq() -> Command {
    let exe = env!("CARGO_BIN_EXE_xq");
    match std::env::var("XQ_EMULATOR").ok().filter(|e| !e.trim().is_empty()) {
        Some(emulator) => {
            let mut words = emulator.split_whitespace();
            let mut cmd = Command::new(words.next().unwrap());
            cmd.args(words).arg(exe);
            cmd
        }
        None => Command::new(exe),
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn run(mut cmd: Command) -> String {
    let out = cmd.output().expect("failed to start xq");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a little-endian f32 `.npy` of `dims` holding `values`.
fn write_npy(path: &Path, dims: &[usize], values: &[f32]) {
    let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        shape.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Seeded values in [-2, 2) (xorshift), for inputs no fixture provides.
fn seeded(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// The ISA `xq run` reports in its summary line (`isa NAME threads ...`).
fn selected_isa(summary: &str) -> &str {
    summary
        .split_whitespace()
        .skip_while(|w| *w != "isa")
        .nth(1)
        .unwrap_or_else(|| panic!("no `isa` in the summary: {summary}"))
}

/// Quantizes the float `model` with `xq quantize` (extra flags `flags`) into `dir/name.onnx`.
fn quantize(model: &Path, calib: &Path, flags: &[&str], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.onnx"));
    let mut cmd = xq();
    cmd.arg("quantize")
        .arg(model)
        .arg("--calib")
        .arg(calib)
        .arg("-o")
        .arg(&out)
        .args(flags);
    run(cmd);
    out
}

/// Compiles `model` (fixed to the shapes of `shapes`) into a program file, runs it on every
/// sample of `input` under each supported ISA and asserts the outputs are bit-identical.
/// Returns how many ISAs ran.
fn check_program(model: &Path, shapes: &[&str], input: &Path, dir: &Path, name: &str) -> usize {
    let program = dir.join(format!("{name}.xq"));
    let mut cmd = xq();
    cmd.arg("compile").arg(model).arg("-o").arg(&program);
    for s in shapes {
        cmd.args(["--shape", s]);
    }
    println!("{name}: {}", run(cmd).lines().next().unwrap_or_default());
    let mut reference: Option<(Isa, Vec<u8>)> = None;
    let mut ran = 0;
    for isa in Isa::ALL {
        if !isa.is_supported() {
            println!("SKIPPED: {name} under {} (not supported by this CPU)", isa.name());
            continue;
        }
        let out = dir.join(format!("{name}_{}.bin", isa.name()));
        let threads = if isa == Isa::Scalar { "1" } else { "2" };
        let mut cmd = xq();
        cmd.env("XQ_ISA", isa.name())
            .arg("run")
            .arg(&program)
            .arg("--input")
            .arg(input)
            .args(["--runs", "1", "--threads", threads, "--save-outputs"])
            .arg(&out);
        let summary = run(cmd);
        assert_eq!(
            selected_isa(&summary),
            isa.name(),
            "{name}: XQ_ISA not honoured: {summary}"
        );
        let bytes = std::fs::read(&out).unwrap();
        assert!(!bytes.is_empty(), "{name}: no outputs under {}", isa.name());
        match &reference {
            None => reference = Some((isa, bytes)),
            Some((first, want)) => {
                let differing = bytes
                    .chunks(4)
                    .zip(want.chunks(4))
                    .filter(|(a, b)| a != b)
                    .count();
                assert!(
                    bytes == *want,
                    "{name}: {} and {} differ on {differing} of {} outputs",
                    isa.name(),
                    first.name(),
                    want.len() / 4
                );
            }
        }
        ran += 1;
    }
    println!("{name}: {ran} ISAs bit-identical");
    ran
}

#[test]
fn static_and_per_tensor_digits_cnn_are_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let digits = fixtures().join("digits");
    let x = digits.join("digits_test_x.npy");
    for (name, flags) in [("cnn", &[][..]), ("cnn_per_tensor", &["--per-tensor"][..])] {
        let model = quantize(
            &digits.join("digits_cnn.onnx"),
            &digits.join("digits_train_x.npy"),
            &[&["--shape", "input=1,1,8,8"], flags].concat(),
            dir.path(),
            name,
        );
        assert!(check_program(&model, &[], &x, dir.path(), name) >= 2);
    }
}

#[test]
fn dynamic_digits_mlp_is_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let digits = fixtures().join("digits");
    let model = quantize(
        &digits.join("digits_mlp.onnx"),
        &digits.join("digits_train_x.npy"),
        &["--dynamic", "--shape", "input=1,1,8,8"],
        dir.path(),
        "mlp_dynamic",
    );
    let x = digits.join("digits_test_x.npy");
    assert!(check_program(&model, &[], &x, dir.path(), "mlp_dynamic") >= 2);
}

#[test]
fn pt2e_patterns_program_is_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let pt2e = fixtures().join("pt2e");
    for name in ["patterns_pt2e", "patterns_pt2e_per_tensor"] {
        let model = pt2e.join(format!("{name}.onnx"));
        let x = pt2e.join("patterns_pt2e_eval.npy");
        assert!(check_program(&model, &[], &x, dir.path(), name) >= 2);
    }
}

#[test]
fn partly_delegated_exporter_patterns_are_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let dims = [6usize, 3, 32, 32];
    let calib = dir.path().join("calib.npy");
    write_npy(&calib, &dims, &seeded(dims.iter().product(), 7));
    let x = dir.path().join("x.npy");
    write_npy(&x, &dims, &seeded(dims.iter().product(), 11));
    let model = quantize(
        &fixtures().join("models/patterns.onnx"),
        &calib,
        &["--shape", "input=1,3,32,32"],
        dir.path(),
        "patterns",
    );
    assert!(check_program(&model, &[], &x, dir.path(), "patterns") >= 2);
}

/// A float model whose int8 program is table lookups between convolutions: SiLU (`x *
/// Sigmoid(x)`, one table), HardSwish, Tanh; 7 x 9 pixels so each lookup has a partial block.
fn lookup_model(path: &Path) {
    use xq::ir::{DType, Graph, Tensor, TensorInfo};
    let mut g = Graph {
        name: "lookups".into(),
        inputs: vec![TensorInfo::known("input", DType::F32, &[1, 3, 7, 9])],
        outputs: vec![TensorInfo::known("output", DType::F32, &[1, 4, 7, 9])],
        ..Graph::default()
    };
    for (name, dims, seed) in [("w1", [8usize, 3, 1, 1], 3u32), ("w2", [4, 8, 1, 1], 5)] {
        let n = dims.iter().product();
        let w = Tensor::from_f32(dims.to_vec(), seeded(n, seed)).unwrap();
        g.initializers.insert(name.into(), w);
    }
    let nodes: [(&str, &[&str], &str); 6] = [
        ("Conv", &["input", "w1"], "c1"),
        ("Sigmoid", &["c1"], "gate"),
        ("Mul", &["c1", "gate"], "silu"),
        ("HardSwish", &["silu"], "hswish"),
        ("Tanh", &["hswish"], "tanh"),
        ("Conv", &["tanh", "w2"], "output"),
    ];
    for (op, inputs, out) in nodes {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        xq::onnx::add_onnx_node(&mut g, op, out, &inputs, &[out.to_string()], &[]).unwrap();
    }
    g.validate().unwrap();
    xq::onnx::save_file(&g, path).unwrap();
}

#[test]
fn lookup_tables_are_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let float = dir.path().join("lookups_f32.onnx");
    lookup_model(&float);
    let dims = [4usize, 3, 7, 9];
    let calib = dir.path().join("calib.npy");
    write_npy(&calib, &dims, &seeded(dims.iter().product(), 13));
    let x = dir.path().join("x.npy");
    write_npy(&x, &[1, 3, 7, 9], &seeded(3 * 7 * 9, 17));
    let model = quantize(&float, &calib, &[], dir.path(), "lookups");
    assert!(check_program(&model, &[], &x, dir.path(), "lookups") >= 2);
}

/// A float model whose int8 program runs average pools between convolutions: 3×3 / 2 with
/// pads, `ceil_mode` and `count_include_pad`, then 2×2 dilated (2, 1) with pads excluded from
/// the divisor; 37 channels so each SIMD row has a partial block.
fn avg_pool_model(path: &Path) {
    use xq::ir::{DType, Graph, Tensor, TensorInfo};
    use xq::onnx::AttrValue;
    let mut g = Graph {
        name: "avg_pools".into(),
        inputs: vec![TensorInfo::known("input", DType::F32, &[1, 3, 13, 11])],
        outputs: vec![TensorInfo::known("output", DType::F32, &[1, 4, 6, 6])],
        ..Graph::default()
    };
    for (name, dims, seed) in [("w1", [37usize, 3, 3, 3], 3u32), ("w2", [4, 37, 1, 1], 5)] {
        let n = dims.iter().product();
        let w = Tensor::from_f32(dims.to_vec(), seeded(n, seed)).unwrap();
        g.initializers.insert(name.into(), w);
    }
    let ints = |name: &str, v: &[i64]| (name.to_string(), AttrValue::Ints(v.to_vec()));
    let int = |name: &str, v: i64| (name.to_string(), AttrValue::Int(v));
    type Attrs = Vec<(String, AttrValue)>;
    let nodes: [(&str, &str, &str, Attrs); 4] = [
        ("Conv", "input", "c1", vec![ints("pads", &[1, 1, 1, 1])]),
        (
            "AveragePool",
            "c1",
            "p1",
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
                int("ceil_mode", 1),
                int("count_include_pad", 1),
            ],
        ),
        (
            "AveragePool",
            "p1",
            "p2",
            vec![
                ints("kernel_shape", &[2, 2]),
                ints("dilations", &[2, 1]),
                ints("pads", &[1, 0, 0, 1]),
            ],
        ),
        ("Conv", "p2", "output", vec![]),
    ];
    for (op, input, out, attrs) in nodes {
        let mut inputs = vec![input.to_string()];
        if op == "Conv" {
            inputs.push(if out == "c1" { "w1" } else { "w2" }.to_string());
        }
        xq::onnx::add_onnx_node(&mut g, op, out, &inputs, &[out.to_string()], &attrs).unwrap();
    }
    g.validate().unwrap();
    xq::onnx::save_file(&g, path).unwrap();
}

#[test]
fn average_pools_are_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let float = dir.path().join("avg_pools_f32.onnx");
    avg_pool_model(&float);
    let dims = [4usize, 3, 13, 11];
    let calib = dir.path().join("calib.npy");
    write_npy(&calib, &dims, &seeded(dims.iter().product(), 19));
    let x = dir.path().join("x.npy");
    write_npy(&x, &[2, 3, 13, 11], &seeded(2 * 3 * 13 * 11, 23));
    let model = quantize(&float, &calib, &[], dir.path(), "avg_pools");
    assert!(check_program(&model, &[], &x, dir.path(), "avg_pools") >= 2);
}

/// A float model whose int8 program upsamples 21 channels (the SIMD rows' full vectors plus a
/// tail) bilinearly 4× (half-pixel and align-corners), then nearest 1.5×, between convolutions.
fn resize_model(path: &Path) {
    use xq::ir::{DType, Graph, Tensor, TensorInfo};
    use xq::onnx::AttrValue;
    let mut g = Graph {
        name: "resizes".into(),
        inputs: vec![TensorInfo::known("input", DType::F32, &[1, 3, 7, 9])],
        outputs: vec![TensorInfo::known("output", DType::F32, &[1, 4, 42, 54])],
        ..Graph::default()
    };
    for (name, dims, seed) in [("w1", [21usize, 3, 1, 1], 19u32), ("w2", [4, 21, 1, 1], 23)] {
        let n = dims.iter().product();
        let w = Tensor::from_f32(dims.to_vec(), seeded(n, seed)).unwrap();
        g.initializers.insert(name.into(), w);
    }
    for (name, s) in [("up", 4.0f32), ("near", 1.5)] {
        let scales = Tensor::from_f32(vec![4], vec![1.0, 1.0, s, s]).unwrap();
        g.initializers.insert(format!("{name}_scales"), scales);
    }
    let string = |s: &str| AttrValue::String(s.into());
    let linear = vec![("mode".to_string(), string("linear"))];
    let corners = vec![
        ("mode".to_string(), string("linear")),
        (
            "coordinate_transformation_mode".to_string(),
            string("align_corners"),
        ),
    ];
    type Attrs = [(String, AttrValue)];
    let nodes: [(&str, &[&str], &str, &Attrs); 5] = [
        ("Conv", &["input", "w1"], "c1", &[]),
        ("Resize", &["c1", "", "up_scales"], "up", &linear),
        ("Resize", &["c1", "", "up_scales"], "up_corners", &corners),
        ("Add", &["up", "up_corners"], "sum", &[]),
        ("Resize", &["sum", "", "near_scales"], "near", &[]),
    ];
    for (op, inputs, out, attrs) in nodes {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        xq::onnx::add_onnx_node(&mut g, op, out, &inputs, &[out.to_string()], attrs).unwrap();
    }
    let inputs = ["near".to_string(), "w2".to_string()];
    xq::onnx::add_onnx_node(&mut g, "Conv", "output", &inputs, &["output".to_string()], &[]).unwrap();
    g.validate().unwrap();
    xq::onnx::save_file(&g, path).unwrap();
}

#[test]
fn resizes_are_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let float = dir.path().join("resizes_f32.onnx");
    resize_model(&float);
    let dims = [4usize, 3, 7, 9];
    let calib = dir.path().join("calib.npy");
    write_npy(&calib, &dims, &seeded(dims.iter().product(), 29));
    let x = dir.path().join("x.npy");
    write_npy(&x, &[1, 3, 7, 9], &seeded(3 * 7 * 9, 31));
    let model = quantize(&float, &calib, &[], dir.path(), "resizes");
    assert!(check_program(&model, &[], &x, dir.path(), "resizes") >= 2);
}

/// A float model whose int8 program has arithmetic with constants between convolutions:
/// `(c1 - mean[c]) / 6 * gamma[c] + 3` then `/ std[c]` (one-element constants as tables,
/// per-channel ones as one table per channel), 7 x 9 pixels.
fn constants_model(path: &Path) {
    use xq::ir::{DType, Graph, Tensor, TensorInfo};
    let mut g = Graph {
        name: "constants".into(),
        inputs: vec![TensorInfo::known("input", DType::F32, &[1, 3, 7, 9])],
        outputs: vec![TensorInfo::known("output", DType::F32, &[1, 4, 7, 9])],
        ..Graph::default()
    };
    for (name, dims, seed) in [("w1", [8usize, 3, 1, 1], 3u32), ("w2", [4, 8, 1, 1], 5)] {
        let n = dims.iter().product();
        let w = Tensor::from_f32(dims.to_vec(), seeded(n, seed)).unwrap();
        g.initializers.insert(name.into(), w);
    }
    let per_channel = |dims: Vec<usize>, seed: u32| {
        let v = seeded(8, seed).into_iter().map(|x| 0.5 + x.abs()).collect();
        Tensor::from_f32(dims, v).unwrap()
    };
    g.initializers
        .insert("mean".into(), per_channel(vec![1, 8, 1, 1], 7));
    g.initializers
        .insert("gamma".into(), per_channel(vec![8, 1, 1], 11));
    g.initializers
        .insert("std".into(), per_channel(vec![1, 8, 1, 1], 19));
    g.initializers.insert("six".into(), Tensor::scalar_f32(6.0));
    g.initializers.insert("three".into(), Tensor::scalar_f32(3.0));
    let nodes: [(&str, &[&str], &str); 7] = [
        ("Conv", &["input", "w1"], "c1"),
        ("Sub", &["c1", "mean"], "s"),
        ("Div", &["s", "six"], "d"),
        ("Mul", &["d", "gamma"], "m"),
        ("Add", &["m", "three"], "a"),
        ("Div", &["a", "std"], "n"),
        ("Conv", &["n", "w2"], "output"),
    ];
    for (op, inputs, out) in nodes {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        xq::onnx::add_onnx_node(&mut g, op, out, &inputs, &[out.to_string()], &[]).unwrap();
    }
    g.validate().unwrap();
    xq::onnx::save_file(&g, path).unwrap();
}

#[test]
fn constant_arithmetic_tables_are_bit_identical_under_every_isa() {
    let dir = tempfile::tempdir().unwrap();
    let float = dir.path().join("constants_f32.onnx");
    constants_model(&float);
    let dims = [4usize, 3, 7, 9];
    let calib = dir.path().join("calib.npy");
    write_npy(&calib, &dims, &seeded(dims.iter().product(), 23));
    let x = dir.path().join("x.npy");
    write_npy(&x, &[1, 3, 7, 9], &seeded(3 * 7 * 9, 29));
    let model = quantize(&float, &calib, &[], dir.path(), "constants");
    assert!(check_program(&model, &[], &x, dir.path(), "constants") >= 2);
}

/// The test command's emulated pass sets `XQ_EXPECT_ISA` to the ISA its emulated CPU must
/// select (`avx2` under `qemu-x86_64 -cpu Haswell`), so a pass that silently ran on the
/// host's CPU, in this process or in the `xq` processes it starts, fails.
#[test]
fn the_emulated_cpu_selects_the_expected_isa() {
    let Some(want) = std::env::var("XQ_EXPECT_ISA").ok().filter(|w| !w.is_empty()) else {
        println!("SKIPPED: XQ_EXPECT_ISA is not set (only the emulated pass sets it)");
        return;
    };
    assert_eq!(Isa::best_supported().name(), want, "this test process");
    let dir = tempfile::tempdir().unwrap();
    let pt2e = fixtures().join("pt2e");
    let program = dir.path().join("p.xq");
    let mut cmd = xq();
    cmd.arg("compile")
        .arg(pt2e.join("patterns_pt2e.onnx"))
        .arg("-o")
        .arg(&program);
    run(cmd);
    let mut cmd = xq();
    cmd.env_remove("XQ_ISA")
        .arg("run")
        .arg(&program)
        .arg("--input")
        .arg(pt2e.join("patterns_pt2e_eval.npy"))
        .args(["--runs", "1"]);
    let summary = run(cmd);
    assert_eq!(selected_isa(&summary), want, "the xq process: {summary}");
}
