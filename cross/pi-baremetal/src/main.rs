//! tern bare-metal image for the Raspberry Pi 3 and 4 (`kernel8.img`): boots without an OS,
//! finds the model the firmware loaded, sets up a static arena and serves prompts over the PL011
//! UART.
//!
//! Orientation (the Rust Raspberry Pi OS tutorials' layout):
//!
//! * `_arch/aarch64/` — architecture: `boot.s` (EL3/EL2 → EL1, FP/SIMD, stack, .bss, vectors),
//!   `cpu`, `exception` (fault reports), `mmu` (identity map, caches), `time` (generic timer),
//!   `semihosting` (QEMU exit).
//! * `bsp/raspberrypi/` — the board: `memory` (memory map, raw address → slice), `uart` (PL011,
//!   GPIO), board choice at run time from MIDR (`tern-boards`).
//! * `fdt`, `discover` — safe parsing of the firmware's device tree and of the fixed-address
//!   `TERNBLOB` fallback.
//! * `serve` — the prompt loop; the seam where `tern-runtime` plugs in.
//!
//! Unsafe code lives only in `_arch` and `bsp`.
#![no_std]
#![no_main]

#[path = "_arch/aarch64/mod.rs"]
mod arch;
mod bsp;
mod console;
mod discover;
mod fdt;
mod serve;
mod time;

use core::fmt::Write as _;
use core::ops::Range;

use discover::{DiscoverError, ModelSource};
use time::Clock;

/// Arena alignment: 2 MiB, one MMU block.
const ARENA_ALIGN: u64 = 2 << 20;

/// Ends the run: exits QEMU with `code` under the `qemu-exit` feature, otherwise halts the core.
pub fn shutdown(code: u32) -> ! {
    arch::semihosting::exit(code)
}

/// Kernel entry after `boot.s`: board, MMU, UART, device tree, model, arena, then the prompt loop.
fn kernel_init(dtb: u64, boot_el: u64) -> ! {
    let midr = arch::cpu::midr();
    let mut board = bsp::board_for_midr(midr);
    let mut uart = bsp::init(&board);
    let clock = arch::time::GenericTimer;
    let boot_ticks = clock.now_ticks();

    let (_, part) = tern_boards::midr_fields(midr);
    let _ = writeln!(uart, "\ntern bare-metal {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        uart,
        "cpu: {} midr={midr:#010x} entered EL{boot_el}, now EL1, mmu={} dotprod={} cntfrq={}",
        board.config.cpu.name(),
        arch::mmu::is_enabled(),
        arch::cpu::has_dotprod(),
        clock.ticks_per_second()
    );
    if !board.midr_known {
        let _ = writeln!(
            uart,
            "warning: unknown core (part {part:#05x}); assuming the Pi 3 memory map"
        );
    }

    let Some(bm) = board.config.baremetal else { shutdown(3) };
    let image = bsp::memory::image_range();
    let mut ram_end = bm.ram_base + bm.ram_fallback_bytes;
    // The arena starts after everything that must survive: image, device tree, model.
    let mut keep_end = image.end;
    let mut model: Option<(Range<u64>, ModelSource)> = None;

    match bsp::device_tree(dtb, board.device_start) {
        None => {
            let _ = writeln!(uart, "device tree: none (x0={dtb:#x})");
        }
        Some(blob) => match fdt::Fdt::new(blob).and_then(|f| discover::read_device_tree(&f)) {
            Err(e) => {
                let _ = writeln!(uart, "device tree at {dtb:#x}: {e}");
            }
            Ok(info) => {
                keep_end = keep_end.max(dtb + info.total_size as u64);
                let model_name = info.model.unwrap_or("");
                if let Some(b) = tern_boards::detect(model_name, Some(part))
                    && b.baremetal.is_some()
                    && b.cpu == board.config.cpu
                {
                    board.config = b;
                }
                if let Some(mem) = &info.memory {
                    ram_end = mem.end.min(board.device_start);
                }
                let _ = writeln!(
                    uart,
                    "device tree at {dtb:#x}, {} bytes: model \"{model_name}\", memory {}, initrd {}",
                    info.total_size,
                    HexRange(&info.memory),
                    HexRange(&info.initrd)
                );
                if let Some(r) = info.initrd {
                    match discover::check_range(&r, ram_end, &image) {
                        Ok(()) => model = Some((r, ModelSource::DeviceTreeInitrd)),
                        Err(e) => {
                            let _ = writeln!(uart, "initrd ignored: {e}");
                        }
                    }
                }
            }
        },
    }
    let _ = writeln!(
        uart,
        "board: {} ({}), RAM used up to {ram_end:#x}",
        board.config.display_name, board.config.soc
    );

    if model.is_none() {
        match fixed_address_model(ram_end, &image) {
            Ok(r) => model = Some((r, ModelSource::FixedAddress)),
            Err(e) => {
                let _ = writeln!(uart, "model: {e}");
            }
        }
    }
    let model_bytes: &'static [u8] = match &model {
        Some((r, source)) => {
            let _ = writeln!(
                uart,
                "model: {:?} at {:#x}..{:#x} ({} bytes)",
                source,
                r.start,
                r.end,
                r.end - r.start
            );
            keep_end = keep_end.max(r.end);
            bsp::model_bytes(r.clone())
        }
        None => &[],
    };

    let start = discover::align_up(keep_end, ARENA_ALIGN);
    let end = ram_end.min(start.saturating_add(bm.arena_bytes)).max(start);
    let arena = bsp::arena(start..end);
    let micros = clock.micros_between(boot_ticks, clock.now_ticks());
    let _ = writeln!(
        uart,
        "arena: {:#x}..{end:#x} = {} MiB (board cap {} MiB); boot took {micros} us",
        start,
        (end - start) >> 20,
        bm.arena_bytes >> 20
    );

    serve::serve(model_bytes, arena, &mut uart, &clock)
}

/// The model from the `TERNBLOB` container at the fixed address, checksum verified if present.
fn fixed_address_model(ram_end: u64, image: &Range<u64>) -> Result<Range<u64>, DiscoverError> {
    let header = bsp::fixed_model_header(ram_end).ok_or(DiscoverError::NotFound)?;
    let h = discover::parse_blob_header(header).ok_or(DiscoverError::NotFound)?;
    let start = bsp::memory::FIXED_MODEL_ADDR + discover::BLOB_HEADER_BYTES as u64;
    let end = start.checked_add(h.len).ok_or(DiscoverError::BadRange { start, end: u64::MAX })?;
    let range = start..end;
    discover::check_range(&range, ram_end, image)?;
    if h.fnv1a != 0 {
        let found = discover::fnv1a64(bsp::model_bytes(range.clone()));
        if found != h.fnv1a {
            return Err(DiscoverError::Checksum { expected: h.fnv1a, found });
        }
    }
    Ok(range)
}

/// Prints an optional address range as `0x..0x` or `none`.
struct HexRange<'a>(&'a Option<Range<u64>>);

impl core::fmt::Display for HexRange<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{:#x}..{:#x}", r.start, r.end),
            None => f.write_str("none"),
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::emergency_print(format_args!("\n*** panic: {info}\n*** halted\n"));
    arch::semihosting::exit(101)
}
