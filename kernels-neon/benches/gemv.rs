//! Criterion benches of every kernel tier this CPU runs, on BitNet-b1.58-2B-4T shapes.
//!
//! One group per op and shape, one `BenchmarkId` per kernel (tiers side by side): the GEMV group
//! uses each set's kernel name (`info.name`), the other groups the tier name.
//! GEMV is memory-bound, so throughput is `Throughput::Bytes(weight bytes streamed)` and criterion
//! reports GB/s of weights. The GEMM group reports the same bytes per call (each weight byte is
//! used for `N_TOKENS` tokens). Shapes are `K × M` (`ne0 = K` in, `ne1 = M` out).
//!
//! ```text
//! cargo bench -p tern-kernels --features std --bench gemv -- --warm-up-time 0.5 --measurement-time 2
//! ```
//! (`std` gives run-time CPU detection; without it only compile-time features are used.)
//! QEMU timings mean nothing: on aarch64, run the bench binary on the board.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tern_kernels::{CpuFeatures, KernelSet, Tier};

/// Ternary matmul shapes of 2B4T: q/o, k/v, gate/up, down.
const SHAPES: &[(usize, usize)] = &[(2560, 2560), (2560, 640), (2560, 6912), (6912, 2560)];
/// LM-head rows benchmarked (a slice of the 128256-row tied embedding; 210 MB of f16).
const HEAD_ROWS: usize = 40_960;
/// Tokens per GEMM call (prefill batch).
const N_TOKENS: usize = 8;

fn tiers() -> Vec<KernelSet> {
    let f = CpuFeatures::detect();
    Tier::ALL.iter().filter_map(|&t| KernelSet::for_tier(f, t)).collect()
}

fn rng_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// Random valid I2_S codes (0..=2 in every 2-bit field).
fn i2s_weights(k: usize, m: usize) -> Vec<u8> {
    rng_bytes(k * m / 4, (k * m) as u64)
        .into_iter()
        .map(|b| {
            let f = |c: u8| if c == 3 { 1 } else { c };
            (f(b >> 6) << 6) | (f((b >> 4) & 3) << 4) | (f((b >> 2) & 3) << 2) | f(b & 3)
        })
        .collect()
}

fn bench_i2s(c: &mut Criterion) {
    let sets = tiers();
    for &(k, m) in SHAPES {
        let w = i2s_weights(k, m);
        let q: Vec<i8> = rng_bytes(k * N_TOKENS, 7).into_iter().map(|b| b as i8).collect();
        let mut g = c.benchmark_group(format!("i2s_gemv/{k}x{m}"));
        g.throughput(Throughput::Bytes((k * m / 4) as u64));
        for ks in &sets {
            let mut out = vec![0i32; m];
            g.bench_with_input(BenchmarkId::new(ks.info.name, ""), &ks, |b, ks| {
                b.iter(|| (ks.i2s_gemv)(black_box(&w), k, 0, black_box(&q[..k]), &mut out))
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("i2s_gemm{N_TOKENS}/{k}x{m}"));
        g.throughput(Throughput::Bytes((k * m / 4) as u64));
        for ks in &sets {
            if ks.info.tier == Tier::Reference {
                continue; // minutes per iteration set; the GEMV group shows its speed
            }
            let mut out = vec![0i32; m * N_TOKENS];
            g.bench_with_input(BenchmarkId::new(ks.info.tier.name(), ""), &ks, |b, ks| {
                b.iter(|| (ks.i2s_gemm)(black_box(&w), k, 0, black_box(&q), N_TOKENS, &mut out))
            });
        }
        g.finish();
    }
}

fn bench_act_quant(c: &mut Criterion) {
    let sets = tiers();
    for k in [2560usize, 6912] {
        let x: Vec<f32> = rng_bytes(k, 3).into_iter().map(|b| (b as f32 - 127.5) * 0.037).collect();
        let mut g = c.benchmark_group(format!("act_quant/{k}"));
        g.throughput(Throughput::Bytes((k * 4) as u64));
        for ks in &sets {
            let mut q = vec![0i8; k];
            g.bench_with_input(BenchmarkId::new(ks.info.tier.name(), ""), &ks, |b, ks| {
                b.iter(|| (ks.act_quant)(black_box(&x), &mut q))
            });
        }
        g.finish();
    }
}

fn bench_f16_head(c: &mut Criterion) {
    let sets = tiers();
    let k = 2560;
    let m = HEAD_ROWS;
    let w: Vec<u16> = rng_bytes(k * m, 11)
        .chunks_exact(1)
        .enumerate()
        .map(|(i, b)| 0x3000 | ((b[0] as u16) << 2) | (i as u16 & 3) | ((b[0] as u16 & 1) << 15))
        .collect();
    let x: Vec<f32> = rng_bytes(k, 5).into_iter().map(|b| (b as f32 - 127.5) * 0.01).collect();
    let mut g = c.benchmark_group(format!("f16_gemv/{k}x{m}"));
    g.throughput(Throughput::Bytes((k * m * 2) as u64));
    g.sample_size(10);
    for ks in &sets {
        let mut out = vec![0f32; m];
        g.bench_with_input(BenchmarkId::new(ks.info.tier.name(), ""), &ks, |b, ks| {
            b.iter(|| (ks.f16_gemv)(black_box(&w), k, 0, black_box(&x), &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_i2s, bench_act_quant, bench_f16_head);
criterion_main!(benches);
