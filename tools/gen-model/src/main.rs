//! `tern-gen-model`: writes a random-weight BitNet b1.58 GGUF of any shape, for benchmarks and
//! tests (`tern bench` on a 2B4T-shaped file without downloading the real one).
//!
//! ```text
//! tern-gen-model --preset 2b4t -o /tmp/2b4t-random.gguf      # 30 layers, 2560/6912, vocab 128256
//! tern-gen-model --preset tiny --layers 2 -o small.gguf
//! ```
//! Weights: I2_S codes uniform over {−1, 0, +1} with scale 1/sqrt(K) (so activations stay O(1)),
//! F16 embedding N(0, 0.3²)-ish, norm weights 1 ± 0.1. The vocabulary is synthetic (256 byte
//! tokens, the Llama-3 special tokens, then filler words) unless `--tokenizer-from FILE` copies
//! the tokenizer metadata of another GGUF.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use tern_gguf_writer::{GgufWriter, MetaValue, ty};

struct Shape {
    layers: usize,
    embd: usize,
    ff: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    ctx: usize,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn normal(&mut self) -> f32 {
        // Sum of uniforms: cheap and good enough for synthetic weights.
        let mut s = 0.0f32;
        for _ in 0..4 {
            s += (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        }
        (s - 2.0) * 1.732
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: tern-gen-model -o FILE [--preset 2b4t|tiny|large] [--layers N] [--embd N] [--ff N] \
         [--heads N] [--kv-heads N] [--vocab N] [--ctx N] [--seed N] [--tokenizer-from FILE.gguf]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut tok_from: Option<PathBuf> = None;
    let mut seed = 1u64;
    let mut s = Shape {
        layers: 30,
        embd: 2560,
        ff: 6912,
        heads: 20,
        kv_heads: 5,
        vocab: 128256,
        ctx: 4096,
    };
    while let Some(a) = args.next() {
        let mut num =
            || -> usize { args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()) };
        match a.as_str() {
            "-o" | "--output" => out = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--preset" => match args.next().as_deref() {
                Some("2b4t") => {
                    s = Shape {
                        layers: 30,
                        embd: 2560,
                        ff: 6912,
                        heads: 20,
                        kv_heads: 5,
                        vocab: 128256,
                        ctx: 4096,
                    }
                }
                Some("large") => {
                    s = Shape {
                        layers: 24,
                        embd: 1536,
                        ff: 4096,
                        heads: 16,
                        kv_heads: 16,
                        vocab: 32002,
                        ctx: 2048,
                    }
                }
                Some("tiny") => {
                    s = Shape {
                        layers: 4,
                        embd: 256,
                        ff: 768,
                        heads: 4,
                        kv_heads: 2,
                        vocab: 2048,
                        ctx: 256,
                    }
                }
                _ => usage(),
            },
            "--layers" => s.layers = num(),
            "--embd" => s.embd = num(),
            "--ff" => s.ff = num(),
            "--heads" => s.heads = num(),
            "--kv-heads" => s.kv_heads = num(),
            "--vocab" => s.vocab = num(),
            "--ctx" => s.ctx = num(),
            "--seed" => seed = num() as u64,
            "--tokenizer-from" => {
                tok_from = Some(PathBuf::from(args.next().unwrap_or_else(|| usage())))
            }
            _ => usage(),
        }
    }
    let Some(out) = out else { usage() };
    if !s.embd.is_multiple_of(128)
        || !s.ff.is_multiple_of(128)
        || !s.embd.is_multiple_of(s.heads)
        || !s.heads.is_multiple_of(s.kv_heads)
    {
        eprintln!(
            "error: embd and ff must be multiples of 128, heads must divide embd, kv-heads must divide heads"
        );
        std::process::exit(2);
    }
    let bytes = generate(&s, seed, tok_from.as_deref()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    std::fs::write(&out, &bytes).unwrap_or_else(|e| {
        eprintln!("error: cannot write {}: {e}", out.display());
        std::process::exit(1)
    });
    eprintln!("wrote {} ({:.1} MiB)", out.display(), bytes.len() as f64 / (1 << 20) as f64);
}

fn i2s_tensor(rng: &mut Rng, k: usize, m: usize) -> Vec<u8> {
    let n = k * m;
    let mut data = vec![0u8; n / 4 + 32];
    for (b, byte) in data[..n / 4].iter_mut().enumerate() {
        let r = rng.next();
        let mut v = 0u8;
        for j in 0..4 {
            v |= (((r >> (8 * j)) % 3) as u8) << (6 - 2 * j);
        }
        *byte = v;
        let _ = b;
    }
    let scale = 1.0f32 / (k as f32).sqrt();
    data[n / 4..n / 4 + 4].copy_from_slice(&scale.to_le_bytes());
    data
}

fn f32_tensor(v: impl Iterator<Item = f32>) -> Vec<u8> {
    v.flat_map(|x| x.to_le_bytes()).collect()
}

fn generate(s: &Shape, seed: u64, tok_from: Option<&std::path::Path>) -> Result<Vec<u8>, String> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut w = GgufWriter::new();
    let arch = "bitnet-b1.58";
    w.meta("general.architecture", MetaValue::Str(arch.into()));
    w.meta("general.name", MetaValue::Str("random-bitnet".into()));
    w.meta("general.file_type", MetaValue::U32(40));
    let k = |x: &str| format!("{arch}.{x}");
    w.meta(&k("vocab_size"), MetaValue::U32(s.vocab as u32));
    w.meta(&k("context_length"), MetaValue::U32(s.ctx as u32));
    w.meta(&k("embedding_length"), MetaValue::U32(s.embd as u32));
    w.meta(&k("block_count"), MetaValue::U32(s.layers as u32));
    w.meta(&k("feed_forward_length"), MetaValue::U32(s.ff as u32));
    w.meta(&k("rope.dimension_count"), MetaValue::U32((s.embd / s.heads) as u32));
    w.meta(&k("attention.head_count"), MetaValue::U32(s.heads as u32));
    w.meta(&k("attention.head_count_kv"), MetaValue::U32(s.kv_heads as u32));
    w.meta(&k("attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-5));
    w.meta(&k("rope.freq_base"), MetaValue::F32(500000.0));
    match tok_from {
        Some(p) => copy_tokenizer(&mut w, p, s.vocab)?,
        None => synthetic_tokenizer(&mut w, s.vocab),
    }
    let (e, ff) = (s.embd, s.ff);
    let hd = e / s.heads;
    let kv = s.kv_heads * hd;
    let emb: Vec<u8> = (0..s.vocab * e)
        .flat_map(|_| half::f16::from_f32(rng.normal() * 0.3).to_bits().to_le_bytes())
        .collect();
    w.tensor("token_embd.weight", &[e as u64, s.vocab as u64], ty::F16, emb);
    let norm = |rng: &mut Rng, n: usize| f32_tensor((0..n).map(|_| 1.0 + 0.1 * rng.normal()));
    let on = norm(&mut rng, e);
    w.tensor("output_norm.weight", &[e as u64], ty::F32, on);
    for l in 0..s.layers {
        let b = |x: &str| format!("blk.{l}.{x}");
        let t = norm(&mut rng, e);
        w.tensor(&b("attn_norm.weight"), &[e as u64], ty::F32, t);
        for (name, kk, m) in
            [("attn_q", e, e), ("attn_k", e, kv), ("attn_v", e, kv), ("attn_output", e, e)]
        {
            let d = i2s_tensor(&mut rng, kk, m);
            w.tensor(&b(&format!("{name}.weight")), &[kk as u64, m as u64], ty::I2_S, d);
        }
        let t = norm(&mut rng, e);
        w.tensor(&b("attn_sub_norm.weight"), &[e as u64], ty::F32, t);
        let t = norm(&mut rng, e);
        w.tensor(&b("ffn_norm.weight"), &[e as u64], ty::F32, t);
        for (name, kk, m) in [("ffn_gate", e, ff), ("ffn_up", e, ff), ("ffn_down", ff, e)] {
            let d = i2s_tensor(&mut rng, kk, m);
            w.tensor(&b(&format!("{name}.weight")), &[kk as u64, m as u64], ty::I2_S, d);
        }
        let t = norm(&mut rng, ff);
        w.tensor(&b("ffn_sub_norm.weight"), &[ff as u64], ty::F32, t);
    }
    Ok(w.to_bytes())
}

/// 256 byte tokens (GPT-2 byte-level alphabet), Llama-3-style specials, then filler words.
fn synthetic_tokenizer(w: &mut GgufWriter, vocab: usize) {
    let mut tokens: Vec<String> = (0u32..256).map(|b| byte_char(b as u8).to_string()).collect();
    let specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ];
    let n_fill = vocab.saturating_sub(256 + specials.len());
    for i in 0..n_fill {
        tokens.push(format!("\u{120}w{i}"));
    }
    let first_special = tokens.len() as u32;
    tokens.extend(specials.iter().map(|s| s.to_string()));
    tokens.truncate(vocab);
    let types: Vec<i32> =
        (0..tokens.len()).map(|i| if i as u32 >= first_special { 3 } else { 1 }).collect();
    w.meta("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    w.meta("tokenizer.ggml.pre", MetaValue::Str("llama-bpe".into()));
    w.meta("tokenizer.ggml.tokens", MetaValue::str_array(tokens));
    w.meta("tokenizer.ggml.token_type", MetaValue::i32_array(types));
    w.meta("tokenizer.ggml.merges", MetaValue::str_array(Vec::<String>::new()));
    w.meta("tokenizer.ggml.bos_token_id", MetaValue::U32(first_special));
    w.meta("tokenizer.ggml.eos_token_id", MetaValue::U32(first_special + 1));
    w.meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
}

fn byte_char(b: u8) -> char {
    // GPT-2 bytes_to_unicode: printable Latin-1 maps to itself, the rest to U+0100 + n.
    let printable = |c: u8| {
        (b'!'..=b'~').contains(&c) || (0xA1..=0xAC).contains(&c) || (0xAE..=0xFF).contains(&c)
    };
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

fn copy_tokenizer(w: &mut GgufWriter, p: &std::path::Path, vocab: usize) -> Result<(), String> {
    let bytes = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    let g = tern_runtime::gguf::Gguf::parse(&bytes).map_err(|e| e.to_string())?;
    for kv in g.metadata_iter() {
        let (k, v) = kv.map_err(|e| e.to_string())?;
        if !k.starts_with(b"tokenizer.") {
            continue;
        }
        let key = String::from_utf8_lossy(k).into_owned();
        use tern_runtime::gguf::Value as V;
        let mv = match v {
            V::String(s) => MetaValue::Bytes(s.to_vec()),
            V::U32(x) => MetaValue::U32(x),
            V::I32(x) => MetaValue::I32(x),
            V::U64(x) => MetaValue::U64(x),
            V::Bool(x) => MetaValue::Bool(x),
            V::F32(x) => MetaValue::F32(x),
            V::Array(a) if a.elem_type() == 8 => MetaValue::Array {
                elem: 8,
                items: a.strings().map(|s| MetaValue::Bytes(s.unwrap_or(&[]).to_vec())).collect(),
            },
            V::Array(a) if a.elem_type() == 6 => MetaValue::f32_array(a.f32s()),
            V::Array(a) => MetaValue::i32_array(a.ints().map(|x| x as i32)),
            _ => continue,
        };
        if key == "tokenizer.ggml.tokens"
            && matches!(&mv, MetaValue::Array { items, .. } if items.len() != vocab)
        {
            return Err(format!(
                "{} has a different vocabulary size than --vocab {vocab}",
                p.display()
            ));
        }
        w.meta(&key, mv);
    }
    Ok(())
}
