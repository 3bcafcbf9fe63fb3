//! AVX2 I2_S GEMV and GEMM over the published 128/32 layout, bit-exact with
//! [`crate::reference::i2s_gemv`] / [`crate::reference::i2s_gemm`].
//!
//! Orientation: AVX2 twins of `reference::i2s_gemv` and `reference::i2s_gemm`.
//!
//! A 128-weight block is one 32-byte vector; sub-group `g` is `(bytes >> (6 − 2g)) & 3` (16-bit
//! shifts, then a byte mask), the codes `c ∈ {0, 1, 2}`, lined up with the 32 activations at
//! `q[128b + 32g]`. `vpmaddubsw(c as u8, q as i8)` sums adjacent pairs of products into i16:
//! `|c·q + c·q| ≤ 2·256 = 512`, so it never saturates. The four sub-groups' pair sums are added in
//! i16 and accumulated for up to [`WIDEN_BLOCKS`] blocks (bound proved below), then widened with
//! `vpmaddwd(·, 1)` into i32. The result is `Σ c·q − Σ q`. `K % 128 != 0` falls back to the
//! reference. Codes are assumed valid (a code 3 gives a wrong value, never UB).

use core::arch::x86_64::*;

use crate::formats::i2s::{BLOCK, BLOCK_BYTES};
use crate::reference;
use crate::shape;

/// Tokens per GEMM tile (they share the decoded weights).
const GEMM_TOKENS: usize = 4;

/// Products added into one i16 lane per block: 4 sub-groups × 2 (the `vpmaddubsw` pair).
const TERMS_PER_BLOCK: usize = 8;
/// Largest `|c · q|`: code 2 times q = −128.
const MAX_ABS_PRODUCT: usize = 2 * 128;
/// Blocks accumulated in i16 before widening to i32.
const WIDEN_BLOCKS: usize = 15;
/// Products per i16 lane between widenings.
const MAX_TERMS: usize = TERMS_PER_BLOCK * WIDEN_BLOCKS;
// The i16 accumulators can never overflow (bitnet.cpp's AVX2 path wraps over 32 blocks).
const _: () = assert!(MAX_TERMS * MAX_ABS_PRODUCT <= i16::MAX as usize);

/// Loads 32 bytes (no alignment needed).
///
/// # Safety
/// - `p` must be valid for reads of 32 bytes.
#[inline(always)]
pub(crate) unsafe fn load32<T>(p: *const T) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The four sub-group codes of a 32-byte block.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn decode(w: __m256i) -> [__m256i; 4] {
    let m = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(_mm256_srli_epi16(w, 6), m),
        _mm256_and_si256(_mm256_srli_epi16(w, 4), m),
        _mm256_and_si256(_mm256_srli_epi16(w, 2), m),
        _mm256_and_si256(w, m),
    ]
}

/// Sum of one block's products, as i16 pair sums: `Σ_g maddubs(c_g, q_g)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn block_dot(c: &[__m256i; 4], q: &[__m256i; 4]) -> __m256i {
    _mm256_add_epi16(
        _mm256_add_epi16(_mm256_maddubs_epi16(c[0], q[0]), _mm256_maddubs_epi16(c[1], q[1])),
        _mm256_add_epi16(_mm256_maddubs_epi16(c[2], q[2]), _mm256_maddubs_epi16(c[3], q[3])),
    )
}

/// Horizontal sum of eight i32 (wrapping).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// `Σ q` with `vpsadbw`: `q ^ 0x80` is `q + 128` as a byte, and one `vpsadbw` against zero adds
/// 8 of them into each 64-bit lane (so no lane can overflow). Three operations per 32 bytes; the
/// GEMVs call it once per call, and work stealing makes calls many (a plain widening sum took
/// ~45 % of the VNNI GEMV's time outside its inner loop).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sum_q(q: &[i8]) -> i32 {
    let flip = _mm256_set1_epi8(i8::MIN);
    let zero = _mm256_setzero_si256();
    let mut acc = [zero; 2];
    let mut chunks = q.chunks_exact(64);
    for c in &mut chunks {
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` has 64 bytes; 32h + 32 <= 64.
            let v = unsafe { load32(c.as_ptr().wrapping_add(32 * h)) };
            *a = _mm256_add_epi64(*a, _mm256_sad_epu8(_mm256_xor_si256(v, flip), zero));
        }
    }
    let s = _mm256_add_epi64(acc[0], acc[1]);
    let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    let biased = _mm_cvtsi128_si64(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s)));
    let full = (q.len() - chunks.remainder().len()) as i64;
    let tail: i32 = chunks.remainder().iter().map(|&v| i32::from(v)).sum();
    // |Σ q| <= 128 · len fits i32 for every row the kernels take (K <= 2^22).
    (biased - 128 * full) as i32 + tail
}

/// AVX2 [`crate::dispatch::I2sGemvFn`].
///
/// # Panics
/// If `q.len() != k` or `w` is too short.
pub(crate) fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    let Some(rows) = shape::gemv_rows(w, k, row0, q, out.len()) else {
        return reference::i2s_gemv(w, k, row0, q, out);
    };
    // SAFETY: shapes checked above; AVX2/FMA/F16C present because only `avx2::plug` installs
    // this fn (module doc).
    unsafe { gemv_impl(rows, k, q, out) }
}

/// # Safety
/// - `k % 128 == 0`, `q.len() == k`, `w.len() >= out.len() * k / 4`.
/// - The CPU implements AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemv_impl(w: &[u8], k: usize, q: &[i8], out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && q.len() == k && w.len() >= out.len() * k / 4);
    let qsum = sum_q(q);
    let rb = k / 4;
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row r is inside `w`; q has k elements.
        *o = unsafe { gemv_row(w[r * rb..].as_ptr(), q.as_ptr(), k) } - qsum;
    }
}

/// `Σ c·q` for one row against one token.
///
/// One row at a time: each thread then reads one sequential stream, which the hardware
/// prefetcher follows at the streaming-read rate. Interleaving rows to share the `q` loads (which
/// hit L1 anyway) halved the DRAM rate on a Zen 4 core: 1 row 17.8 GB/s, 4 rows 6.4 (9.7 with
/// software prefetch). Two i16 accumulators alternate so consecutive blocks do not wait on each
/// other's adds.
///
/// # Safety
/// - `k % 128 == 0`; `w` valid for `k / 4` bytes; `q` valid for `k` bytes.
/// - The CPU implements AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn gemv_row(w: *const u8, q: *const i8, k: usize) -> i32 {
    let nb = k / BLOCK;
    let ones = _mm256_set1_epi16(1);
    // Called with b < nb only.
    let dot = |b: usize| {
        // SAFETY: b < nb, so 128b + 32g + 32 <= k.
        let qv = [0usize, 1, 2, 3].map(|g| unsafe { load32(q.wrapping_add(b * BLOCK + 32 * g)) });
        // SAFETY: b < nb, so 32b + 32 <= k/4.
        let wv = unsafe { load32(w.wrapping_add(b * BLOCK_BYTES)) };
        block_dot(&decode(wv), &qv)
    };
    let mut acc32 = _mm256_setzero_si256();
    let mut b = 0;
    while b < nb {
        // Each of the two i16 accumulators gets at most WIDEN_BLOCKS blocks.
        let end = if nb - b > 2 * WIDEN_BLOCKS { b + 2 * WIDEN_BLOCKS } else { nb };
        let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        while b + 2 <= end {
            a0 = _mm256_add_epi16(a0, dot(b));
            a1 = _mm256_add_epi16(a1, dot(b + 1));
            b += 2;
        }
        if b < end {
            a0 = _mm256_add_epi16(a0, dot(b));
            b += 1;
        }
        let wide = _mm256_add_epi32(_mm256_madd_epi16(a0, ones), _mm256_madd_epi16(a1, ones));
        acc32 = _mm256_add_epi32(acc32, wide);
    }
    hsum(acc32)
}

/// AVX2 [`crate::dispatch::I2sGemmFn`].
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` is too short.
pub(crate) fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    let Some(rows) = shape::gemm_rows(w, k, row0, q, n, out.len()) else {
        return reference::i2s_gemm(w, k, row0, q, n, out);
    };
    // SAFETY: shapes checked above; AVX2 present because only `avx2::plug` installs this fn.
    unsafe { gemm_impl(rows, k, q, n, out) }
}

/// # Safety
/// - `k % 128 == 0`, `n > 0`, `q.len() == n * k`, `out.len() % n == 0`,
///   `w.len() >= out.len() / n * k / 4`.
/// - The CPU implements AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
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
/// - The CPU implements AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn gemm_tile<const T: usize>(w: *const u8, q: *const i8, k: usize) -> [i32; T] {
    let nb = k / BLOCK;
    let mut acc32 = [_mm256_setzero_si256(); T];
    let mut b = 0;
    while b < nb {
        let end = if nb - b > WIDEN_BLOCKS { b + WIDEN_BLOCKS } else { nb };
        let mut acc16 = [_mm256_setzero_si256(); T];
        while b < end {
            // SAFETY: 32b + 32 <= k/4 because b < nb.
            let c = decode(unsafe { load32(w.wrapping_add(b * BLOCK_BYTES)) });
            for (t, a) in acc16.iter_mut().enumerate() {
                let qb = t * k + b * BLOCK;
                // SAFETY: qb + 32g + 32 <= (t+1)*k <= T*k.
                let qv = [0usize, 1, 2, 3].map(|g| unsafe { load32(q.wrapping_add(qb + 32 * g)) });
                *a = _mm256_add_epi16(*a, block_dot(&c, &qv));
            }
            b += 1;
        }
        let ones = _mm256_set1_epi16(1);
        for (a32, a16) in acc32.iter_mut().zip(acc16) {
            *a32 = _mm256_add_epi32(*a32, _mm256_madd_epi16(a16, ones));
        }
    }
    acc32.map(|a| hsum(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::sum_i8;

    #[test]
    fn sum_q_matches_the_scalar_sum() {
        if !crate::testing::detect().avx2() {
            std::eprintln!("skipping: no AVX2");
            return;
        }
        let mut s = 7u32;
        let random: std::vec::Vec<i8> = (0..7000)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 16) as i8
            })
            .collect();
        for len in [0, 1, 31, 63, 64, 65, 128, 2560, 6912, 6929] {
            for v in [std::vec![i8::MIN; len], std::vec![i8::MAX; len], random[..len].to_vec()] {
                // Unaligned too: start one byte in.
                for off in [0, 1] {
                    let q = &v[off.min(len)..];
                    // SAFETY: AVX2 (with FMA and F16C, which the avx2 flag implies) checked above.
                    let got = unsafe { sum_q_checked(q) };
                    assert_eq!(got, sum_i8(q), "len {} off {off}", q.len());
                }
            }
        }
    }

    /// # Safety
    /// - The CPU implements AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn sum_q_checked(q: &[i8]) -> i32 {
        sum_q(q)
    }
}
