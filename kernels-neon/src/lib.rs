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

pub mod dispatch;
pub mod formats;
pub mod reference;

pub use dispatch::{CpuFeatures, KernelInfo, KernelSet, Quality, Tier};
