//! The prompt loop over the UART: read a line (echo, backspace, CR/LF), run the model on it,
//! stream the reply, print tokens/s. **This is the seam where the runtime plugs in.**
//!
//! `serve` receives everything the bare-metal side discovered: the model bytes (a GGUF file the
//! firmware loaded), a zeroed arena, the UART as `embedded_io` `Read + Write`, and a clock. It
//! never returns; end of input (^D on an empty line) calls [`crate::shutdown`].
//!
//! With the `runtime` feature (default) each line is completed greedily by a `tern-runtime`
//! [`Session`](tern_runtime::session::Session) carved from the arena (context length shrunk until
//! the plan fits), on one core with the kernel tier the build's target features allow. Without it,
//! a stand-in streams the prompt's words back after validating the GGUF header, so the boot side
//! can be tested while the runtime is in flux.

use core::fmt::Write as _;

use embedded_io::{Read, Write};

use crate::time::Clock;

/// Longest prompt line accepted (bytes).
pub const MAX_LINE: usize = 1024;

/// What a GGUF header says (the first 24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgufSummary {
    /// Format version (we accept 3).
    pub version: u32,
    /// Number of tensors.
    pub tensors: u64,
    /// Number of metadata key/value pairs.
    pub metadata: u64,
}

/// Why the model bytes are not a GGUF v3 file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufCheckError {
    /// Fewer than 24 bytes.
    TooShort(usize),
    /// The first four bytes are not `GGUF`.
    BadMagic([u8; 4]),
    /// A version other than 3.
    UnsupportedVersion(u32),
}

impl core::fmt::Display for GgufCheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GgufCheckError::TooShort(n) => write!(f, "only {n} bytes"),
            GgufCheckError::BadMagic(m) => write!(f, "bad magic {m:02x?} (want \"GGUF\")"),
            GgufCheckError::UnsupportedVersion(v) => write!(f, "GGUF version {v}, want 3"),
        }
    }
}

/// Checks the GGUF magic and version and reads the tensor and metadata counts.
pub fn check_gguf(model: &[u8]) -> Result<GgufSummary, GgufCheckError> {
    let h = model.get(..24).ok_or(GgufCheckError::TooShort(model.len()))?;
    let magic = [h[0], h[1], h[2], h[3]];
    if &magic != b"GGUF" {
        return Err(GgufCheckError::BadMagic(magic));
    }
    let version = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if version != 3 {
        return Err(GgufCheckError::UnsupportedVersion(version));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Ok(GgufSummary { version, tensors: u64_at(8), metadata: u64_at(16) })
}

/// Adapts an `embedded_io::Write` to `core::fmt::Write`, turning `\n` into `\r\n`.
struct Fmt<'a, W: Write>(&'a mut W);

impl<W: Write> core::fmt::Write for Fmt<'_, W> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for (i, part) in s.split('\n').enumerate() {
            if i > 0 {
                self.0.write_all(b"\r\n").map_err(|_| core::fmt::Error)?;
            }
            self.0.write_all(part.as_bytes()).map_err(|_| core::fmt::Error)?;
        }
        Ok(())
    }
}

/// Result of reading one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineEnd {
    /// A line of this many bytes (possibly 0) ended by CR, LF or CRLF.
    Line(usize),
    /// A line ended by ^D: process it, then stop.
    LineThenEof(usize),
    /// ^D on an empty line.
    Eof,
}

/// Line editor state that must survive between lines (a CR whose LF is still to come).
#[derive(Default)]
struct LineReader {
    after_cr: bool,
}

impl LineReader {
    /// Reads one line into `buf`, echoing it. Handles backspace/DEL (UTF-8 aware), CR, LF, CRLF,
    /// ^C (discard the line) and ^D.
    fn read_line<U: Read + Write>(
        &mut self,
        uart: &mut U,
        buf: &mut [u8],
    ) -> Result<LineEnd, U::Error> {
        let mut n = 0;
        loop {
            let mut byte = [0u8; 1];
            if uart.read(&mut byte)? == 0 {
                continue;
            }
            let b = byte[0];
            let after_cr = core::mem::take(&mut self.after_cr);
            match b {
                b'\n' if after_cr => {} // second half of CRLF
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    uart.write_all(b"\r\n")?;
                    return Ok(LineEnd::Line(n));
                }
                0x04 => {
                    uart.write_all(b"\r\n")?;
                    return Ok(if n == 0 { LineEnd::Eof } else { LineEnd::LineThenEof(n) });
                }
                0x03 => {
                    uart.write_all(b"^C\r\n")?;
                    return Ok(LineEnd::Line(0));
                }
                0x08 | 0x7f if n > 0 => {
                    // Drop UTF-8 continuation bytes with their lead byte.
                    n -= 1;
                    while n > 0 && buf[n] & 0xc0 == 0x80 {
                        n -= 1;
                    }
                    uart.write_all(b"\x08 \x08")?;
                }
                0x08 | 0x7f => {} // nothing to erase
                b if b >= 0x20 => {
                    if n < buf.len() {
                        buf[n] = b;
                        n += 1;
                        uart.write_all(&[b])?;
                    } else {
                        uart.write_all(b"\x07")?; // bell: line full
                    }
                }
                _ => {} // other control characters are ignored
            }
        }
    }
}

/// Tokens generated per prompt line at most.
#[cfg_attr(not(feature = "runtime"), allow(dead_code))]
pub const MAX_NEW_TOKENS: usize = 64;

/// Serves prompts forever. See the module docs.
pub fn serve<U, C>(model: &'static [u8], arena: &'static mut [u8], uart: &mut U, clock: &C) -> !
where
    U: Read + Write,
    C: Clock,
{
    {
        let mut out = Fmt(uart);
        match check_gguf(model) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "model: {} bytes, GGUF v{}, {} tensors, {} metadata keys",
                    model.len(),
                    s.version,
                    s.tensors,
                    s.metadata
                );
            }
            Err(e) => {
                let _ = writeln!(out, "model: not usable ({} bytes): {e}", model.len());
            }
        }
        let _ = writeln!(out, "arena: {} bytes ({} MiB)", arena.len(), arena.len() >> 20);
    }
    let arena_len = arena.len();
    let mut engine = Engine::load(model, arena, uart);
    {
        let _ = writeln!(Fmt(uart), "type a prompt and press Enter; ^D on an empty line ends");
    }

    let mut line = [0u8; MAX_LINE];
    let mut reader = LineReader::default();
    loop {
        let _ = uart.write_all(b"> ");
        let _ = uart.flush();
        let (n, eof) = match reader.read_line(uart, &mut line) {
            Ok(LineEnd::Line(n)) => (n, false),
            Ok(LineEnd::LineThenEof(n)) => (n, true),
            Ok(LineEnd::Eof) => (0, true),
            Err(_) => {
                let _ = uart.write_all(b"\r\n[serial receive error; line dropped]\r\n");
                continue;
            }
        };
        if n > 0 {
            let start = clock.now_ticks();
            let st = engine.generate(&line[..n], uart, clock);
            let end = clock.now_ticks();
            let mut out = Fmt(uart);
            match st {
                Ok(st) => {
                    // Generation rate from the first generated token on (prefill excluded).
                    let gen_from = st.prompt_done_at.unwrap_or(start);
                    let gen_us = clock.micros_between(gen_from, end).max(1);
                    let total_us = clock.micros_between(start, end).max(1);
                    let tenths = st.generated as u64 * 10_000_000 / gen_us;
                    let _ = writeln!(
                        out,
                        "\n[prompt {} tokens, generated {} tokens in {}.{:03} ms, {}.{} tok/s; total {}.{:03} ms; arena {} bytes]",
                        st.prompt_tokens,
                        st.generated,
                        gen_us / 1000,
                        gen_us % 1000,
                        tenths / 10,
                        tenths % 10,
                        total_us / 1000,
                        total_us % 1000,
                        arena_len
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "\n[error: {e}]");
                }
            }
        }
        if eof {
            let _ = uart.write_all(b"bye\r\n");
            let _ = uart.flush();
            crate::shutdown(0);
        }
    }
}

/// Counts of one answered line.
#[derive(Clone, Copy, Debug, Default)]
struct LineStats {
    prompt_tokens: usize,
    generated: usize,
    /// Clock ticks when the prompt had been evaluated.
    prompt_done_at: Option<u64>,
}

// -------------------------------------------------------------------------------------------------
// The runtime (feature `runtime`)
// -------------------------------------------------------------------------------------------------

#[cfg(feature = "runtime")]
mod engine {
    use core::fmt::Write as _;

    use embedded_io::Write;
    use tern_kernels::{CpuFeatures, KernelSet};
    use tern_runtime::gguf::Gguf;
    use tern_runtime::par::Serial;
    use tern_runtime::sampler::SamplerConfig;
    use tern_runtime::session::{Control, Session, SessionOptions, Sink};

    use super::{Fmt, LineStats, MAX_NEW_TOKENS};
    use crate::time::Clock;

    /// A loaded session, or why there is none.
    pub struct Engine {
        session: Option<Session<'static>>,
    }

    /// Streams tokens to the UART and notes when the prompt was done.
    struct UartSink<'u, U: Write, C: Clock> {
        uart: &'u mut U,
        clock: &'u C,
        stats: LineStats,
    }

    impl<U: Write, C: Clock> tern_runtime::session::Sink for UartSink<'_, U, C> {
        fn prompt_done(&mut self, n: usize) {
            self.stats.prompt_tokens = n;
            self.stats.prompt_done_at = Some(self.clock.now_ticks());
        }

        fn token(&mut self, _id: u32, text: &str) -> Control {
            self.stats.generated += 1;
            let _ = Fmt(&mut *self.uart).write_str(text);
            Control::Continue
        }
    }

    /// Why a line produced nothing.
    pub type GenError = tern_runtime::Error;

    impl Engine {
        /// Parses the model and builds a session in `arena`, shrinking the context until the plan
        /// fits. Prints what it did (or why it could not).
        pub fn load<U: Write>(
            model: &'static [u8],
            arena: &'static mut [u8],
            uart: &mut U,
        ) -> Self {
            let mut out = Fmt(uart);
            let gguf = match Gguf::parse(model) {
                Ok(g) => g,
                Err(e) => {
                    let _ = writeln!(out, "runtime: cannot parse the model: {e}");
                    return Self { session: None };
                }
            };
            let kernels = KernelSet::select(CpuFeatures::detect(), None);
            let mut opts = SessionOptions {
                sampler: SamplerConfig { temperature: 0.0, ..SamplerConfig::default() },
                kernels,
                ..SessionOptions::default()
            };
            let plan = loop {
                match Session::plan(&gguf, &opts) {
                    Ok(p) if p.total <= arena.len() => break Ok(p),
                    Ok(p) if p.opts.n_ctx > 64 => opts.n_ctx = p.opts.n_ctx / 2,
                    Ok(p) => break Err((p.total, p.opts.n_ctx)),
                    Err(e) => {
                        let _ = writeln!(out, "runtime: no memory plan: {e}");
                        return Self { session: None };
                    }
                }
            };
            let plan = match plan {
                Ok(p) => p,
                Err((need, n_ctx)) => {
                    let _ = writeln!(
                        out,
                        "runtime: the arena is too small: {need} bytes needed at n_ctx {n_ctx}, {} available",
                        arena.len()
                    );
                    return Self { session: None };
                }
            };
            opts.n_ctx = plan.opts.n_ctx;
            match Session::new(gguf, arena, opts) {
                Ok(s) => {
                    let _ = writeln!(
                        out,
                        "runtime: n_ctx {}, arena plan {} bytes, kernels {}, greedy, up to {MAX_NEW_TOKENS} new tokens",
                        plan.opts.n_ctx, plan.total, opts.kernels.info.name
                    );
                    Self { session: Some(s) }
                }
                Err(e) => {
                    let _ = writeln!(out, "runtime: cannot start a session: {e}");
                    Self { session: None }
                }
            }
        }

        /// Completes `prompt`, streaming the text to `uart`.
        pub fn generate<U: Write, C: Clock>(
            &mut self,
            prompt: &[u8],
            uart: &mut U,
            clock: &C,
        ) -> Result<LineStats, GenError> {
            let Some(session) = self.session.as_mut() else {
                let _ = Fmt(uart).write_str("[no model loaded]");
                return Ok(LineStats::default());
            };
            let Ok(text) = core::str::from_utf8(prompt) else {
                let _ = Fmt(uart).write_str("[prompt is not UTF-8]");
                return Ok(LineStats::default());
            };
            let mut sink = UartSink { uart, clock, stats: LineStats::default() };
            session.complete(text, false, MAX_NEW_TOKENS, &Serial, &mut sink as &mut dyn Sink)?;
            Ok(sink.stats)
        }
    }
}

// -------------------------------------------------------------------------------------------------
// The stand-in (no `runtime` feature)
// -------------------------------------------------------------------------------------------------

#[cfg(not(feature = "runtime"))]
mod engine {
    use core::fmt::Write as _;

    use embedded_io::Write;

    use super::{Fmt, LineStats};
    use crate::time::Clock;

    /// Echo stand-in: streams the prompt's words back, one "token" each.
    pub struct Engine;

    /// The stand-in cannot fail.
    pub type GenError = core::convert::Infallible;

    impl Engine {
        /// Says that the runtime is not linked.
        pub fn load<U: Write>(
            _model: &'static [u8],
            _arena: &'static mut [u8],
            uart: &mut U,
        ) -> Self {
            let _ = writeln!(
                Fmt(uart),
                "runtime: not linked (built without the `runtime` feature); echo mode"
            );
            Engine
        }

        /// Streams the words of `prompt` back.
        pub fn generate<U: Write, C: Clock>(
            &mut self,
            prompt: &[u8],
            uart: &mut U,
            clock: &C,
        ) -> Result<LineStats, GenError> {
            let mut stats =
                LineStats { prompt_done_at: Some(clock.now_ticks()), ..LineStats::default() };
            for word in prompt.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
                if stats.generated > 0 {
                    let _ = uart.write_all(b" ");
                }
                let _ = uart.write_all(word);
                stats.generated += 1;
                stats.prompt_tokens += 1;
            }
            Ok(stats)
        }
    }
}

use engine::Engine;
