//! Shape checks shared by every optimized I2_S and f16 tier: the safe entry points validate here, then
//! call their `unsafe` `#[target_feature]` bodies (checked/unchecked twins, STYLE §4.4).
#![cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]

use crate::formats::i2s::BLOCK;

/// `Σ q` (i32).
#[inline]
pub(crate) fn sum_i8(q: &[i8]) -> i32 {
    q.iter().map(|&v| v as i32).sum()
}

/// Tokens whose `Σq` the GEMMs compute together (a stack array of this many i32).
pub(crate) const TOKEN_CHUNK: usize = 64;

/// `Σq` of tokens `t0 .. t0 + tn` (`tn <= TOKEN_CHUNK`) of the row-major `q` (row length `k`),
/// in the first `tn` entries.
///
/// # Panics
/// If `tn > TOKEN_CHUNK` or `q` is shorter than `(t0 + tn) · k`.
#[inline]
pub(crate) fn token_sums(q: &[i8], k: usize, t0: usize, tn: usize) -> [i32; TOKEN_CHUNK] {
    let mut sq = [0i32; TOKEN_CHUNK];
    for (t, s) in sq[..tn].iter_mut().enumerate() {
        *s = sum_i8(&q[(t0 + t) * k..(t0 + t + 1) * k]);
    }
    sq
}

/// The GEMM loop of the tiers that tile one row × `T` tokens: per chunk of [`TOKEN_CHUNK`]
/// tokens and per row, `tile` gets the row's `k / 4` packed bytes and `T` consecutive tokens
/// (`T · k` activations) and returns their `Σ c·q`; `tile1` does one token. Writes
/// `out[r·n + t] = Σ c·q − Σ q`. `w` holds exactly `out.len() / n` rows; `q.len() == n · k`.
#[inline(always)]
pub(crate) fn gemm_by_row<const T: usize>(
    w: &[u8],
    k: usize,
    q: &[i8],
    n: usize,
    out: &mut [i32],
    tile: impl Fn(&[u8], &[i8]) -> [i32; T],
    tile1: impl Fn(&[u8], &[i8]) -> i32,
) {
    let rb = k / 4;
    let mut t0 = 0;
    while t0 < n {
        let tn = core::cmp::min(TOKEN_CHUNK, n - t0);
        let sq = token_sums(q, k, t0, tn);
        for (r, orow) in out.chunks_exact_mut(n).enumerate() {
            let wr = &w[r * rb..(r + 1) * rb];
            let o = &mut orow[t0..t0 + tn];
            let mut t = 0;
            while t + T <= tn {
                let a = tile(wr, &q[(t0 + t) * k..(t0 + t + T) * k]);
                for j in 0..T {
                    o[t + j] = a[j].wrapping_sub(sq[t + j]);
                }
                t += T;
            }
            while t < tn {
                o[t] = tile1(wr, &q[(t0 + t) * k..(t0 + t + 1) * k]).wrapping_sub(sq[t]);
                t += 1;
            }
        }
        t0 += tn;
    }
}

/// The packed bytes of rows `row0 .. row0 + rows` (row length `k`, `k / 4` bytes per row).
///
/// # Panics
/// If `w` is too short.
#[inline]
pub(crate) fn rows_of(w: &[u8], k: usize, row0: usize, rows: usize) -> &[u8] {
    let rb = k / 4;
    match row0.checked_add(rows).and_then(|r| r.checked_mul(rb)) {
        Some(end) if end <= w.len() => &w[row0 * rb..end],
        _ => panic!("i2s: weights too short for the requested rows"),
    }
}

/// Validates a GEMV call. `None`: the SIMD tiers need `k % 128 == 0` (call the reference).
/// `Some(rows)`: `k % 128 == 0`, `q.len() == k`, and `rows` holds exactly `out_len` rows.
///
/// # Panics
/// If `q.len() != k` or `w` is too short.
#[inline]
pub(crate) fn gemv_rows<'w>(
    w: &'w [u8],
    k: usize,
    row0: usize,
    q: &[i8],
    out_len: usize,
) -> Option<&'w [u8]> {
    if k == 0 || !k.is_multiple_of(BLOCK) {
        return None;
    }
    assert_eq!(q.len(), k, "i2s_gemv: q.len() != k");
    Some(rows_of(w, k, row0, out_len))
}

/// Validates a GEMM call. `None`: call the reference (K not a multiple of 128, or no tokens).
/// `Some(rows)`: `k % 128 == 0`, `n > 0`, `q.len() == n*k`, `out_len % n == 0`, and `rows` holds
/// exactly `out_len / n` rows.
///
/// # Panics
/// If `q.len() != n*k`, `out_len % n != 0` or `w` is too short.
#[inline]
pub(crate) fn gemm_rows<'w>(
    w: &'w [u8],
    k: usize,
    row0: usize,
    q: &[i8],
    n: usize,
    out_len: usize,
) -> Option<&'w [u8]> {
    if k == 0 || !k.is_multiple_of(BLOCK) || n == 0 {
        return None;
    }
    assert_eq!(q.len(), n * k, "i2s_gemm: q.len() != n*k");
    assert_eq!(out_len % n, 0, "i2s_gemm: out.len() not a multiple of n");
    Some(rows_of(w, k, row0, out_len / n))
}

/// Validates the weights of a call over a whole tensor in [`crate::formats::i2s::Layout::Lanes`]
/// (`k % 128 == 0`, `k > 0`) and returns its row count `m = w.len() / (k/4)`.
///
/// # Panics
/// If `w.len()` is not a whole number of rows, or rows `row0 .. row0 + rows` are not all in it.
#[inline]
#[cfg(target_arch = "x86_64")]
pub(crate) fn whole_rows(w: &[u8], k: usize, row0: usize, rows: usize) -> usize {
    let rb = k / 4;
    assert!(
        w.len().is_multiple_of(rb),
        "i2s (lanes): w must be the whole tensor, a multiple of k/4 = {rb} bytes (got {})",
        w.len()
    );
    let m = w.len() / rb;
    match row0.checked_add(rows) {
        Some(end) if end <= m => m,
        _ => panic!("i2s: weights too short for the requested rows"),
    }
}

/// Validates an f16 GEMV call and returns the weights of rows `row0 .. row0 + out_len`
/// (`out_len * k` elements).
///
/// # Panics
/// If `x_len != k` or `w` is too short.
#[inline]
pub(crate) fn f16_rows(w: &[u16], k: usize, row0: usize, x_len: usize, out_len: usize) -> &[u16] {
    assert_eq!(x_len, k, "f16_gemv: x.len() != k");
    match row0.checked_add(out_len).and_then(|r| r.checked_mul(k)) {
        Some(end) if end <= w.len() => &w[row0 * k..end],
        _ => panic!("f16_gemv: weights too short"),
    }
}

/// Columns per wide block of the weighted-sum tiers ([`wsum_by_columns`]).
pub(crate) const WSUM_COLS: usize = 64;

/// The column loop of the f16 weighted-sum tiers (`KernelSet::f16_wsum`): checks that `v` holds
/// `p.len()` rows of `out.len()`, then calls `block(d, cols)` for column blocks of
/// [`WSUM_COLS`], then of 8 (`cols` is the block's width; every row has columns `d .. d + cols`),
/// and computes the remaining `k % 8` columns with the reference's scalar order.
///
/// # Panics
/// If `v.len() < p.len() · out.len()`.
#[inline]
pub(crate) fn wsum_by_columns(
    p: &[f32],
    v: &[u16],
    out: &mut [f32],
    mut block: impl FnMut(usize, usize, &mut [f32]),
) {
    let k = out.len();
    assert!(v.len() >= p.len() * k, "f16_wsum: v shorter than p.len() rows of out.len()");
    let mut d = 0;
    for cols in [WSUM_COLS, 8] {
        while d + cols <= k {
            block(d, cols, &mut out[d..d + cols]);
            d += cols;
        }
    }
    for (c, o) in out.iter_mut().enumerate().skip(d) {
        let mut s = 0.0f32;
        for (i, &w) in p.iter().enumerate() {
            s += w * crate::reference::f16_to_f32(v[i * k + c]);
        }
        *o = s;
    }
}
