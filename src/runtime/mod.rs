//! Executing compiled programs: the thread pool now; the executor and activation arena as
//! the delegate is built.

pub mod pool;

pub use pool::ThreadPool;
