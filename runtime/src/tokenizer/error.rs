//! [`TokenizeError`]: every way building or using a tokenizer can fail, with `Copy` context only.

use crate::arena::ArenaError;

/// Up to 32 bytes of a name found in a file (a pre-tokenizer or model name), kept by value so that
/// errors stay `Copy` and allocation-free. Longer names are truncated (see [`ShortName::truncated`]).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ShortName {
    bytes: [u8; 32],
    len: u8,
    truncated: bool,
}

impl ShortName {
    /// Copies the first 32 bytes of `name`.
    pub fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        let len = name.len().min(bytes.len());
        bytes[..len].copy_from_slice(&name[..len]);
        Self { bytes, len: len as u8, truncated: name.len() > len }
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the original name was longer than what is stored.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl core::fmt::Debug for ShortName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl core::fmt::Display for ShortName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for chunk in self.as_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        if self.truncated {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Building a tokenizer, encoding or decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TokenizeError {
    /// The output buffer of `encode` holds only `capacity` ids and the text needs more.
    TooManyTokens {
        /// Length of the caller's output buffer.
        capacity: usize,
    },
    /// One pre-tokenized piece that is not a vocabulary entry is longer than the BPE scratch
    /// reserved at build time (`max_piece_bytes`).
    PieceTooLong {
        /// Bytes in the piece.
        len: usize,
        /// `max_piece_bytes` the tokenizer was built with.
        max: usize,
    },
    /// The vocabulary has more tokens than ids fit in `u32` (or none at all).
    BadVocabSize {
        /// Number of tokens.
        n_tokens: usize,
    },
    /// The token strings add up to more than 4 GiB.
    VocabTooLarge {
        /// Total bytes of the token strings.
        bytes: usize,
    },
    /// The merge list has more entries than ranks fit in `u32`.
    TooManyMerges {
        /// Number of merges.
        n_merges: usize,
    },
    /// The token-type array does not have one entry per token.
    TokenTypeCountMismatch {
        /// Number of tokens.
        tokens: usize,
        /// Number of token types.
        types: usize,
    },
    /// A configured token id (BOS, EOS) is not below the vocabulary size.
    TokenIdOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// `encode` was asked to add BOS but the vocabulary has none.
    NoBosToken,
    /// `tokenizer.ggml.pre` names a pre-tokenizer this runtime does not implement.
    UnsupportedPreTokenizer {
        /// The value found.
        name: ShortName,
    },
    /// `tokenizer.ggml.model` is not a byte-level BPE model (`gpt2`).
    UnsupportedModel {
        /// The value found.
        name: ShortName,
    },
    /// A required tokenizer key is missing from the model file, or has the wrong type.
    MissingKey {
        /// Which key.
        key: TokenizerKey,
    },
    /// The model file could not be read.
    Gguf(crate::gguf::GgufError),
    /// The caller's output buffer for decoded text is too small.
    OutputTooSmall {
        /// Bytes that may be needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// The arena could not hold the tokenizer tables.
    Arena(ArenaError),
}

/// Tokenizer metadata keys a model file must provide (named in [`TokenizeError::MissingKey`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TokenizerKey {
    /// `tokenizer.ggml.model`.
    Model,
    /// `tokenizer.ggml.tokens`.
    Tokens,
    /// `tokenizer.ggml.merges`.
    Merges,
    /// `tokenizer.ggml.token_type`.
    TokenType,
}

impl TokenizerKey {
    /// The GGUF key string.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenizerKey::Model => "tokenizer.ggml.model",
            TokenizerKey::Tokens => "tokenizer.ggml.tokens",
            TokenizerKey::Merges => "tokenizer.ggml.merges",
            TokenizerKey::TokenType => "tokenizer.ggml.token_type",
        }
    }
}

impl From<ArenaError> for TokenizeError {
    fn from(e: ArenaError) -> Self {
        TokenizeError::Arena(e)
    }
}

impl From<crate::gguf::GgufError> for TokenizeError {
    fn from(e: crate::gguf::GgufError) -> Self {
        TokenizeError::Gguf(e)
    }
}

impl core::fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            TokenizeError::TooManyTokens { capacity } => {
                write!(f, "text needs more than {capacity} tokens (output buffer full)")
            }
            TokenizeError::PieceTooLong { len, max } => write!(
                f,
                "pre-tokenized piece of {len} bytes exceeds the BPE scratch of {max} bytes"
            ),
            TokenizeError::BadVocabSize { n_tokens } => {
                write!(f, "unsupported vocabulary size {n_tokens}")
            }
            TokenizeError::VocabTooLarge { bytes } => {
                write!(f, "token strings total {bytes} bytes (limit 4 GiB)")
            }
            TokenizeError::TooManyMerges { n_merges } => write!(f, "{n_merges} merges is too many"),
            TokenizeError::TokenTypeCountMismatch { tokens, types } => {
                write!(f, "{tokens} tokens but {types} token types")
            }
            TokenizeError::TokenIdOutOfRange { id, n_vocab } => {
                write!(f, "token id {id} is out of range (vocabulary size {n_vocab})")
            }
            TokenizeError::NoBosToken => f.write_str("BOS requested but the vocabulary has none"),
            TokenizeError::UnsupportedPreTokenizer { name } => {
                write!(f, "unsupported pre-tokenizer \"{name}\"")
            }
            TokenizeError::UnsupportedModel { name } => {
                write!(f, "unsupported tokenizer model \"{name}\" (only gpt2 byte-level BPE)")
            }
            TokenizeError::MissingKey { key } => {
                write!(f, "missing or mistyped metadata key {}", key.as_str())
            }
            TokenizeError::Gguf(e) => write!(f, "model file: {e}"),
            TokenizeError::OutputTooSmall { needed, capacity } => {
                write!(f, "output buffer of {capacity} bytes is too small (up to {needed} needed)")
            }
            TokenizeError::Arena(e) => write!(f, "tokenizer tables: {e}"),
        }
    }
}

impl core::error::Error for TokenizeError {}
