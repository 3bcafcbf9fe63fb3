//! aarch64 kernel tiers: ARMv8.0 NEON (Pi 3 / Zero 2 W / Pi 4), ARMv8.2 SDOT (Pi 5) and TL1 lookup
//! tables.
//!
//! Orientation: each tier implements the `fn` signatures of [`crate::dispatch`] with the same
//! results as [`crate::reference`]; `plug` functions install them into a [`crate::KernelSet`].
//! `unsafe` in this crate lives only here and in `x86_64/`.

#[cfg(target_feature = "neon")]
pub(crate) mod dotprod;
pub(crate) mod load;
#[cfg(target_feature = "neon")]
pub(crate) mod neon;
