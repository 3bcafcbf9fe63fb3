//! The Raspberry Pi 3/4 physical memory map as this image uses it, and the few places where raw
//! addresses become Rust slices (device tree, model, arena).
//!
//! Orientation: BSP memory map (tutorials' `bsp/raspberrypi/memory.rs`). All mappings are
//! identity (VA = PA).
//!
//! ```text
//!  Pi 3 (BCM2837, 1 GiB)                       Pi 4 (BCM2711, low-peripheral mode; 1st GiB used)
//!  0x0000_0000 +-------------------------+      same layout up to the GPU split, then
//!              | firmware spin tables    |  <- 0xd8 + 8·core: release addresses (we park cores
//!  0x0000_1000 +-------------------------+     in a WFI loop through them)
//!              | boot-core stack (grows  |
//!              |  down, ~508 KiB)        |
//!  0x0008_0000 +-------------------------+  <- kernel8.img load address, _start
//!              | .text .rodata           |
//!              | .data .bss page tables  |     (.bss is inside the raw image)
//!  __image_end +-------------------------+
//!              | model (initramfs        |  <- firmware: `initramfs model.gguf followkernel`
//!              |  followkernel)          |     QEMU -initrd: 0x0800_0000; both found via the
//!              |                         |     DTB's /chosen linux,initrd-start/-end
//!  0x1000_0000 +-------------------------+  <- fallback: a "TERNBLOB" header + model, placed by
//!              | model (fixed address)   |     `initramfs model.tblob 0x10000000` or
//!              |                         |     QEMU `-device loader,...,addr=0x10000000`
//!              +-------------------------+
//!              | arena (2 MiB aligned,   |  <- after image, model and DTB; capped by the board's
//!              |  zeroed at boot)        |     `arena_bytes` and the end of RAM
//!              +-------------------------+
//!              | (free) / GPU split      |
//!  0x3F00_0000 +-------------------------+  Pi 3: peripherals (device memory)    Pi 4: RAM
//!  0x3F20_1000 |   PL011 UART0           |                     0xFC00_0000: device memory
//!  0x4000_0000 |   ARM local peripherals |                     0xFE20_1000: PL011 UART0
//!  0xFFFF_FFFF +-------------------------+
//! ```

use core::ops::Range;

/// Where the firmware's spin table keeps each core's release address: `0xd8 + 8 · core`.
pub const SPIN_TABLE_BASE: usize = 0xd8;

/// Fixed load address of the fallback model container (`TERNBLOB` header + GGUF).
pub const FIXED_MODEL_ADDR: u64 = 0x1000_0000;

/// Largest device tree we accept (the Pi 4's is about 60 KB).
pub const MAX_FDT_BYTES: u64 = 1 << 20;

/// First byte of device memory per SoC: everything below is normal RAM.
pub mod device_start {
    /// BCM2837: the peripheral window starts at 0x3F00_0000.
    pub const BCM2837: u64 = 0x3F00_0000;
    /// BCM2711 in low-peripheral mode: 0xFC00_0000 (PCIe, Ethernet, then the main peripherals).
    pub const BCM2711: u64 = 0xFC00_0000;
}

/// Start and end of the loaded image (`kernel8.img` including `.bss`).
pub fn image_range() -> Range<u64> {
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    // Only the addresses of the linker symbols are used; they are never read.
    (&raw const __image_start) as u64..(&raw const __image_end) as u64
}

/// `len` bytes of RAM at `addr` as a shared slice.
///
/// # Safety
/// - `addr..addr + len` must be RAM mapped as normal memory, outside the image, stack, page tables
///   and arena, and must never be written again while the returned slice lives (forever).
pub unsafe fn ram_slice(addr: u64, len: u64) -> &'static [u8] {
    debug_assert!(addr.checked_add(len).is_some());
    // SAFETY: the caller guarantees the range is RAM that nothing writes; u8 has no alignment or
    // validity requirement beyond being initialised, which RAM contents are.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

/// Zeroes `range` and hands it out as the arena.
///
/// # Safety
/// - `range` must be RAM mapped as normal memory, disjoint from the image, stack, page tables,
///   device tree, model and every other live slice, and this must be called once per range.
pub unsafe fn take_arena(range: Range<u64>) -> &'static mut [u8] {
    let len = (range.end - range.start) as usize;
    let ptr = range.start as *mut u8;
    // SAFETY: the caller guarantees exclusive RAM; zeroing makes every byte initialised before the
    // slice exists.
    unsafe { core::ptr::write_bytes(ptr, 0, len) };
    // SAFETY: as above; the range is handed out exactly once, so the `&mut` is unique.
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}

/// Points every secondary core's spin-table slot at `target` and wakes them, so cores that the
/// firmware holds in a WFE loop move to a WFI loop (TCG burns a host core per WFE spinner).
///
/// # Safety
/// - Must run with the MMU off (the slots are written to memory, then cleaned for good measure),
///   before anything else uses the first page.
/// - `target` must be code that secondary cores may run at whatever EL the firmware left them in.
pub unsafe fn release_secondaries_to(target: usize) {
    for core in 1..4 {
        let slot = (SPIN_TABLE_BASE + 8 * core) as *mut u64;
        // SAFETY: the spin-table slots are RAM reserved for exactly this (caller contract on
        // ordering); volatile so the write is not elided.
        unsafe { core::ptr::write_volatile(slot, target as u64) };
        crate::arch::cpu::clean_dcache_line(slot as usize);
    }
    crate::arch::cpu::send_event();
}
