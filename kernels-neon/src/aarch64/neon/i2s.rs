//! NEON I2_S GEMV and GEMM over the published 128/32 layout, bit-exact with
//! [`crate::reference::i2s_gemv`] / [`crate::reference::i2s_gemm`].
//!
//! Orientation: NEON twins of `reference::i2s_gemv` and `reference::i2s_gemm`.
//!
//! Per 128-weight block the 32 bytes are two `uint8x16_t`; sub-group `g` (weights
//! `128b + 32g + p`) is `(byte >> (6 − 2g)) & 3`, i.e. the code `c ∈ {0, 1, 2}`. The activations
//! of sub-group `g`, half `h` are the 16 bytes at `q[128b + 32g + 16h]`, so codes and
//! activations line up lane by lane with no shuffles. We accumulate `Σ c·q` with `smlal`/`smlal2`
//! (i8 × i8 → i16) into i16 lanes, widen with `sadalp` every [`WIDEN_BLOCKS`] blocks, and return
//! `Σ c·q − Σ q = Σ (c − 1)·q` (bitnet.cpp's formulation). Kernels need `K % 128 == 0` (every
//! published shape); other `K` fall back to the reference.
//!
//! Codes are assumed valid (0..=2, as every writer emits). A code 3 gives a wrong value, never
//! undefined behaviour (SIMD integer lanes wrap).

use core::arch::aarch64::*;

use crate::aarch64::load;
use crate::formats::i2s::{BLOCK, BLOCK_BYTES};
use crate::reference;
use crate::shape::{self, sum_i8};

/// Rows per GEMV tile of the SDOT tier (they share the activation loads).
pub(crate) const GEMV_ROWS: usize = 4;
/// Rows per GEMV tile here: with three i16 accumulators per row, guest instructions per 2560 ×
/// 2560 GEMV were 1.742 M for 2 rows, 1.641 M for 3 and 1.879 M for 4 (registers spilled).
const NEON_GEMV_ROWS: usize = 3;
/// Tokens per GEMM tile (they share the decoded weights).
pub(crate) const GEMM_TOKENS: usize = 4;

/// Products added into one i16 lane per block: 8 (sub-group, half) pairs × 2 (`smlal` on the low
/// half, `smlal2` on the high half).
const TERMS_PER_BLOCK: usize = 16;
/// Largest `|c · q|`: code 2 times q = −128.
const MAX_ABS_PRODUCT: usize = 2 * 128;
/// Blocks accumulated in i16 before widening to i32.
const WIDEN_BLOCKS: usize = 7;
/// Products per i16 lane between widenings.
const MAX_TERMS: usize = TERMS_PER_BLOCK * WIDEN_BLOCKS;
// The i16 accumulators can never overflow (bitnet.cpp's non-dotprod path can).
const _: () = assert!(MAX_TERMS * MAX_ABS_PRODUCT <= i16::MAX as usize);

/// The four sub-group codes (0..=3) of 16 packed bytes: `[b >> 6, b >> 4 & 3, b >> 2 & 3, b & 3]`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn decode(b: uint8x16_t) -> [int8x16_t; 4] {
    let m = vdupq_n_u8(3);
    [
        vreinterpretq_s8_u8(vshrq_n_u8(b, 6)),
        vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 4), m)),
        vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 2), m)),
        vreinterpretq_s8_u8(vandq_u8(b, m)),
    ]
}

/// `acc += c · q` lane-wise over 16 products (two `smlal`).
#[target_feature(enable = "neon")]
#[inline]
fn mla16(acc: int16x8_t, c: int8x16_t, q: int8x16_t) -> int16x8_t {
    vmlal_high_s8(vmlal_s8(acc, vget_low_s8(c), vget_low_s8(q)), c, q)
}

/// NEON [`crate::dispatch::I2sGemvFn`].
///
/// # Panics
/// If `q.len() != k` or `w` is too short.
pub(crate) fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    let Some(rows) = shape::gemv_rows(w, k, row0, q, out.len()) else {
        return reference::i2s_gemv(w, k, row0, q, out);
    };
    // SAFETY: k % 128 == 0, q.len() == k and w.len() == out.len() * k / 4 (checked above);
    // NEON is baseline for this module (cfg).
    unsafe { gemv_impl(rows, k, q, out) }
}

/// # Safety
/// - `k % 128 == 0`, `q.len() == k`, `w.len() >= out.len() * k / 4`.
#[target_feature(enable = "neon")]
unsafe fn gemv_impl(w: &[u8], k: usize, q: &[i8], out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && q.len() == k && w.len() >= out.len() * k / 4);
    let qsum = sum_i8(q);
    let rb = k / 4;
    let mut tiles = out.chunks_exact_mut(NEON_GEMV_ROWS);
    let mut r = 0;
    for o in &mut tiles {
        // SAFETY: rows r..r+R are inside `w` (r + R <= out.len()); q has k elements.
        let a = unsafe { gemv_tile::<NEON_GEMV_ROWS>(w[r * rb..].as_ptr(), rb, q.as_ptr(), k) };
        for (oi, ai) in o.iter_mut().zip(a) {
            *oi = ai - qsum;
        }
        r += NEON_GEMV_ROWS;
    }
    for o in tiles.into_remainder() {
        // SAFETY: row r is inside `w` (r < out.len()); q has k elements.
        *o = unsafe { gemv_tile::<1>(w[r * rb..].as_ptr(), rb, q.as_ptr(), k) }[0] - qsum;
        r += 1;
    }
}

/// The sub-groups of 16 packed bytes masked but not shifted down: `[b >> 6, b & 0x30, b & 0x0C,
/// b & 0x03]` = `[c₀, 16·c₁, 4·c₂, c₃]` (all below 64, so the same as i8). Three instructions
/// fewer than [`decode`]; the scales are undone when the accumulators are widened.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn decode_scaled(b: uint8x16_t) -> [int8x16_t; 4] {
    [
        vreinterpretq_s8_u8(vshrq_n_u8(b, 6)),
        vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x30))),
        vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0C))),
        vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x03))),
    ]
}

/// GEMV products per i16 lane per block and sub-group: 2 halves × 2 (`smlal` + `smlal2`).
const GEMV_TERMS_PER_SUBGROUP: usize = 4;
/// Blocks the ×16 accumulator (sub-group 1) takes before it is widened.
const GEMV_PAIR: usize = 2;
/// Blocks the ×4 (sub-group 2) and ×1 (sub-groups 0 and 3) accumulators take before widening.
const GEMV_GROUP: usize = 6;
// Bound proofs (largest |x·q| is scale · 2 · 128):
const _: () = assert!(GEMV_PAIR * GEMV_TERMS_PER_SUBGROUP * 16 * 2 * 128 <= i16::MAX as usize + 1);
const _: () = assert!(GEMV_GROUP * GEMV_TERMS_PER_SUBGROUP * 4 * 2 * 128 <= i16::MAX as usize);
const _: () = assert!(GEMV_GROUP * 2 * GEMV_TERMS_PER_SUBGROUP * 2 * 128 <= i16::MAX as usize);

/// `Σ c·q` for `R` rows (byte stride `rb`) against one token.
///
/// Sub-groups are masked without shifting ([`decode_scaled`]) into three i16 accumulators per
/// row by scale: ×16 (sub-group 1, widened every [`GEMV_PAIR`] blocks), ×4 (sub-group 2) and ×1
/// (sub-groups 0 and 3, both every [`GEMV_GROUP`] blocks). Widening divides exactly: every lane of
/// a ×s accumulator is a multiple of s, so `ssra` (shift right and accumulate) of its pairwise
/// sums adds `Σ c·q` to the row's single i32 accumulator. Guest instructions per 2560 × 2560
/// GEMV: 1.641 M, against 1.778 M shifting every sub-group down (4-row tiles).
///
/// # Safety
/// - `k % 128 == 0`; `w` valid for reads of `R * rb` bytes with `rb == k / 4`; `q` valid for `k`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn gemv_tile<const R: usize>(w: *const u8, rb: usize, q: *const i8, k: usize) -> [i32; R] {
    let nb = k / BLOCK;
    let zero = vdupq_n_s16(0);
    let mut acc32 = [vdupq_n_s32(0); R];
    let (mut a1, mut a4, mut a16) = ([zero; R], [zero; R], [zero; R]);
    // Adds block b (< nb) into the i16 accumulators.
    let block =
        |b: usize, a1: &mut [int16x8_t; R], a4: &mut [int16x8_t; R], a16: &mut [int16x8_t; R]| {
            // SAFETY: b < nb, so 128b + 16i + 16 <= k for i < 8.
            let qv: [int8x16_t; 8] = core::array::from_fn(|i| unsafe {
                load::s8x16(q.wrapping_add(b * BLOCK + 16 * i))
            });
            for r in 0..R {
                // SAFETY: r*rb + 32b + 32 <= R*rb (b < nb = rb/32).
                let lo =
                    decode_scaled(unsafe { load::u8x16(w.wrapping_add(r * rb + b * BLOCK_BYTES)) });
                // SAFETY: as above, the second 16 bytes of the block.
                let hi = decode_scaled(unsafe {
                    load::u8x16(w.wrapping_add(r * rb + b * BLOCK_BYTES + 16))
                });
                a1[r] = mla16(mla16(a1[r], lo[0], qv[0]), hi[0], qv[1]);
                a16[r] = mla16(mla16(a16[r], lo[1], qv[2]), hi[1], qv[3]);
                a4[r] = mla16(mla16(a4[r], lo[2], qv[4]), hi[2], qv[5]);
                a1[r] = mla16(mla16(a1[r], lo[3], qv[6]), hi[3], qv[7]);
            }
        };
    let mut b = 0;
    let mut pairs = 0;
    while b < nb {
        block(b, &mut a1, &mut a4, &mut a16);
        if b + 1 < nb {
            block(b + 1, &mut a1, &mut a4, &mut a16);
        }
        b += GEMV_PAIR;
        pairs += 1;
        for (t, a) in acc32.iter_mut().zip(&mut a16) {
            *t = vsraq_n_s32::<4>(*t, vpaddlq_s16(*a));
            *a = zero;
        }
        if pairs * GEMV_PAIR == GEMV_GROUP || b >= nb {
            for ((t, x4), x1) in acc32.iter_mut().zip(&mut a4).zip(&mut a1) {
                *t = vpadalq_s16(vsraq_n_s32::<2>(*t, vpaddlq_s16(*x4)), *x1);
                (*x4, *x1) = (zero, zero);
            }
            pairs = 0;
        }
    }
    acc32.map(|a| vaddvq_s32(a))
}

/// NEON [`crate::dispatch::I2sGemmFn`].
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` is too short.
pub(crate) fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    let Some(rows) = shape::gemm_rows(w, k, row0, q, n, out.len()) else {
        return reference::i2s_gemm(w, k, row0, q, n, out);
    };
    // SAFETY: k % 128 == 0, q.len() == n*k, out.len() % n == 0, w holds out.len()/n rows
    // (checked above); NEON is baseline for this module (cfg).
    unsafe { gemm_impl(rows, k, q, n, out) }
}

/// # Safety
/// - `k % 128 == 0`, `n > 0`, `q.len() == n * k`, `out.len() % n == 0`,
///   `w.len() >= out.len() / n * k / 4`.
#[target_feature(enable = "neon")]
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
#[target_feature(enable = "neon")]
#[inline]
unsafe fn gemm_tile<const T: usize>(w: *const u8, q: *const i8, k: usize) -> [i32; T] {
    let nb = k / BLOCK;
    let mut acc32 = [vdupq_n_s32(0); T];
    let mut b = 0;
    while b < nb {
        let end = if nb - b > WIDEN_BLOCKS { b + WIDEN_BLOCKS } else { nb };
        let mut acc16 = [vdupq_n_s16(0); T];
        while b < end {
            // SAFETY: 32b + 32 <= k/4 because b < nb.
            let lo = decode(unsafe { load::u8x16(w.wrapping_add(b * BLOCK_BYTES)) });
            // SAFETY: as above, second half of the block.
            let hi = decode(unsafe { load::u8x16(w.wrapping_add(b * BLOCK_BYTES + 16)) });
            for (t, a) in acc16.iter_mut().enumerate() {
                let qb = t * k + b * BLOCK;
                for g in 0..4 {
                    // SAFETY: qb + 32g + 32 <= t*k + k <= T*k.
                    let q0 = unsafe { load::s8x16(q.wrapping_add(qb + 32 * g)) };
                    // SAFETY: as above.
                    let q1 = unsafe { load::s8x16(q.wrapping_add(qb + 32 * g + 16)) };
                    *a = mla16(*a, lo[g], q0);
                    *a = mla16(*a, hi[g], q1);
                }
            }
            b += 1;
        }
        for (a32, a16) in acc32.iter_mut().zip(acc16) {
            *a32 = vpadalq_s16(*a32, a16);
        }
    }
    acc32.map(|a| vaddvq_s32(a))
}
