//! Finding the model and the RAM: the device tree's `/chosen` initrd range (what the firmware's
//! `initramfs FILE followkernel` and QEMU's `-initrd` produce), else a `TERNBLOB` container at a
//! fixed address. The same code runs on real boards and under QEMU.
//!
//! Pure logic over byte slices and address ranges; the BSP turns addresses into slices.
//!
//! **`TERNBLOB` container** (fixed-address fallback, all little-endian, 32-byte header):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"TERNBLOB"` |
//! | 8 | 8 | payload length in bytes |
//! | 16 | 8 | FNV-1a 64 of the payload, or 0 for "not checked" |
//! | 24 | 8 | reserved, 0 |
//! | 32 | len | payload (a GGUF file), 32-byte aligned |
//!
//! `cross/run-qemu` writes it; `cross/README.md` shows the one-line Python that does the same.

use core::ops::Range;

use crate::fdt::{Fdt, FdtError};

/// Magic of the fixed-address container.
pub const BLOB_MAGIC: &[u8; 8] = b"TERNBLOB";
/// Bytes before the payload.
pub const BLOB_HEADER_BYTES: usize = 32;

/// Where the model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// `/chosen` `linux,initrd-start`/`-end` of the firmware's device tree.
    DeviceTreeInitrd,
    /// The `TERNBLOB` container at the fixed address.
    FixedAddress,
}

/// Why no model was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoverError {
    /// No initrd in the device tree and no container at the fixed address.
    NotFound,
    /// A range is empty, reversed, or runs past the end of RAM.
    BadRange {
        /// Start address.
        start: u64,
        /// End address (exclusive).
        end: u64,
    },
    /// The range overlaps the loaded image.
    OverlapsImage,
    /// The container's FNV-1a checksum does not match.
    Checksum {
        /// In the header.
        expected: u64,
        /// Computed.
        found: u64,
    },
}

impl core::fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DiscoverError::NotFound => {
                f.write_str("no initrd in the device tree, no TERNBLOB at the fixed address")
            }
            DiscoverError::BadRange { start, end } => write!(f, "bad range {start:#x}..{end:#x}"),
            DiscoverError::OverlapsImage => f.write_str("model overlaps the kernel image"),
            DiscoverError::Checksum { expected, found } => {
                write!(f, "checksum mismatch: header {expected:#018x}, data {found:#018x}")
            }
        }
    }
}

/// What the device tree says.
#[derive(Clone, Debug, Default)]
pub struct DtInfo<'a> {
    /// `/model`, e.g. "Raspberry Pi 4 Model B Rev 1.4".
    pub model: Option<&'a str>,
    /// `/chosen` `linux,initrd-start`..`linux,initrd-end`.
    pub initrd: Option<Range<u64>>,
    /// First `/memory` `reg` range.
    pub memory: Option<Range<u64>>,
    /// Bytes the blob occupies.
    pub total_size: usize,
}

/// Reads model string, initrd and memory from a device tree.
pub fn read_device_tree<'a>(fdt: &Fdt<'a>) -> Result<DtInfo<'a>, FdtError> {
    let model = fdt.property_str("/", "model")?;
    let start = fdt.property_u64("/chosen", "linux,initrd-start")?;
    let end = fdt.property_u64("/chosen", "linux,initrd-end")?;
    let initrd = match (start, end) {
        (Some(s), Some(e)) if e > s => Some(s..e),
        _ => None,
    };
    let memory = fdt.first_memory_range()?.and_then(|(b, s)| Some(b..b.checked_add(s)?));
    Ok(DtInfo { model, initrd, memory, total_size: fdt.total_size() })
}

/// Checks that `range` is a non-empty part of RAM below `ram_end` that misses `image`.
pub fn check_range(
    range: &Range<u64>,
    ram_end: u64,
    image: &Range<u64>,
) -> Result<(), DiscoverError> {
    if range.start >= range.end || range.end > ram_end {
        return Err(DiscoverError::BadRange { start: range.start, end: range.end });
    }
    if range.start < image.end && range.end > image.start {
        return Err(DiscoverError::OverlapsImage);
    }
    Ok(())
}

/// A parsed `TERNBLOB` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    /// Payload bytes.
    pub len: u64,
    /// Expected FNV-1a 64 of the payload (0: unchecked).
    pub fnv1a: u64,
}

/// Parses a container header; `None` if the magic is absent.
pub fn parse_blob_header(h: &[u8]) -> Option<BlobHeader> {
    let h = h.get(..BLOB_HEADER_BYTES)?;
    if &h[..8] != BLOB_MAGIC {
        return None;
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Some(BlobHeader { len: word(8), fnv1a: word(16) })
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Rounds `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}
