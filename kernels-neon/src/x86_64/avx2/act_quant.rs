//! AVX2 I2_S activation quantisation (DESIGN §4), bit-exact with
//! [`crate::reference::act_quant_i8`].
//!
//! Orientation: AVX2 twin of `reference::act_quant_i8` (see `aarch64::neon::act_quant` for why
//! an f32 maximum widened to f64 equals the reference's f64 maximum).
//!
//! - **max:** `vmaxps(a, m)` returns `a > m ? a : m`, NaN-ignoring exactly like the reference's
//!   `if a > max`.
//! - **rounding:** `vcvtps2dq` rounds half to even (the default MXCSR mode, which Rust code
//!   never changes); `|x·s| ≤ 127·(1 + 2^-23)`, where the reference's magic-number rounding is
//!   exact too. NaN products are zeroed first (the reference maps them to 0; `vcvtps2dq` would
//!   give `i32::MIN`).
//! - **clamp:** `vpackssdw` then `vpacksswb` saturate to [−128, 127]; Σq is taken of the bytes.

use core::arch::x86_64::*;

use crate::reference::nearest_int;

/// AVX2 [`crate::dispatch::ActQuantFn`].
///
/// # Panics
/// If `q.len() != x.len()`.
pub(crate) fn act_quant_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    assert_eq!(x.len(), q.len(), "act_quant_i8: x and q lengths differ");
    // SAFETY: lengths equal (asserted above); AVX2 present because only `avx2::plug` installs
    // this fn (module doc of `avx2`).
    unsafe { act_quant_impl(x, q) }
}

/// # Safety
/// - `q.len() == x.len()`.
/// - The CPU implements AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn act_quant_impl(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert_eq!(x.len(), q.len());
    let n = x.len();
    let n32 = n - n % 32;
    let xp = x.as_ptr();
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));

    let mut m = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < n32 {
        for (j, mj) in m.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= n32 <= x.len().
            let v = unsafe { _mm256_loadu_ps(xp.wrapping_add(i + 8 * j)) };
            *mj = _mm256_max_ps(_mm256_and_ps(v, abs_mask), *mj);
        }
        i += 32;
    }
    let mut lanes = [0.0f32; 32];
    for (j, mj) in m.iter().enumerate() {
        // SAFETY: `lanes[8j..8j+8]` is 8 writable f32.
        unsafe { _mm256_storeu_ps(lanes[8 * j..].as_mut_ptr(), *mj) };
    }
    let mut mx = 0.0f32;
    for a in lanes.into_iter().chain(x[n32..].iter().map(|v| v.abs())) {
        if a > mx {
            mx = a;
        }
    }
    let max = if mx as f64 > 1e-5 { mx as f64 } else { 1e-5 };
    let s = (127.0 / max) as f32;

    let sv = _mm256_set1_ps(s);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let qp = q.as_mut_ptr();
    let mut i = 0;
    while i < n32 {
        let r = [0usize, 1, 2, 3].map(|j| {
            // SAFETY: i + 8j + 8 <= n32 <= x.len().
            let v = _mm256_mul_ps(unsafe { _mm256_loadu_ps(xp.wrapping_add(i + 8 * j)) }, sv);
            let v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
            _mm256_cvtps_epi32(v)
        });
        let ab = _mm256_packs_epi32(r[0], r[1]);
        let cd = _mm256_packs_epi32(r[2], r[3]);
        let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, b), ones16));
        // SAFETY: i + 32 <= n32 <= q.len() (q.len() == x.len() by the contract).
        unsafe { _mm256_storeu_si256(qp.wrapping_add(i).cast(), b) };
        i += 32;
    }
    let mut parts = [0i32; 8];
    // SAFETY: `parts` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(parts.as_mut_ptr().cast(), acc) };
    let mut sum: i32 = parts.iter().sum();
    for (qk, &xk) in q[n32..].iter_mut().zip(&x[n32..]) {
        let v = xk * s;
        let r = if v.is_nan() { 0 } else { nearest_int(v) }.clamp(-128, 127);
        *qk = r as i8;
        sum += r;
    }
    (s, sum)
}
