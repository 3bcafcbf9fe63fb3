//! In-crate equivalence tests: every tier against the reference (fixed cases and proptest), and
//! the selection rules of [`crate::KernelSet::select`].

use proptest::prelude::*;
use std::vec;

use crate::dispatch::{CpuFeatures, KernelSet, Tier};
use crate::reference;
use crate::testing::{self as t, Fill};

crate::kernel_equivalence_tests!(neon, Tier::Neon);
crate::kernel_equivalence_tests!(dotprod, Tier::Dotprod);
crate::kernel_equivalence_tests!(tl1, Tier::Tl1);
crate::kernel_equivalence_tests!(avx2, Tier::Avx2);
crate::kernel_equivalence_tests!(vnni, Tier::Vnni);
crate::kernel_equivalence_tests!(reference_tier, Tier::Reference);

/// Every tier this CPU can run (reference included).
fn available() -> std::vec::Vec<KernelSet> {
    Tier::ALL.iter().filter_map(|&tier| KernelSet::for_tier(t::detect(), tier)).collect()
}

#[test]
fn reference_is_always_available_and_named() {
    let r = KernelSet::for_tier(CpuFeatures::NONE, Tier::Reference).expect("reference");
    assert_eq!(r.info.name, "reference_i2s_gemv");
    assert_eq!(KernelSet::select(CpuFeatures::NONE, None).info.tier, Tier::Reference);
    for tier in [Tier::Neon, Tier::Dotprod, Tier::Tl1, Tier::Avx2, Tier::Vnni] {
        assert!(KernelSet::for_tier(CpuFeatures::NONE, tier).is_none(), "{tier:?}");
    }
}

#[test]
fn select_prefers_the_best_and_max_tier_only_lowers() {
    let f = t::detect();
    let best = KernelSet::select(f, None);
    #[cfg(target_arch = "aarch64")]
    assert_eq!(best.info.tier, if f.dotprod() { Tier::Dotprod } else { Tier::Neon });
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        best.info.tier,
        if f.vnni() {
            Tier::Vnni
        } else if f.avx2() {
            Tier::Avx2
        } else {
            Tier::Reference
        }
    );
    assert_eq!(KernelSet::select(f, Some(Tier::Reference)).info.tier, Tier::Reference);
    let sel = |t| KernelSet::select(f, Some(t)).info.tier;
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(sel(Tier::Neon), Tier::Neon);
        // The TL1 set (NEON kernels, TL1 layers computed in place) is only chosen on request.
        assert_eq!(sel(Tier::Tl1), Tier::Tl1);
        assert_eq!(sel(Tier::Dotprod), if f.dotprod() { Tier::Dotprod } else { Tier::Neon });
    }
    #[cfg(target_arch = "x86_64")]
    {
        // Ranks compare across architectures: NEON/TL1 rank below AVX2, dotprod equals it.
        for t in [Tier::Neon, Tier::Tl1] {
            assert_eq!(sel(t), Tier::Reference, "{t:?} must not raise x86 above reference");
        }
        let avx2 = if f.avx2() { Tier::Avx2 } else { Tier::Reference };
        assert_eq!(sel(Tier::Avx2), avx2);
        assert_eq!(sel(Tier::Dotprod), avx2);
        assert_eq!(sel(Tier::Vnni), best.info.tier);
    }
    for tier in Tier::ALL {
        // `for_tier` is exact: it returns the tier asked for or nothing.
        if let Some(k) = KernelSet::for_tier(f, tier) {
            assert_eq!(k.info.tier, tier);
        }
    }
}

#[test]
fn names_follow_tier_format_op_tile() {
    for k in available() {
        let name = k.info.name;
        assert!(name.starts_with(k.info.tier.name()), "{name}");
        assert!(name.contains("_i2s_gemv") || name.contains("_tl1_gemv"), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn prop_gemv_matches_reference(blocks in 1usize..8, m in 1usize..10, r0 in 0usize..4,
                                   ws in any::<u64>(), qs in any::<u64>(), mis in any::<bool>()) {
        let k = blocks * 128;
        let row0 = r0.min(m - 1);
        for ks in available() {
            t::check_gemv_case(&ks, k, m, row0, m - row0, (Fill::Random(ws), Fill::Random(qs)), mis);
        }
    }

    #[test]
    fn prop_gemm_matches_reference(blocks in 1usize..5, m in 1usize..6, n in 1usize..10,
                                   ws in any::<u64>(), qs in any::<u64>()) {
        for ks in available() {
            t::check_gemm_case(&ks, blocks * 128, m, 0, m, n, (Fill::Random(ws), Fill::Random(qs)));
        }
    }

    #[test]
    fn prop_act_quant_matches_reference(x in proptest::collection::vec(any::<f32>(), 0..80),
                                        scale in prop_oneof![Just(1e-6f32), Just(1.0f32), Just(1e-30f32)]) {
        let xs: std::vec::Vec<f32> = x.iter().map(|v| v * scale).collect();
        for ks in available() {
            t::check_act_quant_on(&ks, &x);
            t::check_act_quant_on(&ks, &xs);
        }
    }

    #[test]
    fn prop_f16_gemv_matches_reference(k in 0usize..70, m in 1usize..6,
                                       bits in proptest::collection::vec(0u16..0x7c00, 70 * 6),
                                       xs in proptest::collection::vec(-100.0f32..100.0, 70)) {
        let w: std::vec::Vec<u16> = bits.iter().enumerate()
            .map(|(i, &b)| if i % 3 == 0 { b | 0x8000 } else { b }).collect();
        let x = &xs[..k];
        let mut want = vec![0.0f32; m];
        reference::f16_gemv(&w, k, 0, x, &mut want);
        let xh: std::vec::Vec<f32> =
            x.iter().map(|&v| reference::f16_to_f32(reference::f32_to_f16(v))).collect();
        let mut want_h = vec![0.0f32; m];
        reference::f16_gemv(&w, k, 0, &xh, &mut want_h);
        for ks in available() {
            for (f, x, want) in [(ks.f16_gemv, x, &want), (ks.f16_gemv_hx, &xh[..], &want_h)] {
                let mut got = vec![0.0f32; m];
                f(&w, k, 0, x, &mut got);
                let g: std::vec::Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let e: std::vec::Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(g, e, "{}", ks.info.name);
            }
        }
    }
}
