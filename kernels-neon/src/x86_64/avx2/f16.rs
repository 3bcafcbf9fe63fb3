//! AVX2/F16C f16 GEMV (the tied LM head), bit-identical with [`crate::reference::f16_gemv`].
//!
//! Orientation: AVX2 twin of `reference::f16_gemv`.
//!
//! Four `__m256` hold the reference's 32 lanes (lane `j` sums `k ≡ j mod 32` in increasing `k`):
//! four independent add chains, so the loop is not bound by the add latency (with 16 lanes, two
//! chains, a Zen 4 core ran 37 GB/s from cache; with 32, see `examples/bw.rs`). Each product is
//! rounded (`vmulps`) before the add (`vaddps`), never fused. `vcvtph2ps` is an exact f16 → f32
//! conversion. Without a `K % 32` tail the lane tree runs in registers
//! ([`crate::x86_64::reduce8`]); with one, the tail and the tree run the reference's own scalar
//! code on the spilled lanes.

use core::arch::x86_64::*;

use crate::reference::{F16_GEMV_LANES, f16_dot_finish};

/// Rows per tile. One: a single sequential stream per thread is what the hardware prefetcher
/// follows best. Measured from DRAM on a Zen 4 core (2560-wide, 512 MiB of rows): 1 row 22.4 GB/s
/// (= the streaming-read ceiling), 2 rows 10.5, 4 rows 13.2 (14.7 with software prefetch); the
/// `x` loads the rows of a taller tile would share all hit L1 anyway.
const ROWS: usize = 1;

/// AVX2 [`crate::dispatch::F16GemvFn`].
///
/// # Panics
/// If `x.len() != k` or `w` is too short for the rows `row0 .. row0 + out.len()`.
pub(crate) fn f16_gemv(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    gemv::<false>(w, k, row0, x, out);
}

/// AVX2 [`crate::dispatch::KernelSet::f16_gemv_hx`]: `x` holds f16 values, so every product is
/// exact in f32 and `vfmadd` rounds exactly where `vmulps` + `vaddps` do.
///
/// # Panics
/// As [`f16_gemv`].
pub(crate) fn f16_gemv_hx(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    gemv::<true>(w, k, row0, x, out);
}

/// Both entry points; `FUSED` selects `vfmadd` (only exact for an `x` of f16 values).
fn gemv<const FUSED: bool>(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    let w = crate::shape::f16_rows(w, k, row0, x.len(), out.len());
    // SAFETY: `w.len() == out.len() * k`, `x.len() == k` (checked above); AVX2/F16C present
    // because only `avx2::plug` installs this fn.
    unsafe { f16_gemv_impl::<FUSED>(w, k, x, out) }
}

/// # Safety
/// - `x.len() == k` and `w.len() >= out.len() * k`.
/// - The CPU implements AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_gemv_impl<const FUSED: bool>(w: &[u16], k: usize, x: &[f32], out: &mut [f32]) {
    debug_assert!(x.len() == k && w.len() >= out.len() * k);
    let mut tiles = out.chunks_exact_mut(ROWS);
    let mut r = 0;
    for o in &mut tiles {
        // SAFETY: rows r..r+4 lie inside `w`.
        o.copy_from_slice(&unsafe { tile::<ROWS, FUSED>(&w[r * k..], k, x) });
        r += ROWS;
    }
    for o in tiles.into_remainder() {
        // SAFETY: row r lies inside `w`.
        *o = unsafe { tile::<1, FUSED>(&w[r * k..], k, x) }[0];
        r += 1;
    }
}

/// Dot products of `R` consecutive rows (stride `k`) with `x`.
///
/// # Safety
/// - `x.len() == k` and `w.len() >= R * k`.
/// - The CPU implements AVX2 and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn tile<const R: usize, const FUSED: bool>(w: &[u16], k: usize, x: &[f32]) -> [f32; R] {
    debug_assert!(x.len() == k && w.len() >= R * k);
    let k32 = k - k % F16_GEMV_LANES;
    let mut acc = [[_mm256_setzero_ps(); 4]; R];
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut c = 0;
    while c < k32 {
        // SAFETY: c + 32 <= k32 <= x.len().
        let xv = [0usize, 8, 16, 24].map(|o| unsafe { _mm256_loadu_ps(xp.wrapping_add(c + o)) });
        for (r, ar) in acc.iter_mut().enumerate() {
            for h in 0..4 {
                // SAFETY: r*k + c + 8h + 8 <= R*k <= w.len(); 16 bytes read.
                let hv = unsafe { _mm_loadu_si128(wp.wrapping_add(r * k + c + 8 * h).cast()) };
                let f = _mm256_cvtph_ps(hv);
                ar[h] = if FUSED {
                    _mm256_fmadd_ps(f, xv[h], ar[h])
                } else {
                    _mm256_add_ps(ar[h], _mm256_mul_ps(f, xv[h]))
                };
            }
        }
        c += F16_GEMV_LANES;
    }
    let mut res = [0.0f32; R];
    for (r, ar) in acc.iter().enumerate() {
        if k32 == k {
            // No tail: the tree in registers. Lanes 8h..8h+8 are `ar[h]`: 32 → 16 lanes is
            // `ar[0] + ar[2]`, `ar[1] + ar[3]`; 16 → 8 adds those two; then the reference's rest.
            let l8 = _mm256_add_ps(_mm256_add_ps(ar[0], ar[2]), _mm256_add_ps(ar[1], ar[3]));
            // SAFETY: AVX is implied by AVX2, which the caller guarantees.
            res[r] = unsafe { crate::x86_64::reduce8(l8) };
            continue;
        }
        let mut lanes = [0.0f32; F16_GEMV_LANES];
        for (h, a) in ar.iter().enumerate() {
            // SAFETY: `lanes[8h..8h + 8]` is 8 writable f32 (h < 4).
            unsafe { _mm256_storeu_ps(lanes[8 * h..].as_mut_ptr(), *a) };
        }
        res[r] = f16_dot_finish(lanes, &w[r * k..(r + 1) * k], x, k32);
    }
    res
}

/// AVX2/F16C [`crate::dispatch::F16WsumFn`], bit-identical with [`crate::reference::f16_wsum`]:
/// each output element keeps its own sum in increasing row order (`vmulps` then `vaddps`, never
/// fused); only the columns are computed side by side, 64 at a time in eight `__m256`
/// accumulators (with the broadcast weight and a conversion temporary, the 16 ymm registers).
///
/// # Panics
/// If `v.len() < p.len() * out.len()`.
pub(crate) fn f16_wsum(p: &[f32], v: &[u16], out: &mut [f32]) {
    let k = out.len();
    crate::shape::wsum_by_columns(p, v, out, |d, cols, o| match cols {
        // SAFETY: `wsum_by_columns` checked that `v` holds p.len() rows of k and gives
        // columns d..d+cols of every row (d + cols <= k); AVX2/F16C present because only
        // `avx2::plug` (and `vnni::plug` on top of it) installs this fn.
        crate::shape::WSUM_COLS => unsafe { wsum_block::<8>(p, v, k, d, o) },
        // SAFETY: as above, 8 columns.
        _ => unsafe { wsum_block::<1>(p, v, k, d, o) },
    });
}

/// Columns `d .. d + 8·N` of the weighted sum into `out` (`8·N` elements).
///
/// # Safety
/// - `v.len() >= p.len() * k`, `d + 8·N <= k` and `out.len() == 8·N`.
/// - The CPU implements AVX2 and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn wsum_block<const N: usize>(p: &[f32], v: &[u16], k: usize, d: usize, out: &mut [f32]) {
    debug_assert!(d + 8 * N <= k && v.len() >= p.len() * k && out.len() == 8 * N);
    let mut acc = [_mm256_setzero_ps(); N];
    let vp = v.as_ptr();
    for (i, &w) in p.iter().enumerate() {
        let wv = _mm256_set1_ps(w);
        let row = vp.wrapping_add(i * k + d);
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: i*k + d + 8j + 8 <= p.len()*k <= v.len(); 16 bytes read.
            let h = unsafe { _mm_loadu_si128(row.wrapping_add(8 * j).cast()) };
            *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, _mm256_cvtph_ps(h)));
        }
    }
    for (j, a) in acc.iter().enumerate() {
        // SAFETY: out[8j..8j + 8] is inside `out` (j < N, out.len() == 8N).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().wrapping_add(8 * j), *a) };
    }
}
