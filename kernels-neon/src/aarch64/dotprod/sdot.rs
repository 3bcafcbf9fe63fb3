//! The one `sdot` wrapper: `vdotq_s32` is unstable on Rust 1.95 (`stdarch_neon_dotprod`,
//! rust-lang/rust#117224), so the instruction is emitted with `asm!`. When the intrinsic
//! stabilises, only this file changes.
//!
//! Orientation: helper for [`super::i2s`].

use core::arch::aarch64::{int8x16_t, int32x4_t};
use core::arch::asm;

/// `acc[i] += Σ_{j<4} a[4i+j] · b[4i+j]` (signed i8 × i8 → i32), one `sdot`.
#[target_feature(enable = "dotprod")]
#[inline]
pub(crate) fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: `sdot` reads and writes only the named vector registers (nomem, pure); the dotprod
    // feature it needs is enabled on this function, so it only runs where `dotprod::plug`
    // installed a caller, which requires `CpuFeatures::dotprod()`.
    unsafe {
        asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
             acc = inout(vreg) acc, a = in(vreg) a, b = in(vreg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    acc
}
