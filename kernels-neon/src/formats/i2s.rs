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

/// Blocks per column panel of [`Layout::Panels`].
pub const PANEL_BLOCKS: usize = 4;
/// Rows per row tile of [`Layout::Panels`].
pub const PANEL_ROWS: usize = 32;

/// The row tile of [`Layout::Panels`] that holds row `r` of an `m`-row tensor: its first row and
/// its height ([`PANEL_ROWS`], or fewer for the last tile). `r < m`.
#[inline(always)]
pub const fn panel_tile(m: usize, r: usize) -> (usize, usize) {
    let t0 = r - r % PANEL_ROWS;
    (t0, if m - t0 < PANEL_ROWS { m - t0 } else { PANEL_ROWS })
}

/// The order of an I2_S tensor's 32-byte blocks in memory. The bytes of a block are the same in
/// every layout; only where block `b` of row `r` sits differs.
///
/// - [`Layout::Published`]: the file's order, row after row (block `b` of row `r` at
///   `32 · (r·K/128 + b)`).
/// - [`Layout::Panels`]: row tiles of [`PANEL_ROWS`] rows (the last one shorter when `m` is not
///   a multiple), one after the other; inside a tile of `h` rows, column panels of
///   [`PANEL_BLOCKS`] blocks (512 weights) — panel `p` holds blocks `4p .. 4p+4` of the tile's
///   first row, then of its second, …, of its row `h − 1`; the last panel is narrower when
///   `K/128` is not a multiple of 4. A GEMV then keeps one panel's 512 activations in registers
///   and streams the weights with no activation loads (see `x86_64::vnni`), and the rows of a
///   whole number of tiles — a thread's share — are one contiguous run of memory, read front to
///   back. Only defined for `K % 128 == 0`; other tensors keep the published order
///   ([`Layout::of`]).
///
/// Every layout has the same size (`m·K/4` bytes); [`relayout`] converts a published tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Row after row (the GGUF file's order).
    #[default]
    Published,
    /// Row tiles of [`PANEL_ROWS`] rows, each in column panels of [`PANEL_BLOCKS`] blocks, row
    /// after row within a panel.
    Panels,
}

impl Layout {
    /// The layout a tensor of row length `k` actually gets when `self` is asked for:
    /// [`Layout::Published`] unless `k` is a whole number of blocks.
    pub const fn of(self, k: usize) -> Layout {
        match self {
            Layout::Panels if k.is_multiple_of(BLOCK) && k > 0 => Layout::Panels,
            _ => Layout::Published,
        }
    }

    /// Byte offset of block `b` (`b < k/128`) of row `r` in an `m`-row tensor of row length
    /// `k`, for `k % 128 == 0` (the published layout also for other `k`, through [`locate`]).
    #[inline(always)]
    pub const fn block_offset(self, m: usize, k: usize, r: usize, b: usize) -> usize {
        let nb = k / BLOCK;
        match self {
            Layout::Published => (r * nb + b) * BLOCK_BYTES,
            Layout::Panels => {
                // The tiles before row `r`'s are full.
                let (t0, h) = panel_tile(m, r);
                let first = b - b % PANEL_BLOCKS;
                let width = if nb - first < PANEL_BLOCKS { nb - first } else { PANEL_BLOCKS };
                (t0 * nb + first * h + (r - t0) * width + (b - first)) * BLOCK_BYTES
            }
        }
    }

    /// Position of weight `(r, c)` of an `m × k` tensor: `(byte index, bit shift)`.
    #[inline(always)]
    pub const fn locate(self, m: usize, k: usize, r: usize, c: usize) -> (usize, u32) {
        match self.of(k) {
            Layout::Published => locate(r * k + c),
            Layout::Panels => {
                let j = c % BLOCK;
                (self.block_offset(m, k, r, c / BLOCK) + j % 32, 6 - 2 * (j / 32) as u32)
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
    let nb = k / BLOCK;
    let mut o = 0;
    for t0 in (0..m).step_by(PANEL_ROWS) {
        let (_, h) = panel_tile(m, t0);
        for b0 in (0..nb).step_by(PANEL_BLOCKS) {
            let width = core::cmp::min(PANEL_BLOCKS, nb - b0) * BLOCK_BYTES;
            for r in t0..t0 + h {
                let s = (r * nb + b0) * BLOCK_BYTES;
                dst[o..o + width].copy_from_slice(&src[s..s + width]);
                o += width;
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
    fn panels_relayout_matches_locate() {
        // Every weight lands where `Layout::locate` says, for full and narrow last panels.
        // m > PANEL_ROWS: whole tiles and a short last one.
        let shapes = [(3usize, 128usize), (5, 512), (4, 640), (7, 896), (2, 2560), (3, 6912)];
        for (m, k) in shapes.into_iter().chain([(32, 256), (33, 640), (70, 896), (65, 6912)]) {
            let w: std::vec::Vec<i8> =
                (0..m * k).map(|i| ((i * 7 + i / 5) % 3) as i8 - 1).collect();
            let mut p = std::vec![0u8; m * k / 4];
            pack(&w, &mut p);
            let mut d = std::vec![0u8; m * k / 4];
            relayout(&p, m, k, Layout::Panels, &mut d);
            for r in 0..m {
                for c in 0..k {
                    let (byte, shift) = Layout::Panels.locate(m, k, r, c);
                    assert_eq!(
                        value_of_code((d[byte] >> shift) & 3),
                        w[r * k + c],
                        "{m}x{k} {r},{c}"
                    );
                    assert_eq!(Layout::Published.locate(m, k, r, c), locate(r * k + c));
                }
            }
        }
        // Panel p of a tile of h rows starts at 4·32·h·p; rows are contiguous inside it.
        assert_eq!(Layout::Panels.block_offset(10, 2560, 0, 4), 4 * 32 * 10);
        assert_eq!(Layout::Panels.block_offset(10, 2560, 3, 5), 4 * 32 * 10 + 3 * 128 + 32);
        // 6912 = 54 blocks: the last panel (blocks 52, 53) is 2 blocks wide.
        assert_eq!(Layout::Panels.block_offset(10, 6912, 1, 53), 52 * 32 * 10 + 64 + 32);
        // Tiles: row 40 of 70 is row 8 of the second (full) tile, which starts after 32 rows;
        // rows 64..70 form a last tile of 6.
        let row_bytes = 2560 / 4;
        assert_eq!(
            Layout::Panels.block_offset(70, 2560, 40, 5),
            32 * row_bytes + 4 * 32 * 32 + 8 * 128 + 32
        );
        assert_eq!(Layout::Panels.block_offset(70, 2560, 65, 4), 64 * row_bytes + 4 * 32 * 6 + 128);
        assert_eq!(PANEL_ROWS, 32, "the offsets above assume 32-row tiles");
        assert_eq!(Layout::Panels.of(100), Layout::Published);
        assert_eq!(Layout::Panels.of(256), Layout::Panels);
    }

    #[test]
    fn code_three_decodes_as_zero() {
        assert_eq!(value_of_code(3), 0);
    }
}
