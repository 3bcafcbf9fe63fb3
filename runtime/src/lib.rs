//! # tern runtime core
//!
//! BitNet b1.58 inference with **no allocator** (`#![no_std]`, no `alloc`). Inputs: the model
//! file as `&[u8]`, one `&mut [u8]` arena, a [`tern_kernels::KernelSet`], and a [`par::Parallel`]
//! callback; output: tokens.
//!
//! ## Orientation
//! - [`gguf`]: zero-copy, bounded GGUF reader (typed errors, never panics on bad input).
//! - [`model`]: [`model::Config`] from metadata, [`model::Weights`] borrowed views.
//! - [`arena`]: the bump arena every buffer comes from; [`engine::Plan`] sizes it exactly.
//! - [`engine`]: the forward pass (DESIGN §4–5) and KV cache.
//! - [`tokenizer`]: GPT-2 byte-level BPE from GGUF metadata, matching Hugging Face.
//! - [`sampler`]: greedy / temperature / top-k / top-p / min-p / repetition penalty.
//! - [`session`]: load everything from one file and one arena; generation and chat.
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod arena;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod model;
pub mod ops;
pub mod par;
pub mod sampler;
pub mod session;
pub mod tokenizer;

pub use error::Error;
