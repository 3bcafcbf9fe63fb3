//! TL1: bitnet.cpp's ARM lookup-table format (GGUF type 38), FORMATS §1.3.
//!
//! - **Bits per weight:** 2 (a 4-bit index per pair of weights), plus one f32 scale per tensor.
//! - **Pairs:** consecutive weights along K, `(w0, w1) = (w[2p], w[2p+1])`, become
//!   `idx = 3·w0 + w1 + 4 ∈ 0..=8` (`w0 = idx / 3 − 1`, `w1 = idx % 3 − 1`).
//! - **Tiling** (per shape, from bitnet.cpp's `kernel_config.ini`; a [`Tiling`] value here, never a
//!   compiled-in table): `BM` rows × `BK` (= `BY`) columns per tile, `bm` rows per sub-tile,
//!   `by = 256 / bm` columns per sub-step. The `(M, K/2)` index array is reordered by the
//!   converter's transposes (FORMATS §1.3 steps 1–7); the resulting byte order, outermost first, is
//!
//!   ```text
//!   [M/BM] [K/BY] [BM/bm] [BY/by] [bm/16] [by/4] [16 rows]
//!   byte = idx(row, pair p) << 4 | idx(row, pair p + 1)
//!   row  = mb·BM + mbb·bm + m16·16 + i          (i < 16)
//!   p    = kb·BY/2 + kbb·by/2 + 2·kp4            (the even pair of the byte)
//!   ```
//!
//!   so every 16 consecutive bytes hold two pairs of 16 consecutive rows: exactly what one
//!   `vqtbl1q` lookup per pair consumes.
//! - **Size:** `M·K/4` bytes; the f32 scale (`max|W|` of the ternarised weights) sits in the
//!   32-byte slot right after them (byte `M·K/4`; the converter's GGUF writer hides a
//!   `<name>_scale` tensor there), so `ggml_nbytes = M·K/4 + 32`.
//! - **Activations** (FORMATS §2.3): `q = round_half_even(x · 127/max|x|)` with no epsilon and no
//!   clamp ([`crate::reference::tl1_act_quant`]); `out = Σ w·q / lut_scale · w_scale`.
//! - **Origin:** `preprocess_weights_tl1` in bitnet.cpp's `utils/convert-hf-to-gguf-bitnet.py`
//!   (read from the description in FORMATS.md; no code copied).
//! - **2B4T note:** bitnet.cpp's tables do not contain the 2B4T shapes (2560/6912/640), so no TL1
//!   file of that model exists; TL1 is legacy. Known tilings (BM, BK, bm): b1.58-large
//!   (256,128,32) / (128,64,64) / (256,128,32); 3B (160,64,32) / (320,128,64) / (320,64,32).

/// Bytes after the packed indices: the f32 scale plus 28 padding bytes.
pub const TAIL_BYTES: usize = 32;

/// One activation pair's lookup table (the LUT kernels' scratch): bytes 0..16 hold the low
/// bytes, 16..32 the high bytes of the 16 i16 entries `v(idx) = (idx/3 − 1)·q0 + (idx%3 − 1)·q1`
/// (entries 9..16 are 0). Built by [`crate::dispatch::Tl1TablesFn`].
pub type PairTable = [u8; 32];

/// The 4-bit index of a weight pair: `3·w0 + w1 + 4`.
#[inline(always)]
pub const fn pair_index(w0: i8, w1: i8) -> u8 {
    (3 * w0.signum() + w1.signum() + 4) as u8
}

/// The weights `(w0, w1)` of an index (0..=8); indices 9..=15 (never written) decode as `(0, 0)`.
#[inline(always)]
pub const fn pair_values(idx: u8) -> (i8, i8) {
    if idx > 8 {
        return (0, 0);
    }
    ((idx / 3) as i8 - 1, (idx % 3) as i8 - 1)
}

/// Per-shape tiling parameters (bitnet.cpp's `BM`, `BK`, `bm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Rows per tile (`BM`).
    pub big_m: usize,
    /// Columns per tile (`BK` = `BY`).
    pub big_k: usize,
    /// Rows per sub-tile (`bm`, 32 or 64 in every published config).
    pub bm: usize,
}

/// Why a tiling does not fit a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TilingError {
    /// A divisibility constraint fails: `(what, value, divisor)`.
    NotDivisible {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: usize,
        /// What it must be a multiple of.
        divisor: usize,
    },
}

impl core::fmt::Display for TilingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TilingError::NotDivisible { what, value, divisor } => {
                write!(f, "TL1 tiling: {what} = {value} is not a multiple of {divisor}")
            }
        }
    }
}

impl core::error::Error for TilingError {}

impl Tiling {
    /// `by = 256 / bm`: columns per sub-step.
    pub const fn by(&self) -> usize {
        256 / self.bm
    }

    /// Checks every divisibility the layout needs for an `m × k` tensor.
    ///
    /// # Errors
    /// [`TilingError::NotDivisible`] naming the first failing constraint.
    pub fn validate(&self, m: usize, k: usize) -> Result<(), TilingError> {
        let nd = |what, value: usize, divisor: usize| {
            if divisor == 0 || !value.is_multiple_of(divisor) {
                Err(TilingError::NotDivisible { what, value, divisor })
            } else {
                Ok(())
            }
        };
        nd("bm", self.bm, 16)?;
        nd("256", 256, self.bm)?;
        nd("by", self.by(), 4)?;
        nd("BM", self.big_m, self.bm)?;
        nd("BK", self.big_k, self.by())?;
        nd("M", m, self.big_m)?;
        nd("K", k, self.big_k)
    }

    /// Byte index and nibble shift (4 = high, 0 = low) of pair `p` (weights `2p`, `2p+1`) of
    /// `row` in an `m × k` tensor. The tiling must be valid for the shape.
    #[inline]
    pub const fn locate(&self, k: usize, row: usize, p: usize) -> (usize, u32) {
        let (big_m, big_k, bm) = (self.big_m, self.big_k, self.bm);
        let by = 256 / bm;
        let (mb, mi) = (row / big_m, row % big_m);
        let (mbb, mj) = (mi / bm, mi % bm);
        let (m16, i16) = (mj / 16, mj % 16);
        let (kb, pi) = (p / (big_k / 2), p % (big_k / 2));
        let (kbb, pj) = (pi / (by / 2), pi % (by / 2));
        let (kp4, two) = (pj / 2, pj % 2);
        // Element index in the (…, 16, 2) array, then the byte (two elements per byte).
        let tiles_k = k / big_k;
        let mut e = mb;
        e = e * tiles_k + kb;
        e = e * (big_m / bm) + mbb;
        e = e * (big_k / by) + kbb;
        e = e * (bm / 16) + m16;
        e = e * (by / 4) + kp4;
        e = e * 16 + i16;
        (e, if two == 0 { 4 } else { 0 })
    }
}

/// Packed byte count (without the tail) of an `m × k` tensor.
pub const fn packed_bytes(m: usize, k: usize) -> usize {
    m * k / 4
}

/// Packs ternary weights `w` (row-major `m × k`, values −1/0/+1) into `out` (`m·k/4` bytes).
///
/// # Errors
/// If the tiling does not fit the shape.
///
/// # Panics
/// If `w.len() != m*k` or `out.len() != m*k/4`.
pub fn pack(w: &[i8], m: usize, k: usize, t: Tiling, out: &mut [u8]) -> Result<(), TilingError> {
    t.validate(m, k)?;
    assert_eq!(w.len(), m * k, "tl1::pack: w.len() != m*k");
    assert_eq!(out.len(), packed_bytes(m, k), "tl1::pack: out.len() != m*k/4");
    out.fill(0);
    for row in 0..m {
        for p in 0..k / 2 {
            let idx = pair_index(w[row * k + 2 * p], w[row * k + 2 * p + 1]);
            let (byte, shift) = t.locate(k, row, p);
            out[byte] |= idx << shift;
        }
    }
    Ok(())
}

/// Unpacks `packed` (an `m × k` TL1 tensor) into ternary values (row-major).
///
/// # Errors
/// If the tiling does not fit the shape.
///
/// # Panics
/// If `out.len() != m*k` or `packed` is shorter than `m*k/4`.
pub fn unpack(
    packed: &[u8],
    m: usize,
    k: usize,
    t: Tiling,
    out: &mut [i8],
) -> Result<(), TilingError> {
    t.validate(m, k)?;
    assert_eq!(out.len(), m * k, "tl1::unpack: out.len() != m*k");
    for row in 0..m {
        for p in 0..k / 2 {
            let (byte, shift) = t.locate(k, row, p);
            let (w0, w1) = pair_values((packed[byte] >> shift) & 15);
            out[row * k + 2 * p] = w0;
            out[row * k + 2 * p + 1] = w1;
        }
    }
    Ok(())
}

/// Repacks a TL1 tensor into I2_S codes (the 128/32 layout of [`super::i2s`], flat row-major),
/// writing all `m·k/4` bytes of `out`. Walks the TL1 bytes in storage order (no divisions), so it
/// costs one pass over the tensor. Returns `false` (with `out` partly written) if an index above
/// 8 is met; such nibbles are never produced by the converter.
///
/// # Errors
/// If the tiling does not fit the shape.
///
/// # Panics
/// If `packed` is shorter than `m·k/4` or `out.len() != m·k/4`.
pub fn to_i2s(
    packed: &[u8],
    m: usize,
    k: usize,
    t: Tiling,
    out: &mut [u8],
) -> Result<bool, TilingError> {
    to_i2s_in(packed, m, k, t, super::i2s::Layout::Published, out)
}

/// [`to_i2s`] writing the I2_S blocks in `layout`'s order (for a `k` that is not a multiple of
/// 128, the published one: [`super::i2s::Layout::of`]).
///
/// # Errors
/// As [`to_i2s`].
///
/// # Panics
/// As [`to_i2s`].
pub fn to_i2s_in(
    packed: &[u8],
    m: usize,
    k: usize,
    t: Tiling,
    layout: super::i2s::Layout,
    out: &mut [u8],
) -> Result<bool, TilingError> {
    use super::i2s;
    t.validate(m, k)?;
    let n = packed_bytes(m, k);
    assert!(packed.len() >= n, "tl1::to_i2s: packed too short");
    assert_eq!(out.len(), n, "tl1::to_i2s: out.len() != m*k/4");
    out.fill(0);
    let (big_m, big_k, bm) = (t.big_m, t.big_k, t.bm);
    let by = 256 / bm;
    let mut ok = true;
    let mut e = 0usize;
    let mut put = |row: usize, p: usize, idx: u8| {
        let (w0, w1) = pair_values(idx);
        for (c, w) in [(2 * p, w0), (2 * p + 1, w1)] {
            let (byte, shift) = layout.locate(m, k, row, c);
            out[byte] |= i2s::code_of_value(w) << shift;
        }
    };
    for mb in 0..m / big_m {
        for kb in 0..k / big_k {
            for mbb in 0..big_m / bm {
                for kbb in 0..big_k / by {
                    for m16 in 0..bm / 16 {
                        for kp4 in 0..by / 4 {
                            let p = kb * big_k / 2 + kbb * by / 2 + 2 * kp4;
                            let row0 = mb * big_m + mbb * bm + m16 * 16;
                            for i16 in 0..16 {
                                let b = packed[e];
                                e += 1;
                                ok &= (b >> 4) <= 8 && (b & 15) <= 8;
                                put(row0 + i16, p, b >> 4);
                                put(row0 + i16, p + 1, b & 15);
                            }
                        }
                    }
                }
            }
        }
    }
    debug_assert_eq!(e, n);
    Ok(ok)
}

/// The f32 scale of a TL1 tensor (`tensor` = its `ggml_nbytes` bytes), little-endian at `m·k/4`.
pub fn scale(tensor: &[u8], m: usize, k: usize) -> Option<f32> {
    let at = packed_bytes(m, k);
    let b = tensor.get(at..at + 4)?;
    Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const T32: Tiling = Tiling { big_m: 64, big_k: 64, bm: 32 };
    const T64: Tiling = Tiling { big_m: 128, big_k: 128, bm: 64 };

    #[test]
    fn pair_index_table() {
        assert_eq!(pair_index(-1, -1), 0);
        assert_eq!(pair_index(0, 0), 4);
        assert_eq!(pair_index(1, 1), 8);
        assert_eq!(pair_index(1, -1), 6);
        for idx in 0..9 {
            let (a, b) = pair_values(idx);
            assert_eq!(pair_index(a, b), idx);
        }
        assert_eq!(pair_values(15), (0, 0));
    }

    #[test]
    fn locate_is_a_bijection_onto_all_nibbles() {
        for (t, m, k) in
            [(T32, 128, 128), (T64, 128, 256), (Tiling { big_m: 160, big_k: 64, bm: 32 }, 320, 192)]
        {
            t.validate(m, k).expect("valid");
            let mut seen = vec![0u8; packed_bytes(m, k)];
            for row in 0..m {
                for p in 0..k / 2 {
                    let (b, s) = t.locate(k, row, p);
                    let bit = if s == 4 { 1 } else { 2 };
                    assert_eq!(seen[b] & bit, 0, "nibble used twice: row {row} pair {p}");
                    seen[b] |= bit;
                }
            }
            assert!(seen.iter().all(|&v| v == 3));
        }
    }

    #[test]
    fn first_bytes_follow_the_published_order() {
        // bm = 32 → by = 8: byte 0 = rows 0, pairs (0, 1); bytes 0..16 are rows 0..16;
        // bytes 16..32 rows 0..16, pairs (2, 3); bytes 32..48 rows 16..32, pairs (0, 1).
        assert_eq!(T32.locate(64, 0, 0), (0, 4));
        assert_eq!(T32.locate(64, 0, 1), (0, 0));
        assert_eq!(T32.locate(64, 15, 0), (15, 4));
        assert_eq!(T32.locate(64, 0, 2), (16, 4));
        assert_eq!(T32.locate(64, 16, 0), (32, 4));
        assert_eq!(T32.locate(64, 0, 4), (64, 4)); // next by-step (kbb = 1)
    }

    #[test]
    fn pack_unpack_round_trip() {
        let (m, k) = (128, 256);
        let w: Vec<i8> = (0..m * k).map(|i| ((i * 7 + i / 13) % 3) as i8 - 1).collect();
        for t in [T32, T64] {
            let mut p = vec![0u8; packed_bytes(m, k)];
            pack(&w, m, k, t, &mut p).expect("pack");
            let mut back = vec![0i8; m * k];
            unpack(&p, m, k, t, &mut back).expect("unpack");
            assert_eq!(back, w);
        }
    }

    #[test]
    fn to_i2s_matches_unpack_then_pack() {
        let (m, k) = (384, 256);
        let w: Vec<i8> = (0..m * k).map(|i| ((i * 5 + i / 7 + i / 300) % 3) as i8 - 1).collect();
        for t in [T32, T64, Tiling { big_m: 192, big_k: 128, bm: 64 }] {
            let mut p = vec![0u8; packed_bytes(m, k)];
            pack(&w, m, k, t, &mut p).expect("pack");
            let mut want = vec![0u8; m * k / 4];
            crate::formats::i2s::pack(&w, &mut want);
            let mut got = vec![0xffu8; m * k / 4];
            assert!(to_i2s(&p, m, k, t, &mut got).expect("fits"));
            assert_eq!(got, want, "{t:?}");
        }
        let mut p = vec![0x44u8; packed_bytes(m, k)];
        p[17] = 0x94;
        let mut got = vec![0u8; m * k / 4];
        assert!(!to_i2s(&p, m, k, T32, &mut got).expect("fits"));
    }

    #[test]
    fn bad_tilings_are_errors() {
        assert!(T32.validate(100, 64).is_err());
        assert!(T32.validate(64, 100).is_err());
        assert!(Tiling { big_m: 64, big_k: 64, bm: 24 }.validate(64, 64).is_err());
        assert!(Tiling { big_m: 64, big_k: 64, bm: 128 }.validate(128, 64).is_err());
    }

    #[test]
    fn scale_is_read_from_the_tail() {
        let mut t = vec![0u8; packed_bytes(64, 64) + TAIL_BYTES];
        t[1024..1028].copy_from_slice(&0.25f32.to_le_bytes());
        assert_eq!(scale(&t, 64, 64), Some(0.25));
        assert_eq!(scale(&t[..1026], 64, 64), None);
    }
}
