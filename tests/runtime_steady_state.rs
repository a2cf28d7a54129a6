//! A steady-state execution allocates nothing and page-faults (next to) nothing: after two
//! warm-up runs, further runs of a compiled program, through the Rust API
//! ([`Program::execute_into`]) and through `xq_execute`, make no heap allocation, at 1 and 2
//! threads, for an all-int8 program and for one with interpreter steps (and the boundary
//! conversions around them); every run's outputs equal the first run's bit for bit.
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
