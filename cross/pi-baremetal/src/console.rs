//! Last-resort printing for the panic handler and the exception report: writes straight to the
//! console UART through a fresh handle, whatever state the rest of the kernel is in.

use core::fmt::{self, Write};

/// Prints `args` on the console UART (nothing before the UART is initialised).
pub fn emergency_print(args: fmt::Arguments<'_>) {
    if let Some(mut uart) = crate::bsp::console_uart() {
        let _ = uart.write_fmt(args);
        uart.flush_tx();
    }
}
