//! The core's parallel-for: a callback the host shim implements with a persistent thread pool
//! (bare metal: [`Serial`]). Work is split by output rows, so results never depend on the number
//! of threads (every row is computed by exactly one task, in the same order).

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
}
