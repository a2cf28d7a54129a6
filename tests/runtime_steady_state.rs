//! A steady-state execution allocates nothing and page-faults (next to) nothing: after two
//! warm-up runs, further runs of a compiled program, through the Rust API
//! ([`Program::execute_into`]) and through `xq_execute`, make no heap allocation, at 1 and 2
//! threads, for an all-int8 program and for one with interpreter steps (and the boundary
//! conversions around them), and for a dynamically quantized MLP (dynamic int8 linears);
//! a dynamically quantized tiny BERT's interpreter steps other than attention allocate
//! nothing; every run's
//! outputs equal the first run's bit for bit.
//!
//! Allocations are counted by this binary's global allocator, so the binary has no test
//! harness (whose threads allocate while it measures): `main` runs the one check.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use xq::delegate::{lower, PartitionMode};
use xq::ffi::*;
use xq::ir::op::{BinaryOp, PoolAttrs, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::program::StepSpec;
use xq::runtime::{Program, ProgramOptions};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Minor page faults of the whole process so far.
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed local.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage.ru_minflt
    }
}

/// Runs measured after the warm-up.
const RUNS: usize = 20;

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

const DIMS: [usize; 4] = [1, 16, 24, 24];

/// `Q → DQ → MaxPool(1×1) → Q → DQ → middle → Q → DQ → Transpose(NHWC) → Q → DQ`, where
/// `middle` is HardSwish (delegated: an all-int8 program) or, with `interpreted`, Softmax
/// over channels → Erf → Mul by a per-channel constant, which the delegate leaves to the
/// float interpreter.
fn graph(interpreted: bool) -> Graph {
    let [n, c, h, w] = DIMS;
    let mut g = Graph {
        name: "steady".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &DIMS)],
        outputs: vec![TensorInfo::known("y", DType::F32, &[n, h, w, c])],
        ..Graph::default()
    };
    for (name, t) in [
        ("sx", Tensor::scalar_f32(0.05)),
        ("sy", Tensor::scalar_f32(0.01)),
        (
            "zx",
            Tensor::new(vec![], xq::ir::TensorData::I8(vec![3])).unwrap(),
        ),
        (
            "zy",
            Tensor::new(vec![], xq::ir::TensorData::I8(vec![-20])).unwrap(),
        ),
        (
            "k",
            Tensor::from_f32(vec![1, c, 1, 1], (0..c).map(|i| 0.5 + i as f32 * 0.1).collect()).unwrap(),
        ),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let q = || Op::QuantizeLinear(QuantAttrs::default());
    let dq = || Op::DequantizeLinear(QuantAttrs::default());
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    let mut nodes = vec![
        node("qx", q(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dq(), &["x_q", "sx", "zx"], "x_dq"),
        node("pool", Op::MaxPool(pool), &["x_dq"], "p"),
        node("qp", q(), &["p", "sx", "zx"], "p_q"),
        node("dqp", dq(), &["p_q", "sx", "zx"], "p_dq"),
    ];
    if interpreted {
        nodes.extend([
            node(
                "softmax",
                Op::Softmax {
                    axis: 1,
                    coerce_2d: false,
                },
                &["p_dq"],
                "s",
            ),
            node("erf", Op::Unary(UnaryOp::Erf), &["s"], "e"),
            node("scale", Op::Binary(BinaryOp::Mul), &["e", "k"], "u"),
        ]);
    } else {
        nodes.push(node("hswish", Op::Unary(UnaryOp::HardSwish), &["p_dq"], "u"));
    }
    nodes.extend([
        node("qu", q(), &["u", "sy", "zy"], "u_q"),
        node("dqu", dq(), &["u_q", "sy", "zy"], "u_dq"),
        node(
            "nhwc",
            Op::Transpose {
                perm: Some(vec![0, 2, 3, 1]),
            },
            &["u_dq"],
            "t",
        ),
        node("qt", q(), &["t", "sy", "zy"], "t_q"),
        node("dqt", dq(), &["t_q", "sy", "zy"], "y"),
    ]);
    g.nodes = nodes;
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn input() -> Tensor {
    let n: usize = DIMS.iter().product();
    Tensor::from_f32(
        DIMS.to_vec(),
        (0..n).map(|i| ((i * 37) % 251) as f32 * 0.03 - 3.5).collect(),
    )
    .unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Allocations and minor page faults of `RUNS` calls of `run` after two warm-up calls.
fn measure(mut run: impl FnMut()) -> (usize, i64) {
    run();
    run();
    let (allocs, faults) = (ALLOCATIONS.load(Ordering::SeqCst), minor_faults());
    for _ in 0..RUNS {
        run();
    }
    (
        ALLOCATIONS.load(Ordering::SeqCst) - allocs,
        minor_faults() - faults,
    )
}

/// Through the Rust API: returns allocations and page faults over `RUNS` runs.
fn rust_api(program: &Program, x: &Tensor, expected: &[u32]) -> (usize, i64) {
    let mut y = vec![Tensor::scalar_f32(0.0)];
    let mut same = true;
    let counts = measure(|| {
        program.execute_into(std::slice::from_ref(x), &mut y).unwrap();
        same &= y[0]
            .as_f32()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .eq(expected.iter().copied());
    });
    assert!(same, "a run's output differs from the first run's");
    counts
}

fn ok(status: xq_status) {
    assert_eq!(status, xq_status::XQ_OK, "{}", xq::ffi::boundary::last_error());
}

/// Through the C API (the program loaded from its bytes): allocations and page faults over
/// `RUNS` runs.
fn c_api(program: &Program, threads: usize, x: &Tensor, expected: &[u32]) -> (usize, i64) {
    let bytes = program.to_bytes().unwrap();
    let mut handle = std::ptr::null_mut();
    // SAFETY: a zeroed config of the size passed; live buffers of the lengths given.
    unsafe {
        let mut config: xq_program_config = std::mem::zeroed();
        ok(xq_program_config_init(
            &mut config,
            std::mem::size_of::<xq_program_config>(),
        ));
        config.threads = threads;
        ok(xq_program_load_buffer_with_config(
            bytes.as_ptr() as *const c_void,
            bytes.len(),
            &config,
            &mut handle,
        ));
    }
    let mut in_dims: Vec<i64> = x.dims().iter().map(|&d| d as i64).collect();
    let mut in_data = x.as_f32().unwrap().to_vec();
    let mut out_dims = [0i64; 4];
    let mut out_data = vec![0f32; expected.len()];
    let mut same = true;
    let counts = measure(|| {
        let input = xq_tensor {
            dtype: xq_dtype::XQ_DTYPE_F32 as i32,
            rank: in_dims.len(),
            dims: in_dims.as_mut_ptr(),
            data: in_data.as_mut_ptr() as *mut c_void,
            byte_length: in_data.len() * 4,
        };
        let mut output = xq_tensor {
            dtype: 0,
            rank: out_dims.len(),
            dims: out_dims.as_mut_ptr(),
            data: out_data.as_mut_ptr() as *mut c_void,
            byte_length: out_data.len() * 4,
        };
        // SAFETY: a live handle and descriptors of live buffers of the sizes they state.
        ok(unsafe { xq_execute(handle, &input, 1, &mut output, 1) });
        same &= out_data.iter().map(|v| v.to_bits()).eq(expected.iter().copied());
    });
    assert!(same, "a C run's output differs from the first run's");
    // SAFETY: the handle made above, used by no one else.
    unsafe { xq_program_free(handle) };
    counts
}

fn main() {
    steady_state_runs_allocate_nothing_and_fault_no_pages();
    println!("steady-state runs allocate nothing: ok");
    dynamic_steady_state_runs_allocate_nothing();
    println!("steady-state dynamic int8 runs allocate nothing: ok");
    transformer_steady_state_runs_allocate_nothing();
    println!("steady-state transformer interpreter steps allocate nothing: ok");
}

/// A dynamically quantized program: `inputs` (with the shapes `shapes`) run through `model`
/// quantized with dynamic activations, fixed shapes, lowered.
fn dynamic_program(model: &str, shapes: &[(&str, &[usize])]) -> xq::program::ProgramSpec {
    use xq::quant::{ActivationMode, QuantConfig, Quantizer};
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(model);
    let float = xq::onnx::load_file(&path).unwrap();
    let config = QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&float).unwrap();
    let graph = xq::interp::simplify_with_shapes(q.convert().unwrap(), shapes).unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    let dynamic = spec
        .steps
        .iter()
        .filter(|s| matches!(s, StepSpec::DynamicLinear { .. }))
        .count();
    assert!(dynamic > 0, "{}", report.text());
    spec
}

/// Allocations of `RUNS` steady-state runs of `spec` on `inputs` at `threads`, checking that
/// every run gives the first run's bits.
fn steady_allocations(spec: &xq::program::ProgramSpec, inputs: &[Tensor], threads: usize) -> usize {
    let program = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
    let first = program.execute(inputs).unwrap();
    let expected: Vec<Vec<u32>> = first.iter().map(bits).collect();
    let mut outs = first.clone();
    let mut same = true;
    let (allocs, _) = measure(|| {
        program.execute_into(inputs, &mut outs).unwrap();
        // Compared without allocating (the count covers this closure).
        same &= outs.iter().zip(&expected).all(|(t, e)| {
            t.as_f32()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .eq(e.iter().copied())
        });
    });
    assert!(same, "a run's outputs differ from the first run's");
    allocs
}

/// The digits MLP with dynamic int8 linears (three dynamic steps and a Flatten): steady-state
/// runs allocate nothing at 1 and 2 threads.
fn dynamic_steady_state_runs_allocate_nothing() {
    let digits = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/digits");
    let x = xq::npy::read(digits.join("digits_test_x.npy")).unwrap();
    let n = 64.min(x.dims()[0]);
    let x = Tensor::from_f32(vec![n, 1, 8, 8], x.as_f32().unwrap()[..n * 64].to_vec()).unwrap();
    let spec = dynamic_program(
        "tests/fixtures/digits/digits_mlp.onnx",
        &[("input", &[n, 1, 8, 8])],
    );
    for threads in [1, 2] {
        let allocs = steady_allocations(&spec, std::slice::from_ref(&x), threads);
        println!("digits MLP, dynamic int8, {threads} threads: {allocs} allocations in {RUNS} runs");
        assert_eq!(allocs, 0, "{threads} threads");
    }
}

/// The tiny BERT export, dynamically quantized (its linears become dynamic int8 steps, the
/// rest interpreter steps: Gather of token ids, Where, Reshape, Expand, Cast, And,
/// LayerNorm, Add, Transpose, Softmax, ...), with fixed batch and sequence: every interpreter
/// node but the activation × activation (attention) MatMuls allocates nothing when run again
/// into its kept output; the program's steady-state allocations are reported and every run
/// gives the first run's bits.
fn transformer_steady_state_runs_allocate_nothing() {
    let model = "tests/fixtures/transformers/bert_tiny_eager_script.onnx";
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(model);
    let tokens = xq::npy::read(path.with_file_name("tokens.npy")).unwrap();
    let all = tokens.to_i64_vec().unwrap();
    let (batch, seq) = (4usize, 24usize);
    let ids: Vec<i64> = (0..batch)
        .flat_map(|r| all[r * 128..r * 128 + seq].to_vec())
        .collect();
    let mut mask = vec![1i64; batch * seq];
    mask[seq + 17..2 * seq].iter_mut().for_each(|m| *m = 0);
    let inputs = [
        Tensor::from_i64(vec![batch, seq], ids).unwrap(),
        Tensor::from_i64(vec![batch, seq], mask).unwrap(),
    ];
    let shapes: [(&str, &[usize]); 2] = [("input_ids", &[batch, seq]), ("attention_mask", &[batch, seq])];
    let spec = dynamic_program(model, &shapes);
    // Every interpreter node of the program, evaluated twice into kept outputs on the values
    // of a real run (the float graph's, the same operators and shapes).
    let graph = xq::interp::simplify_with_shapes(xq::onnx::load_file(&path).unwrap(), &shapes).unwrap();
    let interpreted: std::collections::HashSet<&str> =
        spec.fallback.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut env: std::collections::HashMap<String, Tensor> = graph.initializers.clone().into_iter().collect();
    env.insert("input_ids".into(), inputs[0].clone());
    env.insert("attention_mask".into(), inputs[1].clone());
    let mut failures = Vec::new();
    let mut checked = std::collections::BTreeMap::new();
    let mut attention_allocs = 0;
    for n in &graph.nodes {
        let args: Vec<Option<&Tensor>> = n.inputs.iter().map(|i| env.get(i)).collect();
        let mut outs: Vec<Option<Tensor>> = vec![None; n.outputs.len()];
        xq::interp::kernels::eval_into(&n.op, &args, &mut outs).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        xq::interp::kernels::eval_into(&n.op, &args, &mut outs).unwrap();
        let allocs = ALLOCATIONS.load(Ordering::SeqCst) - before;
        // Activation × activation MatMuls belong to the attention step (not checked here).
        let attention =
            matches!(n.op, Op::MatMul) && n.inputs.iter().all(|i| !graph.initializers.contains_key(i));
        if interpreted.contains(n.name.as_str()) && attention {
            attention_allocs += allocs;
        }
        if interpreted.contains(n.name.as_str()) && !attention {
            *checked.entry(n.op.onnx_name()).or_insert(0) += 1;
            if allocs > 0 {
                failures.push(format!("{} {}: {allocs} allocations", n.op.onnx_name(), n.name));
            }
        }
        for (o, t) in n.outputs.iter().zip(outs) {
            if let Some(t) = t {
                env.insert(o.clone(), t);
            }
        }
    }
    println!("tiny BERT: interpreter nodes checked to allocate nothing when run again: {checked:?}");
    // The whole program, reported: the attention (a fused step or its MatMuls) is not
    // checked here.
    for threads in [1, 2] {
        let allocs = steady_allocations(&spec, &inputs, threads);
        println!(
            "tiny BERT, dynamic int8, {threads} threads: {allocs} allocations in {RUNS} runs \
             (the attention MatMuls alone allocate {attention_allocs} a run when interpreted)"
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn steady_state_runs_allocate_nothing_and_fault_no_pages() {
    let x = input();
    let mut failures = Vec::new();
    for interpreted in [false, true] {
        let (spec, report) = lower(&graph(interpreted), PartitionMode::All).unwrap();
        let interp_steps = spec
            .steps
            .iter()
            .filter(|s| matches!(s, StepSpec::Interp { .. }))
            .count();
        assert_eq!(interp_steps, if interpreted { 3 } else { 0 }, "{}", report.text());
        for threads in [1, 2] {
            let program = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
            let first = program.execute(std::slice::from_ref(&x)).unwrap();
            let expected = bits(&first[0]);
            let (allocs, faults) = rust_api(&program, &x, &expected);
            println!("interpreted {interpreted}, {threads} threads, Rust API: {allocs} allocations, {faults} minor faults in {RUNS} runs");
            let (c_allocs, c_faults) = c_api(&program, threads, &x, &expected);
            println!("interpreted {interpreted}, {threads} threads, C API: {c_allocs} allocations, {c_faults} minor faults in {RUNS} runs");
            // A page or two can fault for reasons outside the program (the test's own
            // stack, a worker's first park); a per-run buffer would fault dozens per run.
            if allocs != 0 || c_allocs != 0 || faults > 4 || c_faults > 4 {
                failures.push(format!(
                    "interpreted {interpreted}, {threads} threads: Rust API {allocs} allocations, \
                     {faults} faults; C API {c_allocs} allocations, {c_faults} faults"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
