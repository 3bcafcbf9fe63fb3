//! Ternary kernels for BitNet b1.58: I2_S GEMV/GEMM, activation quantisation and the f16 GEMV of
//! the tied LM head.
//!
//! Every kernel has a scalar twin in [`reference`], written first; it is the specification.
//! Optimized tiers plug into a [`KernelSet`] (a `Copy` table of `fn` pointers) that is chosen once
//! per model load from detected CPU features. Integer results of every tier are bit-exact with
//! the reference; f32 results follow the same fixed reduction order, so every tier prints the same
//! tokens.
//!
//! # Conventions shared by all kernels
//! - I2_S weights are passed as the **whole packed tensor** (`ne0*ne1/4` bytes, the 32-byte scale
//!   tail excluded), in the published 128/32 layout (see [`formats::i2s`]). A kernel computes the
//!   output rows `row0 .. row0 + out.len()` (GEMV) so that callers can split rows across threads.
//! - Integer kernels return `Σ_k w_rk · q_k` with `w = code − 1 ∈ {−1, 0, +1}`, accumulated in i32.
#![no_std]
#![cfg_attr(not(any(test, feature = "std")), allow(unused))]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod dispatch;
pub mod formats;
pub mod reference;
mod shape;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests_equiv;
#[cfg(target_arch = "x86_64")]
mod x86_64;

/// The NEON TL1 lookup-table kernel over TL1-packed weights (aarch64 only; the scalar twin is
/// [`reference::tl1_gemv`]).
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub use aarch64::neon::tl1 as neon_tl1;
pub use dispatch::{CpuFeatures, KernelInfo, KernelSet, Quality, Tier};
