//! AVX-512 VNNI tier: I2_S GEMV/GEMM with `vpdpbusd` on 512-bit registers, one row per i32
//! lane, and a 512-bit f16 GEMV (the LM head); activation quantisation and the attention's f16
//! weighted sum are the AVX2 tier's.
//!
//! Orientation: x86_64 twin of the SDOT tier (`aarch64::dotprod`): a 4-way u8·i8 dot product
//! accumulating into i32 replaces `vpmaddubsw` + i16 sums + widening.
//!
//! Every function that executes AVX-512 instructions has `#[target_feature(enable =
//! "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]`. The safe entry points are `pub(crate)` and
//! reachable from outside only through a [`KernelSet`] built by [`plug`], which
//! `KernelSet::select` calls only when `CpuFeatures::vnni()` is true (a value from `detect()` or
//! `unsafe assume_x86`), which implies `CpuFeatures::avx2()`.
//!
//! Its I2_S kernels read [`crate::formats::i2s::Layout::Lanes`] (`KernelSet::i2s_layout`).

mod f16;
mod i2s;

use crate::dispatch::{KernelInfo, KernelSet, Quality, Tier};

/// Name of the VNNI I2_S GEMV kernel.
pub(crate) const NAME: &str = "vnni_i2s_gemv_lanes";

/// Installs the VNNI kernels (and the AVX2 ones they build on) into `k`. Callers must have
/// checked `CpuFeatures::vnni()`.
pub(crate) fn plug(k: &mut KernelSet) {
    super::avx2::plug(k);
    k.i2s_gemv = i2s::i2s_gemv;
    k.i2s_gemm = i2s::i2s_gemm;
    k.i2s_layout = crate::formats::i2s::Layout::Lanes;
    k.f16_gemv = f16::f16_gemv;
    k.f16_gemv_hx = f16::f16_gemv;
    k.info = KernelInfo { tier: Tier::Vnni, name: NAME, quality: Quality::Extension };
}
