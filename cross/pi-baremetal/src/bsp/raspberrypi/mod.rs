//! Raspberry Pi 3 / 4 board support: picks the board at run time from the core's MIDR (A53 → the
//! BCM2837 map, A72 → the BCM2711 map; one image serves both), brings up MMU and UART, and turns
//! firmware-provided addresses into slices.
//!
//! Orientation: the tutorials' `bsp/raspberrypi.rs`, with board data taken from `tern-boards`
//! instead of compile-time features.

pub mod memory;
pub mod uart;

use core::sync::atomic::{AtomicUsize, Ordering};
use tern_boards::{BoardConfig, CpuKind};

use crate::arch::mmu::{self, MemoryLayout};
use uart::{GpioKind, Pl011};

/// The board as this image drives it.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// Board data (refined later from the device tree's `model`, if any).
    pub config: &'static BoardConfig,
    /// First address of device memory; RAM lies below.
    pub device_start: u64,
    /// Whether the MIDR was one we know (otherwise the Pi 3 map is assumed).
    pub midr_known: bool,
}

/// Base of the UART the console and the panic/exception printer write to (0 before `init`).
static CONSOLE_BASE: AtomicUsize = AtomicUsize::new(0);

/// Picks the board for the core whose MIDR is `midr`.
pub fn board_for_midr(midr: u64) -> Board {
    let found = tern_boards::from_midr(midr).filter(|b| b.baremetal.is_some());
    let config = found.unwrap_or(&tern_boards::RPI3B);
    let device_start = match config.cpu {
        CpuKind::CortexA72 => memory::device_start::BCM2711,
        _ => memory::device_start::BCM2837,
    };
    Board { config, device_start, midr_known: found.is_some() }
}

const RPI3_BAREMETAL: tern_boards::BareMetal = match tern_boards::RPI3B.baremetal {
    Some(b) => b,
    None => panic!("RPI3B has bare-metal data"),
};

/// Parks the secondary cores, turns on MMU and caches, and initialises the UART.
///
/// Call once, first thing, on core 0 at EL1.
pub fn init(board: &Board) -> Pl011 {
    // SAFETY: called once at boot with the MMU off (first thing in `kernel_init`); the park loop
    // is valid at any EL and never returns.
    unsafe { memory::release_secondaries_to(crate::arch::cpu::park_address()) };

    // SAFETY: called once, at EL1, MMU off; the image and stack are below 0x3F00_0000 and so in
    // normal memory, the UART is above `device_start` and so device memory.
    unsafe { mmu::enable(MemoryLayout { normal_end: board.device_start }) };

    let bm = board.config.baremetal.unwrap_or(RPI3_BAREMETAL);
    let gpio = match board.config.cpu {
        CpuKind::CortexA72 => GpioKind::Bcm2711,
        _ => GpioKind::Bcm2837,
    };
    // SAFETY: `uart_base` is this SoC's PL011 per `tern-boards`, mapped as device memory above.
    let mut uart = unsafe { Pl011::new(bm.uart_base as usize) };
    uart.init(bm.peripheral_base as usize, gpio, bm.uart_clock_hz);
    CONSOLE_BASE.store(uart.base(), Ordering::Release);
    uart
}

/// A second handle on the console UART, for the panic and exception printers. `None` before
/// [`init`].
pub fn console_uart() -> Option<Pl011> {
    match CONSOLE_BASE.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: only `init` stores a non-zero value, the base of an initialised PL011; sharing
        // the UART between handles interleaves bytes at worst.
        base => Some(unsafe { Pl011::new(base) }),
    }
}

/// The device tree the firmware passed at `addr`, if `addr` points at a plausible one in RAM.
///
/// Checks alignment, that header and blob lie below `ram_end`, the magic and a size bound, before
/// making a slice. The full structure is then validated by [`crate::fdt::Fdt::new`].
pub fn device_tree(addr: u64, ram_end: u64) -> Option<&'static [u8]> {
    const HEADER: u64 = 40;
    let image = memory::image_range();
    if addr == 0 || !addr.is_multiple_of(8) || addr.checked_add(HEADER)? > ram_end {
        return None;
    }
    if addr < image.end && addr + HEADER > image.start {
        return None;
    }
    // SAFETY: 40 bytes of RAM below `ram_end`, outside the image (checked above); the firmware
    // left a device tree (or garbage, which the magic check rejects) there and nothing writes it.
    let header = unsafe { memory::ram_slice(addr, HEADER) };
    let total = crate::fdt::total_size(header).ok()? as u64;
    if !(HEADER..=memory::MAX_FDT_BYTES).contains(&total) || addr + total > ram_end {
        return None;
    }
    // SAFETY: same RAM region, extended to the size the header gives, still below `ram_end`; the
    // arena is placed after it (see `kernel_init`), so it is never written.
    Some(unsafe { memory::ram_slice(addr, total) })
}

/// The 32-byte header of the fixed-address model container, if RAM reaches that far.
pub fn fixed_model_header(ram_end: u64) -> Option<&'static [u8]> {
    let addr = memory::FIXED_MODEL_ADDR;
    if addr + crate::discover::BLOB_HEADER_BYTES as u64 > ram_end {
        return None;
    }
    // SAFETY: RAM below `ram_end`, above the image (0x1000_0000 > any image end we link), never
    // written (the arena starts after any model found here).
    Some(unsafe { memory::ram_slice(addr, crate::discover::BLOB_HEADER_BYTES as u64) })
}

/// The model bytes at `range`, which discovery has checked lie in RAM below `ram_end` and outside
/// the image.
pub fn model_bytes(range: core::ops::Range<u64>) -> &'static [u8] {
    let image = memory::image_range();
    assert!(range.start >= image.end || range.end <= image.start, "model overlaps the image");
    assert!(range.end <= 0x1000 || range.start >= 0x8_0000, "model overlaps the boot stack");
    // SAFETY: checked above that the range avoids image and stack; discovery checked it is RAM;
    // the arena is placed after it, so it is never written.
    unsafe { memory::ram_slice(range.start, range.end - range.start) }
}

/// Zeroes and returns the arena at `range` (called once, by `kernel_init`).
pub fn arena(range: core::ops::Range<u64>) -> &'static mut [u8] {
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    assert!(!TAKEN.swap(true, Ordering::AcqRel), "arena taken twice");
    let image = memory::image_range();
    assert!(range.start >= image.end && range.start <= range.end, "arena must follow the image");
    // SAFETY: handed out once (checked above), after the image; `kernel_init` places it after the
    // model and the device tree, below the end of RAM.
    unsafe { memory::take_arena(range) }
}
