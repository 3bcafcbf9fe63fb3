//! The board entries: one `pub const` per board (data sheets, the firmware's `config.txt` and
//! device-tree documentation, and what QEMU 10.0.2 emulates).

use crate::models::{GIB, MIB};
use crate::{BareMetal, BoardConfig, CpuKind, EnergySource, SerialPort};

// -------------------------------------------------------------------------------------------------
// Serial ports
// -------------------------------------------------------------------------------------------------

const AMA0_GPIO_BT: SerialPort = SerialPort {
    path: "/dev/ttyAMA0",
    what: "PL011 UART0; drives Bluetooth unless `dtoverlay=disable-bt`, then GPIO 14/15",
};
const S0_MINI: SerialPort = SerialPort {
    path: "/dev/ttyS0",
    what: "mini UART on GPIO 14/15 (`/dev/serial0`); baud follows the core clock, set core_freq",
};
const GS0: SerialPort =
    SerialPort { path: "/dev/ttyGS0", what: "USB gadget serial (`dtoverlay=dwc2` + `g_serial`)" };
const PI5_DEBUG: SerialPort =
    SerialPort { path: "/dev/ttyAMA10", what: "3-pin debug UART connector between the HDMI ports" };
const PI5_AMA0: SerialPort =
    SerialPort { path: "/dev/ttyAMA0", what: "RP1 UART0 on GPIO 14/15 (`dtparam=uart0=on`)" };
const QEMU_AMA0: SerialPort =
    SerialPort { path: "/dev/ttyAMA0", what: "emulated PL011 (`-serial stdio`)" };

// -------------------------------------------------------------------------------------------------
// Bare-metal memory maps
// -------------------------------------------------------------------------------------------------

/// BCM2837 / BCM2710A1 (Pi 3, Zero 2 W): peripherals at 0x3F00_0000.
const BCM2837_BASE: u64 = 0x3F00_0000;
/// BCM2711 (Pi 4) in low-peripheral mode (the default): main peripherals at 0xFE00_0000.
const BCM2711_BASE: u64 = 0xFE00_0000;
/// PL011 UART0 offset in the main peripheral window.
const PL011_OFFSET: u64 = 0x20_1000;
/// Default `init_uart_clock` of current firmware.
const UART_CLOCK_48MHZ: u32 = 48_000_000;
/// Where the firmware loads `kernel8.img` with `arm_64bit=1`.
const KERNEL8_ADDR: u64 = 0x8_0000;
/// ARM RAM below the GPU split with the default `gpu_mem=76` on a 1 GB board (0x3B40_0000);
/// on a Pi 4 this is the first GiB's ARM part.
const ARM_RAM_1G_GPU76: u64 = 0x3B40_0000;

// -------------------------------------------------------------------------------------------------
// Boards
// -------------------------------------------------------------------------------------------------

/// Raspberry Pi Zero 2 W: RP3A0 SiP (BCM2710A1 + 512 MB), 4× Cortex-A53 at 1 GHz.
pub const ZERO2W: BoardConfig = BoardConfig {
    name: "zero2w",
    display_name: "Raspberry Pi Zero 2 W",
    soc: "RP3A0 (BCM2710A1)",
    cpu: CpuKind::CortexA53,
    features: CpuKind::CortexA53.features(),
    cores: 4,
    ram_options: &[512 * MIB],
    default_threads: 4,
    kernel_tier: "neon",
    serial_ports: &[S0_MINI, AMA0_GPIO_BT, GS0],
    model_prefixes: &["Raspberry Pi Zero 2 W"],
    energy: EnergySource::ExternalMeter,
    baremetal: Some(BareMetal {
        peripheral_base: BCM2837_BASE,
        uart_base: BCM2837_BASE + PL011_OFFSET,
        uart_clock_hz: UART_CLOCK_48MHZ,
        kernel_load_addr: KERNEL8_ADDR,
        ram_base: 0,
        // 512 MB minus the default 64 MB GPU split.
        ram_fallback_bytes: 448 * MIB,
        arena_bytes: 64 * MIB,
    }),
};

/// Raspberry Pi 3 Model B: BCM2837, 4× Cortex-A53 at 1.2 GHz, 1 GB.
pub const RPI3B: BoardConfig = BoardConfig {
    name: "rpi3b",
    display_name: "Raspberry Pi 3 Model B",
    soc: "BCM2837",
    cpu: CpuKind::CortexA53,
    features: CpuKind::CortexA53.features(),
    cores: 4,
    ram_options: &[GIB],
    default_threads: 4,
    kernel_tier: "neon",
    serial_ports: &[S0_MINI, AMA0_GPIO_BT],
    model_prefixes: &["Raspberry Pi 3 Model B"],
    energy: EnergySource::ExternalMeter,
    baremetal: Some(BareMetal {
        peripheral_base: BCM2837_BASE,
        uart_base: BCM2837_BASE + PL011_OFFSET,
        uart_clock_hz: UART_CLOCK_48MHZ,
        kernel_load_addr: KERNEL8_ADDR,
        ram_base: 0,
        ram_fallback_bytes: ARM_RAM_1G_GPU76,
        arena_bytes: 128 * MIB,
    }),
};

/// Raspberry Pi 3 Model B+: BCM2837B0, 4× Cortex-A53 at 1.4 GHz, 1 GB.
pub const RPI3BPLUS: BoardConfig = BoardConfig {
    name: "rpi3bplus",
    display_name: "Raspberry Pi 3 Model B+",
    soc: "BCM2837B0",
    model_prefixes: &["Raspberry Pi 3 Model B Plus"],
    ..RPI3B
};

/// Raspberry Pi 4 Model B: BCM2711, 4× Cortex-A72 at 1.5–1.8 GHz, 1/2/4/8 GB.
pub const RPI4B: BoardConfig = BoardConfig {
    name: "rpi4b",
    display_name: "Raspberry Pi 4 Model B",
    soc: "BCM2711",
    cpu: CpuKind::CortexA72,
    features: CpuKind::CortexA72.features(),
    cores: 4,
    ram_options: &[GIB, 2 * GIB, 4 * GIB, 8 * GIB],
    default_threads: 4,
    kernel_tier: "neon",
    serial_ports: &[S0_MINI, AMA0_GPIO_BT, GS0],
    model_prefixes: &["Raspberry Pi 4 Model B"],
    energy: EnergySource::ExternalMeter,
    baremetal: Some(BareMetal {
        peripheral_base: BCM2711_BASE,
        uart_base: BCM2711_BASE + PL011_OFFSET,
        uart_clock_hz: UART_CLOCK_48MHZ,
        kernel_load_addr: KERNEL8_ADDR,
        ram_base: 0,
        // The image uses the first GiB only (the rest needs the DTB's /memory node).
        ram_fallback_bytes: ARM_RAM_1G_GPU76,
        arena_bytes: 256 * MIB,
    }),
};

/// Raspberry Pi 400: a Pi 4 (BCM2711 C0, 1.8 GHz) in a keyboard, 4 GB.
pub const RPI400: BoardConfig = BoardConfig {
    name: "rpi400",
    display_name: "Raspberry Pi 400",
    ram_options: &[4 * GIB],
    serial_ports: &[S0_MINI, AMA0_GPIO_BT],
    model_prefixes: &["Raspberry Pi 400"],
    ..RPI4B
};

/// Compute Module 4: BCM2711, 1/2/4/8 GB.
pub const CM4: BoardConfig = BoardConfig {
    name: "cm4",
    display_name: "Raspberry Pi Compute Module 4",
    model_prefixes: &["Raspberry Pi Compute Module 4"],
    ..RPI4B
};

/// Raspberry Pi 5: BCM2712, 4× Cortex-A76 at 2.4 GHz, 1/2/4/8/16 GB, RP1 I/O chip.
///
/// No bare-metal entry: the GPIO UARTs sit behind PCIe on RP1, which the image does not drive.
pub const RPI5: BoardConfig = BoardConfig {
    name: "rpi5",
    display_name: "Raspberry Pi 5",
    soc: "BCM2712",
    cpu: CpuKind::CortexA76,
    features: CpuKind::CortexA76.features(),
    cores: 4,
    ram_options: &[GIB, 2 * GIB, 4 * GIB, 8 * GIB, 16 * GIB],
    default_threads: 4,
    kernel_tier: "dotprod",
    serial_ports: &[PI5_DEBUG, PI5_AMA0, GS0],
    model_prefixes: &["Raspberry Pi 5 Model B"],
    energy: EnergySource::PmicReadAdc,
    baremetal: None,
};

/// QEMU `-M virt -cpu cortex-a76`: the Pi 5 stand-in with dotprod (TOOLCHAIN §2.8). Its DTB has
/// no `model`; pass the first `compatible` string (`linux,dummy-virt`) to [`crate::detect`].
pub const QEMU_VIRT: BoardConfig = BoardConfig {
    name: "qemu-virt",
    display_name: "QEMU virt (cortex-a76)",
    soc: "QEMU virt",
    cpu: CpuKind::CortexA76,
    features: CpuKind::CortexA76.features(),
    cores: 1,
    ram_options: &[GIB],
    default_threads: 1,
    kernel_tier: "dotprod",
    serial_ports: &[QEMU_AMA0],
    model_prefixes: &["linux,dummy-virt"],
    energy: EnergySource::None,
    baremetal: Some(BareMetal {
        peripheral_base: 0x0800_0000,
        uart_base: 0x0900_0000,
        uart_clock_hz: 24_000_000,
        kernel_load_addr: 0x4008_0000,
        ram_base: 0x4000_0000,
        ram_fallback_bytes: GIB,
        arena_bytes: 256 * MIB,
    }),
};

/// QEMU `-M raspi3b` (fixed 1 GiB, 4 cores, 64 MiB of VideoCore RAM at the top of the first GiB).
pub const QEMU_RASPI3B: BoardConfig = BoardConfig {
    name: "qemu-raspi3b",
    display_name: "QEMU raspi3b",
    soc: "BCM2837 (emulated)",
    default_threads: 1,
    serial_ports: &[QEMU_AMA0],
    model_prefixes: &[],
    energy: EnergySource::None,
    baremetal: Some(BareMetal {
        peripheral_base: BCM2837_BASE,
        uart_base: BCM2837_BASE + PL011_OFFSET,
        uart_clock_hz: UART_CLOCK_48MHZ,
        kernel_load_addr: KERNEL8_ADDR,
        ram_base: 0,
        ram_fallback_bytes: 0x3C00_0000,
        arena_bytes: 128 * MIB,
    }),
    ..RPI3B
};

/// QEMU `-M raspi4b` (fixed 2 GiB, 4 cores; QEMU 10 or later).
pub const QEMU_RASPI4B: BoardConfig = BoardConfig {
    name: "qemu-raspi4b",
    display_name: "QEMU raspi4b",
    soc: "BCM2711 (emulated)",
    ram_options: &[2 * GIB],
    default_threads: 1,
    serial_ports: &[QEMU_AMA0],
    model_prefixes: &[],
    energy: EnergySource::None,
    baremetal: Some(BareMetal {
        peripheral_base: BCM2711_BASE,
        uart_base: BCM2711_BASE + PL011_OFFSET,
        uart_clock_hz: UART_CLOCK_48MHZ,
        kernel_load_addr: KERNEL8_ADDR,
        ram_base: 0,
        ram_fallback_bytes: 0x3C00_0000,
        arena_bytes: 256 * MIB,
    }),
    ..RPI4B
};
