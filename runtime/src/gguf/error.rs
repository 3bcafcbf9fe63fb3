//! Typed GGUF errors: every variant says what went wrong and where (byte offset, tensor index).

/// Which part of the file an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Section {
    /// Magic, version and counts.
    Header,
    /// Key/value metadata.
    Metadata,
    /// The tensor-info table.
    TensorInfo,
    /// Tensor data.
    Data,
}

/// A hard cap on a count or length (see [`super::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Limit {
    /// Number of metadata pairs.
    KvCount,
    /// Number of tensors.
    TensorCount,
    /// Bytes in one string.
    StringLen,
    /// Elements in one array.
    ArrayLen,
    /// Arrays nested in arrays.
    NestingDepth,
    /// Dimensions of a tensor.
    Dims,
    /// `general.alignment`.
    Alignment,
}

/// Malformed, truncated or unsupported GGUF input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GgufError {
    /// The file does not start with `GGUF`.
    BadMagic {
        /// The first four bytes, little-endian.
        found: u32,
    },
    /// Only versions 2 and 3 are read.
    UnsupportedVersion(u32),
    /// The input ended early: `needed` bytes at `offset` in `section`.
    Truncated {
        /// Part of the file being read.
        section: Section,
        /// Byte offset of the read.
        offset: usize,
        /// Bytes that were needed.
        needed: u64,
    },
    /// A count or length exceeds a hard cap.
    LimitExceeded {
        /// Which cap.
        limit: Limit,
        /// The value found.
        value: u64,
        /// Byte offset where it was found.
        offset: usize,
    },
    /// An unknown metadata value type id.
    BadValueType {
        /// The type id.
        ty: u32,
        /// Byte offset of the value.
        offset: usize,
    },
    /// An unknown (or, outside BitNet files, ambiguous) tensor type id.
    UnknownTensorType {
        /// Index of the tensor in the table.
        tensor: u32,
        /// The type id.
        ty: u32,
    },
    /// A tensor's shape is invalid for its type (zero dims, not a multiple of the block size,
    /// size overflow).
    BadShape {
        /// Index of the tensor.
        tensor: u32,
    },
    /// A tensor's data offset is not a multiple of the alignment.
    Misaligned {
        /// Index of the tensor.
        tensor: u32,
        /// Its offset relative to the data section.
        offset: u64,
    },
    /// A tensor's data runs past the end of the file.
    TensorOutOfBounds {
        /// Index of the tensor.
        tensor: u32,
        /// Absolute end offset the tensor needs.
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// A metadata key holds a different type than the caller expected.
    WrongValueType {
        /// Byte offset of the key.
        offset: usize,
        /// The type id found.
        found: u32,
    },
}

impl core::fmt::Display for Section {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Metadata => "metadata",
            Section::TensorInfo => "tensor-info table",
            Section::Data => "tensor data",
        })
    }
}

impl core::fmt::Display for GgufError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            GgufError::BadMagic { found } => {
                write!(f, "not a GGUF file (magic {found:#010x}, expected 0x46554747 \"GGUF\")")
            }
            GgufError::UnsupportedVersion(v) => {
                write!(f, "unsupported GGUF version {v} (tern reads versions 2 and 3)")
            }
            GgufError::Truncated { section, offset, needed } => {
                write!(f, "truncated GGUF: {section} needs {needed} bytes at offset {offset}")
            }
            GgufError::LimitExceeded { limit, value, offset } => {
                write!(f, "GGUF value {value} at offset {offset} exceeds the {limit:?} limit")
            }
            GgufError::BadValueType { ty, offset } => {
                write!(f, "unknown GGUF metadata value type {ty} at offset {offset}")
            }
            GgufError::UnknownTensorType { tensor, ty } => {
                write!(f, "tensor #{tensor} has unknown tensor type id {ty}")
            }
            GgufError::BadShape { tensor } => {
                write!(f, "tensor #{tensor} has a shape its type cannot hold")
            }
            GgufError::Misaligned { tensor, offset } => {
                write!(f, "tensor #{tensor} data offset {offset} is not aligned")
            }
            GgufError::TensorOutOfBounds { tensor, end, file_len } => write!(
                f,
                "tensor #{tensor} data ends at byte {end}, past the end of the file ({file_len} bytes)"
            ),
            GgufError::WrongValueType { offset, found } => {
                write!(f, "metadata key at offset {offset} has unexpected value type {found}")
            }
        }
    }
}

impl core::error::Error for GgufError {}
