//! NEON TL1 lookup-table kernel over TL1-packed weights ([`crate::formats::tl1`]), bit-exact with
//! [`crate::reference::tl1_gemv`].
//!
//! Orientation: NEON twin of `reference::tl1_gemv`.
//!
//! - **Tables** ([`build_tables`]): for every activation pair `(b0, b1) = (q[2p], q[2p+1])` the 9
//!   sums `v(idx) = (idx/3 − 1)·b0 + (idx%3 − 1)·b1` (entries 9..16 are 0), as i16 split into a
//!   16-byte low-byte table and a 16-byte high-byte table: `v = 256·hi + lo`, `lo ∈ 0..=255`,
//!   `hi ∈ {−1, 0, 1}` because `|v| ≤ 256`.
//! - **Lookup** ([`lookup_pairs`]): 16 packed bytes hold pairs `p` (high nibble) and `p + 1` (low
//!   nibble) of 16 consecutive rows. Four `vqtbl1q_u8` fetch their low and high bytes; low bytes
//!   are summed in u16 lanes (`uaddl`), high bytes in i8 lanes, and both are widened to i32 once
//!   per `BK` tile (`256·hi + lo`). Bounds are proved below, so the narrow accumulators never wrap.
//! - Rows are processed 32 at a time (two 16-row groups of one `bm` sub-tile) so each table load
//!   serves 32 rows.

use core::arch::aarch64::*;

use crate::aarch64::load;
pub use crate::formats::tl1::PairTable;
use crate::formats::tl1::{Tiling, TilingError};
use crate::reference;

/// Rows per kernel pass: two 16-row groups sharing the table loads.
const PASS_ROWS: usize = 32;
/// Largest `BK` for which a whole tile accumulates in the narrow lanes.
pub(crate) const MAX_BK: usize = 252;
/// Low bytes: per 16-byte step a u16 lane gains 2 bytes ≤ 255; `MAX_BK / 4` steps per tile.
const _: () = assert!((MAX_BK / 4) * 2 * 255 <= u16::MAX as usize);
/// High bytes: per step an i8 lane gains 2 values of magnitude ≤ 1; `MAX_BK / 4` steps per tile.
const _: () = assert!((MAX_BK / 4) * 2 <= i8::MAX as usize);
/// Widening: `256 · hi` with `|hi| ≤ 127` fits the i32 shift-left-long from i16.
const _: () = assert!(256 * (i8::MAX as usize) <= i16::MAX as usize);

/// Weight of the first element of each table entry (`idx / 3 − 1`; 0 past entry 8).
const W0: [i16; 16] = [-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
/// Weight of the second element (`idx % 3 − 1`; 0 past entry 8).
const W1: [i16; 16] = [-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0];

/// The table of one pair, scalar (the specification of [`build_tables`]).
pub fn pair_table_scalar(b0: i8, b1: i8) -> PairTable {
    reference::tl1_pair_table(b0, b1)
}

/// Builds the tables of every pair of `q` into `lut[..q.len() / 2]`.
///
/// # Panics
/// If `q.len()` is odd or `lut.len() < q.len() / 2`.
pub fn build_tables(q: &[i8], lut: &mut [PairTable]) {
    assert!(q.len().is_multiple_of(2) && lut.len() >= q.len() / 2, "build_tables: shapes");
    // SAFETY: NEON is baseline for this module (cfg); shapes asserted above.
    unsafe { build_tables_impl(q, lut) }
}

/// # Safety
/// - `q.len()` even and `lut.len() >= q.len() / 2`.
#[target_feature(enable = "neon")]
unsafe fn build_tables_impl(q: &[i8], lut: &mut [PairTable]) {
    let halves = |w: &[i16; 16]| {
        [0usize, 8].map(|o| {
            // SAFETY: reads w[o..o + 8] of a 16-element array (o <= 8), 2-aligned.
            let v = unsafe { load::u16x8(w.as_ptr().wrapping_add(o).cast()) };
            vreinterpretq_s16_u16(v)
        })
    };
    let (w0, w1) = (halves(&W0), halves(&W1));
    for (t, pair) in lut.iter_mut().zip(q.chunks_exact(2)) {
        let (b0, b1) = (pair[0] as i16, pair[1] as i16);
        let v0 = vreinterpretq_u8_s16(vmlaq_n_s16(vmulq_n_s16(w0[0], b0), w1[0], b1));
        let v1 = vreinterpretq_u8_s16(vmlaq_n_s16(vmulq_n_s16(w0[1], b0), w1[1], b1));
        let lo = vreinterpretq_s8_u8(vuzp1q_u8(v0, v1));
        let hi = vreinterpretq_s8_u8(vuzp2q_u8(v0, v1));
        // SAFETY: `t` is 32 writable bytes; the two stores cover 0..16 and 16..32.
        unsafe { load::store_s8x16(t.as_mut_ptr().cast(), lo) };
        // SAFETY: as above.
        unsafe { load::store_s8x16(t.as_mut_ptr().wrapping_add(16).cast(), hi) };
    }
}

/// Narrow accumulators of one 16-row group for one tile.
#[derive(Clone, Copy)]
pub(crate) struct Acc16 {
    /// Low-byte sums of rows 0..8 and 8..16 (u16).
    pub(crate) lo: [uint16x8_t; 2],
    /// High-byte sums of rows 0..16 (i8).
    pub(crate) hi: int8x16_t,
}

/// Accumulates the two pairs held by 16 packed `bytes` (pair `p` in the high nibbles with tables
/// `te`, pair `p + 1` in the low nibbles with tables `to`; each `[low bytes, high bytes]`).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn lookup_pairs(
    acc: &mut Acc16,
    bytes: uint8x16_t,
    te: [uint8x16_t; 2],
    to: [uint8x16_t; 2],
) {
    let ih = vshrq_n_u8(bytes, 4);
    let il = vandq_u8(bytes, vdupq_n_u8(15));
    let le = vqtbl1q_u8(te[0], ih);
    let lo = vqtbl1q_u8(to[0], il);
    let he = vreinterpretq_s8_u8(vqtbl1q_u8(te[1], ih));
    let ho = vreinterpretq_s8_u8(vqtbl1q_u8(to[1], il));
    acc.lo[0] = vaddq_u16(acc.lo[0], vaddl_u8(vget_low_u8(le), vget_low_u8(lo)));
    acc.lo[1] = vaddq_u16(acc.lo[1], vaddl_high_u8(le, lo));
    acc.hi = vaddq_s8(acc.hi, vaddq_s8(he, ho));
}

/// `acc32[0..4] += 256·hi + lo` for the 16 rows of `a`.
#[target_feature(enable = "neon")]
#[inline]
fn widen(acc32: &mut [int32x4_t], a: &Acc16) {
    let h = [vmovl_s8(vget_low_s8(a.hi)), vmovl_high_s8(a.hi)];
    for j in 0..2 {
        // lo (≤ 65535) is zero-extended from u16, never read as i16.
        let lo32 = [
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(a.lo[j]))),
            vreinterpretq_s32_u32(vmovl_high_u16(a.lo[j])),
        ];
        let hi32 = [vshll_n_s16(vget_low_s16(h[j]), 8), vshll_high_n_s16(h[j], 8)];
        acc32[2 * j] = vaddq_s32(acc32[2 * j], vaddq_s32(hi32[0], lo32[0]));
        acc32[2 * j + 1] = vaddq_s32(acc32[2 * j + 1], vaddq_s32(hi32[1], lo32[1]));
    }
}

/// NEON TL1 GEMV: `out[i] = Σ_k w[row0+i][k] · q[k]` (i32) for a TL1-packed `m × k` tensor,
/// using `lut` (at least `k/2` entries) as table scratch.
///
/// # Errors
/// If `tiling` does not fit `m × k`.
///
/// # Panics
/// If `q.len() != k`, `row0 + out.len() > m`, `w` is shorter than `m·k/4` or `lut` too short.
#[allow(clippy::too_many_arguments)]
pub fn tl1_gemv(
    w: &[u8],
    m: usize,
    k: usize,
    t: Tiling,
    row0: usize,
    q: &[i8],
    lut: &mut [PairTable],
    out: &mut [i32],
) -> Result<(), TilingError> {
    t.validate(m, k)?;
    assert_eq!(q.len(), k, "tl1_gemv: q.len() != k");
    build_tables(q, lut);
    tl1_gemv_tables(w, m, k, t, row0, q, lut, out)
}

/// NEON [`crate::dispatch::Tl1GemvFn`]: [`tl1_gemv`] with the tables of `q` already in `lut`
/// (built by [`build_tables`]; several threads share them). Tilings with `BK > MAX_BK` or
/// `bm < 32` go to the reference, which reads `q`.
///
/// # Errors
/// If `tiling` does not fit `m × k`.
///
/// # Panics
/// If `q.len() != k`, `row0 + out.len() > m`, `w` is shorter than `m·k/4` or `lut` shorter than
/// `k/2`.
#[allow(clippy::too_many_arguments)]
pub fn tl1_gemv_tables(
    w: &[u8],
    m: usize,
    k: usize,
    t: Tiling,
    row0: usize,
    q: &[i8],
    lut: &[PairTable],
    out: &mut [i32],
) -> Result<(), TilingError> {
    t.validate(m, k)?;
    assert_eq!(q.len(), k, "tl1_gemv: q.len() != k");
    assert!(row0 + out.len() <= m, "tl1_gemv: rows out of range");
    assert!(w.len() >= m * k / 4, "tl1_gemv: weights too short");
    if t.big_k > MAX_BK || t.bm < PASS_ROWS {
        return reference::tl1_gemv(w, m, k, t, row0, q, out);
    }
    assert!(lut.len() >= k / 2, "tl1_gemv: lut shorter than k/2");
    let lut = &lut[..k / 2];
    let end = row0 + out.len();
    let mut base = row0 - row0 % PASS_ROWS;
    while base < end {
        // SAFETY: tiling validated (so every offset below is inside the m·k/4 bytes of `w`),
        // BK <= MAX_BK and bm >= 32 checked above, base is a multiple of 32 below m
        // (m is a multiple of bm, itself a multiple of 32 here); NEON is baseline.
        let rows = unsafe { pass(w, k, t, base, lut) };
        let lo = if base < row0 { row0 } else { base };
        let hi = if base + PASS_ROWS > end { end } else { base + PASS_ROWS };
        out[lo - row0..hi - row0].copy_from_slice(&rows[lo - base..hi - base]);
        base += PASS_ROWS;
    }
    Ok(())
}

/// The 32 dot products of rows `base .. base + 32`.
///
/// # Safety
/// - `t` is valid for `m × k` with `w.len() >= m·k/4`, `t.big_k <= MAX_BK`, `t.bm % 32 == 0`,
///   `base % 32 == 0`, `base + 32 <= m`, `lut.len() == k / 2`.
#[target_feature(enable = "neon")]
unsafe fn pass(w: &[u8], k: usize, t: Tiling, base: usize, lut: &[PairTable]) -> [i32; PASS_ROWS] {
    let (big_m, big_k, bm) = (t.big_m, t.big_k, t.bm);
    let by = 256 / bm;
    let (mb, mi) = (base / big_m, base % big_m);
    let (mbb, m16) = (mi / bm, (mi % bm) / 16);
    let tile_bytes = big_m * big_k / 4;
    let group_stride = (by / 4) * 16;
    let row_base = mb * (k / big_k) * tile_bytes + mbb * (big_k / by) * 64 + m16 * group_stride;
    let wp = w.as_ptr();
    debug_assert_eq!(lut.len(), k / 2);
    let lut_p: *const u8 = lut.as_ptr().cast();
    let zero = vdupq_n_s32(0);
    let mut acc32 = [zero; 8];
    for kb in 0..k / big_k {
        let mut acc = [Acc16 { lo: [vdupq_n_u16(0); 2], hi: vdupq_n_s8(0) }; 2];
        for kbb in 0..big_k / by {
            for kp4 in 0..by / 4 {
                let p = kb * big_k / 2 + kbb * by / 2 + 2 * kp4;
                // p + 1 < k/2 = lut.len() by the loop bounds (kb < K/BK, kbb < BK/by,
                // kp4 < by/4), so both tables are in `lut`; raw pointers skip the bounds checks.
                let te = lut_p.wrapping_add(32 * p);
                let to = lut_p.wrapping_add(32 * (p + 1));
                // SAFETY: `te` points at the 32 bytes of table p (see above): bytes 0..16.
                let te_lo = unsafe { load::u8x16(te) };
                // SAFETY: bytes 16..32 of table p.
                let te_hi = unsafe { load::u8x16(te.wrapping_add(16)) };
                // SAFETY: bytes 0..16 of table p + 1.
                let to_lo = unsafe { load::u8x16(to) };
                // SAFETY: bytes 16..32 of table p + 1.
                let to_hi = unsafe { load::u8x16(to.wrapping_add(16)) };
                let (tes, tos) = ([te_lo, te_hi], [to_lo, to_hi]);
                let off = row_base + kb * tile_bytes + kbb * 64 + kp4 * 16;
                for (g, a) in acc.iter_mut().enumerate() {
                    // SAFETY: by the layout (formats::tl1), rows base+16g..+16 at pairs p, p+1
                    // are the 16 bytes at `off + g·group_stride`, inside m·k/4.
                    let bytes = unsafe { load::u8x16(wp.wrapping_add(off + g * group_stride)) };
                    lookup_pairs(a, bytes, tes, tos);
                }
            }
        }
        widen(&mut acc32[0..4], &acc[0]);
        widen(&mut acc32[4..8], &acc[1]);
    }
    let mut res = [0i32; PASS_ROWS];
    for (j, a) in acc32.iter().enumerate() {
        // SAFETY: `res[4j..4j+4]` is 4 writable, 4-aligned i32.
        unsafe { vst1q_s32(res.as_mut_ptr().wrapping_add(4 * j), *a) };
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tl1;
    use crate::testing::Rng;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn tables_match_scalar() {
        let mut r = Rng::new(3);
        let mut q: Vec<i8> = (0..64).map(|_| r.next_u64() as u8 as i8).collect();
        q.extend_from_slice(&[127, 127, -128, -128, 127, -128, -128, 127, 0, 0]);
        let mut lut = vec![[0u8; 32]; q.len() / 2];
        build_tables(&q, &mut lut);
        for (p, t) in lut.iter().enumerate() {
            assert_eq!(*t, pair_table_scalar(q[2 * p], q[2 * p + 1]), "pair {p}");
            for idx in 0..9u8 {
                let (w0, w1) = tl1::pair_values(idx);
                let v = t[idx as usize] as i16 | ((t[16 + idx as usize] as i8 as i16) << 8);
                assert_eq!(v, w0 as i16 * q[2 * p] as i16 + w1 as i16 * q[2 * p + 1] as i16);
            }
        }
    }

    /// Two [`lookup_pairs`] of the same bytes, widened to 16 i32.
    ///
    /// # Safety
    /// - The CPU implements NEON.
    #[target_feature(enable = "neon")]
    unsafe fn twice_widened(bytes: &[u8; 16], te: &PairTable, to: &PairTable) -> [i32; 16] {
        let ld = |p: &[u8]| {
            assert!(p.len() >= 16);
            // SAFETY: at least 16 readable bytes (asserted).
            unsafe { load::u8x16(p.as_ptr()) }
        };
        let (te, to) = ([ld(&te[..]), ld(&te[16..])], [ld(&to[..]), ld(&to[16..])]);
        let mut acc = Acc16 { lo: [vdupq_n_u16(0); 2], hi: vdupq_n_s8(0) };
        lookup_pairs(&mut acc, ld(bytes), te, to);
        lookup_pairs(&mut acc, ld(bytes), te, to);
        let mut a32 = [vdupq_n_s32(0); 4];
        widen(&mut a32, &acc);
        let mut got = [0i32; 16];
        for (j, a) in a32.iter().enumerate() {
            // SAFETY: got[4j..4j + 4] is 4 writable i32.
            unsafe { vst1q_s32(got.as_mut_ptr().wrapping_add(4 * j), *a) };
        }
        got
    }

    #[test]
    fn lookup_matches_scalar() {
        let mut r = Rng::new(9);
        let q: Vec<i8> = (0..4).map(|_| r.next_u64() as u8 as i8).chain([-128, -128]).collect();
        let tabs: Vec<PairTable> = q.chunks(2).map(|c| pair_table_scalar(c[0], c[1])).collect();
        for (e, o) in [(0usize, 1usize), (1, 2), (2, 2)] {
            let bytes: [u8; 16] =
                core::array::from_fn(|i| ((i % 9) as u8) << 4 | ((i * 5 + 2) % 9) as u8);
            // SAFETY: NEON is baseline on this build (module cfg).
            let got = unsafe { twice_widened(&bytes, &tabs[e], &tabs[o]) };
            let want: [i32; 16] = core::array::from_fn(|i| {
                let (a, b) = tl1::pair_values(bytes[i] >> 4);
                let (c, d) = tl1::pair_values(bytes[i] & 15);
                2 * (a as i32 * q[2 * e] as i32
                    + b as i32 * q[2 * e + 1] as i32
                    + c as i32 * q[2 * o] as i32
                    + d as i32 * q[2 * o + 1] as i32)
            });
            assert_eq!(got, want);
        }
    }
}
