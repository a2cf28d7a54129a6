//! Executing compiled programs: the executor ([`program`]: arena, memory plan, tiling over
//! the operator thread pool, boundary quantize / dequantize, dynamically quantized linear
//! layers and interpreter steps). The kernel steps it runs are built by their step files in
//! [`crate::program::steps`] and held by [`kernel_step::KernelStep`].

pub mod kernel_step;
pub mod memory_plan;
pub mod pool;
pub mod program;

pub use memory_plan::{plan as plan_memory, BufferUse, MemoryPlan};
pub use pool::ThreadPool;
pub use program::{Program, ProgramOptions};
