//! AArch64 architecture code: boot, CPU helpers, exceptions, MMU, generic timer, semihosting.
//!
//! Orientation: everything here is about the ARMv8-A architecture and would be the same on any
//! AArch64 board; the Raspberry Pi specifics live in `crate::bsp::raspberrypi`.

pub mod boot;
pub mod cpu;
pub mod exception;
pub mod mmu;
pub mod semihosting;
pub mod time;
