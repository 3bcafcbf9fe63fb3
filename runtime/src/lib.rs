//! tern runtime core: BitNet b1.58 inference with no allocator.
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;
