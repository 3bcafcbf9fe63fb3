//! NEON f16 GEMV (the tied LM head), bit-identical with [`crate::reference::f16_gemv`].
//!
//! Orientation: NEON twin of `reference::f16_gemv`.
//!
//! The reference's order is kept exactly: 32 f32 lanes (eight `float32x4_t`), lane `j` summing the
//! products of `k ≡ j (mod 32)` in increasing `k`, each product rounded (`fmul`) before the add
//! (`fadd`; never `fmla`, which would round once). f16 → f32 is `fcvtl`/`fcvtl2`, exact like the
//! reference's `half` conversion. The `K % 32` tail and the lane tree run the reference's own
//! scalar code on the spilled lanes.
//!
//! [`f16_gemv_hx`] is the same loop with `fmla`, for an `x` of f16 values: then every product
//! is exact in f32 and the fused multiply-add rounds once, exactly where `fmul` + `fadd` round
//! (four instructions fewer per 16 weights).
//!
//! Two rows per tile: 2 × 8 accumulators and the 8 `x` vectors they share fill 24 of the 32
//! registers.

use core::arch::aarch64::*;

use crate::aarch64::load;
use crate::reference::{F16_GEMV_LANES, f16_to_f32, reduce_gemv_lanes};

/// Rows per tile (they share the `x` loads).
const ROWS: usize = 2;

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
    let k32 = k - k % F16_GEMV_LANES;
    let zero = vdupq_n_f32(0.0);
    let mut acc = [[zero; 8]; R];
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut c = 0;
    while c < k32 {
        let xv: [float32x4_t; 8] = core::array::from_fn(|o| {
            // SAFETY: c + 32 <= k32 <= x.len().
            unsafe { load::f32x4(xp.wrapping_add(c + 4 * o)) }
        });
        for (r, ar) in acc.iter_mut().enumerate() {
            for h in 0..4 {
                // SAFETY: r*k + c + 8h + 8 <= R*k <= w.len(); u16 pointers are 2-aligned.
                let hv = unsafe { load::u16x8(wp.wrapping_add(r * k + c + 8 * h)) };
                let f = [
                    vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(hv))),
                    vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(hv))),
                ];
                for (j, fj) in f.into_iter().enumerate() {
                    let a = &mut ar[2 * h + j];
                    *a = if FUSED {
                        vfmaq_f32(*a, fj, xv[2 * h + j])
                    } else {
                        vaddq_f32(*a, vmulq_f32(fj, xv[2 * h + j]))
                    };
                }
            }
        }
        c += F16_GEMV_LANES;
    }
    let mut res = [0.0f32; R];
    for (r, ar) in acc.iter().enumerate() {
        let mut lanes = [0.0f32; F16_GEMV_LANES];
        for (j, a) in ar.iter().enumerate() {
            lanes[4 * j] = vgetq_lane_f32(*a, 0);
            lanes[4 * j + 1] = vgetq_lane_f32(*a, 1);
            lanes[4 * j + 2] = vgetq_lane_f32(*a, 2);
            lanes[4 * j + 3] = vgetq_lane_f32(*a, 3);
        }
        for kk in k32..k {
            lanes[kk % F16_GEMV_LANES] += f16_to_f32(w[r * k + kk]) * x[kk];
        }
        res[r] = reduce_gemv_lanes(lanes);
    }
    res
}

/// NEON [`crate::dispatch::F16WsumFn`], bit-identical with [`crate::reference::f16_wsum`]: each
/// output element keeps its own sum in increasing row order (`fmul` then `fadd`, never `fmla`);
/// only the columns are computed side by side, 64 at a time in sixteen `float32x4_t`
/// accumulators (half of the 32 vector registers).
///
/// # Panics
/// If `v.len() < p.len() * out.len()`.
pub(crate) fn f16_wsum(p: &[f32], v: &[u16], out: &mut [f32]) {
    let k = out.len();
    crate::shape::wsum_by_columns(p, v, out, |d, cols, o| match cols {
        // SAFETY: `wsum_by_columns` checked that `v` holds p.len() rows of k and gives
        // columns d..d+cols of every row (d + cols <= k); NEON is baseline.
        crate::shape::WSUM_COLS => unsafe { wsum_block::<8>(p, v, k, d, o) },
        // SAFETY: as above, 8 columns.
        _ => unsafe { wsum_block::<1>(p, v, k, d, o) },
    });
}

/// Columns `d .. d + 8·N` of the weighted sum into `out` (`8·N` elements).
///
/// # Safety
/// - `v.len() >= p.len() * k`, `d + 8·N <= k` and `out.len() == 8·N`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn wsum_block<const N: usize>(p: &[f32], v: &[u16], k: usize, d: usize, out: &mut [f32]) {
    debug_assert!(d + 8 * N <= k && v.len() >= p.len() * k && out.len() == 8 * N);
    let zero = vdupq_n_f32(0.0);
    let mut acc = [[zero; 2]; N];
    let vp = v.as_ptr();
    for (i, &w) in p.iter().enumerate() {
        let wv = vdupq_n_f32(w);
        let row = vp.wrapping_add(i * k + d);
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: i*k + d + 8j + 8 <= p.len()*k <= v.len(); u16 pointers are 2-aligned.
            let h = unsafe { load::u16x8(row.wrapping_add(8 * j)) };
            let lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
            let hi = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
            a[0] = vaddq_f32(a[0], vmulq_f32(wv, lo));
            a[1] = vaddq_f32(a[1], vmulq_f32(wv, hi));
        }
    }
    for (j, a) in acc.iter().enumerate() {
        for (h, v4) in a.iter().enumerate() {
            // SAFETY: out[8j + 4h .. + 4] is inside `out` (j < N, h < 2, out.len() == 8N).
            unsafe { load::store_f32x4(out.as_mut_ptr().wrapping_add(8 * j + 4 * h), *v4) };
        }
    }
}
