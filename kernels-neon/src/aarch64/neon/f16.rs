//! NEON f16 GEMV (the tied LM head), bit-identical with [`crate::reference::f16_gemv`].
//!
//! Orientation: NEON twin of `reference::f16_gemv`.
//!
//! The reference's order is kept exactly: 16 f32 lanes (four `float32x4_t`), lane `j` summing the
//! products of `k ≡ j (mod 16)` in increasing `k`, each product rounded (`fmul`) before the add
//! (`fadd`; never `fmla`, which would round once). f16 → f32 is `fcvtl`/`fcvtl2`, exact like the
//! reference's `half` conversion. The `K % 16` tail and the lane tree run the reference's own
//! scalar code on the spilled lanes.
//!
//! [`f16_gemv_hx`] is the same loop with `fmla`, for an `x` of f16 values: then every product
//! is exact in f32 and the fused multiply-add rounds once, exactly where `fmul` + `fadd` round
//! (four instructions fewer per 16 weights).

use core::arch::aarch64::*;

use crate::aarch64::load;
use crate::reference::{F16_LANES, f16_to_f32, reduce_lanes};

/// Rows per tile (they share the `x` loads).
const ROWS: usize = 4;

/// NEON [`crate::dispatch::F16GemvFn`].
///
/// # Panics
/// If `x.len() != k` or `w` is too short for the rows `row0 .. row0 + out.len()`.
pub(crate) fn f16_gemv(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    gemv::<false>(w, k, row0, x, out);
}

/// NEON [`crate::dispatch::KernelSet::f16_gemv_hx`]: `x` holds f16 values.
///
/// # Panics
/// As [`f16_gemv`].
pub(crate) fn f16_gemv_hx(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    gemv::<true>(w, k, row0, x, out);
}

/// Both entry points; `FUSED` selects `fmla` (only exact for an `x` of f16 values).
fn gemv<const FUSED: bool>(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    let w = crate::shape::f16_rows(w, k, row0, x.len(), out.len());
    // SAFETY: `w.len() == out.len() * k` and `x.len() == k` (checked above); NEON is baseline.
    unsafe { f16_gemv_impl::<FUSED>(w, k, x, out) }
}

/// # Safety
/// - `x.len() == k` and `w.len() >= out.len() * k`.
#[target_feature(enable = "neon")]
unsafe fn f16_gemv_impl<const FUSED: bool>(w: &[u16], k: usize, x: &[f32], out: &mut [f32]) {
    debug_assert!(x.len() == k && w.len() >= out.len() * k);
    let mut tiles = out.chunks_exact_mut(ROWS);
    let mut r = 0;
    for o in &mut tiles {
        // SAFETY: rows r..r+ROWS lie inside `w` (r + ROWS <= out.len()).
        o.copy_from_slice(&unsafe { tile::<ROWS, FUSED>(&w[r * k..], k, x) });
        r += ROWS;
    }
    for o in tiles.into_remainder() {
        // SAFETY: row r lies inside `w` (r < out.len()).
        *o = unsafe { tile::<1, FUSED>(&w[r * k..], k, x) }[0];
        r += 1;
    }
}

/// Dot products of `R` consecutive rows (stride `k`) with `x`.
///
/// # Safety
/// - `x.len() == k` and `w.len() >= R * k`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const R: usize, const FUSED: bool>(w: &[u16], k: usize, x: &[f32]) -> [f32; R] {
    debug_assert!(x.len() == k && w.len() >= R * k);
    let k16 = k - k % F16_LANES;
    let zero = vdupq_n_f32(0.0);
    let mut acc = [[zero; 4]; R];
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut c = 0;
    while c < k16 {
        // SAFETY: c + 16 <= k16 <= x.len().
        let xv = [0usize, 4, 8, 12].map(|o| unsafe { load::f32x4(xp.wrapping_add(c + o)) });
        for (r, ar) in acc.iter_mut().enumerate() {
            // SAFETY: r*k + c + 16 <= R*k <= w.len(); u16 pointers are 2-aligned.
            let h0 = unsafe { load::u16x8(wp.wrapping_add(r * k + c)) };
            // SAFETY: as above, second half of the same 16 elements.
            let h1 = unsafe { load::u16x8(wp.wrapping_add(r * k + c + 8)) };
            let f = [
                vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h0))),
                vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h0))),
                vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h1))),
                vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h1))),
            ];
            for j in 0..4 {
                ar[j] = if FUSED {
                    vfmaq_f32(ar[j], f[j], xv[j])
                } else {
                    vaddq_f32(ar[j], vmulq_f32(f[j], xv[j]))
                };
            }
        }
        c += F16_LANES;
    }
    let mut res = [0.0f32; R];
    for (r, ar) in acc.iter().enumerate() {
        let mut lanes = [0.0f32; F16_LANES];
        for j in 0..4 {
            lanes[4 * j] = vgetq_lane_f32(ar[j], 0);
            lanes[4 * j + 1] = vgetq_lane_f32(ar[j], 1);
            lanes[4 * j + 2] = vgetq_lane_f32(ar[j], 2);
            lanes[4 * j + 3] = vgetq_lane_f32(ar[j], 3);
        }
        for kk in k16..k {
            lanes[kk % F16_LANES] += f16_to_f32(w[r * k + kk]) * x[kk];
        }
        res[r] = reduce_lanes(lanes);
    }
    res
}
