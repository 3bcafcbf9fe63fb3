//! Glue from GGUF metadata (`tokenizer.ggml.*`) to [`Tokenizer`].
//!
//! Keys read: `tokenizer.ggml.model` (must be `gpt2`), `tokens` (string array), `merges`
//! (string array; absent = no merges), `token_type` (integer array, optional; values outside
//! `i32` read as 0), `pre` (optional; see
//! [`PreTokenizer::from_gguf_name`]), `bos_token_id`, `eos_token_id`, `add_bos_token` (absent:
//! true when there is a BOS token). Every table is copied into the arena, so the tokenizer does
//! not borrow the file.

use super::{
    PreTokenizer, ShortName, TokenizeError, Tokenizer, TokenizerConfig, TokenizerKey, VocabStats,
};
use crate::arena::Arena;
use crate::gguf::{ArrayView, Gguf, vt};

/// The vocabulary arrays of a GGUF file, checked once.
#[derive(Clone, Copy)]
struct Arrays<'g> {
    tokens: ArrayView<'g>,
    merges: Option<ArrayView<'g>>,
    types: Option<ArrayView<'g>>,
}

fn string_array<'g>(g: &Gguf<'g>, key: TokenizerKey) -> Result<ArrayView<'g>, TokenizeError> {
    let a = g
        .metadata(key.as_str())
        .and_then(|v| v.as_array())
        .filter(|a| a.elem_type() == vt::STRING || a.is_empty())
        .ok_or(TokenizeError::MissingKey { key })?;
    // Surface truncation now, so later passes can treat every element as present.
    for s in a.strings() {
        s?;
    }
    Ok(a)
}

impl<'g> Arrays<'g> {
    fn read(g: &Gguf<'g>) -> Result<Self, TokenizeError> {
        let model = g
            .metadata(TokenizerKey::Model.as_str())
            .ok_or(TokenizeError::MissingKey { key: TokenizerKey::Model })?;
        match model {
            crate::gguf::Value::String(b"gpt2") => {}
            crate::gguf::Value::String(other) => {
                return Err(TokenizeError::UnsupportedModel { name: ShortName::new(other) });
            }
            _ => return Err(TokenizeError::MissingKey { key: TokenizerKey::Model }),
        }
        let tokens = string_array(g, TokenizerKey::Tokens)?;
        let merges = match g.metadata(TokenizerKey::Merges.as_str()) {
            None => None,
            Some(_) => Some(string_array(g, TokenizerKey::Merges)?),
        };
        let types = match g.metadata(TokenizerKey::TokenType.as_str()) {
            None => None,
            Some(v) => Some(
                v.as_array().ok_or(TokenizeError::MissingKey { key: TokenizerKey::TokenType })?,
            ),
        };
        Ok(Self { tokens, merges, types })
    }

    fn tokens(&self) -> impl Iterator<Item = &'g [u8]> + Clone + use<'g> {
        self.tokens.strings().map(|r| r.unwrap_or(&[]))
    }

    fn merges(&self) -> impl Iterator<Item = &'g [u8]> + Clone + use<'g> {
        self.merges.into_iter().flat_map(|m| m.strings()).map(|r| r.unwrap_or(&[]))
    }

    fn types(&self) -> Option<impl Iterator<Item = i32> + Clone + use<'g>> {
        self.types.map(|a| a.ints().map(|v| i32::try_from(v).unwrap_or(0)))
    }
}

fn id_key(g: &Gguf<'_>, key: &str) -> Result<Option<u32>, TokenizeError> {
    match g.get_u64(key) {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| TokenizeError::TokenIdOutOfRange { id: u32::MAX, n_vocab: 0 }),
    }
}

/// [`TokenizerConfig`] from `tokenizer.ggml.{pre,bos_token_id,eos_token_id,add_bos_token}`.
pub fn config_from_gguf(g: &Gguf<'_>) -> Result<TokenizerConfig, TokenizeError> {
    let pre = match g.metadata("tokenizer.ggml.pre") {
        None => PreTokenizer::from_gguf_name(None)?,
        Some(crate::gguf::Value::String(s)) => PreTokenizer::from_gguf_name(Some(s))?,
        Some(_) => {
            return Err(TokenizeError::UnsupportedPreTokenizer { name: ShortName::new(b"?") });
        }
    };
    let bos = id_key(g, "tokenizer.ggml.bos_token_id")?;
    let eos = id_key(g, "tokenizer.ggml.eos_token_id")?;
    let add_bos = g
        .metadata("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(bos.is_some());
    Ok(TokenizerConfig { pre, bos, eos, add_bos })
}

impl VocabStats {
    /// Measures the vocabulary stored in a GGUF file.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, TokenizeError> {
        let a = Arrays::read(g)?;
        VocabStats::measure(a.tokens(), a.types(), a.merges())
    }
}

impl<'a> Tokenizer<'a> {
    /// Arena bytes [`Tokenizer::from_gguf`] takes (see [`Tokenizer::arena_bytes`]).
    pub fn gguf_arena_bytes(g: &Gguf<'_>, max_piece_bytes: usize) -> Result<usize, TokenizeError> {
        Ok(Tokenizer::arena_bytes(&VocabStats::from_gguf(g)?, max_piece_bytes))
    }

    /// Builds the tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(
        g: &Gguf<'_>,
        arena: &mut Arena<'a>,
        max_piece_bytes: usize,
    ) -> Result<Self, TokenizeError> {
        let cfg = config_from_gguf(g)?;
        let a = Arrays::read(g)?;
        Tokenizer::build(arena, a.tokens(), a.types(), a.merges(), cfg, max_piece_bytes)
    }
}
