// EL1 exception vector table: 16 entries of 0x80 bytes, 2 KiB aligned (VBAR_EL1 = __exception_vectors).
// Each entry saves x0-x30, ELR_EL1, SPSR_EL1 and ESR_EL1 in an `ExceptionContext` on the stack and
// calls a Rust handler with a pointer to it. Handlers that return resume the interrupted code.

.macro SAVE_AND_CALL handler
.balign 0x80
    sub     sp,  sp,  #16 * 17
    stp     x0,  x1,  [sp, #16 * 0]
    stp     x2,  x3,  [sp, #16 * 1]
    stp     x4,  x5,  [sp, #16 * 2]
    stp     x6,  x7,  [sp, #16 * 3]
    stp     x8,  x9,  [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x1,  ELR_EL1
    stp     lr,  x1,  [sp, #16 * 15]
    mrs     x1,  SPSR_EL1
    mrs     x2,  ESR_EL1
    stp     x1,  x2,  [sp, #16 * 16]
    mov     x0,  sp
    bl      \handler
    b       __exception_restore
.endm

.section .text.exception_vectors
.balign 0x800
.global __exception_vectors
__exception_vectors:
    // Current EL with SP0 (unused: we always run on SP_EL1).
    SAVE_AND_CALL exc_current_el0_sync
    SAVE_AND_CALL exc_current_el0_irq
    SAVE_AND_CALL exc_current_el0_fiq
    SAVE_AND_CALL exc_current_el0_serror
    // Current EL with SPx: where kernel faults land.
    SAVE_AND_CALL exc_current_elx_sync
    SAVE_AND_CALL exc_current_elx_irq
    SAVE_AND_CALL exc_current_elx_fiq
    SAVE_AND_CALL exc_current_elx_serror
    // Lower EL, AArch64 and AArch32 (we have no lower EL code).
    SAVE_AND_CALL exc_lower_el_sync
    SAVE_AND_CALL exc_lower_el_irq
    SAVE_AND_CALL exc_lower_el_fiq
    SAVE_AND_CALL exc_lower_el_serror
    SAVE_AND_CALL exc_lower_el_sync
    SAVE_AND_CALL exc_lower_el_irq
    SAVE_AND_CALL exc_lower_el_fiq
    SAVE_AND_CALL exc_lower_el_serror

__exception_restore:
    ldp     x1,  x2,  [sp, #16 * 16]
    msr     SPSR_EL1, x1
    ldp     lr,  x1,  [sp, #16 * 15]
    msr     ELR_EL1, x1
    ldp     x0,  x1,  [sp, #16 * 0]
    ldp     x2,  x3,  [sp, #16 * 1]
    ldp     x4,  x5,  [sp, #16 * 2]
    ldp     x6,  x7,  [sp, #16 * 3]
    ldp     x8,  x9,  [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    add     sp,  sp,  #16 * 17
    eret
