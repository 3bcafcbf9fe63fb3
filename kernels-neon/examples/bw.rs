//! Single-thread GB/s of every tier's GEMV kernels with the weights hot in cache and cold from
//! DRAM, next to a plain streaming read of as many bytes (the decode ceiling), plus the GEMM's
//! weight throughput on a prefill batch.
//!
//! ```text
//! cargo run --release -p tern-kernels --features std --example bw [MiB] [threads]
//! ```
//! Cold: one pass over `MiB` (default 512) of I2_S as 6912 × 2560 tensors (the FFN's gate/up
//! shape, each in the set's block order) or of 2560-wide f16 rows. A shared or virtual machine's
//! bandwidth drifts by tens of percent within seconds, so the cold columns come from
//! [`ROUNDS`] rounds that each read the streaming buffer, then the I2_S tensors, then the f16
//! rows: each cell is the median GB/s and, in brackets, the median of each round's ratio to the
//! stream read just before it. Hot: an eighth of such a tensor (553 KB of I2_S) repeated, best
//! of 50. Timings are only meaningful natively (not under QEMU).

use std::hint::black_box;
use std::time::Instant;

use tern_kernels::formats::i2s;
use tern_kernels::{CpuFeatures, KernelSet, Tier};

fn xorshift(n: usize, seed: u64) -> impl Iterator<Item = u64> {
    let mut s = seed | 1;
    (0..n).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    })
}

/// Random valid I2_S bytes (every 2-bit code in 0..=2).
fn i2s_bytes(n: usize) -> Vec<u8> {
    let f = |c: u8| if c == 3 { 1 } else { c };
    xorshift(n, 99)
        .map(|v| {
            let b = v as u8;
            (f(b >> 6) << 6) | (f((b >> 4) & 3) << 4) | (f((b >> 2) & 3) << 2) | f(b & 3)
        })
        .collect()
}

/// `v[off..]` with `off` chosen so the slice starts on a 64-byte boundary, like the runtime's
/// tensors (GGUF data aligned to 32 in a page-aligned mapping) and arena buffers (64).
fn aligned<T>(v: &[T]) -> &[T] {
    let off = v.as_ptr().align_offset(64);
    &v[off..]
}

/// Rounds of the cold measurements (module docs).
const ROUNDS: usize = 7;

/// Seconds `f` takes once.
fn once(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// The median of `v` (sorted in place; `v` not empty).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Shortest of `reps` runs, seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps).map(|_| once(&mut f)).fold(f64::MAX, f64::min)
}

/// Runs `f(0..threads)` on that many threads (the caller included) and waits.
fn par(threads: usize, f: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for i in 1..threads {
            let f = &f;
            s.spawn(move || f(i));
        }
        f(0);
    });
}

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(512);
    // Threads of the cold runs (each takes an equal share of every tensor's rows, as decode's
    // tasks do, without synchronising between tensors).
    let threads: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let big = mib << 20;
    let f = CpuFeatures::detect();
    let sets: Vec<KernelSet> =
        Tier::ALL.iter().filter_map(|&t| KernelSet::for_tier(f, t)).collect();
    let k = 2560;
    let (hot_rows, n_tok) = (6912 / 8, 64);

    let words: Vec<u64> = xorshift(big / 8, 5).collect();
    // Streaming read of the whole buffer with `threads` threads, GB/s.
    let stream = || {
        let t = once(|| {
            par(threads, |i| {
                let per = words.len() / threads;
                let mut a = [0u64; 8];
                for c in words[i * per..(i + 1) * per].chunks_exact(8) {
                    for (x, y) in a.iter_mut().zip(c) {
                        *x = x.wrapping_add(*y);
                    }
                }
                black_box(a);
            })
        });
        big as f64 / t / 1e9
    };
    stream(); // a first pass faults the buffer's pages in; it is not counted
    let mut streams = Vec::new();
    println!("| kernel | i2s cold GB/s | i2s hot | f16 cold | f16 hot | gemm x{n_tok} hot |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");

    let w_pub = i2s_bytes(big);
    let mut w_buf = vec![0u8; big + 64];
    let m = 6912;
    let tensor = m * k / 4;
    let n_tensors = big / tensor;
    let rows = m;
    let q_buf: Vec<i8> = xorshift(k * n_tok + 64, 7).map(|v| v as i8).collect();
    let q = &aligned(&q_buf)[..k * n_tok];
    let h_buf: Vec<u16> = xorshift(big / 2 + 32, 3).map(|v| v as u16 & 0x3bff).collect();
    let h = aligned(&h_buf);
    let hrows = big / 2 / k;
    let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut out = vec![0i32; rows.max(hot_rows * n_tok)];
    let hot = hot_rows * k / 4;
    let mut fo = vec![0f32; hrows];
    for s in &sets {
        if s.info.tier == Tier::Reference {
            continue;
        }
        let gb = |bytes: usize, secs: f64| bytes as f64 / secs / 1e9;
        let (g, gm, f16) = (s.i2s_gemv, s.i2s_gemm, s.f16_gemv);
        // The set's block order; the hot tensor is the first `hot_rows` rows on their own.
        let off = w_buf.as_ptr().align_offset(64);
        let w = &mut w_buf[off..off + n_tensors * tensor];
        for (d, src) in w.chunks_exact_mut(tensor).zip(w_pub.chunks_exact(tensor)) {
            i2s::relayout(src, m, k, s.i2s_layout, d);
        }
        let mut w_hot = vec![0u8; hot + 64];
        let off = w_hot.as_ptr().align_offset(64);
        let w_hot = &mut w_hot[off..off + hot];
        i2s::relayout(&w_pub[..hot], hot_rows, k, s.i2s_layout, w_hot);
        let (w, w_hot): (&[u8], &[u8]) = (w, w_hot);
        let (mut ic, mut ir, mut fc, mut fr) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let st = stream();
            streams.push(st);
            let i2s = gb(
                n_tensors * tensor,
                once(|| {
                    par(threads, |i| {
                        let per = rows / threads;
                        let mut o = vec![0i32; per];
                        for wt in w.chunks_exact(tensor) {
                            g(wt, k, i * per, &q[..k], black_box(&mut o));
                        }
                    })
                }),
            );
            let f16c = gb(
                hrows * k * 2,
                once(|| {
                    par(threads, |i| {
                        let per = hrows / threads;
                        let mut o = vec![0f32; per];
                        f16(h, k, i * per, &x, black_box(&mut o));
                    })
                }),
            );
            ic.push(i2s);
            ir.push(i2s / st);
            fc.push(f16c);
            fr.push(f16c / st);
        }
        let ih = gb(
            8 * hot,
            best(50, || {
                for _ in 0..8 {
                    g(w_hot, k, 0, &q[..k], black_box(&mut out[..hot_rows]));
                }
            }),
        );
        let fh = gb(
            8 * 128 * k * 2,
            best(50, || {
                for _ in 0..8 {
                    f16(h, k, 0, &x, black_box(&mut fo[..128]));
                }
            }),
        );
        let mh = gb(
            hot,
            best(10, || gm(w_hot, k, 0, q, n_tok, black_box(&mut out[..hot_rows * n_tok]))),
        );
        println!(
            "| {} | {:.2} ({:.0} %) | {ih:.2} | {:.2} ({:.0} %) | {fh:.2} | {mh:.2} |",
            s.info.name,
            median(&mut ic),
            100.0 * median(&mut ir),
            median(&mut fc),
            100.0 * median(&mut fr),
        );
    }
    println!(
        "streaming read {:.2} GB/s (median of the {} reads above; {threads} thread(s) for the cold columns)",
        median(&mut streams),
        streams.len()
    );
}
