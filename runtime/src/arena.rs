//! A bump arena over one caller-provided buffer: the only place runtime memory comes from.
//!
//! The host allocates one `Vec<u8>` of [`crate::plan::Plan::total_bytes`]; the bare-metal image
//! passes a linker-defined region. Allocations are typed slices of plain-old-data
//! ([`Pod`]) types, zero-initialised, aligned to [`ALIGN`] bytes, and never freed individually.
//! Running out is an [`ArenaError::OutOfMemory`], never a panic.

use core::mem::{align_of, size_of};

/// Alignment of every allocation (one cache line; also enough for any SIMD load).
pub const ALIGN: usize = 64;

/// Bytes an allocation of `n` values of `T` takes in the arena (rounded up to [`ALIGN`]).
pub const fn slot_bytes<T>(n: usize) -> usize {
    (n * size_of::<T>()).div_ceil(ALIGN) * ALIGN
}

/// The arena ran out of memory, or a size overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ArenaError {
    /// `requested` bytes were asked for while only `remaining` were left.
    OutOfMemory {
        /// Bytes asked for (after alignment).
        requested: usize,
        /// Bytes left in the arena.
        remaining: usize,
    },
}

impl core::fmt::Display for ArenaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ArenaError::OutOfMemory { requested, remaining } => {
                write!(f, "arena too small: needed {requested} more bytes, {remaining} bytes left")
            }
        }
    }
}

impl core::error::Error for ArenaError {}

mod sealed {
    pub trait Sealed {}
}

/// Plain-old-data types the arena may hand out: every bit pattern (including all zeros) is a
/// valid value, there is no padding and no drop glue.
pub trait Pod: sealed::Sealed + Copy + 'static {}

macro_rules! pod {
    ($($t:ty),*) => { $( impl sealed::Sealed for $t {} impl Pod for $t {} )* };
}
pod!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, usize);

/// A bump allocator over `&'a mut [u8]`.
pub struct Arena<'a> {
    buf: &'a mut [u8],
    used: usize,
    capacity: usize,
}

impl<'a> Arena<'a> {
    /// Wraps `buf`. Nothing is allocated yet.
    pub fn new(buf: &'a mut [u8]) -> Self {
        let capacity = buf.len();
        Self { buf, used: 0, capacity }
    }

    /// Bytes handed out so far (including alignment padding).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Bytes still available (before alignment of the next request).
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Size of the buffer the arena was created with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Allocates `n` zeroed values of `T`, aligned to [`ALIGN`].
    pub fn alloc<T: Pod>(&mut self, n: usize) -> Result<&'a mut [T], ArenaError> {
        debug_assert!(align_of::<T>() <= ALIGN);
        let bytes = n
            .checked_mul(size_of::<T>())
            .ok_or(ArenaError::OutOfMemory { requested: usize::MAX, remaining: self.buf.len() })?;
        let pad = self.buf.as_ptr().align_offset(ALIGN);
        let need = bytes
            .div_ceil(ALIGN)
            .checked_mul(ALIGN)
            .and_then(|slot| slot.checked_add(pad))
            .unwrap_or(usize::MAX);
        if need > self.buf.len() {
            return Err(ArenaError::OutOfMemory { requested: need, remaining: self.buf.len() });
        }
        let buf = core::mem::take(&mut self.buf);
        let (head, tail) = buf.split_at_mut(need);
        self.buf = tail;
        self.used += need;
        let region = &mut head[pad..pad + bytes];
        region.fill(0);
        // SAFETY: `region` starts at an address aligned to ALIGN >= align_of::<T>() (checked via
        // align_offset above) and holds exactly `n * size_of::<T>()` initialised (zeroed) bytes;
        // `T: Pod` makes every bit pattern a valid `T`; `region` is an exclusive borrow for 'a
        // that no other allocation overlaps (split_at_mut).
        let (prefix, mid, suffix) = unsafe { region.align_to_mut::<T>() };
        debug_assert!(prefix.is_empty() && suffix.is_empty() && mid.len() == n);
        if !prefix.is_empty() || mid.len() != n {
            return Err(ArenaError::OutOfMemory { requested: need, remaining: self.buf.len() });
        }
        Ok(mid)
    }
}

/// Reinterprets little-endian bytes as `&[T]` when aligned (zero-copy views of model weights).
/// Returns `None` when `bytes` is misaligned for `T` or its length is not a multiple of the size.
pub fn cast_slice<T: Pod>(bytes: &[u8]) -> Option<&[T]> {
    if !bytes.len().is_multiple_of(size_of::<T>())
        || bytes.as_ptr().align_offset(align_of::<T>()) != 0
    {
        return None;
    }
    // SAFETY: alignment and length were checked just above; `T: Pod` accepts any bit pattern; the
    // result borrows `bytes` immutably for the same lifetime.
    let (prefix, mid, suffix) = unsafe { bytes.align_to::<T>() };
    (prefix.is_empty() && suffix.is_empty()).then_some(mid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_disjoint_and_zeroed() {
        let mut buf = std::vec![0xAAu8; 4096];
        let mut a = Arena::new(&mut buf[3..]);
        let x: &mut [f32] = a.alloc(10).unwrap();
        let y: &mut [u16] = a.alloc(33).unwrap();
        assert_eq!(x.as_ptr() as usize % ALIGN, 0);
        assert_eq!(y.as_ptr() as usize % ALIGN, 0);
        assert!(x.iter().all(|&v| v == 0.0));
        x[9] = 1.0;
        y[0] = 7;
        assert_eq!(x[9], 1.0);
        assert!(a.used() >= slot_bytes::<f32>(10) + slot_bytes::<u16>(33));
    }

    #[test]
    fn out_of_memory_is_an_error() {
        let mut buf = std::vec![0u8; 256];
        let mut a = Arena::new(&mut buf);
        assert!(a.alloc::<u8>(64).is_ok());
        let e = a.alloc::<u64>(1000).unwrap_err();
        assert!(matches!(e, ArenaError::OutOfMemory { .. }));
        assert!(a.alloc::<u8>(usize::MAX).is_err());
    }

    #[test]
    fn cast_slice_checks_alignment() {
        let v = std::vec![0u32; 4];
        // SAFETY-free path: build a byte view through a safe copy.
        let bytes: std::vec::Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let aligned = cast_slice::<u8>(&bytes).unwrap();
        assert_eq!(aligned.len(), 16);
        assert!(cast_slice::<u32>(&bytes[1..5]).is_none() || bytes.as_ptr() as usize % 4 == 3);
    }
}
