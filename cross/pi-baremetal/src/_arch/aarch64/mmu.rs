//! Identity-mapped MMU with caches on: the low 4 GiB in 2 MiB blocks, RAM as normal write-back
//! memory, everything from the peripheral window up as device memory (nGnRnE, never executable).
//!
//! Orientation: architecture half of memory management (tutorials' `_arch/aarch64/memory/mmu.rs`);
//! the board supplies where RAM ends ([`MemoryLayout`]).
//!
//! Translation: 4 KiB granule, `T0SZ = 32` (4 GiB of VA), so the walk starts at level 1: one L1
//! table whose first four entries point at four L2 tables of 512 × 2 MiB blocks. TTBR1 walks are
//! disabled. Real hardware needs this for caches and for unaligned accesses to normal memory; QEMU
//! runs without it but would not catch alignment faults on device memory (TOOLCHAIN.md 2.7).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MAIR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1, Writeable};

/// What the board tells the MMU.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLayout {
    /// Everything below this address is normal (RAM) memory; from here to 4 GiB is device memory.
    /// Must be a multiple of 2 MiB.
    pub normal_end: u64,
}

const BLOCK_SIZE: u64 = 2 << 20;
const ENTRIES: usize = 512;
const MAPPED_GIB: usize = 4;

/// A 4 KiB-aligned translation table.
#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

/// All tables: one level-1 table and one level-2 table per GiB.
#[repr(C)]
struct Tables {
    l1: Table,
    l2: [Table; MAPPED_GIB],
}

/// Lives in `.bss` (zeroed by `boot.s`), inside the image, below any model the firmware loads.
static mut TABLES: Tables =
    Tables { l1: Table([0; ENTRIES]), l2: [const { Table([0; ENTRIES]) }; 4] };

// Descriptor bits (Arm ARM D8.3).
const DESC_TABLE: u64 = 0b11;
const DESC_BLOCK: u64 = 0b01;
const ATTR_INDEX_SHIFT: u64 = 2;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// MAIR index 0: normal, inner/outer write-back, read/write-allocate. Index 1: device nGnRnE.
const MAIR_NORMAL_WB: u64 = 0xff;
const MAIR_DEVICE_NGNRNE: u64 = 0x00;
const ATTR_NORMAL: u64 = 0;
const ATTR_DEVICE: u64 = 1;

// TCR_EL1 fields.
const TCR_T0SZ_4GIB: u64 = 32;
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
const TCR_SH0_INNER: u64 = 0b11 << 12;
const TCR_TG0_4K: u64 = 0b00 << 14;
const TCR_EPD1: u64 = 1 << 23;
const TCR_IPS_4GIB: u64 = 0b000 << 32;

// SCTLR_EL1 bits.
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;

/// The block descriptor for the 2 MiB block at `addr`.
const fn block_descriptor(addr: u64, layout: MemoryLayout) -> u64 {
    if addr < layout.normal_end {
        // RAM: cacheable, shareable, executable at EL1 (the image runs from it).
        addr | DESC_BLOCK | (ATTR_NORMAL << ATTR_INDEX_SHIFT) | SH_INNER | AF | UXN
    } else {
        addr | DESC_BLOCK | (ATTR_DEVICE << ATTR_INDEX_SHIFT) | AF | PXN | UXN
    }
}

/// Builds the tables and turns on the MMU, the data cache and the instruction cache.
///
/// # Safety
/// - Must run once, at EL1, with the MMU off, before anything relies on cacheability.
/// - Everything the running code touches (image, stack, UART) must lie in the mapped 4 GiB with
///   the right type: the image and stack below `layout.normal_end`, MMIO above it.
pub unsafe fn enable(layout: MemoryLayout) {
    debug_assert_eq!(layout.normal_end % BLOCK_SIZE, 0);
    let tables = &raw mut TABLES;
    // SAFETY: single core, MMU off, called once (the caller's contract): nothing else refers to
    // TABLES while we fill it, and the hardware walker is not yet using it.
    let tables = unsafe { &mut *tables };
    for (gib, l2) in tables.l2.iter_mut().enumerate() {
        for (i, entry) in l2.0.iter_mut().enumerate() {
            let addr = ((gib as u64) << 30) + (i as u64) * BLOCK_SIZE;
            *entry = block_descriptor(addr, layout);
        }
        tables.l1.0[gib] = (&raw const *l2) as u64 | DESC_TABLE;
    }

    MAIR_EL1.set(MAIR_NORMAL_WB | (MAIR_DEVICE_NGNRNE << 8));
    TTBR0_EL1.set((&raw const tables.l1) as u64);
    TCR_EL1.set(
        TCR_T0SZ_4GIB
            | TCR_IRGN0_WBWA
            | TCR_ORGN0_WBWA
            | TCR_SH0_INNER
            | TCR_TG0_4K
            | TCR_EPD1
            | TCR_IPS_4GIB,
    );

    barrier::dsb(barrier::ISHST);
    // SAFETY: invalidating all EL1 TLB entries and the instruction cache has no effect besides
    // dropping stale translations/instructions (there are none to keep).
    unsafe {
        core::arch::asm!(
            "tlbi vmalle1",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }

    // Alignment checking stays off: normal memory allows unaligned accesses.
    let sctlr = (SCTLR_EL1.get() | SCTLR_M | SCTLR_C | SCTLR_I) & !SCTLR_A;
    SCTLR_EL1.set(sctlr);
    barrier::isb(barrier::SY);
}

/// Whether the MMU is on (`SCTLR_EL1.M`).
pub fn is_enabled() -> bool {
    SCTLR_EL1.get() & SCTLR_M != 0
}
