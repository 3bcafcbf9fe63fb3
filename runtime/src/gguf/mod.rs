//! Zero-copy, bounded GGUF v2/v3 reader over `&[u8]`.
//!
//! [`Gguf::parse`] walks the whole header, metadata and tensor table once, checking every length
//! against the input and the caps in [`limits`], every size with checked arithmetic, and every
//! tensor's data range against the file. After that, lookups re-walk the (validated) bytes; they
//! still go through the bounds-checked [`Cursor`], so no input can make them panic.
//!
//! Layout (little-endian): `"GGUF"`, `u32 version`, `u64 n_tensors`, `u64 n_kv`, the KV pairs
//! (`string key, u32 type, value`), the tensor infos (`string name, u32 n_dims, u64 ne[n_dims],
//! u32 type, u64 offset`), padding to `general.alignment` (default 32), then the data section.
//! Strings are `u64 len` + bytes.

mod error;
pub mod limits;
mod types;

pub use error::{GgufError, Limit, Section};
pub use types::GgmlType;

/// `"GGUF"` read as a little-endian u32.
pub const MAGIC: u32 = 0x4655_4747;
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Metadata value type ids.
pub mod vt {
    /// u8
    pub const U8: u32 = 0;
    /// i8
    pub const I8: u32 = 1;
    /// u16
    pub const U16: u32 = 2;
    /// i16
    pub const I16: u32 = 3;
    /// u32
    pub const U32: u32 = 4;
    /// i32
    pub const I32: u32 = 5;
    /// f32
    pub const F32: u32 = 6;
    /// bool (one byte)
    pub const BOOL: u32 = 7;
    /// string
    pub const STRING: u32 = 8;
    /// array
    pub const ARRAY: u32 = 9;
    /// u64
    pub const U64: u32 = 10;
    /// i64
    pub const I64: u32 = 11;
    /// f64
    pub const F64: u32 = 12;
}

/// A bounds-checked little-endian reader. Every read returns `Err(Truncated)` instead of panicking.
#[derive(Clone, Copy)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: Section,
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos` of `bytes`.
    pub fn new(bytes: &'a [u8], pos: usize, section: Section) -> Self {
        Self { bytes, pos, section }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    fn truncated(&self, needed: u64) -> GgufError {
        GgufError::Truncated { section: self.section, offset: self.pos, needed }
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let n_us = usize::try_from(n).map_err(|_| self.truncated(n))?;
        let end = self.pos.checked_add(n_us).ok_or_else(|| self.truncated(n))?;
        let s = self.bytes.get(self.pos..end).ok_or_else(|| self.truncated(n))?;
        self.pos = end;
        Ok(s)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads a u8.
    pub fn u8(&mut self) -> Result<u8, GgufError> {
        Ok(self.array::<1>()?[0])
    }
    /// Reads a u16.
    pub fn u16(&mut self) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// Reads a u32.
    pub fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Reads a u64.
    pub fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a length-prefixed string (raw bytes; GGUF strings are UTF-8 by convention only).
    pub fn string(&mut self) -> Result<&'a [u8], GgufError> {
        let at = self.pos;
        let len = self.u64()?;
        if len > limits::MAX_STRING {
            return Err(GgufError::LimitExceeded {
                limit: Limit::StringLen,
                value: len,
                offset: at,
            });
        }
        self.take(len)
    }
}

/// Fixed size of a scalar value type, `None` for strings/arrays/unknown.
const fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        vt::U8 | vt::I8 | vt::BOOL => Some(1),
        vt::U16 | vt::I16 => Some(2),
        vt::U32 | vt::I32 | vt::F32 => Some(4),
        vt::U64 | vt::I64 | vt::F64 => Some(8),
        _ => None,
    }
}

/// Skips one value of type `ty`, validating it.
fn skip_value(c: &mut Cursor<'_>, ty: u32, depth: u32) -> Result<(), GgufError> {
    if let Some(n) = scalar_size(ty) {
        return c.skip(n);
    }
    match ty {
        vt::STRING => c.string().map(|_| ()),
        vt::ARRAY => {
            let at = c.pos();
            if depth >= limits::MAX_DEPTH {
                return Err(GgufError::LimitExceeded {
                    limit: Limit::NestingDepth,
                    value: u64::from(depth) + 1,
                    offset: at,
                });
            }
            let elem = c.u32()?;
            let len = c.u64()?;
            if len > limits::MAX_ARRAY {
                return Err(GgufError::LimitExceeded {
                    limit: Limit::ArrayLen,
                    value: len,
                    offset: at,
                });
            }
            if let Some(sz) = scalar_size(elem) {
                // len <= 2^24 and sz <= 8: no overflow.
                c.skip(len * sz)
            } else if elem == vt::STRING || elem == vt::ARRAY {
                for _ in 0..len {
                    skip_value(c, elem, depth + 1)?;
                }
                Ok(())
            } else {
                Err(GgufError::BadValueType { ty: elem, offset: at })
            }
        }
        _ => Err(GgufError::BadValueType { ty, offset: c.pos() }),
    }
}

/// A metadata value, borrowing the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// string bytes
    String(&'a [u8]),
    /// array
    Array(ArrayView<'a>),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

impl<'a> Value<'a> {
    fn read(c: &mut Cursor<'a>, ty: u32, depth: u32) -> Result<Self, GgufError> {
        let at = c.pos();
        Ok(match ty {
            vt::U8 => Value::U8(c.u8()?),
            vt::I8 => Value::I8(c.u8()? as i8),
            vt::U16 => Value::U16(c.u16()?),
            vt::I16 => Value::I16(c.u16()? as i16),
            vt::U32 => Value::U32(c.u32()?),
            vt::I32 => Value::I32(c.u32()? as i32),
            vt::F32 => Value::F32(f32::from_bits(c.u32()?)),
            vt::BOOL => Value::Bool(c.u8()? != 0),
            vt::STRING => Value::String(c.string()?),
            vt::U64 => Value::U64(c.u64()?),
            vt::I64 => Value::I64(c.u64()? as i64),
            vt::F64 => Value::F64(f64::from_bits(c.u64()?)),
            vt::ARRAY => {
                let start = c.pos();
                skip_value(c, vt::ARRAY, depth)?;
                let mut h = Cursor::new(c.bytes, start, Section::Metadata);
                let elem = h.u32()?;
                let len = h.u64()?;
                let body = c.bytes.get(h.pos()..c.pos()).unwrap_or(&[]);
                Value::Array(ArrayView { elem, len, body })
            }
            _ => return Err(GgufError::BadValueType { ty, offset: at }),
        })
    }

    /// Any non-negative integer value as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any numeric value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// A boolean (or an integer, non-zero = true).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => self.as_u64().map(|v| v != 0),
        }
    }

    /// A string value as UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => core::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// An array value.
    pub fn as_array(&self) -> Option<ArrayView<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A metadata array: element type, length, and the bytes of its elements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayView<'a> {
    elem: u32,
    len: u64,
    body: &'a [u8],
}

impl<'a> ArrayView<'a> {
    /// Element type id ([`vt`]).
    pub fn elem_type(&self) -> u32 {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements as strings (errors if the array is not of strings).
    pub fn strings(&self) -> StrIter<'a> {
        StrIter {
            c: Cursor::new(self.body, 0, Section::Metadata),
            left: if self.elem == vt::STRING { self.len } else { 0 },
        }
    }

    /// The elements as i64 values (any integer element type); empty for other element types.
    pub fn ints(&self) -> IntIter<'a> {
        let size = match self.elem {
            vt::U8
            | vt::I8
            | vt::BOOL
            | vt::U16
            | vt::I16
            | vt::U32
            | vt::I32
            | vt::U64
            | vt::I64 => scalar_size(self.elem).unwrap_or(1) as usize,
            _ => 0,
        };
        IntIter {
            body: self.body,
            elem: self.elem,
            size,
            i: 0,
            len: if size == 0 { 0 } else { self.len as usize },
        }
    }

    /// The elements as f32 values (f32 arrays only; empty otherwise).
    pub fn f32s(&self) -> impl Iterator<Item = f32> + Clone + 'a {
        let n = if self.elem == vt::F32 { self.len as usize } else { 0 };
        self.body.chunks_exact(4).take(n).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Iterator over a string array.
#[derive(Clone)]
pub struct StrIter<'a> {
    c: Cursor<'a>,
    left: u64,
}

impl<'a> Iterator for StrIter<'a> {
    type Item = Result<&'a [u8], GgufError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.c.string();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, usize::try_from(self.left).ok())
    }
}

/// Iterator over an integer array, widened to i64.
#[derive(Clone)]
pub struct IntIter<'a> {
    body: &'a [u8],
    elem: u32,
    size: usize,
    i: usize,
    len: usize,
}

impl Iterator for IntIter<'_> {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        if self.i >= self.len {
            return None;
        }
        let b = self.body.get(self.i * self.size..(self.i + 1) * self.size)?;
        self.i += 1;
        let mut a = [0u8; 8];
        a[..self.size].copy_from_slice(b);
        let u = u64::from_le_bytes(a);
        Some(match self.elem {
            vt::I8 => i64::from(u as u8 as i8),
            vt::I16 => i64::from(u as u16 as i16),
            vt::I32 => i64::from(u as u32 as i32),
            _ => u as i64,
        })
    }
}

/// One entry of the tensor table, with its data range resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorInfo<'a> {
    /// Index in the table.
    pub index: u32,
    /// Name bytes (e.g. `blk.0.attn_q.weight`).
    pub name: &'a [u8],
    /// Number of dimensions (1..=4).
    pub n_dims: u32,
    /// Dimensions in ggml order (`ne[0]` fastest); unused ones are 1.
    pub ne: [u64; 4],
    /// Element type.
    pub ty: GgmlType,
    /// Offset relative to the data section.
    pub offset: u64,
    /// Exactly the tensor's bytes ([`GgmlType::nbytes`]).
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
    /// The name as UTF-8 (`"?"` when it is not).
    pub fn name_str(&self) -> &str {
        core::str::from_utf8(self.name).unwrap_or("?")
    }
}

/// A tensor-info entry before its data range is resolved: name, n_dims, ne, type, offset.
type RawTensor<'a> = (&'a [u8], u32, [u64; 4], GgmlType, u64);

/// A parsed GGUF file.
#[derive(Debug, Clone, Copy)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    n_kv: u64,
    kv_start: usize,
    n_tensors: u64,
    ti_start: usize,
    data_start: usize,
    alignment: u64,
    bitnet_ids: bool,
}

impl<'a> Gguf<'a> {
    /// Parses and validates `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        let mut c = Cursor::new(bytes, 0, Section::Header);
        let magic = c.u32()?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = c.u32()?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let at = c.pos();
        let n_tensors = c.u64()?;
        if n_tensors > limits::MAX_TENSORS {
            return Err(GgufError::LimitExceeded {
                limit: Limit::TensorCount,
                value: n_tensors,
                offset: at,
            });
        }
        let at = c.pos();
        let n_kv = c.u64()?;
        if n_kv > limits::MAX_KV {
            return Err(GgufError::LimitExceeded {
                limit: Limit::KvCount,
                value: n_kv,
                offset: at,
            });
        }
        let kv_start = c.pos();
        // Walk the metadata once: validates it and finds alignment / arch / file type.
        let mut c = Cursor::new(bytes, kv_start, Section::Metadata);
        let mut alignment = DEFAULT_ALIGNMENT;
        let mut bitnet_ids = false;
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty_at = c.pos();
            let ty = c.u32()?;
            let v = Value::read(&mut c, ty, 0)?;
            match key {
                b"general.alignment" => {
                    let a =
                        v.as_u64().ok_or(GgufError::WrongValueType { offset: ty_at, found: ty })?;
                    if a == 0 || !a.is_power_of_two() || a > limits::MAX_ALIGNMENT {
                        return Err(GgufError::LimitExceeded {
                            limit: Limit::Alignment,
                            value: a,
                            offset: ty_at,
                        });
                    }
                    alignment = a;
                }
                b"general.architecture" => {
                    if let Value::String(s) = v {
                        bitnet_ids |= s.starts_with(b"bitnet");
                    }
                }
                b"general.file_type" => {
                    if let Some(ft) = v.as_u64() {
                        bitnet_ids |= matches!(ft, 38..=40);
                    }
                }
                _ => {}
            }
        }
        let ti_start = c.pos();
        let mut g = Gguf {
            bytes,
            version,
            n_kv,
            kv_start,
            n_tensors,
            ti_start,
            data_start: 0,
            alignment,
            bitnet_ids,
        };
        // Walk the tensor table: shapes and types.
        let mut c = Cursor::new(bytes, ti_start, Section::TensorInfo);
        for i in 0..n_tensors {
            g.read_tensor_header(&mut c, i as u32)?;
        }
        let end = c.pos() as u64;
        let data_start = end.div_ceil(alignment) * alignment;
        if data_start > bytes.len() as u64 {
            return Err(GgufError::Truncated {
                section: Section::Data,
                offset: c.pos(),
                needed: data_start - end,
            });
        }
        g.data_start = data_start as usize;
        // Resolve every tensor's data range.
        for t in g.tensors() {
            t?;
        }
        Ok(g)
    }

    /// Reads one tensor-info entry (without resolving data).
    fn read_tensor_header(
        &self,
        c: &mut Cursor<'a>,
        index: u32,
    ) -> Result<RawTensor<'a>, GgufError> {
        let name = c.string()?;
        let at = c.pos();
        let n_dims = c.u32()?;
        if n_dims == 0 || n_dims > limits::MAX_DIMS {
            return Err(GgufError::LimitExceeded {
                limit: Limit::Dims,
                value: n_dims.into(),
                offset: at,
            });
        }
        let mut ne = [1u64; 4];
        for d in ne.iter_mut().take(n_dims as usize) {
            *d = c.u64()?;
        }
        let ty_id = c.u32()?;
        let offset = c.u64()?;
        let ty = GgmlType::from_id(ty_id, self.bitnet_ids)
            .ok_or(GgufError::UnknownTensorType { tensor: index, ty: ty_id })?;
        if ne.contains(&0) {
            return Err(GgufError::BadShape { tensor: index });
        }
        Ok((name, n_dims, ne, ty, offset))
    }

    fn resolve(
        &self,
        index: u32,
        (name, n_dims, ne, ty, offset): RawTensor<'a>,
    ) -> Result<TensorInfo<'a>, GgufError> {
        let nbytes =
            ty.nbytes(&ne[..n_dims as usize]).ok_or(GgufError::BadShape { tensor: index })?;
        if offset % self.alignment != 0 {
            return Err(GgufError::Misaligned { tensor: index, offset });
        }
        let file_len = self.bytes.len() as u64;
        let start = (self.data_start as u64).checked_add(offset);
        let end = start.and_then(|s| s.checked_add(nbytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len => Ok(TensorInfo {
                index,
                name,
                n_dims,
                ne,
                ty,
                offset,
                data: &self.bytes[s as usize..e as usize],
            }),
            _ => Err(GgufError::TensorOutOfBounds {
                tensor: index,
                end: end.unwrap_or(u64::MAX),
                file_len,
            }),
        }
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Number of metadata pairs.
    pub fn n_kv(&self) -> u64 {
        self.n_kv
    }
    /// Number of tensors.
    pub fn n_tensors(&self) -> u64 {
        self.n_tensors
    }
    /// Data-section alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Absolute offset of the data section.
    pub fn data_start(&self) -> usize {
        self.data_start
    }
    /// Whether type ids 36/38/39 are read as I2_S/TL1/TL2 (a BitNet-produced file).
    pub fn bitnet_type_ids(&self) -> bool {
        self.bitnet_ids
    }
    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Iterates over `(key, value)` pairs.
    pub fn metadata_iter(&self) -> MetaIter<'a> {
        MetaIter { c: Cursor::new(self.bytes, self.kv_start, Section::Metadata), left: self.n_kv }
    }

    /// Looks a metadata key up.
    pub fn metadata(&self, key: &str) -> Option<Value<'a>> {
        self.metadata_iter()
            .filter_map(Result::ok)
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// A string value (`None` if absent or not a UTF-8 string).
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.metadata(key).and_then(|v| v.as_str())
    }

    /// An integer value (`None` if absent or not a non-negative integer).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.metadata(key).and_then(|v| v.as_u64())
    }

    /// A numeric value as f64.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.metadata(key).and_then(|v| v.as_f64())
    }

    /// Iterates over the tensor table.
    pub fn tensors(&self) -> TensorIter<'a> {
        TensorIter {
            g: *self,
            c: Cursor::new(self.bytes, self.ti_start, Section::TensorInfo),
            i: 0,
        }
    }

    /// Finds a tensor by name.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().filter_map(Result::ok).find(|t| t.name == name.as_bytes())
    }
}

/// Iterator over metadata pairs.
#[derive(Clone)]
pub struct MetaIter<'a> {
    c: Cursor<'a>,
    left: u64,
}

impl<'a> Iterator for MetaIter<'a> {
    type Item = Result<(&'a [u8], Value<'a>), GgufError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let k = self.c.string()?;
            let ty = self.c.u32()?;
            let v = Value::read(&mut self.c, ty, 0)?;
            Ok((k, v))
        })();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

/// Iterator over the tensor table.
#[derive(Clone)]
pub struct TensorIter<'a> {
    g: Gguf<'a>,
    c: Cursor<'a>,
    i: u64,
}

impl<'a> Iterator for TensorIter<'a> {
    type Item = Result<TensorInfo<'a>, GgufError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.g.n_tensors {
            return None;
        }
        let idx = self.i as u32;
        self.i += 1;
        let r = self.g.read_tensor_header(&mut self.c, idx).and_then(|h| self.g.resolve(idx, h));
        if r.is_err() {
            self.i = self.g.n_tensors;
        }
        Some(r)
    }
}
