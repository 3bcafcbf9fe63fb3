//! The runtime's top-level error: one variant per layer, plus decode-time conditions.

use crate::arena::ArenaError;
use crate::gguf::GgufError;
use crate::model::ModelError;
use crate::tokenizer::TokenizeError;

/// Anything that can go wrong in the runtime core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The model file is malformed.
    Gguf(GgufError),
    /// The file is not a model tern can run.
    Model(ModelError),
    /// The arena is too small.
    Arena(ArenaError),
    /// Tokenizer construction or encoding failed.
    Tokenize(TokenizeError),
    /// The context window is full: `needed` positions but only `n_ctx`.
    ContextFull {
        /// Context size the arena was planned for.
        n_ctx: usize,
        /// Positions the request needs.
        needed: usize,
    },
    /// More tokens in one call than the planned batch, or more logit rows than planned.
    BatchTooLarge {
        /// Tokens requested.
        n: usize,
        /// Planned maximum.
        max: usize,
    },
    /// A token id outside the vocabulary.
    BadToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// Invalid options (zero context, zero batch, ...).
    BadOptions,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Gguf(e) => write!(f, "{e}"),
            Error::Model(e) => write!(f, "{e}"),
            Error::Arena(e) => write!(f, "{e}"),
            Error::Tokenize(e) => write!(f, "{e}"),
            Error::ContextFull { n_ctx, needed } => write!(
                f,
                "context full: {needed} positions needed, the context holds {n_ctx} (raise -c, or \
                 drop old turns)"
            ),
            Error::BatchTooLarge { n, max } => {
                write!(f, "{n} tokens in one call, more than the planned batch of {max}")
            }
            Error::BadToken { id, n_vocab } => {
                write!(f, "token id {id} is outside the vocabulary (size {n_vocab})")
            }
            Error::BadOptions => write!(f, "invalid options: context and batch must be at least 1"),
        }
    }
}

impl core::error::Error for Error {}

impl From<GgufError> for Error {
    fn from(e: GgufError) -> Self {
        Error::Gguf(e)
    }
}
impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Error::Model(e)
    }
}
impl From<ArenaError> for Error {
    fn from(e: ArenaError) -> Self {
        Error::Arena(e)
    }
}
impl From<TokenizeError> for Error {
    fn from(e: TokenizeError) -> Self {
        Error::Tokenize(e)
    }
}
