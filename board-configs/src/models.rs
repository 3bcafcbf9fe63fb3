//! Model sizes, for "which models fit on which board".
//!
//! The weight bytes are computed from each model's published shapes with the byte sizes of
//! DESIGN.md §3 (I2_S: `ne0·ne1/4 + 32` per ternary tensor; F16 embeddings; F32 norms), so they
//! match the GGUF files to within the header and alignment padding (a few hundred KB at most).
//! The arena is an *estimate* of what the runtime's `Plan` will ask for (KV cache in f16 plus f32
//! activations, logits and a tokenizer/sampler margin) until `tern-runtime` exposes the exact plan;
//! the KV cache, which dominates at long contexts, is exact.

/// Bytes in one GiB.
pub const GIB: u64 = 1 << 30;
/// Bytes in one MiB.
pub const MIB: u64 = 1 << 20;

/// RAM a Linux board needs besides tern (kernel, page cache floor, a shell over SSH): 320 MiB,
/// a conservative figure for Raspberry Pi OS Lite (about 150–200 MB used after boot).
pub const LINUX_RESERVED_BYTES: u64 = 320 * MIB;

/// RAM the bare-metal image needs besides model and arena: image, stack, page tables, device tree
/// and the firmware's spin tables, rounded up to 8 MiB.
pub const BAREMETAL_RESERVED_BYTES: u64 = 8 * MIB;

/// Sizes of one model, enough to decide whether it fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelSpec {
    /// Short name.
    pub name: &'static str,
    /// Bytes of the GGUF's tensor data (the model file, which is mapped or loaded as is).
    pub weight_bytes: u64,
    /// Transformer blocks.
    pub n_layer: u64,
    /// Embedding width.
    pub n_embd: u64,
    /// Feed-forward width.
    pub n_ff: u64,
    /// Query heads.
    pub n_head: u64,
    /// Key/value width (`n_kv_head · head_dim`).
    pub kv_dim: u64,
    /// Vocabulary size.
    pub vocab: u64,
}

impl ModelSpec {
    /// A BitNet b1.58 model with I2_S linear weights, F16 token embeddings and F32 norms
    /// (attention and FFN sub-norms included), with a tied or separate F16 output head.
    /// `shape.weight_bytes` is ignored and computed.
    pub const fn bitnet_i2s(shape: ModelSpec, tied_output: bool) -> ModelSpec {
        let ModelSpec { n_layer, n_embd, n_ff, kv_dim, vocab, .. } = shape;
        // q, o: n_embd x n_embd; k, v: n_embd x kv_dim; gate, up: n_embd x n_ff; down: n_ff x n_embd.
        let per_layer_ternary = 2 * i2s(n_embd, n_embd)
            + 2 * i2s(n_embd, kv_dim)
            + 2 * i2s(n_embd, n_ff)
            + i2s(n_ff, n_embd);
        // attn_norm, attn_sub_norm, ffn_norm (n_embd each), ffn_sub_norm (n_ff), f32.
        let per_layer_norms = (3 * n_embd + n_ff) * 4;
        let embd = vocab * n_embd * 2;
        let output = if tied_output { 0 } else { vocab * n_embd * 2 };
        let weight_bytes =
            n_layer * (per_layer_ternary + per_layer_norms) + embd + output + n_embd * 4;
        ModelSpec { weight_bytes, ..shape }
    }

    /// KV cache bytes for `n_ctx` tokens (f16 K and V): `2 · n_layer · n_ctx · kv_dim · 2`.
    pub const fn kv_cache_bytes(&self, n_ctx: u64) -> u64 {
        2 * self.n_layer * n_ctx * self.kv_dim * 2
    }

    /// Estimated arena bytes for `n_ctx` tokens: KV cache, f32 activations
    /// (`6·n_embd + 3·n_ff + n_head·n_ctx + vocab` floats), int8 activation scratch and 1 MiB for
    /// the tokenizer and sampler.
    pub const fn arena_bytes(&self, n_ctx: u64) -> u64 {
        let floats = 6 * self.n_embd + 3 * self.n_ff + self.n_head * n_ctx + self.vocab;
        self.kv_cache_bytes(n_ctx) + floats * 4 + self.n_ff + MIB
    }

    /// Weights plus arena.
    pub const fn total_bytes(&self, n_ctx: u64) -> u64 {
        self.weight_bytes + self.arena_bytes(n_ctx)
    }
}

/// Bytes of one I2_S tensor of shape `[ne0, ne1]` (DESIGN.md §3).
const fn i2s(ne0: u64, ne1: u64) -> u64 {
    ne0 * ne1 / 4 + 32
}

/// microsoft/bitnet-b1.58-2B-4T, `ggml-model-i2_s.gguf` (about 1.19 GB; the tied F16 embedding is
/// 656 MB of it).
pub const BITNET_B1_58_2B_4T: ModelSpec = ModelSpec::bitnet_i2s(
    ModelSpec {
        name: "bitnet-b1.58-2B-4T",
        weight_bytes: 0,
        n_layer: 30,
        n_embd: 2560,
        n_ff: 6912,
        n_head: 20,
        kv_dim: 640,
        vocab: 128_256,
    },
    true,
);

/// 1bitLLM/bitnet_b1_58-large (0.7B), converted to I2_S with separate F16 output head.
pub const BITNET_B1_58_LARGE: ModelSpec = ModelSpec::bitnet_i2s(
    ModelSpec {
        name: "bitnet_b1_58-large",
        weight_bytes: 0,
        n_layer: 24,
        n_embd: 1536,
        n_ff: 4096,
        n_head: 16,
        kv_dim: 1536,
        vocab: 32_002,
    },
    false,
);

/// HF1BitLLM/Llama3-8B-1.58-100B-tokens in I2_S (Llama graph; sized like a BitNet model with an
/// untied F16 head, which over-counts the absent sub-norms by a few KB).
pub const LLAMA3_8B_1_58: ModelSpec = ModelSpec::bitnet_i2s(
    ModelSpec {
        name: "Llama3-8B-1.58",
        weight_bytes: 0,
        n_layer: 32,
        n_embd: 4096,
        n_ff: 14_336,
        n_head: 32,
        kv_dim: 1024,
        vocab: 128_256,
    },
    false,
);

/// The project's tiny trained fixture (`tests/data/tiny-trained.i2_s.gguf`, 1.9 MB).
pub const TINY_TRAINED: ModelSpec = ModelSpec::bitnet_i2s(
    ModelSpec {
        name: "tiny-trained",
        weight_bytes: 0,
        n_layer: 4,
        n_embd: 256,
        n_ff: 768,
        n_head: 4,
        kv_dim: 128,
        vocab: 2048,
    },
    true,
);

/// Every model above, smallest first.
pub const ALL_MODELS: &[&ModelSpec] =
    &[&TINY_TRAINED, &BITNET_B1_58_LARGE, &BITNET_B1_58_2B_4T, &LLAMA3_8B_1_58];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_b_four_t_size() {
        // 210 I2_S tensors hold 2 084 044 800 weights → 521 011 200 B + 210·32; embeddings
        // 2560·128256·2 = 656 670 720 B.
        let m = &BITNET_B1_58_2B_4T;
        let ternary = 30 * (2 * 2560 * 2560 + 2 * 2560 * 640 + 3 * 2560 * 6912) / 4 + 210 * 32;
        assert_eq!(ternary, 521_011_200 + 6720);
        assert!(m.weight_bytes > ternary + 656_670_720);
        assert!(m.weight_bytes < ternary + 656_670_720 + 2 * MIB);
        // 76.8 KB of KV cache per context token (DESIGN.md §6).
        assert_eq!(m.kv_cache_bytes(1), 76_800);
    }

    #[test]
    fn tiny_trained_size_close_to_file() {
        // The fixture file is 1 924 768 bytes including metadata (vocab, merges).
        let w = TINY_TRAINED.weight_bytes;
        assert!(w > 1_300_000 && w < 1_924_768, "{w}");
    }

    #[test]
    fn sorted_by_size() {
        assert!(ALL_MODELS.windows(2).all(|w| w[0].weight_bytes < w[1].weight_bytes));
    }
}
