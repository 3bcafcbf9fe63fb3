//! A small, bounds-checked reader for flattened device trees (DTB, devicetree spec v0.4 ch. 5):
//! enough to read `/model`, `/chosen` `linux,initrd-start`/`-end` and `/memory` `reg`.
//!
//! Safe code over `&[u8]`: every offset is checked, a malformed blob gives an [`FdtError`], never
//! a panic or an endless loop (each token advances the cursor, and nesting is capped). It uses
//! only `core`, so host tests can include this file directly.

/// `0xd00dfeed`, big-endian, at offset 0.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Deepest node nesting accepted.
pub const MAX_DEPTH: usize = 32;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Why a blob is not a usable device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FdtError {
    /// Shorter than its header or its `totalsize` says.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// Not a device tree.
    BadMagic {
        /// The first word found.
        found: u32,
    },
    /// Older than version 16 (the first with this layout).
    UnsupportedVersion(u32),
    /// A block or token runs outside the blob, or the structure is inconsistent.
    Malformed {
        /// Offset inside the structure block.
        offset: usize,
    },
    /// Nodes nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl core::fmt::Display for FdtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FdtError::Truncated { needed, len } => write!(f, "truncated ({len} of {needed} bytes)"),
            FdtError::BadMagic { found } => write!(f, "bad magic {found:#010x}"),
            FdtError::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            FdtError::Malformed { offset } => write!(f, "malformed structure at +{offset:#x}"),
            FdtError::TooDeep => write!(f, "nodes nested too deep"),
        }
    }
}

fn be32(b: &[u8], off: usize) -> Result<u32, FdtError> {
    let end = off.checked_add(4).ok_or(FdtError::Malformed { offset: off })?;
    let s = b.get(off..end).ok_or(FdtError::Malformed { offset: off })?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// `totalsize` from a header (the first 40 bytes suffice), after checking the magic.
pub fn total_size(header: &[u8]) -> Result<usize, FdtError> {
    if header.len() < 8 {
        return Err(FdtError::Truncated { needed: 8, len: header.len() });
    }
    let magic = be32(header, 0)?;
    if magic != FDT_MAGIC {
        return Err(FdtError::BadMagic { found: magic });
    }
    Ok(be32(header, 4)? as usize)
}

/// A validated device tree blob.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
    total: usize,
}

/// A `/path` split into components, without allocating.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// `memory` matches `memory@0`; `memory@0` matches only itself.
fn name_matches(node: &[u8], want: &str) -> bool {
    let want = want.as_bytes();
    node == want
        || (!want.contains(&b'@')
            && node.len() > want.len()
            && node.starts_with(want)
            && node[want.len()] == b'@')
}

fn cstr_at(b: &[u8], off: usize) -> Result<&[u8], FdtError> {
    let rest = b.get(off..).ok_or(FdtError::Malformed { offset: off })?;
    let n = rest.iter().position(|&c| c == 0).ok_or(FdtError::Malformed { offset: off })?;
    Ok(&rest[..n])
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl<'a> Fdt<'a> {
    /// Checks the header and the block bounds of `blob`.
    pub fn new(blob: &'a [u8]) -> Result<Self, FdtError> {
        if blob.len() < 40 {
            return Err(FdtError::Truncated { needed: 40, len: blob.len() });
        }
        let total = total_size(blob)?;
        if total > blob.len() || total < 40 {
            return Err(FdtError::Truncated { needed: total.max(40), len: blob.len() });
        }
        let off_struct = be32(blob, 8)? as usize;
        let off_strings = be32(blob, 12)? as usize;
        let version = be32(blob, 20)?;
        if version < 16 {
            return Err(FdtError::UnsupportedVersion(version));
        }
        let size_strings = be32(blob, 32)? as usize;
        // size_dt_struct exists from version 17; for 16, the block runs to the strings or the end.
        let size_struct = if version >= 17 {
            be32(blob, 36)? as usize
        } else if off_strings > off_struct {
            off_strings - off_struct
        } else {
            total.saturating_sub(off_struct)
        };
        let block = |off: usize, len: usize| {
            let end = off.checked_add(len).filter(|&e| e <= total);
            end.map(|e| &blob[off..e]).ok_or(FdtError::Malformed { offset: off })
        };
        Ok(Fdt {
            structs: block(off_struct, size_struct)?,
            strings: block(off_strings, size_strings)?,
            total,
        })
    }

    /// `totalsize`: bytes the blob occupies.
    pub fn total_size(&self) -> usize {
        self.total
    }

    /// The value of property `name` of the node at `path` (`"/"`, `"/chosen"`, `"/memory"`; a
    /// component without `@unit` matches any unit address). `Ok(None)` when absent.
    pub fn property(&self, path: &str, name: &str) -> Result<Option<&'a [u8]>, FdtError> {
        let want: usize = components(path).count();
        let mut depth = 0usize; // open nodes, root included
        let mut matched = 0usize; // leading path components matched by the open nodes
        let mut off = 0usize;
        let s = self.structs;
        loop {
            let token = be32(s, off)?;
            off += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let node = cstr_at(s, off)?;
                    off = off
                        .checked_add(align4(node.len() + 1))
                        .ok_or(FdtError::Malformed { offset: off })?;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(FdtError::TooDeep);
                    }
                    // depth 1 is the root; a node at depth d stands for component d - 2.
                    if depth >= 2 && matched == depth - 2 && matched < want {
                        let comp = components(path).nth(matched).unwrap_or("");
                        if name_matches(node, comp) {
                            matched += 1;
                        }
                    }
                }
                FDT_END_NODE => {
                    if depth == 0 {
                        return Err(FdtError::Malformed { offset: off - 4 });
                    }
                    if depth >= 2 && matched == depth - 1 {
                        matched -= 1;
                    }
                    depth -= 1;
                }
                FDT_PROP => {
                    let len = be32(s, off)? as usize;
                    let name_off = be32(s, off + 4)? as usize;
                    let start = off + 8;
                    let end = start.checked_add(len).ok_or(FdtError::Malformed { offset: off })?;
                    let value = s.get(start..end).ok_or(FdtError::Malformed { offset: off })?;
                    off = start
                        .checked_add(align4(len))
                        .ok_or(FdtError::Malformed { offset: off })?;
                    if depth == want + 1
                        && matched == want
                        && cstr_at(self.strings, name_off)? == name.as_bytes()
                    {
                        return Ok(Some(value));
                    }
                }
                FDT_NOP => {}
                FDT_END => return Ok(None),
                _ => return Err(FdtError::Malformed { offset: off - 4 }),
            }
        }
    }

    /// A property as a string (up to its first NUL), if it is valid UTF-8.
    pub fn property_str(&self, path: &str, name: &str) -> Result<Option<&'a str>, FdtError> {
        Ok(self.property(path, name)?.and_then(|v| {
            let n = v.iter().position(|&c| c == 0).unwrap_or(v.len());
            core::str::from_utf8(&v[..n]).ok()
        }))
    }

    /// A property holding one number of 1 or 2 cells (the length decides, as Linux does for
    /// `linux,initrd-start`).
    pub fn property_u64(&self, path: &str, name: &str) -> Result<Option<u64>, FdtError> {
        Ok(self.property(path, name)?.and_then(|v| read_cells(v, v.len() / 4)))
    }

    /// `#address-cells` and `#size-cells` of the root (defaults 2 and 1).
    pub fn root_cells(&self) -> Result<(usize, usize), FdtError> {
        let a = self.property("/", "#address-cells")?.and_then(|v| read_cells(v, 1)).unwrap_or(2);
        let s = self.property("/", "#size-cells")?.and_then(|v| read_cells(v, 1)).unwrap_or(1);
        Ok((a as usize, s as usize))
    }

    /// The first `(base, size)` pair of `/memory` `reg`.
    pub fn first_memory_range(&self) -> Result<Option<(u64, u64)>, FdtError> {
        let (ac, sc) = self.root_cells()?;
        let Some(reg) = self.property("/memory", "reg")? else { return Ok(None) };
        if ac == 0 || ac > 2 || sc == 0 || sc > 2 || reg.len() < 4 * (ac + sc) {
            return Ok(None);
        }
        let base = read_cells(&reg[..4 * ac], ac);
        let size = read_cells(&reg[4 * ac..4 * (ac + sc)], sc);
        Ok(base.zip(size))
    }
}

/// A big-endian number of `cells` 32-bit cells (1 or 2) from the start of `v`.
pub fn read_cells(v: &[u8], cells: usize) -> Option<u64> {
    match cells {
        1 if v.len() >= 4 => Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as u64),
        2 if v.len() >= 8 => {
            Some(u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]))
        }
        _ => None,
    }
}
