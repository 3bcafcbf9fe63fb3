//! A persistent thread pool behind the core's [`Parallel`] callback.
//!
//! `threads − 1` workers wait for a job; the calling thread works too. A job is a borrowed
//! `&dyn Fn(usize) + Sync` and a task count; tasks are claimed with an atomic counter, so each
//! task runs exactly once. Workers spin briefly after a job (decode issues ~200 jobs per token,
//! and waking a parked thread costs more than the work of a small one), then park on a condvar.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tern_runtime::par::Parallel;

type Task = dyn Fn(usize) + Sync;

struct Job {
    /// The task, with its lifetime erased; valid until every worker has reported done.
    task: *const Task,
    n: usize,
}

// SAFETY: the pointee is `Sync` (shared by reference across threads is its contract), and `run`
// keeps it alive until all workers have finished with it (see `Pool::run`).
unsafe impl Send for Job {}

struct Shared {
    /// (generation, job) — a new generation means a new job.
    state: Mutex<(u64, Option<Job>, bool)>,
    wake: Condvar,
    generation: std::sync::atomic::AtomicU64,
    next: AtomicUsize,
    done: AtomicUsize,
    done_lock: Mutex<()>,
    done_cv: Condvar,
}

/// The pool. Dropping it stops the workers.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Serialises `run` calls (the core never nests them, but be safe).
    busy: Mutex<()>,
}

const SPIN: u32 = 20_000;
/// Busy-wait iterations before each spin also yields the CPU: with another process on the same
/// core (a Pi running other services), pure spinning starved the thread doing the work
/// (2-thread decode fell 5× under a competing process).
const PURE_SPIN: u32 = 512;

/// One step of a spin-wait: a pause hint first, then `yield_now` so a competing thread runs.
#[inline]
fn backoff(spins: u32) {
    if spins < PURE_SPIN {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl Pool {
    /// A pool that runs jobs on `threads` threads (the caller included).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new((0, None, false)),
            wake: Condvar::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
        });
        let workers = (1..threads)
            .map(|w| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("tern-worker-{w}"))
                    .spawn(move || worker(&s))
                    .expect("failed to spawn a worker thread")
            })
            .collect();
        Pool { shared, workers, threads, busy: Mutex::new(()) }
    }
}

fn claim(s: &Shared, task: &(dyn Fn(usize) + Sync + '_), n: usize) {
    loop {
        let i = s.next.fetch_add(1, Ordering::AcqRel);
        if i >= n {
            break;
        }
        task(i);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Spin for a new generation, then park.
        let mut spins = 0;
        while s.generation.load(Ordering::Acquire) == seen && spins < SPIN {
            backoff(spins);
            spins += 1;
        }
        let (task, n) = {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.0 == seen && !st.2 {
                st = s.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.2 {
                return;
            }
            seen = st.0;
            match &st.1 {
                Some(j) => (j.task, j.n),
                None => continue,
            }
        };
        // SAFETY: `Pool::run` published this pointer for generation `seen` and does not return
        // (so the borrowed closure stays alive) until this worker increments `done` below.
        let task_ref: &Task = unsafe { &*task };
        claim(s, task_ref, n);
        let _g = s.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        s.done.fetch_add(1, Ordering::AcqRel);
        s.done_cv.notify_one();
    }
}

impl Parallel for Pool {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 || n <= 1 {
            for i in 0..n {
                task(i);
            }
            return;
        }
        let _busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        s.next.store(0, Ordering::Release);
        s.done.store(0, Ordering::Release);
        // SAFETY: lifetime erasure only; the pointer is only dereferenced by workers between the
        // publication below and their `done` increment; we wait for all of them before returning.
        let erased: *const Task =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Task>(task) };
        {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            st.0 += 1;
            st.1 = Some(Job { task: erased, n });
            s.generation.store(st.0, Ordering::Release);
            s.wake.notify_all();
        }
        claim(s, task, n);
        let workers = self.workers.len();
        let mut spins = 0;
        while s.done.load(Ordering::Acquire) < workers && spins < SPIN * 4 {
            backoff(spins);
            spins += 1;
        }
        let mut g = s.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        while s.done.load(Ordering::Acquire) < workers {
            g = s.done_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        drop(g);
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = None;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.2 = true;
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 4] {
            let pool = Pool::new(threads);
            for n in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                for _ in 0..50 {
                    pool.run(n, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
            }
        }
    }
}
