//! Board data (no_std, data only).
#![no_std]
#![forbid(unsafe_code)]
