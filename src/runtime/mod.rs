//! Executing compiled programs: the executor ([`program`]), its kernel steps, the operator
//! thread pool and the static memory planner.

pub mod kernel_step;
pub mod memory_plan;
pub mod pool;
pub mod program;

pub use memory_plan::{plan as plan_memory, BufferUse, MemoryPlan};
pub use pool::ThreadPool;
pub use program::{Program, ProgramOptions};
