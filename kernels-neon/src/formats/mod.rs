//! On-disk weight formats the kernels read. Layouts are defined by the GGUF type id, never by `cfg`.
pub mod i2s;
pub mod tl1;
