//! EL1 exception handling: the vector table (`exception.s`) and handlers that print a report over
//! the UART (ESR with its exception class decoded, ELR, FAR, SPSR, registers) and stop.
//!
//! Orientation: architecture half of exception handling (tutorials' `_arch/aarch64/exception.rs`).
//! Interrupts stay masked for the whole run, so every exception taken here is a bug or a fault.

use aarch64_cpu::registers::{FAR_EL1, Readable};
use core::arch::global_asm;
use core::fmt;

// The table and the save/restore code; the handlers below are called from it.
global_asm!(include_str!("exception.s"));

/// Registers saved by the vector entry, in the order `exception.s` stores them.
#[repr(C)]
pub struct ExceptionContext {
    /// x0 … x29.
    gpr: [u64; 30],
    /// x30.
    lr: u64,
    /// Where the exception was taken.
    elr: u64,
    /// Saved PSTATE.
    spsr: u64,
    /// Exception syndrome.
    esr: u64,
}

const _: () = assert!(core::mem::size_of::<ExceptionContext>() == 16 * 17);

/// Name of an ESR_EL1 exception class (bits \[31:26\]).
pub fn exception_class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction?)",
        0x01 => "trapped WFI/WFE",
        0x07 => "access to SIMD/FP trapped (CPACR_EL1.FPEN)",
        0x0e => "illegal execution state",
        0x15 => "SVC in AArch64",
        0x16 => "HVC in AArch64",
        0x17 => "SMC in AArch64",
        0x18 => "trapped MSR/MRS/system instruction",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort, same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort, same EL",
        0x26 => "SP alignment fault",
        0x2c => "trapped floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "other (see the Arm ARM, ESR_EL1.EC)",
    }
}

/// Name of a data/instruction abort's fault status code (ESR.ISS bits \[5:0\]).
fn fault_status_name(dfsc: u8) -> &'static str {
    match dfsc {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x08..=0x0b => "access flag fault",
        0x0c..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict abort",
        _ => "other fault",
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = ((self.esr >> 26) & 0x3f) as u8;
        writeln!(
            f,
            "  ESR_EL1  {:#018x}  class {:#04x}: {}",
            self.esr,
            ec,
            exception_class_name(ec)
        )?;
        if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
            let dfsc = (self.esr & 0x3f) as u8;
            let write = ec >= 0x24 && self.esr & (1 << 6) != 0;
            writeln!(
                f,
                "           {} (FSC {:#04x}){}",
                fault_status_name(dfsc),
                dfsc,
                if write { " on a write" } else { "" },
            )?;
        }
        writeln!(f, "  ELR_EL1  {:#018x}  (faulting instruction)", self.elr)?;
        writeln!(f, "  FAR_EL1  {:#018x}  (faulting address, if any)", FAR_EL1.get())?;
        writeln!(f, "  SPSR_EL1 {:#018x}", self.spsr)?;
        for (i, pair) in self.gpr.chunks(2).enumerate() {
            writeln!(f, "  x{:<2} {:#018x}  x{:<2} {:#018x}", 2 * i, pair[0], 2 * i + 1, pair[1])?;
        }
        write!(f, "  x30 {:#018x}", self.lr)
    }
}

/// Prints the report and stops (exits QEMU with status 2 under `qemu-exit`).
fn report(kind: &str, ctx: &ExceptionContext) -> ! {
    crate::console::emergency_print(format_args!(
        "\n*** CPU exception: {kind}\n{ctx}\n*** halted\n"
    ));
    super::semihosting::exit(2)
}

// The names are referenced from exception.s; each receives the saved context on the stack.

#[unsafe(no_mangle)]
extern "C" fn exc_current_el0_sync(ctx: &ExceptionContext) {
    report("synchronous, current EL with SP0", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_el0_irq(ctx: &ExceptionContext) {
    report("IRQ, current EL with SP0", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_el0_fiq(ctx: &ExceptionContext) {
    report("FIQ, current EL with SP0", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_el0_serror(ctx: &ExceptionContext) {
    report("SError, current EL with SP0", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_elx_sync(ctx: &ExceptionContext) {
    report("synchronous, EL1", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_elx_irq(ctx: &ExceptionContext) {
    report("IRQ, EL1 (interrupts should be masked)", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_elx_fiq(ctx: &ExceptionContext) {
    report("FIQ, EL1 (interrupts should be masked)", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_current_elx_serror(ctx: &ExceptionContext) {
    report("SError, EL1", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_lower_el_sync(ctx: &ExceptionContext) {
    report("synchronous, lower EL", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_lower_el_irq(ctx: &ExceptionContext) {
    report("IRQ, lower EL", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_lower_el_fiq(ctx: &ExceptionContext) {
    report("FIQ, lower EL", ctx)
}
#[unsafe(no_mangle)]
extern "C" fn exc_lower_el_serror(ctx: &ExceptionContext) {
    report("SError, lower EL", ctx)
}
