//! AVX-512 VNNI I2_S GEMV and GEMM over [`Layout::Lanes`] (the runtime relayouts I2_S tensors
//! at load for this tier: `KernelSet::i2s_layout`), bit-exact with
//! [`crate::reference::i2s_gemv_lanes`] / [`crate::reference::i2s_gemm_lanes`].
//!
//! Orientation: VNNI twins of the reference kernels over the lane layout.
//!
//! In [`Layout::Lanes`] one 64-byte load gives the same 4-byte word `c` of 16 rows, one row per
//! i32 lane. Byte `i` of word `c` holds, in bits `7−2g .. 6−2g`, the code of weight
//! `128·(c/8) + 32g + 4·(c%8) + i` (the published block order, see [`crate::formats::i2s`]), so
//! `vpdpbusd(acc, codes_g, broadcast(q[128·(c/8) + 32g + 4·(c%8) ..][..4]))` adds each row's four
//! products of sub-group `g` to its own lane: no reduction across lanes, ever.
//!
//! - **GEMV** (memory-bound): the activations are first permuted (per chunk of [`KC`]) so that
//!   word `c`'s four broadcasts are the 16 bytes at `16c`; then each 16-row group streams its
//!   words front to back, two 64-byte loads per iteration (a stride the hardware prefetcher
//!   follows). Sub-group `g` is only masked, never shifted: `x = w & (3 << 6−2g)` is
//!   `c · 4^(3−g)`, so accumulator `g` holds `4^(3−g) · Σ c·q` exactly and an arithmetic shift
//!   recovers `Σ c·q` — 1 load, 4 `vpand` and 4 `vpdpbusd` (broadcast operand from L1) per
//!   256 weights. The panel layout this replaced reduced 8 lanes per row and panel (60
//!   instructions per 512 weights on 256-bit registers against 18 here).
//! - **GEMM** (compute-bound): the codes of a word are shifted down once and shared by
//!   [`GEMM_TOKENS`] tokens, two accumulators per token (sub-groups 0/2 and 1/3), 16 rows at once.
//!
//! The result is `Σ c·q − Σ q`. `K % 128 != 0` (never relayouted), or K beyond [`MAX_K`], falls
//! back to the reference. Codes are assumed valid (a code 3 gives a wrong value, never UB:
//! `vpdpbusd` wraps).

use core::arch::x86_64::*;

use crate::formats::i2s::{BLOCK, LANE_ROWS, lane_group};
use crate::reference;
use crate::shape::{self, TOKEN_CHUNK};
use crate::x86_64::avx2::i2s::sum_q;

/// Largest `|x · q|` in the GEMV: the unshifted top sub-group, `(2 << 6) · 128`.
const MAX_ABS_PRODUCT_GEMV: usize = (2 << 6) * 128;
/// Products per i32 lane per word: one `vpdpbusd` adds 4.
const PRODUCTS_PER_WORD: usize = 4;
/// Longest rows the kernels take (longer ones go to the reference).
pub(crate) const MAX_K: usize = 1 << 22;
/// Activations per GEMV chunk (the permuted copy lives on the stack). Rows up to this long (every
/// supported model but Falcon3-10B's 23040-wide FFN) are one chunk, so a group's words are read
/// in one run: with 4096, the 6912-wide down projection was read as 16 KiB and 11 KiB pieces of
/// every group in two passes, and decode's I2_S GEMVs ran at ~70 % of a streaming read.
const KC: usize = 16384;
// Bound proofs. GEMV: each of the 2 × 4 accumulators sees every other word of one chunk
// (KC/32 words of 4 products) and lives for that chunk only; their sum per sub-group is then
// shifted down, and `out` sums `Σ c·q` over the whole row, |Σ c·q| ≤ 2 · 128 · K.
const _: () = assert!(KC.is_multiple_of(BLOCK));
const _: () =
    assert!(2 * (KC / 32) * PRODUCTS_PER_WORD * MAX_ABS_PRODUCT_GEMV <= i32::MAX as usize);
const _: () = assert!(2 * 128 * MAX_K <= i32::MAX as usize);
// GEMM: shifted codes (≤ 2) times q (≥ −128), over the whole row.
const _: () = assert!(2 * 128 * MAX_K <= i32::MAX as usize);

/// Tokens per GEMM tile (they share the decoded weights): 16 accumulators, 4 code vectors.
const GEMM_TOKENS: usize = 8;

/// VNNI [`crate::dispatch::I2sGemvFn`] over [`Layout::Lanes`]; `w` is the whole tensor
/// (exactly `m · k / 4` bytes).
///
/// # Panics
/// If `q.len() != k` or `w` does not hold the requested rows.
///
/// [`Layout::Lanes`]: crate::formats::i2s::Layout::Lanes
pub(crate) fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    if k == 0 || !k.is_multiple_of(BLOCK) || k > MAX_K {
        return reference::i2s_gemv_lanes(w, k, row0, q, out);
    }
    assert_eq!(q.len(), k, "i2s_gemv: q.len() != k");
    let m = shape::whole_rows(w, k, row0, out.len());
    // SAFETY: shapes checked above; VNNI/F/BW present because only `vnni::plug` installs
    // this fn (module doc).
    unsafe { gemv_impl(w, m, k, row0, q, out) }
}

/// 64-byte aligned bytes.
#[repr(C, align(64))]
struct Aligned<const N: usize>([u8; N]);

/// Writes the `kc` activations `q` (`kc % 128 == 0`) in word order: word `c`'s four
/// sub-group broadcasts, `q[128·(c/8) + 32g + 4·(c%8) ..][..4]` for `g = 0..4`, at `16c + 4g`.
///
/// Per 128-byte block that is a transpose of 4 × 8 dwords (dword `8g + d` → `4d + g`): two
/// `vpermt2d`. It runs once per GEMV call and chunk, and with two threads the work-stealing
/// split makes a call per claim (64 KiB of weights and up): the byte-wise loop it replaced, and
/// zeroing the 16 KiB buffer, took 4.4 % of a 2-thread decode's samples on a Zen 4 core.
///
/// # Safety
/// - `out` is valid for `q.len()` bytes of writes and 64-byte aligned.
/// - The CPU implements the features enabled below (as for [`gemv_impl`], its only caller).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn permute(q: &[i8], out: *mut u8) {
    debug_assert!(q.len().is_multiple_of(BLOCK) && out.align_offset(64) == 0);
    // Output dword o of the block's low half is input dword 8·(o % 4) + o / 4; the high half
    // (o + 16) adds 4.
    let lo = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    let hi = _mm512_add_epi32(lo, _mm512_set1_epi32(4));
    for (b, qb) in q.chunks_exact(BLOCK).enumerate() {
        // SAFETY: `qb` is 128 readable bytes.
        let [a0, a1] =
            [0usize, 64].map(|o| unsafe { _mm512_loadu_si512(qb.as_ptr().wrapping_add(o).cast()) });
        let ob = out.wrapping_add(b * BLOCK);
        let (v0, v1) =
            (_mm512_permutex2var_epi32(a0, lo, a1), _mm512_permutex2var_epi32(a0, hi, a1));
        // SAFETY: bytes b·128 .. b·128 + 128 of `out` are inside it (caller), 64-byte aligned.
        unsafe { _mm512_store_si512(ob.cast(), v0) };
        // SAFETY: as above.
        unsafe { _mm512_store_si512(ob.wrapping_add(64).cast(), v1) };
    }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `q.len() == k`, `w.len() == m * k / 4`,
///   `row0 + out.len() <= m`.
/// - The CPU implements AVX2, AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemv_impl(w: &[u8], m: usize, k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && q.len() == k && w.len() == m * k / 4);
    debug_assert!(row0 + out.len() <= m);
    let rb = k / 4;
    let end = row0 + out.len();
    // Not zeroed: `permute` writes the `kc` bytes that `lanes` then reads.
    let mut perm = core::mem::MaybeUninit::<Aligned<KC>>::uninit();
    let pp = perm.as_mut_ptr().cast::<u8>();
    let mut c0 = 0;
    while c0 < k {
        let kc = core::cmp::min(KC, k - c0);
        // SAFETY: `perm` holds KC >= kc bytes, 64-byte aligned; AVX-512 F (caller).
        unsafe { permute(&q[c0..c0 + kc], pp) };
        let words = kc / 16;
        let mut r = row0;
        while r < end {
            // The group holding row r (first row g0, h rows) and the requested rows in it.
            let (g0, h) = lane_group(m, r);
            let stop = core::cmp::min(end, g0 + h);
            // Words c0/16 .. of the group: h·4 bytes each (Layout::Lanes).
            let base = w.as_ptr().wrapping_add(g0 * rb + (c0 / 16) * h * 4);
            let v = if h == LANE_ROWS {
                // SAFETY: the group's `words` words from c0/16 are inside `w`; the first
                // 16·words = kc bytes of `perm` were just written by `permute`.
                unsafe { lanes::<true>(base, h, pp, words) }
            } else {
                // SAFETY: as above, h·4 bytes per word.
                unsafe { lanes::<false>(base, h, pp, words) }
            };
            let mut lane = [0i32; LANE_ROWS];
            // SAFETY: `lane` is 64 bytes, written unaligned.
            unsafe { _mm512_storeu_si512(lane.as_mut_ptr().cast(), v) };
            let o = &mut out[r - row0..stop - row0];
            for (o, &s) in o.iter_mut().zip(&lane[r - g0..stop - g0]) {
                *o = if c0 == 0 { s } else { o.wrapping_add(s) };
            }
            r = stop;
        }
        c0 += kc;
    }
    let qsum = sum_q(q);
    for o in out.iter_mut() {
        *o = o.wrapping_sub(qsum);
    }
}

/// `Σ c·q` of the group's `h` rows over `words` consecutive words (even), lane `i` for row `i`.
///
/// # Safety
/// - `base` is valid for `words · 4h` bytes (`FULL`: `h == 16`), `q` for `16 · words` bytes.
/// - The CPU implements AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn lanes<const FULL: bool>(
    base: *const u8,
    h: usize,
    q: *const u8,
    words: usize,
) -> __m512i {
    debug_assert!(words.is_multiple_of(2) && (FULL == (h == LANE_ROWS)) && h <= LANE_ROWS);
    let stride = if FULL { 64 } else { 4 * h };
    let keep = ((1u32 << h) - 1) as __mmask16;
    let mask = [0xC0u8, 0x30, 0x0C, 0x03].map(|m| _mm512_set1_epi8(m as i8));
    let mut a = [[_mm512_setzero_si512(); 4]; 2];
    let load = |p: *const u8| {
        if FULL {
            // SAFETY: a full word of 16 rows, 64 bytes (caller).
            unsafe { _mm512_loadu_si512(p.cast()) }
        } else {
            // SAFETY: the first h lanes are the word's h·4 bytes (caller); the rest are masked
            // off and never read.
            unsafe { _mm512_maskz_loadu_epi32(keep, p.cast()) }
        }
    };
    // Two words per iteration: each load instruction walks the group 2·stride bytes at a time.
    let mut c = 0;
    while c < words {
        for (u, au) in a.iter_mut().enumerate() {
            let wv = load(base.wrapping_add((c + u) * stride));
            let qw = q.wrapping_add(16 * (c + u));
            for (g, ag) in au.iter_mut().enumerate() {
                // SAFETY: 16(c + u) + 4g + 4 <= 16·words: inside `q` (caller).
                let x = unsafe { qw.wrapping_add(4 * g).cast::<i32>().read_unaligned() };
                *ag = _mm512_dpbusd_epi32(*ag, _mm512_and_si512(wv, mask[g]), _mm512_set1_epi32(x));
            }
        }
        c += 2;
    }
    let s = |g: usize| _mm512_add_epi32(a[0][g], a[1][g]);
    _mm512_add_epi32(
        _mm512_add_epi32(_mm512_srai_epi32::<6>(s(0)), _mm512_srai_epi32::<4>(s(1))),
        _mm512_add_epi32(_mm512_srai_epi32::<2>(s(2)), s(3)),
    )
}

/// VNNI [`crate::dispatch::I2sGemmFn`] over [`Layout::Lanes`]; `w` is the whole tensor.
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` does not hold the requested rows.
///
/// [`Layout::Lanes`]: crate::formats::i2s::Layout::Lanes
pub(crate) fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    if k == 0 || !k.is_multiple_of(BLOCK) || k > MAX_K || n == 0 {
        return reference::i2s_gemm_lanes(w, k, row0, q, n, out);
    }
    assert_eq!(q.len(), n * k, "i2s_gemm: q.len() != n*k");
    assert_eq!(out.len() % n, 0, "i2s_gemm: out.len() not a multiple of n");
    let m = shape::whole_rows(w, k, row0, out.len() / n);
    // SAFETY: shapes checked above; VNNI/F/BW present because only `vnni::plug` installs
    // this fn.
    unsafe { gemm_impl(w, m, k, row0, q, n, out) }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `n > 0`, `q.len() == n * k`, `out.len() % n == 0`,
///   `w.len() == m * k / 4`, `row0 + out.len() / n <= m`.
/// - The CPU implements AVX2, AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_impl(
    w: &[u8],
    m: usize,
    k: usize,
    row0: usize,
    q: &[i8],
    n: usize,
    out: &mut [i32],
) {
    debug_assert!(k.is_multiple_of(BLOCK) && n > 0 && q.len() == n * k);
    let rows = out.len() / n;
    let rb = k / 4;
    let mut t0 = 0;
    while t0 < n {
        let cn = core::cmp::min(TOKEN_CHUNK, n - t0);
        let sq = shape::token_sums(q, k, t0, cn);
        let mut r = row0;
        while r < row0 + rows {
            let (g0, h) = lane_group(m, r);
            let stop = core::cmp::min(row0 + rows, g0 + h);
            let base = w.as_ptr().wrapping_add(g0 * rb);
            let mut t = 0;
            while t < cn {
                let qp = q[(t0 + t) * k..].as_ptr();
                let tn = match cn - t {
                    8.. => 8,
                    4.. => 4,
                    2.. => 2,
                    _ => 1,
                };
                // SAFETY: the group's h rows are inside `w`, tokens t0+t .. +tn inside `q`.
                let acc = unsafe { gemm_tiles(base, h, k, qp, tn) };
                for (j, a) in acc.iter().enumerate().take(tn) {
                    let mut lane = [0i32; LANE_ROWS];
                    // SAFETY: `lane` is 64 bytes, written unaligned.
                    unsafe { _mm512_storeu_si512(lane.as_mut_ptr().cast(), *a) };
                    for i in r..stop {
                        out[(i - row0) * n + t0 + t + j] = lane[i - g0].wrapping_sub(sq[t + j]);
                    }
                }
                t += tn;
            }
            r = stop;
        }
        t0 += cn;
    }
}

/// [`gemm_tile`] for `tn` ∈ {1, 2, 4, 8} tokens, in the first `tn` entries.
///
/// # Safety
/// As [`gemm_tile`] with `T = tn`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_tiles(
    base: *const u8,
    h: usize,
    k: usize,
    q: *const i8,
    tn: usize,
) -> [__m512i; GEMM_TOKENS] {
    let mut acc = [_mm512_setzero_si512(); GEMM_TOKENS];
    match tn {
        // SAFETY: the caller's contract with T = 8.
        8 => acc = unsafe { gemm_tile::<8>(base, h, k, q) },
        // SAFETY: T = 4.
        4 => acc[..4].copy_from_slice(&unsafe { gemm_tile::<4>(base, h, k, q) }),
        // SAFETY: T = 2.
        2 => acc[..2].copy_from_slice(&unsafe { gemm_tile::<2>(base, h, k, q) }),
        // SAFETY: T = 1.
        _ => acc[..1].copy_from_slice(&unsafe { gemm_tile::<1>(base, h, k, q) }),
    }
    acc
}

/// `Σ c·q` of one group's `h` rows (lane `i` for row `i`) against `T` tokens (stride `k`).
///
/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`; `base` holds the group's `h ≤ 16` rows in
///   [`crate::formats::i2s::Layout::Lanes`] (`h · k / 4` bytes); `q` valid for `T * k` bytes.
/// - The CPU implements AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn gemm_tile<const T: usize>(
    base: *const u8,
    h: usize,
    k: usize,
    q: *const i8,
) -> [__m512i; T] {
    let keep = ((1u32 << h) - 1) as __mmask16;
    let stride = 4 * h;
    let m3 = _mm512_set1_epi8(3);
    let mut acc = [[_mm512_setzero_si512(); 2]; T];
    for b in 0..k / BLOCK {
        for d in 0..8 {
            let c = 8 * b + d;
            // SAFETY: word c < k/16 of the group: its h·4 bytes are inside it; the masked-off
            // lanes are never read.
            let wv =
                unsafe { _mm512_maskz_loadu_epi32(keep, base.wrapping_add(c * stride).cast()) };
            let codes = [
                _mm512_and_si512(_mm512_srli_epi16::<6>(wv), m3),
                _mm512_and_si512(_mm512_srli_epi16::<4>(wv), m3),
                _mm512_and_si512(_mm512_srli_epi16::<2>(wv), m3),
                _mm512_and_si512(wv, m3),
            ];
            for (j, aj) in acc.iter_mut().enumerate() {
                for (g, cg) in codes.iter().enumerate() {
                    let p = q.wrapping_add(j * k + BLOCK * b + 32 * g + 4 * d);
                    // SAFETY: j < T and 128b + 32g + 4d + 4 <= k: inside token j's activations.
                    let x = unsafe { p.cast::<i32>().read_unaligned() };
                    aj[g % 2] = _mm512_dpbusd_epi32(aj[g % 2], *cg, _mm512_set1_epi32(x));
                }
            }
        }
    }
    acc.map(|a| _mm512_add_epi32(a[0], a[1]))
}
