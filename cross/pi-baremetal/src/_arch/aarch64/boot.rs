//! Boot entry: the assembly in `boot.s` and the first Rust function it calls.
//!
//! Orientation: architectural part of the boot sequence (tutorials' `_arch/aarch64/cpu/boot.rs`);
//! everything board-specific happens later, in `crate::kernel_init`.

use core::arch::global_asm;

// The assembly runs with no stack and no Rust invariants; see the file for what it sets up.
global_asm!(include_str!("boot.s"));

/// First Rust code. Called by `boot.s` on core 0 at EL1 with a valid stack, FP/SIMD enabled,
/// `.bss` zeroed and the exception vectors installed.
///
/// `dtb` is the device-tree address the firmware passed in x0 (0 when there is none); `boot_el` is
/// the exception level the image was entered at.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text._start_rust")]
pub extern "C" fn _start_rust(dtb: u64, boot_el: u64) -> ! {
    crate::kernel_init(dtb, boot_el)
}
