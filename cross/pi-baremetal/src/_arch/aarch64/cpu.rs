//! CPU identification and low-level helpers (MIDR, feature registers, WFE/SEV, cache maintenance).
//!
//! Orientation: implements the architecture half of `crate::cpu` in the tutorials' split.

use aarch64_cpu::asm;
use aarch64_cpu::registers::{ID_AA64ISAR0_EL1, MIDR_EL1, Readable};

/// MIDR_EL1 of the running core.
pub fn midr() -> u64 {
    MIDR_EL1.get()
}

/// Whether the core implements SDOT/UDOT (`ID_AA64ISAR0_EL1.DP`, bits \[47:44\]; aarch64-cpu has
/// no field for it).
pub fn has_dotprod() -> bool {
    (ID_AA64ISAR0_EL1.get() >> 44) & 0xf != 0
}

/// Sleeps forever with interrupts as they are (masked during the whole run).
pub fn wait_forever() -> ! {
    loop {
        asm::wfi();
    }
}

/// Wakes cores waiting in WFE (the firmware's spin-table loop).
pub fn send_event() {
    asm::sev();
}

/// Cleans and invalidates the data-cache line holding `addr` to the point of coherency, so that a
/// core running with its MMU off (and so non-cacheable) sees what we wrote.
pub fn clean_dcache_line(addr: usize) {
    // SAFETY: `dc civac` only writes back/invalidates a cache line; it cannot fault on a mapped or
    // unmapped-with-MMU-off address and has no other architectural effect.
    unsafe {
        core::arch::asm!("dc civac, {a}", "dsb sy", a = in(reg) addr, options(nostack, preserves_flags));
    }
}

/// Address of `_park_secondary` in `boot.s` (a WFI loop for cores that must not run Rust).
pub fn park_address() -> usize {
    unsafe extern "C" {
        fn _park_secondary();
    }
    _park_secondary as *const () as usize
}
