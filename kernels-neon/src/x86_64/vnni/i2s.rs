//! AVX-512 VNNI I2_S GEMV and GEMM over [`Layout::Panels`] (the runtime relayouts I2_S tensors
//! at load for this tier: `KernelSet::i2s_layout`), bit-exact with
//! [`crate::reference::i2s_gemv_panels`] / [`crate::reference::i2s_gemm_panels`].
//!
//! Orientation: VNNI twins of the reference kernels over the panel layout.
//!
//! A 128-weight block is one 32-byte vector whose sub-group `g` sits in bits `7−2g .. 6−2g` of
//! every byte, lined up with the 32 activations at `q[128b + 32g]` (see [`crate::formats::i2s`]).
//! `vpdpbusd(acc, u8 x, i8 q)` adds four exact u8·i8 products to each i32 lane.
//!
//! - **GEMV** (memory-bound): one panel at a time, its 512 activations in 16 registers, the
//!   panel's rows streamed in order (128 bytes each, the weights' only memory traffic). Sub-group
//!   `g` is only masked, never shifted: `x = w & (3 << 6−2g)` is `c · 4^(3−g)`, so accumulator
//!   `g` holds `4^(3−g) · Σ c·q` exactly and an arithmetic shift recovers `Σ c·q` (4 `vpand` + 4
//!   `vpdpbusd` per block, 6 more per row and panel). Eight rows' sums are reduced together
//!   (`vphaddd` tree) and added to `out`, but the row loop itself stays rolled and has no
//!   software prefetch: the hardware prefetcher follows it (see [`panel`]). In the published
//!   layout the same loop re-read 128 activation bytes from L1 per 32 weight bytes, and a Zen 4
//!   core then streamed 16–21 GB/s from DRAM against 27–30 for a plain read (see
//!   `examples/bw.rs`).
//! - **GEMM** (compute-bound): the codes are shifted down once per block and shared by
//!   [`GEMM_TOKENS`] tokens × [`GEMM_ROWS`] rows, one accumulator per (row, token); each block's
//!   address comes from [`Layout::block_offset`].
//!
//! The result is `Σ c·q − Σ q`. `K % 128 != 0` (never relayouted), or K beyond [`MAX_K`], falls
//! back to the reference. Codes are assumed valid (a code 3 gives a wrong value, never UB:
//! `vpdpbusd` wraps).

use core::arch::x86_64::*;

use crate::formats::i2s::{BLOCK, BLOCK_BYTES, Layout, PANEL_BLOCKS, panel_tile};
use crate::reference;
use crate::shape::{self, TOKEN_CHUNK};
use crate::x86_64::avx2::i2s::{hsum, load32, sum_q};

/// Largest `|x · q|` in the GEMV: the unshifted top sub-group, `(2 << 6) · 128`.
const MAX_ABS_PRODUCT_GEMV: usize = (2 << 6) * 128;
/// Products per i32 lane per block: one `vpdpbusd` adds 4.
const PRODUCTS_PER_BLOCK: usize = 4;
/// Longest rows the kernels take (longer ones go to the reference).
pub(crate) const MAX_K: usize = 1 << 22;
// Bound proofs. GEMV: a sub-group accumulator lives for one panel (≤ 4 blocks) and stays tiny;
// `out` then sums `Σ c·q` over the whole row, |Σ c·q| ≤ 2 · 128 · K.
const _: () =
    assert!(PANEL_BLOCKS * PRODUCTS_PER_BLOCK * MAX_ABS_PRODUCT_GEMV <= i32::MAX as usize);
const _: () = assert!(2 * 128 * MAX_K <= i32::MAX as usize);
// GEMM: shifted codes (≤ 2) times q (≥ −128), 4 sub-groups × 4 products per block per lane.
const _: () = assert!((MAX_K / BLOCK) * 4 * PRODUCTS_PER_BLOCK * 2 * 128 <= i32::MAX as usize);

/// Rows per GEMM tile (they share the activation loads). Zen 4, one thread, 64 tokens of
/// 2560-wide rows in cache (`examples/bw.rs`): 2 × 4 tiles 0.74 GB/s of weights, 4 × 4 0.82
/// (2.25 cycles per 32-byte block and token, against the 2 of `vpdpbusd` throughput).
const GEMM_ROWS: usize = 4;
/// Tokens per GEMM tile (they share the decoded weights).
const GEMM_TOKENS: usize = 4;
/// Rows whose sums are reduced together.
const GROUP: usize = 8;

/// VNNI [`crate::dispatch::I2sGemvFn`] over [`Layout::Panels`]; `w` is the whole tensor
/// (exactly `m · k / 4` bytes).
///
/// # Panics
/// If `q.len() != k` or `w` does not hold the requested rows.
pub(crate) fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    if k == 0 || !k.is_multiple_of(BLOCK) || k > MAX_K {
        return reference::i2s_gemv_panels(w, k, row0, q, out);
    }
    assert_eq!(q.len(), k, "i2s_gemv: q.len() != k");
    let m = shape::panel_rows(w, k, row0, out.len());
    // SAFETY: shapes checked above; VNNI/VL/AVX2 present because only `vnni::plug` installs
    // this fn (module doc).
    unsafe { gemv_impl(w, m, k, row0, q, out) }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `q.len() == k`, `w.len() == m * k / 4`,
///   `row0 + out.len() <= m`.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn gemv_impl(w: &[u8], m: usize, k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    debug_assert!(k.is_multiple_of(BLOCK) && q.len() == k && w.len() == m * k / 4);
    debug_assert!(row0 + out.len() <= m);
    out.fill(0);
    let nb = k / BLOCK;
    let (wp, qp) = (w.as_ptr(), q.as_ptr());
    let end = row0 + out.len();
    let mut r = row0;
    while r < end {
        // The row tile holding row r (first row t0, h rows) and the requested rows in it.
        let (t0, h) = panel_tile(m, r);
        let stop = core::cmp::min(end, t0 + h);
        let o = &mut out[r - row0..stop - row0];
        let mut b = 0;
        while b < nb {
            let width = core::cmp::min(PANEL_BLOCKS, nb - b);
            let base = wp.wrapping_add(Layout::Panels.block_offset(m, k, t0, b));
            let qb = qp.wrapping_add(b * BLOCK);
            // The panel of blocks b .. b+width in this tile holds h rows of 32·width bytes at
            // `base` (Layout::Panels), rows r − t0 .. stop − t0 among them; its activations are
            // q[128b .. 128(b + width)].
            match width {
                // SAFETY: as above, width 4.
                4 => unsafe { panel::<4>(base, qb, r - t0, o) },
                // SAFETY: as above, width 3.
                3 => unsafe { panel::<3>(base, qb, r - t0, o) },
                // SAFETY: as above, width 2.
                2 => unsafe { panel::<2>(base, qb, r - t0, o) },
                // SAFETY: as above, width 1.
                _ => unsafe { panel::<1>(base, qb, r - t0, o) },
            }
            b += width;
        }
        r = stop;
    }
    let qsum = sum_q(q);
    for o in out.iter_mut() {
        *o = o.wrapping_sub(qsum);
    }
}

/// Adds `Σ c·q` over one panel of `W` blocks to `out[i]` for the rows `row0 + i`.
///
/// A function of its own per width, so that nothing else competes with the row loop for
/// registers (16 activation vectors, 4 masks, 4 accumulators and the weights).
///
/// # Safety
/// - `base` is valid for `(row0 + out.len()) · 32W` bytes (the panel's rows, 32W bytes each);
///   `q` for `128W` bytes.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn panel<const W: usize>(base: *const u8, q: *const i8, row0: usize, out: &mut [i32]) {
    let stride = W * BLOCK_BYTES;
    let mask = [0xC0u8, 0x30, 0x0C, 0x03].map(|m| _mm256_set1_epi8(m as i8));
    let mut x = [[_mm256_setzero_si256(); 4]; W];
    for (b, xb) in x.iter_mut().enumerate() {
        for (g, v) in xb.iter_mut().enumerate() {
            // SAFETY: 128b + 32g + 32 <= 128W: inside the panel's activations.
            *v = unsafe { load32(q.wrapping_add(b * BLOCK + 32 * g)) };
        }
    }
    // `Σ c·q` of row `r` of the panel in the eight lanes of one vector.
    macro_rules! row {
        ($r:expr) => {{
            let wr = base.wrapping_add(($r) * stride);
            let mut a = [_mm256_setzero_si256(); 4];
            for (b, xb) in x.iter().enumerate() {
                // SAFETY: block b < W of row r: 32 bytes inside the panel (caller).
                let wv = unsafe { load32(wr.wrapping_add(b * BLOCK_BYTES)) };
                for g in 0..4 {
                    a[g] = _mm256_dpbusd_epi32(a[g], _mm256_and_si256(wv, mask[g]), xb[g]);
                }
            }
            _mm256_add_epi32(
                _mm256_add_epi32(_mm256_srai_epi32::<6>(a[0]), _mm256_srai_epi32::<4>(a[1])),
                _mm256_add_epi32(_mm256_srai_epi32::<2>(a[2]), a[3]),
            )
        }};
    }
    // One row per iteration, its sum parked in `vs` until a group of eight is reduced. The loop
    // must stay rolled: each load instruction then walks the panel 128 bytes at a time, a
    // sequential stream the hardware prefetcher follows on its own. Unrolled by the group (as
    // this kernel first was), every load instruction strode 1 KiB and, from DRAM, the kernel
    // fell to ~10 GB/s without software prefetch; with it, to 0.89 (1 thread) and 0.81 (2) of a
    // plain streaming read, against 0.97 and 0.93 rolled without (Zen 4, 512 MiB of 6912 × 2560
    // tensors, medians of 12 alternating runs).
    let n = out.len();
    let full = n - n % GROUP;
    let mut vs = [_mm256_setzero_si256(); GROUP];
    let mut i = 0;
    while i < full {
        vs[i % GROUP] = row!(row0 + i);
        if i % GROUP == GROUP - 1 {
            let h0 = _mm256_hadd_epi32(vs[0], vs[1]);
            let h1 = _mm256_hadd_epi32(vs[2], vs[3]);
            let h2 = _mm256_hadd_epi32(vs[4], vs[5]);
            let h3 = _mm256_hadd_epi32(vs[6], vs[7]);
            // Per 128-bit half: rows 0..4 in g0, rows 4..8 in g1.
            let g0 = _mm256_hadd_epi32(h0, h1);
            let g1 = _mm256_hadd_epi32(h2, h3);
            let s = _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(g0, g1),
                _mm256_permute2x128_si256::<0x31>(g0, g1),
            );
            let o = out[i + 1 - GROUP..=i].as_mut_ptr().cast::<__m256i>();
            // SAFETY: `o` points to 8 i32 of `out`, read unaligned.
            let sum = _mm256_add_epi32(unsafe { _mm256_loadu_si256(o) }, s);
            // SAFETY: as above, written unaligned.
            unsafe { _mm256_storeu_si256(o, sum) };
        }
        i += 1;
    }
    while i < n {
        out[i] = out[i].wrapping_add(hsum(row!(row0 + i)));
        i += 1;
    }
}

/// VNNI [`crate::dispatch::I2sGemmFn`] over [`Layout::Panels`]; `w` is the whole tensor.
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` does not hold the requested rows.
pub(crate) fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    if k == 0 || !k.is_multiple_of(BLOCK) || k > MAX_K || n == 0 {
        return reference::i2s_gemm_panels(w, k, row0, q, n, out);
    }
    assert_eq!(q.len(), n * k, "i2s_gemm: q.len() != n*k");
    assert_eq!(out.len() % n, 0, "i2s_gemm: out.len() not a multiple of n");
    let m = shape::panel_rows(w, k, row0, out.len() / n);
    // SAFETY: shapes checked above; VNNI/VL/AVX2 present because only `vnni::plug` installs
    // this fn.
    unsafe { gemm_impl(w, m, k, row0, q, n, out) }
}

/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`, `n > 0`, `q.len() == n * k`, `out.len() % n == 0`,
///   `w.len() == m * k / 4`, `row0 + out.len() / n <= m`.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
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
    let mut t0 = 0;
    while t0 < n {
        let cn = core::cmp::min(TOKEN_CHUNK, n - t0);
        let sq = shape::token_sums(q, k, t0, cn);
        let mut r = 0;
        while r < rows {
            // A GEMM tile's rows must lie in one row tile of the layout (consecutive there).
            let (first, h) = panel_tile(m, row0 + r);
            let rn = core::cmp::min(GEMM_ROWS, core::cmp::min(rows - r, first + h - (row0 + r)));
            let mut t = 0;
            while t < cn {
                let tn = core::cmp::min(GEMM_TOKENS, cn - t);
                let qp = q[(t0 + t) * k..].as_ptr();
                let tile = Tile { w: w.as_ptr(), m, k, row: row0 + r };
                let acc = match (rn, tn) {
                    // SAFETY: rows row0+r .. +rn lie inside the tensor, tokens t0+t .. +tn
                    // inside `q`.
                    (GEMM_ROWS, GEMM_TOKENS) => unsafe {
                        gemm_tile::<GEMM_ROWS, GEMM_TOKENS>(tile, qp)
                    },
                    // SAFETY: as above.
                    _ => unsafe { gemm_tile_edge(tile, qp, rn, tn) },
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

/// Where a GEMM tile's rows are: the whole `m × k` panel-layout tensor at `w`, first row `row`.
#[derive(Clone, Copy)]
struct Tile {
    w: *const u8,
    m: usize,
    k: usize,
    row: usize,
}

/// A partial tile (fewer rows or tokens), one (row, token) at a time.
///
/// # Safety
/// As [`gemm_tile`] with `R = rn ≤ GEMM_ROWS`, `T = tn ≤ GEMM_TOKENS`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn gemm_tile_edge(
    tile: Tile,
    q: *const i8,
    rn: usize,
    tn: usize,
) -> [[i32; GEMM_TOKENS]; GEMM_ROWS] {
    let mut out = [[0i32; GEMM_TOKENS]; GEMM_ROWS];
    for (i, row) in out.iter_mut().enumerate().take(rn) {
        for (j, o) in row.iter_mut().enumerate().take(tn) {
            let one = Tile { row: tile.row + i, ..tile };
            // SAFETY: row i < rn and token j < tn are inside the caller's ranges.
            *o = unsafe { gemm_tile::<1, 1>(one, q.wrapping_add(j * tile.k)) }[0][0];
        }
    }
    out
}

/// `Σ c·q` for `R` rows from `tile.row` against `T` tokens (stride `k`).
///
/// # Safety
/// - `k % 128 == 0`, `k <= MAX_K`; `tile.w` holds the whole `m × k` tensor in
///   [`Layout::Panels`] and `tile.row + R <= m`, the `R` rows inside one row tile of
///   [`crate::formats::i2s::PANEL_ROWS`] rows; `q` valid for `T * k` bytes.
/// - The CPU implements AVX2, AVX-512 VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
#[inline]
unsafe fn gemm_tile<const R: usize, const T: usize>(
    tile: Tile,
    q: *const i8,
) -> [[i32; GEMM_TOKENS]; GEMM_ROWS] {
    let Tile { w, m, k, row } = tile;
    let nb = k / BLOCK;
    let m3 = _mm256_set1_epi8(3);
    let mut acc = [[_mm256_setzero_si256(); T]; R];
    let mut b = 0;
    while b < nb {
        let width = core::cmp::min(PANEL_BLOCKS, nb - b);
        let first = Layout::Panels.block_offset(m, k, row, b);
        for bb in 0..width {
            let raw: [__m256i; R] = core::array::from_fn(|i| {
                // SAFETY: row + i < m and block b + bb < nb: 32 bytes inside the tensor.
                unsafe { load32(w.wrapping_add(first + (i * width + bb) * BLOCK_BYTES)) }
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
                    _mm256_and_si256(shifted, m3)
                });
                for j in 0..T {
                    // SAFETY: j < T and b + bb < nb, so j*k + 128(b+bb) + 32g + 32 <= T*k.
                    let qv = unsafe { load32(q.wrapping_add(j * k + (b + bb) * BLOCK + 32 * g)) };
                    for (ai, ci) in acc.iter_mut().zip(&codes) {
                        ai[j] = _mm256_dpbusd_epi32(ai[j], *ci, qv);
                    }
                }
            }
        }
        b += width;
    }
    let mut out = [[0i32; GEMM_TOKENS]; GEMM_ROWS];
    for (oi, ai) in out.iter_mut().zip(&acc) {
        for (o, a) in oi.iter_mut().zip(ai) {
            *o = hsum(*a);
        }
    }
    out
}
