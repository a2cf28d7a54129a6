//! Helpers shared by the delegate integration tests: Python fixture generation through
//! `XQ_PYTHON` and comparisons of quantized outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(unused_imports)] // not every crate including this module measures SQNR
pub use crate::common::sqnr_db;

/// The Python interpreter from `XQ_PYTHON`, or None after printing a SKIPPED line (panics
/// when `XQ_STRICT=1`).
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("XQ_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var("XQ_STRICT").as_deref() == Ok("1") {
                panic!("{test}: XQ_PYTHON is not set and XQ_STRICT=1");
            }
            println!("SKIPPED: {test} needs numpy/onnx/onnxruntime (set XQ_PYTHON)");
            None
        }
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a Python script with arguments, panicking with its output on failure.
pub fn run_python(python: &Path, script: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("failed to start XQ_PYTHON");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Quantizes `float_model` with ONNX Runtime's quantize_static (calibrated on `calib`),
/// writes `dir/name.onnx` and ORT's outputs on `eval` (`dir/name_y.npy`, `dir/name_q.npy`).
pub fn ort_qdq(
    python: &Path,
    float_model: &Path,
    calib: &Path,
    eval: &Path,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> PathBuf {
    let script = root().join("tests/fixtures/delegate/make_qdq.py");
    let out = dir.join(format!("{name}.onnx"));
    let prefix = dir.join(name);
    let mut args = vec![
        float_model.to_str().unwrap(),
        calib.to_str().unwrap(),
        out.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
        prefix.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_python(python, &script, &args);
    out
}

/// Compares dequantized outputs element-wise in units of the output scale: returns
/// (fraction within one step, fraction exact, largest difference in steps).
pub fn step_agreement(ours: &[f32], theirs: &[f32], scale: f32) -> (f64, f64, f32) {
    assert_eq!(ours.len(), theirs.len());
    let mut within = 0usize;
    let mut exact = 0usize;
    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(theirs) {
        let steps = ((a - b) / scale).abs();
        worst = worst.max(steps);
        if steps < 1.01 {
            within += 1;
        }
        if steps < 0.01 {
            exact += 1;
        }
    }
    let n = ours.len().max(1) as f64;
    (within as f64 / n, exact as f64 / n, worst)
}

/// How much worse than ONNX Runtime's (in dB of SQNR against the float model) libxq's output
/// of the same QDQ model may be. Both compute the same QDQ graph, libxq in exact integer
/// arithmetic and ONNX Runtime's reference session in float between DequantizeLinear and
/// QuantizeLinear, so their errors against float are statistically alike; a formula or
/// lowering bug costs many dB.
pub const SQNR_MARGIN_DB: f64 = 1.0;

/// Whole-model accuracy check next to ONNX Runtime (never element-wise: see
/// `tests/python/ort_reference.py`): libxq's and ONNX Runtime's outputs of one QDQ model,
/// each against the float model's output `float`. Asserts libxq's SQNR is at most
/// [`SQNR_MARGIN_DB`] below ONNX Runtime's and at least `min_db`; returns (libxq's, ONNX
/// Runtime's) SQNR.
pub fn assert_accuracy_next_to_onnxruntime(
    name: &str,
    ours: &[f32],
    ort: &[f32],
    float: &[f32],
    min_db: f64,
) -> (f64, f64) {
    let (ours_db, ort_db) = (sqnr_db(float, ours), sqnr_db(float, ort));
    println!(
        "{name}: output SQNR vs float: libxq {ours_db:.2} dB, ONNX Runtime {ort_db:.2} dB, \
         libxq vs ONNX Runtime {:.2} dB",
        sqnr_db(ort, ours)
    );
    assert!(
        ours_db >= ort_db - SQNR_MARGIN_DB,
        "{name}: libxq's SQNR {ours_db:.2} dB is more than {SQNR_MARGIN_DB} dB below ONNX Runtime's {ort_db:.2} dB"
    );
    assert!(ours_db >= min_db, "{name}: SQNR {ours_db:.2} dB < {min_db} dB");
    (ours_db, ort_db)
}

/// The largest difference, in int8 steps, a kernel step may have from ONNX Runtime's
/// reference session given the same int8 inputs: ONNX Runtime computes the float op between
/// DequantizeLinear and QuantizeLinear, libxq exact integer sums requantized through fp32, so
/// the two round differently only where the float result lies within float error of a
/// rounding boundary.
pub const LAYER_TOLERANCE_STEPS: i32 = 1;

/// Asserts every layer of `layers` is within [`LAYER_TOLERANCE_STEPS`] of ONNX Runtime.
pub fn assert_layers_within_tolerance(name: &str, layers: &[LayerAgreement]) {
    for l in layers {
        assert!(
            l.worst <= LAYER_TOLERANCE_STEPS,
            "{name}: layer {} is {} steps from ONNX Runtime: {l:?}",
            l.node,
            l.worst
        );
    }
}

/// Index of the largest element of each row.
pub fn argmax_rows(x: &[f32], cols: usize) -> Vec<usize> {
    x.chunks(cols)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        })
        .collect()
}

/// How one lowered kernel step agrees with ONNX Runtime when both start from ONNX Runtime's
/// values of the step's inputs (local rounding differences, not propagated ones).
#[derive(Debug)]
pub struct LayerAgreement {
    /// The lowered graph node.
    pub node: String,
    /// The quantized tensor the step writes.
    pub value: String,
    /// Output elements that differ from ONNX Runtime's.
    pub differing: usize,
    /// Largest difference in int8 steps.
    pub worst: i32,
    /// Output elements.
    pub total: usize,
}

/// Writes ONNX Runtime's value of every QuantizeLinear output of `model` on each sample of
/// `inputs` (an `.npy` with a leading sample axis) into `dir` (see
/// `tests/python/dump_quantized.py`), for [`layer_agreement`].
pub fn ort_quantized_dump(python: &Path, model: &Path, inputs: &Path, dir: &Path) {
    let script = root().join("tests/python/dump_quantized.py");
    run_python(
        python,
        &script,
        &[
            model.to_str().unwrap(),
            inputs.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
}

/// Storage index (NHWC for rank 4, else row-major) of each logical (NCHW) index of `dims`.
fn storage_order(dims: &[usize]) -> Vec<usize> {
    let n: usize = dims.iter().product();
    if dims.len() != 4 {
        return (0..n).collect();
    }
    let (c, h, w) = (dims[1], dims[2], dims[3]);
    (0..n)
        .map(|l| {
            let (b, ch, y, x) = (l / (c * h * w), l / (h * w) % c, l / w % h, l % w);
            ((b * h + y) * w + x) * c + ch
        })
        .collect()
}

/// Runs every kernel step of `spec` on ONNX Runtime's values of its inputs and compares each
/// output that ONNX Runtime also computed, summed over the samples of `dump` (a directory
/// written by [`ort_quantized_dump`]: one subdirectory per sample, tensors matched to values
/// by name). Inputs ONNX Runtime does not expose (the delegate's internal values)
/// come from the preceding steps of the same run.
pub fn layer_agreement(spec: &xq::program::ProgramSpec, dump: &Path) -> Vec<LayerAgreement> {
    let mut total: Vec<LayerAgreement> = Vec::new();
    for sample in 0.. {
        let dir = dump.join(sample.to_string());
        if !dir.is_dir() {
            break;
        }
        let layers = sample_layer_agreement(spec, &dir);
        if total.is_empty() {
            total = layers;
            continue;
        }
        for (t, l) in total.iter_mut().zip(layers) {
            t.differing += l.differing;
            t.worst = t.worst.max(l.worst);
            t.total += l.total;
        }
    }
    total
}

/// [`layer_agreement`] of one sample's directory.
fn sample_layer_agreement(spec: &xq::program::ProgramSpec, dump: &Path) -> Vec<LayerAgreement> {
    use std::collections::HashMap;
    use xq::kernels::output::SharedOutput;
    use xq::program::StepSpec;
    use xq::runtime::kernel_step::KernelStep;

    let index: HashMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dump.join("index.json")).unwrap()).unwrap();
    let theirs: Vec<Option<Vec<i8>>> = spec
        .values
        .iter()
        .map(|v| {
            let file = index.get(&v.name)?;
            let t = xq::npy::read(dump.join(file)).unwrap();
            let logical = t.as_i8().unwrap();
            assert_eq!(logical.len(), v.numel(), "{}: ONNX Runtime's tensor size", v.name);
            let mut stored = vec![0i8; logical.len()];
            for (l, s) in storage_order(&v.dims).into_iter().enumerate() {
                stored[s] = logical[l];
            }
            Some(stored)
        })
        .collect();
    let isa = xq::cpu::selected_isa().unwrap();
    let mut ours: Vec<Option<Vec<i8>>> = vec![None; spec.values.len()];
    let mut report = Vec::new();
    for step in &spec.steps {
        let StepSpec::Kernel { node, kernel, .. } = step else {
            continue;
        };
        let inputs: Option<Vec<&[i8]>> = kernel
            .inputs()
            .iter()
            .map(|&i| theirs[i].as_deref().or(ours[i].as_deref()))
            .collect();
        let Some(inputs) = inputs else { continue };
        let o = kernel.output();
        let k = KernelStep::build(isa, kernel, &spec.values).unwrap();
        let mut out = vec![0i8; spec.values[o].numel()];
        let shared = SharedOutput::new(&mut out);
        // SAFETY: one call covers all tiles of an output no other call writes.
        unsafe { k.run(&inputs, &shared, 0..k.tile_count()) }.unwrap();
        if let Some(t) = &theirs[o] {
            let diffs = out.iter().zip(t).map(|(&a, &b)| (a as i32 - b as i32).abs());
            report.push(LayerAgreement {
                node: node.clone(),
                value: spec.values[o].name.clone(),
                differing: diffs.clone().filter(|&d| d != 0).count(),
                worst: diffs.max().unwrap_or(0),
                total: out.len(),
            });
        }
        ours[o] = Some(out);
    }
    report
}

/// Prints the layers of `layers` that differ from ONNX Runtime (all layers when `all`).
pub fn print_layer_agreement(layers: &[LayerAgreement], all: bool) {
    println!(
        "per-layer agreement given ONNX Runtime's inputs ({} layers compared, {} differ):",
        layers.len(),
        layers.iter().filter(|l| l.differing > 0).count()
    );
    for l in layers.iter().filter(|l| all || l.differing > 0) {
        println!(
            "  {:<40} {:<40} {:>8} of {:>8} differ ({:.4}%), worst {} steps",
            l.node,
            l.value,
            l.differing,
            l.total,
            100.0 * l.differing as f64 / l.total.max(1) as f64,
            l.worst
        );
    }
}

/// The scale of the last quantized value a program computes (its final model value; values
/// the lowering adds carry `__xq` in their names).
pub fn last_value_scale(spec: &xq::program::ProgramSpec) -> f32 {
    spec.values
        .iter()
        .rev()
        .find(|v| !v.name.contains("__xq"))
        .expect("the program has a quantized value")
        .q
        .scale
}

/// A float32 `.npy` file of `dims` holding `v`.
pub fn write_npy(path: &Path, dims: &[usize], v: &[f32]) {
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
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    v.iter().for_each(|x| bytes.extend(x.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// A scalar zero point of the int8 or uint8 storage type.
pub fn zero_point(v: i32, unsigned: bool) -> xq::ir::Tensor {
    let data = if unsigned {
        xq::ir::TensorData::U8(vec![v as u8])
    } else {
        xq::ir::TensorData::I8(vec![v as i8])
    };
    xq::ir::Tensor::new(vec![], data).unwrap()
}

/// The programs of `spec` (lowered from `graph` with [`xq::delegate::PartitionMode::All`]) to
/// compare with the interpreter: `spec` on two threads, `graph` lowered per operator, and
/// `spec` saved and loaded; and the interpreter's program (`PartitionMode::None`).
pub fn delegated_and_interpreted(
    graph: &xq::ir::Graph,
    spec: xq::program::ProgramSpec,
) -> (Vec<xq::runtime::Program>, xq::runtime::Program) {
    use xq::delegate::{lower, PartitionMode};
    use xq::runtime::{Program, ProgramOptions};
    let (per_op, _) = lower(graph, PartitionMode::PerOp).unwrap();
    let (none, _) = lower(graph, PartitionMode::None).unwrap();
    let bytes = Program::new(spec.clone(), ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap();
    let loaded = Program::load_bytes(
        xq::format::ProgramBytes::copy_from(&bytes).unwrap(),
        ProgramOptions { threads: 2 },
    )
    .unwrap();
    let programs = vec![
        Program::new(spec, ProgramOptions { threads: 2 }).unwrap(),
        Program::new(per_op, ProgramOptions { threads: 1 }).unwrap(),
        loaded,
    ];
    let interpreter = Program::new(none, ProgramOptions { threads: 1 }).unwrap();
    (programs, interpreter)
}

/// Builds `kernel` for every ISA this CPU supports, runs it once over `input` (all tiles, one
/// call) and asserts that each ISA's output equals the scalar reference's byte for byte;
/// `what` names the case in the failure message.
pub fn assert_step_bit_identical_under_every_isa(
    kernel: &xq::program::KernelSpec,
    values: &[xq::program::ValueSpec],
    input: &[i8],
    what: &str,
) {
    use xq::cpu::{features, Isa};
    use xq::kernels::output::SharedOutput;
    use xq::runtime::kernel_step::KernelStep;
    let y = &values[kernel.output()];
    let run = |isa: Isa| {
        let step = KernelStep::build(isa, kernel, values).unwrap();
        let mut out = vec![0i8; y.dims.iter().product()];
        let shared = SharedOutput::new(&mut out);
        // SAFETY: one call covers every tile, and `out` has the output value's size.
        unsafe { step.run(&[input], &shared, 0..step.tile_count()).unwrap() };
        out
    };
    let want = run(Isa::Scalar);
    for isa in Isa::ALL.into_iter().filter(|&i| features().supports(i)) {
        assert_eq!(run(isa), want, "{what} under {}", isa.name());
    }
}

/// Deterministic pseudo-random values in `[-1, 1)`.
pub fn noise(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2_654_435_761) ^ 0x85eb_ca6b;
            ((h >> 8) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Loads (and, when it loads, runs) every one-byte corruption of program file `bytes` past
/// its header at a stride of 3, with the checksum sealed again so the decoder sees the flip:
/// each must fail or run without panicking ([`xq::fuzzing::program_load`]).
pub fn corrupted_program_loads(bytes: &[u8]) {
    let seal = |b: &mut Vec<u8>| {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..24]);
        h.update(&b[28..]);
        let crc = h.finalize().to_le_bytes();
        b[24..28].copy_from_slice(&crc);
    };
    for at in (64..bytes.len()).step_by(3) {
        for flip in [0x01, 0xff] {
            let mut bad = bytes.to_vec();
            bad[at] ^= flip;
            seal(&mut bad);
            xq::fuzzing::program_load(&bad);
        }
    }
}

/// Program file `bytes` stores `blob` (e.g. a step's tables) after its `u64` length: the file
/// loads; with any other length in that prefix, or cut inside the blob, it fails to load
/// (never panics).
pub fn wrong_blob_lengths_fail_to_load(bytes: &[u8], blob: &[i8]) {
    use xq::runtime::{Program, ProgramOptions};
    let blob: Vec<u8> = blob.iter().map(|&v| v as u8).collect();
    let at = bytes
        .windows(blob.len())
        .position(|w| w == blob.as_slice())
        .expect("the blob in the program bytes");
    let len_at = at - 8;
    assert_eq!(bytes[len_at..at], (blob.len() as u64).to_le_bytes());
    let load = |b: &[u8]| {
        Program::load_bytes(
            xq::format::ProgramBytes::copy_from(b).unwrap(),
            ProgramOptions { threads: 1 },
        )
    };
    assert!(load(bytes).is_ok());
    let n = blob.len() as u64;
    for bad_len in [n - 1, n / 3 * 2, 0, u64::MAX, 1 << 40] {
        let mut b = bytes.to_vec();
        b[len_at..at].copy_from_slice(&bad_len.to_le_bytes());
        assert!(load(&b).is_err(), "blob length {bad_len}");
    }
    assert!(
        load(&bytes[..at + blob.len() / 2]).is_err(),
        "cut inside the blob"
    );
}
