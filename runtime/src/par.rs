//! The core's parallel-for: a callback the host shim implements with a persistent thread pool
//! (bare metal: [`Serial`]). Work is split by output rows, so results never depend on the number
//! of threads (every row is computed by exactly one task, in the same order).

use core::sync::atomic::{AtomicU64, Ordering};

/// Runs tasks `0..n` possibly concurrently, returning when all are done.
pub trait Parallel: Sync {
    /// Threads that may run tasks at once (used to choose the number of tasks).
    fn threads(&self) -> usize;
    /// Runs `task(i)` for every `i < n`.
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync));
}

/// Runs everything on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn threads(&self) -> usize {
        1
    }
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        for i in 0..n {
            task(i);
        }
    }
}

/// A mutable slice that tasks write in disjoint ranges.
///
/// This is the one place where the core hands out `&mut` sub-slices from a shared reference;
/// callers guarantee disjointness by construction (task `i` takes rows `ranges(i)`), which
/// [`Parallel`] cannot express in safe code without allocating per-task slices.
pub struct DisjointMut<'s, T> {
    ptr: *mut T,
    len: usize,
    _life: core::marker::PhantomData<&'s mut [T]>,
}

// SAFETY: `DisjointMut` only hands out non-overlapping sub-slices (obligation of `slice`'s
// caller), so sharing it across threads is sharing `&mut [T]` pieces, which is sound for `T: Send`.
unsafe impl<T: Send> Sync for DisjointMut<'_, T> {}
// SAFETY: as above; the wrapper owns an exclusive borrow of the slice for 's.
unsafe impl<T: Send> Send for DisjointMut<'_, T> {}

impl<'s, T> DisjointMut<'s, T> {
    /// Wraps an exclusive borrow.
    pub fn new(s: &'s mut [T]) -> Self {
        Self { ptr: s.as_mut_ptr(), len: s.len(), _life: core::marker::PhantomData }
    }

    /// Length of the whole slice.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sub-slice `start..end`.
    ///
    /// # Safety
    /// - No two live results of `slice` on the same `DisjointMut` may overlap.
    ///
    /// # Panics
    /// If `start > end` or `end > len`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, start: usize, end: usize) -> &mut [T] {
        assert!(start <= end && end <= self.len, "DisjointMut::slice out of range");
        let start_ptr = self.ptr.wrapping_add(start);
        // SAFETY: the range is inside the original exclusive borrow (asserted above), which lives
        // for 's; non-overlap with other live sub-slices is the caller's obligation.
        unsafe { core::slice::from_raw_parts_mut(start_ptr, end - start) }
    }
}

/// Splits `rows` into `parts` contiguous ranges whose starts are multiples of `align` rows.
/// Returns the range of part `i`.
pub fn split_rows(rows: usize, parts: usize, align: usize, i: usize) -> (usize, usize) {
    let parts = parts.max(1);
    let align = align.max(1);
    let units = rows.div_ceil(align);
    let per = units / parts;
    let extra = units % parts;
    let start_u = i * per + i.min(extra);
    let end_u = start_u + per + usize::from(i < extra);
    ((start_u * align).min(rows), (end_u * align).min(rows))
}

/// Most tasks a [`Shares`] balances; a job with more keeps the static [`split_rows`] split.
pub const MAX_SHARES: usize = 32;

/// One task's share, `lo | hi << 32` (units `lo..hi` not yet claimed), on a cache line of its own.
#[repr(align(128))]
struct Slot(AtomicU64);

fn pack(lo: usize, hi: usize) -> u64 {
    lo as u64 | (hi as u64) << 32
}

fn unpack(v: u64) -> (usize, usize) {
    ((v & 0xffff_ffff) as usize, (v >> 32) as usize)
}

/// Work units dealt as one contiguous share per task (as [`split_rows`] deals them), with work
/// stealing at the end: a task claims its share front to back, and once it is empty takes the
/// back half of the largest share left, into its own slot (where others may steal from it in
/// turn). Every unit is claimed exactly once, so a job whose units are independent gives the same
/// results however they are dealt.
///
/// A static split finishes when its slowest thread does. On a VM, or a board whose cores share a
/// memory bus unevenly, two threads streaming equal shares finish microseconds apart on every
/// job, and decode runs ~150 jobs per token. Claims are front to back, so each thread still reads
/// one run of memory per share; they shrink as the share does ([`Shares::work`]).
pub struct Shares {
    slots: [Slot; MAX_SHARES],
    parts: usize,
    min_chunk: usize,
}

impl Shares {
    /// `units` dealt to `parts` tasks; a claim is never smaller than `min_chunk` units (unless
    /// less is left). `None` when `parts` exceeds [`MAX_SHARES`] or `units` does not fit 32 bits.
    pub fn new(units: usize, parts: usize, min_chunk: usize) -> Option<Self> {
        if parts == 0 || parts > MAX_SHARES || u32::try_from(units).is_err() {
            return None;
        }
        let slots = core::array::from_fn(|i| {
            let (lo, hi) = if i < parts { split_rows(units, parts, 1, i) } else { (0, 0) };
            Slot(AtomicU64::new(pack(lo, hi)))
        });
        Some(Self { slots, parts, min_chunk: min_chunk.max(1) })
    }

    /// Runs task `i`: calls `f(a, b)` for each run of units `a..b` it claims, until no share has
    /// units left. Claims take a quarter of what is left in the task's slot (at least the minimum
    /// chunk): few kernel calls while the share is long, fine pieces near the end, where a thief
    /// and the owner race.
    ///
    /// # Panics
    /// If `i >= parts`.
    pub fn work(&self, i: usize, mut f: impl FnMut(usize, usize)) {
        assert!(i < self.parts, "Shares::work: task {i} of {}", self.parts);
        let own = &self.slots[i].0;
        loop {
            // Claim from the front of the own slot.
            let mut cur = own.load(Ordering::Acquire);
            loop {
                let (lo, hi) = unpack(cur);
                if lo >= hi {
                    break;
                }
                let c = ((hi - lo) / 4).max(self.min_chunk).min(hi - lo);
                match own.compare_exchange_weak(
                    cur,
                    pack(lo + c, hi),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        f(lo, lo + c);
                        cur = own.load(Ordering::Acquire);
                    }
                    Err(now) => cur = now,
                }
            }
            // Steal the back half of the largest share left.
            let mut best: Option<(usize, u64, usize)> = None;
            for (v, s) in self.slots[..self.parts].iter().enumerate() {
                if v == i {
                    continue;
                }
                let val = s.0.load(Ordering::Acquire);
                let (lo, hi) = unpack(val);
                let rem = hi.saturating_sub(lo);
                if rem > best.map_or(0, |b| b.2) {
                    best = Some((v, val, rem));
                }
            }
            let Some((v, val, rem)) = best else { return };
            let (lo, hi) = unpack(val);
            let take = rem - rem / 2;
            let victim = &self.slots[v].0;
            if victim
                .compare_exchange(val, pack(lo, hi - take), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Only this task writes its own slot when it is empty, so nothing was lost.
                own.store(pack(hi - take, hi), Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_covers_exactly() {
        for rows in [0, 1, 7, 16, 100, 2560, 2561] {
            for parts in 1..6 {
                let mut next = 0;
                for i in 0..parts {
                    let (a, b) = split_rows(rows, parts, 8, i);
                    assert_eq!(a, next);
                    assert!(b >= a);
                    next = b;
                }
                assert_eq!(next, rows);
            }
        }
    }

    /// Runs tasks on `threads` std threads (task i on thread i % threads) and returns every
    /// task's claims in order.
    fn claims(
        units: usize,
        parts: usize,
        min: usize,
        threads: usize,
    ) -> std::vec::Vec<(usize, usize, usize)> {
        use std::sync::Mutex;
        let s = Shares::new(units, parts, min).unwrap();
        let log = Mutex::new(std::vec::Vec::new());
        std::thread::scope(|sc| {
            for t in 0..threads {
                let (s, log) = (&s, &log);
                sc.spawn(move || {
                    for i in (t..parts).step_by(threads) {
                        s.work(i, |a, b| {
                            assert!(a < b, "empty claim {a}..{b}");
                            // A little work, so that thieves find something to take.
                            std::hint::black_box((a..b).sum::<usize>());
                            log.lock().unwrap().push((i, a, b));
                        });
                    }
                });
            }
        });
        log.into_inner().unwrap()
    }

    fn assert_exactly_once(units: usize, log: &[(usize, usize, usize)]) {
        let mut seen = std::vec![0u32; units];
        for &(_, a, b) in log {
            for c in &mut seen[a..b] {
                *c += 1;
            }
        }
        let wrong: std::vec::Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c != 1).collect();
        assert!(wrong.is_empty(), "units claimed other than once: {wrong:?}");
    }

    #[test]
    fn shares_one_thread_claims_front_to_back_then_steals() {
        // Task 0 alone: its own share first, front to back, shrinking claims, then the others'.
        let s = Shares::new(100, 2, 1).unwrap();
        let mut got = std::vec::Vec::new();
        s.work(0, |a, b| got.push((a, b)));
        assert_eq!(&got[..3], &[(0, 12), (12, 21), (21, 28)], "{got:?}");
        let own_end = got.iter().position(|&(_, b)| b == 50).expect("own share ends at 50");
        for w in got[..=own_end].windows(2) {
            assert_eq!(w[0].1, w[1].0, "own share is claimed front to back: {got:?}");
        }
        // Then the back half of task 1's 50 units, and so on.
        assert_eq!(got[own_end + 1].0, 75, "{got:?}");
        let log: std::vec::Vec<_> = got.iter().map(|&(a, b)| (0, a, b)).collect();
        assert_exactly_once(100, &log);
        // Nothing is left for task 1.
        s.work(1, |a, b| panic!("task 1 claimed {a}..{b} after everything was taken"));
    }

    #[test]
    fn shares_min_chunk_and_limits() {
        let s = Shares::new(10, 1, 4).unwrap();
        let mut got = std::vec::Vec::new();
        s.work(0, |a, b| got.push((a, b)));
        assert_eq!(got, [(0, 4), (4, 8), (8, 10)]);
        assert!(Shares::new(10, 0, 1).is_none());
        assert!(Shares::new(10, MAX_SHARES + 1, 1).is_none());
        assert!(Shares::new(1 << 32, 2, 1).is_none());
        // More tasks than units: the empty shares steal or finish at once.
        let log = claims(3, 8, 1, 4);
        assert_exactly_once(3, &log);
    }

    #[test]
    fn shares_every_unit_once_under_contention() {
        for (units, parts, min, threads) in
            [(4008, 2, 1, 2), (120, 4, 1, 4), (1000, 3, 7, 3), (5, 4, 1, 4), (4008, 8, 2, 4)]
        {
            for _ in 0..20 {
                let log = claims(units, parts, min, threads);
                assert_exactly_once(units, &log);
            }
        }
    }
}
