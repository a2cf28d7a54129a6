//! Executing compiled programs: the operator thread pool and the static memory planner (the
//! executor and its activation arena build on them).

pub mod memory_plan;
pub mod pool;

pub use memory_plan::{plan as plan_memory, BufferUse, MemoryPlan};
pub use pool::ThreadPool;
