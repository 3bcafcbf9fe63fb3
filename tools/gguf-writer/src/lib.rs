//! A small GGUF v3 writer (std) for tern's tools and tests: random-weight models, tokenizer-only
//! files, and deliberately malformed files for the parser's error tests.
//!
//! ```
//! use tern_gguf_writer::{GgufWriter, MetaValue};
//! let mut w = GgufWriter::new();
//! w.meta("general.architecture", MetaValue::Str("bitnet-b1.58".into()));
//! w.tensor("output_norm.weight", &[4], 0, vec![0u8; 16]);
//! let bytes = w.to_bytes();
//! assert_eq!(&bytes[..4], b"GGUF");
//! ```
#![forbid(unsafe_code)]

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
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
    /// UTF-8 string
    Str(String),
    /// raw string bytes (may be invalid UTF-8)
    Bytes(Vec<u8>),
    /// array of values of one type (the type id of the first element, or `elem` when empty)
    Array {
        /// Element type id.
        elem: u32,
        /// Elements.
        items: Vec<MetaValue>,
    },
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

impl MetaValue {
    /// The GGUF value type id.
    pub fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::Str(_) | MetaValue::Bytes(_) => 8,
            MetaValue::Array { .. } => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    /// An array of strings.
    pub fn str_array<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        MetaValue::Array {
            elem: 8,
            items: items.into_iter().map(|s| MetaValue::Str(s.into())).collect(),
        }
    }

    /// An array of i32.
    pub fn i32_array<I: IntoIterator<Item = i32>>(items: I) -> Self {
        MetaValue::Array { elem: 5, items: items.into_iter().map(MetaValue::I32).collect() }
    }

    /// An array of f32.
    pub fn f32_array<I: IntoIterator<Item = f32>>(items: I) -> Self {
        MetaValue::Array { elem: 6, items: items.into_iter().map(MetaValue::F32).collect() }
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.push(*v as u8),
            MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::Bool(v) => out.push(u8::from(*v)),
            MetaValue::Str(s) => write_string(out, s.as_bytes()),
            MetaValue::Bytes(b) => write_string(out, b),
            MetaValue::Array { elem, items } => {
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    it.write_payload(out);
                }
            }
            MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// A tensor to write.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// Name.
    pub name: String,
    /// Dimensions, ggml order.
    pub ne: Vec<u64>,
    /// GGUF type id.
    pub ty: u32,
    /// Data bytes (exactly the type's size for the shape; the writer does not check).
    pub data: Vec<u8>,
    /// Offset override (for malformed-file tests); `None` = laid out by the writer.
    pub offset: Option<u64>,
}

/// Builds a GGUF v3 file in memory.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    /// Version written in the header.
    pub version: u32,
    /// Data alignment used for layout (write `general.alignment` yourself to change the reader's).
    pub alignment: u64,
    /// Metadata pairs, in order.
    pub kv: Vec<(String, MetaValue)>,
    /// Tensors, in order.
    pub tensors: Vec<TensorEntry>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty v3 file with alignment 32.
    pub fn new() -> Self {
        Self { version: 3, alignment: 32, kv: Vec::new(), tensors: Vec::new() }
    }

    /// Adds a metadata pair.
    pub fn meta(&mut self, key: &str, v: MetaValue) -> &mut Self {
        self.kv.push((key.to_string(), v));
        self
    }

    /// Adds a tensor.
    pub fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, data: Vec<u8>) -> &mut Self {
        self.tensors.push(TensorEntry {
            name: name.into(),
            ne: ne.to_vec(),
            ty,
            data,
            offset: None,
        });
        self
    }

    /// Serialises the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            write_string(&mut out, k.as_bytes());
            out.extend_from_slice(&v.type_id().to_le_bytes());
            v.write_payload(&mut out);
        }
        let a = self.alignment.max(1);
        let mut offsets = Vec::new();
        let mut off = 0u64;
        for t in &self.tensors {
            offsets.push(t.offset.unwrap_or(off));
            off = (off + t.data.len() as u64).div_ceil(a) * a;
        }
        for (t, o) in self.tensors.iter().zip(&offsets) {
            write_string(&mut out, t.name.as_bytes());
            out.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.to_le_bytes());
            out.extend_from_slice(&o.to_le_bytes());
        }
        let pad = (out.len() as u64).div_ceil(a) * a - out.len() as u64;
        out.resize(out.len() + pad as usize, 0);
        let data_start = out.len();
        for (t, &o) in self.tensors.iter().zip(&offsets) {
            if t.offset.is_some() {
                continue;
            }
            let at = data_start + o as usize;
            if out.len() < at {
                out.resize(at, 0);
            }
            out.extend_from_slice(&t.data);
        }
        let end = (out.len() as u64).div_ceil(a) * a;
        out.resize(end as usize, 0);
        out
    }
}

/// GGUF type ids used by tern.
pub mod ty {
    /// F32
    pub const F32: u32 = 0;
    /// F16
    pub const F16: u32 = 1;
    /// Q8_0
    pub const Q8_0: u32 = 8;
    /// BF16
    pub const BF16: u32 = 30;
    /// TQ2_0
    pub const TQ2_0: u32 = 35;
    /// I2_S (BitNet files)
    pub const I2_S: u32 = 36;
    /// TL1 (BitNet files)
    pub const TL1: u32 = 38;
}
