//! Unit tests of the tokenizer on small hand-made vocabularies (std is available here).

use super::*;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// Byte-level string of raw bytes.
fn bl(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| bytelevel::byte_to_char(b)).collect()
}

/// A vocabulary: the 256 single bytes (in byte order), then `extra` (raw bytes), then specials.
struct Vocab {
    tokens: Vec<Vec<u8>>,
    types: Vec<i32>,
    merges: Vec<Vec<u8>>,
}

impl Vocab {
    fn new(extra: &[&str], merges: &[(&str, &str)], specials: &[(&str, i32)]) -> Self {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| bl(&[b]).into_bytes()).collect();
        let mut types = vec![TOKEN_TYPE_NORMAL; 256];
        for e in extra {
            tokens.push(bl(e.as_bytes()).into_bytes());
            types.push(TOKEN_TYPE_NORMAL);
        }
        for (t, ty) in specials {
            tokens.push(t.as_bytes().to_vec());
            types.push(*ty);
        }
        let merges = merges
            .iter()
            .map(|(a, b)| std::format!("{} {}", bl(a.as_bytes()), bl(b.as_bytes())).into_bytes())
            .collect();
        Self { tokens, types, merges }
    }

    fn stats(&self) -> VocabStats {
        VocabStats::measure(
            self.tokens.iter().map(|t| t.as_slice()),
            Some(self.types.iter().copied()),
            self.merges.iter().map(|m| m.as_slice()),
        )
        .unwrap()
    }

    fn build<'a>(
        &self,
        arena: &mut Arena<'a>,
        cfg: TokenizerConfig,
        max_piece: usize,
    ) -> Result<Tokenizer<'a>, TokenizeError> {
        Tokenizer::build(
            arena,
            self.tokens.iter().map(|t| t.as_slice()),
            Some(self.types.iter().copied()),
            self.merges.iter().map(|m| m.as_slice()),
            cfg,
            max_piece,
        )
    }

    fn id(&self, raw: &str) -> u32 {
        let enc = bl(raw.as_bytes()).into_bytes();
        self.tokens.iter().position(|t| *t == enc || t == raw.as_bytes()).unwrap() as u32
    }
}

/// An arena over a fresh buffer of `bytes` bytes whose start is 64-byte aligned.
fn aligned_arena(storage: &mut Vec<u8>, bytes: usize) -> Arena<'_> {
    *storage = vec![0u8; bytes + ALIGN];
    let off = storage.as_ptr().align_offset(ALIGN);
    Arena::new(&mut storage[off..off + bytes])
}

fn enc(t: &Tokenizer<'_>, text: &str, special: bool) -> Vec<u32> {
    let mut out = vec![0u32; text.len() + 8];
    let n = t.encode(text, false, special, &mut out).unwrap();
    out.truncate(n);
    let mut back = vec![0u8; text.len() + 64];
    let m = t.decode_bytes(&out, &mut back).unwrap();
    assert_eq!(&back[..m], text.as_bytes(), "round trip of {text:?}");
    out
}

fn sample() -> Vocab {
    Vocab::new(
        &["ab", "bc", "abc", "aa", " t", "he", " the", "xyzw", "aaaa"],
        &[("b", "c"), ("a", "b"), ("ab", "c"), ("a", "a"), (" ", "t"), ("h", "e"), (" t", "he")],
        &[
            ("<|x|>", TOKEN_TYPE_CONTROL),
            ("<|xy|>", TOKEN_TYPE_CONTROL),
            ("<u>", TOKEN_TYPE_USER_DEFINED),
            ("<|eot_id|>", TOKEN_TYPE_CONTROL),
        ],
    )
}

#[test]
fn plan_equals_allocation() {
    let v = sample();
    for max_piece in [0, 1, 100, 4097] {
        let need = Tokenizer::arena_bytes(&v.stats(), max_piece);
        let mut storage = Vec::new();
        let mut arena = aligned_arena(&mut storage, need);
        let t = v.build(&mut arena, TokenizerConfig::new(PreTokenizer::Llama3), max_piece).unwrap();
        assert_eq!(arena.used(), need);
        assert_eq!(t.max_piece_bytes(), max_piece);
        // One byte less is an arena error, never a panic.
        if need == 0 {
            continue;
        }
        let mut storage = Vec::new();
        let mut arena = aligned_arena(&mut storage, need - 1);
        assert!(matches!(
            v.build(&mut arena, TokenizerConfig::new(PreTokenizer::Llama3), max_piece),
            Err(TokenizeError::Arena(_))
        ));
    }
    // slot() agrees with arena::slot_bytes.
    for n in [0usize, 1, 63, 64, 65, 1000] {
        assert_eq!(slot::<u32>(n), crate::arena::slot_bytes::<u32>(n));
        assert_eq!(slot::<u64>(n), crate::arena::slot_bytes::<u64>(n));
    }
    assert_eq!(slot::<u64>(usize::MAX), usize::MAX);
}

fn with<R>(
    v: &Vocab,
    cfg: TokenizerConfig,
    max_piece: usize,
    f: impl FnOnce(&Tokenizer<'_>) -> R,
) -> R {
    let need = Tokenizer::arena_bytes(&v.stats(), max_piece);
    let mut buf = vec![0u8; need + ALIGN];
    let mut arena = Arena::new(&mut buf);
    let t = v.build(&mut arena, cfg, max_piece).unwrap();
    f(&t)
}

#[test]
fn bpe_merges_by_rank_and_leftmost() {
    let v = sample();
    with(&v, TokenizerConfig::new(PreTokenizer::Llama3), 64, |t| {
        // "b c" has rank 0: "abc" is a vocab word, so ignore_merges emits it directly.
        assert_eq!(enc(t, "abc", false), [v.id("abc")]);
        // "abcb": not a word; b c first (rank 0), then a + bc has no merge.
        assert_eq!(enc(t, "abcb", false), [v.id("a"), v.id("bc"), v.id("b")]);
        // Leftmost on ties: "aaa" -> aa a.
        assert_eq!(enc(t, "aaa", false), [v.id("aa"), v.id("a")]);
        // "aaaa" is a word; "aaaaa" is merged: aa aa a (no "aa aa" merge).
        assert_eq!(enc(t, "aaaa", false), [v.id("aaaa")]);
        assert_eq!(enc(t, "aaaaa", false), [v.id("aa"), v.id("aa"), v.id("a")]);
        // " the" via " t" + "he" (merge " t he"), and a word without merges stays bytes.
        assert_eq!(enc(t, " thex", false), [v.id(" the"), v.id("x")]);
        // "a b" (rank 1) beats "a a" (rank 3).
        assert_eq!(enc(t, " theaab", false), [v.id(" the"), v.id("a"), v.id("ab")]);
        assert_eq!(enc(t, " the", false), [v.id(" the")]);
        assert_eq!(enc(t, "xyzwq", false), [v.id("x"), v.id("y"), v.id("z"), v.id("w"), v.id("q")]);
        assert_eq!(enc(t, "xyzw", false), [v.id("xyzw")]);
        assert_eq!(enc(t, "", false), Vec::<u32>::new());
        // Non-ASCII goes through raw bytes.
        // Non-ASCII goes through raw bytes (single-byte tokens have id = byte here).
        assert_eq!(enc(t, "é", false), [0xC3, 0xA9]);
    });
}

#[test]
fn special_tokens() {
    let v = sample();
    let x = v.id("<|x|>");
    let xy = v.id("<|xy|>");
    let u = v.id("<u>");
    with(&v, TokenizerConfig::new(PreTokenizer::Llama3), 64, |t| {
        assert_eq!(enc(t, "<|x|>", true), [x]);
        assert_eq!(enc(t, "<|xy|>ab<|x|>", true), [xy, v.id("ab"), x]);
        assert_eq!(enc(t, "a<|x|><|x|>b", true), [v.id("a"), x, x, v.id("b")]);
        // Not allowed: the control text is ordinary text.
        let plain = enc(t, "<|x|>", false);
        assert!(!plain.contains(&x));
        assert_eq!(
            plain,
            [u32::from(b'<'), u32::from(b'|'), u32::from(b'x'), u32::from(b'|'), u32::from(b'>')]
        );
        // User-defined tokens are always matched (Hugging Face and llama.cpp do the same).
        assert_eq!(enc(t, "a<u>b", false), [v.id("a"), u, v.id("b")]);
        assert_eq!(enc(t, "a<u>b", true), [v.id("a"), u, v.id("b")]);
        // Segments are pre-tokenized separately: " the" before a special stays one piece.
        assert_eq!(enc(t, " the<|x|> the", true), [v.id(" the"), x, v.id(" the")]);
        assert_eq!(t.find_token(b"<|x|>"), Some(x));
        assert_eq!(t.find_token(b"abc"), Some(v.id("abc")));
        assert_eq!(t.find_token(b"nope"), None);
        assert_eq!(t.token_kind(x), Some(TokenKind::Control));
        assert_eq!(t.token_kind(u), Some(TokenKind::UserDefined));
        assert_eq!(t.token_kind(0), Some(TokenKind::Normal));
        assert_eq!(t.token_bytes(x), Some(&b"<|x|>"[..]));
        assert_eq!(t.token_bytes(v.id(" t")), Some(&b" t"[..]));
        assert_eq!(t.token_bytes(u32::MAX), None);
    });
}

#[test]
fn end_of_generation_and_bos() {
    let v = sample();
    let eot = v.id("<|eot_id|>");
    let cfg = TokenizerConfig {
        pre: PreTokenizer::Llama3,
        bos: Some(v.id("<|x|>")),
        eos: Some(v.id("<|xy|>")),
        add_bos: true,
    };
    with(&v, cfg, 64, |t| {
        assert!(t.is_end_of_generation(eot));
        assert!(t.is_end_of_generation(v.id("<|xy|>")));
        assert!(!t.is_end_of_generation(v.id("<|x|>")));
        assert!(!t.is_end_of_generation(u32::MAX));
        assert_eq!(t.end_of_generation_ids().collect::<Vec<_>>(), {
            let mut e = vec![v.id("<|xy|>"), eot];
            e.sort();
            e
        });
        let mut out = [0u32; 4];
        assert_eq!(t.encode("ab", true, false, &mut out), Ok(2));
        assert_eq!(out[..2], [v.id("<|x|>"), v.id("ab")]);
        assert!(t.add_bos_default());
    });
    with(&v, TokenizerConfig::new(PreTokenizer::Gpt2), 64, |t| {
        let mut out = [0u32; 4];
        assert_eq!(t.encode("ab", true, false, &mut out), Err(TokenizeError::NoBosToken));
        assert_eq!(t.bos(), None);
    });
}

#[test]
fn errors_not_panics() {
    let v = sample();
    with(&v, TokenizerConfig::new(PreTokenizer::Llama3), 4, |t| {
        let mut out = [0u32; 2];
        assert_eq!(
            t.encode("ab ab ab", false, false, &mut out),
            Err(TokenizeError::TooManyTokens { capacity: 2 })
        );
        let mut out = [0u32; 64];
        assert_eq!(
            t.encode("qqqqq", false, false, &mut out),
            Err(TokenizeError::PieceTooLong { len: 5, max: 4 })
        );
        // A long piece that is one vocabulary word needs no scratch.
        assert_eq!(t.encode(" the", false, false, &mut out), Ok(1));
        assert_eq!(t.encode("qqqq", false, false, &mut out), Ok(4));
        let mut small = [0u8; 3];
        assert!(matches!(
            t.decode_bytes(&[v.id("abc"), 0], &mut small),
            Err(TokenizeError::OutputTooSmall { .. })
        ));
        assert!(matches!(
            t.decode_bytes(&[u32::MAX], &mut small),
            Err(TokenizeError::TokenIdOutOfRange { .. })
        ));
    });
    // Types that do not match the tokens.
    let r = VocabStats::measure(
        v.tokens.iter().map(|t| t.as_slice()),
        Some([1, 1].into_iter()),
        core::iter::empty(),
    );
    assert!(matches!(r, Err(TokenizeError::TokenTypeCountMismatch { types: 2, .. })));
    let r = VocabStats::measure(core::iter::empty(), None::<NoTypes>, core::iter::empty());
    assert!(matches!(r, Err(TokenizeError::BadVocabSize { n_tokens: 0 })));
    // BOS out of range.
    let mut buf = vec![0u8; 1 << 20];
    let mut arena = Arena::new(&mut buf);
    let cfg = TokenizerConfig { bos: Some(100_000), ..TokenizerConfig::new(PreTokenizer::Llama3) };
    assert!(matches!(
        v.build(&mut arena, cfg, 8),
        Err(TokenizeError::TokenIdOutOfRange { id: 100_000, .. })
    ));
    // Pre-tokenizer names.
    assert_eq!(PreTokenizer::from_gguf_name(None), Ok(PreTokenizer::Llama3));
    assert_eq!(PreTokenizer::from_gguf_name(Some(b"llama-bpe")), Ok(PreTokenizer::Llama3));
    assert_eq!(PreTokenizer::from_gguf_name(Some(b"default")), Ok(PreTokenizer::Gpt2));
    let e = PreTokenizer::from_gguf_name(Some(b"qwen2")).unwrap_err();
    assert_eq!(std::format!("{e}"), "unsupported pre-tokenizer \"qwen2\"");
}

#[test]
fn malformed_vocabulary_is_tolerated() {
    // Bad UTF-8 and non-byte-level tokens, junk merges, missing single bytes, huge ids.
    let tokens: Vec<&[u8]> =
        vec![b"a", b"b", b"ab", b"\xFF\xFE", "日".as_bytes(), b"", b"c", b"ab", b"abc"];
    let merges: Vec<&[u8]> =
        vec![b"a b", b"ab", b" a", b"a  b", b"ab c", b"\xFF x", b"q r", b"a b", "日 a".as_bytes()];
    let types = [1, 1, 1, 1, 1, 3, 1, 1, i32::MIN];
    let stats = VocabStats::measure(
        tokens.iter().copied(),
        Some(types.iter().copied()),
        merges.iter().copied(),
    )
    .unwrap();
    let need = Tokenizer::arena_bytes(&stats, 16);
    let mut buf = vec![0u8; need + ALIGN];
    let mut arena = Arena::new(&mut buf);
    let t = Tokenizer::build(
        &mut arena,
        tokens.iter().copied(),
        Some(types.iter().copied()),
        merges.iter().copied(),
        TokenizerConfig::new(PreTokenizer::Gpt2),
        16,
    )
    .unwrap();
    assert_eq!(t.merges_skipped(), 7);
    assert_eq!(t.token_kind(3), Some(TokenKind::Verbatim));
    assert_eq!(t.token_bytes(3), Some(&b"\xFF\xFE"[..]));
    assert_eq!(t.token_kind(4), Some(TokenKind::Verbatim));
    let mut out = [0u32; 16];
    // Duplicate "ab" (ids 2 and 7): the lowest id wins. "abcab" -> abc ab (words via merges).
    let n = t.encode("abcab", false, false, &mut out).unwrap();
    assert_eq!(out[..n], [8, 2]);
    let n = t.encode("abcba", false, false, &mut out).unwrap();
    assert_eq!(out[..n], [8, 1, 0]);
    // Bytes without a token are dropped, like Hugging Face without byte_fallback.
    let n = t.encode("a-b", false, false, &mut out).unwrap();
    assert_eq!(out[..n], [0, 1]);
}

#[test]
fn long_merge_lines_use_the_lazy_path() {
    // Sides of 700 bytes each: the merge line is longer than the 1 KiB decode buffer.
    let a = "é".repeat(350);
    let b = "ü".repeat(350);
    let ab = std::format!("{a}{b}");
    let v = Vocab::new(&[&a, &b, &ab], &[(&a, &b)], &[]);
    assert!(v.merges[0].len() > 1024);
    with(&v, TokenizerConfig::new(PreTokenizer::Gpt2), 2048, |t| {
        assert_eq!(t.merges_skipped(), 0);
        // The merge was parsed through the lazy comparison: rank 0, result `ab`.
        assert_eq!(t.pair_of(v.id(&a), v.id(&b)), u64::from(v.id(&ab)));
        assert_eq!(t.pair_of(v.id(&b), v.id(&a)), NO_PAIR);
        assert_eq!(enc(t, &ab, false), [v.id(&ab)]);
        assert_eq!(t.find_token(a.as_bytes()), Some(v.id(&a)));
    });
}
