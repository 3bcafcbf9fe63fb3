//! A persistent thread pool behind the core's [`Parallel`] callback.
//!
//! `threads − 1` workers wait for a job; the calling thread works too. A job is a borrowed
//! `&dyn Fn(usize) + Sync` and a task count; tasks are claimed with an atomic counter, so each
//! task runs exactly once, and a thread that finishes early takes the next task.
//!
//! Decode issues about 150 jobs per token, each a few hundred microseconds, with a few
//! microseconds of serial work between them, so the hand-over is on the critical path:
//! - **No system call on the fast path.** Publishing a job is a store and a generation bump;
//!   finishing one is an atomic increment. The mutex/condvar pair is touched only when a thread
//!   has announced that it sleeps (a `SeqCst` handshake, below). The previous pool locked a
//!   mutex and called `futex_wake` twice per job whether anyone slept or not.
//! - **Waiting is spin, then yield, then park**, on wall-clock budgets: a pure spin
//!   ([`SPIN_PURE`]) covers the gaps between jobs of a token; then `yield_now` ([`SPIN_YIELD`])
//!   so a competing process on the same core still runs (pure spinning once made a 2-thread
//!   decode 5× slower under a competing process); then a condvar.
//!
//! Lost wake-ups are excluded by a Dekker-style handshake: a waiter increments `sleepers` and
//! then re-reads the condition, the waker changes the condition and then reads `sleepers`, all
//! `SeqCst`. Either the waiter sees the change, or the waker sees the sleeper and notifies under
//! the mutex, which the waiter holds until it is inside `Condvar::wait`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tern_runtime::par::Parallel;

type Task = dyn Fn(usize) + Sync;

/// Pure busy-wait budget (a `pause`/`yield` hint per check).
const SPIN_PURE: Duration = Duration::from_micros(50);
/// Then `yield_now` between checks for this long before parking.
const SPIN_YIELD: Duration = Duration::from_millis(2);

/// A value on a cache line of its own (the counters are written by different threads).
#[repr(align(128))]
struct Line<T>(T);

/// One thread's wait for `done()`: spin, yield, then park on `cv` after announcing itself in
/// `sleepers`. The thread that makes `done()` true must call [`Signal::notify`] afterwards.
struct Signal {
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Signal {
    fn new() -> Self {
        Self { sleepers: AtomicUsize::new(0), lock: Mutex::new(()), cv: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once `done()` is true.
    fn wait(&self, done: impl Fn() -> bool) {
        let t0 = Instant::now();
        let mut i = 0u32;
        while !done() {
            i = i.wrapping_add(1);
            // Reading the clock costs ~20 ns; every 64th check is enough.
            if i.is_multiple_of(64) {
                let dt = t0.elapsed();
                if dt >= SPIN_PURE + SPIN_YIELD {
                    break;
                }
                if dt >= SPIN_PURE {
                    std::thread::yield_now();
                    continue;
                }
            }
            std::hint::spin_loop();
        }
        if done() {
            return;
        }
        let mut g = self.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !done() {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the sleepers, if any (call after making their condition true with a `SeqCst`
    /// store or read-modify-write).
    fn notify(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = self.lock();
            self.cv.notify_all();
        }
    }
}

struct Shared {
    /// Bumped once per job, and once more to stop.
    generation: Line<AtomicU64>,
    /// The current job: written by `run` before the generation bump, read by workers after
    /// they observe it; `run` does not write it again before every worker has reported done.
    job: UnsafeCell<(*const Task, usize)>,
    stop: AtomicBool,
    /// Next task index to claim.
    next: Line<AtomicUsize>,
    /// Workers finished with the current job.
    done: Line<AtomicUsize>,
    /// Workers waiting for a job.
    work: Signal,
    /// The caller waiting for the workers.
    finished: Signal,
}

// SAFETY: `job` is the only non-`Sync` field. It is written only by `Pool::run` (serialised by
// `busy`) while no worker reads it — every worker has reported `done` for the previous job and
// does not read it again until the next generation is published with `SeqCst` — and read by
// workers only after observing that generation (happens-after the write). The pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only a borrowed `&Task` whose lifetime `run` guarantees.
unsafe impl Send for Shared {}

/// The pool. Dropping it stops the workers.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Serialises `run` calls (the core never nests them, but be safe).
    busy: Mutex<()>,
}

impl Pool {
    /// A pool that runs jobs on `threads` threads (the caller included).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let noop: &Task = &|_| {};
        let shared = Arc::new(Shared {
            generation: Line(AtomicU64::new(0)),
            job: UnsafeCell::new((noop as *const Task, 0)),
            stop: AtomicBool::new(false),
            next: Line(AtomicUsize::new(0)),
            done: Line(AtomicUsize::new(0)),
            work: Signal::new(),
            finished: Signal::new(),
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
        let i = s.next.0.fetch_add(1, Ordering::AcqRel);
        if i >= n {
            break;
        }
        task(i);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        s.work.wait(|| s.generation.0.load(Ordering::SeqCst) != seen);
        seen = s.generation.0.load(Ordering::SeqCst);
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: `run` wrote the job before publishing generation `seen` (observed above), and
        // does not write it again, nor return (ending the closure's borrow), until this worker
        // increments `done` below.
        let (task, n) = unsafe { *s.job.get() };
        // SAFETY: as above: the pointee is alive until `done` is incremented.
        let task_ref: &Task = unsafe { &*task };
        claim(s, task_ref, n);
        s.done.0.fetch_add(1, Ordering::SeqCst);
        s.finished.notify();
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
        s.next.0.store(0, Ordering::SeqCst);
        s.done.0.store(0, Ordering::SeqCst);
        // SAFETY: lifetime erasure only; workers dereference the pointer only between the
        // generation bump below and their `done` increment, and we wait for all of them before
        // returning.
        let erased: *const Task =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Task>(task) };
        // SAFETY: no worker reads `job` now: each has reported `done` for the previous job (or
        // there was none) and reads it again only after the bump below (see `Shared`).
        unsafe { *s.job.get() = (erased, n) };
        s.generation.0.fetch_add(1, Ordering::SeqCst);
        s.work.notify();
        claim(s, task, n);
        let workers = self.workers.len();
        s.finished.wait(|| s.done.0.load(Ordering::SeqCst) >= workers);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        s.generation.0.fetch_add(1, Ordering::SeqCst);
        s.work.notify();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Jobs after the workers have parked (past the spin and yield budgets) still run, and
    /// dropping a pool whose workers sleep returns.
    #[test]
    fn wakes_parked_workers() {
        let pool = Pool::new(3);
        let hits = AtomicU64::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN_PURE + SPIN_YIELD + Duration::from_millis(20));
            pool.run(8, &|_| {
                hits.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(hits.load(Ordering::Relaxed), 24);
        std::thread::sleep(SPIN_PURE + SPIN_YIELD + Duration::from_millis(50));
        assert_eq!(pool.shared.work.sleepers.load(Ordering::SeqCst), 3 - 1, "workers parked");
        drop(pool);
    }

    /// Jobs published while workers are between spinning, yielding and parking: a lost
    /// wake-up would hang this test.
    #[test]
    fn no_lost_wakeups_around_the_park_threshold() {
        let pool = Pool::new(3);
        let hits = AtomicU64::new(0);
        let budget = (SPIN_PURE + SPIN_YIELD).as_micros() as u64;
        for j in 0..120u64 {
            // 0 µs, then around the spin → yield and yield → park boundaries.
            let us = match j % 4 {
                0 => 0,
                1 => SPIN_PURE.as_micros() as u64 + j % 7,
                _ => budget - 60 + (j * 37) % 120,
            };
            std::thread::sleep(Duration::from_micros(us));
            pool.run(5, &|_| {
                hits.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(hits.load(Ordering::Relaxed), 600);
    }

    /// A job whose worker-side task takes long enough that the caller parks waiting for it.
    #[test]
    fn caller_parks_and_is_woken() {
        let pool = Pool::new(2);
        let started = [AtomicBool::new(false), AtomicBool::new(false)];
        let hits = AtomicU64::new(0);
        pool.run(2, &|i| {
            // Each thread takes one task: neither finishes before both have started.
            started[i].store(true, Ordering::SeqCst);
            while !started.iter().all(|s| s.load(Ordering::SeqCst)) {
                std::hint::spin_loop();
            }
            if std::thread::current().name().is_some_and(|n| n.starts_with("tern-worker")) {
                std::thread::sleep(SPIN_PURE + SPIN_YIELD + Duration::from_millis(30));
            }
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }
}
