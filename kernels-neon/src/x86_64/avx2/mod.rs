//! AVX2 tier: I2_S GEMV/GEMM (`vpmaddubsw`), activation quantisation and the f16 GEMV (F16C).
//!
//! Orientation: x86_64 twin of the NEON tier (`aarch64::neon`).
//!
//! Every function that executes AVX2/F16C instructions has `#[target_feature(enable =
//! "avx2,fma,f16c")]`. The safe entry points are `pub(crate)` and reachable from outside only
//! through a [`KernelSet`] built by [`plug`], which `KernelSet::select` calls only when
//! `CpuFeatures::avx2()` is true (a value from `detect()` or `unsafe assume`).

mod act_quant;
mod f16;
pub(crate) mod i2s;

use crate::dispatch::{KernelInfo, KernelSet, Quality, Tier};

/// Name of the AVX2 I2_S GEMV kernel.
pub(crate) const NAME: &str = "avx2_i2s_gemv_1x1";

/// Installs the AVX2 kernels into `k`. Callers must have checked `CpuFeatures::avx2()`.
pub(crate) fn plug(k: &mut KernelSet) {
    k.i2s_gemv = i2s::i2s_gemv;
    k.i2s_gemm = i2s::i2s_gemm;
    k.act_quant = act_quant::act_quant_i8;
    k.f16_gemv = f16::f16_gemv;
    k.f16_gemv_hx = f16::f16_gemv_hx;
    k.f16_wsum = f16::f16_wsum;
    k.info = KernelInfo { tier: Tier::Avx2, name: NAME, quality: Quality::Simd };
}
