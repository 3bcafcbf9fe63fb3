//! Unaligned-safe vector loads.
//!
//! On Linux targets these are the plain `vld1q_*` intrinsics. `aarch64-unknown-none` is built with
//! `+strict-align`, where LLVM lowers a byte-aligned `vld1q_u8` to 16 `ldrb` plus shifts (16× the
//! instructions, TOOLCHAIN §2.9). There we emit `ld1 {vN.<T>}, [p]` directly: `ld1` only requires
//! alignment to its element size, which every `&[u8]`/`&[u16]`/`&[f32]` pointer has.
//!
//! Orientation: helper for [`super::neon`], [`super::dotprod`].

use core::arch::aarch64::*;
#[cfg(target_os = "none")]
use core::arch::asm;

/// Loads 16 bytes.
///
/// # Safety
/// - `p` must be valid for reads of 16 bytes.
#[inline(always)]
pub(crate) unsafe fn u8x16(p: *const u8) -> uint8x16_t {
    #[cfg(not(target_os = "none"))]
    {
        // SAFETY: the caller guarantees 16 readable bytes at `p`; `vld1q_u8` needs no alignment
        // and NEON is a baseline feature of this target (the module is compiled only with it).
        unsafe { vld1q_u8(p) }
    }
    #[cfg(target_os = "none")]
    {
        let v: uint8x16_t;
        // SAFETY: the caller guarantees 16 readable bytes at `p`; `ld1 {.16b}` needs byte
        // alignment only; the asm reads memory and writes just the output register.
        unsafe {
            asm!("ld1 {{{v:v}.16b}}, [{p}]", v = out(vreg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
        v
    }
}

/// Loads 16 signed bytes.
///
/// # Safety
/// - `p` must be valid for reads of 16 bytes.
#[inline(always)]
pub(crate) unsafe fn s8x16(p: *const i8) -> int8x16_t {
    // SAFETY: forwarded caller obligation (16 readable bytes at `p`).
    let v = unsafe { u8x16(p.cast()) };
    // SAFETY: a register reinterpretation; NEON is baseline on this target.
    unsafe { vreinterpretq_s8_u8(v) }
}

/// Loads 8 u16 (f16 bit patterns).
///
/// # Safety
/// - `p` must be valid for reads of 8 `u16` and aligned to 2 bytes.
#[inline(always)]
pub(crate) unsafe fn u16x8(p: *const u16) -> uint16x8_t {
    #[cfg(not(target_os = "none"))]
    {
        // SAFETY: the caller guarantees 8 readable, 2-aligned u16 at `p`.
        unsafe { vld1q_u16(p) }
    }
    #[cfg(target_os = "none")]
    {
        let v: uint16x8_t;
        // SAFETY: the caller guarantees 8 readable u16 at `p`, 2-aligned as `ld1 {.8h}` needs.
        unsafe {
            asm!("ld1 {{{v:v}.8h}}, [{p}]", v = out(vreg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
        v
    }
}

/// Loads 4 f32.
///
/// # Safety
/// - `p` must be valid for reads of 4 `f32` and aligned to 4 bytes.
#[inline(always)]
pub(crate) unsafe fn f32x4(p: *const f32) -> float32x4_t {
    #[cfg(not(target_os = "none"))]
    {
        // SAFETY: the caller guarantees 4 readable, 4-aligned f32 at `p`.
        unsafe { vld1q_f32(p) }
    }
    #[cfg(target_os = "none")]
    {
        let v: float32x4_t;
        // SAFETY: the caller guarantees 4 readable f32 at `p`, 4-aligned as `ld1 {.4s}` needs.
        unsafe {
            asm!("ld1 {{{v:v}.4s}}, [{p}]", v = out(vreg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
        v
    }
}

/// Stores 16 signed bytes.
///
/// # Safety
/// - `p` must be valid for writes of 16 bytes.
#[inline(always)]
pub(crate) unsafe fn store_s8x16(p: *mut i8, v: int8x16_t) {
    #[cfg(not(target_os = "none"))]
    {
        // SAFETY: the caller guarantees 16 writable bytes at `p`; no alignment needed.
        unsafe { vst1q_s8(p, v) }
    }
    #[cfg(target_os = "none")]
    {
        // SAFETY: the caller guarantees 16 writable bytes at `p`; `st1 {.16b}` needs byte
        // alignment only and touches nothing else.
        unsafe {
            asm!("st1 {{{v:v}.16b}}, [{p}]", v = in(vreg) v, p = in(reg) p,
                 options(nostack, preserves_flags));
        }
    }
}

/// Stores four f32.
///
/// # Safety
/// - `p` must be valid for writes of 16 bytes.
#[inline(always)]
pub(crate) unsafe fn store_f32x4(p: *mut f32, v: float32x4_t) {
    #[cfg(not(target_os = "none"))]
    {
        // SAFETY: the caller guarantees 16 writable bytes at `p`; no alignment needed.
        unsafe { vst1q_f32(p, v) }
    }
    #[cfg(target_os = "none")]
    {
        // SAFETY: the caller guarantees 16 writable bytes at `p`; `st1 {.4s}` needs 4-byte
        // alignment only (every `*mut f32` has it) and touches nothing else.
        unsafe {
            asm!("st1 {{{v:v}.4s}}, [{p}]", v = in(vreg) v, p = in(reg) p,
                 options(nostack, preserves_flags));
        }
    }
}
