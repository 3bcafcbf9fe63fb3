//! Tokenizer golden tests against Hugging Face `tokenizers`.
//!
//! Data (all in `tests/data/`):
//! - `small-bpe-tokenizer.json`, `small-bpe-cases.jsonl` and `llama3-cases.jsonl` are copies of
//!   the team fixtures (`fixtures/tokenizer/`; `llama3-cases.jsonl` is `cases.jsonl`).
//! - `llama3-tokenizer.json.gz` is the fixture `llama3-tokenizer.json`, gzipped.
//! - `*-extra-cases.jsonl` and `small-bpe-gpt2-cases.jsonl` were produced by
//!   `gen-tokenizer-extra-cases.py` with `tokenizers` 0.23.3 (the GPT-2 file with the small
//!   vocabulary and a `ByteLevel(use_regex=true)` pre-tokenizer, i.e. the GPT-2 regex).
//! - `tiny-trained.i2_s.gguf` carries the small vocabulary in its `tokenizer.ggml.*` metadata.
//!
//! Every case is encoded with `allow_special = true` (the fixtures were made with Hugging Face's
//! default, which matches added tokens) and must give exactly the reference ids. The Llama-3
//! vocabulary reaches the tokenizer through a GGUF file written by `tern-gguf-writer` and read
//! by the runtime's parser, as a real model would.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use tern_gguf_writer::{GgufWriter, MetaValue};
use tern_runtime::arena::{ALIGN, Arena};
use tern_runtime::gguf::Gguf;
use tern_runtime::tokenizer::{
    NoTypes, PreTokenizer, StreamDecoder, TokenKind, TokenizeError, Tokenizer, TokenizerConfig,
    VocabStats,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/");
/// BPE scratch used by the tests (the longest piece in the cases is far shorter).
const MAX_PIECE: usize = 4096;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A vocabulary read from a `tokenizer.json`.
struct JsonVocab {
    tokens: Vec<Vec<u8>>,
    types: Vec<i32>,
    merges: Vec<Vec<u8>>,
}

fn parse_tokenizer_json(bytes: &[u8]) -> JsonVocab {
    let j: Value = serde_json::from_slice(bytes).unwrap();
    let vocab = j["model"]["vocab"].as_object().unwrap();
    let added = j["added_tokens"].as_array().unwrap();
    let n = vocab
        .values()
        .map(|v| v.as_u64().unwrap())
        .chain(added.iter().map(|a| a["id"].as_u64().unwrap()))
        .max()
        .unwrap() as usize
        + 1;
    let mut tokens = vec![Vec::new(); n];
    let mut types = vec![1i32; n];
    for (s, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = s.as_bytes().to_vec();
    }
    for a in added {
        let id = a["id"].as_u64().unwrap() as usize;
        tokens[id] = a["content"].as_str().unwrap().as_bytes().to_vec();
        types[id] = if a["special"].as_bool().unwrap() { 3 } else { 4 };
    }
    let merges = j["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Array(p) => {
                format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()).into_bytes()
            }
            _ => panic!("bad merge {m}"),
        })
        .collect();
    JsonVocab { tokens, types, merges }
}

/// A tokenizer-only GGUF file with `v`'s vocabulary.
fn write_gguf(v: &JsonVocab, pre: Option<&str>, bos: u32, eos: u32) -> Vec<u8> {
    let strs = |items: &[Vec<u8>]| MetaValue::Array {
        elem: 8,
        items: items.iter().map(|t| MetaValue::Bytes(t.clone())).collect(),
    };
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::Str("bitnet-25".into()));
    w.meta("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    if let Some(p) = pre {
        w.meta("tokenizer.ggml.pre", MetaValue::Str(p.into()));
    }
    w.meta("tokenizer.ggml.tokens", strs(&v.tokens));
    w.meta("tokenizer.ggml.token_type", MetaValue::i32_array(v.types.iter().copied()));
    w.meta("tokenizer.ggml.merges", strs(&v.merges));
    w.meta("tokenizer.ggml.bos_token_id", MetaValue::U32(bos));
    w.meta("tokenizer.ggml.eos_token_id", MetaValue::U32(eos));
    w.meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
    w.to_bytes()
}

fn llama3_gguf() -> &'static [u8] {
    static G: OnceLock<Vec<u8>> = OnceLock::new();
    G.get_or_init(|| {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&data("llama3-tokenizer.json.gz")[..])
            .read_to_end(&mut json)
            .unwrap();
        let v = parse_tokenizer_json(&json);
        assert_eq!(v.tokens.len(), 128256);
        assert_eq!(v.merges.len(), 280147);
        // Like the official BitNet file: no `tokenizer.ggml.pre` (→ Llama-3 regex, DESIGN §5).
        write_gguf(&v, None, 128000, 128001)
    })
}

/// An aligned arena of exactly `bytes` bytes over `storage`.
fn arena(storage: &mut Vec<u8>, bytes: usize) -> Arena<'_> {
    *storage = vec![0u8; bytes + ALIGN];
    let off = storage.as_ptr().align_offset(ALIGN);
    Arena::new(&mut storage[off..off + bytes])
}

struct Case {
    text: String,
    ids: Vec<u32>,
}

fn cases(name: &str) -> Vec<Case> {
    let text = String::from_utf8(data(name)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Case {
                text: v["text"].as_str().unwrap().to_owned(),
                ids: v["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
            }
        })
        .collect()
}

fn encode(t: &Tokenizer<'_>, text: &str, allow_special: bool) -> Vec<u32> {
    let mut out = vec![0u32; text.len() + 2];
    let n = t.encode(text, false, allow_special, &mut out).unwrap();
    out.truncate(n);
    out
}

fn decode(t: &Tokenizer<'_>, ids: &[u32]) -> Vec<u8> {
    let total: usize = ids.iter().map(|&i| t.token_bytes(i).unwrap().len()).sum();
    let mut out = vec![0u8; total];
    let n = t.decode_bytes(ids, &mut out).unwrap();
    assert_eq!(n, total);
    out
}

/// Runs every case of `file`; returns how many passed and panics listing the failures.
fn run_cases(t: &Tokenizer<'_>, file: &str) -> usize {
    let cases = cases(file);
    let mut failures = Vec::new();
    for c in &cases {
        let got = encode(t, &c.text, true);
        if got != c.ids {
            failures.push(format!("{:?}\n  want {:?}\n  got  {:?}", c.text, c.ids, got));
        }
        // Decoding gives the text back (special tokens decode to their text).
        assert_eq!(decode(t, &got), c.text.as_bytes(), "round trip of {:?}", c.text);
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{file}: {} of {} cases match", cases.len(), cases.len());
    cases.len()
}

fn with_gguf<R>(file: &[u8], f: impl FnOnce(&Tokenizer<'_>) -> R) -> R {
    let g = Gguf::parse(file).unwrap();
    let need = Tokenizer::gguf_arena_bytes(&g, MAX_PIECE).unwrap();
    let mut storage = Vec::new();
    let mut a = arena(&mut storage, need);
    let t0 = Instant::now();
    let t = Tokenizer::from_gguf(&g, &mut a, MAX_PIECE).unwrap();
    eprintln!(
        "built {} tokens / {} merges in {:.1} ms, {} arena bytes",
        t.n_vocab(),
        VocabStats::from_gguf(&g).unwrap().n_merges,
        t0.elapsed().as_secs_f64() * 1e3,
        need
    );
    // The plan is exactly what the build took.
    assert_eq!(a.used(), need);
    f(&t)
}

fn small_bpe_json() -> JsonVocab {
    parse_tokenizer_json(&data("small-bpe-tokenizer.json"))
}

fn build_from_json<R>(v: &JsonVocab, pre: PreTokenizer, f: impl FnOnce(&Tokenizer<'_>) -> R) -> R {
    let stats = VocabStats::measure(
        v.tokens.iter().map(|t| t.as_slice()),
        Some(v.types.iter().copied()),
        v.merges.iter().map(|m| m.as_slice()),
    )
    .unwrap();
    let need = Tokenizer::arena_bytes(&stats, MAX_PIECE);
    let mut storage = Vec::new();
    let mut a = arena(&mut storage, need);
    let cfg = TokenizerConfig { pre, bos: Some(2043), eos: Some(2044), add_bos: true };
    let t = Tokenizer::build(
        &mut a,
        v.tokens.iter().map(|t| t.as_slice()),
        Some(v.types.iter().copied()),
        v.merges.iter().map(|m| m.as_slice()),
        cfg,
        MAX_PIECE,
    )
    .unwrap();
    assert_eq!(a.used(), need);
    f(&t)
}

#[test]
fn small_bpe_cases_from_tokenizer_json() {
    let v = small_bpe_json();
    build_from_json(&v, PreTokenizer::Llama3, |t| {
        assert_eq!(run_cases(t, "small-bpe-cases.jsonl"), 41);
        run_cases(t, "small-bpe-extra-cases.jsonl");
    });
}

#[test]
fn small_bpe_gpt2_regex_cases() {
    let v = small_bpe_json();
    build_from_json(&v, PreTokenizer::Gpt2, |t| {
        run_cases(t, "small-bpe-gpt2-cases.jsonl");
    });
    // And through GGUF metadata with `tokenizer.ggml.pre = "gpt2"`.
    with_gguf(&write_gguf(&v, Some("gpt2"), 2043, 2044), |t| {
        assert_eq!(t.pre_tokenizer(), PreTokenizer::Gpt2);
        run_cases(t, "small-bpe-gpt2-cases.jsonl");
    });
}

#[test]
fn small_bpe_cases_from_model_gguf() {
    let file = data("tiny-trained.i2_s.gguf");
    with_gguf(&file, |t| {
        assert_eq!(t.n_vocab(), 2048);
        assert_eq!(t.pre_tokenizer(), PreTokenizer::Llama3);
        assert_eq!((t.bos(), t.eos(), t.add_bos_default()), (Some(2043), Some(2044), true));
        assert_eq!(t.end_of_generation_ids().collect::<Vec<_>>(), [2044, 2047]);
        assert_eq!(t.token_kind(2047), Some(TokenKind::Control));
        assert_eq!(t.find_token(b"<|eot_id|>"), Some(2047));
        assert_eq!(t.merges_skipped(), 0);
        assert_eq!(run_cases(t, "small-bpe-cases.jsonl"), 41);
        let mut out = [0u32; 8];
        assert_eq!(t.encode("Hi", true, false, &mut out), Ok(3));
        assert_eq!(out[..3], [2043, 39, 72]);
    });
}

#[test]
fn unsupported_pre_tokenizer_is_an_error() {
    let file = write_gguf(&small_bpe_json(), Some("qwen2"), 2043, 2044);
    let g = Gguf::parse(&file).unwrap();
    let mut storage = Vec::new();
    let mut a = arena(&mut storage, 1 << 20);
    let e = Tokenizer::from_gguf(&g, &mut a, 16).unwrap_err();
    assert!(
        matches!(e, TokenizeError::UnsupportedPreTokenizer { name } if name.as_bytes() == b"qwen2")
    );
    assert_eq!(e.to_string(), "unsupported pre-tokenizer \"qwen2\"");
}

#[test]
fn llama3_cases_from_gguf() {
    with_gguf(llama3_gguf(), |t| {
        assert_eq!(t.n_vocab(), 128256);
        assert_eq!(t.merges_skipped(), 0);
        assert_eq!(t.end_of_generation_ids().collect::<Vec<_>>(), [128001, 128009]);
        assert_eq!(t.find_token(b"<|eot_id|>"), Some(128009));
        assert_eq!(t.find_token(b" Hello"), Some(22691));
        assert_eq!(t.token_bytes(1917), Some(&b" world"[..]));
        assert_eq!(run_cases(t, "llama3-cases.jsonl"), 49);
        run_cases(t, "llama3-extra-cases.jsonl");

        // Without allow_special, control-token text is ordinary text.
        let ids = encode(t, "<|begin_of_text|>hi<|eot_id|>", false);
        assert!(ids.iter().all(|&i| i < 128000), "{ids:?}");
        assert_eq!(decode(t, &ids), b"<|begin_of_text|>hi<|eot_id|>");
        assert_eq!(encode(t, "<|eot_id|>", true), [128009]);
    });
}

#[test]
fn llama3_speed() {
    let g = Gguf::parse(llama3_gguf()).unwrap();
    let need = Tokenizer::gguf_arena_bytes(&g, MAX_PIECE).unwrap();
    let mut storage = Vec::new();
    let mut a = arena(&mut storage, need);
    let t0 = Instant::now();
    let t = Tokenizer::from_gguf(&g, &mut a, MAX_PIECE).unwrap();
    let build = t0.elapsed();
    // A ~2 KB prompt of mixed prose, code and numbers.
    let mut prompt = String::new();
    for c in cases("llama3-cases.jsonl").iter().cycle() {
        if prompt.len() >= 2048 {
            break;
        }
        prompt.push_str(&c.text);
        prompt.push(' ');
    }
    let mut out = vec![0u32; prompt.len() + 1];
    let reps = 20;
    let t1 = Instant::now();
    let mut n = 0;
    for _ in 0..reps {
        n = t.encode(&prompt, true, false, &mut out).unwrap();
    }
    let per = t1.elapsed() / reps;
    eprintln!(
        "llama3: build {:.1} ms ({} KiB arena); encode {} bytes -> {} tokens in {:.3} ms",
        build.as_secs_f64() * 1e3,
        need / 1024,
        prompt.len(),
        n,
        per.as_secs_f64() * 1e3
    );
    // Generous bounds (debug-assert-free test profile is opt-level 3; CI machines are slow).
    assert!(build.as_secs_f64() < 5.0);
    assert!(per.as_secs_f64() < 0.1);
}

#[test]
fn stream_decoder_reassembles_split_characters() {
    with_gguf(llama3_gguf(), |t| {
        let text = "🚀🔥👍🏽 emoji 👨‍👩‍👧‍👦 family, 日本語 — ok";
        let ids = encode(t, text, false);
        let mut d = StreamDecoder::new();
        let mut s = String::new();
        let mut partial_steps = 0;
        for &id in &ids {
            let before = s.len();
            d.push(t.token_bytes(id).unwrap(), &mut |p: &str| s.push_str(p));
            if d.pending() > 0 {
                partial_steps += 1;
            }
            assert!(s.len() >= before);
        }
        d.flush(&mut |p: &str| s.push_str(p));
        assert_eq!(s, text);
        assert!(partial_steps > 0, "no token ended inside a character");
    });
}

#[test]
fn property_round_trip_and_no_panics() {
    with_gguf(llama3_gguf(), |t| {
        const FRAGMENTS: [&str; 22] = [
            "<|eot_id|>",
            "<|begin_of_text|>",
            "<|",
            "|>",
            "'s",
            "'LL",
            " ",
            "  ",
            "\n",
            "\r\n",
            "\t",
            "123456",
            "é",
            "日本",
            "🚀",
            "\u{200d}",
            "\u{a0}",
            "\u{3000}",
            "a",
            "The",
            "!!",
            "\u{0}",
        ];
        let strategy = prop_oneof![
            any::<String>(),
            "[ -~\\n\\t\\r]{0,80}",
            "\\PC{0,40}",
            proptest::collection::vec(proptest::sample::select(&FRAGMENTS[..]), 0..24)
                .prop_map(|v| v.concat()),
        ];
        let mut runner =
            TestRunner::new(Config { cases: 2000, failure_persistence: None, ..Config::default() });
        runner
            .run(&strategy, |text| {
                for allow in [false, true] {
                    let mut out = vec![0u32; text.len() + 1];
                    let n = t.encode(&text, false, allow, &mut out).expect("encode");
                    let ids = &out[..n];
                    if !allow {
                        prop_assert!(
                            ids.iter().all(|&i| t.token_kind(i) == Some(TokenKind::Normal))
                        );
                    }
                    prop_assert_eq!(decode(t, ids), text.as_bytes());
                }
                // A too-small buffer is an error, never a panic.
                if !text.is_empty() {
                    let mut tiny = [0u32; 1];
                    let r = t.encode(&text, true, true, &mut tiny);
                    let ok = matches!(r, Ok(1) | Err(TokenizeError::TooManyTokens { capacity: 1 }));
                    prop_assert!(ok, "{:?}", r);
                }
                Ok(())
            })
            .unwrap();
    });
}

#[test]
fn untrusted_vocabulary_never_panics() {
    let mut runner =
        TestRunner::new(Config { cases: 300, failure_persistence: None, ..Config::default() });
    let strategy = (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 0..40),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..40),
        proptest::collection::vec(any::<i32>(), 0..40),
        any::<String>(),
        0usize..8,
    );
    runner
        .run(&strategy, |(tokens, merges, types, text, max_piece)| {
            let types = (types.len() == tokens.len()).then_some(types);
            let stats = VocabStats::measure(
                tokens.iter().map(|t| t.as_slice()),
                types.as_ref().map(|t| t.iter().copied()),
                merges.iter().map(|m| m.as_slice()),
            );
            let Ok(stats) = stats else { return Ok(()) };
            let need = Tokenizer::arena_bytes(&stats, max_piece);
            let mut storage = Vec::new();
            let mut a = arena(&mut storage, need);
            let cfg =
                TokenizerConfig { bos: Some(0), ..TokenizerConfig::new(PreTokenizer::Llama3) };
            let t = Tokenizer::build(
                &mut a,
                tokens.iter().map(|t| t.as_slice()),
                types.as_ref().map(|t| t.iter().copied()),
                merges.iter().map(|m| m.as_slice()),
                cfg,
                max_piece,
            )
            .expect("build");
            prop_assert_eq!(a.used(), need);
            let mut out = vec![0u32; text.len() + 1];
            for allow in [false, true] {
                match t.encode(&text, true, allow, &mut out) {
                    Ok(_) | Err(TokenizeError::PieceTooLong { .. }) => {}
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            let _ = t.find_token(text.as_bytes());
            Ok(())
        })
        .unwrap();
    // No types at all.
    let s =
        VocabStats::measure([&b"a"[..]].into_iter(), None::<NoTypes>, core::iter::empty()).unwrap();
    assert_eq!((s.n_tokens, s.n_normal, s.n_special), (1, 1, 0));
}

/// Differential check against extra case files made outside the repository (same JSONL format),
/// e.g. thousands of random strings encoded by Hugging Face `tokenizers`:
/// `TERN_TOKENIZER_CASES=/tmp/l3.jsonl TERN_TOKENIZER_VOCAB=llama3 cargo test -p tern-tests
/// --test tokenizer -- --ignored external_cases` (`TERN_TOKENIZER_VOCAB`: `llama3`,
/// `small-bpe`, or `small-bpe-gpt2` for the GPT-2 regex).
#[test]
#[ignore = "needs TERN_TOKENIZER_CASES"]
fn external_cases() {
    let Ok(path) = std::env::var("TERN_TOKENIZER_CASES") else { return };
    let vocab = std::env::var("TERN_TOKENIZER_VOCAB").unwrap_or_else(|_| "llama3".into());
    let check = |t: &Tokenizer<'_>| {
        let text = std::fs::read_to_string(&path).unwrap();
        let (mut ok, mut bad) = (0, 0);
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = v["text"].as_str().unwrap();
            let want: Vec<u32> =
                v["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            if encode(t, s, true) == want {
                ok += 1;
            } else {
                bad += 1;
                if bad <= 20 {
                    eprintln!("{s:?}\n  want {want:?}\n  got  {:?}", encode(t, s, true));
                }
            }
        }
        eprintln!("{path}: {ok} match, {bad} differ");
        assert_eq!(bad, 0);
    };
    if vocab == "llama3" {
        with_gguf(llama3_gguf(), check);
    } else if vocab == "small-bpe-gpt2" {
        build_from_json(&small_bpe_json(), PreTokenizer::Gpt2, check);
    } else {
        build_from_json(&small_bpe_json(), PreTokenizer::Llama3, check);
    }
}
