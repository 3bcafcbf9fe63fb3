//! Runs one kernel `reps` times on a model-shaped matrix, for guest instruction counting under
//! QEMU (`count-insns.sh` runs it with two `reps` values and divides the difference).
//!
//! ```text
//! insns <kernel> <K> <M> <reps>
//!   kernel: reference | neon | dotprod | tl1-format | f16-reference | f16-neon
//! ```
//! `tl1-format` runs the NEON TL1 lookup-table kernel on TL1-packed weights (tiling BM = 64 or
//! 128, BK = 128, bm = 32; the instruction count per weight does not depend on the tile sizes
//! beyond the per-tile widening). Prints a checksum so nothing is optimised away.

use std::hint::black_box;

use tern_kernels::{CpuFeatures, KernelSet, Tier, reference};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: insns <kernel> <K> <M> <reps>");
        std::process::exit(2);
    }
    let kernel = a[1].as_str();
    let k: usize = a[2].parse().expect("K");
    let m: usize = a[3].parse().expect("M");
    let reps: usize = a[4].parse().expect("reps");
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let q: Vec<i8> = (0..k).map(|_| rnd() as u8 as i8).collect();
    let f = CpuFeatures::detect();
    let mut check = 0i64;
    match kernel {
        "f16-reference" | "f16-neon" => {
            let tier = if kernel == "f16-neon" { Tier::Neon } else { Tier::Reference };
            let ks = KernelSet::for_tier(f, tier).expect("tier available");
            let w: Vec<u16> = (0..k * m).map(|_| 0x3000 | (rnd() as u16 & 0x0fff)).collect();
            let x: Vec<f32> = q.iter().map(|&v| v as f32 * 0.01).collect();
            let mut out = vec![0f32; m];
            for _ in 0..reps {
                (ks.f16_gemv)(black_box(&w), k, 0, black_box(&x), &mut out);
                check += out[m / 2] as i64;
            }
        }
        "tl1-format" => tl1(k, m, reps, &q, &mut rnd, &mut check),
        _ => {
            let tier = match kernel {
                "reference" => Tier::Reference,
                "neon" => Tier::Neon,
                "dotprod" => Tier::Dotprod,
                other => panic!("unknown kernel {other}"),
            };
            let ks = KernelSet::for_tier(f, tier).expect("tier available on this CPU");
            let w: Vec<u8> = (0..k * m / 4)
                .map(|_| {
                    let r = rnd();
                    (0..4).fold(0u8, |b, i| b << 2 | ((r >> (8 * i)) % 3) as u8)
                })
                .collect();
            let mut out = vec![0i32; m];
            for _ in 0..reps {
                (ks.i2s_gemv)(black_box(&w), k, 0, black_box(&q), &mut out);
                check += out.iter().map(|&v| v as i64).sum::<i64>();
            }
        }
    }
    let _ = reference::F16_LANES;
    println!("{kernel} k={k} m={m} reps={reps} check={check}");
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
fn tl1(k: usize, m: usize, reps: usize, q: &[i8], rnd: &mut impl FnMut() -> u64, check: &mut i64) {
    use tern_kernels::formats::tl1::{self, Tiling};
    let t = Tiling { big_m: if m.is_multiple_of(128) { 128 } else { 64 }, big_k: 128, bm: 32 };
    let w: Vec<i8> = (0..k * m).map(|_| (rnd() % 3) as i8 - 1).collect();
    let mut p = vec![0u8; tl1::packed_bytes(m, k)];
    tl1::pack(&w, m, k, t, &mut p).expect("tiling fits");
    drop(w);
    let mut lut = vec![[0u8; 32]; k / 2];
    let mut out = vec![0i32; m];
    for _ in 0..reps {
        tern_kernels::neon_tl1::tl1_gemv(
            black_box(&p),
            m,
            k,
            t,
            0,
            black_box(q),
            &mut lut,
            &mut out,
        )
        .expect("tiling fits");
        *check += out.iter().map(|&v| v as i64).sum::<i64>();
    }
}

#[cfg(not(all(target_arch = "aarch64", target_feature = "neon")))]
fn tl1(_: usize, _: usize, _: usize, _: &[i8], _: &mut impl FnMut() -> u64, _: &mut i64) {
    panic!("tl1-format needs aarch64 NEON");
}
