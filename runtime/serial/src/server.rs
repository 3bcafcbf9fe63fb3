//! The `tern serve` loop: owns the serial line, feeds the [`LineEditor`], talks to a [`Backend`],
//! and survives hang-ups.
//!
//! One connection ("session") lasts from a successful open to a hang-up. On hang-up (a USB gadget
//! whose host disconnected, a pty whose master closed, an adapter unplugged) the port is closed,
//! the server waits `reopen_delay`, and opens it again through its [`Opener`], as long as it
//! takes. The backend (model, conversation, settings) is never touched by any of this, nor by bad
//! input: only `/reset` resets it.
//!
//! Ctrl-C during generation: between tokens the server polls the line without blocking; a 0x03
//! byte makes the token callback return [`Control::Stop`]. Other bytes typed meanwhile are kept
//! (bounded) and processed after the answer; bytes before the 0x03 are discarded with it.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::editor::{Command, DEFAULT_MAX_LINE, Event, HELP, Input, LineEditor, parse_input};
use crate::port::{LineConfig, ReadOutcome, SerialPort};
use crate::protocol::{PROTOCOL, Request, Response, parse_request};

/// Whether the token callback wants more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep generating.
    Continue,
    /// Stop now (Ctrl-C, hang-up or shutdown); the backend must return promptly.
    Stop,
}

/// One generated token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// Its text (decoded; the backend handles partial UTF-8).
    pub text: &'a str,
    /// Its vocabulary id.
    pub id: u32,
}

/// A generation request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenRequest<'a> {
    /// The user's text (the backend applies its chat template and system prompt).
    pub prompt: &'a str,
    /// Maximum new tokens for this request (`None`: the backend's default).
    pub max_tokens: Option<u32>,
    /// Temperature for this request only (`None`: the current setting).
    pub temp: Option<f32>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// End-of-sequence token.
    Eos,
    /// Token limit reached (request or context).
    Length,
    /// The callback returned [`Control::Stop`].
    Stopped,
}

impl Finish {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Length => "length",
            Self::Stopped => "interrupted",
        }
    }
}

/// What the backend reports after a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenStats {
    /// Tokens generated (passed to the callback).
    pub n_tokens: u32,
    /// Why it ended.
    pub finish: Finish,
}

/// The model side, implemented by the `tern` binary.
pub trait Backend {
    /// Generates an answer to `req`, calling `on_token` for each token in order. When
    /// `on_token` returns [`Control::Stop`] the backend stops and returns `Ok` with
    /// `finish: Stopped`, keeping the conversation consistent (the partial answer may stay in
    /// the history). `Err` is a message for the user; the backend must stay usable after it.
    fn generate(
        &mut self,
        req: &GenRequest<'_>,
        on_token: &mut dyn FnMut(Token<'_>) -> Control,
    ) -> Result<GenStats, String>;
    /// Forgets the conversation (keeps system prompt and temperature).
    fn reset(&mut self);
    /// Sets the system prompt (empty: none).
    fn set_system(&mut self, system: &str);
    /// Sets the default temperature; `Err` with a message if unacceptable.
    fn set_temp(&mut self, temp: f32) -> Result<(), String>;
    /// Human-readable statistics (one or more lines, `\n`-separated).
    fn stats(&self) -> String;
}

/// Opens (and re-opens) the line.
pub trait Opener {
    /// Opens and configures the line.
    fn open(&mut self) -> io::Result<SerialPort>;
}

impl<F: FnMut() -> io::Result<SerialPort>> Opener for F {
    fn open(&mut self) -> io::Result<SerialPort> {
        self()
    }
}

/// Opens a device path with a [`LineConfig`] (the normal case).
#[derive(Clone, Debug)]
pub struct PathOpener {
    /// Device path, e.g. `/dev/ttyGS0`.
    pub path: PathBuf,
    /// Line settings.
    pub line: LineConfig,
}

impl Opener for PathOpener {
    fn open(&mut self) -> io::Result<SerialPort> {
        SerialPort::open(&self.path, &self.line)
    }
}

/// Interactive terminal or JSON lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Echo, line editing, `/commands`, plain-text answers.
    Human,
    /// One JSON object per line ([`crate::protocol`]); no echo.
    Machine,
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Human or machine mode.
    pub mode: Mode,
    /// Line bound in bytes.
    pub max_line: usize,
    /// First line shown on each connection (human mode).
    pub banner: String,
    /// Input prompt (human mode).
    pub prompt: String,
    /// How long one read waits before checking for shutdown.
    pub poll_interval: Duration,
    /// Wait between a hang-up (or a failed open) and the next open.
    pub reopen_delay: Duration,
    /// A write that cannot progress for this long counts as a hang-up.
    pub write_timeout: Duration,
    /// Bytes kept from input typed during generation.
    pub pending_limit: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Human,
            max_line: DEFAULT_MAX_LINE,
            banner: "tern: BitNet b1.58 on a serial line. /help for commands.".into(),
            prompt: "> ".into(),
            poll_interval: Duration::from_millis(100),
            reopen_delay: Duration::from_millis(500),
            write_timeout: Duration::from_secs(5),
            pending_limit: 16 * 1024,
        }
    }
}

/// Why [`Server::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `/quit` or `{"cmd":"quit"}`.
    Quit,
    /// Ctrl-D on an empty line.
    Eof,
    /// The shutdown flag was set.
    Shutdown,
}

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Successful opens.
    pub connections: u32,
    /// Hang-ups seen.
    pub hangups: u32,
    /// Failed re-open attempts.
    pub open_failures: u32,
    /// Generation requests.
    pub requests: u32,
    /// Generations stopped by Ctrl-C.
    pub interrupts: u32,
    /// Lines with noise reported.
    pub noise_reports: u32,
    /// Over-long lines discarded.
    pub overflows: u32,
    /// Errors reported to the user (bad commands, bad JSON, backend errors).
    pub errors: u32,
}

enum End {
    HangUp,
    Exit(Exit),
}

type Logger = Box<dyn FnMut(&str) + Send>;

/// The serve loop.
pub struct Server<B: Backend, O: Opener> {
    backend: B,
    opener: O,
    config: ServeConfig,
    shutdown: Arc<AtomicBool>,
    stats: ServeStats,
    log: Logger,
}

impl<B: Backend, O: Opener> std::fmt::Debug for Server<B, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.config).field("stats", &self.stats).finish()
    }
}

impl<B: Backend, O: Opener> Server<B, O> {
    /// A server; logs go to stderr until [`Server::set_logger`].
    pub fn new(backend: B, opener: O, config: ServeConfig) -> Self {
        Self {
            backend,
            opener,
            config,
            shutdown: Arc::new(AtomicBool::new(false)),
            stats: ServeStats::default(),
            log: Box::new(|m| eprintln!("tern serve: {m}")),
        }
    }

    /// Replaces the logger (connection, hang-up and re-open messages).
    pub fn set_logger(&mut self, f: impl FnMut(&str) + Send + 'static) {
        self.log = Box::new(f);
    }

    /// Setting this flag makes [`Server::run`] return [`Exit::Shutdown`] within about one
    /// `poll_interval` (or after the current token). Hook it to SIGTERM/SIGINT.
    pub fn shutdown_handle(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Takes the backend back.
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// Counters so far.
    pub fn stats(&self) -> ServeStats {
        self.stats
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Sleeps `d` in short steps; false if shutdown was requested.
    fn nap(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10).min(d));
        }
        !self.stopping()
    }

    /// Serves until `/quit`, Ctrl-D or shutdown. The first open's error is returned (a wrong
    /// path or baud rate should fail fast); after that, failed opens are retried forever.
    /// Calling `run` again continues with the same backend state.
    pub fn run(&mut self) -> io::Result<Exit> {
        let mut first = self.stats.connections == 0;
        let mut failing = false;
        loop {
            if self.stopping() {
                return Ok(Exit::Shutdown);
            }
            let port = match self.opener.open() {
                Ok(p) => p,
                Err(e) if first => return Err(e),
                Err(e) => {
                    self.stats.open_failures += 1;
                    if !failing {
                        (self.log)(&format!(
                            "re-open failed ({e}); retrying every {:?}",
                            self.config.reopen_delay
                        ));
                        failing = true;
                    }
                    if !self.nap(self.config.reopen_delay) {
                        return Ok(Exit::Shutdown);
                    }
                    continue;
                }
            };
            first = false;
            failing = false;
            self.stats.connections += 1;
            (self.log)(&format!("connected on {}", port.name()));
            match self.session(port) {
                End::Exit(x) => return Ok(x),
                End::HangUp => {
                    self.stats.hangups += 1;
                    (self.log)("hang-up; closing and re-opening the line");
                    if !self.nap(self.config.reopen_delay) {
                        return Ok(Exit::Shutdown);
                    }
                }
            }
        }
    }

    fn send(&self, port: &mut SerialPort, bytes: &[u8]) -> Result<(), End> {
        if bytes.is_empty() {
            return Ok(());
        }
        port.write_all_timeout(bytes, self.config.write_timeout).map_err(|_| End::HangUp)
    }

    fn human(&self) -> bool {
        self.config.mode == Mode::Human
    }

    fn session(&mut self, mut port: SerialPort) -> End {
        let mut ed = LineEditor::new(self.config.max_line, self.human());
        let greeting = if self.human() {
            format!("{}\r\n{}", self.config.banner, self.config.prompt)
        } else {
            Response::Ready { ready: true, protocol: PROTOCOL }.to_line()
        };
        if let Err(end) = self.send(&mut port, greeting.as_bytes()) {
            return end;
        }
        let mut input: VecDeque<u8> = VecDeque::new();
        let mut events = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            if self.stopping() {
                return End::Exit(Exit::Shutdown);
            }
            if input.is_empty() {
                match port.read_timeout(&mut buf, self.config.poll_interval) {
                    Ok(ReadOutcome::Data(n)) => input.extend(&buf[..n]),
                    Ok(ReadOutcome::Timeout) => continue,
                    Ok(ReadOutcome::HangUp) | Err(_) => return End::HangUp,
                }
            }
            while let Some(b) = input.pop_front() {
                ed.feed(b, &mut events);
                if events.is_empty() {
                    continue;
                }
                if let Err(end) = self.send(&mut port, &ed.take_output()) {
                    return end;
                }
                for ev in std::mem::take(&mut events) {
                    if let Err(end) = self.handle(ev, &mut port, &mut input) {
                        return end;
                    }
                }
            }
            if let Err(end) = self.send(&mut port, &ed.take_output()) {
                return end;
            }
        }
    }

    fn say(&mut self, port: &mut SerialPort, human: &str, is_error: bool) -> Result<(), End> {
        if is_error {
            self.stats.errors += 1;
        }
        let line = if self.human() {
            format!("{}{human}\r\n", if is_error { "[error] " } else { "" })
                .replace('\n', "\r\n")
                .replace("\r\r\n", "\r\n")
        } else if is_error {
            Response::Error { error: human }.to_line()
        } else {
            Response::Stats { stats: human }.to_line()
        };
        self.send(port, line.as_bytes())
    }

    fn prompt(&self, port: &mut SerialPort) -> Result<(), End> {
        if self.human() { self.send(port, self.config.prompt.clone().as_bytes()) } else { Ok(()) }
    }

    fn ack(&self, port: &mut SerialPort, cmd: &str, human: &str) -> Result<(), End> {
        if self.human() {
            self.send(port, format!("[{human}]\r\n").as_bytes())
        } else {
            self.send(port, Response::Ok { ok: true, cmd }.to_line().as_bytes())
        }
    }

    fn handle(
        &mut self,
        ev: Event,
        port: &mut SerialPort,
        input: &mut VecDeque<u8>,
    ) -> Result<(), End> {
        match ev {
            Event::Noise(n) => {
                self.stats.noise_reports += 1;
                if self.human() {
                    self.send(port, format!("[{}]\r\n", n.describe()).as_bytes())
                } else {
                    self.say(port, &n.describe(), true)
                }
            }
            Event::Overflow { bytes, limit } => {
                self.stats.overflows += 1;
                let msg = format!("line too long ({bytes} bytes, limit {limit}); it was discarded");
                self.say(port, &msg, true)?;
                self.prompt(port)
            }
            Event::Interrupt => self.prompt(port),
            Event::Eof => {
                if self.human() {
                    self.send(port, b"bye\r\n")?;
                }
                Err(End::Exit(Exit::Eof))
            }
            Event::Line(line) if self.human() => {
                match parse_input(&line) {
                    Input::Empty => {}
                    Input::Prompt(p) => self.generate(port, input, &p, None, None)?,
                    Input::Invalid(m) => self.say(port, &m, true)?,
                    Input::Command(c) => self.command(port, c)?,
                }
                self.prompt(port)
            }
            Event::Line(line) => {
                if line.trim().is_empty() {
                    return Ok(());
                }
                match parse_request(&line) {
                    Ok(Request::Generate { prompt, n, temp }) => {
                        self.generate(port, input, &prompt, n, temp)
                    }
                    Ok(Request::Reset) => self.command(port, Command::Reset),
                    Ok(Request::System(t)) => self.command(port, Command::System(t)),
                    Ok(Request::Temp(t)) => self.command(port, Command::Temp(t)),
                    Ok(Request::Stats) => self.command(port, Command::Stats),
                    Ok(Request::Quit) => self.command(port, Command::Quit),
                    Err(e) => self.say(port, &e, true),
                }
            }
        }
    }

    fn command(&mut self, port: &mut SerialPort, c: Command) -> Result<(), End> {
        match c {
            Command::Reset => {
                self.backend.reset();
                self.ack(port, "reset", "conversation reset")
            }
            Command::System(s) => {
                self.backend.set_system(&s);
                self.ack(
                    port,
                    "system",
                    if s.is_empty() { "system prompt cleared" } else { "system prompt set" },
                )
            }
            Command::Temp(t) => match self.backend.set_temp(t) {
                Ok(()) => self.ack(port, "temp", &format!("temperature {t}")),
                Err(e) => self.say(port, &e, true),
            },
            Command::Stats => {
                let s = self.backend.stats();
                self.say(port, &s, false)
            }
            Command::Help => self.say(port, HELP, false),
            Command::Quit => {
                if self.human() {
                    self.send(port, b"bye\r\n")?;
                } else {
                    self.send(port, Response::Ok { ok: true, cmd: "quit" }.to_line().as_bytes())?;
                }
                Err(End::Exit(Exit::Quit))
            }
        }
    }

    fn generate(
        &mut self,
        port: &mut SerialPort,
        input: &mut VecDeque<u8>,
        prompt: &str,
        n: Option<u32>,
        temp: Option<f32>,
    ) -> Result<(), End> {
        self.stats.requests += 1;
        let human = self.human();
        let write_timeout = self.config.write_timeout;
        let pending_limit = self.config.pending_limit;
        let shutdown = self.shutdown.clone();
        let t0 = Instant::now();
        let mut last = t0;
        let mut ttft: Option<f64> = None;
        let (mut interrupted, mut hung, mut dropped) = (false, false, 0usize);
        let mut sent = 0u32;
        let req = GenRequest { prompt, max_tokens: n, temp };
        let mut on_token = |tok: Token<'_>| -> Control {
            let now = Instant::now();
            let line = if human {
                tok.text.replace('\n', "\r\n")
            } else {
                Response::Token {
                    token: tok.text,
                    id: tok.id,
                    t_ms: (now - last).as_secs_f64() * 1e3,
                }
                .to_line()
            };
            last = now;
            ttft.get_or_insert((now - t0).as_secs_f64() * 1e3);
            sent += 1;
            if port.write_all_timeout(line.as_bytes(), write_timeout).is_err() {
                hung = true;
                return Control::Stop;
            }
            let mut b = [0u8; 256];
            while !interrupted && !hung {
                match port.read_timeout(&mut b, Duration::ZERO) {
                    Ok(ReadOutcome::Data(k)) => {
                        let chunk = &b[..k];
                        if let Some(pos) = chunk.iter().position(|&x| x == 0x03) {
                            interrupted = true;
                            input.clear(); // typed-ahead input before Ctrl-C goes with it
                            input.extend(&chunk[pos + 1..]);
                        } else {
                            for &x in chunk {
                                if input.len() < pending_limit {
                                    input.push_back(x);
                                } else {
                                    dropped += 1;
                                }
                            }
                        }
                    }
                    Ok(ReadOutcome::Timeout) => break,
                    Ok(ReadOutcome::HangUp) | Err(_) => hung = true,
                }
            }
            if interrupted || hung || shutdown.load(Ordering::SeqCst) {
                Control::Stop
            } else {
                Control::Continue
            }
        };
        let result = self.backend.generate(&req, &mut on_token);
        if hung {
            return Err(End::HangUp);
        }
        if interrupted {
            self.stats.interrupts += 1;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        match result {
            Ok(st) => {
                let finish = if interrupted { Finish::Stopped } else { st.finish };
                if human {
                    let tail = if interrupted { "\r\n[interrupted]\r\n" } else { "\r\n" };
                    self.send(port, tail.as_bytes())?;
                } else {
                    let n = st.n_tokens.max(sent);
                    let tok_s = if elapsed > 0.0 { f64::from(n) / elapsed } else { 0.0 };
                    let done = Response::Done {
                        done: true,
                        n,
                        tok_s,
                        ttft_ms: ttft,
                        stop: finish.as_str(),
                    };
                    self.send(port, done.to_line().as_bytes())?;
                }
            }
            Err(e) => {
                if human && sent > 0 {
                    self.send(port, b"\r\n")?;
                }
                self.say(port, &e, true)?;
            }
        }
        if dropped > 0 {
            self.say(
                port,
                &format!("ignored {dropped} bytes typed during generation (buffer full)"),
                true,
            )?;
        }
        if self.stopping() {
            return Err(End::Exit(Exit::Shutdown));
        }
        Ok(())
    }
}
