//! Everything needed to talk to a model, carved from one file and one arena: the engine, the
//! tokenizer, the sampler, token history and text scratch. Prompt completion, multi-turn chat
//! (the official file's `BITNET` template and the Llama-3 header template, DESIGN §5) and
//! streaming output through a [`Sink`].
//!
//! Nothing here allocates: [`Session::plan`] gives the exact arena size first.

use crate::arena::{ALIGN, Arena, slot_bytes};
use crate::engine::{Engine, Logits, Plan, PlanOptions, Superseded};
use crate::error::Error;
use crate::gguf::Gguf;
use crate::model::{Config, Weights};
use crate::par::Parallel;
use crate::sampler::{Sampler, SamplerConfig};
use crate::tokenizer::{StreamDecoder, TokenizeError, Tokenizer, TokenizerKey};
use tern_kernels::KernelSet;

/// Options for [`Session::new`].
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// Context length; 0 = the model's training context, capped at 4096.
    pub n_ctx: usize,
    /// Prefill batch (tokens per forward call).
    pub n_batch: usize,
    /// Logit rows per call (1 unless every position's logits are wanted).
    pub logits_rows: usize,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Kernels to compute with.
    pub kernels: KernelSet,
    /// BPE scratch: longest pre-tokenized piece (bytes).
    pub max_piece_bytes: usize,
    /// Bytes for formatting one chat message (and, separately, the system prompt).
    pub text_bytes: usize,
    /// When a chat turn does not fit, drop the oldest turns instead of failing.
    pub drop_old_turns: bool,
    /// Copy the LM head into the arena at load ([`crate::model::Weights::copy_head`]).
    pub copy_head: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            n_ctx: 0,
            n_batch: 64,
            logits_rows: 1,
            sampler: SamplerConfig::default(),
            kernels: KernelSet::REFERENCE,
            max_piece_bytes: 4096,
            text_bytes: 16384,
            drop_old_turns: false,
            copy_head: false,
        }
    }
}

/// The arena plan of a session: every part, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemoryPlan {
    /// Engine buffers (KV cache, activations, logits).
    pub engine: Plan,
    /// Tokenizer tables and BPE scratch.
    pub tokenizer: usize,
    /// Sampler candidates.
    pub sampler: usize,
    /// Token history and prompt buffer.
    pub history: usize,
    /// Chat text scratch.
    pub text: usize,
    /// Total, including one alignment pad.
    pub total: usize,
    /// Options resolved (context length filled in).
    pub opts: PlanOptions,
}

/// What a chat template looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChatTemplate {
    /// bitnet.cpp's hard-coded format for templates containing `BITNET`:
    /// `System: {sys}User: {msg}<|eot_id|>Assistant: `.
    Bitnet,
    /// `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`.
    Llama3,
}

/// Whether a [`Sink`] wants more tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep generating.
    Continue,
    /// Stop now (Ctrl-C).
    Stop,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// The requested number of tokens was reached.
    Length,
    /// The sink asked to stop.
    Interrupted,
    /// The context window is full.
    ContextFull,
}

/// Counts of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GenStats {
    /// Prompt tokens evaluated.
    pub n_prompt: usize,
    /// Tokens generated.
    pub n_gen: usize,
    /// Why it ended.
    pub stop: StopReason,
}

/// Receives generation events (the host timestamps them).
pub trait Sink {
    /// The prompt has been evaluated (`n` tokens); the first token follows.
    fn prompt_done(&mut self, _n: usize) {}
    /// A token was generated; `text` is its printable part (may be empty while a UTF-8
    /// character is incomplete).
    fn token(&mut self, id: u32, text: &str) -> Control;
}

const MAX_TURNS: usize = 256;

/// A loaded model ready to generate.
pub struct Session<'a> {
    /// The parsed file.
    pub gguf: Gguf<'a>,
    /// Forward pass and KV cache.
    pub engine: Engine<'a>,
    /// Tokenizer.
    pub tokenizer: Tokenizer<'a>,
    /// Sampler.
    pub sampler: Sampler<'a>,
    /// Chat format.
    pub template: ChatTemplate,
    history: &'a mut [u32], // (n_ctx) tokens in the KV cache
    prompt: &'a mut [u32],  // (n_ctx) scratch for encoding
    text: &'a mut [u8],     // (text_bytes) formatting scratch
    system: &'a mut [u8],   // (text_bytes) system prompt
    system_len: usize,
    turns: heapless::Vec<usize, MAX_TURNS>,
    prefix_len: usize,
    pending_eot: bool,
    opts: SessionOptions,
}

/// Evaluates `tokens` after the cached ones in batches of the engine's `n_batch` (logits for the
/// last token only) and records them in `history`. A free function so callers can pass the
/// session's own prompt buffer while the engine and history are borrowed mutably.
fn prefill(
    engine: &mut Engine<'_>,
    history: &mut [u32],
    tokens: &[u32],
    par: &dyn Parallel,
) -> Result<(), Error> {
    let needed = engine.pos() + tokens.len();
    let n_ctx = engine.options().n_ctx;
    if needed > n_ctx {
        return Err(Error::ContextFull { n_ctx, needed });
    }
    let nb = engine.options().n_batch;
    let mut chunks = tokens.chunks(nb).peekable();
    while let Some(chunk) = chunks.next() {
        let which = if chunks.peek().is_none() { Logits::Last } else { Logits::None };
        let at = engine.pos();
        engine.eval(chunk, which, par)?;
        history[at..at + chunk.len()].copy_from_slice(chunk);
    }
    Ok(())
}

impl<'a> Session<'a> {
    /// Exact arena bytes for `model` with `opts`.
    // Out of line: its ~72 KB `Weights` temporaries then never share a frame with the caller's (a
    // bare-metal boot core has a 508 KB stack).
    #[inline(never)]
    pub fn plan(g: &Gguf<'_>, opts: &SessionOptions) -> Result<MemoryPlan, Error> {
        let c = Config::from_gguf(g)?;
        let mut w = Weights::from_gguf(g, &c)?;
        w.prepare_for(&opts.kernels);
        w.copy_head = opts.copy_head;
        Self::plan_for(g, &c, &w, opts)
    }

    fn plan_for(
        g: &Gguf<'_>,
        c: &Config,
        w: &Weights<'_>,
        opts: &SessionOptions,
    ) -> Result<MemoryPlan, Error> {
        let n_ctx = if opts.n_ctx == 0 { c.n_ctx_train.min(4096) } else { opts.n_ctx };
        let po = PlanOptions {
            n_ctx,
            n_batch: opts.n_batch.clamp(1, n_ctx),
            logits_rows: opts.logits_rows.clamp(1, opts.n_batch.clamp(1, n_ctx)),
        };
        let engine = Plan::for_weights(c, &po, w);
        let tokenizer = Tokenizer::gguf_arena_bytes(g, opts.max_piece_bytes)?;
        let sampler = Sampler::arena_bytes(c.n_vocab);
        let history = 2 * slot_bytes::<u32>(n_ctx);
        let text = 2 * slot_bytes::<u8>(opts.text_bytes);
        let total = engine.total() + tokenizer + sampler + history + text + ALIGN;
        Ok(MemoryPlan { engine, tokenizer, sampler, history, text, total, opts: po })
    }

    /// Loads a session from a parsed file into `arena` (at least [`Session::plan`]`.total`).
    pub fn new(g: Gguf<'a>, arena: &'a mut [u8], opts: SessionOptions) -> Result<Self, Error> {
        Self::new_with(g, arena, opts, &mut |_| {})
    }

    /// [`Session::new`], reporting each piece of the file the engine copied into the arena
    /// ([`Engine::new_with`]): a host that mapped the file may release those pages.
    // Out of line: its ~72 KB `Weights` temporaries then never share a frame with the caller's (a
    // bare-metal boot core has a 508 KB stack).
    #[inline(never)]
    pub fn new_with(
        g: Gguf<'a>,
        arena: &'a mut [u8],
        opts: SessionOptions,
        superseded: &mut dyn FnMut(Superseded),
    ) -> Result<Self, Error> {
        let c = Config::from_gguf(&g)?;
        let mut weights = Weights::from_gguf(&g, &c)?;
        weights.prepare_for(&opts.kernels);
        weights.copy_head = opts.copy_head;
        let plan = Self::plan_for(&g, &c, &weights, &opts)?;
        if arena.len() < plan.total {
            return Err(Error::Arena(crate::arena::ArenaError::OutOfMemory {
                requested: plan.total,
                remaining: arena.len(),
            }));
        }
        let mut a = Arena::new(arena);
        let engine = Engine::new_with(c, weights, opts.kernels, plan.opts, &mut a, superseded)?;
        let tokenizer = Tokenizer::from_gguf(&g, &mut a, opts.max_piece_bytes)?;
        if tokenizer.n_vocab() > c.n_vocab {
            return Err(Error::Model(crate::model::ModelError::BadValue {
                key: "tokenizer.ggml.tokens (more tokens than token_embd rows)",
                value: tokenizer.n_vocab() as u64,
            }));
        }
        let sampler = Sampler::new(opts.sampler, c.n_vocab, &mut a)?;
        let n_ctx = plan.opts.n_ctx;
        let history = a.alloc(n_ctx)?;
        let prompt = a.alloc(n_ctx)?;
        let text = a.alloc(opts.text_bytes)?;
        let system = a.alloc(opts.text_bytes)?;
        let template = match g.get_str("tokenizer.chat_template") {
            Some(t) if t.contains("BITNET") => ChatTemplate::Bitnet,
            _ => ChatTemplate::Llama3,
        };
        Ok(Session {
            gguf: g,
            engine,
            tokenizer,
            sampler,
            template,
            history,
            prompt,
            text,
            system,
            system_len: 0,
            turns: heapless::Vec::new(),
            prefix_len: 0,
            pending_eot: false,
            opts,
        })
    }

    /// Context length.
    pub fn n_ctx(&self) -> usize {
        self.engine.options().n_ctx
    }

    /// Tokens in the KV cache.
    pub fn n_past(&self) -> usize {
        self.engine.pos()
    }

    /// Forgets the conversation (keeps the system prompt).
    pub fn reset(&mut self) {
        self.engine.reset();
        self.turns.clear();
        self.prefix_len = 0;
        self.pending_eot = false;
    }

    /// Sets the system prompt for the next conversation (and resets the current one).
    pub fn set_system(&mut self, s: &str) -> Result<(), Error> {
        if s.len() > self.system.len() {
            return Err(Error::Tokenize(TokenizeError::OutputTooSmall {
                needed: s.len(),
                capacity: self.system.len(),
            }));
        }
        self.system[..s.len()].copy_from_slice(s.as_bytes());
        self.system_len = s.len();
        self.reset();
        Ok(())
    }

    /// Encodes `text` for a raw completion (BOS per the model's default; special tokens only
    /// when `allow_special`) into the session's prompt buffer; returns the token count.
    pub fn encode_prompt(&mut self, text: &str, allow_special: bool) -> Result<usize, Error> {
        let add_bos = self.tokenizer.add_bos_default() && self.tokenizer.bos().is_some();
        let n =
            self.tokenizer.encode(text, add_bos, allow_special, self.prompt).map_err(
                |e| match e {
                    TokenizeError::TooManyTokens { .. } => Error::ContextFull {
                        n_ctx: self.prompt.len(),
                        needed: self.prompt.len() + 1,
                    },
                    e => Error::Tokenize(e),
                },
            )?;
        Ok(n)
    }

    /// The ids of the last [`Session::encode_prompt`].
    pub fn prompt_tokens(&self, n: usize) -> &[u32] {
        &self.prompt[..n]
    }

    /// Evaluates `tokens` after the cached ones, in batches; the last row's logits are kept.
    pub fn feed(&mut self, tokens: &[u32], par: &dyn Parallel) -> Result<(), Error> {
        prefill(&mut self.engine, self.history, tokens, par)
    }

    /// Completes a raw text prompt, streaming up to `max_new` tokens to `sink`.
    pub fn complete(
        &mut self,
        text: &str,
        allow_special: bool,
        max_new: usize,
        par: &dyn Parallel,
        sink: &mut dyn Sink,
    ) -> Result<GenStats, Error> {
        self.reset();
        let n = self.encode_prompt(text, allow_special)?;
        prefill(&mut self.engine, self.history, &self.prompt[..n], par)?;
        sink.prompt_done(n);
        let mut st = self.generate(max_new, par, sink)?;
        st.n_prompt = n;
        Ok(st)
    }

    /// Samples up to `max_new` tokens after the current state (whose last logits must be
    /// current), feeding each one back.
    pub fn generate(
        &mut self,
        max_new: usize,
        par: &dyn Parallel,
        sink: &mut dyn Sink,
    ) -> Result<GenStats, Error> {
        let mut dec = StreamDecoder::new();
        let mut n_gen = 0;
        let mut stop = StopReason::Length;
        while n_gen < max_new {
            let pos = self.engine.pos();
            let id = self.sampler.sample(self.engine.last_logits(), &self.history[..pos]);
            n_gen += 1;
            if self.tokenizer.is_end_of_generation(id) {
                // Keep the end token in the KV cache so the next chat turn follows it.
                if pos < self.n_ctx() {
                    self.engine.eval(&[id], Logits::Last, par)?;
                    self.history[pos] = id;
                }
                stop = StopReason::EndOfGeneration;
                break;
            }
            let bytes = self.tokenizer.token_bytes(id).unwrap_or(&[]);
            let mut ctl = Control::Continue;
            let mut any = false;
            dec.push(bytes, &mut |s: &str| {
                any = true;
                if sink.token(id, s) == Control::Stop {
                    ctl = Control::Stop;
                }
            });
            if !any && sink.token(id, "") == Control::Stop {
                ctl = Control::Stop;
            }
            if pos >= self.n_ctx() {
                stop = StopReason::ContextFull;
                break;
            }
            self.engine.eval(&[id], Logits::Last, par)?;
            self.history[pos] = id;
            if ctl == Control::Stop {
                stop = StopReason::Interrupted;
                self.pending_eot = true;
                break;
            }
            if n_gen == max_new {
                self.pending_eot = true;
            }
        }
        let mut tail_ctl = Control::Continue;
        dec.flush(&mut |s: &str| {
            if !s.is_empty() {
                tail_ctl = sink.token(u32::MAX, s);
            }
        });
        let _ = tail_ctl;
        Ok(GenStats { n_prompt: 0, n_gen, stop })
    }

    /// Appends `s` to the text scratch at `*len`.
    fn push_text(&mut self, len: &mut usize, s: &[u8]) -> Result<(), Error> {
        let end = *len + s.len();
        if end > self.text.len() {
            return Err(Error::Tokenize(TokenizeError::OutputTooSmall {
                needed: end,
                capacity: self.text.len(),
            }));
        }
        self.text[*len..end].copy_from_slice(s);
        *len = end;
        Ok(())
    }

    /// Appends the system prompt to the text scratch at `*len`.
    fn push_system(&mut self, len: &mut usize) -> Result<(), Error> {
        let end = *len + self.system_len;
        if end > self.text.len() {
            return Err(Error::Tokenize(TokenizeError::OutputTooSmall {
                needed: end,
                capacity: self.text.len(),
            }));
        }
        self.text[*len..end].copy_from_slice(&self.system[..self.system_len]);
        *len = end;
        Ok(())
    }

    /// Encodes one piece of template text (no special tokens) after `n` prompt ids.
    fn encode_literal(&mut self, s: &[u8], n: &mut usize) -> Result<(), Error> {
        let mut len = 0;
        self.push_text(&mut len, s)?;
        self.encode_text_run(len, n, false)
    }

    /// Encodes the text scratch (`text[..len]`, never parsing special tokens) after `n`
    /// prompt ids.
    fn encode_text_run(&mut self, len: usize, n: &mut usize, bos: bool) -> Result<(), Error> {
        let s = core::str::from_utf8(&self.text[..len]).unwrap_or("");
        let cap = self.prompt.len();
        let k =
            self.tokenizer.encode(s, bos, false, &mut self.prompt[*n..]).map_err(|e| match e {
                TokenizeError::TooManyTokens { .. } => {
                    Error::ContextFull { n_ctx: cap, needed: cap + 1 }
                }
                e => Error::Tokenize(e),
            })?;
        *n += k;
        Ok(())
    }

    fn push_special(&mut self, name: &str, n: &mut usize) -> Result<(), Error> {
        let id = self
            .tokenizer
            .find_token(name.as_bytes())
            .ok_or(Error::Tokenize(TokenizeError::MissingKey { key: TokenizerKey::Tokens }))?;
        if *n >= self.prompt.len() {
            return Err(Error::ContextFull { n_ctx: self.prompt.len(), needed: *n + 1 });
        }
        self.prompt[*n] = id;
        *n += 1;
        Ok(())
    }

    /// Formats one user turn (plus BOS and the system prompt on the first turn) into the prompt
    /// buffer. User text never becomes special tokens; only the template's markers do.
    fn format_turn(&mut self, user: &str) -> Result<usize, Error> {
        let first = self.engine.pos() == 0;
        let mut n = 0;
        let eot = "<|eot_id|>";
        if self.pending_eot && !first {
            self.push_special(eot, &mut n)?;
        }
        let bos = first && self.tokenizer.bos().is_some();
        let sys_len = self.system_len;
        match self.template {
            ChatTemplate::Bitnet => {
                let mut len = 0;
                if first && sys_len > 0 {
                    self.push_text(&mut len, b"System: ")?;
                    self.push_system(&mut len)?;
                }
                self.push_text(&mut len, b"User: ")?;
                self.push_text(&mut len, user.as_bytes())?;
                self.encode_text_run(len, &mut n, bos)?;
                self.push_special(eot, &mut n)?;
                self.encode_literal(b"Assistant: ", &mut n)?;
            }
            ChatTemplate::Llama3 => {
                let (sh, eh) = ("<|start_header_id|>", "<|end_header_id|>");
                if bos {
                    let b = self.tokenizer.bos().unwrap_or(0);
                    self.prompt[n] = b;
                    n += 1;
                }
                if first && sys_len > 0 {
                    self.push_special(sh, &mut n)?;
                    self.encode_literal(b"system", &mut n)?;
                    self.push_special(eh, &mut n)?;
                    let mut len = 0;
                    self.push_text(&mut len, b"\n\n")?;
                    self.push_system(&mut len)?;
                    self.encode_text_run(len, &mut n, false)?;
                    self.push_special(eot, &mut n)?;
                }
                self.push_special(sh, &mut n)?;
                self.encode_literal(b"user", &mut n)?;
                self.push_special(eh, &mut n)?;
                let mut len = 0;
                self.push_text(&mut len, b"\n\n")?;
                self.push_text(&mut len, user.as_bytes())?;
                self.encode_text_run(len, &mut n, false)?;
                self.push_special(eot, &mut n)?;
                self.push_special(sh, &mut n)?;
                self.encode_literal(b"assistant", &mut n)?;
                self.push_special(eh, &mut n)?;
                self.encode_literal(b"\n\n", &mut n)?;
            }
        }
        Ok(n)
    }

    /// One chat turn: formats `user`, evaluates it after the conversation so far and streams
    /// the reply. When the turn does not fit and `drop_old_turns` is set, the oldest turns are
    /// dropped (the system prompt is kept) and the rest re-evaluated.
    pub fn chat(
        &mut self,
        user: &str,
        max_new: usize,
        par: &dyn Parallel,
        sink: &mut dyn Sink,
    ) -> Result<GenStats, Error> {
        let mut n = self.format_turn(user)?;
        let reserve = max_new.min(self.n_ctx() / 4).max(1);
        if self.engine.pos() + n + reserve > self.n_ctx() {
            if !self.opts.drop_old_turns || self.engine.pos() == 0 {
                return Err(Error::ContextFull {
                    n_ctx: self.n_ctx(),
                    needed: self.engine.pos() + n + reserve,
                });
            }
            self.drop_turns(n + reserve, par)?;
            n = self.format_turn(user)?;
            if self.engine.pos() + n > self.n_ctx() {
                return Err(Error::ContextFull {
                    n_ctx: self.n_ctx(),
                    needed: self.engine.pos() + n,
                });
            }
        }
        self.pending_eot = false;
        let start = self.engine.pos();
        if self.turns.is_full() {
            self.turns.remove(0);
        }
        let _ = self.turns.push(start);
        if start == 0 {
            self.prefix_len = 0;
        }
        prefill(&mut self.engine, self.history, &self.prompt[..n], par)?;
        sink.prompt_done(n);
        let mut st = self.generate(max_new, par, sink)?;
        st.n_prompt = n;
        Ok(st)
    }

    /// Drops the oldest turns until `room` positions are free, then rebuilds the KV cache from
    /// the kept history.
    fn drop_turns(&mut self, room: usize, par: &dyn Parallel) -> Result<(), Error> {
        let pos = self.engine.pos();
        // Keep turns from index `k` on; turn 0 carries BOS + system, which we re-encode.
        let mut k = 1;
        while k < self.turns.len()
            && pos - self.turns[k] + room + self.system_len + 8 > self.n_ctx()
        {
            k += 1;
        }
        let keep_from = if k < self.turns.len() { self.turns[k] } else { pos };
        // Re-encode the prefix (BOS + system) into the prompt buffer.
        let mut n = 0;
        let bos = self.tokenizer.bos().is_some();
        if self.system_len > 0 {
            let mut len = 0;
            if self.template == ChatTemplate::Bitnet {
                self.push_text(&mut len, b"System: ")?;
            }
            self.push_system(&mut len)?;
            self.encode_text_run(len, &mut n, bos)?;
        } else if bos {
            self.prompt[0] = self.tokenizer.bos().unwrap_or(0);
            n = 1;
        }
        let kept = pos - keep_from;
        if n + kept > self.prompt.len() {
            return Err(Error::ContextFull { n_ctx: self.n_ctx(), needed: n + kept });
        }
        self.prompt[n..n + kept].copy_from_slice(&self.history[keep_from..pos]);
        let total = n + kept;
        self.engine.reset();
        let shift = keep_from as isize - n as isize;
        let old: heapless::Vec<usize, MAX_TURNS> = self.turns.clone();
        self.turns.clear();
        for &t in old.iter().skip(k) {
            let _ = self.turns.push((t as isize - shift) as usize);
        }
        prefill(&mut self.engine, self.history, &self.prompt[..total], par)?;
        Ok(())
    }
}
