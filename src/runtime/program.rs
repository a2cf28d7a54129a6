//! A compiled program: the lowered partitions' kernels, the boundary conversions and the
//! interpreter steps for the rest, run in order by [`Program::execute`].
//!
//! A program is immutable after construction and may be executed from several threads at
//! once. Per-call state lives in an execution context, taken from a free list and returned
//! after the call (concurrent calls each take their own): the int8 arena (one allocation of
//! the static memory plan's size) and the tensors of the values steps produce outside it
//! (boundary exits, interpreter steps, dynamic linear layers). Those tensors stay in the
//! context, and the next call overwrites them in place, so a steady-state call through
//! [`Program::execute_into`] allocates nothing, except in interpreter operators without an
//! in-place form (see [`crate::interp::kernels::eval_into`]) and dynamic linear layers.
//! Kernel steps allocate nothing (their operand lists and scratch live on the stack).
//!
//! Operators are split into at most `4 × threads` contiguous tile ranges and run as one
//! pool job; with one thread every kernel runs inline on the caller (no hand-offs), and so
//! do small operators (steps without weights moving less than `INLINE_BYTES`).
//!
//! Construction packs each kernel's weights for the selected ISA ([`Program::new`]). Loading
//! a program file ([`Program::load_file`], [`Program::load_bytes`]) copies no constant data:
//! weights are packed straight from the file's bytes, or, when its packed section was written
//! for the same kernels, used in place from them; the program keeps the bytes alive. Saving
//! ([`Program::to_bytes`], [`Program::save`]) hands the weights the kernels use to the file
//! format as its packed section: packing is the runtime's job, the format only stores blobs.
//! The constant f32 matrices of interpreted MatMuls and Gemms are packed at construction too
//! (into the panels of [`crate::interp::kernels::sgemm::PackedB`]); they are not part of the
//! file.

mod attention_fusion;
mod dataflow;
mod packed_matmul;
mod rms_fusion;
mod silu_fusion;
mod view_shape;

use super::kernel_step::KernelStep;
use super::memory_plan::{plan, BufferUse};
use super::pool::ThreadPool;
use crate::cpu::Isa;
use crate::format::packed::PackedBlob;
use crate::format::ProgramBytes;
use crate::interp::kernels::elementwise_rows::ElementwiseJob;
use crate::interp::kernels::eval_into;
use crate::interp::kernels::norm_rows::NormJob;
use crate::ir::{DType, Op, Tensor, TensorInfo};
use crate::kernels::boundary::Boundary;
use crate::kernels::buffer::{AlignedBytes, ByteOwner, PackedBytes, SharedBytes};
use crate::kernels::output::SharedOutput;
use crate::kernels::resize::ResizeToF32;
use crate::program::{ProgramSpec, StepSpec, ValueSpec};
use crate::qscheme::Carrier;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
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
    ResizeExit {
        name: String,
        resize: ResizeToF32,
        dims: [usize; 4],
        value: usize,
        slot: usize,
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
    /// Interpreted attention nodes run as one kernel (see [`attention_fusion`]).
    Attention {
        name: String,
        fused: Box<attention_fusion::FusedAttention>,
    },
    /// A Shape node answered from the source of a view chain a fusion absorbed (see
    /// [`view_shape`]).
    ViewShape(Box<view_shape::ViewShape>),
}

impl Step {
    fn label(&self, values: &[ValueSpec]) -> String {
        match self {
            Step::Kernel { name, kernel, .. } => format!("{name} [{}]", kernel.kind()),
            Step::Quantize { value, .. } => format!("quantize -> {}", values[*value].name),
            Step::Dequantize { value, .. } => format!("dequantize {}", values[*value].name),
            Step::ResizeExit { name, .. } => format!("{name} [resize_f32]"),
            Step::Dynamic { name, .. } => format!("{name} [dynamic_fully_connected]"),
            Step::Interp { name, op, .. } => format!("{name} [interp {}]", op.onnx_name()),
            Step::Attention { name, .. } => format!("{name} [attention]"),
            Step::ViewShape(v) => format!("{} [shape of a fused view]", v.name),
        }
    }
}

/// An executable program (see the module docs).
pub struct Program {
    /// The program; when loaded from a file (`source`), without the int8 weights of its
    /// convolutions and fully connected layers, which stay in the file.
    spec: ProgramSpec,
    /// The program file this was loaded from; its packed weights may be in use in place.
    source: Option<Arc<ProgramBytes>>,
    /// `spec` in full, decoded from `source` on first use.
    full_spec: OnceLock<ProgramSpec>,
    /// The ISA the kernels were built for.
    isa: Isa,
    /// One per step of `spec`, in the same order.
    steps: Vec<Step>,
    offsets: Vec<usize>,
    arena_size: usize,
    constants: Vec<(usize, Tensor)>,
    output_slots: Vec<usize>,
    slot_count: usize,
    /// Where each slot's tensor comes from when no step computes it.
    borrowed: Vec<Borrowed>,
    /// Per step: an interpreter step that only renames its input's shape (Reshape, Squeeze,
    /// ...) and is that input's last reader, so it hands the buffer on instead of copying it
    /// (see [`view_moves`]).
    moves: Vec<bool>,
    /// The interpreted MatMuls whose B is constant, packed, with the bias Adds they absorb
    /// (see [`packed_matmul`]).
    packed_matmuls: packed_matmul::ConstantMatMuls,
    pool: ThreadPool,
    /// Execution contexts not in use (one per concurrent call made so far).
    contexts: Mutex<Vec<Context>>,
}

/// A slot read from outside the execution: a constant or a program input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Borrowed {
    None,
    /// Index into `Program::constants`.
    Constant(usize),
    /// Index into the inputs of the call.
    Input(usize),
}

/// The state of one execution: the int8 arena of the memory plan and the tensors of the
/// slots steps compute (boundary dequantizations, interpreter steps, dynamic linear
/// layers). Both are kept from one call to the next, so a steady-state call writes into the
/// buffers of the previous one and allocates nothing.
///
/// `dynamic_rows` holds the quantized activation rows of the dynamic linear step running
/// now: the steps of one execution run one after the other and a context serves one
/// execution at a time (concurrent executions take different contexts), so one buffer,
/// owned without a lock, serves every dynamic step; it grows to the largest step's rows and
/// is reused from then on.
struct Context {
    arena: AlignedBytes,
    tensors: Vec<Option<Tensor>>,
    dynamic_rows: crate::kernels::dynamic::QuantizedRows,
}

/// The [`Borrowed`] source of every slot: constants, then program inputs (which win).
fn borrowed_slots(slot_count: usize, constants: &[(usize, Tensor)], input_slots: &[usize]) -> Vec<Borrowed> {
    let mut b = vec![Borrowed::None; slot_count];
    for (i, (s, _)) in constants.iter().enumerate() {
        b[*s] = Borrowed::Constant(i);
    }
    for (i, &s) in input_slots.iter().enumerate() {
        b[s] = Borrowed::Input(i);
    }
    b
}

impl Program {
    /// Builds kernels, the memory plan and the interpreter steps of `spec`.
    pub fn new(spec: ProgramSpec, options: ProgramOptions) -> Result<Program> {
        Self::build(
            spec,
            options,
            crate::kernels::table::selected_isa()?,
            Vec::new(),
            &[],
            None,
        )
    }

    /// Loads a program file through a read-only memory map, which the program keeps. When the
    /// file's packed section was written for this process's kernels, those weights are used in
    /// place from the map; otherwise they are packed from the map. The file must not be
    /// modified while the program lives (as with any memory-mapped model format).
    pub fn load_file(path: impl AsRef<std::path::Path>, options: ProgramOptions) -> Result<Program> {
        Self::load_bytes(ProgramBytes::map_file(path.as_ref())?, options)
    }

    /// Loads a program from program-file bytes, using their packed section in place when it
    /// matches this process's kernels (see [`Program::load_file`]).
    pub fn load_bytes(bytes: ProgramBytes, options: ProgramOptions) -> Result<Program> {
        Self::load_for(bytes, options, crate::kernels::table::selected_isa()?)
    }

    /// [`Program::load_bytes`] for the kernels of `isa`.
    pub(crate) fn load_for(bytes: ProgramBytes, options: ProgramOptions, isa: Isa) -> Result<Program> {
        let owner: Arc<ProgramBytes> = Arc::new(bytes);
        let base = owner.as_slice();
        let view = crate::format::program_file::from_bytes_for(base, isa)?;
        let spec = view.spec;
        let mut prepacked: Vec<Option<Vec<PackedBytes>>> = Vec::new();
        if let Some(section) = view.packed {
            prepacked.resize(spec.steps.len(), None);
            let byte_owner: ByteOwner = owner.clone();
            for blob in section.blobs() {
                let parts = prepacked
                    .get_mut(blob.step)
                    .ok_or_else(|| {
                        Error::CorruptFile(format!(
                            "packed weights for step {} of {}",
                            blob.step,
                            spec.steps.len()
                        ))
                    })?
                    .get_or_insert_with(Vec::new);
                if parts.len() != blob.part {
                    return Err(Error::CorruptFile(format!(
                        "packed weights of step {} skip to part {}",
                        blob.step, blob.part
                    )));
                }
                let start = blob.data.as_ptr() as usize - base.as_ptr() as usize;
                parts.push(PackedBytes::Shared(SharedBytes::new(
                    byte_owner.clone(),
                    start,
                    blob.data.len(),
                )?));
            }
        }
        Self::build(spec, options, isa, prepacked, &view.weights, Some(owner.clone()))
    }

    /// Builds `spec` for the kernels of `isa`; `prepacked[step]`, when present, holds the
    /// packed weights of kernel step `step`, and `unpacked[step]` its int8 weights when
    /// `spec` leaves them empty (see [`KernelStep::build_with`]). `source`, when given, is the
    /// program file `spec` was decoded from without its weights; [`Program::spec`] decodes it
    /// in full when first asked.
    fn build(
        spec: ProgramSpec,
        options: ProgramOptions,
        isa: Isa,
        prepacked: Vec<Option<Vec<PackedBytes>>>,
        unpacked: &[Option<&[i8]>],
        source: Option<Arc<ProgramBytes>>,
    ) -> Result<Program> {
        let threads = thread_count(options)?;
        check_spec(&spec, source.is_some())?;
        let mut slots = Slots::default();
        let input_slots: Vec<usize> = spec.inputs.iter().map(|i| slots.of(&i.name)).collect();
        let constants: Vec<(usize, Tensor)> = spec
            .fallback
            .initializers
            .iter()
            .map(|(n, t)| (slots.of(n), t.clone()))
            .collect();
        let kernels = build_kernels(isa, &spec, threads, prepacked, unpacked)?;
        let steps = build_steps(&spec, isa, kernels, &mut slots)?;
        let output_slots: Vec<usize> = spec.outputs.iter().map(|o| slots.of(&o.name)).collect();
        let steps = attention_fusion::fuse(steps, &output_slots, &input_slots, &constants);
        let steps = rms_fusion::fuse(steps, &output_slots, &input_slots, &constants);
        let steps = silu_fusion::fuse(steps, &output_slots, &input_slots, &constants);
        let slot_count = slots.0.len();
        let (offsets, arena_size) = plan_values(&spec.values, &steps);
        let borrowed = borrowed_slots(slot_count, &constants, &input_slots);
        let moves = view_moves(&steps, &borrowed, &output_slots);
        let packed_matmuls = packed_matmul::ConstantMatMuls::build(
            &steps,
            &borrowed,
            &constants,
            &output_slots,
            crate::cpu::selected_isa().unwrap_or(Isa::Scalar),
        );
        Ok(Program {
            spec,
            source,
            full_spec: OnceLock::new(),
            isa,
            steps,
            offsets,
            arena_size,
            constants,
            output_slots,
            slot_count,
            borrowed,
            moves,
            packed_matmuls,
            pool: ThreadPool::new(threads)?,
            contexts: Mutex::new(Vec::new()),
        })
    }

    /// The lowered program this was built from (what a program file stores).
    ///
    /// A program loaded from a file decodes its int8 weights from the file on the first call. That decode already succeeded once on the same bytes, so it fails
    /// (panics) only if the memory-mapped file was modified while loaded, which
    /// [`Program::load_file`] forbids.
    pub fn spec(&self) -> &ProgramSpec {
        match &self.source {
            None => &self.spec,
            Some(bytes) => self.full_spec.get_or_init(|| {
                crate::format::program_file::from_bytes(bytes.as_slice())
                    .unwrap_or_else(|e| panic!("the loaded program file changed while mapped: {e}"))
            }),
        }
    }

    /// The program file of this program: [`Program::spec`] and, in a packed section, the
    /// weights its kernels use, packed for its ISA (a process with the same kernels uses them
    /// in place when it loads the file; any other packs the unpacked weights).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::format::program_file::to_bytes_with_packed(self.spec(), self.packed_section().as_deref())
    }

    /// Writes [`Program::to_bytes`] to a file.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|e| Error::io(path.display(), e))
    }

    /// The packed weights of the kernel steps as a packed section, or `None` when no step
    /// has packed weights (or, as for any optional section, when they cannot be encoded: the
    /// file then loads by packing).
    fn packed_section(&self) -> Option<Vec<u8>> {
        let blobs: Vec<PackedBlob> = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(step, s)| match s {
                Step::Kernel { kernel, .. } => Some((step, kernel)),
                _ => None,
            })
            .flat_map(|(step, kernel)| {
                kernel
                    .packed_parts()
                    .into_iter()
                    .enumerate()
                    .map(move |(part, data)| PackedBlob { step, part, data })
            })
            .collect();
        if blobs.is_empty() {
            return None;
        }
        crate::format::packed::encode(
            self.isa,
            crate::kernels::table::gemm_kernel(self.isa).name,
            &blobs,
        )
        .ok()
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

    /// Kernel steps whose packed weights are used in place from the program file's packed
    /// section (the others were packed at load).
    pub fn steps_with_weights_in_place(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Kernel { kernel, .. } if kernel.uses_shared_weights()))
            .count()
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

    /// Runs the program on `inputs` and writes its outputs (in [`Program::outputs`] order)
    /// into `outputs`, reusing their storage: once `outputs` hold tensors of the outputs'
    /// shapes and types (after the first call), a call allocates nothing.
    pub fn execute_into(&self, inputs: &[Tensor], outputs: &mut [Tensor]) -> Result<()> {
        self.execute_into_timed(inputs, outputs, &mut None)
    }

    /// [`Program::execute_into`] that also returns each step's label and wall time (the
    /// per-operator profile of that call).
    pub fn profile_into(&self, inputs: &[Tensor], outputs: &mut [Tensor]) -> Result<Vec<(String, Duration)>> {
        let mut times = Vec::with_capacity(self.steps.len());
        self.execute_into_timed(inputs, outputs, &mut Some(&mut times))?;
        Ok(self.labelled(times))
    }

    /// [`Program::execute_into`], recording step times into `times` when given.
    fn execute_into_timed(
        &self,
        inputs: &[Tensor],
        outputs: &mut [Tensor],
        times: &mut Option<&mut Vec<Duration>>,
    ) -> Result<()> {
        if outputs.len() != self.spec.outputs.len() {
            return Err(Error::invalid_argument(
                "outputs",
                format!(
                    "the program has {} outputs, got {}",
                    self.spec.outputs.len(),
                    outputs.len()
                ),
            ));
        }
        self.run_in_context(inputs, times, |tensors| {
            for ((&s, info), out) in self.output_slots.iter().zip(&self.spec.outputs).zip(outputs) {
                let t = self
                    .slot(tensors, inputs, s)
                    .ok_or_else(|| Error::Internal(format!("output `{}` was not computed", info.name)))?;
                out.assign(t);
            }
            Ok(())
        })
    }

    /// Runs once and returns each step's label and wall time (per-operator profile).
    pub fn profile(&self, inputs: &[Tensor]) -> Result<Vec<(String, Duration)>> {
        let mut times = Vec::with_capacity(self.steps.len());
        self.run(inputs, Some(&mut times))?;
        Ok(self.labelled(times))
    }

    /// Each step's label with its time.
    fn labelled(&self, times: Vec<Duration>) -> Vec<(String, Duration)> {
        self.steps
            .iter()
            .enumerate()
            .zip(times)
            .map(|((i, s), t)| match (s, self.packed_matmuls.get(i)) {
                (Step::Interp { name, .. }, Some(p)) if p.fused_output().is_some() => {
                    (format!("{name} [interp MatMul, packed B, + bias]"), t)
                }
                (Step::Interp { name, op, .. }, Some(_)) => {
                    (format!("{name} [interp {}, packed B]", op.onnx_name()), t)
                }
                _ => (s.label(&self.spec.values), t),
            })
            .collect()
    }

    /// The tensor of `slot`: computed in this execution (`tensors`), or a constant or input.
    fn slot<'a>(
        &'a self,
        tensors: &'a [Option<Tensor>],
        inputs: &'a [Tensor],
        slot: usize,
    ) -> Option<&'a Tensor> {
        tensors[slot].as_ref().or(match self.borrowed[slot] {
            Borrowed::None => None,
            Borrowed::Constant(i) => Some(&self.constants[i].1),
            Borrowed::Input(i) => inputs.get(i),
        })
    }

    fn take_context(&self) -> Result<Context> {
        let reused = self.contexts.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(c) => Ok(c),
            None => Ok(Context {
                arena: AlignedBytes::zeroed(self.arena_size.max(1))?,
                tensors: vec![None; self.slot_count],
                dynamic_rows: Default::default(),
            }),
        }
    }

    fn run(&self, inputs: &[Tensor], mut times: Option<&mut Vec<Duration>>) -> Result<Vec<Tensor>> {
        self.run_in_context(inputs, &mut times, |tensors| {
            self.output_slots
                .iter()
                .zip(&self.spec.outputs)
                .map(|(&s, o)| {
                    tensors[s]
                        .take()
                        .or_else(|| self.slot(tensors, inputs, s).cloned())
                        .ok_or_else(|| Error::Internal(format!("output `{}` was not computed", o.name)))
                })
                .collect()
        })
    }

    /// Checks `inputs`, runs every step in an execution context and hands the context's
    /// slot tensors to `finish`, which collects the outputs.
    fn run_in_context<R>(
        &self,
        inputs: &[Tensor],
        times: &mut Option<&mut Vec<Duration>>,
        finish: impl FnOnce(&mut [Option<Tensor>]) -> Result<R>,
    ) -> Result<R> {
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
        let mut context = self.take_context()?;
        let result = self
            .run_with(inputs, &mut context, times)
            .and_then(|()| finish(&mut context.tensors));
        self.contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(context);
        result
    }

    fn run_with(
        &self,
        inputs: &[Tensor],
        context: &mut Context,
        times: &mut Option<&mut Vec<Duration>>,
    ) -> Result<()> {
        let arena = context.arena.as_mut_slice();
        let arena = ArenaRegions {
            base: arena.as_mut_ptr() as *mut i8,
            len: arena.len(),
            offsets: &self.offsets,
            values: &self.spec.values,
        };
        let tensors = &mut context.tensors;
        let dynamic_rows = &mut context.dynamic_rows;
        // The input slot (and row length) whose rows `dynamic_rows` holds quantized: the
        // linears reading one tensor (a layer's Q / K / V, an MLP's gate and up) quantize it
        // once. A slot's tensor does not change within a run once written.
        let mut quantized_input: Option<(usize, usize)> = None;
        let values = &self.spec.values;
        for (index, step) in self.steps.iter().enumerate() {
            let start = times.as_ref().map(|_| Instant::now());
            match step {
                Step::Interp {
                    name,
                    op,
                    inputs: reads,
                    outputs: writes,
                } if self.moves[index] => self.run_view_move(name, op, reads, writes, tensors, inputs)?,
                // A bias Add its MatMul step computed.
                Step::Interp { .. } if self.packed_matmuls.already_added(index, tensors) => {}
                Step::Kernel {
                    name,
                    kernel,
                    inputs,
                    output,
                } => self.run_kernel_step(&arena, name, kernel, inputs, *output)?,
                Step::Quantize { slot, value } => {
                    let t = self.slot(tensors, inputs, *slot).ok_or_else(|| {
                        Error::Internal(format!("tensor for `{}` missing", values[*value].name))
                    })?;
                    self.run_quantize(&arena, t, *value)?;
                }
                Step::Dequantize { value, slot, int8 } => {
                    let (p, len) = arena.region(*value);
                    // SAFETY: the value's region is in the arena and was written by an earlier step.
                    let src = unsafe { std::slice::from_raw_parts(p as *const i8, len) };
                    dequantize_into(src, &values[*value], *int8, &mut tensors[*slot])?;
                }
                Step::ResizeExit {
                    resize,
                    dims,
                    value,
                    slot,
                    ..
                } => {
                    let (p, len) = arena.region(*value);
                    // SAFETY: the value's region is in the arena and was written by an earlier step.
                    let src = unsafe { std::slice::from_raw_parts(p as *const i8, len) };
                    let t = Tensor::reuse_slot(
                        &mut tensors[*slot],
                        DType::F32,
                        |d| d == dims,
                        || Ok(dims.to_vec()),
                    )?;
                    self.run_resize_exit(resize, src, t.as_f32_mut()?)?;
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
                    // The output tensor of the previous call is overwritten in place.
                    let mut y = tensors[*output].take();
                    let x = self
                        .slot(tensors, inputs, *input)
                        .ok_or_else(|| Error::Internal(format!("input of `{name}` missing")))?;
                    let fresh = quantized_input != Some((*input, *k));
                    self.run_dynamic(packed, x, *n, *k, *relu, fresh, dynamic_rows, &mut y)?;
                    quantized_input = Some((*input, *k));
                    tensors[*output] = y;
                }
                Step::Interp {
                    name,
                    op,
                    inputs: reads,
                    outputs: writes,
                } => {
                    // The output tensors of the previous call are overwritten in place.
                    let mut few_results: [Option<Tensor>; 4] = Default::default();
                    let mut many_results: Vec<Option<Tensor>>;
                    let results: &mut [Option<Tensor>] = if writes.len() <= few_results.len() {
                        &mut few_results[..writes.len()]
                    } else {
                        many_results = vec![None; writes.len()];
                        &mut many_results
                    };
                    for (r, s) in results.iter_mut().zip(writes) {
                        if let Some(s) = s {
                            *r = tensors[*s].take();
                        }
                    }
                    // A packed MatMul with a fused bias writes the Add's output slot.
                    let constant_mm = self.packed_matmuls.get(index);
                    let fused_slot = constant_mm.and_then(|p| p.fused_output());
                    let mut fused_out = fused_slot.and_then(|s| tensors[s].take());
                    let read = |s: &Option<usize>| s.and_then(|s| self.slot(tensors, inputs, s));
                    let mut few_args: [Option<&Tensor>; 8] = [None; 8];
                    let many_args: Vec<Option<&Tensor>>;
                    let args: &[Option<&Tensor>] = if reads.len() <= few_args.len() {
                        for (a, s) in few_args.iter_mut().zip(reads) {
                            *a = read(s);
                        }
                        &few_args[..reads.len()]
                    } else {
                        many_args = reads.iter().map(read).collect();
                        &many_args
                    };
                    if args.iter().zip(reads).any(|(a, s)| s.is_some() && a.is_none()) {
                        return Err(Error::Internal(format!("node `{name}` ran before its inputs")));
                    }
                    // A node whose other outputs are not read runs as a single-output one.
                    let requested = match writes.iter().rposition(Option::is_some) {
                        Some(last) => last + 1,
                        None => writes.len(),
                    };
                    let results = &mut results[..requested.max(1).min(writes.len())];
                    let (packed, fused) = match (constant_mm, &mut *results, args.first()) {
                        (Some(p), [_], Some(Some(a))) if fused_slot.is_some() => {
                            let done = self.run_packed_matmul(p, a, &mut fused_out, true)?;
                            (done, done)
                        }
                        (Some(p), [out], Some(Some(a))) => (self.run_packed_matmul(p, a, out, false)?, false),
                        _ => (false, false),
                    };
                    let parallel = match &mut *results {
                        [out] if !packed => self.run_parallel_interp(op, args, out)?,
                        _ => packed,
                    };
                    if !parallel {
                        eval_into(op, args, results)
                            .map_err(|e| crate::ir::infer::with_node(e, name, op.onnx_name()))?;
                    }
                    for (r, s) in results.iter_mut().zip(writes) {
                        if let Some(s) = s {
                            tensors[*s] = r.take();
                        }
                    }
                    if let Some(s) = fused_slot {
                        tensors[s] = fused_out;
                    }
                    if let (true, Some(o)) = (fused, constant_mm.and_then(|p| p.matmul_output())) {
                        // Tells the fused Add that its sum is already computed.
                        tensors[o] = None;
                    }
                }
                Step::Attention { fused, .. } => self.run_attention(fused, inputs, tensors)?,
                Step::ViewShape(v) => {
                    let source = self.slot(tensors, inputs, v.source).ok_or_else(|| {
                        Error::Internal(format!("`{}`: its view's source is missing", v.name))
                    })?;
                    let shape = v.eval(source.dims(), |s| self.slot(tensors, inputs, s))?;
                    tensors[v.output] = Some(shape);
                }
            }
            record_step_time(times, start);
        }
        Ok(())
    }

    /// An interpreter step that only renames its input's shape, run by moving the input's
    /// tensor into the output slot with the new dims (no copy). The output slot's tensor of
    /// the previous call goes back to the input slot, shaped as the input, so the producer
    /// writes into it in place again: a steady state copies no elements (it still allocates the
    /// two small dims vectors of the move).
    fn run_view_move(
        &self,
        name: &str,
        op: &Op,
        reads: &[Option<usize>],
        writes: &[Option<usize>],
        tensors: &mut [Option<Tensor>],
        inputs: &[Tensor],
    ) -> Result<()> {
        let with_node = |e| crate::ir::infer::with_node(e, name, op.onnx_name());
        let (Some(Some(src)), [Some(dst)]) = (reads.first(), writes) else {
            return Err(Error::Internal(format!("node `{name}` is not a one-output view")));
        };
        let dims = {
            let mut args: [Option<&Tensor>; 2] = [None; 2];
            for (a, s) in args.iter_mut().zip(reads) {
                *a = s.and_then(|s| self.slot(tensors, inputs, s));
            }
            crate::interp::kernels::view_dims(op, &args[..reads.len().min(2)])
                .map_err(with_node)?
                .ok_or_else(|| Error::Internal(format!("node `{name}` is not a view")))?
        };
        let x = tensors[*src]
            .take()
            .ok_or_else(|| Error::Internal(format!("node `{name}` ran before its inputs")))?;
        let (numel, dtype, input_dims) = (x.numel(), x.dtype(), x.dims().to_vec());
        let previous = tensors[*dst].replace(x.reshaped(dims).map_err(with_node)?);
        if let Some(p) = previous.filter(|p| p.numel() == numel && p.dtype() == dtype) {
            tensors[*src] = Some(p.reshaped(input_dims)?);
        }
        Ok(())
    }

    /// Runs kernel step `name` on the regions of values `inputs`, writing value `output`.
    fn run_kernel_step(
        &self,
        arena: &ArenaRegions,
        name: &str,
        kernel: &KernelStep,
        inputs: &[usize],
        output: usize,
    ) -> Result<()> {
        let view = |v: usize| -> &[i8] {
            let (p, len) = arena.region(v);
            // SAFETY: values live at this step never overlap (memory plan), and
            // the output region is written only through `out` below.
            unsafe { std::slice::from_raw_parts(p as *const i8, len) }
        };
        // Up to sixteen inputs live on the stack; only wider concatenations allocate.
        let mut few: [&[i8]; 16] = [&[]; 16];
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
        let (p, len) = arena.region(output);
        // SAFETY: as above; the output region is disjoint from every input region.
        let out = SharedOutput::new(unsafe { std::slice::from_raw_parts_mut(p, len) });
        self.run_kernel(kernel, ins, &out)
            .map_err(|e| crate::ir::infer::with_node(e, name, kernel.kind()))
    }

    /// Quantizes the `f32` tensor `t` into value `value` (over the pool), or copies it there
    /// when it is an int8 program input.
    fn run_quantize(&self, arena: &ArenaRegions, t: &Tensor, value: usize) -> Result<()> {
        let (p, len) = arena.region(value);
        // SAFETY: the value's region is in the arena and no other step runs now.
        let out = SharedOutput::new(unsafe { std::slice::from_raw_parts_mut(p, len) });
        let v = &self.spec.values[value];
        if t.dtype() != DType::F32 {
            // An int8 program input (int8 boundaries): already quantized.
            // SAFETY: as above.
            return copy_quantized_input(t, v, unsafe { std::slice::from_raw_parts_mut(p, len) });
        }
        check_quantize_source(t, v, len)?;
        let units = quantize_units(v);
        let threads = self.pool.threads();
        // An f32 read and an int8 write per element.
        if threads == 1 || units <= 1 || len * 5 < INLINE_BYTES {
            // SAFETY: one call covers every unit.
            unsafe { quantize_into(t, v, &out, 0..units) }?;
        } else {
            let tasks = units.min(threads * 4);
            self.pool.run(tasks, &|i| {
                // SAFETY: task ranges partition 0..units; the source was checked.
                let _ = unsafe { quantize_into(t, v, &out, units * i / tasks..units * (i + 1) / tasks) };
            });
        }
        Ok(())
    }

    /// An interpreted single-output f32 operator split over the pool when it is large: MatMul
    /// (rows of A against one weight matrix, or whole products of a batched one), Softmax
    /// along contiguous rows, the layer / RMS / skip normalisations along their rows, binary
    /// arithmetic and Where along the output's leading rows, Transpose along output runs,
    /// point-wise operators. The same bits as the interpreter's single
    /// pass (rows, products and elements are computed independently of the others). Returns
    /// false, having done nothing, for anything else, which the interpreter then evaluates.
    fn run_parallel_interp(
        &self,
        op: &Op,
        args: &[Option<&Tensor>],
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        let threads = self.pool.threads();
        let Some(Some(x)) = args.first() else {
            return Ok(false);
        };
        if threads == 1 {
            return Ok(false);
        }
        if let Op::Where = op {
            return self.run_parallel_elementwise(op, args, out);
        }
        if x.dtype() != DType::F32 {
            return Ok(false);
        }
        match op {
            Op::MatMul => self.run_parallel_matmul(x, args, out),
            Op::Softmax { axis, coerce_2d } => self.run_parallel_softmax(x, *axis, *coerce_2d, out),
            Op::LayerNormalization { .. } | Op::RmsNormalization { .. } | Op::SkipNormalization { .. } => {
                self.run_parallel_norm(op, args, out)
            }
            Op::Binary(_) => self.run_parallel_elementwise(op, args, out),
            Op::Transpose { perm } => self.run_parallel_transpose(x, perm.as_deref(), out),
            _ if crate::ir::pointwise::is_pointwise(op) && args.len() == 1 => {
                let n = x.numel();
                if n < PARALLEL_ELEMENTS {
                    return Ok(false);
                }
                let y = Tensor::reuse_slot(out, DType::F32, |d| d == x.dims(), || Ok(x.dims().to_vec()))?
                    .as_f32_mut()?;
                let xs = x.as_f32()?;
                let chunks = n.div_ceil(PARALLEL_ELEMENTS / 2).min(threads * 4);
                self.split_f32(y, chunks, n, 1, &|r, part| {
                    crate::ir::pointwise::map(op, &xs[r], part)
                })?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Splits `0..units` into `tasks` ranges over the pool; `f(range, part)` writes units
    /// `range` of `y` (`unit` elements each) into `part`. The first error is returned.
    fn split_f32(
        &self,
        y: &mut [f32],
        tasks: usize,
        units: usize,
        unit: usize,
        f: &RangeWriter<'_>,
    ) -> Result<()> {
        if y.len() != units * unit {
            return Err(Error::Internal(format!(
                "{} output elements for {units} x {unit}",
                y.len()
            )));
        }
        let (ptr, failure) = (SendPtr(y.as_mut_ptr()), Mutex::new(None));
        self.pool.run(tasks, &|i| {
            let p = &ptr;
            let r = units * i / tasks..units * (i + 1) / tasks;
            // SAFETY: `y` (units × unit elements) outlives the job, and the tasks' ranges
            // partition 0..units, so each task writes its own elements only.
            let part = unsafe { std::slice::from_raw_parts_mut(p.0.add(r.start * unit), r.len() * unit) };
            if let Err(e) = f(r, part) {
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        });
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Self::run_parallel_interp`] for MatMul.
    fn run_parallel_matmul(
        &self,
        a: &Tensor,
        args: &[Option<&Tensor>],
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        let threads = self.pool.threads();
        let (Some(Some(b)), 2) = (args.get(1), args.len()) else {
            return Ok(false);
        };
        if b.dtype() != DType::F32 {
            return Ok(false);
        }
        let (ad, bd) = (a.dims(), b.dims());
        let (av, bv) = (a.as_f32()?, b.as_f32()?);
        if let Some((rows, k, n)) = crate::interp::kernels::folded_rows(ad, bd) {
            let macs = rows.saturating_mul(k).saturating_mul(n);
            if rows <= crate::interp::kernels::gemv::MAX_ROWS {
                return self.run_parallel_gemv(av, ad, bv, bd, (rows, k, n), out);
            }
            if rows < 2 * PARALLEL_MATMUL_ROWS
                || macs < PARALLEL_MATMUL_MACS
                || av.len() != rows * k
                || bv.len() != k * n
            {
                return Ok(false);
            }
            let y = matmul_output(out, ad, bd)?;
            let tasks = (threads * 2).min(rows / PARALLEL_MATMUL_ROWS);
            self.split_f32(y, tasks, rows, n, &|r, part| {
                crate::interp::kernels::matmul_rows_f32(av, bv, k, n, r, part);
                Ok(())
            })?;
            return Ok(true);
        }
        let Some((batches, m, n)) = crate::interp::kernels::batched_matmul_size(ad, bd) else {
            return Ok(false);
        };
        let k = ad[ad.len() - 1];
        let macs = batches.saturating_mul(m).saturating_mul(k).saturating_mul(n);
        if batches < 2 || macs < PARALLEL_MATMUL_MACS {
            return Ok(false);
        }
        let y = matmul_output(out, ad, bd)?;
        let tasks = (threads * 4).min(batches);
        self.split_f32(y, tasks, batches, m * n, &|r, part| {
            crate::interp::kernels::matmul_batches_f32(av, ad, bv, bd, r, part)
        })?;
        Ok(true)
    }

    /// [`Self::run_parallel_interp`] for the normalisations: rows split over the pool.
    fn run_parallel_norm(&self, op: &Op, args: &[Option<&Tensor>], out: &mut Option<Tensor>) -> Result<bool> {
        let Some(job) = NormJob::of(op, args)? else {
            return Ok(false);
        };
        let rows = job.rows();
        if rows < 2 || rows.saturating_mul(job.inner()) < PARALLEL_ELEMENTS {
            return Ok(false);
        }
        let dims = job.dims();
        let y = Tensor::reuse_slot(out, DType::F32, |o| o == dims, || Ok(dims.to_vec()))?.as_f32_mut()?;
        let isa = crate::cpu::selected_isa().unwrap_or(Isa::Scalar);
        let tasks = (self.pool.threads() * 4).min(rows);
        self.split_f32(y, tasks, rows, job.inner(), &|r, part| job.run(isa, r, part))?;
        Ok(true)
    }

    /// [`Self::run_parallel_interp`] for f32 binary arithmetic and Where: the output's
    /// leading rows split over the pool.
    fn run_parallel_elementwise(
        &self,
        op: &Op,
        args: &[Option<&Tensor>],
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        let Some(job) = ElementwiseJob::of(op, args)? else {
            return Ok(false);
        };
        if job.dims().iter().product::<usize>() < PARALLEL_ELEMENTS {
            return Ok(false);
        }
        let tasks = self.pool.threads() * 4;
        let job = job.with_rows(tasks);
        let rows = job.rows();
        if rows < 2 {
            return Ok(false);
        }
        let dims = job.dims();
        let y = Tensor::reuse_slot(out, DType::F32, |o| o == dims, || Ok(dims.to_vec()))?.as_f32_mut()?;
        self.split_f32(y, tasks.min(rows), rows, job.row_len(), &|r, part| {
            job.run(r, part)
        })?;
        Ok(true)
    }

    /// [`Self::run_parallel_interp`] for an f32 Transpose: runs of the output's last axis
    /// split over the pool.
    fn run_parallel_transpose(
        &self,
        x: &Tensor,
        perm: Option<&[usize]>,
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        use crate::interp::kernels::{transpose_axis, transpose_f32_runs, transpose_run_len};
        let d = x.dims();
        let rank = d.len();
        let is_permutation =
            |p: &[usize]| p.len() == rank && (0..rank).all(|i| p[i] < rank && !p[..i].contains(&p[i]));
        let n = x.numel();
        if rank > crate::interp::kernels::TRANSPOSE_INTO_MAX_RANK
            || perm.is_some_and(|p| !is_permutation(p))
            || n < PARALLEL_ELEMENTS
        {
            return Ok(false);
        }
        let last = transpose_run_len(d, perm);
        let runs = n.checked_div(last).unwrap_or(0);
        if runs < 2 {
            return Ok(false);
        }
        let t = Tensor::reuse_slot(
            out,
            DType::F32,
            |o| o.len() == rank && (0..rank).all(|i| o[i] == d[transpose_axis(perm, rank, i)]),
            || crate::ir::shapes::transpose_shape(d, perm),
        )?;
        let xs = x.as_f32()?;
        let tasks = (self.pool.threads() * 4).min(runs);
        self.split_f32(t.as_f32_mut()?, tasks, runs, last, &|r, part| {
            transpose_f32_runs(xs, d, perm, r, part)
        })?;
        Ok(true)
    }

    /// [`Self::run_parallel_matmul`] for a few rows against one matrix (decoding): the
    /// columns split over the pool in blocks of 64, each computed by the vector × matrix
    /// kernel exactly as one thread computes it. Returns false when the product is too small
    /// to split.
    fn run_parallel_gemv(
        &self,
        a: &[f32],
        ad: &[usize],
        b: &[f32],
        bd: &[usize],
        (rows, k, n): (usize, usize, usize),
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        const BLOCK: usize = 64;
        let blocks = n.div_ceil(BLOCK);
        let macs = rows.saturating_mul(k).saturating_mul(n);
        if macs < PARALLEL_MATMUL_MACS || blocks < 2 || a.len() != rows * k || b.len() != k * n {
            return Ok(false);
        }
        let y = matmul_output(out, ad, bd)?;
        if y.len() != rows * n {
            return Err(Error::Internal(format!("{} outputs for {rows} x {n}", y.len())));
        }
        let tasks = (self.pool.threads() * 2).min(blocks);
        let ptr = SendPtr(y.as_mut_ptr());
        self.pool.run(tasks, &|i| {
            let p = &ptr;
            let cols = (blocks * i / tasks * BLOCK).min(n)..(blocks * (i + 1) / tasks * BLOCK).min(n);
            for r in 0..rows {
                // SAFETY: `y` (rows × n) outlives the job; the tasks' column ranges partition
                // 0..n, so each task writes its own columns of each row only.
                let part = unsafe { std::slice::from_raw_parts_mut(p.0.add(r * n + cols.start), cols.len()) };
                crate::interp::kernels::gemv::gemv(&a[r * k..(r + 1) * k], b, n, cols.clone(), part);
            }
        });
        Ok(true)
    }

    /// [`Self::run_parallel_interp`] for Softmax whose rows are contiguous.
    fn run_parallel_softmax(
        &self,
        x: &Tensor,
        axis: i64,
        coerce_2d: bool,
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        let d = x.dims();
        let ax = crate::ir::shapes::norm_axis(axis, d.len())?;
        let len: usize = if coerce_2d {
            d[ax..].iter().product()
        } else {
            d[ax]
        };
        let n = x.numel();
        let contiguous = coerce_2d || ax + 1 == d.len();
        if !contiguous || len == 0 || n < PARALLEL_ELEMENTS || n / len < 2 {
            return Ok(false);
        }
        let rows = n / len;
        let y = Tensor::reuse_slot(out, DType::F32, |o| o == d, || Ok(d.to_vec()))?.as_f32_mut()?;
        let xs = x.as_f32()?;
        let tasks = (self.pool.threads() * 4).min(rows);
        self.split_f32(y, tasks, rows, len, &|r, part| {
            part.copy_from_slice(&xs[r.start * len..r.end * len]);
            crate::interp::kernels::softmax_in_place(&[r.len(), len], 1, false, part)
        })?;
        Ok(true)
    }

    /// Runs the resize into `f32` of `x` into `y`, its output rows split over the pool when
    /// the output is large.
    fn run_resize_exit(&self, resize: &ResizeToF32, x: &[i8], y: &mut [f32]) -> Result<()> {
        let rows = resize.geometry().output_rows();
        let threads = self.pool.threads();
        // An int8 read per input element and an f32 write per output element.
        if threads == 1 || rows <= 1 || x.len() + 4 * y.len() < INLINE_BYTES {
            return resize.run(x, y);
        }
        let tasks = rows.min(threads * 4);
        let (ptr, len) = (SendPtr(y.as_mut_ptr()), y.len());
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        self.pool.run(tasks, &|i| {
            let p = &ptr;
            // SAFETY: `y` outlives the job; task row ranges partition 0..rows.
            if let Err(e) = unsafe { resize.run_rows(x, p.0, len, rows * i / tasks..rows * (i + 1) / tasks) }
            {
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        });
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The dynamic linear layer `y = x · Wᵀ (+ relu)` over the last axis of `x` (`k` to `n`),
    /// its activation rows quantized into `rows` (unless not `fresh`: `rows` already hold
    /// `x`'s) and its output written into the tensor kept in `out` when it has the output's
    /// shape: no allocation in a steady state.
    #[allow(clippy::too_many_arguments)]
    fn run_dynamic(
        &self,
        packed: &crate::kernels::dynamic::PackedDynamicGemm,
        x: &Tensor,
        n: usize,
        k: usize,
        relu: bool,
        fresh: bool,
        rows: &mut crate::kernels::dynamic::QuantizedRows,
        out: &mut Option<Tensor>,
    ) -> Result<()> {
        let data = x.as_f32()?;
        let xd = x.dims();
        if k == 0 || xd.last() != Some(&k) {
            return Err(Error::ShapeMismatch(format!(
                "dynamic linear input {xd:?} has no last axis of {k}"
            )));
        }
        let m = data.len() / k;
        if fresh {
            crate::kernels::dynamic::quantize_rows_into(data, m, k, k, rows)?;
        } else if (rows.m, rows.k) != (m, k) {
            return Err(Error::Internal(format!(
                "dynamic linear: quantized rows of {} x {} reused for {m} x {k}",
                rows.m, rows.k
            )));
        }
        let rank = xd.len();
        let t = Tensor::reuse_slot(
            out,
            DType::F32,
            |d| d.len() == rank && d[..rank - 1] == xd[..rank - 1] && d[rank - 1] == n,
            || {
                let mut dims = xd.to_vec();
                dims[rank - 1] = n;
                Ok(dims)
            },
        )?;
        let y = t.as_f32_mut()?;
        let tiles = packed.tile_count(m);
        let threads = self.pool.threads();
        let rows = &*rows;
        if threads == 1 || tiles <= 1 {
            packed.run(rows, y, n, 0..tiles)?;
        } else {
            let tasks = tiles.min(threads * 4);
            let (ptr, len) = (SendPtr(y.as_mut_ptr()), y.len());
            let failure: Mutex<Option<Error>> = Mutex::new(None);
            self.pool.run(tasks, &|i| {
                let range = tiles * i / tasks..tiles * (i + 1) / tasks;
                let p = &ptr;
                // SAFETY: `y` outlives the job; task ranges are disjoint tiles.
                if let Err(e) = unsafe { packed.run_shared(rows, p.0, len, n, range) } {
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
        Ok(())
    }

    fn run_kernel(&self, kernel: &KernelStep, ins: &[&[i8]], out: &SharedOutput) -> Result<()> {
        let tiles = kernel.tile_count();
        let threads = self.pool.threads();
        let moved = ins.iter().map(|i| i.len()).sum::<usize>() + out.len();
        if threads == 1 || tiles <= 1 || (!kernel.has_weights() && moved < INLINE_BYTES) {
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

/// The threads of one execution: `options.threads`, or the physical cores when it is 0; at
/// most 1024.
fn thread_count(options: ProgramOptions) -> Result<usize> {
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
    Ok(threads)
}

/// Checks that the int8 values of `spec` fit the arena limit and that its steps read only
/// values written before; a bad dataflow is a corrupt file when `spec` was decoded from one
/// (`from_file`), else an invalid model.
fn check_spec(spec: &ProgramSpec, from_file: bool) -> Result<()> {
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
    if let Err(why) = spec.check_dataflow() {
        return Err(if from_file {
            Error::CorruptFile(format!("invalid program: {why}"))
        } else {
            Error::InvalidModel(format!("the compiled program is invalid: {why}"))
        });
    }
    Ok(())
}

/// The slots of the `f32` tensors one call holds (program inputs and outputs, constants,
/// boundary and interpreter tensors), numbered by name in order of first use.
#[derive(Default)]
struct Slots(HashMap<String, usize>);

impl Slots {
    /// The slot of tensor `name`, numbered on first use.
    fn of(&mut self, name: &str) -> usize {
        let n = self.0.len();
        *self.0.entry(name.to_string()).or_insert(n)
    }
}

/// The executable steps of `spec`, in order: kernel steps taken from `kernels` (built by
/// [`build_kernels`], in step order), the others prepared here, with the `f32` tensors they
/// read and write numbered in `slots`.
fn build_steps(
    spec: &ProgramSpec,
    isa: Isa,
    kernels: Vec<KernelStep>,
    slots: &mut Slots,
) -> Result<Vec<Step>> {
    let fallback_nodes: HashMap<&str, &crate::ir::Node> =
        spec.fallback.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let n_values = spec.values.len();
    let value = |v: usize| -> Result<usize> {
        (v < n_values)
            .then_some(v)
            .ok_or_else(|| Error::InvalidModel(format!("step refers to value {v} of {n_values}")))
    };
    let mut built = kernels.into_iter();
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
                slot: slots.of(tensor),
                value: value(*v)?,
            },
            StepSpec::Dequantize {
                value: v,
                tensor,
                int8,
            } => Step::Dequantize {
                value: value(*v)?,
                slot: slots.of(tensor),
                int8: *int8,
            },
            StepSpec::ResizeExit {
                node,
                value: v,
                tensor,
                resize,
            } => {
                let x = &spec.values[value(*v)?];
                Step::ResizeExit {
                    name: node.clone(),
                    resize: resize.build(isa, x)?,
                    dims: resize.output_dims(x)?,
                    value: *v,
                    slot: slots.of(tensor),
                }
            }
            StepSpec::DynamicLinear {
                node,
                input,
                output,
                n,
                k,
                weights,
                bias,
                relu,
            } => {
                let w = crate::kernels::dynamic::DynamicWeights {
                    n: *n,
                    k: *k,
                    weights: &weights.values,
                    scales: &weights.scales,
                    bias: (!bias.is_empty()).then_some(bias.as_slice()),
                };
                Step::Dynamic {
                    name: node.clone(),
                    packed: crate::kernels::dynamic::PackedDynamicGemm::pack(isa, &w)?,
                    input: slots.of(input),
                    output: slots.of(output),
                    n: *n,
                    k: *k,
                    relu: *relu,
                }
            }
            StepSpec::Interp { node } => {
                let n = fallback_nodes
                    .get(node.as_str())
                    .ok_or_else(|| Error::InvalidModel(format!("interpreter node `{node}` is missing")))?;
                Step::Interp {
                    name: n.name.clone(),
                    op: n.op.clone(),
                    inputs: n
                        .inputs
                        .iter()
                        .map(|i| (!i.is_empty()).then(|| slots.of(i)))
                        .collect(),
                    outputs: n
                        .outputs
                        .iter()
                        .map(|o| (!o.is_empty()).then(|| slots.of(o)))
                        .collect(),
                }
            }
        });
    }
    Ok(steps)
}

/// Per step, whether it is an interpreter view (Reshape, Flatten, Squeeze, Unsqueeze,
/// Identity) that may take its input's buffer: the input is computed by an earlier step (not
/// a constant or a program input), is not a program output, and no later step reads it.
fn view_moves(steps: &[Step], borrowed: &[Borrowed], output_slots: &[usize]) -> Vec<bool> {
    let mut last_read = vec![None; borrowed.len()];
    for (i, step) in steps.iter().enumerate() {
        let mut read = |s: usize| last_read[s] = Some(i);
        match step {
            Step::Interp { inputs, .. } => inputs.iter().flatten().for_each(|&s| read(s)),
            Step::Quantize { slot, .. } => read(*slot),
            Step::Dynamic { input, .. } => read(*input),
            Step::Attention { fused, .. } => fused.reads().for_each(read),
            Step::ViewShape(v) => v.reads().for_each(read),
            Step::Kernel { .. } | Step::Dequantize { .. } | Step::ResizeExit { .. } => {}
        }
    }
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| match step {
            Step::Interp {
                op: Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze | Op::Identity,
                inputs,
                outputs,
                ..
            } => match (inputs.first(), outputs.as_slice()) {
                (Some(Some(src)), [Some(_)]) => {
                    last_read[*src] == Some(i)
                        && borrowed[*src] == Borrowed::None
                        && !output_slots.contains(src)
                        && inputs[1..].iter().all(|s| *s != Some(*src))
                }
                _ => false,
            },
            _ => false,
        })
        .collect()
}

/// The int8 arena of one call, addressed by value (the memory plan's offsets).
struct ArenaRegions<'a> {
    base: *mut i8,
    len: usize,
    offsets: &'a [usize],
    values: &'a [ValueSpec],
}

impl ArenaRegions<'_> {
    /// The start and length of value `v`'s region.
    fn region(&self, v: usize) -> (*mut i8, usize) {
        let len = self.values[v].numel();
        debug_assert!(self.offsets[v] + len <= self.len);
        // SAFETY: the memory plan places every value inside the arena.
        (unsafe { self.base.add(self.offsets[v]) }, len)
    }
}

/// A kernel step to build: its spec, prepacked weights and unpacked weights in place.
type KernelJob<'a> = (
    &'a crate::program::KernelSpec,
    Option<Vec<PackedBytes>>,
    Option<&'a [i8]>,
);

/// Packs every kernel step of `spec` (in step order), spreading the work over up to
/// `threads` scoped threads: packing dominates program load time. `prepacked[step]` holds
/// weights packed ahead of time, `unpacked[step]` the int8 weights `spec` leaves empty (see
/// [`KernelStep::build_with`]).
fn build_kernels(
    isa: Isa,
    spec: &ProgramSpec,
    threads: usize,
    mut prepacked: Vec<Option<Vec<PackedBytes>>>,
    unpacked: &[Option<&[i8]>],
) -> Result<Vec<KernelStep>> {
    let kernels: Vec<KernelJob> = spec
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            StepSpec::Kernel { kernel, .. } => Some((
                kernel,
                prepacked.get_mut(i).and_then(Option::take),
                unpacked.get(i).copied().flatten(),
            )),
            _ => None,
        })
        .collect();
    if let Some(step) = prepacked.iter().position(Option::is_some) {
        return Err(Error::CorruptFile(format!(
            "packed weights for step {step}, which is not a kernel step"
        )));
    }
    let workers = threads.clamp(1, 8).min(kernels.len().max(1));
    let build = |(k, packed, weights): &KernelJob| {
        KernelStep::build_with(isa, k, &spec.values, packed.clone(), *weights)
    };
    if workers == 1 {
        return kernels.iter().map(build).collect();
    }
    // Interleaved assignment balances big and small layers across workers; the caller is
    // worker 0.
    let share = |w: usize| -> Vec<(usize, Result<KernelStep>)> {
        (w..kernels.len())
            .step_by(workers)
            .map(|i| (i, build(&kernels[i])))
            .collect()
    };
    let results: Vec<Vec<(usize, Result<KernelStep>)>> = std::thread::scope(|scope| {
        let share = &share;
        let handles: Vec<_> = (1..workers).map(|w| scope.spawn(move || share(w))).collect();
        let mut results = vec![share(0)];
        results.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        );
        results
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
            Step::Quantize { value, .. }
            | Step::Dequantize { value, .. }
            | Step::ResizeExit { value, .. } => touch(*value, i),
            Step::Interp { .. } | Step::Dynamic { .. } | Step::Attention { .. } | Step::ViewShape(_) => {}
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

/// Bytes read and written below which a step without weights runs on the calling thread:
/// waking the pool costs about as much as moving that much memory.
const INLINE_BYTES: usize = 64 * 1024;

/// The f32 output of a MatMul of `ad` × `bd` in `out`, kept when it has that shape, else made.
fn matmul_output<'a>(out: &'a mut Option<Tensor>, ad: &[usize], bd: &[usize]) -> Result<&'a mut [f32]> {
    Tensor::reuse_slot(
        out,
        DType::F32,
        |d| crate::interp::kernels::is_matmul_shape(ad, bd, d),
        || crate::ir::shapes::matmul_shape(ad, bd),
    )?
    .as_f32_mut()
}

/// Writes units `range` of an output into `part` (their elements only); see
/// `Program::split_f32`.
type RangeWriter<'a> = dyn Fn(std::ops::Range<usize>, &mut [f32]) -> Result<()> + Sync + 'a;

/// Fewest rows per task of a parallel interpreted MatMul (a GEMM's row tile is 8 to 16).
const PARALLEL_MATMUL_ROWS: usize = 16;
/// Multiply-adds below which an interpreted MatMul runs on the calling thread.
const PARALLEL_MATMUL_MACS: usize = 1 << 20;
/// Elements below which an interpreted point-wise operator or Softmax runs on the calling
/// thread.
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// Pixels (NHWC) or elements (row-major) per unit of parallel quantization work.
const QUANT_BLOCK: usize = 256;
const QUANT_FLAT_BLOCK: usize = 4096;

/// Number of independent work units of quantizing into `v`.
fn quantize_units(v: &ValueSpec) -> usize {
    if v.is_nhwc() {
        v.dims[0] * (v.dims[2] * v.dims[3]).div_ceil(QUANT_BLOCK)
    } else {
        v.numel().div_ceil(QUANT_FLAT_BLOCK)
    }
}

/// Records a step's time when profiling.
fn record_step_time(times: &mut Option<&mut Vec<Duration>>, start: Option<Instant>) {
    if let (Some(t), Some(start)) = (times.as_mut(), start) {
        t.push(start.elapsed());
    }
}

/// Copies an int8 (or uint8) program input, already quantized with the value's qparams,
/// into the value's storage (NHWC for rank 4; uint8 stored as `u - 128`).
fn copy_quantized_input(t: &Tensor, v: &ValueSpec, dst: &mut [i8]) -> Result<()> {
    // Signed values are stored as they are, unsigned ones as `u - 128` (the carrier).
    let carrier = Carrier::new(v.unsigned);
    let bytes: &[u8] = match (t.dtype(), v.unsigned) {
        (DType::I8, false) => {
            let q = t.as_i8()?;
            // SAFETY: i8 and u8 have the same size and alignment; this only reinterprets bytes.
            unsafe { std::slice::from_raw_parts(q.as_ptr().cast::<u8>(), q.len()) }
        }
        (DType::U8, true) => t.as_u8()?,
        (d, _) => {
            return Err(Error::DtypeMismatch(format!(
                "`{}` is quantized as {}, got {d}",
                v.name,
                if v.unsigned { "uint8" } else { "int8" }
            )))
        }
    };
    if t.dims() != v.dims.as_slice() || dst.len() != bytes.len() {
        return Err(Error::ShapeMismatch(format!(
            "`{}` has shape {:?}, the program was compiled for {:?}",
            v.name,
            t.dims(),
            v.dims
        )));
    }
    let store = |b: u8| carrier.store(b);
    if v.is_nhwc() {
        let (c, hw) = (v.dims[1], v.dims[2] * v.dims[3]);
        for (src, out) in bytes.chunks_exact(c * hw).zip(dst.chunks_exact_mut(c * hw)) {
            for (ch, plane) in src.chunks_exact(hw).enumerate() {
                for (p, &b) in plane.iter().enumerate() {
                    out[p * c + ch] = store(b);
                }
            }
        }
    } else {
        for (d, &b) in dst.iter_mut().zip(bytes) {
            *d = store(b);
        }
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
/// [`check_quantize_source`]) into a value's storage (NHWC for rank 4), with the rows of the
/// selected ISA ([`Boundary`]).
///
/// # Safety
/// Concurrent calls on the same `out` must use disjoint unit ranges.
unsafe fn quantize_into(
    t: &Tensor,
    v: &ValueSpec,
    out: &SharedOutput,
    units: std::ops::Range<usize>,
) -> Result<()> {
    let x = t.as_f32()?;
    let rows = Boundary::selected()?;
    let dst = out.as_ptr();
    if v.is_nhwc() {
        let (c, hw) = (v.dims[1], v.dims[2] * v.dims[3]);
        let blocks = hw.div_ceil(QUANT_BLOCK);
        for unit in units {
            let (n, p0) = (unit / blocks, (unit % blocks) * QUANT_BLOCK);
            let len = QUANT_BLOCK.min(hw - p0);
            // SAFETY: pixels p0..p0 + len of image n are inside the value (checked by the
            // caller) and belong to this unit only.
            let pixels = unsafe { std::slice::from_raw_parts_mut(dst.add((n * hw + p0) * c), len * c) };
            rows.quantize_nchw_pixels(&x[n * c * hw..][..c * hw], c, hw, p0..p0 + len, v.q, pixels)?;
        }
    } else {
        for unit in units {
            let start = unit * QUANT_FLAT_BLOCK;
            let end = (start + QUANT_FLAT_BLOCK).min(x.len());
            // SAFETY: elements start..end are inside the value and belong to this unit only.
            let part = unsafe { std::slice::from_raw_parts_mut(dst.add(start), end - start) };
            rows.quantize(&x[start..end], v.q, part)?;
        }
    }
    Ok(())
}

/// A value back in logical layout, dequantized to `f32` or as int8 (uint8 for unsigned
/// values), written into the tensor in `slot` (kept when it has that type and shape).
fn dequantize_into(src: &[i8], v: &ValueSpec, int8: bool, slot: &mut Option<Tensor>) -> Result<()> {
    let dtype = match (int8, v.unsigned) {
        (false, _) => DType::F32,
        (true, true) => DType::U8,
        (true, false) => DType::I8,
    };
    let t = Tensor::reuse_slot(slot, dtype, |d| d == v.dims.as_slice(), || Ok(v.dims.clone()))?;
    if src.len() != t.numel() {
        return Err(Error::Internal(format!(
            "`{}` has {} elements in the arena, {} in its shape",
            v.name,
            src.len(),
            t.numel()
        )));
    }
    let params = v.q;
    match dtype {
        DType::F32 => {
            let (rows, out) = (Boundary::selected()?, t.as_f32_mut()?);
            match v.dims[..] {
                [n, c, h, w] if v.is_nhwc() => rows.dequantize_nhwc(src, [n, c, h, w], params, out)?,
                _ => rows.dequantize(src, params, out)?,
            }
        }
        DType::U8 => to_logical(src, v, t.as_u8_mut()?, |q| Carrier::Uint8.load(q)),
        _ => to_logical(src, v, t.as_i8_mut()?, |q| q),
    }
    Ok(())
}

/// Writes `f` of every stored element of `v` (NHWC for rank 4) to `dst` in logical layout.
fn to_logical<T>(src: &[i8], v: &ValueSpec, dst: &mut [T], f: impl Fn(i8) -> T) {
    if v.is_nhwc() {
        // Pixels go in blocks whose source bytes stay in L1 while each channel's run of the
        // block is written contiguously (a per-pixel loop writes to `c` far-apart planes).
        const PIXEL_BLOCK: usize = 256;
        let (c, hw) = (v.dims[1], v.dims[2] * v.dims[3]);
        for n in 0..v.dims[0] {
            let (s, o) = (&src[n * c * hw..][..c * hw], &mut dst[n * c * hw..][..c * hw]);
            for p0 in (0..hw).step_by(PIXEL_BLOCK) {
                let block = p0..hw.min(p0 + PIXEL_BLOCK);
                for ch in 0..c {
                    let row = &mut o[ch * hw..][block.clone()];
                    for (d, p) in row.iter_mut().zip(block.clone()) {
                        *d = f(s[p * c + ch]);
                    }
                }
            }
        }
    } else {
        for (d, &q) in dst.iter_mut().zip(src) {
            *d = f(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::packed;
    use crate::format::program_file;
    use crate::ir::Dim;
    use crate::kernels::{OutputRange, QuantParams};
    use crate::program::{ConvSpec, FullyConnectedSpec, GlobalAvgPoolSpec, KernelSpec, ReshapeSpec, Window};
    use crate::qscheme::QWeights;

    fn value(name: &str, dims: &[usize], scale: f32, zero_point: i32) -> ValueSpec {
        ValueSpec {
            name: name.into(),
            dims: dims.to_vec(),
            q: QuantParams { scale, zero_point },
            unsigned: false,
        }
    }

    fn weights(len: usize, seed: i32) -> Vec<i8> {
        (0..len as i32)
            .map(|i| ((i * 37 + seed * 11) % 255 - 127) as i8)
            .collect()
    }

    fn window(k: usize, pad: usize) -> Window {
        Window {
            kernel: (k, k),
            stride: (1, 1),
            dilation: (1, 1),
            pads: (pad, pad, pad, pad),
        }
    }

    /// Input 1×8×5×5 → grouped 3×3 conv (2 groups, 8 → 12) → depthwise 3×3 → global average
    /// pool → reshape → fully connected 12 → 10. Steps: 0 quantize, 1 conv, 2 dwconv,
    /// 3 pool, 4 reshape, 5 fully connected, 6 dequantize.
    fn small_spec() -> ProgramSpec {
        let kernel = |kernel| StepSpec::Kernel {
            partition: 0,
            node: "n".into(),
            kernel,
        };
        let io = |name: &str, dims: &[usize]| TensorInfo {
            name: name.into(),
            dtype: DType::F32,
            shape: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
        };
        ProgramSpec {
            inputs: vec![io("x", &[1, 8, 5, 5])],
            outputs: vec![io("y", &[1, 10])],
            values: vec![
                value("x", &[1, 8, 5, 5], 0.05, 3),
                value("c", &[1, 12, 5, 5], 0.1, -4),
                value("d", &[1, 12, 5, 5], 0.1, 2),
                value("p", &[1, 12, 1, 1], 0.08, 0),
                value("r", &[1, 12], 0.08, 0),
                value("y", &[1, 10], 0.2, 1),
            ],
            steps: vec![
                StepSpec::Quantize {
                    tensor: "x".into(),
                    value: 0,
                },
                kernel(KernelSpec::Conv(ConvSpec {
                    input: 0,
                    output: 1,
                    window: window(3, 1),
                    groups: 2,
                    depthwise: false,
                    weights: QWeights::new(
                        weights(12 * 9 * 4, 1),
                        (0..12).map(|c| 1e-3 * (c + 1) as f32).collect(),
                    ),
                    bias: (0..12).map(|c| c * 10 - 60).collect(),
                    range: OutputRange::FULL,
                })),
                kernel(KernelSpec::Conv(ConvSpec {
                    input: 1,
                    output: 2,
                    window: window(3, 1),
                    groups: 12,
                    depthwise: true,
                    weights: QWeights::new(weights(9 * 12, 2), vec![4e-3]),
                    bias: Vec::new(),
                    range: OutputRange::relu(2),
                })),
                kernel(KernelSpec::GlobalAvgPool(GlobalAvgPoolSpec {
                    input: 2,
                    output: 3,
                    range: OutputRange::FULL,
                })),
                kernel(KernelSpec::Reshape(ReshapeSpec { input: 3, output: 4 })),
                kernel(KernelSpec::FullyConnected(FullyConnectedSpec {
                    input: 4,
                    output: 5,
                    n: 10,
                    k: 12,
                    weights: QWeights::new(weights(120, 3), vec![5e-3; 10]),
                    bias: (0..10).map(|c| 40 - c * 9).collect(),
                    range: OutputRange::FULL,
                })),
                StepSpec::Dequantize {
                    value: 5,
                    tensor: "y".into(),
                    int8: true,
                },
            ],
            fallback: Default::default(),
            report: String::new(),
            report_data: None,
        }
    }

    fn input() -> Tensor {
        Tensor::from_f32(
            vec![1, 8, 5, 5],
            (0..200).map(|i| ((i * 29) % 97) as f32 * 0.07 - 3.0).collect(),
        )
        .unwrap()
    }

    fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The file bytes of `small_spec` with a packed section made by `make` (or none).
    fn file(packed: Option<Vec<u8>>) -> ProgramBytes {
        let bytes = program_file::to_bytes_with_packed(&small_spec(), packed.as_deref()).unwrap();
        ProgramBytes::copy_from(&bytes).unwrap()
    }

    /// The packed blobs of `small_spec` for `isa`, as `(step, part, bytes)`.
    fn blobs(isa: Isa) -> Vec<(usize, usize, Vec<u8>)> {
        let spec = small_spec();
        let mut out = Vec::new();
        for (step, s) in spec.steps.iter().enumerate() {
            if let StepSpec::Kernel { kernel, .. } = s {
                let k = KernelStep::build(isa, kernel, &spec.values).unwrap();
                for (part, data) in k.packed_parts().into_iter().enumerate() {
                    out.push((step, part, data.to_vec()));
                }
            }
        }
        out
    }

    fn section(isa: Isa, blobs: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
        let b: Vec<PackedBlob> = blobs
            .iter()
            .map(|(step, part, data)| PackedBlob {
                step: *step,
                part: *part,
                data,
            })
            .collect();
        packed::encode(isa, crate::kernels::table::gemm_kernel(isa).name, &b).unwrap()
    }

    fn load(bytes: ProgramBytes, isa: Isa) -> Result<Program> {
        Program::load_for(bytes, ProgramOptions { threads: 1 }, isa)
    }

    #[test]
    fn packed_weights_are_used_in_place_by_matching_kernels_only() {
        let x = input();
        let reference = Program::build(
            small_spec(),
            ProgramOptions { threads: 1 },
            Isa::Scalar,
            Vec::new(),
            &[],
            None,
        )
        .unwrap()
        .execute(std::slice::from_ref(&x))
        .unwrap();
        let mut distinct = reference[0].to_i64_vec().unwrap();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() >= 5,
            "the reference output is nearly constant: {distinct:?}"
        );
        for saved in supported() {
            let packed = Program::build(
                small_spec(),
                ProgramOptions { threads: 1 },
                saved,
                Vec::new(),
                &[],
                None,
            )
            .unwrap()
            .packed_section();
            assert!(packed.is_some(), "{saved}");
            for running in supported() {
                let p = load(file(packed.clone()), running).unwrap();
                // Two GEMM steps (the grouped convolution and the fully connected layer).
                let expected = if saved == running { 2 } else { 0 };
                assert_eq!(
                    p.steps_with_weights_in_place(),
                    expected,
                    "saved {saved}, running {running}"
                );
                let y = p.execute(std::slice::from_ref(&x)).unwrap();
                assert_eq!(y, reference, "saved {saved}, running {running}");
                assert_eq!(p.spec(), &small_spec());
            }
        }
    }

    #[test]
    fn saved_files_load_through_a_memory_map_with_weights_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.xq");
        Program::new(small_spec(), ProgramOptions { threads: 1 })
            .unwrap()
            .save(&path)
            .unwrap();
        let x = input();
        let expected = Program::new(small_spec(), ProgramOptions { threads: 1 })
            .unwrap()
            .execute(std::slice::from_ref(&x))
            .unwrap();
        let p = Program::load_file(&path, ProgramOptions { threads: 2 }).unwrap();
        assert_eq!(p.steps_with_weights_in_place(), 2);
        assert_eq!(p.execute(std::slice::from_ref(&x)).unwrap(), expected);
        assert_eq!(p.spec(), &small_spec());
        let missing = Program::load_file(dir.path().join("missing.xq"), ProgramOptions::default());
        assert!(matches!(missing, Err(Error::Io { .. })), "{:?}", missing.err());
    }

    #[test]
    fn files_without_a_packed_section_still_load() {
        for isa in supported() {
            let p = load(file(None), isa).unwrap();
            assert_eq!(p.steps_with_weights_in_place(), 0);
            assert_eq!(p.spec(), &small_spec());
        }
    }

    #[test]
    fn saved_files_carry_the_packed_section_of_the_selected_isa() {
        let isa = crate::kernels::table::selected_isa().unwrap();
        let bytes = Program::new(small_spec(), ProgramOptions { threads: 1 })
            .unwrap()
            .to_bytes()
            .unwrap();
        let view = program_file::from_bytes_for(&bytes, isa).unwrap();
        // The int8 weights of the convolutions and the fully connected layer (steps 1, 2, 5)
        // stay in the file; the rest is decoded.
        let mut skeleton = small_spec();
        let mut in_file = vec![None; skeleton.steps.len()];
        for step in [1, 2, 5] {
            if let StepSpec::Kernel {
                kernel:
                    KernelSpec::Conv(ConvSpec { weights, .. })
                    | KernelSpec::FullyConnected(FullyConnectedSpec { weights, .. }),
                ..
            } = &mut skeleton.steps[step]
            {
                in_file[step] = Some(std::mem::take(&mut weights.values));
            }
        }
        assert_eq!(view.spec, skeleton);
        assert_eq!(
            view.weights
                .iter()
                .map(|w| w.map(<[i8]>::to_vec))
                .collect::<Vec<_>>(),
            in_file
        );
        let packed = view.packed.unwrap();
        assert_eq!(packed.isa, isa);
        let got: Vec<(usize, usize, Vec<u8>)> = packed
            .blobs()
            .iter()
            .map(|b| (b.step, b.part, b.data.to_vec()))
            .collect();
        assert_eq!(got, blobs(isa));
        let p = Program::load_bytes(
            ProgramBytes::copy_from(&bytes).unwrap(),
            ProgramOptions { threads: 2 },
        )
        .unwrap();
        assert_eq!(p.steps_with_weights_in_place(), 2);
    }

    fn corrupt_message(blobs: &[(usize, usize, Vec<u8>)], isa: Isa) -> String {
        match load(file(Some(section(isa, blobs))), isa) {
            Err(Error::CorruptFile(m)) => m,
            Err(e) => panic!("expected CorruptFile, got {e}"),
            Ok(_) => panic!("a damaged packed section loaded"),
        }
    }

    #[test]
    fn damaged_packed_weights_are_corrupt_file_errors() {
        for isa in supported() {
            let good = blobs(isa);
            assert_eq!(
                good.iter().map(|b| (b.0, b.1)).collect::<Vec<_>>(),
                [(1, 0), (1, 1), (5, 0)]
            );
            assert_eq!(
                load(file(Some(section(isa, &good))), isa)
                    .unwrap()
                    .steps_with_weights_in_place(),
                2
            );

            let mut short = good.clone();
            let len = short[2].2.len();
            short[2].2.truncate(len - 64);
            assert!(corrupt_message(&short, isa).contains("bytes, expected"), "{isa}");

            let mut long = good.clone();
            long[0].2.extend([0u8; 64]);
            assert!(corrupt_message(&long, isa).contains("bytes, expected"), "{isa}");

            let one_group = vec![good[0].clone(), good[2].clone()];
            assert!(
                corrupt_message(&one_group, isa).contains("packed groups"),
                "{isa}"
            );

            let gap = vec![good[0].clone(), (1, 2, good[1].2.clone()), good[2].clone()];
            assert!(corrupt_message(&gap, isa).contains("skip to part"), "{isa}");

            let mut depthwise = good.clone();
            depthwise.insert(2, (2, 0, vec![0u8; 64]));
            assert!(corrupt_message(&depthwise, isa).contains("dwconv"), "{isa}");

            let mut quantize = good.clone();
            quantize.insert(0, (0, 0, vec![0u8; 64]));
            assert!(
                corrupt_message(&quantize, isa).contains("not a kernel step"),
                "{isa}"
            );

            let mut beyond = good.clone();
            beyond.push((7, 0, vec![0u8; 64]));
            assert!(corrupt_message(&beyond, isa).contains("step 7 of 7"), "{isa}");

            let mut nan = good.clone();
            let geo = crate::kernels::gemm::pack::PanelGeometry::new(
                crate::kernels::table::gemm_kernel(isa),
                10,
                1,
                12,
            )
            .unwrap();
            let at = geo.multiplier_offset();
            nan[2].2[at..at + 4].copy_from_slice(&f32::NAN.to_ne_bytes());
            assert!(corrupt_message(&nan, isa).contains("packed multipliers"), "{isa}");
        }
    }

    /// Rewrites a file's checksum (container header bytes 24..28) so that damage must be
    /// caught by the structural checks behind it.
    fn reseal(b: &mut [u8]) {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..24]);
        h.update(&b[28..]);
        let crc = h.finalize();
        b[24..28].copy_from_slice(&crc.to_le_bytes());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Damage behind a valid checksum (anywhere, or inside the packed section) gives an
        /// error or a program that runs; never a panic.
        #[test]
        fn resealed_damage_never_panics(
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
            in_packed in proptest::prelude::any::<bool>(),
        ) {
            let isa = supported()[supported().len() - 1];
            let mut bytes =
                program_file::to_bytes_with_packed(&small_spec(), Some(&section(isa, &blobs(isa)))).unwrap();
            let packed = crate::format::ContainerReader::parse(&bytes)
                .unwrap()
                .sections()
                .iter()
                .find(|s| s.kind == crate::format::packed::KIND_PACKED)
                .map(|s| s.data.as_ptr() as usize - bytes.as_ptr() as usize..s.data.as_ptr() as usize - bytes.as_ptr() as usize + s.data.len())
                .unwrap();
            for (at, v) in flips {
                let at = if in_packed { packed.start + at % packed.len() } else { at % bytes.len() };
                bytes[at] = v;
            }
            reseal(&mut bytes);
            if let Ok(p) = load(ProgramBytes::copy_from(&bytes).unwrap(), isa) {
                let _ = p.execute(std::slice::from_ref(&input()));
            }
        }
    }

    #[test]
    fn every_truncation_of_a_file_with_packed_weights_is_rejected() {
        let isa = supported()[0];
        let bytes =
            program_file::to_bytes_with_packed(&small_spec(), Some(&section(isa, &blobs(isa)))).unwrap();
        for len in (0..bytes.len()).step_by(7) {
            let b = ProgramBytes::copy_from(&bytes[..len]).unwrap();
            assert!(matches!(load(b, isa), Err(Error::CorruptFile(_))), "len {len}");
        }
    }
}
