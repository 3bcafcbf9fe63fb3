//! Borrowed, validated views of a model's tensors (zero-copy: nothing is copied out of the file).
//!
//! TL1 tensors (bitnet.cpp's ARM LUT format, FORMATS §1.3) are accepted as
//! [`LinearData::Tl1`], with their tiling worked out from the file ([`super::tl1`]). The engine
//! repacks those whose `K` is a multiple of 128 into I2_S in its arena at load
//! ([`Weights::repack_bytes`]) and computes them with the I2_S kernels of every tier; the others
//! are computed in place with the TL1 GEMV.
//!
//! I2_S tensors are read in the file's block order unless the kernel set reads another
//! ([`tern_kernels::KernelSet::i2s_layout`]): then [`Weights::prepare_for`] asks the engine to
//! copy them into its arena in that order at load ([`Weights::repack_bytes`]).

use super::{Arch, Config, ModelError, TensorName};
use crate::arena::{cast_slice, slot_bytes};
use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::model::config::KeyBuf;
use tern_kernels::formats::i2s::Layout;
use tern_kernels::formats::tl1::Tiling;

/// Most transformer blocks a model may have. The largest ternary models (Falcon3-10B-1.58bit:
/// 40, Llama3-8B-1.58: 32, BitNet 2B4T: 30) fit with room; every layer costs ~570 bytes of
/// `Weights`, which is moved by value through loading, and a bare-metal boot core has a 508 KiB
/// stack (128 layers overflowed it).
pub const MAX_LAYERS: usize = 64;

/// Storage of a linear (matmul) weight.
#[derive(Debug, Clone, Copy)]
pub enum LinearData<'a> {
    /// I2_S codes (`k*m/4` bytes, 128/32 blocks) and the per-tensor scale.
    I2s {
        /// Packed codes.
        packed: &'a [u8],
        /// `max|W|` of the ternarised weights.
        scale: f32,
        /// The order of the blocks in `packed` (the file's, or the kernels' after a relayout).
        layout: Layout,
    },
    /// bitnet.cpp TL1 pair indices (`k*m/4` bytes) in the given tiling, and the per-tensor scale.
    Tl1 {
        /// Packed 4-bit pair indices ([`tern_kernels::formats::tl1`]).
        packed: &'a [u8],
        /// `max|W|` of the ternarised weights (the f32 in the tensor's trailing 32-byte slot).
        scale: f32,
        /// The tiling the indices are stored in (inferred, [`super::tl1`]).
        tiling: tern_kernels::formats::tl1::Tiling,
        /// Whether the engine repacks the layer into I2_S in its arena at load (set when `K` is a
        /// multiple of 128, the I2_S kernels' block). Clear it to compute the layer in place
        /// with the TL1 GEMV instead: no arena bytes, scalar speed.
        repack: bool,
    },
}

impl LinearData<'_> {
    /// The per-tensor weight scale.
    pub fn scale(&self) -> f32 {
        match *self {
            LinearData::I2s { scale, .. } | LinearData::Tl1 { scale, .. } => scale,
        }
    }
}

impl Linear<'_> {
    /// Whether the engine repacks this layer into I2_S in its arena at load (a TL1 tensor with
    /// `repack` set, which needs `K` a multiple of 128, the I2_S kernels' block).
    pub fn repacked_at_load(&self) -> bool {
        matches!(self.data, LinearData::Tl1 { repack: true, .. }) && self.k.is_multiple_of(128)
    }

    /// Whether the engine copies this I2_S layer into its arena at load in `target`'s block order
    /// (it is stored in another).
    pub fn relayouted_at_load(&self, target: Layout) -> bool {
        matches!(self.data, LinearData::I2s { layout, .. } if layout != target.of(self.k))
    }
}

/// A linear layer `y = W x` with `W` of shape `[k (in), m (out)]` in ggml order.
#[derive(Debug, Clone, Copy)]
pub struct Linear<'a> {
    /// Input width.
    pub k: usize,
    /// Output width.
    pub m: usize,
    /// Weights.
    pub data: LinearData<'a>,
    /// Optional `blk.N.*.scale` multiplier (old `bitnet` arch).
    pub extra_scale: Option<f32>,
}

/// Token embedding / LM head storage, `[n_vocab][n_embd]` row-major.
#[derive(Debug, Clone, Copy)]
pub enum Embedding<'a> {
    /// IEEE half bits.
    F16(&'a [u16]),
    /// bfloat16 bits.
    Bf16(&'a [u16]),
    /// f32.
    F32(&'a [f32]),
}

impl Embedding<'_> {
    /// Writes row `id` (length `n_embd`) as f32.
    pub fn row_f32(&self, id: usize, n_embd: usize, out: &mut [f32]) {
        let r = id * n_embd..(id + 1) * n_embd;
        match self {
            Embedding::F16(w) => {
                for (o, &h) in out.iter_mut().zip(&w[r]) {
                    *o = tern_kernels::reference::f16_to_f32(h);
                }
            }
            Embedding::Bf16(w) => {
                for (o, &h) in out.iter_mut().zip(&w[r]) {
                    *o = f32::from_bits(u32::from(h) << 16);
                }
            }
            Embedding::F32(w) => out.copy_from_slice(&w[r]),
        }
    }

    /// Storage bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Embedding::F16(w) | Embedding::Bf16(w) => w.len() * 2,
            Embedding::F32(w) => w.len() * 4,
        }
    }
}

/// One transformer block.
#[derive(Debug, Clone, Copy)]
pub struct LayerWeights<'a> {
    /// `attn_norm` (n_embd).
    pub attn_norm: &'a [f32],
    /// Q projection (n_embd → q_dim).
    pub wq: Linear<'a>,
    /// K projection (n_embd → kv_dim).
    pub wk: Linear<'a>,
    /// V projection (n_embd → kv_dim).
    pub wv: Linear<'a>,
    /// Output projection (q_dim → n_embd).
    pub wo: Linear<'a>,
    /// `attn_sub_norm` (q_dim), bitnet archs.
    pub attn_sub_norm: Option<&'a [f32]>,
    /// `ffn_norm` (n_embd).
    pub ffn_norm: &'a [f32],
    /// Gate (n_embd → n_ff).
    pub w_gate: Linear<'a>,
    /// Up (n_embd → n_ff).
    pub w_up: Linear<'a>,
    /// Down (n_ff → n_embd).
    pub w_down: Linear<'a>,
    /// `ffn_sub_norm` (n_ff), bitnet archs.
    pub ffn_sub_norm: Option<&'a [f32]>,
}

/// All weights of a model.
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// `token_embd.weight`.
    pub token_embd: Embedding<'a>,
    /// `output_norm.weight`.
    pub output_norm: &'a [f32],
    /// `output.weight` when the head is not tied (llama arch); `None` = tied to `token_embd`.
    pub output: Option<Embedding<'a>>,
    /// Blocks.
    pub layers: heapless::Vec<LayerWeights<'a>, MAX_LAYERS>,
    /// The block order the kernels read I2_S tensors in ([`Weights::prepare_for`]); tensors in
    /// another order are copied into the engine's arena in this one at load.
    pub i2s_layout: Layout,
    /// Copy the LM head into the engine's arena at load (the tied embedding with it), so that
    /// decode streams it from memory the host allocated (huge pages) rather than from the file's
    /// pages. Off by default: on bare metal the file already sits in RAM.
    pub copy_head: bool,
}

fn missing(name: &str) -> ModelError {
    ModelError::MissingTensor { name: TensorName::new(name.as_bytes()) }
}

fn find<'a>(g: &Gguf<'a>, name: &str) -> Result<TensorInfo<'a>, ModelError> {
    g.tensor(name).ok_or_else(|| missing(name))
}

fn check_shape(t: &TensorInfo<'_>, ne0: usize, ne1: usize) -> Result<(), ModelError> {
    let found = [t.ne[0], t.ne[1]];
    let expected = [ne0 as u64, ne1 as u64];
    if found != expected || t.ne[2] != 1 || t.ne[3] != 1 {
        return Err(ModelError::ShapeMismatch { tensor: TensorName::new(t.name), expected, found });
    }
    Ok(())
}

fn norm<'a>(g: &Gguf<'a>, name: &str, n: usize) -> Result<&'a [f32], ModelError> {
    let t = find(g, name)?;
    check_shape(&t, n, 1)?;
    if t.ty != GgmlType::F32 {
        return Err(ModelError::UnsupportedTensorType {
            tensor: TensorName::new(t.name),
            ty: t.ty,
        });
    }
    cast_slice::<f32>(t.data).ok_or(ModelError::Misaligned { tensor: TensorName::new(t.name) })
}

fn embedding<'a>(t: &TensorInfo<'a>) -> Result<Embedding<'a>, ModelError> {
    let name = TensorName::new(t.name);
    let mis = ModelError::Misaligned { tensor: name };
    Ok(match t.ty {
        GgmlType::F16 => Embedding::F16(cast_slice::<u16>(t.data).ok_or(mis)?),
        GgmlType::BF16 => Embedding::Bf16(cast_slice::<u16>(t.data).ok_or(mis)?),
        GgmlType::F32 => Embedding::F32(cast_slice::<f32>(t.data).ok_or(mis)?),
        ty => return Err(ModelError::UnsupportedTensorType { tensor: name, ty }),
    })
}

/// Tilings already worked out, per TL1 shape `(m, k)` (a model has a handful of shapes).
type TilingCache = heapless::Vec<((usize, usize), Tiling), 16>;

fn tl1_tiling(
    g: &Gguf<'_>,
    m: usize,
    k: usize,
    tn: TensorName,
    cache: &mut TilingCache,
) -> Result<Tiling, ModelError> {
    if let Some((_, t)) = cache.iter().find(|(s, _)| *s == (m, k)) {
        return Ok(*t);
    }
    let t = super::tl1::infer(g, m, k, tn)?.tiling;
    // A full cache only costs a repeated inference.
    let _ = cache.push(((m, k), t));
    Ok(t)
}

fn linear<'a>(
    g: &Gguf<'a>,
    name: &str,
    k: usize,
    m: usize,
    scale_name: Option<&str>,
    cache: &mut TilingCache,
) -> Result<Linear<'a>, ModelError> {
    let t = find(g, name)?;
    check_shape(&t, k, m)?;
    let tn = TensorName::new(t.name);
    let data = match t.ty {
        GgmlType::I2S => {
            if !k.is_multiple_of(128) {
                return Err(ModelError::BadBlockShape { tensor: tn });
            }
            let n = k * m / 4;
            let packed = &t.data[..n];
            let sb = &t.data[n..n + 4];
            let scale = f32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]);
            if !scale.is_finite() {
                return Err(ModelError::BadValue { key: "I2_S tensor scale", value: 0 });
            }
            LinearData::I2s { packed, scale, layout: Layout::Published }
        }
        GgmlType::TL1 => {
            let n = k * m / 4;
            let packed = &t.data[..n];
            if !super::tl1::check_indices(packed) {
                return Err(ModelError::Tl1BadIndex { tensor: tn });
            }
            let tiling = tl1_tiling(g, m, k, tn, cache)?;
            let sb = &t.data[n..n + 4];
            let scale = f32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]);
            if !scale.is_finite() {
                return Err(ModelError::BadValue { key: "TL1 tensor scale", value: 0 });
            }
            LinearData::Tl1 { packed, scale, tiling, repack: k.is_multiple_of(128) }
        }
        ty => return Err(ModelError::UnsupportedTensorType { tensor: tn, ty }),
    };
    let extra_scale = match scale_name {
        Some(sn) => match g.tensor(sn) {
            Some(st) if st.ty == GgmlType::F32 && st.n_elements() == 1 && st.data.len() >= 4 => {
                let b = st.data;
                Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            Some(st) => {
                return Err(ModelError::UnsupportedTensorType {
                    tensor: TensorName::new(st.name),
                    ty: st.ty,
                });
            }
            None => None,
        },
        None => None,
    };
    Ok(Linear { k, m, data, extra_scale })
}

impl<'a> Weights<'a> {
    /// Resolves and checks every tensor the config needs.
    // Out of line: its ~72 KB `Weights` temporaries then never share a frame with the caller's (a
    // bare-metal boot core has a 508 KB stack).
    #[inline(never)]
    pub fn from_gguf(g: &Gguf<'a>, c: &Config) -> Result<Self, ModelError> {
        if c.n_layer > MAX_LAYERS {
            return Err(ModelError::TooManyLayers { n_layer: c.n_layer });
        }
        let te = find(g, "token_embd.weight")?;
        check_shape(&te, c.n_embd, c.n_vocab)?;
        let token_embd = embedding(&te)?;
        let output_norm = norm(g, "output_norm.weight", c.n_embd)?;
        // bitnet archs always tie the head to token_embd (build_bitnet_158 ignores output.weight).
        let output = match (c.arch, g.tensor("output.weight")) {
            (Arch::Llama, Some(t)) => {
                check_shape(&t, c.n_embd, c.n_vocab)?;
                Some(embedding(&t)?)
            }
            _ => None,
        };
        let scaled = c.arch == Arch::Bitnet;
        let mut layers = heapless::Vec::new();
        let mut kb = KeyBuf::new();
        let mut kb2 = KeyBuf::new();
        let mut cache = TilingCache::new();
        for l in 0..c.n_layer {
            let mut lin =
                |w: &str, s: &str, k: usize, m: usize| -> Result<Linear<'a>, ModelError> {
                    let wn = kb.blk(l, w);
                    let sn = if scaled { Some(kb2.blk(l, s)) } else { None };
                    linear(g, wn, k, m, sn, &mut cache)
                };
            let wq = lin("attn_q.weight", "attn_q.scale", c.n_embd, c.q_dim())?;
            let wk = lin("attn_k.weight", "attn_k.scale", c.n_embd, c.kv_dim())?;
            let wv = lin("attn_v.weight", "attn_v.scale", c.n_embd, c.kv_dim())?;
            let wo = lin("attn_output.weight", "attn_output.scale", c.q_dim(), c.n_embd)?;
            let w_gate = lin("ffn_gate.weight", "ffn_gate.scale", c.n_embd, c.n_ff)?;
            let w_up = lin("ffn_up.weight", "ffn_up.scale", c.n_embd, c.n_ff)?;
            let w_down = lin("ffn_down.weight", "ffn_down.scale", c.n_ff, c.n_embd)?;
            let attn_norm = norm(g, kb.blk(l, "attn_norm.weight"), c.n_embd)?;
            let ffn_norm = norm(g, kb.blk(l, "ffn_norm.weight"), c.n_embd)?;
            let (attn_sub_norm, ffn_sub_norm) = if c.sub_norms {
                (
                    Some(norm(g, kb.blk(l, "attn_sub_norm.weight"), c.q_dim())?),
                    Some(norm(g, kb.blk(l, "ffn_sub_norm.weight"), c.n_ff)?),
                )
            } else {
                (None, None)
            };
            let lw = LayerWeights {
                attn_norm,
                wq,
                wk,
                wv,
                wo,
                attn_sub_norm,
                ffn_norm,
                w_gate,
                w_up,
                w_down,
                ffn_sub_norm,
            };
            if layers.push(lw).is_err() {
                return Err(ModelError::TooManyLayers { n_layer: c.n_layer });
            }
        }
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            layers,
            i2s_layout: Layout::Published,
            copy_head: false,
        })
    }

    /// The LM head (untied `output.weight` or the tied embedding).
    pub fn head(&self) -> Embedding<'a> {
        self.output.unwrap_or(self.token_embd)
    }

    /// The seven linear layers of block `l`, in a fixed order.
    pub fn linears(&self, l: usize) -> [&Linear<'a>; 7] {
        let b = &self.layers[l];
        [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down]
    }

    /// [`Self::linears`], mutable.
    pub fn linears_mut(&mut self, l: usize) -> [&mut Linear<'a>; 7] {
        let b = &mut self.layers[l];
        [&mut b.wq, &mut b.wk, &mut b.wv, &mut b.wo, &mut b.w_gate, &mut b.w_up, &mut b.w_down]
    }

    /// Arena bytes the engine needs to repack TL1 layers into I2_S, and I2_S layers into the
    /// kernels' block order, at load (0 for I2_S files read in the file's order): one arena slot
    /// of `k·m/4` bytes per layer with [`Linear::repacked_at_load`] or
    /// [`Linear::relayouted_at_load`].
    pub fn repack_bytes(&self) -> usize {
        let mut b = 0;
        for l in 0..self.layers.len() {
            for lin in self.linears(l) {
                if lin.repacked_at_load() || lin.relayouted_at_load(self.i2s_layout) {
                    b += slot_bytes::<u8>(lin.k * lin.m / 4);
                }
            }
        }
        b
    }

    /// Arena bytes of the LM head's copy ([`Weights::copy_head`]; 0 when not copied).
    pub fn head_copy_bytes(&self) -> usize {
        if !self.copy_head {
            return 0;
        }
        match self.head() {
            Embedding::F16(w) | Embedding::Bf16(w) => slot_bytes::<u16>(w.len()),
            Embedding::F32(w) => slot_bytes::<f32>(w.len()),
        }
    }

    /// Makes every TL1-format layer be computed in place by the TL1 GEMV instead of repacked
    /// into I2_S at load (what a kernel set of tier [`tern_kernels::Tier::Tl1`] asks for).
    pub fn compute_tl1_in_place(&mut self) {
        for l in 0..self.layers.len() {
            for lin in self.linears_mut(l) {
                if let LinearData::Tl1 { repack, .. } = &mut lin.data {
                    *repack = false;
                }
            }
        }
    }

    /// Applies the kernel set's choices: TL1-format layers in place with the lookup kernel for
    /// the `tl1` tier, repacked into I2_S otherwise; I2_S in the block order the set reads
    /// ([`tern_kernels::KernelSet::i2s_layout`]). Call before planning the arena.
    pub fn prepare_for(&mut self, kernels: &tern_kernels::KernelSet) {
        self.i2s_layout = kernels.i2s_layout;
        if kernels.info.tier == tern_kernels::Tier::Tl1 {
            self.compute_tl1_in_place();
        }
    }

    /// Lookup tables the TL1 layers computed in place need: one per activation pair of the
    /// widest such layer (`K/2`; 0 when every layer is I2_S or repacked).
    pub fn tl1_table_count(&self) -> usize {
        let mut n = 0;
        for l in 0..self.layers.len() {
            for lin in self.linears(l) {
                if matches!(lin.data, LinearData::Tl1 { .. }) && !lin.repacked_at_load() {
                    n = n.max(lin.k / 2);
                }
            }
        }
        n
    }

    /// Bytes of weights read to decode one token (all linear layers, norms, the head, one
    /// embedding row).
    pub fn bytes_per_token(&self, c: &Config) -> usize {
        let mut b = self.head().bytes();
        for l in &self.layers {
            for lin in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                b += lin.k * lin.m / 4 + 32;
            }
            b += 4 * (2 * c.n_embd + if c.sub_norms { c.q_dim() + c.n_ff } else { 0 });
        }
        b + 4 * c.n_embd + 2 * c.n_embd
    }
}
