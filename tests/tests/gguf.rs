//! GGUF reader on malformed input: each class of damage gives its typed error naming what and
//! where; random and truncated bytes never panic (property tests).

use proptest::prelude::*;
use tern_gguf_writer::{GgufWriter, MetaValue, ty};
use tern_runtime::gguf::{GgmlType, Gguf, GgufError, Limit};
use tern_runtime::model::{Config, ModelError, Weights};

fn tiny() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tiny-trained.i2_s.gguf")).unwrap()
}

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&n_tensors.to_le_bytes());
    v.extend_from_slice(&n_kv.to_le_bytes());
    v
}

fn string(v: &mut Vec<u8>, s: &[u8]) {
    v.extend_from_slice(&(s.len() as u64).to_le_bytes());
    v.extend_from_slice(s);
}

#[test]
fn the_fixture_parses_with_its_published_table() {
    let b = tiny();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!((g.version(), g.n_kv(), g.n_tensors()), (3, 23, 46));
    assert_eq!(g.data_start(), 63264);
    assert!(g.bitnet_type_ids());
    let q = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ty, GgmlType::I2S);
    assert_eq!(q.data.len(), 256 * 256 / 4 + 32);
    assert_eq!(g.get_str("general.architecture"), Some("bitnet-b1.58"));
    assert_eq!(g.get_u64("general.file_type"), Some(40));
}

#[test]
fn bad_magic_and_version() {
    assert!(matches!(Gguf::parse(b"GGML\x03\0\0\0"), Err(GgufError::BadMagic { .. })));
    let mut v = header(0, 0);
    v[4] = 1;
    assert_eq!(Gguf::parse(&v).unwrap_err(), GgufError::UnsupportedVersion(1));
    v[4] = 4;
    assert_eq!(Gguf::parse(&v).unwrap_err(), GgufError::UnsupportedVersion(4));
}

#[test]
fn truncated_in_every_section_says_which() {
    let b = tiny();
    let g = Gguf::parse(&b).unwrap();
    let kv_start = 24;
    // Find the end of the tensor table: data_start minus padding.
    let data = g.data_start();
    let mut seen = std::collections::BTreeSet::new();
    let cuts: Vec<usize> = (0..kv_start)
        .chain((kv_start..data).step_by(97))
        .chain([data - 1, data, data + 1, b.len() / 2, b.len() - 1])
        .collect();
    for cut in cuts {
        let e = Gguf::parse(&b[..cut]).expect_err("a truncated file must not parse");
        let class = match e {
            GgufError::Truncated { section, offset, .. } => {
                assert!(offset <= cut, "offset {offset} past the cut {cut}");
                format!("{section:?}")
            }
            GgufError::TensorOutOfBounds { end, file_len, .. } => {
                assert!(end > file_len);
                "OutOfBounds".into()
            }
            other => panic!("cut at {cut}: unexpected {other:?}"),
        };
        seen.insert(class);
    }
    for s in ["Header", "Metadata", "TensorInfo", "OutOfBounds"] {
        assert!(seen.contains(s), "no truncation detected in {s}: {seen:?}");
    }
    // The message names the section and offset.
    let msg = Gguf::parse(&b[..1000]).unwrap_err().to_string();
    assert!(msg.contains("metadata") && msg.contains("offset"), "{msg}");
}

#[test]
fn absurd_counts_hit_limits() {
    let e = Gguf::parse(&header(u64::MAX, 0)).unwrap_err();
    assert!(matches!(e, GgufError::LimitExceeded { limit: Limit::TensorCount, .. }), "{e:?}");
    let e = Gguf::parse(&header(0, 1 << 40)).unwrap_err();
    assert!(matches!(e, GgufError::LimitExceeded { limit: Limit::KvCount, .. }), "{e:?}");
    // A key with a 2^60-byte length.
    let mut v = header(0, 1);
    v.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let e = Gguf::parse(&v).unwrap_err();
    assert!(
        matches!(e, GgufError::LimitExceeded { limit: Limit::StringLen, offset: 24, .. }),
        "{e:?}"
    );
    // An array of 2^40 u8.
    let mut v = header(0, 1);
    string(&mut v, b"k");
    v.extend_from_slice(&9u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let e = Gguf::parse(&v).unwrap_err();
    assert!(matches!(e, GgufError::LimitExceeded { limit: Limit::ArrayLen, .. }), "{e:?}");
    // Arrays nested three deep.
    let mut v = header(0, 1);
    string(&mut v, b"k");
    v.extend_from_slice(&9u32.to_le_bytes()); // value type: array
    for _ in 0..3 {
        v.extend_from_slice(&9u32.to_le_bytes()); // elements are arrays
        v.extend_from_slice(&1u64.to_le_bytes()); // one of them
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    let e = Gguf::parse(&v).unwrap_err();
    assert!(matches!(e, GgufError::LimitExceeded { limit: Limit::NestingDepth, .. }), "{e:?}");
    // Unknown value type.
    let mut v = header(0, 1);
    string(&mut v, b"k");
    v.extend_from_slice(&77u32.to_le_bytes());
    assert!(matches!(Gguf::parse(&v).unwrap_err(), GgufError::BadValueType { ty: 77, .. }));
    // Five dimensions.
    let mut w = GgufWriter::new();
    w.tensor("t", &[1, 1, 1, 1, 1], ty::F32, vec![0; 4]);
    let e = Gguf::parse(&w.to_bytes()).unwrap_err();
    assert!(matches!(e, GgufError::LimitExceeded { limit: Limit::Dims, value: 5, .. }), "{e:?}");
    // Alignment not a power of two.
    let mut w = GgufWriter::new();
    w.meta("general.alignment", MetaValue::U32(48));
    assert!(matches!(
        Gguf::parse(&w.to_bytes()).unwrap_err(),
        GgufError::LimitExceeded { limit: Limit::Alignment, .. }
    ));
}

#[test]
fn offsets_types_and_shapes() {
    // Offset past the end.
    let mut w = GgufWriter::new();
    w.tensor("a", &[8], ty::F32, vec![0; 32]);
    w.tensors[0].offset = Some(1 << 20);
    let e = Gguf::parse(&w.to_bytes()).unwrap_err();
    assert!(matches!(e, GgufError::TensorOutOfBounds { tensor: 0, .. }), "{e:?}");
    assert!(e.to_string().contains("past the end"));
    // Offset overflowing u64.
    w.tensors[0].offset = Some(u64::MAX - 31);
    assert!(matches!(Gguf::parse(&w.to_bytes()).unwrap_err(), GgufError::TensorOutOfBounds { .. }));
    // Misaligned offset.
    let mut w = GgufWriter::new();
    w.tensor("a", &[8], ty::F32, vec![0; 32]);
    w.tensor("b", &[8], ty::F32, vec![0; 32]);
    w.tensors[1].offset = Some(4);
    assert_eq!(
        Gguf::parse(&w.to_bytes()).unwrap_err(),
        GgufError::Misaligned { tensor: 1, offset: 4 }
    );
    // Unknown tensor type; and 36 (I2_S) outside a BitNet file is ambiguous, so unknown too.
    for id in [99u32, 36] {
        let mut w = GgufWriter::new();
        w.tensor("a", &[128, 1], id, vec![0; 64]);
        assert_eq!(
            Gguf::parse(&w.to_bytes()).unwrap_err(),
            GgufError::UnknownTensorType { tensor: 0, ty: id }
        );
    }
    // ... but I2_S in a bitnet file is fine.
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::Str("bitnet-b1.58".into()));
    w.tensor("a", &[128, 1], 36, vec![0; 64]);
    assert_eq!(Gguf::parse(&w.to_bytes()).unwrap().tensor("a").unwrap().data.len(), 64);
    // Q8_0 with ne0 not a multiple of 32; a zero dimension.
    let mut w = GgufWriter::new();
    w.tensor("a", &[33], ty::Q8_0, vec![0; 64]);
    assert_eq!(Gguf::parse(&w.to_bytes()).unwrap_err(), GgufError::BadShape { tensor: 0 });
    let mut w = GgufWriter::new();
    w.tensor("a", &[0, 4], ty::F32, vec![]);
    assert_eq!(Gguf::parse(&w.to_bytes()).unwrap_err(), GgufError::BadShape { tensor: 0 });
}

/// Rewrites one tensor's shape in the fixture (same data size), to test model-level checks.
fn with_tensor_changed(name: &str, f: impl Fn(&mut tern_gguf_writer::TensorEntry)) -> Vec<u8> {
    let b = tiny();
    let g = Gguf::parse(&b).unwrap();
    let mut w = GgufWriter::new();
    for kv in g.metadata_iter() {
        let (k, v) = kv.unwrap();
        let k = std::str::from_utf8(k).unwrap();
        if let Some(mv) = convert(&v) {
            w.meta(k, mv);
        }
    }
    for t in g.tensors() {
        let t = t.unwrap();
        w.tensor(t.name_str(), &t.ne[..t.n_dims as usize], t.ty.id(), t.data.to_vec());
        if t.name_str() == name {
            f(w.tensors.last_mut().unwrap());
        }
    }
    w.to_bytes()
}

fn convert(v: &tern_runtime::gguf::Value<'_>) -> Option<MetaValue> {
    use tern_runtime::gguf::Value as V;
    Some(match *v {
        V::U8(x) => MetaValue::U8(x),
        V::I8(x) => MetaValue::I8(x),
        V::U16(x) => MetaValue::U16(x),
        V::I16(x) => MetaValue::I16(x),
        V::U32(x) => MetaValue::U32(x),
        V::I32(x) => MetaValue::I32(x),
        V::F32(x) => MetaValue::F32(x),
        V::Bool(x) => MetaValue::Bool(x),
        V::String(s) => MetaValue::Bytes(s.to_vec()),
        V::U64(x) => MetaValue::U64(x),
        V::I64(x) => MetaValue::I64(x),
        V::F64(x) => MetaValue::F64(x),
        V::Array(a) => match a.elem_type() {
            8 => MetaValue::Array {
                elem: 8,
                items: a.strings().map(|s| MetaValue::Bytes(s.unwrap().to_vec())).collect(),
            },
            6 => MetaValue::f32_array(a.f32s()),
            _ => MetaValue::Array {
                elem: 5,
                items: a.ints().map(|x| MetaValue::I32(x as i32)).collect(),
            },
        },
    })
}

#[test]
fn model_level_errors_name_the_tensor() {
    // A rewritten copy still loads.
    let ok = with_tensor_changed("none", |_| {});
    let g = Gguf::parse(&ok).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    Weights::from_gguf(&g, &c).unwrap();
    // Wrong shape (same byte size).
    let bad = with_tensor_changed("blk.1.attn_q.weight", |t| t.ne = vec![128, 512]);
    let g = Gguf::parse(&bad).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    let e = Weights::from_gguf(&g, &c).unwrap_err();
    assert!(matches!(e, ModelError::ShapeMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("blk.1.attn_q.weight"), "{e}");
    // Missing tensor.
    let bad =
        with_tensor_changed("blk.3.ffn_down.weight", |t| t.name = "blk.3.ffn_dowm.weight".into());
    let g = Gguf::parse(&bad).unwrap();
    let e = Weights::from_gguf(&g, &Config::from_gguf(&g).unwrap()).unwrap_err();
    assert_eq!(e.to_string(), "missing tensor blk.3.ffn_down.weight");
    // Wrong type for a norm.
    let bad = with_tensor_changed("output_norm.weight", |t| {
        t.ty = ty::F16;
        t.data.truncate(512);
    });
    let g = Gguf::parse(&bad).unwrap();
    let e = Weights::from_gguf(&g, &Config::from_gguf(&g).unwrap()).unwrap_err();
    assert!(matches!(e, ModelError::UnsupportedTensorType { ty: GgmlType::F16, .. }), "{e:?}");
}

#[test]
fn unknown_arch_and_missing_keys() {
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::Str("gpt-neox".into()));
    let b = w.to_bytes();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(Config::from_gguf(&g).unwrap_err(), ModelError::UnsupportedArch);
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::Str("bitnet-b1.58".into()));
    let b = w.to_bytes();
    let g = Gguf::parse(&b).unwrap();
    assert!(matches!(Config::from_gguf(&g).unwrap_err(), ModelError::MissingKey { .. }));
}

fn exercise(bytes: &[u8]) {
    if let Ok(g) = Gguf::parse(bytes) {
        for kv in g.metadata_iter() {
            if let Ok((_, v)) = kv {
                if let Some(a) = v.as_array() {
                    a.strings().for_each(drop);
                    a.ints().for_each(drop);
                }
            }
        }
        g.tensors().for_each(drop);
        if let Ok(c) = Config::from_gguf(&g) {
            let _ = Weights::from_gguf(&g, &c);
            let _ = tern_runtime::session::Session::plan(&g, &Default::default());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut v = b"GGUF\x03\0\0\0".to_vec();
        v.extend_from_slice(&bytes);
        exercise(&bytes);
        exercise(&v);
    }

    #[test]
    fn mutated_fixture_never_panics(edits in proptest::collection::vec((0usize..70_000, any::<u8>()), 1..8), cut in 0usize..2_000_000) {
        let mut b = tiny();
        for (at, val) in edits {
            let at = at % b.len();
            b[at] = val;
        }
        let cut = cut.min(b.len());
        exercise(&b[..cut]);
        exercise(&b);
    }
}
