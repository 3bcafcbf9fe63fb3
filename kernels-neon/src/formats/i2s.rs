//! I2_S: bitnet.cpp's 2-bit ternary format (GGUF type 36), in the published 128/32 layout.
//!
//! - **Bits per weight:** 2 (plus one f32 scale per tensor).
//! - **Block:** 128 consecutive weights of the flat row-major tensor (`ne0 = K` fastest) → 32 bytes.
//!   Byte `32*b + p` holds weights `128b + p`, `+32`, `+64`, `+96` in bits 7-6, 5-4, 3-2, 1-0.
//! - **Codes:** `0 → −1`, `1 → 0`, `2 → +1` (`w = code − 1`). Code 3 is never written; the
//!   reference decodes it as 0 (as ggml's `dequantize_row_i2_s` does). Optimized kernels assume
//!   valid codes; on a code 3 they return some value without undefined behaviour.
//! - **Scale:** one f32 at byte `ne0*ne1/4` (right after the codes), then 28 zero bytes, so a tensor
//!   is `ne0*ne1/4 + 32` bytes. The scale is `max|W|` of the ternarised weights.
//! - **Origin:** `quantize_i2_s` in bitnet.cpp (`src/ggml-bitnet-mad.cpp`, x86 `QK_I2_S = 128`).
//!   bitnet.cpp's ARM builds since 2025-11 use a 64/16 layout and mis-read published files; we
//!   always read 128/32.
//! - **Prior art:** ggml `TQ2_0` (2-bit, low bits first, per-256 f16 scale).

/// Weights per block.
pub const BLOCK: usize = 128;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 32;
/// Bytes after the packed codes: the f32 scale plus 28 padding bytes.
pub const TAIL_BYTES: usize = 32;

/// Packed byte count of a `k × m` tensor (without the tail). `None` on overflow.
pub const fn packed_bytes(k: usize, m: usize) -> Option<usize> {
    match k.checked_mul(m) {
        Some(n) => Some(n.div_ceil(4)),
        None => None,
    }
}

/// Position of flat weight `i`: `(byte index, bit shift)`.
#[inline(always)]
pub const fn locate(i: usize) -> (usize, u32) {
    let b = i / BLOCK;
    let j = i % BLOCK;
    (b * BLOCK_BYTES + (j % 32), 6 - 2 * (j / 32) as u32)
}

/// The 2-bit code of flat weight `i`.
///
/// # Panics
/// If `packed` is too short to hold weight `i`.
#[inline(always)]
pub fn code_at(packed: &[u8], i: usize) -> u8 {
    let (byte, shift) = locate(i);
    (packed[byte] >> shift) & 3
}

/// The ternary value (−1, 0, +1) of a code; code 3 decodes as 0.
#[inline(always)]
pub const fn value_of_code(code: u8) -> i8 {
    match code {
        0 => -1,
        2 => 1,
        _ => 0,
    }
}

/// The code of a ternary value (`w ∈ {−1, 0, +1}`; anything else maps to the sign).
#[inline(always)]
pub const fn code_of_value(w: i8) -> u8 {
    if w > 0 {
        2
    } else if w < 0 {
        0
    } else {
        1
    }
}

/// Rows per row group of [`Layout::Lanes`]: one row per i32 lane of a 512-bit register.
pub const LANE_ROWS: usize = 16;

/// The row group of [`Layout::Lanes`] that holds row `r` of an `m`-row tensor: its first row and
/// its height ([`LANE_ROWS`], or fewer for the last group). `r < m`.
#[inline(always)]
pub const fn lane_group(m: usize, r: usize) -> (usize, usize) {
    let g0 = r - r % LANE_ROWS;
    (g0, if m - g0 < LANE_ROWS { m - g0 } else { LANE_ROWS })
}

/// The order of an I2_S tensor's bytes in memory. The bytes themselves (four 2-bit codes each)
/// are the same in every layout; only where byte `j` of row `r` sits differs.
///
/// - [`Layout::Published`]: the file's order, row after row (byte `j` of row `r` at
///   `r·K/4 + j`).
/// - [`Layout::Lanes`]: row groups of [`LANE_ROWS`] rows (the last one shorter when `m` is not
///   a multiple), one after the other; a group of `h` rows is the transpose of its `h × K/16`
///   matrix of 4-byte words: word `c` (bytes `4c .. 4c+4` of a published row) of the group's
///   first row, of its second, …, of its row `h − 1`, then word `c + 1`. One 64-byte load then
///   gives the same word of 16 rows, one per i32 lane, and `vpdpbusd` against a broadcast of
///   the 4 activations that word's sub-group `g` multiplies (`q[128·(c/8) + 32g + 4·(c%8) ..]`)
///   adds each row's four products to its own lane: no reduction across lanes, and a thread's
///   share of whole groups is one contiguous run of memory, read front to back (see
///   `x86_64::vnni`). Only defined for `K % 128 == 0`; other tensors keep the published order
///   ([`Layout::of`]).
///
/// Every layout has the same size (`m·K/4` bytes); [`relayout`] converts a published tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Row after row (the GGUF file's order).
    #[default]
    Published,
    /// Row groups of [`LANE_ROWS`] rows, each the transpose of its matrix of 4-byte words.
    Lanes,
}

impl Layout {
    /// The layout a tensor of row length `k` actually gets when `self` is asked for:
    /// [`Layout::Published`] unless `k` is a whole number of blocks.
    pub const fn of(self, k: usize) -> Layout {
        match self {
            Layout::Lanes if k.is_multiple_of(BLOCK) && k > 0 => Layout::Lanes,
            _ => Layout::Published,
        }
    }

    /// Offset of byte `j` (`j < k/4`) of row `r` of an `m × k` tensor (`k % 128 == 0` for
    /// [`Layout::Lanes`]).
    #[inline(always)]
    pub const fn byte_offset(self, m: usize, k: usize, r: usize, j: usize) -> usize {
        match self.of(k) {
            Layout::Published => r * (k / 4) + j,
            Layout::Lanes => {
                // The groups before row `r`'s are full.
                let (g0, h) = lane_group(m, r);
                g0 * (k / 4) + ((j / 4) * h + (r - g0)) * 4 + j % 4
            }
        }
    }

    /// Position of weight `(r, c)` of an `m × k` tensor: `(byte index, bit shift)`.
    #[inline(always)]
    pub const fn locate(self, m: usize, k: usize, r: usize, c: usize) -> (usize, u32) {
        match self.of(k) {
            Layout::Published => locate(r * k + c),
            Layout::Lanes => {
                let (j, shift) = locate(c);
                (self.byte_offset(m, k, r, j), shift)
            }
        }
    }
}

/// Copies the published `m × k` tensor `src` into `dst` in `layout` (a plain copy when the layout
/// is the published one for this `k`).
///
/// # Panics
/// If `src` or `dst` is shorter than `m·k/4` bytes.
pub fn relayout(src: &[u8], m: usize, k: usize, layout: Layout, dst: &mut [u8]) {
    let n = m * k / 4;
    let (src, dst) = (&src[..n], &mut dst[..n]);
    if layout.of(k) == Layout::Published {
        dst.copy_from_slice(src);
        return;
    }
    let rb = k / 4;
    for g0 in (0..m).step_by(LANE_ROWS) {
        let (_, h) = lane_group(m, g0);
        let group = &src[g0 * rb..(g0 + h) * rb];
        let out = &mut dst[g0 * rb..(g0 + h) * rb];
        // Word c of row i goes to word c·h + i.
        for (i, row) in group.chunks_exact(rb).enumerate() {
            for (c, word) in row.chunks_exact(4).enumerate() {
                let o = (c * h + i) * 4;
                out[o..o + 4].copy_from_slice(word);
            }
        }
    }
}

/// Packs ternary values `w` (flat, row-major) into `out` (`packed_bytes` long, zeroed first).
///
/// # Panics
/// If `out.len() != w.len().div_ceil(4)` rounded up to whole blocks' worth of bytes is not met
/// (`out` must have at least `locate(w.len()-1).0 + 1` bytes).
pub fn pack(w: &[i8], out: &mut [u8]) {
    out.fill(0);
    for (i, &v) in w.iter().enumerate() {
        let (byte, shift) = locate(i);
        out[byte] |= code_of_value(v) << shift;
    }
}

/// Bytes needed by [`pack`] for `n` weights (whole 32-byte blocks, as the published writer emits
/// for multiples of 128; partial final blocks still use the block's byte positions).
pub const fn pack_len(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // The highest byte touched: in a partial final block of `j + 1` weights, byte `32b + p` is used
    // for every `p <= min(j, 31)` (weight `n − 1` alone is not the highest byte once `j >= 32`).
    let b = (n - 1) / BLOCK;
    let j = (n - 1) % BLOCK;
    let last = b * BLOCK_BYTES + if j < 31 { j } else { 31 };
    let full = n.div_ceil(4);
    if last + 1 > full { last + 1 } else { full }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_published_description() {
        // weight 0 -> byte 0 bits 7-6; weight 32 -> byte 0 bits 5-4; weight 96 -> bits 1-0;
        // weight 127 -> byte 31 bits 1-0; weight 128 -> byte 32 bits 7-6.
        assert_eq!(locate(0), (0, 6));
        assert_eq!(locate(32), (0, 4));
        assert_eq!(locate(64), (0, 2));
        assert_eq!(locate(96), (0, 0));
        assert_eq!(locate(127), (31, 0));
        assert_eq!(locate(128), (32, 6));
        assert_eq!(locate(161), (33, 4));
    }

    #[test]
    fn pack_round_trips() {
        let w: std::vec::Vec<i8> = (0..512).map(|i| ((i * 7 + 3) % 3) as i8 - 1).collect();
        let mut p = std::vec![0u8; pack_len(w.len())];
        pack(&w, &mut p);
        assert_eq!(p.len(), 128);
        for (i, &v) in w.iter().enumerate() {
            assert_eq!(value_of_code(code_at(&p, i)), v);
        }
    }

    #[test]
    fn pack_len_covers_partial_blocks() {
        // 496 = 3 blocks + 112 weights: the partial block uses bytes 96..128.
        for n in [1usize, 31, 32, 33, 100, 127, 128, 129, 200, 496, 511, 512] {
            let w = std::vec![1i8; n];
            let mut p = std::vec![0u8; pack_len(n)];
            pack(&w, &mut p);
            let max_byte = (0..n).map(|i| locate(i).0).max().unwrap_or(0);
            assert_eq!(pack_len(n), core::cmp::max(max_byte + 1, n.div_ceil(4)), "n={n}");
        }
    }

    #[test]
    fn lanes_relayout_matches_locate() {
        // Every weight lands where `Layout::locate` says: whole groups, a short last one, and a
        // tensor shorter than one group.
        let shapes = [(3usize, 128usize), (5, 512), (4, 640), (7, 896), (2, 2560), (3, 6912)];
        for (m, k) in shapes.into_iter().chain([(16, 256), (17, 640), (40, 896), (33, 6912)]) {
            let w: std::vec::Vec<i8> =
                (0..m * k).map(|i| ((i * 7 + i / 5) % 3) as i8 - 1).collect();
            let mut p = std::vec![0u8; m * k / 4];
            pack(&w, &mut p);
            let mut d = std::vec![0u8; m * k / 4];
            relayout(&p, m, k, Layout::Lanes, &mut d);
            for r in 0..m {
                for c in 0..k {
                    let (byte, shift) = Layout::Lanes.locate(m, k, r, c);
                    assert_eq!(
                        value_of_code((d[byte] >> shift) & 3),
                        w[r * k + c],
                        "{m}x{k} {r},{c}"
                    );
                    assert_eq!(Layout::Published.locate(m, k, r, c), locate(r * k + c));
                }
            }
        }
        // Word c of row i of a full group sits at 64c + 4i: 16 rows' word c in one 64-byte run.
        assert_eq!(Layout::Lanes.byte_offset(40, 2560, 3, 4 * 5 + 2), 64 * 5 + 4 * 3 + 2);
        // Row 20 of 40 is row 4 of the second (full) group, which starts after 16 rows.
        assert_eq!(Layout::Lanes.byte_offset(40, 2560, 20, 4 * 7), 16 * 640 + 64 * 7 + 16);
        // Rows 32..40 form a last group of 8: word c of its row i at 32c + 4i.
        assert_eq!(Layout::Lanes.byte_offset(40, 2560, 33, 4 * 9 + 1), 32 * 640 + 32 * 9 + 4 + 1);
        assert_eq!(LANE_ROWS, 16, "the offsets above assume 16-row groups");
        assert_eq!(Layout::Lanes.of(100), Layout::Published);
        assert_eq!(Layout::Lanes.of(256), Layout::Lanes);
    }

    #[test]
    fn code_three_decodes_as_zero() {
        assert_eq!(value_of_code(3), 0);
    }
}
