//! AVX-512 f16 GEMV (the tied LM head), bit-identical with [`crate::reference::f16_gemv`].
//!
//! Orientation: 512-bit twin of `avx2::f16`. Two `__m512` hold the reference's 32 lanes (lane `j`
//! sums `k ≡ j mod 32` in increasing `k`); `vcvtph2ps zmm` converts 16 halves exactly. Each
//! product is rounded (`vmulps`) before the add (`vaddps`), never fused — also for an `x` of f16
//! values, where the product is exact and a fused add would round the same: the add chain is the
//! loop's critical path, and an add is shorter than a fused multiply-add.
//!
//! Against the AVX2 kernel (four `__m256` chains, `vmulps` + `vaddps`) this halves the
//! instructions per 64 bytes of weights. Measured with `examples/bw.rs` on a Zen 5 core, 2560-wide
//! rows: from cache 66–76 GB/s against 49–52; from DRAM both at the streaming read (91–102 %). The
//! headroom is what the 2-thread decode needs when the two threads' read bandwidth is high. The
//! lane tree runs in registers ([`crate::x86_64::reduce8`]); with a `K % 32` tail, the tail and the tree
//! run the reference's own scalar code on the spilled lanes.

use core::arch::x86_64::*;

use crate::reference::{F16_GEMV_LANES, f16_dot_finish};

/// Rows per tile. One: two rows per tile ran 70–87 GB/s from cache but 41–46 % of the streaming
/// read from DRAM (two streams 5 KiB apart per thread; the AVX2 kernel's note found the same on
/// Zen 4).
const ROWS: usize = 1;

/// AVX-512 [`crate::dispatch::F16GemvFn`] (also [`crate::dispatch::KernelSet::f16_gemv_hx`]).
///
/// # Panics
/// If `x.len() != k` or `w` is too short for the rows `row0 .. row0 + out.len()`.
pub(crate) fn f16_gemv(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    let w = crate::shape::f16_rows(w, k, row0, x.len(), out.len());
    // SAFETY: `w.len() == out.len() * k`, `x.len() == k` (checked above); AVX-512F/F16C present
    // because only `vnni::plug` installs this fn.
    unsafe { gemv_impl(w, k, x, out) }
}

/// # Safety
/// - `x.len() == k` and `w.len() >= out.len() * k`.
/// - The CPU implements AVX-512F and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn gemv_impl(w: &[u16], k: usize, x: &[f32], out: &mut [f32]) {
    debug_assert!(x.len() == k && w.len() >= out.len() * k);
    let mut tiles = out.chunks_exact_mut(ROWS);
    let mut r = 0;
    for o in &mut tiles {
        // SAFETY: rows r..r+ROWS lie inside `w`.
        o.copy_from_slice(&unsafe { tile::<ROWS>(&w[r * k..], k, x) });
        r += ROWS;
    }
    for o in tiles.into_remainder() {
        // SAFETY: row r lies inside `w`.
        *o = unsafe { tile::<1>(&w[r * k..], k, x) }[0];
        r += 1;
    }
}

/// Dot products of `R` consecutive rows (stride `k`) with `x`.
///
/// # Safety
/// - `x.len() == k` and `w.len() >= R * k`.
/// - The CPU implements AVX-512F and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
#[inline]
unsafe fn tile<const R: usize>(w: &[u16], k: usize, x: &[f32]) -> [f32; R] {
    debug_assert!(x.len() == k && w.len() >= R * k);
    let k32 = k - k % F16_GEMV_LANES;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut c = 0;
    while c < k32 {
        // SAFETY: c + 32 <= k32 <= x.len().
        let xv = [0usize, 16].map(|o| unsafe { _mm512_loadu_ps(xp.wrapping_add(c + o)) });
        for (r, ar) in acc.iter_mut().enumerate() {
            for h in 0..2 {
                // SAFETY: r*k + c + 16h + 16 <= R*k <= w.len(); 32 bytes read.
                let hv = unsafe { _mm256_loadu_si256(wp.wrapping_add(r * k + c + 16 * h).cast()) };
                ar[h] = _mm512_add_ps(ar[h], _mm512_mul_ps(_mm512_cvtph_ps(hv), xv[h]));
            }
        }
        c += F16_GEMV_LANES;
    }
    let mut res = [0.0f32; R];
    for (r, ar) in acc.iter().enumerate() {
        if k32 == k {
            // No tail: the tree in registers. 32 → 16 lanes (`l[j] + l[j + 16]`), 16 → 8
            // (`l[j] + l[j + 8]`), then the rest of the reference's tree.
            let l16 = _mm512_add_ps(ar[0], ar[1]);
            let lo = _mm512_castps512_ps256(l16);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(l16)));
            let l8 = _mm256_add_ps(lo, hi);
            // SAFETY: AVX is implied by AVX-512F, which the caller guarantees.
            res[r] = unsafe { crate::x86_64::reduce8(l8) };
            continue;
        }
        let mut lanes = [0.0f32; F16_GEMV_LANES];
        for (h, a) in ar.iter().enumerate() {
            // SAFETY: `lanes[16h..16h + 16]` is 16 writable f32 (h < 2).
            unsafe { _mm512_storeu_ps(lanes[16 * h..].as_mut_ptr(), *a) };
        }
        res[r] = f16_dot_finish(lanes, &w[r * k..(r + 1) * k], x, k32);
    }
    res
}
