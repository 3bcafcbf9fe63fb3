//! PL011 UART0 driver (polling, no interrupts) implementing `embedded_io::{Read, Write}`, plus the
//! GPIO 14/15 set-up real boards need.
//!
//! Orientation: BSP driver (tutorials' `bsp/device_driver/bcm/bcm2xxx_pl011_uart.rs`), written
//! from the PL011 TRM (ARM DDI 0183) and the BCM2837/BCM2711 peripheral manuals.
//!
//! On QEMU the UART needs no set-up at all; on hardware the GPIO pins must be switched to ALT0 and
//! the baud-rate divisor programmed. Re-programming LCRH empties the receive FIFO, so a host must
//! wait for the first prompt before sending (TOOLCHAIN.md 2.4).

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

// PL011 register offsets.
const DR: usize = 0x00;
const FR: usize = 0x18;
const IBRD: usize = 0x24;
const FBRD: usize = 0x28;
const LCRH: usize = 0x2c;
const CR: usize = 0x30;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;

// Flag register bits.
const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const FR_BUSY: u32 = 1 << 3;
// Data register error bits (received byte in bits 7:0).
const DR_FE: u32 = 1 << 8;
const DR_PE: u32 = 1 << 9;
const DR_BE: u32 = 1 << 10;
const DR_OE: u32 = 1 << 11;
// Line control: 8 data bits, FIFOs on, 1 stop bit, no parity.
const LCRH_WLEN8: u32 = 0b11 << 5;
const LCRH_FEN: u32 = 1 << 4;
// Control: UART, transmitter and receiver enable.
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;

// GPIO (offsets from the GPIO block, peripheral base + 0x20_0000).
const GPIO_OFFSET: usize = 0x20_0000;
const GPFSEL1: usize = 0x04;
const GPPUD: usize = 0x94;
const GPPUDCLK0: usize = 0x98;
const GPIO_PUP_PDN_CNTRL_REG0: usize = 0xe4;

/// The baud rate the image uses (the firmware's and every USB-serial adapter's default).
pub const BAUD: u32 = 115_200;

/// How the GPIO block sets pull-ups/downs (the BCM2711 changed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpioKind {
    /// BCM2835/2837: GPPUD + GPPUDCLK0 clocking sequence.
    Bcm2837,
    /// BCM2711: GPIO_PUP_PDN_CNTRL registers, two bits per pin.
    Bcm2711,
}

/// A receive error reported in the data register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UartError {
    /// The receive FIFO overflowed: bytes were lost.
    Overrun,
    /// Break condition (line held low).
    Break,
    /// Parity error.
    Parity,
    /// Framing error (wrong baud rate?).
    Framing,
}

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            UartError::Overrun => embedded_io::ErrorKind::OutOfMemory,
            UartError::Break => embedded_io::ErrorKind::Interrupted,
            UartError::Parity | UartError::Framing => embedded_io::ErrorKind::InvalidData,
        }
    }
}

impl fmt::Display for UartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            UartError::Overrun => "receive overrun",
            UartError::Break => "break",
            UartError::Parity => "parity error",
            UartError::Framing => "framing error",
        };
        f.write_str(s)
    }
}

impl core::error::Error for UartError {}

/// One PL011 UART, addressed by its MMIO base.
#[derive(Debug)]
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// A handle on the PL011 at `base`.
    ///
    /// # Safety
    /// - `base` must be the MMIO base of a PL011, mapped as device memory (or the MMU off).
    /// - Concurrent handles are allowed only where byte interleaving is acceptable (the console
    ///   and the panic/exception printer share the UART this way); there is no other shared state.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    /// The MMIO base address.
    pub fn base(&self) -> usize {
        self.base
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `base` is a PL011 (constructor contract) and `offset` one of its registers.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`; writes to these registers only configure or feed the UART.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// Routes GPIO 14/15 to UART0 (ALT0) with pulls disabled, then programs 115 200 8N1 with FIFOs
    /// for a `clock_hz` reference clock.
    pub fn init(&mut self, peripheral_base: usize, gpio: GpioKind, clock_hz: u32) {
        // SAFETY: the GPIO block sits at a fixed offset from the peripheral base the BSP passes,
        // which is mapped as device memory.
        unsafe { configure_gpio_14_15(peripheral_base + GPIO_OFFSET, gpio) };

        self.write_reg(CR, 0);
        while self.read_reg(FR) & FR_BUSY != 0 {}
        self.write_reg(LCRH, 0); // flush the transmit FIFO
        self.write_reg(ICR, 0x7ff);
        // divisor · 64 = clock · 4 / baud, rounded.
        let div64 = ((clock_hz as u64 * 4 + BAUD as u64 / 2) / BAUD as u64) as u32;
        self.write_reg(IBRD, div64 >> 6);
        self.write_reg(FBRD, div64 & 0x3f);
        self.write_reg(LCRH, LCRH_WLEN8 | LCRH_FEN);
        self.write_reg(IMSC, 0);
        self.write_reg(CR, CR_UARTEN | CR_TXE | CR_RXE);
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn write_byte(&mut self, b: u8) {
        while self.read_reg(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.write_reg(DR, b as u32);
    }

    /// A received byte, if one is waiting.
    pub fn try_read_byte(&mut self) -> Option<Result<u8, UartError>> {
        if self.read_reg(FR) & FR_RXFE != 0 {
            return None;
        }
        let dr = self.read_reg(DR);
        Some(if dr & DR_OE != 0 {
            Err(UartError::Overrun)
        } else if dr & DR_BE != 0 {
            Err(UartError::Break)
        } else if dr & DR_PE != 0 {
            Err(UartError::Parity)
        } else if dr & DR_FE != 0 {
            Err(UartError::Framing)
        } else {
            Ok(dr as u8)
        })
    }

    /// Waits until every queued byte has left the shifter.
    pub fn flush_tx(&mut self) {
        while self.read_reg(FR) & FR_BUSY != 0 {
            core::hint::spin_loop();
        }
    }
}

/// The BCM GPIO block.
struct Gpio {
    base: usize,
}

impl Gpio {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `base` is the GPIO block (contract of `configure_gpio_14_15`), `offset` one of
        // its registers.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`; these registers only configure pin functions and pulls.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }
}

/// Switches GPIO 14 (TXD0) and 15 (RXD0) to ALT0 with no pull-up/down.
///
/// # Safety
/// - `gpio_base` must be the BCM GPIO block of this SoC, mapped as device memory.
unsafe fn configure_gpio_14_15(gpio_base: usize, kind: GpioKind) {
    let gpio = Gpio { base: gpio_base };
    // ALT0 = 0b100 in the 3-bit fields of pins 14 (bits 14:12) and 15 (bits 17:15).
    let v = gpio.read(GPFSEL1);
    gpio.write(GPFSEL1, (v & !(0b111_111 << 12)) | (0b100_100 << 12));
    match kind {
        GpioKind::Bcm2837 => {
            // BCM2835 manual: write the pull control, wait 150 cycles, clock it into pins 14 and
            // 15, wait, remove the clock.
            gpio.write(GPPUD, 0);
            spin_cycles(150);
            gpio.write(GPPUDCLK0, (1 << 14) | (1 << 15));
            spin_cycles(150);
            gpio.write(GPPUDCLK0, 0);
        }
        GpioKind::Bcm2711 => {
            // GPIO_PUP_PDN_CNTRL_REG0 holds 2 bits per pin 0..15; 0 = no pull.
            let v = gpio.read(GPIO_PUP_PDN_CNTRL_REG0);
            gpio.write(GPIO_PUP_PDN_CNTRL_REG0, v & !(0b1111 << 28));
        }
    }
}

fn spin_cycles(n: u32) {
    for _ in 0..n {
        aarch64_cpu::asm::nop();
    }
}

impl embedded_io::ErrorType for Pl011 {
    type Error = UartError;
}

impl embedded_io::Read for Pl011 {
    /// Blocks until at least one byte arrives, then returns what is in the FIFO (up to `buf.len()`).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        while n < buf.len() {
            match self.try_read_byte() {
                Some(Ok(b)) => {
                    buf[n] = b;
                    n += 1;
                }
                Some(Err(e)) if n == 0 => return Err(e),
                Some(Err(_)) | None if n > 0 => break,
                _ => core::hint::spin_loop(),
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Pl011 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        for &b in buf {
            self.write_byte(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), UartError> {
        self.flush_tx();
        Ok(())
    }
}

impl fmt::Write for Pl011 {
    /// Writes `s`, turning `\n` into `\r\n` for terminals.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}
