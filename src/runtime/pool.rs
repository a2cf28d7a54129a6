//! A small thread pool for operator-level parallelism: `run(n, f)` calls `f(0..n)` spread over
//! the caller and the pool's workers and returns when all calls are done.
//!
//! Inference runs many short operators back to back (MobileNetV2: ~65 in about a
//! millisecond), so hand-off latency matters more than anything: workers spin on a
//! generation counter for a while after each job before they park, the caller takes tasks
//! too, and a pool of one thread never hands anything off. Tasks are claimed from a shared
//! atomic counter, so uneven tasks balance themselves.
//!
//! The caller never waits for a worker that has not started on the job: a worker must *join*
//! a job before it claims tasks, and once the caller has run out of tasks it closes the job,
//! so a worker that was descheduled (another process on the same core) finds the job closed
//! and skips it. The caller waits only for workers inside a task, and yields its core while
//! it waits, so an oversubscribed machine slows a job down gracefully instead of stalling it
//! for a scheduler time slice.
//!
//! If the pool is already running a job for another thread (two executions of one program at
//! once), the second caller runs its tasks inline instead of waiting.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(200);
/// Spins the caller makes while waiting for a worker's task before yielding its core.
const SPINS_BEFORE_YIELD: u32 = 256;
/// `Shared::job_state` bit set while no worker may join the current job.
const JOB_CLOSED: usize = 1 << (usize::BITS - 1);

/// The job being run: a borrowed closure whose lifetime is erased while workers use it.
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync`, and `ThreadPool::run` keeps it alive until no worker is
// inside the job (it closes the job and waits for the joined count to reach zero).
unsafe impl Send for JobPtr {}

struct Shared {
    generation: AtomicU64,
    job: Mutex<Option<JobPtr>>,
    next_task: AtomicUsize,
    n_tasks: AtomicUsize,
    /// Number of workers inside the current job, plus [`JOB_CLOSED`] once it is closed.
    job_state: AtomicUsize,
    shutdown: AtomicBool,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

impl Shared {
    /// Claims and runs tasks until none are left; catches a panicking task and records it.
    fn run_tasks(&self, job: &(dyn Fn(usize) + Sync)) {
        let n = self.n_tasks.load(Ordering::Acquire);
        loop {
            let i = self.next_task.fetch_add(1, Ordering::AcqRel);
            if i >= n {
                return;
            }
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(i))) {
                // Skip the remaining tasks and keep the first panic for the caller.
                self.next_task.store(n, Ordering::Release);
                self.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(payload);
                return;
            }
        }
    }
}

/// A pool of `threads - 1` worker threads plus the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    dispatch: Mutex<()>,
}

impl ThreadPool {
    /// A pool that runs jobs on `threads` threads in total (the caller included); `threads`
    /// of 0 or 1 means no worker threads at all.
    pub fn new(threads: usize) -> crate::Result<Self> {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: Mutex::new(None),
            next_task: AtomicUsize::new(0),
            n_tasks: AtomicUsize::new(0),
            job_state: AtomicUsize::new(JOB_CLOSED),
            shutdown: AtomicBool::new(false),
            panic: Mutex::new(None),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::new(),
            dispatch: Mutex::new(()),
        };
        // Workers report in before `new` returns, so that thread start-up (stack, thread
        // name) happens at construction, not during the first executions.
        let started = Arc::new(AtomicUsize::new(0));
        for index in 1..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let started = Arc::clone(&started);
            let handle = std::thread::Builder::new()
                .name(format!("xq-worker-{index}"))
                .spawn(move || {
                    started.fetch_add(1, Ordering::AcqRel);
                    worker_loop(&shared)
                })
                .map_err(|e| crate::Error::Internal(format!("cannot start worker thread: {e}")))?;
            pool.workers.push(handle);
        }
        while started.load(Ordering::Acquire) < pool.workers.len() {
            std::thread::yield_now();
        }
        Ok(pool)
    }

    /// Total threads a job may use (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `task(i)` for every `i` in `0..n_tasks`, in parallel, and returns when all are
    /// done. A panic in a task is re-raised on the caller after the others have stopped.
    pub fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        let guard = match self.dispatch.try_lock() {
            Ok(guard) if !self.workers.is_empty() && n_tasks > 1 => guard,
            _ => {
                (0..n_tasks).for_each(task);
                return;
            }
        };
        let shared = &*self.shared;
        // SAFETY: lifetime erasure only; the pointer is only dereferenced by workers that joined
        // the job (see `Shared::job_state`); this function does not return (nor unwind: no
        // panicking code runs in between) before the job is closed and no worker is inside
        // it, so `task` outlives every use.
        let erased: JobPtr = JobPtr(unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync + 'static)>(
                task as *const _,
            )
        });
        *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(erased);
        shared.n_tasks.store(n_tasks, Ordering::Release);
        shared.next_task.store(0, Ordering::Release);
        shared.job_state.store(0, Ordering::Release);
        shared.generation.fetch_add(1, Ordering::AcqRel);
        drop(shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner()));
        shared.wake.notify_all();

        shared.run_tasks(task);
        shared.job_state.fetch_or(JOB_CLOSED, Ordering::AcqRel);
        let mut spins = 0u32;
        while shared.job_state.load(Ordering::Acquire) != JOB_CLOSED {
            spins += 1;
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let panic = shared.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(guard);
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }
}

fn worker_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let spin_start = Instant::now();
        let mut spins = 0u32;
        while shared.generation.load(Ordering::Acquire) == seen && !shared.shutdown.load(Ordering::Acquire) {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) && spin_start.elapsed() > SPIN_BEFORE_PARK {
                let mut lock = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                while shared.generation.load(Ordering::Acquire) == seen
                    && !shared.shutdown.load(Ordering::Acquire)
                {
                    lock = shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = shared.generation.load(Ordering::Acquire);
        if !join(&shared.job_state) {
            continue;
        }
        let job = *shared.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(JobPtr(ptr)) = job {
            // SAFETY: this worker joined an open job, so `run` keeps the closure alive until
            // the `fetch_sub` below (see `JobPtr`).
            shared.run_tasks(unsafe { &*ptr });
        }
        shared.job_state.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Enters the current job unless it is closed; returns whether it did.
fn join(job_state: &AtomicUsize) -> bool {
    let mut state = job_state.load(Ordering::Acquire);
    loop {
        if state & JOB_CLOSED != 0 {
            return false;
        }
        match job_state.compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => state = now,
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        drop(self.shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner()));
        self.shared.wake.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_each_task_once(pool: &ThreadPool, n: usize) {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        pool.run(n, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [0, 1, 2, 4] {
            let pool = ThreadPool::new(threads).unwrap();
            assert_eq!(pool.threads(), threads.max(1));
            for n in [0, 1, 2, 3, 17, 1000] {
                counts_each_task_once(&pool, n);
            }
        }
    }

    #[test]
    fn many_short_jobs_back_to_back() {
        let pool = ThreadPool::new(3).unwrap();
        let total = AtomicUsize::new(0);
        for _ in 0..2000 {
            pool.run(5, &|i| {
                total.fetch_add(i, Ordering::Relaxed);
            });
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 10);
    }

    #[test]
    fn workers_wake_after_parking() {
        let pool = ThreadPool::new(2).unwrap();
        counts_each_task_once(&pool, 8);
        std::thread::sleep(SPIN_BEFORE_PARK * 5);
        counts_each_task_once(&pool, 8);
    }

    #[test]
    fn concurrent_callers_share_one_pool() {
        let pool = ThreadPool::new(2).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        counts_each_task_once(&pool, 7);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(64, &|i| {
                if i == 13 {
                    panic!("task 13 failed");
                }
            })
        }));
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task 13 failed"));
        counts_each_task_once(&pool, 50);
    }
}
