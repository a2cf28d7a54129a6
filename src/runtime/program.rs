//! A compiled program: the lowered partitions' kernels, the boundary conversions and the
//! interpreter steps for the rest, run in order by [`Program::execute`].
//!
//! A program is immutable after construction and may be executed from several threads at
//! once. Per-call state lives in an execution context: an int8 arena (one allocation of
//! the static memory plan's size) taken from a free list and returned after the call, so
//! steady-state calls allocate no arena; concurrent calls each take their own. Kernel steps
//! allocate nothing (their operand lists live on the stack); what a call does allocate is
//! per call, not per operator: its two slot tables, and the `f32` tensors that boundary
//! exits, dynamic linear layers and interpreter steps produce (the program's outputs among
//! them).
//!
//! Operators are split into at most `4 × threads` contiguous tile ranges and run as one
//! pool job; with one thread every kernel runs inline on the caller (no hand-offs).

use super::kernel_step::KernelStep;
use super::memory_plan::{plan, BufferUse};
use super::pool::ThreadPool;
#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
use crate::delegate::spec::{ProgramSpec, StepSpec, ValueSpec};
use crate::interp::kernels::eval;
use crate::ir::{DType, Op, Tensor, TensorInfo};
use crate::kernels::buffer::AlignedBytes;
use crate::kernels::output::SharedOutput;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Options of a program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramOptions {
    /// Threads per execution (caller included); 0 means the number of physical cores.
    pub threads: usize,
}

/// Physical cores of this machine (sysfs core ids), or the available parallelism.
pub fn physical_cores() -> usize {
    let mut cores = std::collections::HashSet::new();
    if let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with("cpu") || !name[3..].chars().all(|c| c.is_ascii_digit()) || name.len() == 3 {
                continue;
            }
            let read = |f: &str| std::fs::read_to_string(e.path().join("topology").join(f)).ok();
            if let (Some(core), Some(pkg)) = (read("core_id"), read("physical_package_id")) {
                cores.insert((pkg.trim().to_string(), core.trim().to_string()));
            }
        }
    }
    if cores.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cores.len()
    }
}

enum Step {
    Kernel {
        name: String,
        kernel: KernelStep,
        inputs: Vec<usize>,
        output: usize,
    },
    Quantize {
        slot: usize,
        value: usize,
    },
    Dequantize {
        value: usize,
        slot: usize,
        int8: bool,
    },
    Dynamic {
        name: String,
        packed: crate::kernels::dynamic::PackedDynamicGemm,
        input: usize,
        output: usize,
        n: usize,
        k: usize,
        relu: bool,
    },
    Interp {
        name: String,
        op: Op,
        inputs: Vec<Option<usize>>,
        outputs: Vec<Option<usize>>,
    },
}

impl Step {
    fn label(&self, values: &[ValueSpec]) -> String {
        match self {
            Step::Kernel { name, kernel, .. } => format!("{name} [{}]", kernel_kind(kernel)),
            Step::Quantize { value, .. } => format!("quantize -> {}", values[*value].name),
            Step::Dequantize { value, .. } => format!("dequantize {}", values[*value].name),
            Step::Dynamic { name, .. } => format!("{name} [dynamic_fully_connected]"),
            Step::Interp { name, op, .. } => format!("{name} [interp {}]", op.onnx_name()),
        }
    }
}

fn kernel_kind(k: &KernelStep) -> &'static str {
    match k {
        KernelStep::Conv(..) => "conv",
        KernelStep::DwConv(..) => "dwconv",
        KernelStep::Fc { .. } => "fully_connected",
        KernelStep::Binary(..) => "binary",
        KernelStep::Gap { .. } => "global_avg_pool",
        KernelStep::MaxPool(..) => "max_pool",
        KernelStep::Concat { .. } => "concat",
        KernelStep::Im2col { .. } => "im2col",
        KernelStep::Gather { .. } => "gather",
        KernelStep::Reshape(..) => "reshape",
    }
}

/// An executable program (see the module docs).
pub struct Program {
    spec: ProgramSpec,
    steps: Vec<Step>,
    offsets: Vec<usize>,
    arena_size: usize,
    constants: Vec<(usize, Tensor)>,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    slot_count: usize,
    pool: ThreadPool,
    arenas: Mutex<Vec<AlignedBytes>>,
}

impl Program {
    /// Builds kernels, the memory plan and the interpreter steps of `spec`.
    pub fn new(spec: ProgramSpec, options: ProgramOptions) -> Result<Program> {
        let isa = crate::kernels::table::selected_isa()?;
        let threads = if options.threads == 0 {
            physical_cores()
        } else {
            options.threads
        };
        if threads > 1024 {
            return Err(Error::invalid_argument(
                "threads",
                format!("{threads} is above 1024"),
            ));
        }
        let total = spec
            .values
            .iter()
            .try_fold(0usize, |acc, v| {
                acc.checked_add(crate::ir::checked_numel(&v.dims).ok()?)
            })
            .filter(|&t| t <= crate::kernels::buffer::MAX_PACKED_BYTES);
        if total.is_none() {
            return Err(Error::ResourceLimit(
                "the program's int8 values exceed 1 GiB".into(),
            ));
        }
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut slot = |name: &str| -> usize {
            let n = slots.len();
            *slots.entry(name.to_string()).or_insert(n)
        };
        let input_slots: Vec<usize> = spec.inputs.iter().map(|i| slot(&i.name)).collect();
        let constants: Vec<(usize, Tensor)> = spec
            .fallback
            .initializers
            .iter()
            .map(|(n, t)| (slot(n), t.clone()))
            .collect();
        let fallback_nodes: HashMap<&str, &crate::ir::Node> =
            spec.fallback.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let n_values = spec.values.len();
        let value = |v: usize| -> Result<usize> {
            (v < n_values)
                .then_some(v)
                .ok_or_else(|| Error::InvalidModel(format!("step refers to value {v} of {n_values}")))
        };
        let mut built = build_kernels(isa, &spec, threads)?.into_iter();
        let mut steps = Vec::with_capacity(spec.steps.len());
        for s in &spec.steps {
            steps.push(match s {
                StepSpec::Kernel { node, kernel, .. } => Step::Kernel {
                    name: node.clone(),
                    kernel: built
                        .next()
                        .ok_or_else(|| Error::Internal("kernel count changed while building".into()))?,
                    inputs: kernel.inputs(),
                    output: kernel.output(),
                },
                StepSpec::Quantize { tensor, value: v } => Step::Quantize {
                    slot: slot(tensor),
                    value: value(*v)?,
                },
                StepSpec::Dequantize {
                    value: v,
                    tensor,
                    int8,
                } => Step::Dequantize {
                    value: value(*v)?,
                    slot: slot(tensor),
                    int8: *int8,
                },
                StepSpec::DynamicLinear {
                    node,
                    input,
                    output,
                    n,
                    k,
                    weights,
                    scales,
                    bias,
                    relu,
                } => {
                    let w = crate::kernels::dynamic::DynamicWeights {
                        n: *n,
                        k: *k,
                        weights,
                        scales,
                        bias: (!bias.is_empty()).then_some(bias.as_slice()),
                    };
                    Step::Dynamic {
                        name: node.clone(),
                        packed: crate::kernels::dynamic::PackedDynamicGemm::pack(isa, &w)?,
                        input: slot(input),
                        output: slot(output),
                        n: *n,
                        k: *k,
                        relu: *relu,
                    }
                }
                StepSpec::Interp { node } => {
                    let n = fallback_nodes.get(node.as_str()).ok_or_else(|| {
                        Error::InvalidModel(format!("interpreter node `{node}` is missing"))
                    })?;
                    Step::Interp {
                        name: n.name.clone(),
                        op: n.op.clone(),
                        inputs: n
                            .inputs
                            .iter()
                            .map(|i| (!i.is_empty()).then(|| slot(i)))
                            .collect(),
                        outputs: n
                            .outputs
                            .iter()
                            .map(|o| (!o.is_empty()).then(|| slot(o)))
                            .collect(),
                    }
                }
            });
        }
        let output_slots: Vec<usize> = spec.outputs.iter().map(|o| slot(&o.name)).collect();
        let slot_count = slots.len();
        let (offsets, arena_size) = plan_values(&spec.values, &steps);
        Ok(Program {
            spec,
            steps,
            offsets,
            arena_size,
            constants,
            input_slots,
            output_slots,
            slot_count,
            pool: ThreadPool::new(threads)?,
            arenas: Mutex::new(Vec::new()),
        })
    }

    /// The lowered program this was built from (what a program file stores).
    pub fn spec(&self) -> &ProgramSpec {
        &self.spec
    }

    /// Program inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.spec.inputs
    }

    /// Program outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.spec.outputs
    }

    /// Threads per execution.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Bytes of one execution context's int8 arena.
    pub fn arena_size(&self) -> usize {
        self.arena_size
    }

    /// The partitioning report.
    pub fn report(&self) -> &str {
        &self.spec.report
    }

    /// Runs the program on `inputs` (in [`Program::inputs`] order).
    pub fn execute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run(inputs, None)
    }

    /// Runs once and returns each step's label and wall time (per-operator profile).
    pub fn profile(&self, inputs: &[Tensor]) -> Result<Vec<(String, Duration)>> {
        let mut times = Vec::with_capacity(self.steps.len());
        self.run(inputs, Some(&mut times))?;
        Ok(self
            .steps
            .iter()
            .zip(times)
            .map(|(s, t)| (s.label(&self.spec.values), t))
            .collect())
    }

    fn take_arena(&self) -> Result<AlignedBytes> {
        let reused = self.arenas.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(a) => Ok(a),
            None => AlignedBytes::zeroed(self.arena_size.max(1)),
        }
    }

    fn run(&self, inputs: &[Tensor], mut times: Option<&mut Vec<Duration>>) -> Result<Vec<Tensor>> {
        if inputs.len() != self.spec.inputs.len() {
            return Err(Error::invalid_argument(
                "inputs",
                format!(
                    "the program has {} inputs, got {}",
                    self.spec.inputs.len(),
                    inputs.len()
                ),
            ));
        }
        for (info, t) in self.spec.inputs.iter().zip(inputs) {
            info.check_tensor(t)?;
        }
        let mut arena = self.take_arena()?;
        let result = self.run_with(inputs, arena.as_mut_slice(), &mut times);
        self.arenas.lock().unwrap_or_else(|e| e.into_inner()).push(arena);
        result
    }

    fn run_with(
        &self,
        inputs: &[Tensor],
        arena: &mut [u8],
        times: &mut Option<&mut Vec<Duration>>,
    ) -> Result<Vec<Tensor>> {
        let base = arena.as_mut_ptr() as *mut i8;
        let arena_len = arena.len();
        let mut owned: Vec<Option<Tensor>> = vec![None; self.slot_count];
        let mut borrowed: Vec<Option<&Tensor>> = vec![None; self.slot_count];
        for (s, t) in &self.constants {
            borrowed[*s] = Some(t);
        }
        for (&s, t) in self.input_slots.iter().zip(inputs) {
            borrowed[s] = Some(t);
        }
        let values = &self.spec.values;
        let region = |v: usize| -> (*mut i8, usize) {
            let len = values[v].numel();
            debug_assert!(self.offsets[v] + len <= arena_len);
            // SAFETY: the memory plan places every value inside the arena.
            (unsafe { base.add(self.offsets[v]) }, len)
        };
        for step in &self.steps {
            let start = times.as_ref().map(|_| Instant::now());
            match step {
                Step::Kernel {
                    name,
                    kernel,
                    inputs,
                    output,
                } => {
                    let view = |v: usize| -> &[i8] {
                        let (p, len) = region(v);
                        // SAFETY: values live at this step never overlap (memory plan), and
                        // the output region is written only through `out` below.
                        unsafe { std::slice::from_raw_parts(p as *const i8, len) }
                    };
                    // Up to four inputs live on the stack; only wider concatenations allocate.
                    let mut few: [&[i8]; 4] = [&[]; 4];
                    let many: Vec<&[i8]>;
                    let ins: &[&[i8]] = if inputs.len() <= few.len() {
                        for (slot, &v) in few.iter_mut().zip(inputs) {
                            *slot = view(v);
                        }
                        &few[..inputs.len()]
                    } else {
                        many = inputs.iter().map(|&v| view(v)).collect();
                        &many
                    };
                    let (p, len) = region(*output);
                    // SAFETY: as above; the output region is disjoint from every input region.
                    let out = SharedOutput::new(unsafe { std::slice::from_raw_parts_mut(p, len) });
                    self.run_kernel(kernel, ins, &out)
                        .map_err(|e| crate::ir::infer::with_node(e, name, kernel_kind(kernel)))?;
                }
                Step::Quantize { slot, value } => {
                    let t = owned[*slot].as_ref().or(borrowed[*slot]).ok_or_else(|| {
                        Error::Internal(format!("tensor for `{}` missing", values[*value].name))
                    })?;
                    let (p, len) = region(*value);
                    // SAFETY: the value's region is in the arena and no other step runs now.
                    let out = SharedOutput::new(unsafe { std::slice::from_raw_parts_mut(p, len) });
                    let v = &values[*value];
                    if t.dtype() != DType::F32 {
                        // An int8 program input (int8 boundaries): already quantized.
                        // SAFETY: as above.
                        copy_quantized_input(t, v, unsafe { std::slice::from_raw_parts_mut(p, len) })?;
                        continue_timing(times, start);
                        continue;
                    }
                    check_quantize_source(t, v, len)?;
                    let units = quantize_units(v);
                    let threads = self.pool.threads();
                    if threads == 1 || units <= 1 {
                        // SAFETY: one call covers every unit.
                        unsafe { quantize_into(t, v, &out, 0..units) }?;
                    } else {
                        let tasks = units.min(threads * 4);
                        self.pool.run(tasks, &|i| {
                            // SAFETY: task ranges partition 0..units; the source was checked.
                            let _ = unsafe {
                                quantize_into(t, v, &out, units * i / tasks..units * (i + 1) / tasks)
                            };
                        });
                    }
                }
                Step::Dequantize { value, slot, int8 } => {
                    let (p, len) = region(*value);
                    // SAFETY: the value's region is in the arena and was written by an earlier step.
                    let src = unsafe { std::slice::from_raw_parts(p as *const i8, len) };
                    owned[*slot] = Some(dequantize(src, &values[*value], *int8)?);
                }
                Step::Dynamic {
                    name,
                    packed,
                    input,
                    output,
                    n,
                    k,
                    relu,
                } => {
                    let x = owned[*input]
                        .as_ref()
                        .or(borrowed[*input])
                        .ok_or_else(|| Error::Internal(format!("input of `{name}` missing")))?;
                    owned[*output] = Some(self.run_dynamic(packed, x, *n, *k, *relu)?);
                }
                Step::Interp {
                    name,
                    op,
                    inputs,
                    outputs,
                } => {
                    let args: Vec<Option<&Tensor>> = inputs
                        .iter()
                        .map(|s| s.and_then(|s| owned[s].as_ref().or(borrowed[s])))
                        .collect();
                    if args.iter().zip(inputs).any(|(a, s)| s.is_some() && a.is_none()) {
                        return Err(Error::Internal(format!("node `{name}` ran before its inputs")));
                    }
                    let results =
                        eval(op, &args).map_err(|e| crate::ir::infer::with_node(e, name, op.onnx_name()))?;
                    for (s, v) in outputs.iter().zip(results) {
                        if let Some(s) = s {
                            owned[*s] = Some(v);
                        }
                    }
                }
            }
            if let (Some(t), Some(start)) = (times.as_mut(), start) {
                t.push(start.elapsed());
            }
        }
        self.output_slots
            .iter()
            .zip(&self.spec.outputs)
            .map(|(&s, o)| {
                owned[s]
                    .take()
                    .or_else(|| borrowed[s].cloned())
                    .ok_or_else(|| Error::Internal(format!("output `{}` was not computed", o.name)))
            })
            .collect()
    }

    fn run_dynamic(
        &self,
        packed: &crate::kernels::dynamic::PackedDynamicGemm,
        x: &Tensor,
        n: usize,
        k: usize,
        relu: bool,
    ) -> Result<Tensor> {
        let data = x.as_f32()?;
        if k == 0 || x.dims().last() != Some(&k) {
            return Err(Error::ShapeMismatch(format!(
                "dynamic linear input {:?} has no last axis of {k}",
                x.dims()
            )));
        }
        let m = data.len() / k;
        let rows = crate::kernels::dynamic::quantize_rows(data, m, k, k)?;
        let mut y = vec![0f32; m * n];
        let tiles = packed.tile_count(m);
        let threads = self.pool.threads();
        if threads == 1 || tiles <= 1 {
            packed.run(&rows, &mut y, n, 0..tiles)?;
        } else {
            let tasks = tiles.min(threads * 4);
            let (ptr, len) = (SendPtr(y.as_mut_ptr()), y.len());
            let failure: Mutex<Option<Error>> = Mutex::new(None);
            self.pool.run(tasks, &|i| {
                let range = tiles * i / tasks..tiles * (i + 1) / tasks;
                let p = &ptr;
                // SAFETY: `y` outlives the job; task ranges are disjoint tiles.
                if let Err(e) = unsafe { packed.run_shared(&rows, p.0, len, n, range) } {
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                }
            });
            if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
                return Err(e);
            }
        }
        if relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Tensor::from_f32(dims, y)
    }

    fn run_kernel(&self, kernel: &KernelStep, ins: &[&[i8]], out: &SharedOutput) -> Result<()> {
        let tiles = kernel.tile_count();
        let threads = self.pool.threads();
        if threads == 1 || tiles <= 1 {
            // SAFETY: a single call covers all tiles; nothing else writes `out`.
            return unsafe { kernel.run(ins, out, 0..tiles) };
        }
        let tasks = tiles.min(threads * 4);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        self.pool.run(tasks, &|i| {
            let range = tiles * i / tasks..tiles * (i + 1) / tasks;
            // SAFETY: task ranges partition 0..tiles, so concurrent calls write disjoint tiles.
            if let Err(e) = unsafe { kernel.run(ins, out, range) } {
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        });
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Packs every kernel step of `spec` (in step order), spreading the work over up to
/// `threads` scoped threads: packing dominates program load time.
fn build_kernels(isa: crate::cpu::Isa, spec: &ProgramSpec, threads: usize) -> Result<Vec<KernelStep>> {
    let kernels: Vec<&crate::delegate::spec::KernelSpec> = spec
        .steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Kernel { kernel, .. } => Some(kernel),
            _ => None,
        })
        .collect();
    let workers = threads.clamp(1, 8).min(kernels.len().max(1));
    if workers == 1 {
        return kernels
            .iter()
            .map(|k| KernelStep::build(isa, k, &spec.values))
            .collect();
    }
    // Interleaved assignment balances big and small layers across workers.
    let results: Vec<Vec<(usize, Result<KernelStep>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let kernels = &kernels;
                scope.spawn(move || {
                    (w..kernels.len())
                        .step_by(workers)
                        .map(|i| (i, KernelStep::build(isa, kernels[i], &spec.values)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut slots: Vec<Option<KernelStep>> = (0..kernels.len()).map(|_| None).collect();
    for (i, r) in results.into_iter().flatten() {
        slots[i] = Some(r?);
    }
    slots
        .into_iter()
        .map(|k| k.ok_or_else(|| Error::Internal("a kernel was not built".into())))
        .collect()
}

/// A raw output pointer shared by the tasks of one job (disjoint tiles).
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint tiles through it while the owner waits for the job.
unsafe impl Sync for SendPtr {}

/// Offsets of every value in one arena, from each value's first write to its last read.
fn plan_values(values: &[ValueSpec], steps: &[Step]) -> (Vec<usize>, usize) {
    let mut uses: Vec<Option<(usize, usize)>> = vec![None; values.len()];
    let mut touch = |v: usize, i: usize| {
        let u = uses[v].get_or_insert((i, i));
        u.0 = u.0.min(i);
        u.1 = u.1.max(i);
    };
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Kernel { inputs, output, .. } => {
                for &v in inputs {
                    touch(v, i);
                }
                touch(*output, i);
            }
            Step::Quantize { value, .. } | Step::Dequantize { value, .. } => touch(*value, i),
            Step::Interp { .. } | Step::Dynamic { .. } => {}
        }
    }
    let buffers: Vec<BufferUse> = values
        .iter()
        .zip(&uses)
        .map(|(v, u)| {
            let (first_step, last_step) = u.unwrap_or((0, 0));
            BufferUse {
                size: v.numel(),
                first_step,
                last_step,
            }
        })
        .collect();
    let p = plan(&buffers);
    (p.offsets, p.arena_size)
}

/// Pixels (NHWC) or elements (row-major) per unit of parallel quantization work.
const QUANT_BLOCK: usize = 64;
const QUANT_FLAT_BLOCK: usize = 4096;

/// Number of independent work units of quantizing into `v`.
fn quantize_units(v: &ValueSpec) -> usize {
    if v.is_nhwc() {
        v.dims[0] * (v.dims[2] * v.dims[3]).div_ceil(QUANT_BLOCK)
    } else {
        v.numel().div_ceil(QUANT_FLAT_BLOCK)
    }
}

/// Records a step's time when profiling (for steps that leave the loop body early).
fn continue_timing(times: &mut Option<&mut Vec<Duration>>, start: Option<Instant>) {
    if let (Some(t), Some(start)) = (times.as_mut(), start) {
        t.push(start.elapsed());
    }
}

/// Copies an int8 (or uint8) program input, already quantized with the value's qparams,
/// into the value's storage (NHWC for rank 4; uint8 stored as `u - 128`).
fn copy_quantized_input(t: &Tensor, v: &ValueSpec, dst: &mut [i8]) -> Result<()> {
    let logical: Vec<i8> = match (t.dtype(), v.unsigned) {
        (DType::I8, false) => t.as_i8()?.to_vec(),
        (DType::U8, true) => t.as_u8()?.iter().map(|&u| (u ^ 0x80) as i8).collect(),
        (d, _) => {
            return Err(Error::DtypeMismatch(format!(
                "`{}` is quantized as {}, got {d}",
                v.name,
                if v.unsigned { "uint8" } else { "int8" }
            )))
        }
    };
    if t.dims() != v.dims.as_slice() || dst.len() != logical.len() {
        return Err(Error::ShapeMismatch(format!(
            "`{}` has shape {:?}, the program was compiled for {:?}",
            v.name,
            t.dims(),
            v.dims
        )));
    }
    if v.is_nhwc() {
        let (c, hw) = (v.dims[1], v.dims[2] * v.dims[3]);
        for (src, out) in logical.chunks_exact(c * hw).zip(dst.chunks_exact_mut(c * hw)) {
            for (ch, plane) in src.chunks_exact(hw).enumerate() {
                for (p, &q) in plane.iter().enumerate() {
                    out[p * c + ch] = q;
                }
            }
        }
    } else {
        dst.copy_from_slice(&logical);
    }
    Ok(())
}

/// Checks an `f32` tensor against the value it is quantized into.
fn check_quantize_source(t: &Tensor, v: &ValueSpec, out_len: usize) -> Result<()> {
    t.as_f32()?;
    if t.dims() != v.dims.as_slice() || out_len != v.numel() {
        return Err(Error::ShapeMismatch(format!(
            "`{}` has shape {:?}, the program was compiled for {:?}",
            v.name,
            t.dims(),
            v.dims
        )));
    }
    Ok(())
}

/// ONNX QuantizeLinear of work units `units` of an `f32` tensor (checked by
/// [`check_quantize_source`]) into a value's storage (NHWC for rank 4).
///
/// # Safety
/// Concurrent calls on the same `out` must use disjoint unit ranges.
unsafe fn quantize_into(
    t: &Tensor,
    v: &ValueSpec,
    out: &SharedOutput,
    units: std::ops::Range<usize>,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if matches!(crate::cpu::selected_isa(), Ok(Isa::Avx2 | Isa::Avx512Vnni)) {
        // SAFETY: the selected ISA implies AVX2; the rest is the caller's contract.
        return unsafe { quantize_into_avx2(t, v, out, units) };
    }
    // SAFETY: forwarded contract.
    unsafe { quantize_into_portable(t, v, out, units) }
}

/// [`quantize_into`] compiled for AVX2 (the same operations, so the same bytes, in 8 lanes).
///
/// # Safety
/// As [`quantize_into`]; the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_into_avx2(
    t: &Tensor,
    v: &ValueSpec,
    out: &SharedOutput,
    units: std::ops::Range<usize>,
) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe { quantize_into_portable(t, v, out, units) }
}

/// The body of [`quantize_into`], inlined into each ISA's instance.
///
/// # Safety
/// As [`quantize_into`].
#[inline(always)]
unsafe fn quantize_into_portable(
    t: &Tensor,
    v: &ValueSpec,
    out: &SharedOutput,
    units: std::ops::Range<usize>,
) -> Result<()> {
    let x = t.as_f32()?;
    let dst = out.as_ptr();
    let (scale, zp) = (v.q.scale, v.q.zero_point as f32);
    // Clamping to ±256 first keeps the value in the exact range of the fast rounding and
    // cannot change the saturated result (|zp| <= 128).
    // `max`/`min` (not `clamp`) return the non-NaN operand, so a NaN input quantizes to the
    // bottom of the range instead of propagating.
    #[allow(clippy::manual_clamp)]
    let q = |x: f32| {
        let v = crate::kernels::requant::round_half_even_small((x / scale).max(-256.0).min(256.0)) + zp;
        // SAFETY: `v` is finite (NaN was replaced above; |x / scale| <= 256, |zp| <= 128) and
        // clamped into [-128, 127], so the conversion is exact and in range; the unchecked
        // conversion lets the loop vectorize (about 3× faster than the saturating `as`).
        unsafe { v.max(-128.0).min(127.0).to_int_unchecked::<i32>() as i8 }
    };
    if v.is_nhwc() {
        // Quantize a block of contiguous pixels of one channel at a time (vectorizable), then
        // scatter them into the interleaved NHWC rows.
        let (c, hw) = (v.dims[1], v.dims[2] * v.dims[3]);
        let blocks = hw.div_ceil(QUANT_BLOCK);
        let mut tmp = vec![0i8; c * QUANT_BLOCK];
        for unit in units {
            let (n, p0) = (unit / blocks, (unit % blocks) * QUANT_BLOCK);
            let len = QUANT_BLOCK.min(hw - p0);
            let src = &x[n * c * hw..][..c * hw];
            for (ch, run) in tmp.chunks_exact_mut(QUANT_BLOCK).enumerate() {
                for (t, &x) in run[..len].iter_mut().zip(&src[ch * hw + p0..][..len]) {
                    *t = q(x);
                }
            }
            // SAFETY: pixels p0..p0 + len of image n are inside the value (checked by the
            // caller) and belong to this unit only.
            let pixels = unsafe { std::slice::from_raw_parts_mut(dst.add((n * hw + p0) * c), len * c) };
            match c {
                3 => interleave::<3>(&tmp, pixels),
                4 => interleave::<4>(&tmp, pixels),
                _ => {
                    for (i, pixel) in pixels.chunks_exact_mut(c).enumerate() {
                        for (ch, d) in pixel.iter_mut().enumerate() {
                            *d = tmp[ch * QUANT_BLOCK + i];
                        }
                    }
                }
            }
        }
    } else {
        for unit in units {
            let start = unit * QUANT_FLAT_BLOCK;
            let end = (start + QUANT_FLAT_BLOCK).min(x.len());
            for (i, &x) in x[start..end].iter().enumerate() {
                // SAFETY: element start + i is inside the value and belongs to this unit only.
                unsafe { *dst.add(start + i) = q(x) };
            }
        }
    }
    Ok(())
}

/// Writes `C` channel runs of [`QUANT_BLOCK`] bytes (`runs`) as interleaved pixels.
#[inline(always)]
fn interleave<const C: usize>(runs: &[i8], pixels: &mut [i8]) {
    for (i, pixel) in pixels.chunks_exact_mut(C).enumerate() {
        for (ch, d) in pixel.iter_mut().enumerate() {
            *d = runs[ch * QUANT_BLOCK + i];
        }
    }
}

/// A value back in logical layout: dequantized to `f32`, or as int8.
fn dequantize(src: &[i8], v: &ValueSpec, int8: bool) -> Result<Tensor> {
    let logical: Vec<i8> = if v.is_nhwc() {
        let (c, hw) = (v.dims[1], v.dims[2] * v.dims[3]);
        let mut out = vec![0i8; src.len()];
        for n in 0..v.dims[0] {
            let (s, o) = (&src[n * c * hw..][..c * hw], &mut out[n * c * hw..][..c * hw]);
            for p in 0..hw {
                for ch in 0..c {
                    o[ch * hw + p] = s[p * c + ch];
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if int8 && v.unsigned {
        return Tensor::from_u8(
            v.dims.clone(),
            logical.iter().map(|&q| (q as u8) ^ 0x80).collect(),
        );
    }
    if int8 {
        return Tensor::from_i8(v.dims.clone(), logical);
    }
    let (scale, zp) = (v.q.scale, v.q.zero_point);
    Tensor::from_f32(
        v.dims.clone(),
        logical.iter().map(|&q| (q as i32 - zp) as f32 * scale).collect(),
    )
}

/// Whether the dtype can be a program input or output through the C API.
pub fn is_io_dtype(d: DType) -> bool {
    matches!(d, DType::F32 | DType::I8 | DType::U8 | DType::I32 | DType::I64)
}
