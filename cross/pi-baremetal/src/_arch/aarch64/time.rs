//! The ARM generic timer as a [`crate::time::Clock`] (`CNTPCT_EL0` ticks at `CNTFRQ_EL0` Hz).
//!
//! Orientation: architecture implementation of the portable `crate::time::Clock` trait.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

/// The physical counter. EL1 access is enabled by `boot.s` (`CNTHCTL_EL2.EL1PCTEN`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GenericTimer;

impl crate::time::Clock for GenericTimer {
    fn now_ticks(&self) -> u64 {
        // An ISB keeps the read from being hoisted above earlier work being timed.
        barrier::isb(barrier::SY);
        CNTPCT_EL0.get()
    }

    fn ticks_per_second(&self) -> u64 {
        match CNTFRQ_EL0.get() {
            // Firmware that forgot CNTFRQ: the Pi's 19.2 MHz crystal (54 MHz on a Pi 4) is a
            // better guess than dividing by zero.
            0 => 19_200_000,
            f => f,
        }
    }
}
