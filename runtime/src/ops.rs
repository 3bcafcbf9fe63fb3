//! f32 operators of the forward pass, written to reproduce ggml's arithmetic (FORMATS §3.1,
//! fixtures README "Numerics that matter"): RMSNorm with an f64 sum, RoPE with iterated angles,
//! ggml's vectorised `expf` polynomial and its softmax summation order, f16 rounding points.
//!
//! Everything uses `libm`, never `std`, so host, Linux boards and bare metal agree bit for bit.

use tern_kernels::reference::{F16_LANES, f16_to_f32, f32_to_f16, reduce_lanes};

/// `out = x / sqrt(mean(x²) + eps) * w` (ggml: squares in f32, summed in f64; scale in f32).
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mut sum = 0.0f64;
    for &v in x {
        sum += f64::from(v * v);
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / libm::sqrtf(mean + eps);
    for ((o, &v), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * wv;
    }
}

/// In-place variant of [`rmsnorm`].
pub fn rmsnorm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let mut sum = 0.0f64;
    for &v in x.iter() {
        sum += f64::from(v * v);
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / libm::sqrtf(mean + eps);
    for (v, &wv) in x.iter_mut().zip(w) {
        *v = (*v * scale) * wv;
    }
}

/// Fills `cs` (`2 * rope_dim/2` values: cos, sin interleaved) for position `pos`:
/// `θ_0 = pos`, `θ_{i+1} = θ_i · base^(−2/rope_dim)` by repeated f32 multiplication (ggml's
/// `rope_cache_init`), `cosf`/`sinf` from libm.
pub fn rope_cache(pos: usize, rope_dim: usize, base: f32, cs: &mut [f32]) {
    let theta_scale = libm::powf(base, -2.0f32 / rope_dim as f32);
    let mut theta = pos as f32;
    for pair in cs.chunks_exact_mut(2).take(rope_dim / 2) {
        pair[0] = libm::cosf(theta);
        pair[1] = libm::sinf(theta);
        theta *= theta_scale;
    }
}

/// Rotates one head in place with a cache from [`rope_cache`]. NEOX pairs `(i, i + d/2)`, NORM
/// pairs `(2i, 2i+1)`; dimensions past `rope_dim` are left alone. The rotation is contracted into
/// FMAs as clang contracts ggml's C (`fma(x0, c, -(x1·s))`, `fma(x0, s, x1·c)`).
pub fn rope_head(head: &mut [f32], rope_dim: usize, neox: bool, cs: &[f32]) {
    let half = rope_dim / 2;
    for i in 0..half {
        let c = cs[2 * i];
        let s = cs[2 * i + 1];
        let (a, b) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
        let x0 = head[a];
        let x1 = head[b];
        head[a] = libm::fmaf(x0, c, -(x1 * s));
        head[b] = libm::fmaf(x0, s, x1 * c);
    }
}

/// ggml's vectorised `expf` (`ggml_v_expf`, after ARM optimized-routines), one lane: a degree-5
/// polynomial on the reduced argument with exponent reconstruction and an out-of-range path.
#[inline]
pub fn v_expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = libm::fmaf(x, f32::from_bits(0x3fb8_aa3b), r); // x·log2(e) + r
    let n = z - r;
    let b =
        libm::fmaf(-n, f32::from_bits(0x35bf_be8e), libm::fmaf(-n, f32::from_bits(0x3f31_7200), x));
    let e = z.to_bits().wrapping_shl(23);
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let c = libm::fabsf(n) > 126.0;
    let u = b * b;
    let j = libm::fmaf(
        libm::fmaf(
            libm::fmaf(f32::from_bits(0x3c07_2010), b, f32::from_bits(0x3d2b_9f17)),
            u,
            libm::fmaf(f32::from_bits(0x3e2a_af33), b, f32::from_bits(0x3eff_fedb)),
        ),
        u,
        f32::from_bits(0x3f7f_fff6) * b,
    );
    if !c {
        return libm::fmaf(j, k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if libm::fabsf(n) > 192.0 {
        return s1 * s1;
    }
    libm::fmaf(s2, j, s2) * s1
}

/// Softmax of `x[..n]` in place after scaling by `scale` (ggml `soft_max_ext` without a mask on
/// the valid range): `e_i = v_expf(x_i·scale − max)`, summed per 16 lanes with a halving tree in
/// f32 and accumulated in f64, then multiplied by `(f32)(1/sum)`.
pub fn softmax_scaled(x: &mut [f32], scale: f32) {
    let mut max = f32::NEG_INFINITY;
    for v in x.iter_mut() {
        *v *= scale;
        if *v > max {
            max = *v;
        }
    }
    let mut sum = 0.0f64;
    for chunk in x.chunks_mut(F16_LANES) {
        let mut lanes = [0.0f32; F16_LANES];
        for (l, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *v = v_expf(*v - max);
            *l = *v;
        }
        sum += f64::from(reduce_lanes(lanes));
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Rounds `x` to the nearest f16 value (kept as f32).
#[inline]
pub fn round_f16(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// [`round_f16`] of every element, through `half`'s slice conversions (F16C/FP16 eight at a time
/// where the CPU has them, instead of a call and a feature check per element).
pub fn round_f16_slice(x: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let mut h = [half::f16::ZERO; 64];
    for c in x.chunks_mut(64) {
        let h = &mut h[..c.len()];
        h.convert_from_f32_slice(c);
        h.convert_to_f32_slice(c);
    }
}

/// SiLU, `x / (1 + e^−x)` with libm `expf` (ggml's `ggml_silu_f32`).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_expf_is_accurate() {
        for i in -200..=200 {
            let x = i as f32 * 0.173;
            let e = libm::expf(x);
            let v = v_expf(x);
            let rel = ((v - e) / e).abs();
            assert!(rel < 4e-7 || (e == 0.0 && v == 0.0), "x={x} {v} vs {e}");
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(v_expf(0.0), 1.0);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x = [
            1.0f32, 2.0, 3.0, -1.0, 0.5, 7.0, 2.0, 1.0, 0.0, 3.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
        ];
        softmax_scaled(&mut x, 0.5);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x[5] > x[16]);
    }

    #[test]
    fn rmsnorm_unit() {
        let x = [3.0f32, 4.0];
        let w = [1.0f32, 2.0];
        let mut o = [0.0f32; 2];
        rmsnorm(&x, &w, 0.0, &mut o);
        let s = 1.0 / (12.5f32).sqrt();
        assert!((o[0] - 3.0 * s).abs() < 1e-6 && (o[1] - 8.0 * s).abs() < 1e-6);
    }

    #[test]
    fn round_f16_slice_is_round_f16() {
        let mut s = 0x1234_5678u32;
        let mut x: std::vec::Vec<f32> = (0..10_000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                f32::from_bits(s)
            })
            .collect();
        x.extend([0.0, -0.0, 65504.0, 65520.0, -65520.0, 5.96e-8, 2.98e-8, 1e-10, f32::INFINITY]);
        let want: std::vec::Vec<f32> = x.iter().map(|&v| round_f16(v)).collect();
        round_f16_slice(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{g} vs {w}");
        }
    }

    #[test]
    fn rope_position_zero_is_identity() {
        let mut cs = [0.0f32; 8];
        rope_cache(0, 8, 10000.0, &mut cs);
        let mut h = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let orig = h;
        rope_head(&mut h, 8, true, &cs);
        assert_eq!(h, orig);
    }
}
