// tern bare-metal boot code (Raspberry Pi 3/4, QEMU raspi3b/raspi4b).
//
// Entered at 0x80000. From the Pi firmware (armstub8) and QEMU's raspi boot stub: core 0 only,
// at EL2, x0 = device-tree address (0 without a DTB). From QEMU with an ELF: every core, at EL3.
// Steps: keep x0, park cores other than 0, drop to EL1 (EL3 -> EL2 -> EL1), enable FP/SIMD,
// set the stack, clear .bss, install the exception vectors, then call `_start_rust(dtb, boot_el)`.

.section .text._start
.global _start
_start:
    // A Linux arm64 Image header (Documentation/arch/arm64/booting.rst), so firmware that checks
    // for a Linux kernel treats us as one (passes the DTB in x0, places the initramfs after
    // image_size bytes). The first word branches over it.
    b       _start_real                 // code0
    .word   0                           // code1
    .quad   0x80000                     // text_offset
    .quad   __image_size                // image_size, .bss included
    .quad   0                           // flags: little endian, page size unspecified
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .word   0x644d5241                  // magic "ARM\x64"
    .word   0                           // res5

_start_real:
    mov     x19, x0                     // device-tree address, kept for Rust

    // Only core 0 boots; others sleep (WFI, not WFE: TCG spins on WFE, TOOLCHAIN.md 2.5).
    mrs     x1, MPIDR_EL1
    and     x1, x1, #0xff
    cbnz    x1, _park_secondary

    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    and     x20, x20, #3                // x20 = exception level we were entered at
    cmp     x20, #3
    b.ne    1f

    // EL3 -> EL2: lower levels non-secure and AArch64, HVC on, SMC off; no FP traps.
    mov     x1, #0x5b1                  // SCR_EL3: NS | RES1(5:4) | SMD | HCE | RW
    msr     SCR_EL3, x1
    msr     CPTR_EL3, xzr
    mov     x1, #0x3c9                  // SPSR: DAIF masked, EL2h
    msr     SPSR_EL3, x1
    adr     x1, 2f
    msr     ELR_EL3, x1
    eret

1:  cmp     x20, #2
    b.ne    3f

2:  // EL2 -> EL1: EL1 may read the physical counter, EL1 is AArch64, no FP/SIMD traps.
    mrs     x1, CNTHCTL_EL2
    orr     x1, x1, #3                  // EL1PCEN | EL1PCTEN
    msr     CNTHCTL_EL2, x1
    msr     CNTVOFF_EL2, xzr
    mov     x1, #0x80000000             // HCR_EL2.RW
    msr     HCR_EL2, x1
    mov     x1, #0x33ff                 // CPTR_EL2: RES1 bits, TFP = 0
    msr     CPTR_EL2, x1
    msr     HSTR_EL2, xzr
    movz    x1, #0x0800
    movk    x1, #0x30d0, lsl #16        // SCTLR_EL1 RES1 bits; MMU, caches and alignment checks off
    msr     SCTLR_EL1, x1
    mov     x1, #0x3c5                  // SPSR: DAIF masked, EL1h
    msr     SPSR_EL2, x1
    adr     x1, 3f
    msr     ELR_EL2, x1
    eret

3:  // EL1. FP/SIMD on before any Rust (CPACR_EL1.FPEN = 0b11): Rust uses q registers freely.
    mov     x1, #(3 << 20)
    msr     CPACR_EL1, x1
    isb

    ldr     x1, =__boot_core_stack_end_exclusive
    mov     sp, x1

    ldr     x1, =__bss_start
    ldr     x2, =__bss_end_exclusive
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b

5:  ldr     x1, =__exception_vectors
    msr     VBAR_EL1, x1
    isb

    mov     x0, x19
    mov     x1, x20
    b       _start_rust

// Secondary cores (and cores released from the firmware's spin table) end here.
.global _park_secondary
_park_secondary:
    wfi
    b       _park_secondary

.ltorg
