//! `tern serve`: the chat over a serial line (or standard input/output), DESIGN §1.
//!
//! [`ModelBackend`] implements `tern_serial::Backend` over a [`Session`]: every prompt is one
//! chat turn after the conversation so far (the KV cache is kept between turns), `/reset` forgets
//! it, `/system` replaces the system prompt (and starts a new conversation), `/temp` sets the
//! sampling temperature, and `/stats` reports context use, the last answer's speed, the kernels and
//! the threads. A full context is a clear message and never ends the session.
//!
//! `tern_serial::Server` owns the line: termios, echo and line editing, Ctrl-C between tokens,
//! hang-up and re-open. `--stdio` feeds it through a pseudo-terminal pair whose other side is
//! pumped to and from stdin/stdout, so pipes work as well as terminals; when stdin is a terminal it
//! is put in raw mode for the duration (Ctrl-C then arrives as a byte, like on a serial line).
//!
//! SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one `sigwait` thread, which
//! sets the server's shutdown flag (no signal handler, so no `unsafe`); a second signal exits at
//! once.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use tern_runtime::session::{Control, Session, Sink, StopReason};
use tern_serial::{
    Backend, Exit, Finish, GenRequest, GenStats, LineConfig, Mode, PathOpener, SerialPort,
    ServeConfig, Server, Token,
};

use crate::pool::Pool;
use crate::{ServeArgs, load, session_opts, threads};

/// Runs `tern serve`.
pub fn cmd_serve(a: &ServeArgs) -> Result<(), String> {
    // Check the cheap things before loading the model.
    let line = LineConfig::new(a.baud).map_err(|e| e.to_string())?;
    let mf = load::ModelFile::open(&a.model.model)?;
    let g = mf.gguf(&a.model.model)?;
    let mut arena = load::ArenaMem::default();
    let mut opts = session_opts(&a.model, Some(&a.sample))?;
    opts.drop_old_turns = a.keep_going;
    let (mut session, _plan) = load::session(&mf, g, opts, &mut arena)?;
    if let Some(sys) = &a.system {
        session.set_system(sys).map_err(|e| format!("--system: {e}"))?;
    }
    // Block the signals before any other thread exists, so that every thread inherits the mask.
    let signals = block_signals()?;
    let n_threads = threads(a.model.threads);
    let model = a.model.model.file_name().unwrap_or(a.model.model.as_os_str()).to_string_lossy();
    let backend = ModelBackend {
        session,
        pool: Pool::new(n_threads),
        threads: n_threads,
        max_new: a.sample.n,
        keep_going: a.keep_going,
        model: model.into_owned(),
        last: None,
    };
    let config = ServeConfig {
        mode: if a.machine { Mode::Machine } else { Mode::Human },
        banner: backend.banner_line(),
        ..ServeConfig::default()
    };
    match &a.serial {
        Some(dev) => serve_serial(backend, config, dev, line, signals),
        None => serve_stdio(backend, config, signals),
    }
}

fn serve_serial(
    backend: ModelBackend<'_>,
    config: ServeConfig,
    dev: &Path,
    line: LineConfig,
    signals: SigSet,
) -> Result<(), String> {
    let mut server = Server::new(backend, PathOpener { path: dev.to_path_buf(), line }, config);
    watch_signals(signals, server.shutdown_handle(), true);
    let exit = server.run().map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " (is this user in the dialout group?)"
        } else {
            ""
        };
        format!("cannot open the serial line: {e}{hint}")
    })?;
    eprintln!(
        "tern serve: {}",
        match exit {
            Exit::Quit => "/quit received; exiting",
            Exit::Eof => "Ctrl-D received; exiting",
            Exit::Shutdown => "shut down",
        }
    );
    Ok(())
}

/// Serves stdin/stdout through a pseudo-terminal pair (see the module docs).
fn serve_stdio(
    backend: ModelBackend<'_>,
    config: ServeConfig,
    signals: SigSet,
) -> Result<(), String> {
    let raw = RawStdin::enable()?;
    let pty = nix::pty::openpty(None, None)
        .map_err(|e| format!("--stdio: cannot create a pseudo-terminal: {e}"))?;
    // Configure the line (raw mode) before the first byte is pumped into it.
    let line = LineConfig { flush_on_open: false, ..LineConfig::default() };
    let port = SerialPort::from_fd(pty.slave, "stdin/stdout", &line)
        .map_err(|e| format!("--stdio: cannot configure the pseudo-terminal: {e}"))?;
    let master = File::from(pty.master);
    let master_in = master.try_clone().map_err(|e| format!("--stdio: {e}"))?;
    // Standard input/output cannot be re-opened: a second open ends the server.
    let flag_cell: Arc<OnceLock<Arc<AtomicBool>>> = Arc::default();
    let cell = flag_cell.clone();
    let mut port = Some(port);
    let opener = move || -> io::Result<SerialPort> {
        port.take().ok_or_else(|| {
            if let Some(f) = cell.get() {
                f.store(true, Ordering::SeqCst);
            }
            io::Error::new(io::ErrorKind::UnexpectedEof, "standard input/output closed")
        })
    };
    let mut server = Server::new(backend, opener, config);
    // Connection and re-open messages mean nothing here (and would garble a raw terminal).
    server.set_logger(|_| {});
    let flag = server.shutdown_handle();
    let _ = flag_cell.set(flag.clone());
    watch_signals(signals, flag.clone(), false);
    let out = std::thread::spawn(move || pump_out(master, &flag));
    std::thread::spawn(move || pump_in(master_in));
    let exit = server.run();
    // The port is closed; the output pump drains what is left and sees EIO.
    drop(server);
    let _ = out.join();
    drop(raw);
    exit.map(|_| ()).map_err(|e| format!("--stdio: {e}"))
}

/// Copies the pseudo-terminal's output to stdout until it closes.
fn pump_out(mut master: File, flag: &AtomicBool) {
    let mut buf = [0u8; 4096];
    let stdout = io::stdout();
    loop {
        let n = match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the server closed its side
        };
        let mut o = stdout.lock();
        if o.write_all(&buf[..n]).and_then(|()| o.flush()).is_err() {
            flag.store(true, Ordering::SeqCst); // nobody is listening any more
            break;
        }
    }
}

/// Copies stdin into the pseudo-terminal; at end of input ends the last line and sends Ctrl-D,
/// so the server answers everything that was sent and then exits.
fn pump_in(mut master: File) {
    let mut buf = [0u8; 4096];
    let mut last = b'\n';
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                last = buf[n - 1];
                if master.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let tail: &[u8] = if last == b'\n' || last == b'\r' { b"\x04" } else { b"\r\x04" };
    let _ = master.write_all(tail);
}

/// Raw mode on a terminal stdin, restored on drop; nothing when stdin is not a terminal.
struct RawStdin(Option<Termios>);

impl RawStdin {
    fn enable() -> Result<Self, String> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Ok(Self(None));
        }
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(|e| format!("--stdio: {e}"))?;
        let mut t = saved.clone();
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &t)
            .map_err(|e| format!("--stdio: {e}"))?;
        Ok(Self(Some(saved)))
    }
}

impl Drop for RawStdin {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &t);
        }
    }
}

fn block_signals() -> Result<SigSet, String> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(|e| format!("cannot block signals: {e}"))?;
    Ok(set)
}

/// The first signal asks the server to stop (it finishes within a poll interval or one token);
/// a second one exits at once.
fn watch_signals(set: SigSet, flag: Arc<AtomicBool>, log: bool) {
    std::thread::spawn(move || {
        let mut seen = false;
        while let Ok(sig) = set.wait() {
            if seen {
                eprintln!("\r\ntern serve: {sig} again; exiting now\r");
                std::process::exit(1);
            }
            if log {
                eprintln!("tern serve: {sig}; shutting down");
            }
            flag.store(true, Ordering::SeqCst);
            seen = true;
        }
    });
}

/// Timings of the last answer.
#[derive(Clone, Copy)]
struct Last {
    n_prompt: usize,
    n_gen: usize,
    prompt_s: f64,
    decode_s: f64,
    stop: StopReason,
}

/// The model behind the line: a chat [`Session`] and its thread pool.
pub struct ModelBackend<'a> {
    session: Session<'a>,
    pool: Pool,
    threads: usize,
    max_new: usize,
    keep_going: bool,
    model: String,
    last: Option<Last>,
}

impl ModelBackend<'_> {
    fn banner_line(&self) -> String {
        format!(
            "tern: {} ({}-token context, kernels {}, {}). /help for commands.",
            self.model,
            self.session.n_ctx(),
            self.session.engine.kernels.info.name,
            self.threads_text()
        )
    }

    fn threads_text(&self) -> String {
        format!("{} thread{}", self.threads, if self.threads == 1 { "" } else { "s" })
    }

    /// The message for a chat turn that did not fit.
    fn context_full(&self, needed: usize) -> String {
        let n_ctx = self.session.n_ctx();
        if self.session.n_past() == 0 || self.keep_going {
            format!(
                "this message does not fit in the {n_ctx}-token context ({needed} positions \
                 needed); send a shorter one, or restart with a larger -c"
            )
        } else {
            format!(
                "context full ({needed} of {n_ctx} positions needed): /reset to start a new \
                 conversation, or restart with --keep-going to drop old turns"
            )
        }
    }
}

/// Forwards session tokens to the server's callback and timestamps the prompt.
struct Relay<'f> {
    on_token: &'f mut dyn FnMut(Token<'_>) -> tern_serial::Control,
    t_prompt: Option<Instant>,
    stopped: bool,
}

impl Sink for Relay<'_> {
    fn prompt_done(&mut self, _n: usize) {
        self.t_prompt = Some(Instant::now());
    }

    fn token(&mut self, id: u32, text: &str) -> Control {
        // Empty while a UTF-8 character is incomplete: nothing to show yet.
        if !text.is_empty() && (self.on_token)(Token { text, id }) == tern_serial::Control::Stop {
            self.stopped = true;
        }
        if self.stopped { Control::Stop } else { Control::Continue }
    }
}

impl Backend for ModelBackend<'_> {
    fn generate(
        &mut self,
        req: &GenRequest<'_>,
        on_token: &mut dyn FnMut(Token<'_>) -> tern_serial::Control,
    ) -> Result<GenStats, String> {
        let max_new = req.max_tokens.map_or(self.max_new, |n| n as usize);
        let saved = self.session.sampler.config.temperature;
        if let Some(t) = req.temp {
            self.session.sampler.config.temperature = t;
        }
        let mut relay = Relay { on_token, t_prompt: None, stopped: false };
        let t0 = Instant::now();
        let r = self.session.chat(req.prompt, max_new, &self.pool, &mut relay);
        let t1 = Instant::now();
        self.session.sampler.config.temperature = saved;
        let st = match r {
            Ok(st) => st,
            Err(tern_runtime::Error::ContextFull { needed, .. }) => {
                return Err(self.context_full(needed));
            }
            Err(e) => return Err(e.to_string()),
        };
        let tp = relay.t_prompt.unwrap_or(t1);
        self.last = Some(Last {
            n_prompt: st.n_prompt,
            n_gen: st.n_gen,
            prompt_s: tp.duration_since(t0).as_secs_f64(),
            decode_s: t1.duration_since(tp).as_secs_f64(),
            stop: st.stop,
        });
        let finish = match st.stop {
            StopReason::EndOfGeneration => Finish::Eos,
            StopReason::Length => Finish::Length,
            StopReason::Interrupted => Finish::Stopped,
            StopReason::ContextFull => {
                return Err(format!(
                    "context full ({} tokens): the answer was cut short; /reset to start a new \
                     conversation{}",
                    self.session.n_ctx(),
                    if self.keep_going { "" } else { ", or restart with --keep-going" }
                ));
            }
        };
        Ok(GenStats { n_tokens: u32::try_from(st.n_gen).unwrap_or(u32::MAX), finish })
    }

    fn reset(&mut self) {
        self.session.reset();
    }

    fn set_system(&mut self, system: &str) {
        // The line editor's bound (4096 bytes) is below the session's text buffer, so this
        // cannot fail from the line; say so on stderr if it ever does.
        if let Err(e) = self.session.set_system(system) {
            eprintln!("tern serve: system prompt not set: {e}");
        }
    }

    fn set_temp(&mut self, temp: f32) -> Result<(), String> {
        if !temp.is_finite() || temp < 0.0 {
            return Err(format!("temperature {temp} must be a number >= 0"));
        }
        self.session.sampler.config.temperature = temp;
        Ok(())
    }

    fn stats(&self) -> String {
        let s = &self.session;
        let c = &s.sampler.config;
        let last = match self.last {
            None => "last answer: none yet".to_string(),
            Some(l) => format!(
                "last answer: {} tokens, {:.1} tok/s (prompt {} tokens, {:.1} tok/s), stop: {}",
                l.n_gen,
                l.n_gen as f64 / l.decode_s.max(1e-9),
                l.n_prompt,
                l.n_prompt as f64 / l.prompt_s.max(1e-9),
                match l.stop {
                    StopReason::EndOfGeneration => "end of answer",
                    StopReason::Length => "length",
                    StopReason::Interrupted => "interrupted",
                    StopReason::ContextFull => "context full",
                }
            ),
        };
        format!(
            "context: {}/{} tokens{}\n{last}\nmodel: {}, kernels {}, {}\nsampling: \
             temperature {}, top-k {}, top-p {}, min-p {}, replies up to {} tokens",
            s.n_past(),
            s.n_ctx(),
            if self.keep_going { " (oldest turns dropped when full)" } else { "" },
            self.model,
            s.engine.kernels.info.name,
            self.threads_text(),
            c.temperature,
            c.top_k,
            c.top_p,
            c.min_p,
            self.max_new
        )
    }
}
