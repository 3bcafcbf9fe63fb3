//! bitnet.cpp TL1 files end to end (FORMATS §1.3, §2.3; `runtime/src/model/tl1.rs`).
//!
//! The fixture `tiny-trained.tl1.gguf` (written by bitnet.cpp's converter, `--outtype tl1`) is
//! rebuilt byte for byte from `tests/data/tiny-trained.tl1.{head,json}` and the I2_S file: the
//! TL1 tensors are re-packed here from the I2_S-decoded weights with the tiling the converter
//! used, and the SHA-256 of the result must equal the fixture's. Then:
//! - tern infers each shape's tiling from the file alone and finds the converter's;
//! - its logits equal the I2_S file's bit for bit (batched, one token at a time, greedy steps),
//!   with 1 and 2 threads and every kernel tier this CPU runs, including a layer computed in
//!   place by the TL1 GEMV;
//! - the arena plan counts the repacked layers exactly;
//! - impossible, missing, ambiguous tilings and invalid indices are typed errors.

use std::path::PathBuf;
use tern_gguf_writer::{GgufWriter, MetaValue};
use tern_kernels::formats::{i2s, tl1 as fmt};
use tern_kernels::{CpuFeatures, KernelSet, Tier};
use tern_runtime::arena::Arena;
use tern_runtime::engine::{Engine, Logits, Plan, PlanOptions};
use tern_runtime::gguf::{GgmlType, Gguf, Value};
use tern_runtime::model::tl1::{self, Layout, Source};
use tern_runtime::model::{Config, LinearData, ModelError, TensorName, Weights};
use tern_runtime::par::{Parallel, Serial};
use tern_runtime::session::{Session, SessionOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

include!("common/two_threads.rs");

fn i2s_file() -> Vec<u8> {
    std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap()
}

/// Ternary values of an I2_S tensor of `m` rows × `k`.
fn decode_i2s(packed: &[u8], m: usize, k: usize) -> Vec<i8> {
    (0..m * k).map(|i| i2s::value_of_code(i2s::code_at(packed, i))).collect()
}

/// The converter's tiling for the tiny-trained shapes (fixtures README).
fn converter_tiling(m: usize, k: usize) -> fmt::Tiling {
    let [big_m, big_k, bm] = match (m, k) {
        (256, 256) => [128, 64, 32],
        (128, 256) => [64, 128, 64],
        (768, 256) => [256, 64, 32],
        (256, 768) => [128, 128, 64],
        s => panic!("no tiling for {s:?}"),
    };
    fmt::Tiling { big_m, big_k, bm }
}

/// Rebuilds bitnet.cpp's `tiny-trained.tl1.gguf` and checks its SHA-256.
fn tl1_file() -> Vec<u8> {
    use sha2::Digest;
    let base = i2s_file();
    let g = Gguf::parse(&base).unwrap();
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("tiny-trained.tl1.json")).unwrap()).unwrap();
    let mut out = std::fs::read(data("tiny-trained.tl1.head")).unwrap();
    let ds = j["data_start"].as_u64().unwrap() as usize;
    assert_eq!(out.len(), ds);
    out.resize(j["bytes"].as_u64().unwrap() as usize, 0);
    for t in j["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let off = ds + t["offset"].as_u64().unwrap() as usize;
        let n = t["nbytes"].as_u64().unwrap() as usize;
        let src = g.tensor(name).unwrap_or_else(|| panic!("{name} missing in the i2_s file"));
        if t["type"] == "TL1" {
            let (k, m) = (src.ne[0] as usize, src.ne[1] as usize);
            let ti: Vec<usize> = t["tiling"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let tiling = fmt::Tiling { big_m: ti[0], big_k: ti[1], bm: ti[2] };
            assert_eq!(tiling, converter_tiling(m, k));
            let w = decode_i2s(src.data, m, k);
            fmt::pack(&w, m, k, tiling, &mut out[off..off + m * k / 4]).unwrap();
            let h = t["tail_hex"].as_str().unwrap();
            for i in 0..32 {
                out[off + n - 32 + i] = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
            }
        } else {
            out[off..off + n].copy_from_slice(&src.data[..n]);
        }
    }
    let hex: String = sha2::Sha256::digest(&out).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, j["sha256"].as_str().unwrap(), "rebuilt TL1 file differs from the fixture");
    out
}

/// The file with metadata `extra` added and `edit` applied to every tensor's bytes
/// (re-written with `tern-gguf-writer`).
fn rewrite(file: &[u8], extra: &[(&str, MetaValue)], edit: &dyn Fn(&str, &mut Vec<u8>)) -> Vec<u8> {
    let g = Gguf::parse(file).unwrap();
    let mut w = GgufWriter::new();
    for kv in g.metadata_iter() {
        let (k, v) = kv.unwrap();
        let mv = match v {
            Value::U8(x) => MetaValue::U8(x),
            Value::I8(x) => MetaValue::I8(x),
            Value::U16(x) => MetaValue::U16(x),
            Value::I16(x) => MetaValue::I16(x),
            Value::U32(x) => MetaValue::U32(x),
            Value::I32(x) => MetaValue::I32(x),
            Value::U64(x) => MetaValue::U64(x),
            Value::I64(x) => MetaValue::I64(x),
            Value::F32(x) => MetaValue::F32(x),
            Value::F64(x) => MetaValue::F64(x),
            Value::Bool(x) => MetaValue::Bool(x),
            Value::String(s) => MetaValue::Bytes(s.to_vec()),
            Value::Array(a) => match a.elem_type() {
                8 => MetaValue::Array {
                    elem: 8,
                    items: a.strings().map(|s| MetaValue::Bytes(s.unwrap().to_vec())).collect(),
                },
                5 => MetaValue::i32_array(a.ints().map(|x| x as i32)),
                4 => MetaValue::Array {
                    elem: 4,
                    items: a.ints().map(|x| MetaValue::U32(x as u32)).collect(),
                },
                6 => MetaValue::f32_array(a.f32s()),
                e => panic!("array of type {e}"),
            },
        };
        w.meta(std::str::from_utf8(k).unwrap(), mv);
    }
    for (k, v) in extra {
        w.meta(k, v.clone());
    }
    for t in g.tensors() {
        let t = t.unwrap();
        let mut d = t.data.to_vec();
        edit(t.name_str(), &mut d);
        w.tensor(t.name_str(), &t.ne[..t.n_dims as usize], t.ty.id(), d);
    }
    w.to_bytes()
}

fn load_err(file: &[u8]) -> ModelError {
    let g = Gguf::parse(file).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    Weights::from_gguf(&g, &c).err().expect("the load must fail")
}

#[test]
fn rebuilt_file_is_bitnet_cpp_tl1() {
    let f = tl1_file();
    let g = Gguf::parse(&f).unwrap();
    assert_eq!(g.get_u64("general.file_type"), Some(38));
    let n = g.tensors().filter(|t| t.as_ref().unwrap().ty == GgmlType::TL1).count();
    assert_eq!(n, 28);
}

#[test]
fn tiling_is_inferred_from_the_file() {
    let f = tl1_file();
    let g = Gguf::parse(&f).unwrap();
    for (m, k) in [(256, 256), (128, 256), (768, 256), (256, 768)] {
        let inf = tl1::infer(&g, m, k, TensorName::new(b"test")).unwrap();
        let want = converter_tiling(m, k);
        eprintln!(
            "[M {m}, K {k}]: {} tilings, {} layouts; chose {:?} by {:?}, score {:.1} vs runner-up {:.1} \
             (converter: {want:?})",
            inf.n_candidates, inf.n_classes, inf.tiling, inf.source, inf.score, inf.runner_up
        );
        assert_eq!(inf.source, Source::Score);
        assert_eq!(Layout::of(inf.tiling, m, k), Layout::of(want, m, k), "[{m}, {k}]");
        assert!(inf.score >= tl1::MARGIN * inf.runner_up, "margin too thin on [{m}, {k}]");
    }
    // Every linear loads as TL1 with the converter's byte order.
    let c = Config::from_gguf(&g).unwrap();
    let w = Weights::from_gguf(&g, &c).unwrap();
    for l in 0..c.n_layer {
        for lin in w.linears(l) {
            let LinearData::Tl1 { tiling, .. } = lin.data else { panic!("not TL1") };
            let want = converter_tiling(lin.m, lin.k);
            assert_eq!(Layout::of(tiling, lin.m, lin.k), Layout::of(want, lin.m, lin.k));
        }
    }
}

/// Logits of `ids` (all rows, batched), then 6 greedy steps, then the prompt again one token per
/// call.
fn run(file: &[u8], k: KernelSet, par: &dyn Parallel, ids: &[u32]) -> Vec<f32> {
    let g = Gguf::parse(file).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    let mut w = Weights::from_gguf(&g, &c).unwrap();
    w.prepare_for(&k);
    if k.info.tier == Tier::Tl1 {
        assert_eq!(w.repack_bytes(), 0, "the tl1 tier computes TL1 layers in place");
        assert!(w.tl1_table_count() > 0);
    }
    with_engine(c, w, k, |e| logits_of(e, par, ids))
}

/// The logits [`run`] collects, from a built engine.
fn logits_of(e: &mut Engine<'_>, par: &dyn Parallel, ids: &[u32]) -> Vec<f32> {
    e.eval(ids, Logits::All, par).unwrap();
    let mut out = e.logits().to_vec();
    for _ in 0..6 {
        let id = tern_runtime::sampler::argmax(e.last_logits()) as u32;
        e.eval(&[id], Logits::Last, par).unwrap();
        out.extend_from_slice(e.last_logits());
    }
    e.reset();
    for &t in ids {
        e.eval(&[t], Logits::Last, par).unwrap();
        out.extend_from_slice(e.last_logits());
    }
    out
}

#[test]
fn lane_layout_gives_the_same_logits_on_every_set() {
    // I2_S tensors copied into the arena in lane order at load (what the vnni set asks for; TL1
    // tensors repacked straight into it), then computed by every set this CPU runs: with its own
    // kernels when it reads lanes, otherwise with the scalar kernels of that layout (as after
    // `tern bench` swaps in the reference kernels for its gate). Bit-identical to the I2_S file
    // read in its own order.
    let ids = &prompt_ids()[0];
    let want = run(&i2s_file(), KernelSet::REFERENCE, &Serial, ids);
    let f = CpuFeatures::detect();
    for file in [i2s_file(), tl1_file()] {
        let g = Gguf::parse(&file).unwrap();
        let c = Config::from_gguf(&g).unwrap();
        for k in Tier::ALL.iter().filter_map(|&t| KernelSet::for_tier(f, t)) {
            if k.info.tier == Tier::Tl1 {
                continue; // computes TL1 layers in place: nothing to put in lane order
            }
            let mut w = Weights::from_gguf(&g, &c).unwrap();
            w.prepare_for(&k);
            w.i2s_layout = i2s::Layout::Lanes;
            assert_eq!(
                w.repack_bytes(),
                w.layers.len() * {
                    let l = &w.layers[0];
                    [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                        .iter()
                        .map(|lin| tern_runtime::arena::slot_bytes::<u8>(lin.k * lin.m / 4))
                        .sum::<usize>()
                }
            );
            for par in [&Serial as &dyn Parallel, &TwoThreads] {
                let got = with_engine(c, w.clone(), k, |e| {
                    for l in 0..e.weights.layers.len() {
                        for lin in e.weights.linears(l) {
                            assert!(matches!(
                                lin.data,
                                LinearData::I2s { layout: i2s::Layout::Lanes, .. }
                            ));
                        }
                    }
                    logits_of(e, par, ids)
                });
                let what = format!("lanes, {}, {} threads", k.info.name, par.threads());
                assert_bits_eq(&got, &want, &what);
            }
        }
    }
}

/// Builds an engine for `w` in an arena of exactly its plan (checked) and runs `f` on it.
fn with_engine<R>(
    c: Config,
    w: Weights<'_>,
    k: KernelSet,
    f: impl FnOnce(&mut Engine<'_>) -> R,
) -> R {
    let opts = PlanOptions { n_ctx: 256, n_batch: 256, logits_rows: 256 };
    let plan = Plan::for_weights(&c, &opts, &w);
    let mut buf = vec![0u8; plan.total() + 64];
    let pad = buf.as_ptr().align_offset(64);
    let mut a = Arena::new(&mut buf[pad..]);
    let mut e = Engine::new(c, w, k, opts, &mut a).unwrap();
    assert_eq!(a.used(), plan.total(), "the plan must count every arena byte");
    f(&mut e)
}

fn prompt_ids() -> Vec<Vec<u32>> {
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("tiny-trained.ref.json")).unwrap()).unwrap();
    j["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ["sort", "perl", "chat", "bos_only"].contains(&p["name"].as_str().unwrap()))
        .map(|p| p["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect())
        .collect()
}

fn assert_bits_eq(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    assert_eq!(diff, 0, "{what}: {diff} of {} logits differ", a.len());
}

#[test]
fn logits_equal_the_i2s_file_bit_for_bit() {
    let tl = tl1_file();
    let base = i2s_file();
    let f = CpuFeatures::detect();
    let mut sets = vec![KernelSet::REFERENCE];
    for tier in Tier::ALL {
        if let Some(k) = KernelSet::for_tier(f, tier)
            && tier != Tier::Reference
        {
            sets.push(k);
        }
    }
    for ids in prompt_ids() {
        let want = run(&base, KernelSet::REFERENCE, &Serial, &ids);
        for &k in &sets {
            for par in [&Serial as &dyn Parallel, &TwoThreads] {
                let got = run(&tl, k, par, &ids);
                let what =
                    format!("{} tokens, {}, {} threads", ids.len(), k.info.name, par.threads());
                assert_bits_eq(&got, &want, &what);
            }
        }
    }
}

#[test]
fn tl1_gemv_in_place_equals_the_repack() {
    // A layer that is not repacked (K not a multiple of 128, or the tl1 tier) is computed in
    // place by the set's TL1 GEMV; force that path on every layer, with every set this CPU runs,
    // and compare with the I2_S file.
    let tl = tl1_file();
    let base = i2s_file();
    let g = Gguf::parse(&tl).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    let ids = &prompt_ids()[0];
    let want = run(&base, KernelSet::REFERENCE, &Serial, ids);
    let f = CpuFeatures::detect();
    for k in Tier::ALL.iter().filter_map(|&t| KernelSet::for_tier(f, t)) {
        for par in [&Serial as &dyn Parallel, &TwoThreads] {
            let mut w = Weights::from_gguf(&g, &c).unwrap();
            w.compute_tl1_in_place();
            assert_eq!(w.repack_bytes(), 0);
            assert_eq!(w.tl1_table_count(), c.n_ff / 2, "tables for the widest layer (down)");
            with_engine(c, w, k, |e| {
                e.eval(ids, Logits::All, par).unwrap();
                let n = ids.len() * c.n_vocab;
                let what = format!("TL1 GEMV in place, {}, {} threads", k.info.name, par.threads());
                assert_bits_eq(e.logits(), &want[..n], &what);
                let id = tern_runtime::sampler::argmax(e.last_logits()) as u32;
                e.eval(&[id], Logits::Last, par).unwrap();
                let one = &want[n..n + c.n_vocab];
                assert_bits_eq(e.last_logits(), one, &format!("{what}, one token"));
            });
        }
    }
}

#[test]
fn session_plan_counts_the_repack() {
    let tl = tl1_file();
    let g = Gguf::parse(&tl).unwrap();
    let opts = SessionOptions { n_ctx: 128, ..SessionOptions::default() };
    let plan = Session::plan(&g, &opts).unwrap();
    // 4 layers × (q, o: 256·256/4; k, v: 128·256/4; gate, up, down: 768·256/4) bytes.
    let per_layer = 2 * 16384 + 2 * 8192 + 3 * 49152;
    assert_eq!(plan.engine.repacked, 4 * per_layer);
    let base = i2s_file();
    let gb = Gguf::parse(&base).unwrap();
    let pb = Session::plan(&gb, &opts).unwrap();
    assert_eq!(pb.engine.repacked, 0);
    assert_eq!(plan.total, pb.total + 4 * per_layer);
    // Exactly the planned bytes are enough.
    let mut arena = vec![0u8; plan.total];
    let mut s = Session::new(g, &mut arena, opts).unwrap();
    s.feed(&[2043, 100, 200], &Serial).unwrap();
    assert!(s.engine.last_logits().iter().all(|v| v.is_finite()));
    let want = s.engine.last_logits().to_vec();

    // A set of the tl1 tier computes the TL1 layers in place: no repack, K/2 tables instead.
    // (The reference kernels labelled tl1, so that this runs on every host.)
    let mut k = KernelSet::REFERENCE;
    k.info.tier = Tier::Tl1;
    let g = Gguf::parse(&tl).unwrap();
    let opts = SessionOptions { n_ctx: 128, kernels: k, ..SessionOptions::default() };
    let lut_plan = Session::plan(&g, &opts).unwrap();
    assert_eq!(lut_plan.engine.repacked, 0);
    assert_eq!(lut_plan.engine.tl1_tables, 768 / 2 * 32);
    assert_eq!(lut_plan.total, pb.total + 768 / 2 * 32);
    let mut arena = vec![0u8; lut_plan.total];
    let mut s = Session::new(g, &mut arena, opts).unwrap();
    s.feed(&[2043, 100, 200], &Serial).unwrap();
    assert_bits_eq(s.engine.last_logits(), &want, "tl1 tier session");
}

#[test]
fn override_key_is_used_and_checked() {
    let tl = tl1_file();
    // The converter's tiling given explicitly: loads, marked as an override.
    let ok = rewrite(
        &tl,
        &[(tl1::OVERRIDE_KEY, MetaValue::i32_array([256, 256, 128, 64, 32]))],
        &|_, _| {},
    );
    let g = Gguf::parse(&ok).unwrap();
    let inf = tl1::infer(&g, 256, 256, TensorName::new(b"x")).unwrap();
    assert_eq!(
        (inf.source, inf.tiling),
        (Source::Override, fmt::Tiling { big_m: 128, big_k: 64, bm: 32 })
    );
    // An impossible tiling (BM 96 does not divide M 256): a typed error naming the tensor.
    let bad = rewrite(
        &tl,
        &[(tl1::OVERRIDE_KEY, MetaValue::i32_array([768, 256, 256, 64, 32, 256, 256, 96, 64, 32]))],
        &|_, _| {},
    );
    let e = load_err(&bad);
    match e {
        ModelError::Tl1BadTiling { tensor, m: 256, k: 256, tiling: [96, 64, 32] } => {
            assert_eq!(tensor.as_str(), "blk.0.attn_q.weight");
        }
        e => panic!("unexpected {e:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("blk.0.attn_q.weight")
            && msg.contains("BM 96")
            && msg.contains("tern.tl1.tiling"),
        "{msg}"
    );
    // bm must be 32 or 64 even when the divisibility holds.
    let bad = rewrite(
        &tl,
        &[(tl1::OVERRIDE_KEY, MetaValue::i32_array([256, 256, 128, 64, 16]))],
        &|_, _| {},
    );
    assert!(matches!(load_err(&bad), ModelError::Tl1BadTiling { tiling: [128, 64, 16], .. }));
}

#[test]
fn invalid_indices_are_rejected() {
    let tl = tl1_file();
    let bad = rewrite(&tl, &[], &|name, d| {
        if name == "blk.2.ffn_up.weight" {
            d[100] = 0x4b; // low nibble 11
        }
    });
    match load_err(&bad) {
        ModelError::Tl1BadIndex { tensor } => assert_eq!(tensor.as_str(), "blk.2.ffn_up.weight"),
        e => panic!("unexpected {e:?}"),
    }
}

/// A GGUF holding one TL1 tensor `m × k` with `packed` (plus a zero tail).
fn one_tensor(m: usize, k: usize, mut packed: Vec<u8>) -> Vec<u8> {
    packed.resize(m * k / 4 + 32, 0);
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::Str("bitnet-b1.58".into()));
    w.meta("general.file_type", MetaValue::U32(38));
    w.tensor("t.weight", &[k as u64, m as u64], 38, packed);
    w.to_bytes()
}

#[test]
fn shapes_without_a_tiling_and_ambiguous_data_are_errors() {
    // M = 48 is not a multiple of 32: no tiling.
    let f = one_tensor(48, 256, vec![0x44; 48 * 64]);
    let g = Gguf::parse(&f).unwrap();
    let e = tl1::infer(&g, 48, 256, TensorName::new(b"t.weight")).unwrap_err();
    assert!(matches!(e, ModelError::Tl1NoTiling { m: 48, k: 256, .. }), "{e:?}");
    // One layout only (M = 32, K = 8: bm 32, BM 32, BK 8): decided without looking at the data.
    let f = one_tensor(32, 8, vec![0x44; 64]);
    let g = Gguf::parse(&f).unwrap();
    let inf = tl1::infer(&g, 32, 8, TensorName::new(b"t.weight")).unwrap();
    assert_eq!((inf.source, inf.n_classes), (Source::Unique, 1));
    // Random ternary weights have no row/column structure: every layout scores alike, and the
    // error lists the candidates instead of guessing.
    let (m, k) = (256, 256);
    let mut x = 0x9e3779b97f4a7c15u64;
    let w: Vec<i8> = (0..m * k)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 3) as i8 - 1
        })
        .collect();
    let mut p = vec![0u8; m * k / 4];
    fmt::pack(&w, m, k, converter_tiling(m, k), &mut p).unwrap();
    let f = one_tensor(m, k, p);
    let g = Gguf::parse(&f).unwrap();
    let e = tl1::infer(&g, m, k, TensorName::new(b"t.weight")).unwrap_err();
    match e {
        ModelError::Tl1AmbiguousTiling { n_classes, near, .. } => {
            assert!(near >= 2 && n_classes >= near, "{e:?}");
        }
        e => panic!("unexpected {e:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("t.weight") && msg.contains("tern.tl1.tiling"), "{msg}");
    eprintln!("{msg}");
}
