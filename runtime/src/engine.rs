//! The forward pass and its memory plan.
//!
//! [`Plan`] computes the exact arena bytes for a config, context length and batch size;
//! [`Engine::new`] carves those buffers out of the arena once. [`Engine::eval`] then runs a batch
//! of tokens through the model (DESIGN §4–5) without allocating: activations, int8 scratch, the
//! f16 KV cache and the logits all live in the arena.
//!
//! Precision rules that keep the logits within the bitnet.cpp fixtures' tolerance (fixtures
//! README, "Numerics that matter"): Q is rounded to f16 before QK; the softmax probabilities and
//! the LM-head input are rounded to f16 only when one token (one logit row) is computed; K and V
//! are stored as f16.

use crate::arena::{Arena, slot_bytes};
use crate::error::Error;
use crate::model::{Config, Embedding, FfnAct, Linear, LinearData, Weights};
use crate::ops;
use crate::par::{DisjointMut, Parallel, Shares, split_rows};
use tern_kernels::KernelSet;
use tern_kernels::formats::i2s::Layout;
use tern_kernels::formats::tl1::PairTable;
use tern_kernels::reference::{f32_to_f16, finish_i2s};

/// Sizes the arena is planned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlanOptions {
    /// Context length (KV cache positions).
    pub n_ctx: usize,
    /// Most tokens per [`Engine::eval`] call (prefill batch).
    pub n_batch: usize,
    /// Most logit rows per call (1 for generation; `n_batch` to dump every position).
    pub logits_rows: usize,
}

/// Exact arena bytes for the engine's buffers (each rounded to the arena's alignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Plan {
    /// f16 K and V caches: `2 · n_layer · n_ctx · kv_dim · 2` bytes.
    pub kv_cache: usize,
    /// f32 activations of a batch.
    pub activations: usize,
    /// int8 activations, their scales and i32 matmul outputs.
    pub quantized: usize,
    /// Attention scores and RoPE tables.
    pub attention: usize,
    /// Logits (`logits_rows · n_vocab · 4`).
    pub logits: usize,
    /// Layers copied into the arena at load: TL1 repacked into I2_S, and I2_S put in the kernels'
    /// block order when it is not the file's ([`Weights::repack_bytes`]).
    pub repacked: usize,
    /// Lookup tables of the TL1 layers computed in place ([`Weights::tl1_table_count`] × 32).
    pub tl1_tables: usize,
    /// The LM head copied into the arena at load ([`Weights::copy_head`]).
    pub head: usize,
}

impl Plan {
    /// Plans `opts` for `c`.
    pub fn new(c: &Config, opts: &PlanOptions) -> Self {
        let nb = opts.n_batch;
        let wide = c.n_embd.max(c.q_dim()).max(c.n_ff);
        let kv_cache = 2 * slot_bytes::<u16>(c.n_layer * opts.n_ctx * c.kv_dim());
        let activations = slot_bytes::<f32>(nb * c.n_embd) // x
            + slot_bytes::<f32>(nb * wide) // xb
            + slot_bytes::<f32>(nb * c.q_dim()) // q
            + 2 * slot_bytes::<f32>(nb * c.kv_dim()) // k, v
            + slot_bytes::<f32>(nb * c.q_dim()) // att
            + 2 * slot_bytes::<f32>(nb * c.n_ff); // hb, hb2
        let quantized = slot_bytes::<i8>(nb * wide)
            + slot_bytes::<f32>(nb)
            + slot_bytes::<i32>(nb * matmul_rows(c));
        let attention = slot_bytes::<f32>(c.n_head * opts.n_ctx)
            + slot_bytes::<f32>(c.n_head * c.head_dim)
            + slot_bytes::<f32>(nb * c.rope_dim);
        let logits = slot_bytes::<f32>(opts.logits_rows * c.n_vocab) + slot_bytes::<f32>(c.n_embd);
        Plan {
            kv_cache,
            activations,
            quantized,
            attention,
            logits,
            repacked: 0,
            tl1_tables: 0,
            head: 0,
        }
    }

    /// Plans `opts` for `c` with the weights `w` (adds the arena copies of repacked TL1 layers
    /// and relayouted I2_S ones, the lookup tables of TL1 layers computed in place, and the
    /// head's copy).
    pub fn for_weights(c: &Config, opts: &PlanOptions, w: &Weights<'_>) -> Self {
        Plan {
            repacked: w.repack_bytes(),
            tl1_tables: slot_bytes::<PairTable>(w.tl1_table_count()),
            head: w.head_copy_bytes(),
            ..Self::new(c, opts)
        }
    }

    /// Sum of every part.
    pub fn total(&self) -> usize {
        self.kv_cache
            + self.activations
            + self.quantized
            + self.attention
            + self.logits
            + self.repacked
            + self.tl1_tables
            + self.head
    }
}

/// A piece of the model file that [`Engine::new_with`] copied into the arena and never reads
/// again (a relayouted or repacked layer, a stretch of the copied head): where it lies in memory
/// and how long it is, so that a host which mapped the file can release those pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superseded {
    /// Address of the first byte.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Superseded {
    fn of<T>(s: &[T]) -> Self {
        Self { addr: s.as_ptr() as usize, len: core::mem::size_of_val(s) }
    }
}

/// Bytes of the head copied between two [`Superseded`] reports (the host releases the file's
/// pages as the copy goes, so its resident memory never holds both whole).
const HEAD_COPY_CHUNK: usize = 16 << 20;

/// Which positions of a batch get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token (generation).
    Last,
    /// Every token of the batch (evaluation, `tern eval`).
    All,
    /// None (prompt chunks before the last).
    None,
}

struct Buffers<'a> {
    kcache: &'a mut [u16],    // (n_layer, n_head_kv, n_ctx, head_dim)
    vcache: &'a mut [u16],    // (n_layer, n_head_kv, n_ctx, head_dim)
    x: &'a mut [f32],         // (n_batch, n_embd)
    xb: &'a mut [f32],        // (n_batch, wide)
    q: &'a mut [f32],         // (n_batch, q_dim)
    k: &'a mut [f32],         // (n_batch, kv_dim)
    v: &'a mut [f32],         // (n_batch, kv_dim)
    att: &'a mut [f32],       // (n_batch, q_dim)
    hb: &'a mut [f32],        // (n_batch, n_ff)
    hb2: &'a mut [f32],       // (n_batch, n_ff)
    xq: &'a mut [i8],         // (n_batch, wide)
    xs: &'a mut [f32],        // (n_batch)
    iout: &'a mut [i32],      // (rows of a matmul group, n_batch)
    scores: &'a mut [f32],    // (n_head, n_ctx)
    q16: &'a mut [f32],       // (n_head, head_dim) Q rounded to f16 values
    rope: &'a mut [f32],      // (n_batch, rope_dim) cos/sin pairs
    logits: &'a mut [f32],    // (logits_rows, n_vocab)
    head_in: &'a mut [f32],   // (n_embd)
    lut: &'a mut [PairTable], // (max K / 2 of the TL1 layers computed in place)
}

/// A loaded model with its arena buffers: runs tokens, keeps the KV cache.
pub struct Engine<'a> {
    /// Hyper-parameters.
    pub config: Config,
    /// Weight views.
    pub weights: Weights<'a>,
    /// Kernels in use.
    pub kernels: KernelSet,
    opts: PlanOptions,
    b: Buffers<'a>,
    pos: usize,
    n_logits: usize,
}

impl<'a> Engine<'a> {
    /// Carves the engine's buffers out of `arena` (exactly [`Plan::for_weights`]`.total()`
    /// bytes; [`Plan::new`] when no layer is TL1) and repacks TL1 layers whose `K` is a multiple
    /// of 128 into I2_S there, so that every I2_S tier and thread count computes them.
    pub fn new(
        config: Config,
        weights: Weights<'a>,
        kernels: KernelSet,
        opts: PlanOptions,
        arena: &mut Arena<'a>,
    ) -> Result<Self, Error> {
        Self::new_with(config, weights, kernels, opts, arena, &mut |_| {})
    }

    /// [`Engine::new`], also copying the head into the arena when [`Weights::copy_head`] is set,
    /// and reporting each piece of the file it copied, right after copying it, to `superseded`.
    pub fn new_with(
        config: Config,
        mut weights: Weights<'a>,
        kernels: KernelSet,
        opts: PlanOptions,
        arena: &mut Arena<'a>,
        superseded: &mut dyn FnMut(Superseded),
    ) -> Result<Self, Error> {
        if opts.n_ctx == 0 || opts.n_batch == 0 || opts.logits_rows == 0 {
            return Err(Error::BadOptions);
        }
        let c = &config;
        let nb = opts.n_batch;
        let wide = c.n_embd.max(c.q_dim()).max(c.n_ff);
        let kvn = c.n_layer * opts.n_ctx * c.kv_dim();
        let b = Buffers {
            kcache: arena.alloc(kvn)?,
            vcache: arena.alloc(kvn)?,
            x: arena.alloc(nb * c.n_embd)?,
            xb: arena.alloc(nb * wide)?,
            q: arena.alloc(nb * c.q_dim())?,
            k: arena.alloc(nb * c.kv_dim())?,
            v: arena.alloc(nb * c.kv_dim())?,
            att: arena.alloc(nb * c.q_dim())?,
            hb: arena.alloc(nb * c.n_ff)?,
            hb2: arena.alloc(nb * c.n_ff)?,
            xq: arena.alloc(nb * wide)?,
            xs: arena.alloc(nb)?,
            iout: arena.alloc(nb * matmul_rows(c))?,
            scores: arena.alloc(c.n_head * opts.n_ctx)?,
            q16: arena.alloc(c.n_head * c.head_dim)?,
            rope: arena.alloc(nb * c.rope_dim)?,
            logits: arena.alloc(opts.logits_rows * c.n_vocab)?,
            head_in: arena.alloc(c.n_embd)?,
            lut: {
                let bytes: &'a mut [u8] = arena.alloc(32 * weights.tl1_table_count())?;
                bytes.as_chunks_mut::<32>().0
            },
        };
        let layout = weights.i2s_layout;
        for l in 0..weights.layers.len() {
            for lin in weights.linears_mut(l) {
                repack_tl1(lin, layout, arena, superseded)?;
                relayout_i2s(lin, layout, arena, superseded)?;
            }
        }
        if weights.copy_head {
            let copy = copy_embedding(weights.head(), arena, superseded)?;
            match &mut weights.output {
                Some(head) => *head = copy,
                // Tied: the embedding lookups read the copy too.
                None => weights.token_embd = copy,
            }
        }
        Ok(Engine { config, weights, kernels, opts, b, pos: 0, n_logits: 0 })
    }

    /// Tokens in the KV cache.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The options the arena was planned for.
    pub fn options(&self) -> PlanOptions {
        self.opts
    }

    /// Forgets the KV cache (a new conversation).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.n_logits = 0;
    }

    /// Drops cached positions after `pos` (keeps `0..pos`).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Logit rows of the last [`Engine::eval`] (`rows × n_vocab`).
    pub fn logits(&self) -> &[f32] {
        &self.b.logits[..self.n_logits * self.config.n_vocab]
    }

    /// The last logit row.
    pub fn last_logits(&self) -> &[f32] {
        let v = self.config.n_vocab;
        let n = self.n_logits.max(1);
        &self.b.logits[(n - 1) * v..n * v]
    }

    /// Runs `tokens` at positions `pos..pos+n`, appending them to the KV cache.
    pub fn eval(&mut self, tokens: &[u32], which: Logits, par: &dyn Parallel) -> Result<(), Error> {
        let n = tokens.len();
        let c = self.config;
        if n == 0 {
            self.n_logits = 0;
            return Ok(());
        }
        if n > self.opts.n_batch {
            return Err(Error::BatchTooLarge { n, max: self.opts.n_batch });
        }
        let needed = self.pos + n;
        if needed > self.opts.n_ctx {
            return Err(Error::ContextFull { n_ctx: self.opts.n_ctx, needed });
        }
        let n_rows = match which {
            Logits::All => n,
            Logits::Last => 1,
            Logits::None => 0,
        };
        if n_rows > self.opts.logits_rows {
            return Err(Error::BatchTooLarge { n: n_rows, max: self.opts.logits_rows });
        }
        for &t in tokens {
            if t as usize >= c.n_vocab {
                return Err(Error::BadToken { id: t, n_vocab: c.n_vocab });
            }
        }
        let e = c.n_embd;
        for (i, &t) in tokens.iter().enumerate() {
            self.weights.token_embd.row_f32(t as usize, e, &mut self.b.x[i * e..(i + 1) * e]);
        }
        for i in 0..n {
            let r = &mut self.b.rope[i * c.rope_dim..(i + 1) * c.rope_dim];
            ops::rope_cache(self.pos + i, c.rope_dim, c.rope_theta, r);
        }
        for l in 0..c.n_layer {
            self.layer(l, n, par);
        }
        self.pos += n;
        self.head(n, n_rows, par);
        self.n_logits = n_rows;
        Ok(())
    }

    fn layer(&mut self, l: usize, n: usize, par: &dyn Parallel) {
        let c = self.config;
        let lw = self.weights.layers[l];
        let (e, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let b = &mut self.b;
        let ks = self.kernels;

        // Attention block.
        norm_rows(b.x, lw.attn_norm, c.rms_eps, e, n, b.xb);
        quantize(&ks, b.xb, e, n, b.xq, b.xs);
        let qkv = [(&lw.wq, &mut *b.q), (&lw.wk, &mut *b.k), (&lw.wv, &mut *b.v)];
        matmul(&ks, par, qkv, false, b.xq, b.xs, n, b.iout, b.lut);
        for t in 0..n {
            let cs = &b.rope[t * c.rope_dim..(t + 1) * c.rope_dim];
            for h in b.q[t * qd..(t + 1) * qd].chunks_exact_mut(c.head_dim) {
                ops::rope_head(h, c.rope_dim, c.rope_neox, cs);
            }
            for h in b.k[t * kvd..(t + 1) * kvd].chunks_exact_mut(c.head_dim) {
                ops::rope_head(h, c.rope_dim, c.rope_neox, cs);
            }
            // Cache layout (layer, kv head, position, head_dim): one head's keys are contiguous
            // rows, so QK is an f16 GEMV through the kernel set.
            let hd = c.head_dim;
            for kh in 0..c.n_head_kv {
                let at = ((l * c.n_head_kv + kh) * self.opts.n_ctx + self.pos + t) * hd;
                let src = t * kvd + kh * hd;
                for (d, s) in b.kcache[at..at + hd].iter_mut().zip(&b.k[src..src + hd]) {
                    *d = f32_to_f16(*s);
                }
                for (d, s) in b.vcache[at..at + hd].iter_mut().zip(&b.v[src..src + hd]) {
                    *d = f32_to_f16(*s);
                }
            }
        }
        let layer_kv = l * self.opts.n_ctx * kvd;
        for t in 0..n {
            attention(
                &c,
                par,
                &ks,
                &b.q[t * qd..(t + 1) * qd],
                &b.kcache[layer_kv..layer_kv + self.opts.n_ctx * kvd],
                &b.vcache[layer_kv..layer_kv + self.opts.n_ctx * kvd],
                self.pos + t + 1,
                n == 1,
                b.q16,
                b.scores,
                self.opts.n_ctx,
                &mut b.att[t * qd..(t + 1) * qd],
            );
        }
        if let Some(w) = lw.attn_sub_norm {
            for t in 0..n {
                ops::rmsnorm_inplace(&mut b.att[t * qd..(t + 1) * qd], w, c.rms_eps);
            }
        }
        quantize(&ks, b.att, qd, n, b.xq, b.xs);
        matmul(&ks, par, [(&lw.wo, &mut *b.x)], true, b.xq, b.xs, n, b.iout, b.lut);

        // FFN block.
        norm_rows(b.x, lw.ffn_norm, c.rms_eps, e, n, b.xb);
        quantize(&ks, b.xb, e, n, b.xq, b.xs);
        let gate_up = [(&lw.w_gate, &mut *b.hb), (&lw.w_up, &mut *b.hb2)];
        matmul(&ks, par, gate_up, false, b.xq, b.xs, n, b.iout, b.lut);
        let gu = b.hb[..n * ff].iter_mut().zip(&b.hb2[..n * ff]);
        match c.ffn_act {
            // max(g, 0)² · u, as one vectorisable loop.
            FfnAct::ReluSqr => gu.for_each(|(g, &u)| {
                let r = if *g > 0.0 { *g } else { 0.0 };
                *g = r * r * u;
            }),
            FfnAct::Silu => gu.for_each(|(g, &u)| *g = ops::silu(*g) * u),
        }
        if let Some(w) = lw.ffn_sub_norm {
            for t in 0..n {
                ops::rmsnorm_inplace(&mut b.hb[t * ff..(t + 1) * ff], w, c.rms_eps);
            }
        }
        quantize(&ks, b.hb, ff, n, b.xq, b.xs);
        matmul(&ks, par, [(&lw.w_down, &mut *b.x)], true, b.xq, b.xs, n, b.iout, b.lut);
    }

    fn head(&mut self, n: usize, n_rows: usize, par: &dyn Parallel) {
        let c = self.config;
        let e = c.n_embd;
        let v = c.n_vocab;
        let head = self.weights.head();
        for r in 0..n_rows {
            let t = n - n_rows + r;
            let hin = &mut *self.b.head_in;
            ops::rmsnorm(&self.b.x[t * e..(t + 1) * e], self.weights.output_norm, c.rms_eps, hin);
            if n_rows == 1 {
                // One row: bitnet.cpp converts the activation to f16 (ggml_vec_dot_f16 path).
                ops::round_f16_slice(hin);
            }
            let out = &mut self.b.logits[r * v..(r + 1) * v];
            head_gemv(&self.kernels, par, head, e, hin, n_rows == 1, out);
        }
    }
}

/// Replaces an I2_S layer with [`Linear::relayouted_at_load`] by a copy in `layout`'s block
/// order in `arena`.
fn relayout_i2s<'a>(
    lin: &mut Linear<'a>,
    layout: Layout,
    arena: &mut Arena<'a>,
    superseded: &mut dyn FnMut(Superseded),
) -> Result<(), Error> {
    let LinearData::I2s { packed, scale, layout: from } = lin.data else { return Ok(()) };
    if !lin.relayouted_at_load(layout) {
        return Ok(());
    }
    debug_assert_eq!(from, Layout::Published, "only published tensors are relayouted");
    let out: &'a mut [u8] = arena.alloc(lin.k * lin.m / 4)?;
    tern_kernels::formats::i2s::relayout(packed, lin.m, lin.k, layout, out);
    lin.data = LinearData::I2s { packed: out, scale, layout: layout.of(lin.k) };
    superseded(Superseded::of(packed));
    Ok(())
}

/// A copy of `e` in `arena`, reporting the source to `superseded` in [`HEAD_COPY_CHUNK`] pieces.
fn copy_embedding<'a>(
    e: Embedding<'a>,
    arena: &mut Arena<'a>,
    superseded: &mut dyn FnMut(Superseded),
) -> Result<Embedding<'a>, Error> {
    fn copy<'a, T: crate::arena::Pod>(
        src: &'a [T],
        arena: &mut Arena<'a>,
        superseded: &mut dyn FnMut(Superseded),
    ) -> Result<&'a [T], Error> {
        let dst: &'a mut [T] = arena.alloc(src.len())?;
        let per = (HEAD_COPY_CHUNK / core::mem::size_of::<T>()).max(1);
        for (d, s) in dst.chunks_mut(per).zip(src.chunks(per)) {
            d.copy_from_slice(s);
            superseded(Superseded::of(s));
        }
        Ok(dst)
    }
    Ok(match e {
        Embedding::F16(w) => Embedding::F16(copy(w, arena, superseded)?),
        Embedding::Bf16(w) => Embedding::Bf16(copy(w, arena, superseded)?),
        Embedding::F32(w) => Embedding::F32(copy(w, arena, superseded)?),
    })
}

/// Replaces a TL1 layer with [`Linear::repacked_at_load`] by its I2_S repack, in `layout`'s
/// block order, in `arena`.
///
/// Bit-exact: the I2_S kernels compute `Σ (code−1)·q = Σ w·q`, the TL1 kernels `Σ w·q` for the
/// same ternary `w`, and both finish with `(f32)Σ / act_scale · w_scale`. The activations are
/// quantised the I2_S way (epsilon 1e-5, clamp ±127); bitnet.cpp's TL1 quantisation (no epsilon,
/// no clamp) gives the same `q` and scale whenever `max|x| ≥ 1e-5` (`|x·127/max| ≤ 127`).
fn repack_tl1<'a>(
    lin: &mut Linear<'a>,
    layout: Layout,
    arena: &mut Arena<'a>,
    superseded: &mut dyn FnMut(Superseded),
) -> Result<(), Error> {
    let LinearData::Tl1 { packed, scale, tiling, .. } = lin.data else { return Ok(()) };
    if !lin.repacked_at_load() {
        return Ok(());
    }
    let out: &'a mut [u8] = arena.alloc(lin.k * lin.m / 4)?;
    // The tiling was validated at load and the indices checked (Weights::from_gguf).
    let layout = layout.of(lin.k);
    match tern_kernels::formats::tl1::to_i2s_in(packed, lin.m, lin.k, tiling, layout, out) {
        Ok(true) => {}
        _ => {
            return Err(Error::Model(crate::model::ModelError::BadValue {
                key: "TL1 tensor (tiling or indices) at repack",
                value: 0,
            }));
        }
    }
    lin.data = LinearData::I2s { packed: out, scale, layout };
    superseded(Superseded::of(packed));
    Ok(())
}

/// `out[t] = rmsnorm(x[t]) · w` for `n` rows of width `k`.
fn norm_rows(x: &[f32], w: &[f32], eps: f32, k: usize, n: usize, out: &mut [f32]) {
    for (xr, orow) in x[..n * k].chunks_exact(k).zip(out[..n * k].chunks_exact_mut(k)) {
        ops::rmsnorm(xr, w, eps, orow);
    }
}

/// Quantises `n` rows of width `k` (stride `k`) into `xq`, scales into `xs`.
fn quantize(ks: &KernelSet, x: &[f32], k: usize, n: usize, xq: &mut [i8], xs: &mut [f32]) {
    for t in 0..n {
        let (s, _sum) = (ks.act_quant)(&x[t * k..(t + 1) * k], &mut xq[t * k..(t + 1) * k]);
        xs[t] = s;
    }
}

/// Rows per parallel task unit: a whole row group of the lane layout, so a task's rows are one
/// contiguous run (row ranges stay aligned for the SIMD kernels too).
const ROW_ALIGN: usize = tern_kernels::formats::i2s::LANE_ROWS;

/// Tasks per thread of a large GEMV: one share each, contiguous, and the work stealing of
/// [`for_rows`] evens out the end. Each thread then streams one contiguous share of every tensor
/// (with the lane layout's row groups, one run of memory). On the 2-vCPU Zen 4 guest, decode at 2
/// threads (static shares, before stealing) ran faster with 1 task per thread than with 4 (32–36
/// against 29–32 tok/s when the guest's bandwidth was high, 24–27 against 22–25 when low), and 8
/// or 16 were slower still: more, shorter streams to restart and more claims.
const TASKS_PER_THREAD: usize = 1;

/// Smallest claim of a task's share, in weight bytes (see [`for_rows`]).
const MIN_CLAIM_BYTES: usize = 64 << 10;

/// Calls `f(r0, r1)` for runs of whole [`ROW_ALIGN`] tiles covering rows `0..rows` exactly once,
/// in `tasks` parallel tasks ([`Shares`]: a contiguous share each, claimed front to back, work
/// stolen at the end; claims of at least [`MIN_CLAIM_BYTES`] of weights at `row_bytes` each).
/// One task: a single call, no atomics (bare metal runs [`crate::par::Serial`]).
fn for_rows(
    par: &dyn Parallel,
    rows: usize,
    tasks: usize,
    row_bytes: usize,
    f: &(dyn Fn(usize, usize) + Sync),
) {
    if tasks <= 1 || rows == 0 {
        if rows > 0 {
            f(0, rows);
        }
        return;
    }
    let units = rows.div_ceil(ROW_ALIGN);
    let min_units = MIN_CLAIM_BYTES.div_ceil(row_bytes.max(1) * ROW_ALIGN);
    let span = |a: usize, b: usize| f(a * ROW_ALIGN, (b * ROW_ALIGN).min(rows));
    match Shares::new(units, tasks, min_units) {
        Some(sh) => par.run(tasks, &|i| sh.work(i, span)),
        None => par.run(tasks, &|i| {
            let (a, b) = split_rows(units, tasks, 1, i);
            if a < b {
                span(a, b);
            }
        }),
    }
}

/// Tasks for `work` multiply-adds: one when it is too small to share.
fn tasks_for(par: &dyn Parallel, work: usize) -> usize {
    match par.threads() {
        0 | 1 => 1,
        _ if work < 1 << 16 => 1,
        t => t * TASKS_PER_THREAD,
    }
}

/// Rows of the largest matmul group (`iout` holds them for a whole batch): Q, K and V share
/// their input, as do gate and up.
fn matmul_rows(c: &Config) -> usize {
    c.n_embd.max(c.q_dim() + 2 * c.kv_dim()).max(2 * c.n_ff)
}

/// One I2_S layer of a matmul group, its rows at `off..off + m` of the group.
struct Member<'w, 'o> {
    off: usize,
    m: usize,
    packed: &'w [u8],
    scale: f32,
    extra: Option<f32>,
    gemv: tern_kernels::dispatch::I2sGemvFn,
    gemm: tern_kernels::dispatch::I2sGemmFn,
    out: DisjointMut<'o, f32>,
}

/// `out[t·m + r] (+)= (W·x_t)[r]` for each `(W, out)` of `group` (layers of the same input width
/// `K`), for `n` quantised tokens. One parallel job covers the rows of the whole group — one
/// hand-over instead of one per layer, and the split balances across layers — and each task
/// finishes its own rows (`(f32)Σ / act_scale · w_scale`), so no serial pass follows. `iout` is
/// scratch (`rows × n` i32). Results do not depend on the split: every row is computed whole by
/// one task.
#[allow(clippy::too_many_arguments)]
fn matmul<const G: usize>(
    ks: &KernelSet,
    par: &dyn Parallel,
    group: [(&Linear<'_>, &mut [f32]); G],
    accumulate: bool,
    xq: &[i8],
    xs: &[f32],
    n: usize,
    iout: &mut [i32],
    lut: &mut [PairTable],
) {
    if group.iter().any(|(l, _)| matches!(l.data, LinearData::Tl1 { .. })) {
        // TL1 layers computed in place have their own per-token path; the group runs one by one.
        for (lin, out) in group {
            match lin.data {
                LinearData::Tl1 { packed, scale, tiling, .. } => {
                    let tl = Tl1 { packed, scale, tiling };
                    matmul_tl1(ks, par, lin, &tl, xq, xs, n, iout, lut, out, accumulate);
                }
                LinearData::I2s { .. } => {
                    matmul(ks, par, [(lin, out)], accumulate, xq, xs, n, iout, lut);
                }
            }
        }
        return;
    }
    let k = group[0].0.k;
    let mut off = 0;
    let members = group.map(|(lin, out)| {
        debug_assert_eq!(lin.k, k, "a matmul group shares its input");
        let LinearData::I2s { packed, scale, layout } = lin.data else {
            unreachable!("TL1 layers were handled above")
        };
        // The set's kernels read its own block order; a tensor in another (after the kernels
        // were swapped, as `tern bench`'s reference gate does) goes through the scalar kernels
        // of its own.
        let (gemv, gemm) = if layout == ks.i2s_layout.of(k) {
            (ks.i2s_gemv, ks.i2s_gemm)
        } else {
            tern_kernels::reference::i2s_kernels_for(layout)
        };
        let mem = Member {
            off,
            m: lin.m,
            packed,
            scale,
            extra: lin.extra_scale,
            gemv,
            gemm,
            out: DisjointMut::new(&mut out[..n * lin.m]),
        };
        off += lin.m;
        mem
    });
    let rows = off;
    let q = &xq[..n * k];
    let xs = &xs[..n];
    let iout = DisjointMut::new(&mut iout[..rows * n]);
    let tasks = tasks_for(par, rows * k);
    let run = |r0: usize, r1: usize| {
        for mem in &members {
            let (a, b) = (r0.max(mem.off), r1.min(mem.off + mem.m));
            if a >= b {
                continue;
            }
            let (l0, l1) = (a - mem.off, b - mem.off);
            // SAFETY: `for_rows` hands out each group row once, so the rows r0..r1 of this call
            // are disjoint from every other call's and the ranges a*n..b*n of `iout` never overlap.
            let chunk = unsafe { iout.slice(a * n, b * n) };
            if n == 1 {
                (mem.gemv)(mem.packed, k, l0, q, chunk);
            } else {
                (mem.gemm)(mem.packed, k, l0, q, n, chunk);
            }
            for (t, &s) in xs.iter().enumerate() {
                // SAFETY: rows l0..l1 of this layer belong to this call alone (as above), so its
                // pieces t*m + l0 .. t*m + l1 of `out` overlap no other call's.
                let o = unsafe { mem.out.slice(t * mem.m + l0, t * mem.m + l1) };
                if n == 1 {
                    finish_rows(chunk.iter(), s, mem.scale, mem.extra, accumulate, o);
                } else {
                    let dots = chunk[t..].iter().step_by(n);
                    finish_rows(dots, s, mem.scale, mem.extra, accumulate, o);
                }
            }
        }
    };
    for_rows(par, rows, tasks, k / 4, &run);
}

/// `out[j] (+)= finish_i2s(dots[j], s, w_scale) · extra` with the branches outside the loop (it
/// vectorises for a contiguous `dots`).
#[inline]
fn finish_rows<'d>(
    dots: impl Iterator<Item = &'d i32>,
    s: f32,
    w_scale: f32,
    extra: Option<f32>,
    accumulate: bool,
    out: &mut [f32],
) {
    let f = |d: i32| finish_i2s(d, s, w_scale);
    match (extra, accumulate) {
        (None, false) => out.iter_mut().zip(dots).for_each(|(o, &d)| *o = f(d)),
        (None, true) => out.iter_mut().zip(dots).for_each(|(o, &d)| *o += f(d)),
        (Some(e), false) => out.iter_mut().zip(dots).for_each(|(o, &d)| *o = f(d) * e),
        (Some(e), true) => out.iter_mut().zip(dots).for_each(|(o, &d)| *o += f(d) * e),
    }
}

/// A TL1 layer computed in place (not repacked at load: `K` not a multiple of 128, or the `tl1`
/// kernel tier).
struct Tl1<'w> {
    packed: &'w [u8],
    scale: f32,
    tiling: tern_kernels::formats::tl1::Tiling,
}

/// [`matmul`] for a TL1 layer: per token, the set's lookup tables of the token's activations
/// (built once, shared by every task), then the set's TL1 GEMV with rows split across tasks, then
/// the same finish as I2_S. `iout` is used token-major here (`n × m`).
#[allow(clippy::too_many_arguments)]
fn matmul_tl1(
    ks: &KernelSet,
    par: &dyn Parallel,
    lin: &Linear<'_>,
    w: &Tl1<'_>,
    xq: &[i8],
    xs: &[f32],
    n: usize,
    iout: &mut [i32],
    lut: &mut [PairTable],
    out: &mut [f32],
    accumulate: bool,
) {
    let (k, m) = (lin.k, lin.m);
    let iout = &mut iout[..m * n];
    let tasks = if m * k >= 1 << 16 { par.threads().max(1) } else { 1 };
    // The plan holds K/2 tables for the widest TL1 layer computed in place (this one included).
    let lut = &mut lut[..k / 2];
    let (tables, gemv) = (ks.tl1_tables, ks.tl1_gemv);
    for (t, orow) in iout.chunks_exact_mut(m).enumerate() {
        let q = &xq[t * k..(t + 1) * k];
        tables(q, lut);
        let lut: &[PairTable] = lut;
        let shared = DisjointMut::new(orow);
        for_rows(par, m, tasks, k / 4, &|r0, r1| {
            // SAFETY: `for_rows` hands out each row once, so rows r0..r1 are this call's alone.
            let chunk = unsafe { shared.slice(r0, r1) };
            // The tiling was validated for m × k at load, so this cannot fail.
            let _ = gemv(w.packed, m, k, w.tiling, r0, q, lut, chunk);
        });
    }
    for (t, &s) in xs[..n].iter().enumerate() {
        let dots = iout[t * m..(t + 1) * m].iter();
        finish_rows(dots, s, w.scale, lin.extra_scale, accumulate, &mut out[t * m..(t + 1) * m]);
    }
}

/// Logits for one row: `out[v] = head[v] · x`. `x_is_f16`: every `x` is an f16 value.
fn head_gemv(
    ks: &KernelSet,
    par: &dyn Parallel,
    head: Embedding<'_>,
    e: usize,
    x: &[f32],
    x_is_f16: bool,
    out: &mut [f32],
) {
    let rows = out.len();
    match head {
        Embedding::F16(w) => {
            let f = if x_is_f16 { ks.f16_gemv_hx } else { ks.f16_gemv };
            let tasks = tasks_for(par, rows * e);
            let shared = DisjointMut::new(out);
            for_rows(par, rows, tasks, 2 * e, &|r0, r1| {
                // SAFETY: `for_rows` hands out each row once, so rows r0..r1 are this call's alone.
                let chunk = unsafe { shared.slice(r0, r1) };
                f(w, e, r0, x, chunk);
            });
        }
        Embedding::Bf16(w) => {
            for (r, o) in out.iter_mut().enumerate() {
                let mut lanes = [0.0f32; 16];
                for (j, (&h, &xv)) in w[r * e..(r + 1) * e].iter().zip(x).enumerate() {
                    lanes[j % 16] += f32::from_bits(u32::from(h) << 16) * xv;
                }
                *o = tern_kernels::reference::reduce_lanes(lanes);
            }
        }
        Embedding::F32(w) => {
            for (r, o) in out.iter_mut().enumerate() {
                let mut lanes = [0.0f32; 16];
                for (j, (&wv, &xv)) in w[r * e..(r + 1) * e].iter().zip(x).enumerate() {
                    lanes[j % 16] += wv * xv;
                }
                *o = tern_kernels::reference::reduce_lanes(lanes);
            }
        }
    }
}

/// Multi-head attention of one query token over cached positions `0..=p` (all of `kc`/`vc`).
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    par: &dyn Parallel,
    ks: &KernelSet,
    q: &[f32],  // (q_dim)
    kc: &[u16], // (n_head_kv, n_ctx, head_dim) of this layer
    vc: &[u16], // (n_head_kv, n_ctx, head_dim) of this layer
    n_pos: usize,
    single: bool,
    q16: &mut [f32],    // (n_head, head_dim)
    scores: &mut [f32], // (n_head, n_ctx)
    n_ctx: usize,
    out: &mut [f32], // (q_dim)
) {
    let hd = c.head_dim;
    let group = c.n_head / c.n_head_kv;
    let scale = 1.0f32 / libm::sqrtf(hd as f32);
    let q16s = DisjointMut::new(q16);
    let sc = DisjointMut::new(scores);
    let outs = DisjointMut::new(out);
    // Q is rounded to f16 below.
    let f16_gemv = ks.f16_gemv_hx;
    let tasks = if n_pos * c.n_head >= 256 { par.threads().max(1).min(c.n_head) } else { 1 };
    let run_head = |h: usize| {
        // SAFETY: head h owns q16[h*hd..(h+1)*hd], scores[h*n_ctx..+n_pos] and
        // out[h*hd..(h+1)*hd]; each head is processed by exactly one task, so no two live
        // sub-slices overlap.
        let qh = unsafe { q16s.slice(h * hd, (h + 1) * hd) };
        // SAFETY: as above (scores row of head h).
        let s = unsafe { sc.slice(h * n_ctx, h * n_ctx + n_pos) };
        // SAFETY: as above (output slice of head h).
        let o = unsafe { outs.slice(h * hd, (h + 1) * hd) };
        // bitnet.cpp rounds Q to f16 for QK; f16·f16 products are exact in f32, so the f16 GEMV
        // kernel (its 32-lane order) computes exact products, as an f16×f16 dot product does.
        qh.copy_from_slice(&q[h * hd..(h + 1) * hd]);
        ops::round_f16_slice(qh);
        let kvh = h / group;
        let base = kvh * n_ctx * hd;
        f16_gemv(&kc[base..base + n_pos * hd], hd, 0, qh, s);
        ops::softmax_scaled(s, scale);
        if single {
            ops::round_f16_slice(s);
        }
        (ks.f16_wsum)(s, &vc[base..base + n_pos * hd], o);
    };
    if tasks == 1 {
        for h in 0..c.n_head {
            run_head(h);
        }
    } else {
        par.run(tasks, &|i| {
            let (h0, h1) = split_rows(c.n_head, tasks, 1, i);
            for h in h0..h1 {
                run_head(h);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Reports three threads and runs the tasks last to first (results must not depend on the
    /// split or the order).
    struct Reversed3;
    impl Parallel for Reversed3 {
        fn threads(&self) -> usize {
            3
        }
        fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
            (0..n).rev().for_each(task);
        }
    }

    /// I2_S bytes (published order) of an `m × k` layer: every 2-bit code in 0..=2.
    fn codes(m: usize, k: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..m * k / 4)
            .map(|_| {
                (0..4).fold(0u8, |b, f| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    b | (((s % 3) as u8) << (2 * f))
                })
            })
            .collect()
    }

    /// A group's split falls inside layers and across them; each task finishes its own rows.
    /// Every row must equal the scalar GEMV of its own layer, finished, for 1 and 3 tokens,
    /// overwriting and accumulating, serially and split three ways.
    #[test]
    fn grouped_matmul_matches_each_layer() {
        let k = 256;
        let ms = [160usize, 48, 48];
        let data: Vec<Vec<u8>> =
            ms.iter().enumerate().map(|(i, &m)| codes(m, k, i as u32)).collect();
        let lins: Vec<Linear<'_>> = ms
            .iter()
            .zip(&data)
            .enumerate()
            .map(|(i, (&m, d))| Linear {
                k,
                m,
                data: LinearData::I2s {
                    packed: d,
                    scale: 0.5 + i as f32,
                    layout: Layout::Published,
                },
                extra_scale: (i == 1).then_some(1.25),
            })
            .collect();
        let ks = KernelSet::REFERENCE;
        for n in [1usize, 3] {
            let xq: Vec<i8> = (0..n * k).map(|i| ((i * 37) % 255) as i8).collect();
            let xs: Vec<f32> = (0..n).map(|t| 10.0 + t as f32).collect();
            // Expected: each layer alone through the scalar GEMV and the finish.
            let mut want: Vec<Vec<f32>> = Vec::new();
            for lin in &lins {
                let LinearData::I2s { packed, scale, .. } = lin.data else { unreachable!() };
                let mut o = vec![0.0f32; n * lin.m];
                for t in 0..n {
                    let mut acc = vec![0i32; lin.m];
                    tern_kernels::reference::i2s_gemv(
                        packed,
                        k,
                        0,
                        &xq[t * k..(t + 1) * k],
                        &mut acc,
                    );
                    for (r, &a) in acc.iter().enumerate() {
                        o[t * lin.m + r] =
                            finish_i2s(a, xs[t], scale) * lin.extra_scale.unwrap_or(1.0);
                    }
                }
                want.push(o);
            }
            for accumulate in [false, true] {
                for par in [&crate::par::Serial as &dyn Parallel, &Reversed3] {
                    let mut outs: Vec<Vec<f32>> = ms
                        .iter()
                        .map(|&m| vec![if accumulate { 1.0 } else { f32::NAN }; n * m])
                        .collect();
                    let mut iout = vec![0i32; n * ms.iter().sum::<usize>()];
                    let [a, b, c] = &mut outs[..] else { unreachable!() };
                    let group =
                        [(&lins[0], &mut a[..]), (&lins[1], &mut b[..]), (&lins[2], &mut c[..])];
                    matmul(&ks, par, group, accumulate, &xq, &xs, n, &mut iout, &mut []);
                    for (i, (got, want)) in outs.iter().zip(&want).enumerate() {
                        let want: Vec<f32> =
                            want.iter().map(|w| if accumulate { 1.0 + w } else { *w }).collect();
                        assert_eq!(
                            got,
                            &want,
                            "layer {i}, n {n}, accumulate {accumulate}, {} threads",
                            par.threads()
                        );
                    }
                }
            }
        }
    }
}
