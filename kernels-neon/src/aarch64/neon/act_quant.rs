//! NEON I2_S activation quantisation (DESIGN §4), bit-exact with
//! [`crate::reference::act_quant_i8`].
//!
//! Orientation: NEON twin of `reference::act_quant_i8`.
//!
//! Why it is exact:
//! - **max:** the reference takes `max(1e-5, max_k (f64)|x_k|)` with `a > max` comparisons, so NaNs
//!   never win. Widening f32 → f64 is exact and monotonic, so the f64 maximum of the widened
//!   values is the widened f32 maximum; we find it in f32 lanes with `a > m ? a : m` (`fcmgt` +
//!   `bsl`, NaN-ignoring like the reference; `fmax` would propagate NaN) and compare with `1e-5`
//!   in f64 at the end.
//! - **rounding:** `|x_k · s| ≤ 127·(1 + 2^-23)` for finite `x_k`, well inside the range where the
//!   reference's magic-number `nearest_int` is exact round-half-even, which is what `fcvtns` does.
//!   A NaN product (only `x = ±inf` gives `inf · 0`, or a NaN input) becomes 0 in both.
//! - **clamp:** saturating narrows to i16, then `max/min` to [−128, 127], then the sum is taken of
//!   the clamped values.

use core::arch::aarch64::*;

use crate::aarch64::load;
use crate::reference::nearest_int;

/// NEON [`crate::dispatch::ActQuantFn`].
///
/// # Panics
/// If `q.len() != x.len()`.
pub(crate) fn act_quant_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    assert_eq!(x.len(), q.len(), "act_quant_i8: x and q lengths differ");
    // SAFETY: lengths are equal (asserted above); NEON is baseline for this module (cfg).
    unsafe { act_quant_impl(x, q) }
}

/// # Safety
/// - `q.len() == x.len()`.
#[target_feature(enable = "neon")]
unsafe fn act_quant_impl(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert_eq!(x.len(), q.len());
    let n = x.len();
    let xp = x.as_ptr();
    let n16 = n - n % 16;

    // Pass 1: max |x| over non-NaN elements, in f32 lanes.
    let mut m = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i < n16 {
        for (j, mj) in m.iter_mut().enumerate() {
            // SAFETY: i + 4j + 4 <= n16 <= x.len().
            let a = vabsq_f32(unsafe { load::f32x4(xp.wrapping_add(i + 4 * j)) });
            *mj = vbslq_f32(vcgtq_f32(a, *mj), a, *mj);
        }
        i += 16;
    }
    let mut lanes = [0.0f32; 16];
    for (j, mj) in m.iter().enumerate() {
        lanes[4 * j] = vgetq_lane_f32(*mj, 0);
        lanes[4 * j + 1] = vgetq_lane_f32(*mj, 1);
        lanes[4 * j + 2] = vgetq_lane_f32(*mj, 2);
        lanes[4 * j + 3] = vgetq_lane_f32(*mj, 3);
    }
    let mut mx = 0.0f32;
    for a in lanes.into_iter().chain(x[n16..].iter().map(|v| v.abs())) {
        if a > mx {
            mx = a;
        }
    }
    let max = if mx as f64 > 1e-5 { mx as f64 } else { 1e-5 };
    let s = (127.0 / max) as f32;

    // Pass 2: q = clamp(fcvtns(x * s), -128, 127), Σq of the clamped values.
    let sv = vdupq_n_f32(s);
    let lo = vdupq_n_s16(-128);
    let hi = vdupq_n_s16(127);
    let mut acc = vdupq_n_s32(0);
    let qp = q.as_mut_ptr();
    let mut i = 0;
    while i < n16 {
        let r = [0usize, 1, 2, 3].map(|j| {
            // SAFETY: i + 4j + 4 <= n16 <= x.len() for j < 4.
            let v = unsafe { load::f32x4(xp.wrapping_add(i + 4 * j)) };
            vcvtnq_s32_f32(vmulq_f32(v, sv))
        });
        let h0 = vminq_s16(vmaxq_s16(vqmovn_high_s32(vqmovn_s32(r[0]), r[1]), lo), hi);
        let h1 = vminq_s16(vmaxq_s16(vqmovn_high_s32(vqmovn_s32(r[2]), r[3]), lo), hi);
        acc = vpadalq_s16(acc, h0);
        acc = vpadalq_s16(acc, h1);
        let b = vmovn_high_s16(vmovn_s16(h0), h1);
        // SAFETY: i + 16 <= n16 <= q.len() (q.len() == x.len() by the contract).
        unsafe { load::store_s8x16(qp.wrapping_add(i), b) };
        i += 16;
    }
    let mut sum = vaddvq_s32(acc);
    for (qk, &xk) in q[n16..].iter_mut().zip(&x[n16..]) {
        let v = xk * s;
        let r = if v.is_nan() { 0 } else { nearest_int(v) }.clamp(-128, 127);
        *qk = r as i8;
        sum += r;
    }
    (s, sum)
}
