//! Scalar TL1 reference: activation quantisation without epsilon or clamp, and the GEMV over
//! TL1-packed weights ([`crate::formats::tl1`]).
//!
//! Results equal the I2_S path whenever the activations agree: `tl1_act_quant` and
//! [`super::act_quant_i8`] give the same `q` and scale for any `x` with `max|x| ≥ 1e-5`
//! (`127/max` rounded once from f64 equals the correctly rounded f32 division, and
//! `|x·s| ≤ 127` so the I2_S clamp never acts), and the integer dot products are identical
//! for the same ternary weights.

use super::nearest_int;
use crate::formats::tl1::{PairTable, Tiling, TilingError, pair_values};

/// TL1 activation quantisation (FORMATS §2.3): `lut_scale = 127 / max|x|` in f32 (no epsilon),
/// `q = round_half_even(x · lut_scale)` (no clamp; `|q| ≤ 127` by construction, and a NaN
/// product, e.g. `0 · inf` for an all-zero `x`, gives 0). Returns `lut_scale`.
///
/// # Panics
/// If `q.len() != x.len()`.
pub fn tl1_act_quant(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(x.len(), q.len(), "tl1_act_quant: x and q lengths differ");
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > max {
            max = v.abs();
        }
    }
    let s = 127.0f32 / max;
    for (qk, &xk) in q.iter_mut().zip(x) {
        let v = xk * s;
        // |v| <= 127·(1 + 2^-23) for finite x: the conversion never saturates.
        *qk = if v.is_nan() { 0 } else { nearest_int(v) } as i8;
    }
    s
}

/// TL1 GEMV: `out[i] = Σ_k w[row0+i][k] · q[k]` (i32) for a TL1-packed `m × k` tensor.
///
/// # Errors
/// If `tiling` does not fit `m × k`.
///
/// # Panics
/// If `q.len() != k`, `row0 + out.len() > m` or `w` is shorter than `m·k/4`.
pub fn tl1_gemv(
    w: &[u8],
    m: usize,
    k: usize,
    tiling: Tiling,
    row0: usize,
    q: &[i8],
    out: &mut [i32],
) -> Result<(), TilingError> {
    tiling.validate(m, k)?;
    assert_eq!(q.len(), k, "tl1_gemv: q.len() != k");
    assert!(row0 + out.len() <= m, "tl1_gemv: rows out of range");
    for (i, o) in out.iter_mut().enumerate() {
        let row = row0 + i;
        let mut acc = 0i32;
        for p in 0..k / 2 {
            let (byte, shift) = tiling.locate(k, row, p);
            let (w0, w1) = pair_values((w[byte] >> shift) & 15);
            acc += w0 as i32 * q[2 * p] as i32 + w1 as i32 * q[2 * p + 1] as i32;
        }
        *o = acc;
    }
    Ok(())
}

/// The lookup table of one activation pair ([`PairTable`]), scalar: the specification of every
/// tier's [`crate::dispatch::Tl1TablesFn`].
pub fn tl1_pair_table(q0: i8, q1: i8) -> PairTable {
    let mut t = [0u8; 32];
    for idx in 0..9u8 {
        let (w0, w1) = pair_values(idx);
        let v = w0 as i16 * q0 as i16 + w1 as i16 * q1 as i16;
        t[idx as usize] = v as u8;
        t[16 + idx as usize] = (v >> 8) as u8;
    }
    t
}

/// [`crate::dispatch::Tl1TablesFn`]: the tables of every pair of `q` into `lut[..q.len() / 2]`.
///
/// # Panics
/// If `q.len()` is odd or `lut.len() < q.len() / 2`.
pub fn tl1_tables(q: &[i8], lut: &mut [PairTable]) {
    assert!(q.len().is_multiple_of(2) && lut.len() >= q.len() / 2, "tl1_tables: shapes");
    for (t, pair) in lut.iter_mut().zip(q.chunks_exact(2)) {
        *t = tl1_pair_table(pair[0], pair[1]);
    }
}

/// [`crate::dispatch::Tl1GemvFn`] of the reference tier: [`tl1_gemv`] (multiplies `q` directly;
/// the tables are not read).
///
/// # Errors
/// If `tiling` does not fit `m × k`.
///
/// # Panics
/// As [`tl1_gemv`].
#[allow(clippy::too_many_arguments)]
pub fn tl1_gemv_tables(
    w: &[u8],
    m: usize,
    k: usize,
    tiling: Tiling,
    row0: usize,
    q: &[i8],
    _lut: &[PairTable],
    out: &mut [i32],
) -> Result<(), TilingError> {
    tl1_gemv(w, m, k, tiling, row0, q, out)
}
