//! x86_64 kernel tiers: AVX2 (+FMA, F16C) and AVX-512 VNNI, to make development hosts fast.
//!
//! Orientation: implements the `fn` signatures of [`crate::dispatch`] with the same results as
//! [`crate::reference`]; `avx2::plug` / `vnni::plug` install them into a [`crate::KernelSet`].
//! `unsafe` in this crate lives only here and in `aarch64/`.

pub(crate) mod avx2;
pub(crate) mod vnni;
