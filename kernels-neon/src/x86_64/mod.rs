//! x86_64 kernel tier: AVX2 (+FMA, F16C), to make development hosts fast.
//!
//! Orientation: implements the `fn` signatures of [`crate::dispatch`] with the same results as
//! [`crate::reference`]; `avx2::plug` installs them into a [`crate::KernelSet`].
//! `unsafe` in this crate lives only here and in `aarch64/`.

pub(crate) mod avx2;
