//! End-to-end tests over a real pseudo-terminal pair, driving the master as a terminal would,
//! with a fake backend. Every test runs under a time bound.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::openpty;
use nix::sys::termios::{ControlFlags, InputFlags, LocalFlags, tcgetattr};
use tern_serial::{
    Backend, Control, Exit, Finish, GenRequest, GenStats, LineConfig, Mode, PathOpener, SerialPort,
    ServeConfig, Server, Token,
};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread and fails the test if it takes longer than `LIMIT`.
fn bounded(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => {}
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("test exceeded {LIMIT:?}"),
    }
}

#[derive(Default)]
struct Shared {
    prompts: Vec<String>,
    system: String,
    temp: f32,
    resets: u32,
    tokens_sent: u32,
}

/// Echoes the prompt word by word. "long" streams 10000 slow tokens; "fail" errors.
struct Fake(Arc<Mutex<Shared>>);

impl Backend for Fake {
    fn generate(
        &mut self,
        req: &GenRequest<'_>,
        on_token: &mut dyn FnMut(Token<'_>) -> Control,
    ) -> Result<GenStats, String> {
        let system = {
            let mut s = self.0.lock().expect("lock");
            s.prompts.push(req.prompt.to_string());
            s.system.clone()
        };
        if req.prompt == "fail" {
            return Err("backend exploded".into());
        }
        let words: Vec<String> = if req.prompt == "long" {
            (0..10_000).map(|i| format!("tok{i} ")).collect()
        } else {
            format!("echo[{system}]: {}", req.prompt).split(' ').map(|w| format!("{w} ")).collect()
        };
        let max = req.max_tokens.unwrap_or(u32::MAX) as usize;
        let mut n = 0;
        for (i, w) in words.iter().enumerate() {
            if i >= max {
                return Ok(GenStats { n_tokens: n, finish: Finish::Length });
            }
            if req.prompt == "long" {
                std::thread::sleep(Duration::from_millis(2));
            }
            n += 1;
            self.0.lock().expect("lock").tokens_sent += 1;
            if on_token(Token { text: w, id: i as u32 }) == Control::Stop {
                return Ok(GenStats { n_tokens: n, finish: Finish::Stopped });
            }
        }
        Ok(GenStats { n_tokens: n, finish: Finish::Eos })
    }
    fn reset(&mut self) {
        self.0.lock().expect("lock").resets += 1;
    }
    fn set_system(&mut self, s: &str) {
        self.0.lock().expect("lock").system = s.to_string();
    }
    fn set_temp(&mut self, t: f32) -> Result<(), String> {
        if t > 2.0 {
            return Err(format!("temperature {t} too high for this model"));
        }
        self.0.lock().expect("lock").temp = t;
        Ok(())
    }
    fn stats(&self) -> String {
        let s = self.0.lock().expect("lock");
        format!("requests={}\nresets={}", s.prompts.len(), s.resets)
    }
}

/// The terminal side (pty master).
struct Term {
    master: File,
    seen: Vec<u8>,
}

impl Term {
    fn send(&mut self, b: &[u8]) {
        self.master.write_all(b).expect("write master");
    }

    /// Reads until `needle` appears; returns everything up to and including it (consumed).
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                let rest = self.seen.split_off(pos + needle.len());
                let got = std::mem::replace(&mut self.seen, rest);
                return String::from_utf8_lossy(&got).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(left.min(Duration::from_millis(100)))
                    .unwrap_or(PollTimeout::MAX),
            );
            if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
                let mut b = [0u8; 4096];
                match self.master.read(&mut b) {
                    Ok(n) => self.seen.extend_from_slice(&b[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("read master: {e}"),
                }
            }
        }
    }

    fn expect_json(&mut self) -> serde_json::Value {
        let line = self.expect("\n");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn new_pty() -> (Term, OwnedFd) {
    let p = openpty(None, None).expect("openpty");
    (Term { master: File::from(p.master), seen: Vec::new() }, p.slave)
}

type Running =
    JoinHandle<(io::Result<Exit>, Server<Fake, Box<dyn FnMut() -> io::Result<SerialPort> + Send>>)>;

struct Rig {
    term: Term,
    slaves: Sender<OwnedFd>,
    shared: Arc<Mutex<Shared>>,
    shutdown: Arc<AtomicBool>,
    handle: Running,
}

fn start(mode: Mode) -> Rig {
    let (term, slave) = new_pty();
    let (tx, rx) = mpsc::channel::<OwnedFd>();
    tx.send(slave).expect("send slave");
    let opener: Box<dyn FnMut() -> io::Result<SerialPort> + Send> = Box::new(move || {
        let fd = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "no terminal connected"))?;
        SerialPort::from_fd(fd, "pty", &LineConfig::default())
    });
    let shared = Arc::new(Mutex::new(Shared::default()));
    let config = ServeConfig {
        mode,
        poll_interval: Duration::from_millis(20),
        reopen_delay: Duration::from_millis(50),
        write_timeout: Duration::from_secs(2),
        ..ServeConfig::default()
    };
    let mut server = Server::new(Fake(shared.clone()), opener, config);
    server.set_logger(|_| {});
    let shutdown = server.shutdown_handle();
    let handle = std::thread::spawn(move || {
        let r = server.run();
        (r, server)
    });
    Rig { term, slaves: tx, shared, shutdown, handle }
}

impl Rig {
    fn finish(self) -> (io::Result<Exit>, tern_serial::ServeStats, Arc<Mutex<Shared>>) {
        let Rig { term, slaves, shared, shutdown, handle } = self;
        shutdown.store(true, Ordering::SeqCst);
        drop(slaves);
        let (r, server) = handle.join().expect("server thread");
        drop(term);
        (r, server.stats(), shared)
    }
}

#[test]
fn prompt_streams_answer_and_commands_work() {
    bounded(|| {
        let mut rig = start(Mode::Human);
        rig.term.expect("/help for commands.\r\n> ");
        rig.term.send(b"hello world\r");
        let out = rig.term.expect("\r\n> ");
        assert_eq!(out, "hello world\r\necho[]: hello world \r\n> ");
        rig.term.send(b"/system Be brief.\r");
        rig.term.expect("[system prompt set]\r\n> ");
        rig.term.send(b"hi\n");
        assert_eq!(rig.term.expect("\r\n> "), "hi\r\necho[Be brief.]: hi \r\n> ");
        rig.term.send(b"/temp 9\r");
        assert!(rig.term.expect("\r\n> ").contains("[error] usage: /temp X with 0 <= X <= 5"));
        rig.term.send(b"/temp 3\r");
        assert!(rig.term.expect("\r\n> ").contains("[error] temperature 3 too high"));
        rig.term.send(b"/temp 0.7\r/stats\r");
        rig.term.expect("[temperature 0.7]");
        rig.term.expect("requests=2\r\nresets=0\r\n> ");
        rig.term.send(b"/bogus\r//etc\rfail\r");
        rig.term.expect("[error] unknown command /bogus; /help lists commands\r\n> ");
        rig.term.expect("echo[Be brief.]: /etc \r\n> ");
        rig.term.expect("[error] backend exploded\r\n> ");
        rig.term.send(b"/reset\r/quit\r");
        rig.term.expect("[conversation reset]\r\n> ");
        rig.term.expect("bye\r\n");
        let Rig { handle, shared, .. } = rig;
        let (r, server) = handle.join().expect("join");
        assert_eq!(r.ok(), Some(Exit::Quit));
        let s = shared.lock().expect("lock");
        assert_eq!(s.prompts, ["hello world", "hi", "/etc", "fail"]);
        assert_eq!((s.resets, s.temp), (1, 0.7));
        assert_eq!(server.stats().errors, 4);
    });
}

#[test]
fn ctrl_c_stops_generation_and_keeps_state() {
    bounded(|| {
        let mut rig = start(Mode::Human);
        rig.term.expect("> ");
        rig.term.send(b"/system keep me\r");
        rig.term.expect("[system prompt set]\r\n> ");
        rig.term.send(b"long\r");
        rig.term.expect("tok3 ");
        rig.term.send(b"\x03");
        rig.term.expect("\r\n[interrupted]\r\n> ");
        let stopped_at = rig.shared.lock().expect("lock").tokens_sent;
        assert!(stopped_at < 10_000, "generation was not stopped");
        rig.term.send(b"after\r");
        rig.term.expect("echo[keep me]: after \r\n> ");
        // Ctrl-C at the prompt just clears the line.
        rig.term.send(b"half a line\x03");
        rig.term.expect("half a line^C\r\n> ");
        rig.term.send(b"\x04");
        rig.term.expect("bye\r\n");
        let (r, stats, shared) = rig.finish();
        assert_eq!(r.ok(), Some(Exit::Eof));
        assert_eq!(stats.interrupts, 1);
        assert_eq!(shared.lock().expect("lock").prompts, ["long", "after"]);
    });
}

#[test]
fn garbage_is_dropped_and_reported() {
    bounded(|| {
        let mut rig = start(Mode::Human);
        rig.term.expect("> ");
        rig.term.send(b"\x1b[A\x00\xff\xfehel\x1b[Dlo\x07\r");
        let out = rig.term.expect("\r\n> ");
        assert!(
            out.contains("[ignored 2 escape sequence(s) (arrow/function keys are not supported), 2 invalid UTF-8 byte(s), 2 control byte(s)]"),
            "{out:?}"
        );
        assert!(out.contains("echo[]: hello \r\n"), "{out:?}");
        // Pure noise with no line end is harmless; the next line still works.
        rig.term.send(&[0xC3, 0x01, 0x02, 0x1b, b'[', b'5', b'~']);
        rig.term.send("ünï\r".as_bytes());
        rig.term.expect("echo[]: ünï \r\n> ");
        let (_, stats, shared) = rig.finish();
        assert_eq!(shared.lock().expect("lock").prompts, ["hello", "ünï"]);
        assert_eq!(stats.noise_reports, 2);
    });
}

#[test]
fn over_long_line_is_discarded_clearly() {
    bounded(|| {
        let mut rig = start(Mode::Human);
        rig.term.expect("> ");
        let mut line = vec![b'a'; 5000];
        line.push(b'\r');
        rig.term.send(&line);
        rig.term.expect("[line too long: over 4096 bytes; discarding it up to Enter]\r\n");
        rig.term.expect("[error] line too long (5000 bytes, limit 4096); it was discarded\r\n> ");
        rig.term.send(b"ok\r");
        rig.term.expect("echo[]: ok \r\n> ");
        let (_, stats, shared) = rig.finish();
        assert_eq!(shared.lock().expect("lock").prompts, ["ok"]);
        assert_eq!(stats.overflows, 1);
    });
}

#[test]
fn hang_up_reopens_and_keeps_backend_state() {
    bounded(|| {
        let mut rig = start(Mode::Human);
        rig.term.expect("> ");
        rig.term.send(b"/system S1\r");
        rig.term.expect("[system prompt set]\r\n> ");
        rig.term.send(b"partial line, then the cable is pulled");
        // Host disconnects: the master closes; the server sees POLLHUP / EIO.
        let (term2, slave2) = new_pty();
        drop(std::mem::replace(&mut rig.term, term2));
        std::thread::sleep(Duration::from_millis(100));
        rig.slaves.send(slave2).expect("reconnect");
        rig.term.expect("/help for commands.\r\n> ");
        rig.term.send(b"hi\r");
        rig.term.expect("echo[S1]: hi \r\n> ");
        // Hang-up in the middle of a generation.
        rig.term.send(b"long\r");
        rig.term.expect("tok2 ");
        let (term3, slave3) = new_pty();
        drop(std::mem::replace(&mut rig.term, term3));
        rig.slaves.send(slave3).expect("reconnect");
        rig.term.expect("> ");
        rig.term.send(b"again\r");
        rig.term.expect("echo[S1]: again \r\n> ");
        let (r, stats, shared) = rig.finish();
        assert_eq!(r.ok(), Some(Exit::Shutdown));
        assert_eq!((stats.connections, stats.hangups), (3, 2));
        let s = shared.lock().expect("lock");
        assert_eq!(s.prompts, ["hi", "long", "again"]);
        assert!(s.tokens_sent < 10_000);
    });
}

#[test]
fn machine_mode_json_lines() {
    bounded(|| {
        let mut rig = start(Mode::Machine);
        let ready = rig.term.expect_json();
        assert_eq!(ready, serde_json::json!({"ready": true, "protocol": "tern-serial/1"}));
        rig.term.send(b"{\"prompt\": \"a b c\", \"n\": 2, \"temp\": 0.0}\n");
        let t0 = rig.term.expect_json();
        assert_eq!(t0["token"], "echo[]: ");
        assert_eq!(t0["id"], 0);
        assert!(t0["t_ms"].as_f64().is_some_and(|t| t >= 0.0));
        assert_eq!(rig.term.expect_json()["token"], "a ");
        let done = rig.term.expect_json();
        assert_eq!(done["done"], true);
        assert_eq!(done["n"], 2);
        assert_eq!(done["stop"], "length");
        assert!(done["tok_s"].as_f64().is_some_and(|t| t > 0.0));
        rig.term.send(b"{\"prompt\": oops}\r\n");
        assert!(
            rig.term.expect_json()["error"].as_str().is_some_and(|e| e.starts_with("invalid JSON"))
        );
        rig.term.send(b"{\"cmd\": \"reset\"}\n{\"cmd\":\"stats\"}\n");
        assert_eq!(rig.term.expect_json(), serde_json::json!({"ok": true, "cmd": "reset"}));
        assert_eq!(rig.term.expect_json()["stats"], "requests=1\nresets=1");
        rig.term.send(b"{\"prompt\": \"long\"}\n");
        rig.term.expect("tok3 ");
        rig.term.expect("\n");
        rig.term.send(b"\x03");
        let done = loop {
            let v = rig.term.expect_json();
            if v.get("done").is_some() {
                break v;
            }
        };
        assert_eq!(done["stop"], "interrupted");
        rig.term.send(b"{\"cmd\":\"quit\"}\n");
        assert_eq!(rig.term.expect_json(), serde_json::json!({"ok": true, "cmd": "quit"}));
        let Rig { handle, .. } = rig;
        let (r, _) = handle.join().expect("join");
        assert_eq!(r.ok(), Some(Exit::Quit));
    });
}

#[test]
fn path_opener_configures_raw_8n1_and_restores() {
    bounded(|| {
        let (mut term, slave) = new_pty();
        let path =
            std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).expect("pty path");
        let before = tcgetattr(&slave).expect("tcgetattr");
        assert!(before.local_flags.contains(LocalFlags::ICANON));
        for baud in [9600, 115_200, 4_000_000] {
            let port =
                SerialPort::open(&path, &LineConfig::new(baud).expect("baud")).expect("open");
            let t = port.termios().expect("termios");
            assert!(
                !t.local_flags.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
            );
            assert!(
                t.control_flags
                    .contains(ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD)
            );
            assert!(
                !t.control_flags.intersects(
                    ControlFlags::CRTSCTS | ControlFlags::PARENB | ControlFlags::CSTOPB
                )
            );
            assert!(
                !t.input_flags.intersects(InputFlags::IXON | InputFlags::IXOFF | InputFlags::ICRNL)
            );
            assert_eq!(
                nix::sys::termios::cfgetospeed(&t),
                LineConfig::new(baud).map(|_| baud_of(baud)).expect("b")
            );
            drop(port);
            let after = tcgetattr(&slave).expect("tcgetattr");
            assert!(after.local_flags.contains(LocalFlags::ICANON), "settings restored on drop");
        }
        // PathOpener drives a whole server session.
        let opener = PathOpener { path: path.clone(), line: LineConfig::default() };
        let mut server = Server::new(Fake(Arc::default()), opener, ServeConfig::default());
        server.set_logger(|_| {});
        let h = std::thread::spawn(move || server.run());
        term.expect("> ");
        term.send(b"/quit\r");
        term.expect("bye");
        assert_eq!(h.join().expect("join").ok(), Some(Exit::Quit));
        drop(slave);
    });
}

fn baud_of(b: u32) -> nix::sys::termios::BaudRate {
    use nix::sys::termios::BaudRate;
    match b {
        9600 => BaudRate::B9600,
        115_200 => BaudRate::B115200,
        _ => BaudRate::B4000000,
    }
}

#[test]
fn first_open_failure_is_returned() {
    bounded(|| {
        let opener =
            PathOpener { path: "/nonexistent/ttyTERN".into(), line: LineConfig::default() };
        let mut server = Server::new(Fake(Arc::default()), opener, ServeConfig::default());
        server.set_logger(|_| {});
        let e = server.run().expect_err("no such device");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent/ttyTERN"));
    });
}
