//! ARMv8.0 NEON tier (Pi 3 / Zero 2 W: Cortex-A53; Pi 4: Cortex-A72).
//!
//! Orientation: implements [`crate::reference::i2s_gemv`], [`crate::reference::i2s_gemm`],
//! [`crate::reference::act_quant_i8`] and [`crate::reference::f16_gemv`] with the same results
//! (integers bit-exact, f32 in the same order, so bit-identical too).
//!
//! NEON is a baseline feature of every aarch64 target this module is compiled for
//! (`cfg(target_feature = "neon")`), so its kernels need no run-time detection.

mod act_quant;
mod f16;
pub(crate) mod i2s;
pub mod tl1;

use crate::dispatch::{KernelInfo, KernelSet, Quality, Tier};

/// Name of the NEON I2_S GEMV kernel.
pub(crate) const NAME: &str = "neon_i2s_gemv_4x1";

/// Installs the NEON kernels into `k`.
pub(crate) fn plug(k: &mut KernelSet) {
    k.i2s_gemv = i2s::i2s_gemv;
    k.i2s_gemm = i2s::i2s_gemm;
    k.act_quant = act_quant::act_quant_i8;
    k.f16_gemv = f16::f16_gemv;
    k.f16_gemv_hx = f16::f16_gemv_hx;
    k.f16_wsum = f16::f16_wsum;
    k.tl1_tables = tl1::build_tables;
    k.tl1_gemv = tl1::tl1_gemv_tables;
    k.info = KernelInfo { tier: Tier::Neon, name: NAME, quality: Quality::Simd };
}

/// Name of the TL1 lookup-table GEMV.
pub(crate) const TL1_NAME: &str = "tl1_tl1_gemv_lut";

/// Installs the NEON kernels, labelled as the TL1 tier: the runtime then computes TL1-format
/// layers in place with [`tl1::tl1_gemv_tables`] instead of repacking them into I2_S.
pub(crate) fn plug_tl1(k: &mut KernelSet) {
    plug(k);
    k.info = KernelInfo { tier: Tier::Tl1, name: TL1_NAME, quality: Quality::Lut };
}
