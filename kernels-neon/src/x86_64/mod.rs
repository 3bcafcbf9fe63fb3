//! x86_64 kernel tiers: AVX2 (+FMA, F16C) and AVX-512 VNNI, to make development hosts fast.
//!
//! Orientation: implements the `fn` signatures of [`crate::dispatch`] with the same results as
//! [`crate::reference`]; `avx2::plug` / `vnni::plug` install them into a [`crate::KernelSet`].
//! `unsafe` in this crate lives only here and in `aarch64/`.

pub(crate) mod avx2;
pub(crate) mod vnni;

use core::arch::x86_64::*;

/// The last three levels of [`crate::reference::reduce_lanes`] on its 8 lanes left after `l[j] +=
/// l[j + 8]`: `l[j] += l[j + 4]`, `+ 2`, then `l[0] + l[1]`, each an f32 add of the same two
/// lanes as the reference, so the bits are the same. Five instructions instead of spilling the
/// accumulators and adding 31 lanes one by one — per row of the LM head's 128 256 that was a
/// quarter of the head kernel's instructions.
///
/// # Safety
/// The CPU implements AVX.
#[target_feature(enable = "avx")]
#[inline]
pub(crate) unsafe fn reduce8(l8: __m256) -> f32 {
    let l4 = _mm_add_ps(_mm256_castps256_ps128(l8), _mm256_extractf128_ps::<1>(l8));
    let l2 = _mm_add_ps(l4, _mm_movehl_ps(l4, l4));
    _mm_cvtss_f32(_mm_add_ss(l2, _mm_movehdup_ps(l2)))
}
