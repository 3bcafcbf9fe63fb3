//! Equivalence-test support: case tables, input generators, checkers and the
//! [`kernel_equivalence_tests!`](crate::kernel_equivalence_tests) macro (memchr / tract style).
//!
//! Every check runs one tier's kernel and the reference on the same inputs and `assert_eq!`s the
//! results: integer outputs exactly, f32 outputs on their bits (the f16 GEMV keeps the
//! reference's order, so even its floats are identical). A tier the running CPU cannot execute is
//! skipped (the test returns early), never failed.
//!
//! Exported to other crates' tests with the `testing` feature.

use std::vec;
use std::vec::Vec;

use crate::dispatch::{CpuFeatures, KernelSet, Tier};
use crate::formats::i2s;
use crate::reference;

/// Row lengths `K` exercised by every I2_S test (multiples of 128; the model's are 2560 and 6912).
pub const K_BLOCKED: &[usize] = &[128, 256, 384, 2560, 6912];
/// Row lengths that are not multiples of 128 (kernels fall back to the reference).
pub const K_UNBLOCKED: &[usize] = &[1, 31, 100, 160, 200];
/// Model shapes `(K = ne0, M = ne1)` of BitNet-b1.58-2B-4T's ternary matmuls.
pub const MODEL_SHAPES: &[(usize, usize)] =
    &[(2560, 2560), (2560, 640), (2560, 6912), (6912, 2560)];
/// Row counts per call: tiles (4), tile remainders (1..3, 5..7) and more.
pub const ROW_COUNTS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 13];
/// Token counts for GEMM: below, at and above the 4-token tile and the 64-token Σq chunk.
pub const TOKEN_COUNTS: &[usize] = &[1, 2, 3, 4, 5, 8, 9, 67];
/// Lengths for activation quantisation and the f16 GEMV (tails of 4, 8, 16 and 32 lanes).
pub const LENGTHS: &[usize] = &[0, 1, 3, 4, 15, 16, 17, 31, 32, 33, 40, 64, 100, 127, 2560];

/// How weights / activations are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Pseudo-random from a seed.
    Random(u64),
    /// Every value the same.
    Const(i8),
    /// `−1, 0, +1, −1, …` (weights) or `127, −128, …` (activations).
    Alternating,
}

/// Value cases `(weights, activations)`: saturation (±127/−128 against all ±1), constant weights,
/// all-zero activations, alternating and random.
pub const VALUE_CASES: &[(Fill, Fill)] = &[
    (Fill::Const(1), Fill::Const(127)),
    (Fill::Const(1), Fill::Const(-128)),
    (Fill::Const(-1), Fill::Const(-128)),
    (Fill::Const(-1), Fill::Const(127)),
    (Fill::Const(0), Fill::Random(7)),
    (Fill::Random(3), Fill::Const(0)),
    (Fill::Alternating, Fill::Alternating),
    (Fill::Random(11), Fill::Random(12)),
    (Fill::Random(21), Fill::Alternating),
];

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `n` ternary weights.
pub fn weights(fill: Fill, n: usize) -> Vec<i8> {
    match fill {
        Fill::Random(s) => {
            let mut r = Rng::new(s);
            (0..n).map(|_| r.below(3) as i8 - 1).collect()
        }
        Fill::Const(v) => vec![v.signum(); n],
        Fill::Alternating => (0..n).map(|i| (i % 3) as i8 - 1).collect(),
    }
}

/// `n` int8 activations.
pub fn activations(fill: Fill, n: usize) -> Vec<i8> {
    match fill {
        Fill::Random(s) => {
            let mut r = Rng::new(s);
            (0..n).map(|_| r.next_u64() as u8 as i8).collect()
        }
        Fill::Const(v) => vec![v; n],
        Fill::Alternating => (0..n).map(|i| if i % 2 == 0 { 127 } else { -128 }).collect(),
    }
}

/// Packs `w` (row-major, `k` per row) into I2_S bytes.
pub fn pack_i2s(w: &[i8]) -> Vec<u8> {
    let mut p = vec![0u8; i2s::pack_len(w.len())];
    i2s::pack(w, &mut p);
    p
}

/// The published tensor `w` (row length `k`, whole rows) in the layout `ks` reads
/// ([`KernelSet::i2s_layout`]); a plain copy for the published layout or `k % 128 != 0`.
pub fn in_layout(ks: &KernelSet, w: &[u8], k: usize) -> Vec<u8> {
    let layout = ks.i2s_layout.of(k);
    if layout == i2s::Layout::Published {
        return w.to_vec();
    }
    let m = w.len() * 4 / k;
    assert_eq!(w.len(), m * k / 4, "in_layout: w is not whole rows");
    let mut d = vec![0u8; w.len()];
    i2s::relayout(w, m, k, layout, &mut d);
    d
}

/// The scalar GEMV reading the layout `ks` reads.
fn ref_gemv(ks: &KernelSet) -> crate::dispatch::I2sGemvFn {
    reference::i2s_kernels_for(ks.i2s_layout).0
}

/// The scalar GEMM reading the layout `ks` reads.
fn ref_gemm(ks: &KernelSet) -> crate::dispatch::I2sGemmFn {
    reference::i2s_kernels_for(ks.i2s_layout).1
}

/// A copy of `v` that starts at an odd byte address (one byte past an aligned allocation).
/// Returns the backing buffer; take `&buf[1..]`.
pub fn misaligned_bytes(v: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(v.len() + 1);
    b.push(0xA5);
    b.extend_from_slice(v);
    b
}

/// Features of the running CPU (run-time detection: `testing` implies `std`).
pub fn detect() -> CpuFeatures {
    CpuFeatures::detect()
}

/// The kernel set of exactly `tier` on this CPU, or `None` (the caller skips).
pub fn set_for(tier: Tier) -> Option<KernelSet> {
    let k = KernelSet::for_tier(detect(), tier);
    if k.is_none() {
        std::eprintln!("skipping: tier {} not available on this CPU/build", tier.name());
    }
    k
}

/// One GEMV comparison: rows `row0 .. row0 + rows` of a `k × m` tensor, optionally with weights
/// and activations starting at odd addresses.
pub fn check_gemv_case(
    ks: &KernelSet,
    k: usize,
    m: usize,
    row0: usize,
    rows: usize,
    (wf, qf): (Fill, Fill),
    misaligned: bool,
) {
    let w = in_layout(ks, &pack_i2s(&weights(wf, k * m)), k);
    let q = activations(qf, k);
    let (wb, qb);
    let (w, q): (&[u8], &[i8]) = if misaligned {
        wb = misaligned_bytes(&w);
        qb = {
            let mut v = vec![0i8; q.len() + 1];
            v[1..].copy_from_slice(&q);
            v
        };
        (&wb[1..], &qb[1..])
    } else {
        (&w, &q)
    };
    let mut want = vec![0i32; rows];
    let mut got = vec![i32::MIN; rows];
    reference::i2s_gemv(&pack_i2s(&weights(wf, k * m)), k, row0, q, &mut want);
    (ks.i2s_gemv)(w, k, row0, q, &mut got);
    let mut same_layout = vec![0i32; rows];
    ref_gemv(ks)(w, k, row0, q, &mut same_layout);
    assert_eq!(same_layout, want, "reference over {:?}", ks.i2s_layout);
    assert_eq!(
        got, want,
        "{}: i2s_gemv k={k} m={m} row0={row0} rows={rows} fill={wf:?}/{qf:?} misaligned={misaligned}",
        ks.info.name
    );
}

/// One GEMM comparison over `n` tokens.
pub fn check_gemm_case(
    ks: &KernelSet,
    k: usize,
    m: usize,
    row0: usize,
    rows: usize,
    n: usize,
    (wf, qf): (Fill, Fill),
) {
    let w = pack_i2s(&weights(wf, k * m));
    let wl = in_layout(ks, &w, k);
    let q = activations(qf, k * n);
    let mut want = vec![0i32; rows * n];
    let mut got = vec![i32::MIN; rows * n];
    reference::i2s_gemm(&w, k, row0, &q, n, &mut want);
    (ks.i2s_gemm)(&wl, k, row0, &q, n, &mut got);
    let mut same_layout = vec![0i32; rows * n];
    ref_gemm(ks)(&wl, k, row0, &q, n, &mut same_layout);
    assert_eq!(same_layout, want, "reference over {:?}", ks.i2s_layout);
    assert_eq!(
        got, want,
        "{}: i2s_gemm k={k} m={m} row0={row0} rows={rows} n={n} fill={wf:?}/{qf:?}",
        ks.info.name
    );
}

/// GEMV over every `K`, row count, a row offset, value case, and misaligned buffers.
pub fn check_gemv_shapes(ks: &KernelSet) {
    for &k in K_BLOCKED.iter().chain(K_UNBLOCKED) {
        let m = 16;
        for &rows in ROW_COUNTS {
            for row0 in [0, 1, m - rows] {
                check_gemv_case(
                    ks,
                    k,
                    m,
                    row0,
                    rows,
                    (Fill::Random(k as u64), Fill::Random(9)),
                    false,
                );
            }
        }
        for &vc in VALUE_CASES {
            check_gemv_case(ks, k, 6, 1, 5, vc, false);
            check_gemv_case(ks, k, 6, 0, 6, vc, true);
        }
    }
    // Taller than the lane layout's 16-row groups, with a short last group (6, 12 or 9 rows, so
    // both below and above half a group): row ranges that start, end and cross inside groups.
    for &k in &[128, 640, 2560] {
        for (m, row0, rows) in [
            (70, 0, 70),
            (70, 13, 50),
            (70, 30, 4),
            (70, 31, 39),
            (70, 64, 6),
            (44, 0, 44),
            (44, 35, 9),
            (25, 0, 25),
            (25, 17, 8),
        ] {
            check_gemv_case(ks, k, m, row0, rows, (Fill::Random(3), Fill::Random(k as u64)), false);
        }
    }
}

/// GEMV on the model's shapes, rows subsampled (first, middle and last tiles with remainders).
pub fn check_gemv_model_shapes(ks: &KernelSet) {
    for &(k, m) in MODEL_SHAPES {
        let w = pack_i2s(&weights(Fill::Random((k * m) as u64), k * m));
        let wl = in_layout(ks, &w, k);
        let mut rng = Rng::new(k as u64);
        let q: Vec<i8> = (0..k).map(|_| rng.next_u64() as u8 as i8).collect();
        for (row0, rows) in [(0, 9), (m / 2 - 3, 7), (m - 6, 6), (m - 1, 1), (16, 32), (0, m)] {
            let mut want = vec![0i32; rows];
            let mut got = vec![0i32; rows];
            reference::i2s_gemv(&w, k, row0, &q, &mut want);
            (ks.i2s_gemv)(&wl, k, row0, &q, &mut got);
            assert_eq!(got, want, "{}: model shape {k}x{m} rows {row0}+{rows}", ks.info.name);
        }
    }
}

/// The worst case for narrow accumulators: all +1 (or −1) weights against all 127 (or −128),
/// long rows. bitnet.cpp's AVX2 and non-dotprod NEON paths wrap here.
pub fn check_saturation(ks: &KernelSet) {
    for k in [4096, 6912, 16384] {
        for (wv, qv) in [(1i8, 127i8), (-1, -128), (1, -128), (-1, 127)] {
            let w = in_layout(ks, &pack_i2s(&vec![wv; k * 2]), k);
            let q = vec![qv; k];
            let mut got = [0i32; 2];
            (ks.i2s_gemv)(&w, k, 0, &q, &mut got);
            let e = wv as i32 * qv as i32 * k as i32;
            assert_eq!(got, [e, e], "{}: saturated gemv k={k} w={wv} q={qv}", ks.info.name);
            let q4 = vec![qv; k * 5];
            let mut got4 = [0i32; 10];
            (ks.i2s_gemm)(&w, k, 0, &q4, 5, &mut got4);
            assert_eq!(got4, [e; 10], "{}: saturated gemm k={k} w={wv} q={qv}", ks.info.name);
        }
    }
    // The longest rows a tier's accumulators are proved for (|Σ c·q| reaches 2^30 here), and one
    // block beyond, where tiers fall back.
    for k in [1 << 22, (1 << 22) + 128] {
        for (wv, qv) in [(1i8, -128i8), (1, 127)] {
            let w = in_layout(ks, &pack_i2s(&vec![wv; k]), k);
            let q = vec![qv; k];
            let mut got = [0i32; 1];
            (ks.i2s_gemv)(&w, k, 0, &q, &mut got);
            let e = wv as i64 * qv as i64 * k as i64;
            assert_eq!(got[0] as i64, e, "{}: saturated gemv k={k} q={qv}", ks.info.name);
        }
    }
}

/// GEMM over token counts, `K`s, row offsets and value cases.
pub fn check_gemm_shapes(ks: &KernelSet) {
    for &k in &[128, 384, 2560] {
        for &n in TOKEN_COUNTS {
            check_gemm_case(ks, k, 7, 1, 5, n, (Fill::Random(n as u64), Fill::Random(k as u64)));
        }
        for &vc in VALUE_CASES {
            check_gemm_case(ks, k, 3, 0, 3, 6, vc);
        }
    }
    for &k in K_UNBLOCKED {
        check_gemm_case(ks, k, 3, 1, 2, 5, (Fill::Random(1), Fill::Random(2)));
    }
    // Across the lane layout's 16-row groups, starting and ending inside them.
    for (m, row0, rows) in [(70, 30, 38), (70, 0, 70), (70, 61, 9), (44, 0, 44), (25, 19, 6)] {
        check_gemm_case(ks, 640, m, row0, rows, 5, (Fill::Random(4), Fill::Random(5)));
    }
    // n = 0 and an empty output.
    let w = pack_i2s(&weights(Fill::Random(1), 256));
    (ks.i2s_gemm)(&w, 128, 0, &[], 0, &mut []);
    (ks.i2s_gemm)(&w, 128, 0, &activations(Fill::Random(1), 256), 2, &mut []);
}

/// Special float inputs for activation quantisation.
pub const SPECIAL_F32: &[f32] = &[
    0.0,
    -0.0,
    1e-6,
    -3e-6,
    1e-5,
    f32::MIN_POSITIVE,
    1e-40,
    0.5,
    -0.5,
    1.0,
    -1.0,
    1e30,
    -3e38,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
];

/// Compares `act_quant` bit-exactly with the reference on `x`.
pub fn check_act_quant_on(ks: &KernelSet, x: &[f32]) {
    let mut qw = vec![0i8; x.len()];
    let mut qg = vec![0x55i8; x.len()];
    let (sw, sumw) = reference::act_quant_i8(x, &mut qw);
    let (sg, sumg) = (ks.act_quant)(x, &mut qg);
    assert_eq!(sg.to_bits(), sw.to_bits(), "{}: act_quant scale, n={}", ks.info.name, x.len());
    assert_eq!(qg, qw, "{}: act_quant q, n={}", ks.info.name, x.len());
    assert_eq!(sumg, sumw, "{}: act_quant sum, n={}", ks.info.name, x.len());
}

/// Activation quantisation over lengths, scales, exact .5 ties, tiny, huge, inf and NaN inputs.
pub fn check_act_quant(ks: &KernelSet) {
    let mut rng = Rng::new(5);
    for &n in LENGTHS {
        for scale in [1e-7f32, 1e-3, 1.0, 37.0, 1e20] {
            let x: Vec<f32> = (0..n)
                .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale)
                .collect();
            check_act_quant_on(ks, &x);
            // Misaligned (odd element offset) input and output.
            if n > 0 {
                let mut xb = vec![0.0f32; n + 1];
                xb[1..].copy_from_slice(&x);
                let mut qa = vec![0i8; n + 1];
                let mut qb = vec![0i8; n];
                let ra = (ks.act_quant)(&xb[1..], &mut qa[1..]);
                let rb = reference::act_quant_i8(&x, &mut qb);
                assert_eq!((ra.0.to_bits(), ra.1), (rb.0.to_bits(), rb.1));
                assert_eq!(&qa[1..], &qb[..], "{}: misaligned act_quant n={n}", ks.info.name);
            }
        }
        // Ties: max = 127 makes s = 1, so k + 0.5 products must round half to even.
        let x: Vec<f32> =
            (0..n).map(|i| if i == 0 { 127.0 } else { (i % 200) as f32 * 0.5 - 50.0 }).collect();
        check_act_quant_on(ks, &x);
        // Specials scattered through random data (including all-zero and all-tiny vectors).
        for (si, &sp) in SPECIAL_F32.iter().enumerate() {
            let x: Vec<f32> = (0..n)
                .map(|i| if (i + si) % 7 == 0 { sp } else { (i as f32 - 20.0) * 0.01 })
                .collect();
            check_act_quant_on(ks, &x);
            check_act_quant_on(ks, &vec![sp; n]);
        }
    }
}

/// f16 GEMV bit-identical to the reference over `K`s (with 32-lane tails), rows, offsets,
/// special halves (subnormals, ±0, large) and a misaligned (odd element) weight start.
pub fn check_f16_gemv(ks: &KernelSet) {
    let mut rng = Rng::new(77);
    for &k in LENGTHS.iter().chain(&[128usize, 2560]) {
        let m = 11;
        let w: Vec<u16> = (0..k * m + 1)
            .map(|i| match i % 23 {
                0 => 0x0001, // smallest subnormal
                1 => 0x8000, // -0
                2 => 0x7bff, // 65504
                3 => 0x03ff, // largest subnormal
                _ => reference::f32_to_f16(((rng.next_u64() >> 40) as f32 / 8.0e6 - 1.0) * 4.0),
            })
            .collect();
        let x: Vec<f32> =
            (0..k + 1).map(|_| ((rng.next_u64() >> 40) as f32 / 8.0e6 - 1.0) * 3.0).collect();
        // The same activations rounded to f16, with f16 extremes mixed in, for `f16_gemv_hx`.
        let xh: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| match i % 19 {
                0 => reference::f16_to_f32(0x0001),
                1 => -65504.0,
                2 => reference::f16_to_f32(0x83ff),
                _ => reference::f16_to_f32(reference::f32_to_f16(v)),
            })
            .collect();
        for (off, (row0, rows)) in [(0, (0, m)), (1, (0, 5)), (1, (3, 8)), (0, (m - 1, 1))] {
            let wv = &w[off..off + k * m];
            for (name, f, xs) in
                [("f16_gemv", ks.f16_gemv, &x), ("f16_gemv_hx", ks.f16_gemv_hx, &xh)]
            {
                let xv = &xs[off..off + k];
                let mut want = vec![0.0f32; rows];
                let mut got = vec![f32::NAN; rows];
                reference::f16_gemv(wv, k, row0, xv, &mut want);
                f(wv, k, row0, xv, &mut got);
                let (gb, wb): (Vec<u32>, Vec<u32>) = (
                    got.iter().map(|v| v.to_bits()).collect(),
                    want.iter().map(|v| v.to_bits()).collect(),
                );
                assert_eq!(
                    gb, wb,
                    "{}: {name} k={k} row0={row0} rows={rows} off={off}",
                    ks.info.name
                );
            }
        }
    }
}

/// f16 GEMV on a slice of the LM head shape (K = 2560, some of the 128256 rows).
pub fn check_f16_head_slice(ks: &KernelSet) {
    let (k, m) = (2560, 37);
    let mut rng = Rng::new(2560);
    let w: Vec<u16> = (0..k * m)
        .map(|_| reference::f32_to_f16(((rng.next_u64() >> 40) as f32 / 8.0e6 - 1.0) * 0.1))
        .collect();
    let x: Vec<f32> =
        (0..k).map(|_| ((rng.next_u64() >> 40) as f32 / 8.0e6 - 1.0) * 30.0).collect();
    let xh: Vec<f32> = x.iter().map(|&v| reference::f16_to_f32(reference::f32_to_f16(v))).collect();
    for (f, x) in [(ks.f16_gemv, &x), (ks.f16_gemv_hx, &xh)] {
        let mut want = vec![0.0f32; m];
        let mut got = vec![0.0f32; m];
        reference::f16_gemv(&w, k, 0, x, &mut want);
        f(&w, k, 0, x, &mut got);
        let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(gb, wb, "{}: f16 head slice", ks.info.name);
    }
}

/// The weighted sum of f16 rows (attention's V accumulation) bit-identical to the reference over
/// row widths (64-column blocks, 8-column blocks, scalar tails), row counts (none included),
/// special halves (subnormals, ±0, ±65504, inf), special weights (0, −0, subnormal f32, large) and
/// a misaligned (odd element) start of `v`.
pub fn check_f16_wsum(ks: &KernelSet) {
    let mut rng = Rng::new(4096);
    for &k in LENGTHS.iter().chain(&[64usize, 72, 80, 128, 136, 256]) {
        for n in [0usize, 1, 2, 7, 33, 100] {
            let v: Vec<u16> = (0..n * k + 1)
                .map(|i| match i % 29 {
                    0 => 0x0001,
                    1 => 0x8000,
                    2 => 0xfbff,
                    3 => 0x03ff,
                    4 => 0x7bff,
                    5 if i % 58 == 5 => 0x7c00,
                    _ => reference::f32_to_f16(((rng.next_u64() >> 40) as f32 / 8.0e6 - 1.0) * 8.0),
                })
                .collect();
            let p: Vec<f32> = (0..n)
                .map(|i| match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::from_bits(1),
                    3 => 3.0e30,
                    _ => (rng.next_u64() >> 40) as f32 / 1.6e7,
                })
                .collect();
            for off in [0usize, 1] {
                let vv = &v[off..off + n * k];
                let mut want = vec![f32::NAN; k];
                let mut got = vec![f32::NAN; k];
                reference::f16_wsum(&p, vv, &mut want);
                (ks.f16_wsum)(&p, vv, &mut got);
                let (gb, wb): (Vec<u32>, Vec<u32>) = (
                    got.iter().map(|v| v.to_bits()).collect(),
                    want.iter().map(|v| v.to_bits()).collect(),
                );
                assert_eq!(gb, wb, "{}: f16_wsum k={k} n={n} off={off}", ks.info.name);
            }
        }
    }
}

/// The set's TL1 tables and in-place TL1 GEMV against the reference, over tilings the LUT
/// kernel takes and ones it hands to the reference (`BK > 252`), saturated and random values.
pub fn check_tl1(ks: &KernelSet) {
    use crate::formats::tl1::{self, Tiling};
    let cases = [
        (Tiling { big_m: 64, big_k: 64, bm: 32 }, 128, 256),
        (Tiling { big_m: 160, big_k: 64, bm: 32 }, 320, 640),
        (Tiling { big_m: 320, big_k: 128, bm: 64 }, 320, 1280),
        (Tiling { big_m: 256, big_k: 512, bm: 32 }, 256, 512),
    ];
    for (ci, &(t, m, k)) in cases.iter().enumerate() {
        for (wf, qv) in [
            (Fill::Random(ci as u64), None),
            (Fill::Const(1), Some(-128i8)),
            (Fill::Const(-1), Some(127)),
        ] {
            let w = weights(wf, m * k);
            let mut p = vec![0u8; tl1::packed_bytes(m, k)];
            tl1::pack(&w, m, k, t, &mut p).expect("tiling");
            let mut r = Rng::new(k as u64);
            let q: Vec<i8> = (0..k).map(|_| qv.unwrap_or(r.next_u64() as u8 as i8)).collect();
            let mut lut = vec![[0u8; 32]; k / 2 + 1];
            (ks.tl1_tables)(&q, &mut lut);
            let mut want_lut = vec![[0u8; 32]; k / 2 + 1];
            reference::tl1_tables(&q, &mut want_lut);
            assert_eq!(lut, want_lut, "{}: tables", ks.info.name);
            for (row0, rows) in [(0, m), (5, 40), (m - 33, 33), (17, 1)] {
                let mut want = vec![0i32; rows];
                let mut got = vec![0i32; rows];
                reference::tl1_gemv(&p, m, k, t, row0, &q, &mut want).expect("tiling");
                (ks.tl1_gemv)(&p, m, k, t, row0, &q, &lut, &mut got).expect("tiling");
                assert_eq!(got, want, "{}: case {ci} {wf:?} rows {row0}+{rows}", ks.info.name);
            }
        }
    }
    // A tiling that does not fit is an error, not a panic.
    let bad = Tiling { big_m: 48, big_k: 128, bm: 32 };
    let p = vec![0u8; tl1::packed_bytes(128, 256)];
    let q = vec![0i8; 256];
    let lut = vec![[0u8; 32]; 128];
    assert!((ks.tl1_gemv)(&p, 128, 256, bad, 0, &q, &lut, &mut [0; 4]).is_err());
}

/// Defines a module of equivalence tests of one tier against the reference:
/// `kernel_equivalence_tests!(neon, Tier::Neon);`. Each test returns early (skips) when the
/// running CPU cannot execute the tier.
#[macro_export]
macro_rules! kernel_equivalence_tests {
    ($name:ident, $tier:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testing as t;

            #[test]
            fn i2s_gemv_shapes() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_gemv_shapes(&k);
            }
            #[test]
            fn i2s_gemv_model_shapes() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_gemv_model_shapes(&k);
            }
            #[test]
            fn i2s_saturated_no_overflow() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_saturation(&k);
            }
            #[test]
            fn i2s_gemm_shapes() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_gemm_shapes(&k);
            }
            #[test]
            fn act_quant_exact() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_act_quant(&k);
            }
            #[test]
            fn tl1_gemv_exact() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_tl1(&k);
            }
            #[test]
            fn f16_gemv_bits() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_f16_gemv(&k);
                t::check_f16_head_slice(&k);
            }
            #[test]
            fn f16_wsum_bits() {
                let Some(k) = t::set_for($tier) else { return };
                t::check_f16_wsum(&k);
            }
        }
    };
}
