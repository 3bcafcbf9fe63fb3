//! The kernel table ([`KernelSet`]) and CPU-feature detection ([`CpuFeatures`]).
//!
//! Portable first, then plug (tract): [`KernelSet::REFERENCE`] is always valid; `select` installs
//! faster tiers the detected CPU supports. `--kernel` overrides may only *lower* the tier.

use crate::formats::tl1::{PairTable, Tiling, TilingError};
use crate::reference;

/// `out[i] = Σ_k w[row0+i][k] · q[k]` (i32), for I2_S weights `w` of row length `k`.
///
/// Arguments: `(w_packed, k, row0, q, out)`. `w_packed` is the whole packed tensor (exactly
/// `m·k/4` bytes) in the set's [`KernelSet::i2s_layout`], `q.len() == k`.
pub type I2sGemvFn = fn(w: &[u8], k: usize, row0: usize, q: &[i8], out: &mut [i32]);

/// Batched I2_S: `out[i*n + t] = Σ_k w[row0+i][k] · q[t*k + k']` for `n` tokens (i32).
///
/// Arguments: `(w_packed, k, row0, q, n, out)`; `q.len() == n*k`, `out.len() == rows*n`.
pub type I2sGemmFn = fn(w: &[u8], k: usize, row0: usize, q: &[i8], n: usize, out: &mut [i32]);

/// Per-token I2_S activation quantisation (DESIGN §4): fills `q` and returns `(s, Σq)`.
pub type ActQuantFn = fn(x: &[f32], q: &mut [i8]) -> (f32, i32);

/// f16 GEMV (tied LM head): `out[i] = Σ_k f16(w[row0+i][k]) · x[k]` in the fixed order of
/// [`reference::f16_gemv`]. `w` holds the raw little-endian f16 bits of the whole tensor.
pub type F16GemvFn = fn(w: &[u16], k: usize, row0: usize, x: &[f32], out: &mut [f32]);

/// Weighted sum of f16 rows (attention's probabilities × V): `out[d] = Σ_i p[i] · f16(v[i·k +
/// d])`, `k = out.len()`, in the order of [`reference::f16_wsum`]. `v` holds `p.len()` rows of
/// raw f16 bits.
pub type F16WsumFn = fn(p: &[f32], v: &[u16], out: &mut [f32]);

/// Builds the lookup tables of every activation pair of `q` into `lut[..q.len() / 2]`, for
/// [`Tl1GemvFn`] (the same tables on every tier: [`reference::tl1_pair_table`]).
pub type Tl1TablesFn = fn(q: &[i8], lut: &mut [PairTable]);

/// TL1 GEMV over TL1-packed weights (`formats::tl1`) computed in place: `out[i] = Σ_k
/// w[row0+i][k] · q[k]` (i32) for an `m × k` tensor stored with `tiling`. `lut` holds the tables
/// of `q` built by the same set's [`Tl1TablesFn`] (the reference tier multiplies `q` instead).
/// An `Err` when `tiling` does not fit `m × k`.
pub type Tl1GemvFn = fn(
    w: &[u8],
    m: usize,
    k: usize,
    tiling: Tiling,
    row0: usize,
    q: &[i8],
    lut: &[PairTable],
    out: &mut [i32],
) -> Result<(), TilingError>;

/// How fast/specialised a tier is (tract's `Quality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// Plain scalar Rust; the specification.
    Reference,
    /// Portable SIMD baseline (NEON on aarch64, AVX2 on x86_64).
    Simd,
    /// Uses an optional ISA extension (SDOT, VNNI).
    Extension,
    /// Lookup-table kernel.
    Lut,
}

/// Kernel tiers, ordered from lowest to highest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Scalar reference.
    Reference,
    /// aarch64 ARMv8.0 NEON.
    Neon,
    /// aarch64 ARMv8.2 SDOT.
    Dotprod,
    /// aarch64 TL1 lookup tables: TL1-format weights computed in place with `vqtbl1q` lookups
    /// (not repacked to I2_S); I2_S weights with the NEON kernels.
    Tl1,
    /// x86_64 AVX2.
    Avx2,
    /// x86_64 AVX-512 VNNI (`vpdpbusd` on 256-bit registers).
    Vnni,
}

impl Tier {
    /// Every tier, in declaration order.
    pub const ALL: [Tier; 6] =
        [Tier::Reference, Tier::Neon, Tier::Dotprod, Tier::Tl1, Tier::Avx2, Tier::Vnni];

    /// The name used on the command line (`--kernel NAME`).
    pub const fn name(self) -> &'static str {
        match self {
            Tier::Reference => "reference",
            Tier::Neon => "neon",
            Tier::Dotprod => "dotprod",
            Tier::Tl1 => "tl1",
            Tier::Avx2 => "avx2",
            Tier::Vnni => "vnni",
        }
    }

    /// Parses a `--kernel` name.
    pub fn from_name(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// Metadata about a kernel set (printed by `tern info`, keyed on by benches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// Tier of the I2_S kernels.
    pub tier: Tier,
    /// Name of the GEMV kernel, `<tier>_<format>_<op>_<tile>`.
    pub name: &'static str,
    /// Quality class.
    pub quality: Quality,
}

/// CPU capabilities. Fields are private: safe code can only *detect* them, never claim them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    neon: bool,
    dotprod: bool,
    avx2: bool,
    vnni: bool,
}

impl CpuFeatures {
    /// No optional features (the reference tier only).
    pub const NONE: Self = Self { neon: false, dotprod: false, avx2: false, vnni: false };

    /// Detects the running CPU's features (std or test builds: runtime detection; otherwise
    /// compile-time cfg).
    pub fn detect() -> Self {
        #[allow(unused_mut)]
        let mut f = Self::NONE;
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        {
            f.neon = true;
        }
        #[cfg(all(target_arch = "aarch64", any(test, feature = "std")))]
        {
            f.dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        }
        #[cfg(all(
            target_arch = "aarch64",
            not(any(test, feature = "std")),
            target_feature = "dotprod"
        ))]
        {
            f.dotprod = true;
        }
        #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
        {
            f.avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c");
            f.vnni = f.avx2
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni");
        }
        #[cfg(all(
            target_arch = "x86_64",
            not(any(test, feature = "std")),
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))]
        {
            f.avx2 = true;
            f.vnni = cfg!(all(
                target_feature = "avx512f",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            ));
        }
        f
    }

    /// Claims features without detecting them (bare metal reads `ID_AA64ISAR0_EL1` itself).
    ///
    /// # Safety
    /// - The running core must implement every feature set to `true`.
    pub const unsafe fn assume(neon: bool, dotprod: bool, avx2: bool) -> Self {
        Self { neon, dotprod, avx2, vnni: false }
    }

    /// Claims x86_64 features without detecting them: AVX2 (+FMA, F16C) and AVX-512 VNNI
    /// (+F, VL; `vnni` implies `avx2`).
    ///
    /// # Safety
    /// - The running core must implement every feature set to `true`.
    pub const unsafe fn assume_x86(avx2: bool, vnni: bool) -> Self {
        Self { neon: false, dotprod: false, avx2: avx2 || vnni, vnni }
    }

    /// ARMv8.0 Advanced SIMD.
    pub const fn neon(self) -> bool {
        self.neon
    }
    /// ARMv8.2 dot product (`sdot`).
    pub const fn dotprod(self) -> bool {
        self.dotprod
    }
    /// x86_64 AVX2 + FMA + F16C.
    pub const fn avx2(self) -> bool {
        self.avx2
    }
    /// x86_64 AVX-512 VNNI + VL + F, together with [`Self::avx2`].
    pub const fn vnni(self) -> bool {
        self.vnni
    }
}

/// The table of kernels a model calls through. `Copy`, built by value, chosen once per load.
#[derive(Clone, Copy)]
pub struct KernelSet {
    /// I2_S GEMV (one token).
    pub i2s_gemv: I2sGemvFn,
    /// I2_S GEMM (a batch of tokens).
    pub i2s_gemm: I2sGemmFn,
    /// Activation quantisation for I2_S.
    pub act_quant: ActQuantFn,
    /// f16 GEMV (LM head).
    pub f16_gemv: F16GemvFn,
    /// [`Self::f16_gemv`] for an `x` whose every element is exactly an f16 value (the one-token
    /// LM-head input and Q in QK are rounded to f16, as bitnet.cpp does). f16 × f16 products are
    /// exact in f32, so a fused multiply-add rounds exactly like the multiply-then-add of the
    /// reference and tiers may use it: the same bits for such `x` (NaN payloads aside).
    pub f16_gemv_hx: F16GemvFn,
    /// Weighted sum of f16 rows (attention's V accumulation).
    pub f16_wsum: F16WsumFn,
    /// The block order [`Self::i2s_gemv`] and [`Self::i2s_gemm`] read: the runtime stores I2_S
    /// tensors this way ([`crate::formats::i2s::relayout`] at load when it is not the file's).
    /// [`crate::reference::i2s_kernels_for`] gives the scalar kernels of any layout.
    pub i2s_layout: crate::formats::i2s::Layout,
    /// Lookup tables for [`Self::tl1_gemv`].
    pub tl1_tables: Tl1TablesFn,
    /// TL1 GEMV over TL1-packed weights.
    pub tl1_gemv: Tl1GemvFn,
    /// What this set is.
    pub info: KernelInfo,
}

impl core::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelSet").field("info", &self.info).finish()
    }
}

impl KernelSet {
    /// The scalar reference tier: valid on every target.
    pub const REFERENCE: Self = Self {
        i2s_gemv: reference::i2s_gemv,
        i2s_gemm: reference::i2s_gemm,
        act_quant: reference::act_quant_i8,
        f16_gemv: reference::f16_gemv,
        f16_gemv_hx: reference::f16_gemv,
        f16_wsum: reference::f16_wsum,
        i2s_layout: crate::formats::i2s::Layout::Published,
        tl1_tables: reference::tl1_tables,
        tl1_gemv: reference::tl1_gemv_tables,
        info: KernelInfo {
            tier: Tier::Reference,
            name: "reference_i2s_gemv",
            quality: Quality::Reference,
        },
    };

    /// The best set for `features`, never above `max_tier` (when given).
    ///
    /// Priority on aarch64: dotprod > neon > tl1 > reference; on x86_64: vnni > avx2 > reference.
    /// `max_tier` only lowers: tiers ranking above it are skipped.
    ///
    /// Every aarch64 set computes TL1-format layers that cannot be repacked with the NEON lookup
    /// kernel (`aarch64::neon::tl1`). The `tl1` set differs only in asking the runtime to compute
    /// *every* TL1-format layer in place that way instead of repacking it into I2_S at load: the
    /// repack won on guest instruction counts (a 2560 × 2560 GEMV: NEON multiply-accumulate
    /// 1.641 M, SDOT 1.035 M, TL1 lookups 1.998 M), so it is only chosen on request
    /// (`--kernel tl1`) or by a board whose measurements say so (`tern-boards`).
    pub fn select(features: CpuFeatures, max_tier: Option<Tier>) -> Self {
        let allowed = |t: Tier| match max_tier {
            None => true,
            Some(m) => Self::rank(t) <= Self::rank(m),
        };
        let _ = (&features, &allowed);
        #[allow(unused_mut)]
        let mut k = Self::REFERENCE;
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        {
            if features.dotprod() && allowed(Tier::Dotprod) {
                crate::aarch64::dotprod::plug(&mut k);
                return k;
            }
            if features.neon() && allowed(Tier::Neon) {
                crate::aarch64::neon::plug(&mut k);
                return k;
            }
            if features.neon() && allowed(Tier::Tl1) {
                crate::aarch64::neon::plug_tl1(&mut k);
                return k;
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            if features.vnni() && allowed(Tier::Vnni) {
                crate::x86_64::vnni::plug(&mut k);
                return k;
            }
            if features.avx2() && allowed(Tier::Avx2) {
                crate::x86_64::avx2::plug(&mut k);
                return k;
            }
        }
        k
    }

    /// Rank of a tier in the selection order (higher is preferred; tiers of different
    /// architectures never compete).
    const fn rank(t: Tier) -> u8 {
        match t {
            Tier::Reference => 0,
            Tier::Tl1 => 1,
            Tier::Neon => 2,
            Tier::Dotprod => 3,
            Tier::Avx2 => 3,
            Tier::Vnni => 4,
        }
    }

    /// The set for exactly `tier`, or `None` when this CPU/build cannot run it.
    pub fn for_tier(features: CpuFeatures, tier: Tier) -> Option<Self> {
        let k = Self::select(features, Some(tier));
        (k.info.tier == tier).then_some(k)
    }
}
