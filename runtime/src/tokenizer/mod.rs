//! Byte-level BPE tokenizer (GPT-2 / Llama-3 style) that matches Hugging Face `tokenizers`
//! exactly, with every table in the [`Arena`] and no allocator.
//!
//! # Pipeline
//! [`Tokenizer::encode`] does what a Hugging Face `tokenizer.json` with a `Split` + `ByteLevel`
//! pre-tokenizer and a `BPE` model with `ignore_merges: true` does:
//! 1. **Special tokens.** The text is cut at occurrences of added tokens, leftmost first and the
//!    longest one at a position (Aho–Corasick leftmost-longest). *User-defined* tokens (GGUF
//!    token type 4, Hugging Face added tokens with `special: false`) are always matched, as in
//!    Hugging Face and llama.cpp; *control* tokens (type 3, `special: true`, e.g.
//!    `<|eot_id|>`) only when the caller passes `allow_special = true` (chat templates; never
//!    user text).
//! 2. **Pre-tokenizer.** Each segment between special tokens is split into pieces by the split
//!    regex ([`PreTokenizer`], hand-written matchers in `pretok.rs`).
//! 3. **BPE.** A piece whose bytes are a vocabulary token is emitted as that token
//!    (`ignore_merges`). Otherwise it starts as one symbol per byte and the adjacent pair with
//!    the lowest merge rank (leftmost on ties) is merged until no pair has a merge.
//!    Bytes with no single-byte token are dropped (Hugging Face without `byte_fallback`/`unk`).
//!
//! Vocabulary strings are in the byte-level alphabet (`Ġ` = space); [`Tokenizer::build`]
//! converts every token and merge to raw bytes once, so encoding works on the text's UTF-8
//! bytes. Control and user-defined tokens keep their literal text. A normal token whose text is
//! not a byte-level string is kept verbatim and can only be produced by id.
//!
//! # Memory
//! [`VocabStats::measure`] walks the vocabulary once; [`Tokenizer::arena_bytes`] turns that into
//! the exact number of arena bytes [`Tokenizer::build`] takes (a test checks equality):
//! token offsets (`u32` × (n+1)), token bytes (at most the strings' total), kinds (`u8` × n),
//! an open-addressing hash index of the normal tokens by bytes (`u32` × the power of two ≥ 2n),
//! special ids sorted by text (`u32`), merges as sorted `(left << 32 | right, rank << 32 |
//! merged)` pairs (`u64` × 2 per merge, binary-searched), and BPE scratch for one piece (`u32` +
//! `u64` per byte of `max_piece_bytes`). For Llama-3 (128256 tokens, 280147 merges) that is
//! 7.0 MiB plus 12 bytes per scratch byte; building takes ~0.3 s on a desktop core.
//!
//! A piece that is not a single token and is longer than `max_piece_bytes` gives
//! [`TokenizeError::PieceTooLong`] (splitting it would change the result).
//!
//! # API
//! ```text
//! PreTokenizer::{Llama3, Gpt2}; PreTokenizer::from_gguf_name(Option<&[u8]>)
//! TokenizerConfig { pre, bos, eos, add_bos }
//! VocabStats::measure(tokens, Option<token_types>, merges) -> Result<VocabStats>
//! Tokenizer::arena_bytes(&stats, max_piece_bytes) -> usize
//! Tokenizer::build(&mut arena, tokens, Option<token_types>, merges, cfg, max_piece_bytes)
//! Tokenizer::from_gguf(&gguf, &mut arena, max_piece_bytes)           (gguf.rs)
//! VocabStats::from_gguf(&gguf), Tokenizer::gguf_arena_bytes(&gguf, max_piece_bytes),
//! config_from_gguf(&gguf) -> TokenizerConfig
//! tok.encode(text, add_bos, allow_special, &mut out) -> Result<usize>
//! tok.token_bytes(id), tok.token_kind(id), tok.find_token(bytes), tok.decode_bytes(ids, out)
//! tok.n_vocab(), tok.bos(), tok.eos(), tok.add_bos_default(), tok.is_end_of_generation(id)
//! StreamDecoder::push(bytes, sink) / push_to(bytes, buf) / flush(..)  (UTF-8-safe streaming)
//! ```
//! The end-of-generation set is EOS plus every control/user-defined token whose text is one of
//! [`EOG_TEXTS`] (`<|eot_id|>`, `<|eom_id|>`, `<|end|>`, `<|im_end|>`, ...).
//!
//! `encode` takes `&self`: the BPE scratch sits behind `Cell`s, so a `Tokenizer` is `!Sync`
//! (one tokenizer per thread; building another costs ~0.3 s for Llama-3).

#![deny(unsafe_code)]

pub mod bytelevel;
mod error;
mod gguf;
mod pretok;
mod stream;

use core::cell::Cell;
use core::cmp::Ordering;

pub use error::{ShortName, TokenizeError, TokenizerKey};
pub use gguf::config_from_gguf;
pub use pretok::{Pieces, PreTokenizer};
pub use stream::StreamDecoder;

use crate::arena::{ALIGN, Arena};

/// GGUF `tokenizer.ggml.token_type` value of an ordinary token.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF token type of a control token (Hugging Face added token with `special: true`).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of a user-defined token (added token with `special: false`).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Texts of control tokens that end generation besides EOS (llama.cpp's list).
pub const EOG_TEXTS: &[&[u8]] = &[
    b"<|eot_id|>",
    b"<|eom_id|>",
    b"<|end|>",
    b"<|im_end|>",
    b"<|endoftext|>",
    b"<end_of_turn>",
    b"<EOT>",
    b"_<EOT>",
    b"<|end_of_turn|>",
];

/// Token-type argument for vocabularies without types: `None::<NoTypes>`.
pub type NoTypes = core::iter::Empty<i32>;

const KIND_BPE: u8 = 0;
const KIND_RAW: u8 = 1;
const KIND_CONTROL: u8 = 2;
const KIND_USER: u8 = 3;
const KIND_MASK: u8 = 0x0F;
const FLAG_EOG: u8 = 0x80;

/// `special_first` bits.
const SPECIAL_USER: u8 = 1;
const SPECIAL_CONTROL: u8 = 2;

const NONE: u32 = u32::MAX;
const NO_PAIR: u64 = u64::MAX;

/// How a token is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TokenKind {
    /// An ordinary BPE token (bytes decoded from the byte-level alphabet).
    Normal,
    /// An ordinary token whose text is not a byte-level string: kept verbatim, never produced
    /// by BPE.
    Verbatim,
    /// A control token (type 3): matched in text only with `allow_special`.
    Control,
    /// A user-defined token (type 4): always matched in text.
    UserDefined,
}

/// Settings that do not come from the vocabulary arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TokenizerConfig {
    /// Split regex.
    pub pre: PreTokenizer,
    /// Beginning-of-sequence token (`tokenizer.ggml.bos_token_id`).
    pub bos: Option<u32>,
    /// End-of-sequence token (`tokenizer.ggml.eos_token_id`); part of the end-of-generation set.
    pub eos: Option<u32>,
    /// The model's default for prepending BOS (`tokenizer.ggml.add_bos_token`); reported by
    /// [`Tokenizer::add_bos_default`], `encode` does what its argument says.
    pub add_bos: bool,
}

impl TokenizerConfig {
    /// Llama-3 pre-tokenizer, no BOS/EOS.
    pub const fn new(pre: PreTokenizer) -> Self {
        Self { pre, bos: None, eos: None, add_bos: false }
    }
}

impl PreTokenizer {
    /// Maps `tokenizer.ggml.pre`: absent, `llama-bpe`, `llama3`, `llama-v3` → [`Llama3`]
    /// (Hugging Face parity for the official BitNet file, which has no key; see DESIGN §5);
    /// `gpt2`, `default` → [`Gpt2`]; anything else is
    /// [`TokenizeError::UnsupportedPreTokenizer`].
    ///
    /// [`Llama3`]: PreTokenizer::Llama3
    /// [`Gpt2`]: PreTokenizer::Gpt2
    pub fn from_gguf_name(name: Option<&[u8]>) -> Result<Self, TokenizeError> {
        match name {
            None | Some(b"llama-bpe" | b"llama3" | b"llama-v3") => Ok(PreTokenizer::Llama3),
            Some(b"gpt2" | b"default") => Ok(PreTokenizer::Gpt2),
            Some(other) => {
                Err(TokenizeError::UnsupportedPreTokenizer { name: ShortName::new(other) })
            }
        }
    }
}

/// Sizes of a vocabulary, measured before building so the memory plan can reserve the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VocabStats {
    /// Number of tokens (ids `0..n_tokens`).
    pub n_tokens: usize,
    /// Sum of the token strings' lengths (an upper bound of their decoded bytes).
    pub token_bytes_total: usize,
    /// Tokens that are neither control nor user-defined.
    pub n_normal: usize,
    /// Control and user-defined tokens with non-empty text.
    pub n_special: usize,
    /// Lines in the merge list (malformed or unusable ones included).
    pub n_merges: usize,
}

fn kind_of_type(ty: i32) -> u8 {
    match ty {
        TOKEN_TYPE_CONTROL => KIND_CONTROL,
        TOKEN_TYPE_USER_DEFINED => KIND_USER,
        _ => KIND_BPE,
    }
}

impl VocabStats {
    /// Walks the token strings, their GGUF token types (`None`: all normal) and the merge lines.
    pub fn measure<'s, Y>(
        tokens: impl Iterator<Item = &'s [u8]>,
        token_types: Option<Y>,
        merges: impl Iterator<Item = &'s [u8]>,
    ) -> Result<Self, TokenizeError>
    where
        Y: Iterator<Item = i32>,
    {
        let mut s = VocabStats::default();
        let mut types = token_types;
        let mut n_types = 0usize;
        for tok in tokens {
            s.n_tokens += 1;
            s.token_bytes_total = s.token_bytes_total.saturating_add(tok.len());
            let kind = match types.as_mut() {
                Some(t) => match t.next() {
                    Some(ty) => {
                        n_types += 1;
                        kind_of_type(ty)
                    }
                    None => KIND_BPE,
                },
                None => KIND_BPE,
            };
            if kind == KIND_BPE {
                s.n_normal += 1;
            } else if !tok.is_empty() {
                s.n_special += 1;
            }
        }
        if let Some(t) = types.as_mut() {
            n_types += t.count();
            if n_types != s.n_tokens {
                return Err(TokenizeError::TokenTypeCountMismatch {
                    tokens: s.n_tokens,
                    types: n_types,
                });
            }
        }
        if s.n_tokens == 0 || s.n_tokens >= NONE as usize {
            return Err(TokenizeError::BadVocabSize { n_tokens: s.n_tokens });
        }
        if s.token_bytes_total >= u32::MAX as usize {
            return Err(TokenizeError::VocabTooLarge { bytes: s.token_bytes_total });
        }
        s.n_merges = merges.count();
        if s.n_merges >= u32::MAX as usize {
            return Err(TokenizeError::TooManyMerges { n_merges: s.n_merges });
        }
        Ok(s)
    }
}

/// `arena::slot_bytes`, saturating instead of overflowing.
fn slot<T>(n: usize) -> usize {
    n.checked_mul(core::mem::size_of::<T>())
        .and_then(|b| b.checked_next_multiple_of(ALIGN))
        .unwrap_or(usize::MAX)
}

/// A built tokenizer. See the [module docs](self).
pub struct Tokenizer<'a> {
    /// `offsets[id]..offsets[id + 1]` is the range of token `id` in `bytes`.
    offsets: &'a [u32],
    bytes: &'a [u8],
    /// `KIND_*` plus `FLAG_EOG`.
    kinds: &'a [u8],
    /// Open-addressing hash index of the normal, byte-level tokens by bytes (`NONE` = empty
    /// slot; duplicate bytes keep the lowest id).
    by_bytes: &'a [u32],
    /// Control and user-defined tokens sorted by text (unique texts, lowest id kept).
    specials: &'a [u32],
    /// `[left << 32 | right, rank << 32 | merged]`, sorted, one entry per pair (lowest rank).
    merges: &'a [[u64; 2]],
    /// Scratch: symbol ids of the piece being merged.
    sym: &'a [Cell<u32>],
    /// Scratch: `rank << 32 | merged` of the pair starting at each symbol (`NO_PAIR` if none).
    pair: &'a [Cell<u64>],
    /// Token of each single byte (`NONE` if the vocabulary lacks it).
    byte_id: [u32; 256],
    /// `SPECIAL_*` bits of the special tokens starting with each byte.
    special_first: [u8; 256],
    special_any: u8,
    cfg: TokenizerConfig,
    merges_skipped: usize,
}

impl core::fmt::Debug for Tokenizer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("n_vocab", &self.n_vocab())
            .field("n_merges", &self.merges.len())
            .field("n_special", &self.specials.len())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Bytes of token `id` given the offset and byte tables (empty if out of range).
fn tok_bytes<'x>(offsets: &[u32], bytes: &'x [u8], id: u32) -> &'x [u8] {
    let i = id as usize;
    match (offsets.get(i), offsets.get(i.wrapping_add(1))) {
        (Some(&a), Some(&b)) => bytes.get(a as usize..b as usize).unwrap_or(&[]),
        _ => &[],
    }
}

/// Slots of the hash index for `n` tokens: a power of two, at least twice `n` (so probing always
/// reaches an empty slot).
fn index_slots(n: usize) -> usize {
    n.saturating_mul(2).max(2).checked_next_power_of_two().unwrap_or(usize::MAX)
}

/// FNV-1a over bytes.
#[inline]
fn hash(bytes: impl Iterator<Item = u8>) -> usize {
    let mut h: u32 = 0x811C_9DC5;
    for b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize
}

/// Looks `key` up in hash index `slots` (`eq(id)` tells whether token `id` has the key's bytes).
#[inline]
fn index_get(slots: &[u32], h: usize, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
    let mask = slots.len().wrapping_sub(1);
    let mut i = h & mask;
    for _ in 0..slots.len() {
        let id = *slots.get(i)?;
        if id == NONE {
            return None;
        }
        if eq(id) {
            return Some(id);
        }
        i = (i + 1) & mask;
    }
    None
}

/// Index in `sorted` of the entry whose bytes compare `Equal` under `cmp`.
fn search(sorted: &[u32], mut cmp: impl FnMut(u32) -> Ordering) -> Option<u32> {
    sorted.binary_search_by(|&id| cmp(id)).ok().and_then(|i| sorted.get(i).copied())
}

/// Output cursor of `encode`.
struct Out<'o> {
    buf: &'o mut [u32],
    n: usize,
}

impl Out<'_> {
    #[inline]
    fn push(&mut self, id: u32) -> Result<(), TokenizeError> {
        match self.buf.get_mut(self.n) {
            Some(slot) => {
                *slot = id;
                self.n += 1;
                Ok(())
            }
            None => Err(TokenizeError::TooManyTokens { capacity: self.buf.len() }),
        }
    }
}

impl<'a> Tokenizer<'a> {
    /// Exact arena bytes [`Tokenizer::build`] takes for a vocabulary with `stats` (plus at most
    /// `ALIGN - 1` bytes of padding if the arena's current position is not aligned).
    pub fn arena_bytes(stats: &VocabStats, max_piece_bytes: usize) -> usize {
        [
            slot::<u32>(stats.n_tokens.saturating_add(1)),
            slot::<u8>(stats.token_bytes_total),
            slot::<u8>(stats.n_tokens),
            slot::<u32>(index_slots(stats.n_normal)),
            slot::<u32>(stats.n_special),
            slot::<u64>(stats.n_merges.saturating_mul(2)),
            slot::<u32>(max_piece_bytes),
            slot::<u64>(max_piece_bytes),
        ]
        .iter()
        .fold(0usize, |acc, &b| acc.saturating_add(b))
    }

    /// Builds the tables from token strings (byte-level alphabet, in id order), optional GGUF
    /// token types (one per token; `None::<NoTypes>`: all normal) and merge lines (`"left
    /// right"`, in rank order). Merge lines without a separator, or whose sides or concatenation
    /// are not normal tokens, can never apply and are skipped ([`Tokenizer::merges_skipped`]).
    pub fn build<'s, T, Y, M>(
        arena: &mut Arena<'a>,
        tokens: T,
        token_types: Option<Y>,
        merges: M,
        cfg: TokenizerConfig,
        max_piece_bytes: usize,
    ) -> Result<Self, TokenizeError>
    where
        T: Iterator<Item = &'s [u8]> + Clone,
        Y: Iterator<Item = i32> + Clone,
        M: Iterator<Item = &'s [u8]> + Clone,
    {
        let stats = VocabStats::measure(tokens.clone(), token_types.clone(), merges.clone())?;
        let n = stats.n_tokens;
        for id in [cfg.bos, cfg.eos].into_iter().flatten() {
            if id as usize >= n {
                return Err(TokenizeError::TokenIdOutOfRange { id, n_vocab: n });
            }
        }

        // Allocate everything first (the order and sizes are those of `arena_bytes`).
        let offsets = arena.alloc::<u32>(n + 1)?;
        let bytes = arena.alloc::<u8>(stats.token_bytes_total)?;
        let kinds = arena.alloc::<u8>(n)?;
        let by_bytes = arena.alloc::<u32>(index_slots(stats.n_normal))?;
        let specials = arena.alloc::<u32>(stats.n_special)?;
        let merge_words = arena.alloc::<u64>(stats.n_merges.saturating_mul(2))?;
        let sym = arena.alloc::<u32>(max_piece_bytes)?;
        let pair = arena.alloc::<u64>(max_piece_bytes)?;

        // Token bytes and kinds.
        let mut pos = 0usize;
        let mut types = token_types;
        for (i, tok) in tokens.take(n).enumerate() {
            let ty = types.as_mut().and_then(Iterator::next).unwrap_or(TOKEN_TYPE_NORMAL);
            let end = pos.saturating_add(tok.len());
            let dst = bytes.get_mut(pos..end).unwrap_or(&mut []);
            let (kind, len) = match kind_of_type(ty) {
                KIND_BPE => match bytelevel::decode_into(tok, dst) {
                    Some(len) if len > 0 => (KIND_BPE, len),
                    _ => (KIND_RAW, copy_raw(tok, dst)),
                },
                special => (special, copy_raw(tok, dst)),
            };
            pos += len;
            kinds[i] = kind;
            offsets[i + 1] = pos as u32;
        }

        let offsets: &'a [u32] = offsets;
        let bytes: &'a [u8] = bytes;

        // Hash index of the normal tokens (lowest id first, so duplicates keep it).
        let tb = |id: u32| tok_bytes(offsets, bytes, id);
        by_bytes.fill(NONE);
        let mask = by_bytes.len().wrapping_sub(1);
        for (id, &k) in kinds.iter().enumerate() {
            let key = tb(id as u32);
            if k != KIND_BPE
                || index_get(by_bytes, hash(key.iter().copied()), |o| tb(o) == key).is_some()
            {
                continue;
            }
            let mut i = hash(key.iter().copied()) & mask;
            for _ in 0..by_bytes.len() {
                match by_bytes.get_mut(i) {
                    Some(slot) if *slot == NONE => {
                        *slot = id as u32;
                        break;
                    }
                    _ => i = (i + 1) & mask,
                }
            }
        }
        let by_bytes: &'a [u32] = by_bytes;

        let mut byte_id = [NONE; 256];
        for (b, slot) in byte_id.iter_mut().enumerate() {
            let key = [b as u8];
            *slot =
                index_get(by_bytes, hash(key.iter().copied()), |id| tb(id) == key).unwrap_or(NONE);
        }

        // Special tokens sorted by text.
        let mut m = 0;
        for (id, &k) in kinds.iter().enumerate() {
            if (k == KIND_CONTROL || k == KIND_USER)
                && !tb(id as u32).is_empty()
                && m < specials.len()
            {
                specials[m] = id as u32;
                m += 1;
            }
        }
        let specials = sort_dedup(&mut specials[..m], tb);
        let mut special_first = [0u8; 256];
        let mut special_any = 0;
        for &id in specials.iter() {
            let bit =
                if kinds[id as usize] == KIND_CONTROL { SPECIAL_CONTROL } else { SPECIAL_USER };
            if let Some(&b) = tb(id).first() {
                special_first[usize::from(b)] |= bit;
                special_any |= bit;
            }
        }

        // Merges.
        let (merge_tab, _) = merge_words.as_chunks_mut::<2>();
        let mut nm = 0usize;
        let mut buf = [0u8; 1024];
        for (rank, line) in merges.take(stats.n_merges).enumerate() {
            if let Some(entry) = parse_merge(line, by_bytes, tb, &mut buf)
                && let Some(slot) = merge_tab.get_mut(nm)
            {
                *slot = [entry.0, (rank as u64) << 32 | u64::from(entry.1)];
                nm += 1;
            }
        }
        let merge_tab = &mut merge_tab[..nm];
        merge_tab.sort_unstable();
        let mut w = 0;
        for r in 0..merge_tab.len() {
            if w == 0 || merge_tab[r][0] != merge_tab[w - 1][0] {
                merge_tab[w] = merge_tab[r];
                w += 1;
            }
        }
        let merges_skipped = stats.n_merges - w;
        let merges: &'a [[u64; 2]] = &merge_tab[..w];

        // End of generation.
        if let Some(eos) = cfg.eos {
            kinds[eos as usize] |= FLAG_EOG;
        }
        for &id in specials.iter() {
            if EOG_TEXTS.contains(&tb(id)) {
                kinds[id as usize] |= FLAG_EOG;
            }
        }

        Ok(Tokenizer {
            offsets,
            bytes,
            kinds,
            by_bytes,
            specials,
            merges,
            sym: Cell::from_mut(sym).as_slice_of_cells(),
            pair: Cell::from_mut(pair).as_slice_of_cells(),
            byte_id,
            special_first,
            special_any,
            cfg,
            merges_skipped,
        })
    }

    /// Number of tokens (ids are `0..n_vocab`).
    pub fn n_vocab(&self) -> usize {
        self.kinds.len()
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.cfg.bos
    }

    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.cfg.eos
    }

    /// Whether the model expects BOS at the start of a prompt.
    pub fn add_bos_default(&self) -> bool {
        self.cfg.add_bos
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.cfg.pre
    }

    /// BPE scratch size the tokenizer was built with.
    pub fn max_piece_bytes(&self) -> usize {
        self.sym.len()
    }

    /// Merge lines that could never apply and were dropped at build time.
    pub fn merges_skipped(&self) -> usize {
        self.merges_skipped
    }

    /// Raw bytes of token `id` (control and user-defined tokens: their text).
    pub fn token_bytes(&self, id: u32) -> Option<&'a [u8]> {
        ((id as usize) < self.n_vocab()).then(|| tok_bytes(self.offsets, self.bytes, id))
    }

    /// How token `id` is treated.
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).map(|&k| match k & KIND_MASK {
            KIND_CONTROL => TokenKind::Control,
            KIND_USER => TokenKind::UserDefined,
            KIND_RAW => TokenKind::Verbatim,
            _ => TokenKind::Normal,
        })
    }

    /// Whether generating `id` ends the reply (EOS, `<|eot_id|>`, `<|eom_id|>`, ...).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.kinds.get(id as usize).is_some_and(|&k| k & FLAG_EOG != 0)
    }

    /// The end-of-generation ids, in increasing order (scans the vocabulary).
    pub fn end_of_generation_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.kinds.iter().enumerate().filter(|(_, k)| **k & FLAG_EOG != 0).map(|(i, _)| i as u32)
    }

    /// The token whose text is `text`: a control/user-defined token with that literal text, else
    /// the normal token with those raw bytes.
    pub fn find_token(&self, text: &[u8]) -> Option<u32> {
        search(self.specials, |id| self.tb(id).cmp(text)).or_else(|| self.lookup(text))
    }

    /// Concatenated bytes of `ids` into `out`; returns the length.
    pub fn decode_bytes(&self, ids: &[u32], out: &mut [u8]) -> Result<usize, TokenizeError> {
        let mut n = 0;
        let capacity = out.len();
        for &id in ids {
            let b = self
                .token_bytes(id)
                .ok_or(TokenizeError::TokenIdOutOfRange { id, n_vocab: self.n_vocab() })?;
            let dst = out
                .get_mut(n..n + b.len())
                .ok_or(TokenizeError::OutputTooSmall { needed: n + b.len(), capacity })?;
            dst.copy_from_slice(b);
            n += b.len();
        }
        Ok(n)
    }

    /// Tokenizes `text` into `out`; returns the number of ids written. With `add_bos` the BOS
    /// token comes first ([`TokenizeError::NoBosToken`] if there is none). Control tokens in the
    /// text are recognised only with `allow_special`. On error `out` holds a partial result.
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        allow_special: bool,
        out: &mut [u32],
    ) -> Result<usize, TokenizeError> {
        let mut out = Out { buf: out, n: 0 };
        if add_bos {
            out.push(self.cfg.bos.ok_or(TokenizeError::NoBosToken)?)?;
        }
        let want = if allow_special { SPECIAL_USER | SPECIAL_CONTROL } else { SPECIAL_USER };
        let bytes = text.as_bytes();
        let mut seg = 0;
        if self.special_any & want != 0 {
            let mut i = 0;
            while i < bytes.len() {
                if self.special_first[usize::from(bytes[i])] & want != 0
                    && let Some((id, len)) = self.match_special(&bytes[i..], allow_special)
                    && let Some(before) = text.get(seg..i)
                    && text.is_char_boundary(i + len)
                {
                    self.encode_segment(before, &mut out)?;
                    out.push(id)?;
                    i += len;
                    seg = i;
                    continue;
                }
                i += 1;
            }
        }
        self.encode_segment(text.get(seg..).unwrap_or(""), &mut out)?;
        Ok(out.n)
    }

    fn tb(&self, id: u32) -> &'a [u8] {
        tok_bytes(self.offsets, self.bytes, id)
    }

    /// The normal token with exactly these bytes.
    fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        index_get(self.by_bytes, hash(bytes.iter().copied()), |id| self.tb(id) == bytes)
    }

    /// Longest allowed special token that `rest` starts with.
    fn match_special(&self, rest: &[u8], allow_control: bool) -> Option<(u32, usize)> {
        let first = *rest.first()?;
        let lo =
            self.specials.partition_point(|&id| self.tb(id).first().is_some_and(|&b| b < first));
        let mut best: Option<(u32, usize)> = None;
        for &id in self.specials.get(lo..).unwrap_or(&[]) {
            let t = self.tb(id);
            if t.first() != Some(&first) {
                break;
            }
            let allowed = allow_control || self.kinds[id as usize] & KIND_MASK == KIND_USER;
            if allowed && rest.starts_with(t) && best.is_none_or(|(_, l)| t.len() > l) {
                best = Some((id, t.len()));
            }
        }
        best
    }

    fn encode_segment(&self, seg: &str, out: &mut Out<'_>) -> Result<(), TokenizeError> {
        for piece in Pieces::new(self.cfg.pre, seg) {
            self.bpe(piece.as_bytes(), out)?;
        }
        Ok(())
    }

    /// `rank << 32 | merged` of the pair `(l, r)`, or `NO_PAIR`.
    #[inline]
    fn pair_of(&self, l: u32, r: u32) -> u64 {
        let key = u64::from(l) << 32 | u64::from(r);
        match self.merges.binary_search_by(|e| e[0].cmp(&key)) {
            Ok(i) => self.merges.get(i).map_or(NO_PAIR, |e| e[1]),
            Err(_) => NO_PAIR,
        }
    }

    fn bpe(&self, piece: &[u8], out: &mut Out<'_>) -> Result<(), TokenizeError> {
        if piece.is_empty() {
            return Ok(());
        }
        if let Some(id) = self.lookup(piece) {
            return out.push(id);
        }
        if piece.len() > self.sym.len() {
            return Err(TokenizeError::PieceTooLong { len: piece.len(), max: self.sym.len() });
        }
        let sym = &self.sym[..piece.len()];
        let pair = &self.pair[..piece.len()];
        let mut n = 0;
        for &b in piece {
            let id = self.byte_id[usize::from(b)];
            if id != NONE {
                sym[n].set(id);
                n += 1;
            }
        }
        for k in 0..n.saturating_sub(1) {
            pair[k].set(self.pair_of(sym[k].get(), sym[k + 1].get()));
        }
        while n >= 2 {
            // Lowest rank, leftmost on ties (strict `<`).
            let mut best = NO_PAIR;
            let mut at = 0;
            for (k, p) in pair[..n - 1].iter().enumerate() {
                if p.get() < best {
                    best = p.get();
                    at = k;
                }
            }
            if best == NO_PAIR {
                break;
            }
            sym[at].set(best as u32);
            for k in at + 1..n - 1 {
                sym[k].set(sym[k + 1].get());
            }
            for k in at + 1..n - 2 {
                pair[k].set(pair[k + 1].get());
            }
            n -= 1;
            if at > 0 {
                pair[at - 1].set(self.pair_of(sym[at - 1].get(), sym[at].get()));
            }
            if at + 1 < n {
                pair[at].set(self.pair_of(sym[at].get(), sym[at + 1].get()));
            }
        }
        for s in &sym[..n] {
            out.push(s.get())?;
        }
        Ok(())
    }
}

/// Copies `tok` into `dst` when they have the same length (they do unless the token iterator
/// changed between passes); returns the bytes used.
fn copy_raw(tok: &[u8], dst: &mut [u8]) -> usize {
    if dst.len() == tok.len() {
        dst.copy_from_slice(tok);
    }
    dst.len()
}

/// Sorts `ids` by their bytes (ties by id) and drops later ids with the same bytes.
fn sort_dedup<'x, 'y>(ids: &'x mut [u32], tb: impl Fn(u32) -> &'y [u8] + Copy) -> &'x [u32] {
    ids.sort_unstable_by(|&a, &b| tb(a).cmp(tb(b)).then(a.cmp(&b)));
    let mut w = 0;
    for r in 0..ids.len() {
        if w == 0 || tb(ids[r]) != tb(ids[w - 1]) {
            ids[w] = ids[r];
            w += 1;
        }
    }
    &ids[..w]
}

/// Parses merge line `"left right"` into `(left << 32 | right, merged)`; `None` if it can never
/// apply.
fn parse_merge<'x>(
    line: &[u8],
    by_bytes: &[u32],
    tb: impl Fn(u32) -> &'x [u8] + Copy,
    buf: &mut [u8],
) -> Option<(u64, u32)> {
    // The separator is the first space after the first byte (a side is never empty).
    let sp = line.iter().skip(1).position(|&b| b == b' ')? + 1;
    let (l, r) = (line.get(..sp)?, line.get(sp + 1..)?);
    let get = |key: &[u8]| index_get(by_bytes, hash(key.iter().copied()), |id| tb(id) == key);
    if line.len() <= buf.len() {
        let nl = bytelevel::decode_into(l, buf)?;
        let nr = bytelevel::decode_into(r, buf.get_mut(nl..)?)?;
        let both = buf.get(..nl + nr)?;
        let (lb, rb) = both.split_at(nl);
        let (left, right, merged) = (get(lb)?, get(rb)?, get(both)?);
        return Some((u64::from(left) << 32 | u64::from(right), merged));
    }
    // Very long line: compare lazily.
    if !bytelevel::is_valid(l) || !bytelevel::is_valid(r) {
        return None;
    }
    let lazy = |a: &[u8], b: &[u8]| {
        let it = || bytelevel::decoded(a).chain(bytelevel::decoded(b));
        index_get(by_bytes, hash(it()), |id| tb(id).iter().copied().eq(it()))
    };
    let left = lazy(l, b"")?;
    let right = lazy(r, b"")?;
    let merged = lazy(l, r)?;
    Some((u64::from(left) << 32 | u64::from(right), merged))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
