//! Model hyper-parameters read from GGUF metadata (`<arch>.*` keys).

use crate::gguf::Gguf;
use crate::model::ModelError;

/// Supported architectures (trust the arch string in the file; FORMATS §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Arch {
    /// `bitnet-b1.58`: BitNet-b1.58-2B-4T (relu² FFN, sub-norms, NEOX RoPE).
    BitnetB158,
    /// `bitnet-25`: the first 2B4T upload's name for the same graph.
    Bitnet25,
    /// `bitnet`: 1bitLLM bitnet_b1_58-large/3B (SiLU FFN, sub-norms, NEOX RoPE, optional scales).
    Bitnet,
    /// `llama`: ternary Llama3-8B-1.58 / Falcon3-1.58bit (SiLU FFN, no sub-norms, NORM RoPE).
    Llama,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "bitnet-b1.58" => Arch::BitnetB158,
            "bitnet-25" => Arch::Bitnet25,
            "bitnet" => Arch::Bitnet,
            "llama" => Arch::Llama,
            _ => return None,
        })
    }

    /// The metadata key prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Arch::BitnetB158 => "bitnet-b1.58",
            Arch::Bitnet25 => "bitnet-25",
            Arch::Bitnet => "bitnet",
            Arch::Llama => "llama",
        }
    }
}

/// The gated FFN's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FfnAct {
    /// `relu(g)² · u` (bitnet-b1.58).
    ReluSqr,
    /// `silu(g) · u` (bitnet, llama).
    Silu,
}

/// Model hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Architecture.
    pub arch: Arch,
    /// Vocabulary size (rows of `token_embd`).
    pub n_vocab: usize,
    /// Residual width.
    pub n_embd: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA).
    pub n_head_kv: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// FFN hidden width.
    pub n_ff: usize,
    /// Training context length.
    pub n_ctx_train: usize,
    /// RoPE base θ.
    pub rope_theta: f32,
    /// Rotated dimensions per head.
    pub rope_dim: usize,
    /// NEOX pairing (i, i + d/2) when true; NORM pairing (2i, 2i+1) otherwise.
    pub rope_neox: bool,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// FFN activation.
    pub ffn_act: FfnAct,
    /// `attn_sub_norm` / `ffn_sub_norm` present.
    pub sub_norms: bool,
}

impl Config {
    /// K/V width per token (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
    /// Q width (`n_head * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Reads the config of a parsed file.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, ModelError> {
        let arch_s = g
            .get_str("general.architecture")
            .ok_or(ModelError::MissingKey { key: "general.architecture" })?;
        let arch = Arch::from_name(arch_s).ok_or(ModelError::UnsupportedArch)?;
        let p = arch.name();
        let mut keybuf = KeyBuf::new();
        let mut get = |suffix: &'static str| -> Option<u64> { g.get_u64(keybuf.key(p, suffix)) };
        let n_embd = get(".embedding_length");
        let n_layer = get(".block_count");
        let n_head = get(".attention.head_count");
        let n_head_kv = get(".attention.head_count_kv");
        let n_ff = get(".feed_forward_length");
        let n_ctx_train = get(".context_length");
        let rope_dim = get(".rope.dimension_count");
        let key_len = get(".attention.key_length");
        let vocab_size = get(".vocab_size");
        let mut keybuf = KeyBuf::new();
        let mut getf = |suffix: &'static str| g.get_f64(keybuf.key(p, suffix));
        let rope_theta = getf(".rope.freq_base").unwrap_or(10000.0) as f32;
        let rms_eps = getf(".attention.layer_norm_rms_epsilon");

        let need = |v: Option<u64>, key: &'static str| -> Result<usize, ModelError> {
            let v = v.ok_or(ModelError::MissingKey { key })?;
            if v == 0 || v > (1 << 24) {
                return Err(ModelError::BadValue { key, value: v });
            }
            Ok(v as usize)
        };
        let n_embd = need(n_embd, "<arch>.embedding_length")?;
        let n_layer = need(n_layer, "<arch>.block_count")?;
        let n_head = need(n_head, "<arch>.attention.head_count")?;
        let n_head_kv = match n_head_kv {
            Some(_) => need(n_head_kv, "<arch>.attention.head_count_kv")?,
            None => n_head,
        };
        let n_ff = need(n_ff, "<arch>.feed_forward_length")?;
        let n_ctx_train = match n_ctx_train {
            Some(_) => need(n_ctx_train, "<arch>.context_length")?,
            None => 2048,
        };
        let head_dim = match key_len {
            Some(_) => need(key_len, "<arch>.attention.key_length")?,
            None => {
                if n_embd % n_head != 0 {
                    return Err(ModelError::BadValue {
                        key: "<arch>.attention.head_count",
                        value: n_head as u64,
                    });
                }
                n_embd / n_head
            }
        };
        if n_head % n_head_kv != 0 {
            return Err(ModelError::BadValue {
                key: "<arch>.attention.head_count_kv",
                value: n_head_kv as u64,
            });
        }
        let rope_dim = match rope_dim {
            Some(_) => need(rope_dim, "<arch>.rope.dimension_count")?,
            None => head_dim,
        };
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(ModelError::BadValue {
                key: "<arch>.rope.dimension_count",
                value: rope_dim as u64,
            });
        }
        let rms_eps = match (rms_eps, arch) {
            (Some(e), _) => e as f32,
            (None, Arch::Llama) => 1e-5,
            (None, _) => {
                return Err(ModelError::MissingKey {
                    key: "<arch>.attention.layer_norm_rms_epsilon",
                });
            }
        };
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return Err(ModelError::BadValue { key: "<arch>.rope.freq_base", value: 0 });
        }
        // Vocabulary: the embedding's rows are authoritative.
        let n_vocab = match g.tensor("token_embd.weight") {
            Some(t) => t.ne[1] as usize,
            None => need(vocab_size, "<arch>.vocab_size")?,
        };
        let (ffn_act, sub_norms, rope_neox) = match arch {
            Arch::BitnetB158 | Arch::Bitnet25 => (FfnAct::ReluSqr, true, true),
            Arch::Bitnet => (FfnAct::Silu, true, true),
            Arch::Llama => (FfnAct::Silu, false, false),
        };
        Ok(Config {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_ctx_train,
            rope_theta,
            rope_dim,
            rope_neox,
            rms_eps,
            ffn_act,
            sub_norms,
        })
    }
}

/// Builds `<arch><suffix>` keys without allocating.
pub(crate) struct KeyBuf {
    buf: [u8; 96],
}

impl KeyBuf {
    pub(crate) fn new() -> Self {
        Self { buf: [0; 96] }
    }

    /// `prefix + suffix` as a str (truncated to the buffer; real keys are far shorter).
    pub(crate) fn key(&mut self, prefix: &str, suffix: &str) -> &str {
        let a = prefix.len().min(self.buf.len());
        self.buf[..a].copy_from_slice(&prefix.as_bytes()[..a]);
        let b = suffix.len().min(self.buf.len() - a);
        self.buf[a..a + b].copy_from_slice(&suffix.as_bytes()[..b]);
        core::str::from_utf8(&self.buf[..a + b]).unwrap_or("")
    }

    /// `blk.{layer}.{name}` for tensor names.
    pub(crate) fn blk(&mut self, layer: usize, name: &str) -> &str {
        use core::fmt::Write;
        let mut w = SliceWriter { buf: &mut self.buf, len: 0 };
        let _ = write!(w, "blk.{layer}.{name}");
        let len = w.len;
        core::str::from_utf8(&self.buf[..len]).unwrap_or("")
    }
}

struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
