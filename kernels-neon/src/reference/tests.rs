//! Hand cases for the reference kernels.
use super::*;
use crate::formats::i2s;
use std::vec;
use std::vec::Vec;

fn packed(w: &[i8]) -> Vec<u8> {
    let mut p = vec![0u8; i2s::pack_len(w.len())];
    i2s::pack(w, &mut p);
    p
}

#[test]
fn nearest_int_is_round_half_even() {
    assert_eq!(nearest_int(0.5), 0);
    assert_eq!(nearest_int(1.5), 2);
    assert_eq!(nearest_int(2.5), 2);
    assert_eq!(nearest_int(-0.5), 0);
    assert_eq!(nearest_int(-1.5), -2);
    assert_eq!(nearest_int(126.6), 127);
    assert_eq!(nearest_int(-127.4), -127);
}

#[test]
fn act_quant_scales_to_127() {
    let x = [1.0f32, -2.0, 0.5, 0.0];
    let mut q = [0i8; 4];
    let (s, sum) = act_quant_i8(&x, &mut q);
    assert_eq!(s, 63.5);
    assert_eq!(q, [64, -127, 32, 0]); // 63.5 rounds to 64 (even), 31.75 -> 32
    assert_eq!(sum, 64 - 127 + 32);
}

#[test]
fn act_quant_all_zero_uses_epsilon() {
    let x = [0.0f32; 8];
    let mut q = [1i8; 8];
    let (s, sum) = act_quant_i8(&x, &mut q);
    assert_eq!(s, (127.0f64 / 1e-5) as f32);
    assert_eq!(q, [0; 8]);
    assert_eq!(sum, 0);
}

#[test]
fn act_quant_empty() {
    let (s, sum) = act_quant_i8(&[], &mut []);
    assert_eq!(sum, 0);
    assert!(s > 0.0);
}

#[test]
fn gemv_empty_and_one_block() {
    let mut out: [i32; 0] = [];
    i2s_gemv(&[], 0, 0, &[], &mut out);
    let w: Vec<i8> = (0..128).map(|i| (i % 3) as i8 - 1).collect();
    let q: Vec<i8> = (0..128).map(|i| (i as i8).wrapping_mul(3)).collect();
    let p = packed(&w);
    let mut o = [0i32; 1];
    i2s_gemv(&p, 128, 0, &q, &mut o);
    let expect: i32 = w.iter().zip(&q).map(|(&a, &b)| a as i32 * b as i32).sum();
    assert_eq!(o[0], expect);
}

#[test]
fn gemv_saturated_does_not_wrap() {
    // bitnet.cpp's AVX2 path returns the equivalent of -2080.25 here; exact math gives 127*4096.
    let k = 4096;
    let w = vec![1i8; k];
    let q = vec![127i8; k];
    let p = packed(&w);
    let mut o = [0i32; 1];
    i2s_gemv(&p, k, 0, &q, &mut o);
    assert_eq!(o[0], 127 * 4096);
    let qn = vec![-128i8; k];
    let wn = vec![-1i8; k];
    let pn = packed(&wn);
    i2s_gemv(&pn, k, 0, &qn, &mut o);
    assert_eq!(o[0], 128 * 4096);
}

#[test]
fn gemv_all_values_and_rows() {
    for val in [-1i8, 0, 1] {
        let k = 256;
        let m = 3;
        let w = vec![val; k * m];
        let q: Vec<i8> = (0..k).map(|i| (i as i32 - 128) as i8).collect();
        let p = packed(&w);
        let mut o = [0i32; 3];
        i2s_gemv(&p, k, 0, &q, &mut o);
        let s: i32 = q.iter().map(|&v| v as i32).sum();
        assert_eq!(o, [val as i32 * s; 3]);
    }
}

#[test]
fn gemv_tail_rows_not_block_aligned() {
    // k = 160: rows straddle blocks; the flat indexing must still hold.
    let k = 160;
    let m = 5;
    let w: Vec<i8> = (0..k * m).map(|i| ((i * 5 + i / 7) % 3) as i8 - 1).collect();
    let q: Vec<i8> = (0..k).map(|i| ((i * 37) % 255) as i32 as i8).collect();
    let p = packed(&w);
    let mut all = vec![0i32; m];
    i2s_gemv(&p, k, 0, &q, &mut all);
    for r in 0..m {
        let e: i32 = (0..k).map(|c| w[r * k + c] as i32 * q[c] as i32).sum();
        assert_eq!(all[r], e, "row {r}");
        let mut one = [0i32; 1];
        i2s_gemv(&p, k, r, &q, &mut one);
        assert_eq!(one[0], e);
    }
}

#[test]
fn gemm_matches_gemv_per_token() {
    let k = 384;
    let m = 7;
    let n = 5;
    let w: Vec<i8> = (0..k * m).map(|i| ((i * 13 + 5) % 3) as i8 - 1).collect();
    let q: Vec<i8> = (0..k * n).map(|i| ((i * 101 + 7) % 256) as u8 as i8).collect();
    let p = packed(&w);
    let mut out = vec![0i32; m * n];
    i2s_gemm(&p, k, 0, &q, n, &mut out);
    for t in 0..n {
        let mut o = vec![0i32; m];
        i2s_gemv(&p, k, 0, &q[t * k..(t + 1) * k], &mut o);
        for r in 0..m {
            assert_eq!(out[r * n + t], o[r]);
        }
    }
}

#[test]
fn f16_round_trip_and_gemv() {
    assert_eq!(f16_to_f32(f32_to_f16(1.5)), 1.5);
    assert_eq!(f32_to_f16(65504.0), 0x7bff);
    let k = 40;
    let w: Vec<u16> = (0..k * 2).map(|i| f32_to_f16(i as f32 * 0.25 - 3.0)).collect();
    let x: Vec<f32> = (0..k).map(|i| 1.0 / (i as f32 + 1.0)).collect();
    let mut out = [0f32; 2];
    f16_gemv(&w, k, 0, &x, &mut out);
    for r in 0..2 {
        let exact: f64 = (0..k).map(|c| f16_to_f32(w[r * k + c]) as f64 * x[c] as f64).sum();
        assert!((out[r] as f64 - exact).abs() < 1e-4, "{} vs {}", out[r], exact);
    }
}

#[test]
fn tl1_gemv_equals_i2s_for_the_same_weights() {
    use crate::formats::tl1::{self, Tiling};
    let (m, k) = (64, 256);
    let w: Vec<i8> = (0..m * k).map(|i| ((i * 11 + i / 5) % 3) as i8 - 1).collect();
    let x: Vec<f32> = (0..k).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013).collect();
    let mut qi = vec![0i8; k];
    let (s, _) = act_quant_i8(&x, &mut qi);
    let mut qt = vec![0i8; k];
    let st = tl1_act_quant(&x, &mut qt);
    assert_eq!((qt.clone(), st.to_bits()), (qi.clone(), s.to_bits()));
    let t = Tiling { big_m: 64, big_k: 128, bm: 32 };
    let mut pt = vec![0u8; tl1::packed_bytes(m, k)];
    tl1::pack(&w, m, k, t, &mut pt).expect("tiling fits");
    let pi = packed(&w);
    let mut a = vec![0i32; m - 3];
    let mut b = vec![0i32; m - 3];
    tl1_gemv(&pt, m, k, t, 3, &qt, &mut a).expect("tiling fits");
    i2s_gemv(&pi, k, 3, &qi, &mut b);
    assert_eq!(a, b);
    assert!(tl1_gemv(&pt, m, k, Tiling { big_m: 48, big_k: 128, bm: 32 }, 0, &qt, &mut a).is_err());
}

#[test]
fn tl1_act_quant_has_no_epsilon() {
    // All |x| < 1e-5: I2_S uses max = 1e-5, TL1 uses the real max (q reaches ±127).
    let x = [1e-7f32, -2e-7, 0.0];
    let mut q = [0i8; 3];
    let s = tl1_act_quant(&x, &mut q);
    assert_eq!(q, [64, -127, 0]); // 63.5 -> 64 (half to even)
    assert_eq!(s, 127.0f32 / 2e-7);
    let mut qz = [5i8; 2];
    tl1_act_quant(&[0.0, 0.0], &mut qz);
    assert_eq!(qz, [0, 0]);
}
