//! The compiled-program contract: the plain data a lowered program is made of, its encoding
//! in a program file, and the kernel steps that contract builds.
//!
//! One writer, two readers:
//! - the delegate's lowering (`delegate::lower`) writes a [`ProgramSpec`];
//! - the runtime (`runtime::Program`) reads it, builds each kernel step for the selected ISA
//!   ([`KernelSpec::build`]) and executes the steps;
//! - the program file (`format::program_file`) frames its encoding ([`codec`]) in a section.
//!
//! None of the three depends on another through this contract, and the contract depends on
//! nothing of theirs: only on the graph IR (tensor infos, the interpreter's share of the
//! graph), on the kernels (parameter types, and the kernel families a built step runs), on
//! `qscheme` (the constant weights, [`QWeights`](crate::qscheme::QWeights), of convolution,
//! fully connected and dynamic linear steps) and on the CPU's ISA list.
//!
//! [`steps`] holds one file per kernel step: its contract, its encoding, its build and its
//! run; the registry in [`steps`] is the only list of kinds and their encoding tags.
//!
//! What it fixes:
//! - **Values** ([`ValueSpec`]): the int8 tensors of the arena. Dimensions are logical
//!   (ONNX order); storage is NHWC for rank 4 and row-major in logical order for every other
//!   rank ([`ValueSpec::storage_index`]). A uint8 tensor `u` is carried as the int8 `u - 128`
//!   with its zero point shifted alike.
//! - **Steps** ([`StepSpec`], in execution order): int8 kernels ([`KernelSpec`], whose
//!   `input` / `output` fields index [`ProgramSpec::values`]), partition entries and exits
//!   (quantize / dequantize), dynamically quantized linear layers and interpreter nodes of
//!   [`ProgramSpec::fallback`]. Constants are unpacked: int8 weights in the kernel's logical
//!   layout (OHWI, HWC, `n × k`), one or per-channel `f32` scales, `int32` bias. Packing for
//!   an ISA is the reader's job.
//! - **Gather maps** ([`KernelSpec::Gather`], read from older files): logical output element
//!   → logical input element, or [`GATHER_FILL`]. Lowering writes byte moves as strided
//!   blocks over storage bytes instead ([`KernelSpec::Copy`]).
//! - **Broadcasting** ([`broadcast`]): how an ONNX broadcast of add / mul maps onto the
//!   elementwise kernel's strides given the storage layout; the partitioner asks it whether a
//!   broadcast can be delegated, the runtime builds the step from it.
//! - **Report** ([`report`]): the partitioning report as data, one record per compute node
//!   (its partition, or why it was not delegated), next to the text in [`ProgramSpec`].
//! - **Validity** ([`ProgramSpec::check_dataflow`]): every step reads only what exists when
//!   it runs.

pub mod broadcast;
pub mod codec;
pub mod report;
mod step;
pub mod steps;
mod value;

pub use report::{Reason, ReportData, ReportNode};
pub use step::{ProgramSpec, StepSpec};
pub use steps::avg_pool::AvgPoolSpec;
pub use steps::binary::{BinaryKind, BinarySpec};
pub use steps::concat::ConcatSpec;
pub use steps::conv::ConvSpec;
pub use steps::copy::CopySpec;
pub use steps::fully_connected::FullyConnectedSpec;
pub use steps::gather::{GatherSpec, GATHER_FILL};
pub use steps::global_avg_pool::GlobalAvgPoolSpec;
pub use steps::im2col::Im2colSpec;
pub use steps::max_pool::MaxPoolSpec;
pub use steps::reduce::ReduceSpec;
pub use steps::reshape::ReshapeSpec;
pub use steps::softmax::SoftmaxSpec;
pub use steps::{KernelSpec, Window};
pub use value::ValueSpec;
