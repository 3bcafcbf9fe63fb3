//! Board data for tern: one `pub const` [`BoardConfig`] per Raspberry Pi-class board.
//!
//! This crate is plain data (`no_std`, no `unsafe`, no dependencies). It answers three questions:
//!
//! * **What is this board?** [`detect`] takes the device-tree `model` string
//!   (`/proc/device-tree/model` on Linux, the `/model` property of the firmware's DTB on bare
//!   metal) and optionally the MIDR part number of the running core, and returns the board. The
//!   longest matching model prefix wins ("Raspberry Pi 3 Model B Plus" beats "Raspberry Pi 3 Model
//!   B"); without a match it falls back to [`from_midr_part`].
//! * **How should tern run here?** [`BoardConfig::kernel_tier`], [`BoardConfig::default_threads`],
//!   the serial devices to serve on, the energy source, and for bare metal the PL011 UART and
//!   arena size ([`BareMetal`]).
//! * **Which models fit?** [`BoardConfig::fits`] and [`models`] compare a model's weight bytes plus
//!   its runtime arena with the RAM sizes the board is sold with.
//!
//! | board | SoC | core (MIDR part) | cores | RAM offered | tier |
//! |---|---|---|---|---|---|
//! | Raspberry Pi Zero 2 W | RP3A0 (BCM2710A1) | Cortex-A53 (`0xd03`) | 4 | 512 MB | neon |
//! | Raspberry Pi 3 Model B | BCM2837 | Cortex-A53 (`0xd03`) | 4 | 1 GB | neon |
//! | Raspberry Pi 3 Model B+ | BCM2837B0 | Cortex-A53 (`0xd03`) | 4 | 1 GB | neon |
//! | Raspberry Pi 4 Model B | BCM2711 | Cortex-A72 (`0xd08`) | 4 | 1/2/4/8 GB | neon |
//! | Raspberry Pi 400 | BCM2711 | Cortex-A72 (`0xd08`) | 4 | 4 GB | neon |
//! | Compute Module 4 | BCM2711 | Cortex-A72 (`0xd08`) | 4 | 1/2/4/8 GB | neon |
//! | Raspberry Pi 5 | BCM2712 | Cortex-A76 (`0xd0b`) | 4 | 1/2/4/8/16 GB | dotprod |
//! | QEMU `virt` | — | `-cpu cortex-a76` | 1 | 1 GiB (`-m`) | dotprod |
//! | QEMU `raspi3b` / `raspi4b` | emulated | A53 / A72 | 4 | 1 / 2 GiB | neon |
//!
//! Numbers that were not measured on a board (none of the tuning is yet) are not in here: this
//! crate holds facts from data sheets and firmware documentation, and sizes derived from them.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod boards;
pub mod models;

pub use boards::*;
pub use models::{GIB, MIB, ModelSpec};

// -------------------------------------------------------------------------------------------------
// Public Definitions
// -------------------------------------------------------------------------------------------------

/// ARM's implementer code in MIDR_EL1 bits \[31:24\].
pub const MIDR_IMPLEMENTER_ARM: u8 = 0x41;

/// The CPU core a board is built around, keyed by its MIDR_EL1 part number (bits \[15:4\]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuKind {
    /// Cortex-A53 (ARMv8.0-A, in-order): Pi Zero 2 W, Pi 3. MIDR part `0xd03`.
    CortexA53,
    /// Cortex-A72 (ARMv8.0-A, out-of-order): Pi 4, Pi 400, CM4. MIDR part `0xd08`.
    CortexA72,
    /// Cortex-A76 (ARMv8.2-A, dotprod): Pi 5. MIDR part `0xd0b`.
    CortexA76,
}

impl CpuKind {
    /// Every kind, in MIDR part order.
    pub const ALL: [CpuKind; 3] = [CpuKind::CortexA53, CpuKind::CortexA72, CpuKind::CortexA76];

    /// MIDR_EL1 part number (bits \[15:4\]).
    pub const fn midr_part(self) -> u16 {
        match self {
            CpuKind::CortexA53 => 0xd03,
            CpuKind::CortexA72 => 0xd08,
            CpuKind::CortexA76 => 0xd0b,
        }
    }

    /// The kind for a MIDR part number, if it is one of ours.
    pub const fn from_midr_part(part: u16) -> Option<CpuKind> {
        match part {
            0xd03 => Some(CpuKind::CortexA53),
            0xd08 => Some(CpuKind::CortexA72),
            0xd0b => Some(CpuKind::CortexA76),
            _ => None,
        }
    }

    /// Human-readable core name, e.g. `"Cortex-A72"`.
    pub const fn name(self) -> &'static str {
        match self {
            CpuKind::CortexA53 => "Cortex-A53",
            CpuKind::CortexA72 => "Cortex-A72",
            CpuKind::CortexA76 => "Cortex-A76",
        }
    }

    /// Whether TL1-format weights run faster on this core computed in place with the TL1 lookup
    /// kernel (`vqtbl1q`) than repacked into I2_S at load and multiplied: the measured winner.
    ///
    /// Measured as exact guest instructions of one 2560 × 2560 GEMV under
    /// `qemu-aarch64 -cpu <core>` (`kernels-neon/count-insns.sh`; the same code gives the same
    /// count on every core): TL1 lookups 1.998 M against NEON multiply-accumulate 1.641 M (A53,
    /// A72) and SDOT 1.035 M (A76), so the repack wins everywhere. Instruction counts cannot see
    /// memory stalls; a board timing that reverses a result belongs here.
    pub const fn tl1_lut_wins(self) -> bool {
        match self {
            CpuKind::CortexA53 | CpuKind::CortexA72 | CpuKind::CortexA76 => false,
        }
    }

    /// Features every core of this kind has (what a kernel may assume without detection).
    pub const fn features(self) -> FeatureSet {
        match self {
            CpuKind::CortexA53 | CpuKind::CortexA72 => FeatureSet { neon: true, dotprod: false },
            CpuKind::CortexA76 => FeatureSet { neon: true, dotprod: true },
        }
    }
}

/// CPU features guaranteed on a board (not detected: known from the core).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet {
    /// Advanced SIMD (NEON). Every ARMv8-A core we target has it.
    pub neon: bool,
    /// ARMv8.2 `SDOT`/`UDOT` (`ID_AA64ISAR0_EL1.DP`).
    pub dotprod: bool,
}

/// Where `tern bench` can get *measured* energy on this board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnergySource {
    /// The on-board PMIC (Pi 5, DA9091 "Gilmour"): `vcgencmd pmic_read_adc` prints volts and amps
    /// per rail. Sum V·I over the rails; there is no input-current rail, so the 5 V input
    /// converter's loss is not included.
    PmicReadAdc,
    /// No on-board sensor: use an external USB power meter (the `--energy meter:CMD` route).
    ExternalMeter,
    /// Nothing to measure (emulators).
    None,
}

/// A Linux serial device a board may serve `tern serve --serial` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SerialPort {
    /// Device node, e.g. `/dev/ttyAMA0`.
    pub path: &'static str,
    /// What it is wired to.
    pub what: &'static str,
}

/// Bare-metal facts for boards the `cross/pi-baremetal` image runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BareMetal {
    /// Start of the peripheral window as the ARM cores see it (low-peripheral mode on the Pi 4).
    pub peripheral_base: u64,
    /// PL011 UART0 base address.
    pub uart_base: u64,
    /// PL011 reference clock (`UARTCLK`), Hz. The firmware's default `init_uart_clock` is 48 MHz.
    pub uart_clock_hz: u32,
    /// Address the firmware loads `kernel8.img` at (`kernel_address`, default 0x80000).
    pub kernel_load_addr: u64,
    /// Start of the RAM the image uses.
    pub ram_base: u64,
    /// Bytes of contiguous RAM from `ram_base` the image may assume on the smallest variant
    /// when the device tree does not say (below the peripherals and the default GPU split).
    pub ram_fallback_bytes: u64,
    /// Upper bound of the static arena (KV cache, activations) the image sets up.
    pub arena_bytes: u64,
}

/// Everything tern knows about one board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BoardConfig {
    /// Short stable id, used on the command line and by [`by_name`] (e.g. `"rpi4b"`).
    pub name: &'static str,
    /// Marketing name, e.g. `"Raspberry Pi 4 Model B"`.
    pub display_name: &'static str,
    /// System on chip.
    pub soc: &'static str,
    /// The core type (all cores are the same on these boards).
    pub cpu: CpuKind,
    /// Features guaranteed at compile time on this board.
    pub features: FeatureSet,
    /// Number of cores.
    pub cores: u8,
    /// RAM sizes the board is sold with, bytes, ascending.
    pub ram_options: &'static [u64],
    /// Worker threads `tern` uses by default.
    pub default_threads: u8,
    /// Preferred kernel tier name, as `tern-kernels` names tiers: `"reference"`, `"neon"`,
    /// `"dotprod"`.
    pub kernel_tier: &'static str,
    /// Serial devices under Linux, most useful first.
    pub serial_ports: &'static [SerialPort],
    /// Device-tree `model` prefixes that identify the board. Empty for entries that must only be
    /// chosen by name (emulated boards report the real board's model, if any).
    pub model_prefixes: &'static [&'static str],
    /// Where measured energy comes from.
    pub energy: EnergySource,
    /// Bare-metal data, for boards the `pi-baremetal` image supports.
    pub baremetal: Option<BareMetal>,
}

impl BoardConfig {
    /// Smallest RAM size offered.
    pub const fn min_ram(&self) -> u64 {
        // ram_options is ascending and never empty (checked by a test).
        self.ram_options[0]
    }

    /// Largest RAM size offered.
    pub const fn max_ram(&self) -> u64 {
        self.ram_options[self.ram_options.len() - 1]
    }

    /// Whether `model` with a context of `n_ctx` tokens fits in `ram` bytes on this board under
    /// Linux (see [`models::LINUX_RESERVED_BYTES`]).
    pub const fn fits_linux(&self, model: &ModelSpec, n_ctx: u64, ram: u64) -> bool {
        model.total_bytes(n_ctx) + models::LINUX_RESERVED_BYTES <= ram
    }

    /// Whether `model` with `n_ctx` tokens fits in the smallest RAM variant of this board, under
    /// Linux.
    pub const fn fits(&self, model: &ModelSpec, n_ctx: u64) -> bool {
        self.fits_linux(model, n_ctx, self.min_ram())
    }

    /// Whether `model` fits in the largest RAM variant of this board (under Linux).
    pub const fn fits_some_variant(&self, model: &ModelSpec, n_ctx: u64) -> bool {
        self.fits_linux(model, n_ctx, self.max_ram())
    }

    /// Smallest RAM variant of this board that holds `model` with `n_ctx` tokens under Linux.
    pub fn smallest_ram_for(&self, model: &ModelSpec, n_ctx: u64) -> Option<u64> {
        self.ram_options.iter().copied().find(|&ram| self.fits_linux(model, n_ctx, ram))
    }

    /// Whether the bare-metal image could hold `model` with `n_ctx` tokens on the smallest RAM
    /// variant: [`BareMetal::ram_fallback_bytes`] minus [`models::BAREMETAL_RESERVED_BYTES`]
    /// (image, stack, page tables, device tree), with the arena capped at
    /// [`BareMetal::arena_bytes`].
    pub const fn fits_baremetal(&self, model: &ModelSpec, n_ctx: u64) -> bool {
        let Some(bm) = self.baremetal else { return false };
        let arena = model.arena_bytes(n_ctx);
        arena <= bm.arena_bytes
            && model.weight_bytes + arena + models::BAREMETAL_RESERVED_BYTES
                <= bm.ram_fallback_bytes
    }
}

// -------------------------------------------------------------------------------------------------
// Public Code
// -------------------------------------------------------------------------------------------------

/// Every board, real boards first. Within one core type the first entry is the representative
/// that [`from_midr_part`] returns (Pi 3B for A53, Pi 4B for A72, Pi 5 for A76).
pub const ALL: &[&BoardConfig] = &[
    &RPI3B,
    &RPI3BPLUS,
    &ZERO2W,
    &RPI4B,
    &RPI400,
    &CM4,
    &RPI5,
    &QEMU_VIRT,
    &QEMU_RASPI3B,
    &QEMU_RASPI4B,
];

/// Looks a board up by its [`BoardConfig::name`] (ASCII case-insensitive).
pub fn by_name(name: &str) -> Option<&'static BoardConfig> {
    ALL.iter().copied().find(|b| b.name.eq_ignore_ascii_case(name))
}

/// The representative board for a MIDR part number (A53 → Pi 3B, A72 → Pi 4B, A76 → Pi 5).
pub fn from_midr_part(part: u16) -> Option<&'static BoardConfig> {
    let kind = CpuKind::from_midr_part(part)?;
    ALL.iter().copied().find(|b| b.cpu == kind)
}

/// Splits a raw MIDR_EL1 value into `(implementer, part)`.
pub const fn midr_fields(midr: u64) -> (u8, u16) {
    (((midr >> 24) & 0xff) as u8, ((midr >> 4) & 0xfff) as u16)
}

/// The representative board for a raw MIDR_EL1 value. Only ARM-implemented cores (implementer
/// `0x41`) match.
pub fn from_midr(midr: u64) -> Option<&'static BoardConfig> {
    let (implementer, part) = midr_fields(midr);
    if implementer != MIDR_IMPLEMENTER_ARM {
        return None;
    }
    from_midr_part(part)
}

/// Identifies the board from its device-tree `model` string and, optionally, the MIDR part of the
/// running core.
///
/// The longest [`BoardConfig::model_prefixes`] entry that `model` starts with wins (leading and
/// trailing whitespace and NUL bytes, as read from `/proc/device-tree/model`, are ignored). When
/// no prefix matches, the MIDR part decides ([`from_midr_part`]). When both are known but
/// disagree on the core type (a wrong DTB), the MIDR part wins, because kernels must match the
/// core that runs them.
pub fn detect(model: &str, midr_part: Option<u16>) -> Option<&'static BoardConfig> {
    let model = model.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let mut best: Option<(&'static BoardConfig, usize)> = None;
    if !model.is_empty() {
        for &board in ALL {
            for prefix in board.model_prefixes {
                let longer = match best {
                    Some((_, len)) => prefix.len() > len,
                    None => true,
                };
                if longer && model.starts_with(prefix) {
                    best = Some((board, prefix.len()));
                }
            }
        }
    }
    match (best, midr_part) {
        (Some((board, _)), None) => Some(board),
        (Some((board, _)), Some(part)) if board.cpu.midr_part() == part => Some(board),
        (Some((board, _)), Some(part)) => from_midr_part(part).or(Some(board)),
        (None, Some(part)) => from_midr_part(part),
        (None, None) => None,
    }
}

// -------------------------------------------------------------------------------------------------
// Testing
// -------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
            }
            assert_eq!(by_name(a.name), Some(*a));
        }
        assert_eq!(by_name("RPI4B"), Some(&RPI4B));
        assert_eq!(by_name("nope"), None);
    }

    #[test]
    fn data_is_consistent() {
        for b in ALL {
            assert!(!b.ram_options.is_empty(), "{}", b.name);
            assert!(b.ram_options.windows(2).all(|w| w[0] < w[1]), "{}", b.name);
            assert_eq!(b.features, b.cpu.features(), "{}", b.name);
            assert!(b.default_threads >= 1 && b.default_threads <= b.cores, "{}", b.name);
            let want = if b.features.dotprod { "dotprod" } else { "neon" };
            assert_eq!(b.kernel_tier, want, "{}", b.name);
            if let Some(bm) = b.baremetal {
                assert!(bm.uart_base >= bm.peripheral_base, "{}", b.name);
                assert!(bm.ram_fallback_bytes <= b.min_ram(), "{}", b.name);
                assert!(bm.kernel_load_addr >= bm.ram_base, "{}", b.name);
                assert_eq!(bm.kernel_load_addr % 0x1000, 0, "{}", b.name);
                assert!(bm.arena_bytes > 0 && bm.arena_bytes < b.min_ram(), "{}", b.name);
            }
            for p in b.serial_ports {
                assert!(p.path.starts_with("/dev/tty"), "{}", b.name);
            }
        }
    }

    #[test]
    fn midr_parts() {
        for k in CpuKind::ALL {
            assert_eq!(CpuKind::from_midr_part(k.midr_part()), Some(k));
        }
        assert_eq!(from_midr_part(0xd03).map(|b| b.name), Some("rpi3b"));
        assert_eq!(from_midr_part(0xd08).map(|b| b.name), Some("rpi4b"));
        assert_eq!(from_midr_part(0xd0b).map(|b| b.name), Some("rpi5"));
        assert_eq!(from_midr_part(0xd07), None); // Cortex-A57
    }

    #[test]
    fn midr_values_from_qemu() {
        // Values printed by the bare-metal image under qemu-system-aarch64 10.0.2.
        assert_eq!(from_midr(0x410f_d034).map(|b| b.name), Some("rpi3b")); // -M raspi3b
        assert_eq!(from_midr(0x410f_d083).map(|b| b.name), Some("rpi4b")); // -M raspi4b
        assert_eq!(from_midr(0x414f_d0b1).map(|b| b.name), Some("rpi5")); // -cpu cortex-a76
        assert_eq!(midr_fields(0x410f_d083), (0x41, 0xd08));
        // Same part number from another implementer is not ours.
        assert_eq!(from_midr(0x510f_d083), None);
    }

    #[test]
    fn detect_longest_prefix() {
        let d = |m: &str, p| detect(m, p).map(|b| b.name);
        assert_eq!(d("Raspberry Pi 3 Model B Rev 1.2", None), Some("rpi3b"));
        assert_eq!(d("Raspberry Pi 3 Model B Plus Rev 1.3", None), Some("rpi3bplus"));
        assert_eq!(d("Raspberry Pi 3 Model B Plus Rev 1.3\0", Some(0xd03)), Some("rpi3bplus"));
        assert_eq!(d("Raspberry Pi 4 Model B Rev 1.4", Some(0xd08)), Some("rpi4b"));
        assert_eq!(d("Raspberry Pi 400 Rev 1.0", None), Some("rpi400"));
        assert_eq!(d("Raspberry Pi Compute Module 4 Rev 1.0", None), Some("cm4"));
        assert_eq!(d("Raspberry Pi Zero 2 W Rev 1.0", None), Some("zero2w"));
        assert_eq!(d("Raspberry Pi 5 Model B Rev 1.0", Some(0xd0b)), Some("rpi5"));
        assert_eq!(d("linux,dummy-virt", None), Some("qemu-virt"));
    }

    #[test]
    fn detect_falls_back_to_midr() {
        let d = |m: &str, p| detect(m, p).map(|b| b.name);
        assert_eq!(d("", Some(0xd08)), Some("rpi4b"));
        assert_eq!(d("Raspberry Pi 3 Model A Plus Rev 1.0", Some(0xd03)), Some("rpi3b"));
        assert_eq!(d("Some Other Board", Some(0xd0b)), Some("rpi5"));
        assert_eq!(d("Some Other Board", None), None);
        assert_eq!(d("", None), None);
        // A Pi 4 DTB on an A53 core: trust the core.
        assert_eq!(d("Raspberry Pi 4 Model B Rev 1.4", Some(0xd03)), Some("rpi3b"));
        // Unknown core with a known model: trust the model.
        assert_eq!(d("Raspberry Pi 4 Model B Rev 1.4", Some(0xd07)), Some("rpi4b"));
    }

    #[test]
    fn emulated_raspi_entries_only_by_name() {
        for m in ["Raspberry Pi 3 Model B Rev 1.2", "Raspberry Pi 4 Model B Rev 1.5"] {
            let b = detect(m, None).map(|b| b.name).unwrap_or("");
            assert!(!b.starts_with("qemu"), "{m} -> {b}");
        }
    }

    #[test]
    fn models_that_fit() {
        let big = &models::BITNET_B1_58_2B_4T;
        // ~1.2 GB of weights: not on 512 MB / 1 GB boards, yes on 2 GB and up.
        assert!(big.weight_bytes > 1_150_000_000 && big.weight_bytes < 1_250_000_000);
        for b in [&ZERO2W, &RPI3B, &RPI3BPLUS] {
            assert!(!b.fits(big, 2048), "{}", b.name);
            assert!(!b.fits_some_variant(big, 2048), "{}", b.name);
            assert!(!b.fits_baremetal(big, 2048), "{}", b.name);
        }
        assert!(!RPI4B.fits(big, 2048)); // the 1 GB Pi 4
        assert_eq!(RPI4B.smallest_ram_for(big, 2048), Some(2 * GIB));
        assert!(RPI400.fits(big, 2048));
        assert!(RPI5.fits_some_variant(big, 4096));
        // Tiny test models fit everywhere, bare metal included.
        for b in ALL {
            assert!(b.fits(&models::TINY_TRAINED, 256), "{}", b.name);
            if b.baremetal.is_some() {
                assert!(b.fits_baremetal(&models::TINY_TRAINED, 256), "{}", b.name);
            }
        }
    }
}
