//! Model description: hyper-parameters ([`config`]) and borrowed weight views ([`weights`]).

pub mod config;
pub mod tl1;
pub mod weights;

pub use config::{Arch, Config, FfnAct};
pub use tern_kernels::formats::tl1::Tiling as Tl1Tiling;
pub use weights::{Embedding, LayerWeights, Linear, LinearData, Weights};

use crate::gguf::GgmlType;

/// A tensor name carried by value in errors (truncated to 63 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TensorName {
    buf: [u8; 63],
    len: u8,
}

impl TensorName {
    /// Copies `name` (truncated).
    pub fn new(name: &[u8]) -> Self {
        let mut buf = [0u8; 63];
        let n = name.len().min(63);
        buf[..n].copy_from_slice(&name[..n]);
        Self { buf, len: n as u8 }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len as usize]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl core::fmt::Debug for TensorName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}
impl core::fmt::Display for TensorName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
#[cfg(feature = "defmt")]
impl defmt::Format for TensorName {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

/// The file does not describe a model tern can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ModelError {
    /// `general.architecture` names an architecture tern does not know.
    UnsupportedArch,
    /// A required metadata key is absent or of the wrong type.
    MissingKey {
        /// The key (`<arch>` stands for the architecture prefix).
        key: &'static str,
    },
    /// A metadata value is out of range.
    BadValue {
        /// The key.
        key: &'static str,
        /// The value found.
        value: u64,
    },
    /// A required tensor is absent.
    MissingTensor {
        /// Its name.
        name: TensorName,
    },
    /// A tensor's shape differs from what the config implies.
    ShapeMismatch {
        /// The tensor.
        tensor: TensorName,
        /// Expected `[ne0, ne1]`.
        expected: [u64; 2],
        /// Found `[ne0, ne1]`.
        found: [u64; 2],
    },
    /// A tensor's type is not one tern computes with in that role.
    UnsupportedTensorType {
        /// The tensor.
        tensor: TensorName,
        /// Its type.
        ty: GgmlType,
    },
    /// A tensor's data is not aligned for zero-copy use.
    Misaligned {
        /// The tensor.
        tensor: TensorName,
    },
    /// More layers than [`weights::MAX_LAYERS`].
    TooManyLayers {
        /// `block_count`.
        n_layer: usize,
    },
    /// An I2_S tensor's K is not a multiple of 128 (the layout cannot hold it row by row).
    BadBlockShape {
        /// The tensor.
        tensor: TensorName,
    },
    /// A TL1 tiling given for a tensor (the `tern.tl1.tiling` override) does not fit its shape.
    Tl1BadTiling {
        /// The tensor.
        tensor: TensorName,
        /// Rows (`ne1`).
        m: u32,
        /// Columns (`ne0`).
        k: u32,
        /// `[BM, BK, bm]` given.
        tiling: [u32; 3],
    },
    /// No TL1 tiling (`bm ∈ {32, 64}`, `BM | M`, `BK | K`) fits a tensor's shape.
    Tl1NoTiling {
        /// The tensor.
        tensor: TensorName,
        /// Rows (`ne1`).
        m: u32,
        /// Columns (`ne0`).
        k: u32,
    },
    /// Several TL1 tilings fit a tensor and its data does not single one out
    /// ([`tl1`] module docs); name one with the `tern.tl1.tiling` metadata key.
    Tl1AmbiguousTiling {
        /// The tensor.
        tensor: TensorName,
        /// Rows (`ne1`).
        m: u32,
        /// Columns (`ne0`).
        k: u32,
        /// Distinct byte orders the format allows for the shape.
        n_classes: u32,
        /// How many of them score within the margin of the best.
        near: u32,
        /// The best-scoring candidates `[BM, BK, bm]`, best first (zeros past `n_classes`).
        candidates: [[u32; 3]; tl1::SHOWN],
    },
    /// A TL1 tensor holds a 4-bit index above 8 (never written by bitnet.cpp's converter).
    Tl1BadIndex {
        /// The tensor.
        tensor: TensorName,
    },
}

impl core::fmt::Display for ModelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ModelError::UnsupportedArch => write!(
                f,
                "unsupported general.architecture (tern runs bitnet-b1.58, bitnet-25, bitnet, llama)"
            ),
            ModelError::MissingKey { key } => write!(f, "missing or mistyped metadata key {key}"),
            ModelError::BadValue { key, value } => {
                write!(f, "metadata key {key} has an invalid value {value}")
            }
            ModelError::MissingTensor { name } => write!(f, "missing tensor {name}"),
            ModelError::ShapeMismatch { tensor, expected, found } => write!(
                f,
                "tensor {tensor} has shape {found:?}, expected {expected:?} for this model's config"
            ),
            ModelError::UnsupportedTensorType { tensor, ty } => {
                write!(f, "tensor {tensor} has type {}, which tern cannot use there", ty.name())
            }
            ModelError::Misaligned { tensor } => {
                write!(f, "tensor {tensor} data is misaligned in memory")
            }
            ModelError::TooManyLayers { n_layer } => {
                write!(f, "{n_layer} layers is more than tern supports ({})", weights::MAX_LAYERS)
            }
            ModelError::BadBlockShape { tensor } => {
                write!(f, "I2_S tensor {tensor} has K not a multiple of 128")
            }
            ModelError::Tl1BadTiling { tensor, m, k, tiling: [bmm, bk, bm] } => write!(
                f,
                "TL1 tensor {tensor} [M {m}, K {k}]: tiling BM {bmm}, BK {bk}, bm {bm} from {} does \
                 not fit (need bm 32 or 64, bm | BM | M, 256/bm | BK | K)",
                tl1::OVERRIDE_KEY
            ),
            ModelError::Tl1NoTiling { tensor, m, k } => write!(
                f,
                "TL1 tensor {tensor} [M {m}, K {k}]: no TL1 tiling fits this shape (M must be a \
                 multiple of 32 and K of 8)"
            ),
            ModelError::Tl1AmbiguousTiling { tensor, m, k, n_classes, near, candidates } => {
                write!(
                    f,
                    "TL1 tensor {tensor} [M {m}, K {k}]: cannot tell its tiling from the data \
                     ({near} of {n_classes} distinct layouts score alike; best (BM, BK, bm):"
                )?;
                for c in candidates.iter().take((*n_classes as usize).min(tl1::SHOWN)) {
                    write!(f, " ({}, {}, {})", c[0], c[1], c[2])?;
                }
                write!(f, "); name it with metadata {} = [M, K, BM, BK, bm]", tl1::OVERRIDE_KEY)
            }
            ModelError::Tl1BadIndex { tensor } => {
                write!(f, "TL1 tensor {tensor} holds pair indices above 8: not a TL1 tensor")
            }
        }
    }
}

impl core::error::Error for ModelError {}
