//! I2_S GEMV/GEMM with `sdot`, bit-exact with [`crate::reference::i2s_gemv`] /
//! [`crate::reference::i2s_gemm`].
//!
//! Orientation: dotprod twins of `reference::i2s_gemv` and `reference::i2s_gemm`.
//!
//! The GEMV masks the sub-groups without shifting them ([`decode_scaled`], one accumulator per
//! scale); the GEMM shifts them down once per block (the NEON tier's `decode`) and shares them
//! across tokens. `sdot` adds four products into each i32 lane, so there is no narrow accumulator;
//! the GEMV's bound is [`MAX_K`] (longer rows and `K % 128 != 0` fall back to the reference).
//! Result: `Σ c·q − Σ q`.
//!
//! # Safety of the entry points
//! `i2s_gemv`/`i2s_gemm` are safe `fn`s (they must fit `I2sGemvFn`) that execute `sdot`. They are
//! `pub(crate)` and reachable only through [`super::plug`], which runs only when
//! `CpuFeatures::dotprod()` is true (a value obtained from `detect()` or `unsafe assume`).

use core::arch::aarch64::*;

use super::sdot::sdot;
use crate::aarch64::load;
use crate::aarch64::neon::i2s::{GEMM_TOKENS, GEMV_ROWS, decode, decode_scaled};
use crate::formats::i2s::{BLOCK, BLOCK_BYTES};
use crate::reference;
use crate::shape::{self, sum_i8};

/// dotprod [`crate::dispatch::I2sGemvFn`].
///
/// # Panics
/// If `q.len() != k` or `w` is too short.
pub(crate) fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    let Some(rows) = shape::gemv_rows(w, k, row0, q, out.len()).filter(|_| k <= MAX_K) else {
        return reference::i2s_gemv(w, k, row0, q, out);
    };
    // SAFETY: shapes checked above (k % 128 == 0, k <= MAX_K, q.len() == k, w holds out.len() rows); the
    // dotprod feature is present because this fn is installed only by `dotprod::plug` (module doc).
    unsafe { gemv_impl(rows, k, q, out) }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `q.len() == k`, `w.len() >= out.len() * k / 4`.
/// - The CPU implements the dotprod extension.
#[target_feature(enable = "dotprod")]
unsafe fn gemv_impl(w: &[u8], k: usize, q: &[i8], out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && q.len() == k && w.len() >= out.len() * k / 4);
    let qsum = sum_i8(q);
    let rb = k / 4;
    let mut tiles = out.chunks_exact_mut(GEMV_ROWS);
    let mut r = 0;
    for o in &mut tiles {
        // SAFETY: rows r..r+4 are inside `w`; q has k elements.
        let a = unsafe { gemv_tile::<GEMV_ROWS>(w[r * rb..].as_ptr(), rb, q.as_ptr(), k) };
        for (oi, ai) in o.iter_mut().zip(a) {
            *oi = ai - qsum;
        }
        r += GEMV_ROWS;
    }
    for o in tiles.into_remainder() {
        // SAFETY: row r is inside `w`; q has k elements.
        *o = unsafe { gemv_tile::<1>(w[r * rb..].as_ptr(), rb, q.as_ptr(), k) }[0] - qsum;
        r += 1;
    }
}

/// Longest row the GEMV accumulators are proved for.
pub(crate) const MAX_K: usize = 1 << 22;
// The ×16 accumulator gains per block and lane 2 `sdot` × 4 products of at most 32·128 (code 2 ×
// q = −128); over MAX_K / 128 blocks that stays within i32.
const _: () = assert!((MAX_K / BLOCK) * 2 * 4 * (32 * 128) <= i32::MAX as usize + 1);

/// `Σ c·q` for `R` rows (byte stride `rb`) against one token.
///
/// Three accumulators per row by scale ([`decode_scaled`]): ×1 (sub-groups 0 and 3), ×4 (2) and
/// ×16 (1); each holds an exact multiple of its scale, so arithmetic shifts recover the sums.
///
/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`; `w` valid for `R * rb` bytes with `rb == k / 4`; `q` valid
///   for `k` bytes.
#[target_feature(enable = "dotprod")]
#[inline]
unsafe fn gemv_tile<const R: usize>(w: *const u8, rb: usize, q: *const i8, k: usize) -> [i32; R] {
    let nb = k / BLOCK;
    // [×1, ×4, ×16] per row.
    let mut acc = [[vdupq_n_s32(0); 3]; R];
    for b in 0..nb {
        // SAFETY: b < nb, so 128b + 16i + 16 <= k for i < 8.
        let qv: [int8x16_t; 8] =
            core::array::from_fn(|i| unsafe { load::s8x16(q.wrapping_add(b * BLOCK + 16 * i)) });
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: r*rb + 32b + 32 <= R*rb.
            let lo =
                decode_scaled(unsafe { load::u8x16(w.wrapping_add(r * rb + b * BLOCK_BYTES)) });
            // SAFETY: as above, second half of the block.
            let hi = decode_scaled(unsafe {
                load::u8x16(w.wrapping_add(r * rb + b * BLOCK_BYTES + 16))
            });
            // Sub-group g lines up with activations 32g .. 32g + 32; its scale class: ×1, ×16, ×4, ×1.
            for (g, class) in [0usize, 2, 1, 0].into_iter().enumerate() {
                a[class] = sdot(a[class], lo[g], qv[2 * g]);
                a[class] = sdot(a[class], hi[g], qv[2 * g + 1]);
            }
        }
    }
    acc.map(|[a1, a4, a16]| {
        vaddvq_s32(vaddq_s32(a1, vaddq_s32(vshrq_n_s32(a4, 2), vshrq_n_s32(a16, 4))))
    })
}

/// dotprod [`crate::dispatch::I2sGemmFn`].
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` is too short.
pub(crate) fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    let Some(rows) = shape::gemm_rows(w, k, row0, q, n, out.len()) else {
        return reference::i2s_gemm(w, k, row0, q, n, out);
    };
    // SAFETY: shapes checked above; dotprod present because only `dotprod::plug` installs this.
    unsafe { gemm_impl(rows, k, q, n, out) }
}

/// # Safety
/// - `k % 128 == 0`, `n > 0`, `q.len() == n * k`, `out.len() % n == 0`,
///   `w.len() >= out.len() / n * k / 4`.
/// - The CPU implements the dotprod extension.
#[target_feature(enable = "dotprod")]
unsafe fn gemm_impl(w: &[u8], k: usize, q: &[i8], n: usize, out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && n > 0 && q.len() == n * k);
    shape::gemm_by_row::<GEMM_TOKENS>(
        w,
        k,
        q,
        n,
        out,
        // SAFETY: the row has k/4 bytes and the tokens GEMM_TOKENS·k activations (gemm_by_row).
        |wr, qs| unsafe { gemm_tile::<GEMM_TOKENS>(wr.as_ptr(), qs.as_ptr(), k) },
        // SAFETY: as above, one token.
        |wr, qs| unsafe { gemm_tile::<1>(wr.as_ptr(), qs.as_ptr(), k) }[0],
    );
}

/// `Σ c·q` for one row against `T` consecutive tokens (stride `k`).
///
/// # Safety
/// - `k % 128 == 0`; `w` valid for `k / 4` bytes; `q` valid for `T * k` bytes.
#[target_feature(enable = "dotprod")]
#[inline]
unsafe fn gemm_tile<const T: usize>(w: *const u8, q: *const i8, k: usize) -> [i32; T] {
    let nb = k / BLOCK;
    let mut acc = [vdupq_n_s32(0); T];
    for b in 0..nb {
        // SAFETY: 32b + 32 <= k/4 because b < nb.
        let lo = decode(unsafe { load::u8x16(w.wrapping_add(b * BLOCK_BYTES)) });
        // SAFETY: as above, second half of the block.
        let hi = decode(unsafe { load::u8x16(w.wrapping_add(b * BLOCK_BYTES + 16)) });
        for (t, a) in acc.iter_mut().enumerate() {
            let qb = t * k + b * BLOCK;
            for g in 0..4 {
                // SAFETY: qb + 32g + 32 <= (t+1)*k <= T*k.
                let q0 = unsafe { load::s8x16(q.wrapping_add(qb + 32 * g)) };
                // SAFETY: as above.
                let q1 = unsafe { load::s8x16(q.wrapping_add(qb + 32 * g + 16)) };
                *a = sdot(*a, lo[g], q0);
                *a = sdot(*a, hi[g], q1);
            }
        }
    }
    acc.map(|a| vaddvq_s32(a))
}
