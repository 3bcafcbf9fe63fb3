//! ARMv8.2 dot-product tier (Pi 5: Cortex-A76): I2_S GEMV/GEMM with `sdot`.
//!
//! Orientation: implements [`crate::reference::i2s_gemv`] and [`crate::reference::i2s_gemm`];
//! activation quantisation and the f16 GEMV stay the NEON ones.
//!
//! Every function here that executes `sdot` has `#[target_feature(enable = "dotprod")]`; the safe
//! entry points are `pub(crate)` and reachable from outside only through a [`KernelSet`] built by
//! [`plug`], which `KernelSet::select` calls only when `CpuFeatures::dotprod()` is true.

pub(crate) mod i2s;
mod sdot;

use crate::dispatch::{KernelInfo, KernelSet, Quality, Tier};

/// Name of the dotprod I2_S GEMV kernel.
pub(crate) const NAME: &str = "dotprod_i2s_gemv_4x1";

/// Installs the dotprod kernels into `k` (on top of the NEON ones).
///
/// Callers must have checked `CpuFeatures::dotprod()`.
pub(crate) fn plug(k: &mut KernelSet) {
    super::neon::plug(k);
    k.i2s_gemv = i2s::i2s_gemv;
    k.i2s_gemm = i2s::i2s_gemm;
    k.info = KernelInfo { tier: Tier::Dotprod, name: NAME, quality: Quality::Extension };
}
