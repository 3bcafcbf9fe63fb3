//! ARM semihosting `SYS_EXIT`, to end a QEMU run with an exit status.
//!
//! Needs `qemu-system-aarch64 -semihosting-config enable=on,target=native`. On a real board without
//! a debugger, `hlt #0xf000` is an undefined instruction, so only the `qemu-exit` feature calls it.

/// `SYS_EXIT` operation number.
const SYS_EXIT: u64 = 0x18;
/// `ADP_Stopped_ApplicationExit`: "the application exited", with a status in the second word.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// Ends the QEMU process with `code` as its exit status.
#[cfg(feature = "qemu-exit")]
pub fn exit(code: u32) -> ! {
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, code as u64];
    // SAFETY: the semihosting call reads the two-word parameter block at x1, which lives on our
    // stack for the duration of the call; QEMU does not return from SYS_EXIT.
    unsafe {
        core::arch::asm!(
            "hlt #0xf000",
            in("x0") SYS_EXIT,
            in("x1") block.as_ptr(),
            options(nostack, readonly),
        );
    }
    super::cpu::wait_forever()
}

/// Without `qemu-exit` there is nobody to exit to: halt.
#[cfg(not(feature = "qemu-exit"))]
pub fn exit(_code: u32) -> ! {
    let _ = (SYS_EXIT, ADP_STOPPED_APPLICATION_EXIT);
    super::cpu::wait_forever()
}
