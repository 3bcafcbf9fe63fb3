//! Scalar reference kernels: the specification every optimized tier is tested against.
//!
//! Plain, obvious Rust; builds on every target; no `unsafe`.
#![forbid(unsafe_code)]

use crate::formats::i2s;

mod tl1;
pub use tl1::{tl1_act_quant, tl1_gemv, tl1_gemv_tables, tl1_pair_table, tl1_tables};

/// Lanes of the fixed f32 halving tree [`reduce_lanes`] (the softmax sum, the f16·f16 dot of
/// the multi-token attention, and the last stage of [`f16_gemv`]).
pub const F16_LANES: usize = 16;

/// Lanes of the f16 GEMV's fixed reduction order ([`f16_gemv`], every f16 tier). 32: the running
/// sum of a lane is a dependency chain (one add per 32 weights), and 16 lanes left a Zen 4 core
/// latency-bound at about the DRAM rate (two 8-wide chains, one `vaddps` each per 16 weights);
/// 32 lanes are four 8-wide chains on AVX2 and eight 4-wide ones on NEON.
pub const F16_GEMV_LANES: usize = 32;

/// Rounds to nearest, ties to even, for |v| < 2^22 (ggml's `nearest_int` magic-number trick,
/// which is what bitnet.cpp's activation quantiser uses).
#[inline(always)]
pub fn nearest_int(v: f32) -> i32 {
    let t = v + 12_582_912.0_f32; // 1.5 * 2^23
    (t.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// I2_S activation quantisation for one token (DESIGN §4, bitnet.cpp `quantize_row_i8_s`):
///
/// ```text
/// max = max(1e-5, max_k |x_k|)        (f64)
/// s   = (f32)(127 / max)
/// q_k = clamp(round_half_even(x_k * s), -128, 127)     (x_k * s in f32)
/// ```
/// Returns `(s, Σ_k q_k)`.
///
/// # Panics
/// If `q.len() != x.len()`.
pub fn act_quant_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    assert_eq!(x.len(), q.len(), "act_quant_i8: x and q lengths differ");
    let mut max = 1e-5_f64;
    for &v in x {
        let a = libm::fabs(v as f64);
        if a > max {
            max = a;
        }
    }
    let s = (127.0 / max) as f32;
    let mut sum = 0i32;
    for (qk, &xk) in q.iter_mut().zip(x) {
        let r = if (xk * s).is_nan() { 0 } else { nearest_int(xk * s) };
        let v = r.clamp(-128, 127);
        *qk = v as i8;
        sum += v;
    }
    (s, sum)
}

/// Finishes an I2_S dot product: `Σ w·q / s · w_scale` in bitnet.cpp's float order,
/// `((f32)Σcode·q − (f32)Σq) / s · w_scale`. Both operands are exact in f32 for every model shape
/// (|Σ| < 2^24), so this equals `(f32)dot / s * w_scale` with `dot = Σ (code−1)·q`.
#[inline(always)]
pub fn finish_i2s(dot: i32, act_scale: f32, w_scale: f32) -> f32 {
    dot as f32 / act_scale * w_scale
}

/// I2_S GEMV: `out[i] = Σ_k w[row0+i][k] · q[k]` with `w = code − 1`, accumulated in i32.
///
/// `w` is the whole packed tensor (row length `k`); any `k` is allowed (weights are indexed in the
/// flat row-major order of the format, so rows need not start on a block).
///
/// # Panics
/// If `q.len() != k` or `w` is too short for the requested rows.
pub fn i2s_gemv(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    assert_eq!(q.len(), k, "i2s_gemv: q.len() != k");
    for (i, o) in out.iter_mut().enumerate() {
        let base = (row0 + i) * k;
        let mut acc = 0i32;
        for (kk, &qk) in q.iter().enumerate() {
            let wv = i2s::value_of_code(i2s::code_at(w, base + kk));
            acc += wv as i32 * qk as i32;
        }
        *o = acc;
    }
}

/// I2_S GEMM over `n` tokens: `out[i*n + t] = Σ_k w[row0+i][k] · q[t*k + k]` (i32).
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` is too short.
pub fn i2s_gemm(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    assert_eq!(q.len(), n * k, "i2s_gemm: q.len() != n*k");
    if n == 0 {
        return;
    }
    assert_eq!(out.len() % n, 0, "i2s_gemm: out.len() not a multiple of n");
    for (i, orow) in out.chunks_exact_mut(n).enumerate() {
        let base = (row0 + i) * k;
        for (t, o) in orow.iter_mut().enumerate() {
            let qt = &q[t * k..(t + 1) * k];
            let mut acc = 0i32;
            for (kk, &qk) in qt.iter().enumerate() {
                let wv = i2s::value_of_code(i2s::code_at(w, base + kk));
                acc += wv as i32 * qk as i32;
            }
            *o = acc;
        }
    }
}

/// [`i2s_gemv`] over a tensor in [`i2s::Layout::Lanes`] (the whole tensor: `w.len()` is
/// exactly `m·k/4`, which gives `m`). Tensors whose `k` is not a multiple of 128 are published.
///
/// # Panics
/// If `q.len() != k` or `w` is too short for the requested rows.
pub fn i2s_gemv_lanes(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]) {
    assert_eq!(q.len(), k, "i2s_gemv: q.len() != k");
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot_in(i2s::Layout::Lanes, w, k, row0 + i, q);
    }
}

/// [`i2s_gemm`] over a tensor in [`i2s::Layout::Lanes`] (as [`i2s_gemv_lanes`]).
///
/// # Panics
/// If `q.len() != n*k`, `out.len() % n != 0` or `w` is too short.
pub fn i2s_gemm_lanes(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]) {
    assert_eq!(q.len(), n * k, "i2s_gemm: q.len() != n*k");
    if n == 0 {
        return;
    }
    assert_eq!(out.len() % n, 0, "i2s_gemm: out.len() not a multiple of n");
    for (i, orow) in out.chunks_exact_mut(n).enumerate() {
        for (t, o) in orow.iter_mut().enumerate() {
            *o = dot_in(i2s::Layout::Lanes, w, k, row0 + i, &q[t * k..(t + 1) * k]);
        }
    }
}

/// `Σ_c w[r][c] · q[c]` for row `r` of the whole tensor `w` stored in `layout`.
fn dot_in(layout: i2s::Layout, w: &[u8], k: usize, r: usize, q: &[i8]) -> i32 {
    let m = (w.len() * 4).checked_div(k).unwrap_or(0);
    assert!(r < m, "i2s_gemv: row {r} outside the tensor");
    let mut acc = 0i32;
    for (c, &qk) in q.iter().enumerate() {
        let (byte, shift) = layout.locate(m, k, r, c);
        acc += i2s::value_of_code((w[byte] >> shift) & 3) as i32 * qk as i32;
    }
    acc
}

/// The scalar GEMV and GEMM for a tensor stored in `layout`.
pub fn i2s_kernels_for(
    layout: i2s::Layout,
) -> (crate::dispatch::I2sGemvFn, crate::dispatch::I2sGemmFn) {
    match layout {
        i2s::Layout::Published => (i2s_gemv, i2s_gemm),
        i2s::Layout::Lanes => (i2s_gemv_lanes, i2s_gemm_lanes),
    }
}

/// IEEE binary16 bits to f32 (exact).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// f32 to IEEE binary16 bits, round to nearest even.
#[inline(always)]
pub fn f32_to_f16(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// f16 GEMV: `out[i] = Σ_k f16(w[row0+i][k]) · x[k]` in a fixed order that SIMD tiers reproduce:
/// lane `j` (0..32, [`F16_GEMV_LANES`]) sums the products `w·x` (f32 multiply, then f32 add; no
/// FMA) of the `k ≡ j (mod 32)` in increasing `k`; the lanes are then reduced as a tree
/// `l[j] += l[j+16]`, `l[j] += l[j+8]`, `l[j] += l[j+4]`, `l[j] += l[j+2]`, `l[0] + l[1]`
/// ([`reduce_gemv_lanes`]).
///
/// # Panics
/// If `x.len() != k` or `w` is too short.
pub fn f16_gemv(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), k, "f16_gemv: x.len() != k");
    for (i, o) in out.iter_mut().enumerate() {
        let row = &w[(row0 + i) * k..(row0 + i + 1) * k];
        *o = f16_dot(row, x);
    }
}

/// One row of [`f16_gemv`].
#[inline]
pub fn f16_dot(row: &[u16], x: &[f32]) -> f32 {
    f16_dot_finish([0.0; F16_GEMV_LANES], row, x, 0)
}

/// The rest of [`f16_dot`] from `k = from` on, with `lanes` holding the sums of `k < from`: the
/// SIMD tiers' tail (`K % 32`) and lane tree.
#[inline]
pub fn f16_dot_finish(
    mut lanes: [f32; F16_GEMV_LANES],
    row: &[u16],
    x: &[f32],
    from: usize,
) -> f32 {
    for (kk, (&h, &xv)) in row.iter().zip(x).enumerate().skip(from) {
        lanes[kk % F16_GEMV_LANES] += f16_to_f32(h) * xv;
    }
    reduce_gemv_lanes(lanes)
}

/// Weighted sum of f16 rows (attention: probabilities × cached V): `out[d] = Σ_i p[i] ·
/// f16(v[i·k + d])` for `k = out.len()` and `i < p.len()`. Each output element is its own sum,
/// from `+0.0` in increasing `i`, every product rounded before the add (f32 multiply, then f32
/// add; no FMA). The order runs along `i` only, so SIMD tiers vectorise over `d` and give the same
/// bits.
///
/// # Panics
/// If `v.len() < p.len() · out.len()`.
pub fn f16_wsum(p: &[f32], v: &[u16], out: &mut [f32]) {
    let k = out.len();
    assert!(v.len() >= p.len() * k, "f16_wsum: v shorter than p.len() rows of out.len()");
    out.fill(0.0);
    for (i, &w) in p.iter().enumerate() {
        for (o, &h) in out.iter_mut().zip(&v[i * k..(i + 1) * k]) {
            *o += w * f16_to_f32(h);
        }
    }
}

/// The fixed lane-reduction tree of the f16 GEMV: 32 lanes halved to 16, then [`reduce_lanes`].
#[inline(always)]
pub fn reduce_gemv_lanes(l: [f32; F16_GEMV_LANES]) -> f32 {
    reduce_lanes(core::array::from_fn(|j| l[j] + l[j + F16_LANES]))
}

/// The fixed 16-lane halving tree (`l[j] += l[j+8]`, `+4`, `+2`, then `l[0] + l[1]`).
#[inline(always)]
pub fn reduce_lanes(mut l: [f32; F16_LANES]) -> f32 {
    for j in 0..8 {
        l[j] += l[j + 8];
    }
    for j in 0..4 {
        l[j] += l[j + 4];
    }
    for j in 0..2 {
        l[j] += l[j + 2];
    }
    l[0] + l[1]
}

#[cfg(test)]
mod tests;
