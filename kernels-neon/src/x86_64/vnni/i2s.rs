//! AVX-512 VNNI I2_S GEMV and GEMM over the published 128/32 layout, bit-exact with
//! [`crate::reference::i2s_gemv`] / [`crate::reference::i2s_gemm`].
//!
//! Orientation: VNNI twins of `reference::i2s_gemv` and `reference::i2s_gemm`.
//!
//! A 128-weight block is one 32-byte vector whose sub-group `g` sits in bits `7−2g .. 6−2g` of
//! every byte, lined up with the 32 activations at `q[128b + 32g]` (see [`crate::formats::i2s`]).
//! `vpdpbusd(acc, u8 x, i8 q)` adds four exact u8·i8 products to each i32 lane.
//!
//! - **GEMV** (memory-bound): sub-group `g` is only masked, never shifted: `x = w & (3 << 6−2g)`
//!   is `c · 4^(3−g)`, so accumulator `g` holds `4^(3−g) · Σ c·q` exactly and an arithmetic shift
//!   right by `6 − 2g` at the end of the row recovers `Σ c·q` (4 `vpand` + 4 `vpdpbusd` per
//!   block). Two blocks are in flight with separate accumulators (the `vpdpbusd` latency chain).
//! - **GEMM** (compute-bound): the codes are shifted down once per block and shared by
//!   [`GEMM_TOKENS`] tokens × [`GEMM_ROWS`] rows, one accumulator per (row, token).
//!
//! The result is `Σ c·q − Σ q`. `K % 128 != 0`, or K beyond [`MAX_K`], falls back to the
//! reference. Codes are assumed valid (a code 3 gives a wrong value, never UB: `vpdpbusd` wraps).

use core::arch::x86_64::*;

use crate::formats::i2s::{BLOCK, BLOCK_BYTES};
use crate::reference;
use crate::shape::{self, TOKEN_CHUNK, sum_i8};
use crate::x86_64::avx2::i2s::{hsum, load32};

/// Largest `|x · q|` in the GEMV: the unshifted top sub-group, `(2 << 6) · 128`.
const MAX_ABS_PRODUCT_GEMV: usize = (2 << 6) * 128;
/// Products per i32 lane per block: one `vpdpbusd` adds 4.
const PRODUCTS_PER_BLOCK: usize = 4;
/// Largest row length whose GEMV accumulators cannot overflow (i32 lanes).
pub(crate) const MAX_K: usize = 1 << 22;
// Bound proof: over `MAX_K / 128` blocks, one lane of the top sub-group's accumulator sums at most
// this many products of at most this size.
const _: () =
    assert!((MAX_K / BLOCK) * PRODUCTS_PER_BLOCK * MAX_ABS_PRODUCT_GEMV <= i32::MAX as usize + 1);
// GEMM: shifted codes (≤ 2) times q (≥ −128), 4 sub-groups × 4 products per block per lane.
const _: () = assert!((MAX_K / BLOCK) * 4 * PRODUCTS_PER_BLOCK * 2 * 128 <= i32::MAX as usize);

/// Rows per GEMM tile (they share the activation loads). Zen 4, one thread, 64 tokens of
/// 2560-wide rows in cache (`examples/bw.rs`): 2 × 4 tiles 0.74 GB/s of weights, 4 × 4 0.82
/// (2.25 cycles per 32-byte block and token, against the 2 of `vpdpbusd` throughput).
const GEMM_ROWS: usize = 4;
/// Tokens per GEMM tile (they share the decoded weights).
const GEMM_TOKENS: usize = 4;
/// Bytes ahead of the current block that the GEMV prefetches (on top of the hardware
/// prefetcher, which alone left a Zen 4 core at 17 GB/s instead of 22).
const PREFETCH_AHEAD: usize = 256;

/// VNNI [`crate::dispatch::I2sGemvFn`].
///
/// # Panics
/// If `q.len() != k` or `w` is too short.
pub(crate) fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    let Some(rows) = shape::gemv_rows(w, k, row0, q, out.len()).filter(|_| k <= MAX_K) else {
        return reference::i2s_gemv(w, k, row0, q, out);
    };
    // SAFETY: shapes checked above; VNNI/VL/AVX2 present because only `vnni::plug` installs
    // this fn (module doc).
    unsafe { gemv_impl(rows, k, q, out) }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `q.len() == k`, `w.len() >= out.len() * k / 4`.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn gemv_impl(w: &[u8], k: usize, q: &[i8], out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && q.len() == k && w.len() >= out.len() * k / 4);
    let qsum = sum_i8(q);
    if (k / BLOCK).is_multiple_of(2) {
        // SAFETY: forwarded from the caller; the block count is even.
        unsafe { gemv_rows::<false>(w.as_ptr(), q.as_ptr(), k, out) };
    } else {
        // SAFETY: forwarded from the caller; the block count is odd.
        unsafe { gemv_rows::<true>(w.as_ptr(), q.as_ptr(), k, out) };
    }
    for o in out.iter_mut() {
        *o = o.wrapping_sub(qsum);
    }
}

/// `Σ c·q` of `out.len()` consecutive rows against one token, one row after the other: each
/// thread then reads one sequential stream (see the AVX2 tier for why rows are not interleaved).
///
/// A function of its own, per block-count parity, so that nothing competes with the block loop
/// for registers: with an odd-block tail in the same function the compiler moved temporaries into
/// ymm16-31, and the loop's DRAM rate halved on Zen 4 (12 instead of 21 GB/s, the same
/// instructions otherwise). `ODD`: the last block pairs with [`ZERO_BLOCK`] (zero codes add 0).
///
/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `ODD == (k / 128 is odd)`; `w` valid for `out.len() * k / 4`
///   bytes; `q` valid for `k` bytes.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn gemv_rows<const ODD: bool>(w: *const u8, q: *const i8, k: usize, out: &mut [i32]) {
    let nb = k / BLOCK;
    let rb = k / 4;
    let mask = [0xC0u8, 0x30, 0x0C, 0x03].map(|m| _mm256_set1_epi8(m as i8));
    let row = |wr: *const u8| {
        let mut acc = [[_mm256_setzero_si256(); 4]; 2];
        let mut b = 0;
        while b < nb {
            // The second block of the pair, or the zero block after an odd last one.
            let (w1, b1) = if ODD && b + 1 == nb {
                (ZERO_BLOCK.as_ptr(), b)
            } else {
                (wr.wrapping_add((b + 1) * BLOCK_BYTES), b + 1)
            };
            for (au, (wp, bq)) in
                acc.iter_mut().zip([(wr.wrapping_add(b * BLOCK_BYTES), b), (w1, b1)])
            {
                // SAFETY: `wp` is block b or b+1 < nb of this row (32 bytes inside `w`) or
                // ZERO_BLOCK.
                let wv = unsafe { load32(wp) };
                for (g, a) in au.iter_mut().enumerate() {
                    // SAFETY: bq < nb, so 128bq + 32g + 32 <= k.
                    let qv = unsafe { load32(q.wrapping_add(bq * BLOCK + 32 * g)) };
                    *a = _mm256_dpbusd_epi32(*a, _mm256_and_si256(wv, mask[g]), qv);
                }
            }
            // Never faults, even past the end of the tensor.
            _mm_prefetch::<_MM_HINT_T0>(wr.wrapping_add(b * BLOCK_BYTES + PREFETCH_AHEAD).cast());
            b += 2;
        }
        let a: [__m256i; 4] = core::array::from_fn(|g| _mm256_add_epi32(acc[0][g], acc[1][g]));
        _mm256_add_epi32(
            _mm256_add_epi32(_mm256_srai_epi32::<6>(a[0]), _mm256_srai_epi32::<4>(a[1])),
            _mm256_add_epi32(_mm256_srai_epi32::<2>(a[2]), a[3]),
        )
    };
    for (r, o) in out.iter_mut().enumerate() {
        *o = hsum(row(w.wrapping_add(r * rb)));
    }
}

/// Stands in for the block after an odd last block: zero codes add nothing.
static ZERO_BLOCK: [u8; BLOCK_BYTES] = [0; BLOCK_BYTES];

/// VNNI [`crate::dispatch::I2sGemmFn`].
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` is too short.
pub(crate) fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    let Some(rows) = shape::gemm_rows(w, k, row0, q, n, out.len()).filter(|_| k <= MAX_K) else {
        return reference::i2s_gemm(w, k, row0, q, n, out);
    };
    // SAFETY: shapes checked above; VNNI/VL/AVX2 present because only `vnni::plug` installs
    // this fn.
    unsafe { gemm_impl(rows, k, q, n, out) }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `n > 0`, `q.len() == n * k`, `out.len() % n == 0`,
///   `w.len() >= out.len() / n * k / 4`.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn gemm_impl(w: &[u8], k: usize, q: &[i8], n: usize, out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && n > 0 && q.len() == n * k);
    let rows = out.len() / n;
    let rb = k / 4;
    let mut t0 = 0;
    while t0 < n {
        let cn = core::cmp::min(TOKEN_CHUNK, n - t0);
        let sq = shape::token_sums(q, k, t0, cn);
        let mut r = 0;
        while r < rows {
            let rn = core::cmp::min(GEMM_ROWS, rows - r);
            let mut t = 0;
            while t < cn {
                let tn = core::cmp::min(GEMM_TOKENS, cn - t);
                let wp = w[r * rb..].as_ptr();
                let qp = q[(t0 + t) * k..].as_ptr();
                let acc = match (rn, tn) {
                    // SAFETY: rows r..r+rn lie inside `w`, tokens t0+t..t0+t+tn inside `q`.
                    (GEMM_ROWS, GEMM_TOKENS) => unsafe {
                        gemm_tile::<GEMM_ROWS, GEMM_TOKENS>(wp, qp, k)
                    },
                    // SAFETY: as above.
                    _ => unsafe { gemm_tile_edge(wp, qp, k, rn, tn) },
                };
                for (i, row) in acc.iter().enumerate().take(rn) {
                    for (j, &a) in row.iter().enumerate().take(tn) {
                        out[(r + i) * n + t0 + t + j] = a.wrapping_sub(sq[t + j]);
                    }
                }
                t += tn;
            }
            r += rn;
        }
        t0 += cn;
    }
}

/// A partial tile (fewer rows or tokens), one (row, token) at a time.
///
/// # Safety
/// As [`gemm_tile`] with `R = rn ≤ GEMM_ROWS`, `T = tn ≤ GEMM_TOKENS`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn gemm_tile_edge(
    w: *const u8,
    q: *const i8,
    k: usize,
    rn: usize,
    tn: usize,
) -> [[i32; GEMM_TOKENS]; GEMM_ROWS] {
    let mut out = [[0i32; GEMM_TOKENS]; GEMM_ROWS];
    for (i, row) in out.iter_mut().enumerate().take(rn) {
        for (j, o) in row.iter_mut().enumerate().take(tn) {
            // SAFETY: row i < rn and token j < tn are inside the caller's ranges.
            *o =
                unsafe { gemm_tile::<1, 1>(w.wrapping_add(i * (k / 4)), q.wrapping_add(j * k), k) }
                    [0][0];
        }
    }
    out
}

/// `Σ c·q` for `R` rows (byte stride `k/4`) against `T` tokens (stride `k`).
///
/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`; `w` valid for `R * k / 4` bytes; `q` valid for `T * k` bytes.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
#[inline]
unsafe fn gemm_tile<const R: usize, const T: usize>(
    w: *const u8,
    q: *const i8,
    k: usize,
) -> [[i32; GEMM_TOKENS]; GEMM_ROWS] {
    let nb = k / BLOCK;
    let rb = k / 4;
    let m = _mm256_set1_epi8(3);
    let mut acc = [[_mm256_setzero_si256(); T]; R];
    for b in 0..nb {
        let raw: [__m256i; R] = core::array::from_fn(|i| {
            // SAFETY: i < R and b < nb, so i*rb + 32b + 32 <= R*rb.
            unsafe { load32(w.wrapping_add(i * rb + b * BLOCK_BYTES)) }
        });
        // One sub-group at a time keeps R code vectors live, not 4R.
        for g in 0..4 {
            let codes: [__m256i; R] = raw.map(|wv| {
                let shifted = match g {
                    0 => _mm256_srli_epi16::<6>(wv),
                    1 => _mm256_srli_epi16::<4>(wv),
                    2 => _mm256_srli_epi16::<2>(wv),
                    _ => wv,
                };
                _mm256_and_si256(shifted, m)
            });
            for j in 0..T {
                // SAFETY: j < T and b < nb, so j*k + 128b + 32g + 32 <= T*k.
                let qv = unsafe { load32(q.wrapping_add(j * k + b * BLOCK + 32 * g)) };
                for (ai, ci) in acc.iter_mut().zip(&codes) {
                    ai[j] = _mm256_dpbusd_epi32(ai[j], *ci, qv);
                }
            }
        }
    }
    let mut out = [[0i32; GEMM_TOKENS]; GEMM_ROWS];
    for (oi, ai) in out.iter_mut().zip(&acc) {
        for (o, a) in oi.iter_mut().zip(ai) {
            *o = hsum(*a);
        }
    }
    out
}
