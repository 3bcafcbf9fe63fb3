//! Hard caps on untrusted counts and lengths (candle's `GGUF_MAX_*` idea, with our own numbers).
//!
//! They are far above any real model (2B4T: 24 KV pairs, 332 tensors, 280 147 merges) and far
//! below what would make arithmetic or loops blow up.

/// Metadata pairs.
pub const MAX_KV: u64 = 1 << 16;
/// Tensors.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Bytes in one string (keys, values, tensor names, array elements).
pub const MAX_STRING: u64 = 1 << 24;
/// Elements in one array (the Llama-3 vocabulary has 128 256 tokens, 280 147 merges).
pub const MAX_ARRAY: u64 = 1 << 24;
/// Arrays of arrays.
pub const MAX_DEPTH: u32 = 2;
/// Tensor dimensions.
pub const MAX_DIMS: u32 = 4;
/// Largest `general.alignment`.
pub const MAX_ALIGNMENT: u64 = 1 << 16;
