//! End-to-end tests of `tern serve`: the real binary on the bundled model, driven through a real
//! pseudo-terminal pair the way a terminal on the other end of a serial cable would drive it
//! (`--serial` gets a symlink to the pty slave, so a "cable" can be unplugged and another one
//! plugged in at the same path), plus `--stdio` over pipes. Answers are checked against
//! `tern chat --temp 0`, which runs the same greedy chat turns. Every wait is bounded, and the
//! server process is killed when a test ends, however it ends.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{LocalFlags, tcgetattr};

/// Bound on any single wait for output.
const WAIT: Duration = Duration::from_secs(30);

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name)
}

fn model() -> String {
    data("tiny-trained.i2_s.gguf").to_string_lossy().into_owned()
}

/// A scratch directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("tern-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    Scratch(d)
}

/// The greedy replies `tern chat` gives to `prompts`, one per turn (run once per prefix, so a
/// reply containing newlines cannot confuse the split).
fn chat_replies(prompts: &[&str], extra: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev = String::new();
    for k in 1..=prompts.len() {
        let mut input = prompts[..k].join("\n");
        input.push('\n');
        let m = model();
        let mut args = vec!["chat", "-m", &m, "--temp", "0", "-t", "1"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tern chat");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        let o = child.wait_with_output().expect("tern chat");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let all = String::from_utf8(o.stdout).expect("utf-8");
        let reply = all.strip_prefix(prev.as_str()).expect("chat output grows turn by turn");
        out.push(reply.strip_suffix('\n').expect("newline after reply").to_string());
        prev = all;
    }
    out
}

/// A running `tern`, killed on drop.
struct Tern {
    child: Child,
    stderr: PathBuf,
}

impl Tern {
    fn spawn(args: &[&str], dir: &Path, stdin: Stdio, stdout: Stdio) -> Tern {
        let stderr = dir.join("stderr.txt");
        let child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn tern");
        Tern { child, stderr }
    }

    /// `tern serve -m MODEL --serial LINK ARGS...`.
    fn serial(link: &Path, dir: &Path, args: &[&str]) -> Tern {
        let m = model();
        let l = link.to_string_lossy().into_owned();
        let mut all = vec!["serve", "-m", &m, "--serial", &l, "-t", "1"];
        all.extend_from_slice(args);
        Tern::spawn(&all, dir, Stdio::null(), Stdio::null())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit; its exit code.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < end, "tern did not exit within {limit:?}: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The terminal end of a pty pair. The slave stays open here too, so the device exists until
/// the terminal is dropped (the "cable is pulled"). Both ends are close-on-exec, so no `tern`
/// started by a test running in parallel inherits them (and keeps the line from hanging up).
struct Term {
    master: PtyMaster,
    slave: OwnedFd,
    path: PathBuf,
    seen: Vec<u8>,
}

impl Term {
    fn new() -> Term {
        let master =
            posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("posix_openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let path = PathBuf::from(ptsname_r(&master).expect("ptsname"));
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(&path)
            .expect("open the pty slave");
        Term { master, slave: OwnedFd::from(slave), path, seen: Vec::new() }
    }

    fn send(&mut self, b: &[u8]) {
        self.master.write_all(b).expect("write to the pty master");
    }

    /// Reads until `needle` appears; returns everything up to and including it (consumed).
    fn expect(&mut self, tern: &Tern, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                let rest = self.seen.split_off(pos + needle.len());
                let got = std::mem::replace(&mut self.seen, rest);
                return String::from_utf8_lossy(&got).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {needle:?}; got {:?}; server stderr: {}",
                String::from_utf8_lossy(&self.seen),
                tern.stderr()
            );
            self.read_some(left.min(Duration::from_millis(100)));
        }
    }

    /// Reads until at least `n` unconsumed bytes are buffered.
    fn expect_bytes(&mut self, tern: &Tern, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.seen.len() < n {
            assert!(Instant::now() < deadline, "timed out; server stderr: {}", tern.stderr());
            self.read_some(Duration::from_millis(100));
        }
    }

    fn read_some(&mut self, wait: Duration) {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX));
        if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            let mut b = [0u8; 4096];
            match self.master.read(&mut b) {
                Ok(n) => self.seen.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read from the pty master: {e}"),
            }
        }
    }

    /// Sends a prompt line and returns the streamed answer (echo and prompt stripped, `\r\n`
    /// turned back into `\n`).
    fn ask(&mut self, tern: &Tern, prompt: &str) -> String {
        self.send(format!("{prompt}\r").as_bytes());
        let out = self.expect(tern, "\r\n> ");
        let echo = format!("{prompt}\r\n");
        let body = out.strip_prefix(&echo).unwrap_or_else(|| panic!("no echo in {out:?}"));
        body.strip_suffix("\r\n> ").unwrap_or(body).replace("\r\n", "\n")
    }

    fn expect_json(&mut self, tern: &Tern) -> serde_json::Value {
        let line = self.expect(tern, "\n");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    /// Whether the line is back in the cooked mode it had before the server opened it.
    fn restored(&self) -> bool {
        tcgetattr(self.slave.as_fd()).expect("tcgetattr").local_flags.contains(LocalFlags::ICANON)
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Points the stable device path `link` at `term`'s pty (atomically, like udev).
fn plug(link: &Path, term: &Term) {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&term.path, &tmp).expect("symlink");
    std::fs::rename(&tmp, link).expect("rename symlink");
}

/// The `/stats` reply (up to the next prompt).
fn stats(term: &mut Term, tern: &Tern) -> String {
    term.send(b"/stats\r");
    term.expect(tern, "/stats\r\n");
    term.expect(tern, "\r\n> ")
}

/// `N` from "context: N/M tokens".
fn n_past(stats: &str) -> usize {
    let s = stats.split("context: ").nth(1).unwrap_or_else(|| panic!("no context in {stats:?}"));
    s.split('/').next().and_then(|n| n.parse().ok()).expect("context count")
}

const BANNER_END: &str = "/help for commands.\r\n> ";

#[test]
fn human_mode_streams_the_greedy_chat_reply() {
    let want = chat_replies(&["Hello", "Tell me a story"], &["-n", "48"]);
    let dir = scratch("human");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    let tern = Tern::serial(&link, &dir, &["--temp", "0", "-n", "48"]);
    let banner = term.expect(&tern, BANNER_END);
    assert!(banner.contains("tiny-trained.i2_s.gguf (256-token context"), "{banner:?}");
    assert!(!term.restored(), "the line is in raw mode while served");
    assert_eq!(term.ask(&tern, "Hello"), want[0]);
    assert_eq!(term.ask(&tern, "Tell me a story"), want[1], "second turn follows the first");
    let st = stats(&mut term, &tern);
    assert!(n_past(&st) > 48 + 10, "{st:?}");
    assert!(st.contains("/256 tokens"), "{st:?}");
    assert!(st.contains("last answer: ") && st.contains("tok/s") && st.contains("kernels "));
    assert!(st.contains("1 thread") && st.contains("temperature 0"), "{st:?}");
    term.send(b"/reset\r");
    term.expect(&tern, "[conversation reset]\r\n> ");
    assert_eq!(n_past(&stats(&mut term, &tern)), 0);
    assert_eq!(term.ask(&tern, "Hello"), want[0], "a reset conversation starts afresh");
    term.send(b"/help\r");
    term.expect(&tern, "/reset");
    term.expect(&tern, "\r\n> ");
    term.send(b"/quit\r");
    term.expect(&tern, "bye\r\n");
    let mut tern = tern;
    assert_eq!(tern.wait_exit(WAIT), 0, "{}", tern.stderr());
    assert!(term.restored(), "line settings restored on exit");
}

#[test]
fn ctrl_c_stops_generation_and_the_prompt_returns() {
    let dir = scratch("ctrlc");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    // 1000 greedy tokens in a 1024-token context take seconds: long enough to interrupt.
    let tern = Tern::serial(&link, &dir, &["--temp", "0", "-c", "1024", "-n", "1000"]);
    term.expect(&tern, BANNER_END);
    for prompt in ["Hello", "Tell me a story"] {
        term.send(format!("{prompt}\r").as_bytes());
        term.expect(&tern, &format!("{prompt}\r\n"));
        term.expect_bytes(&tern, 8); // the answer is streaming
        let t = Instant::now();
        term.send(b"\x03");
        term.expect(&tern, "\r\n[interrupted]\r\n> ");
        assert!(t.elapsed() < Duration::from_secs(5), "Ctrl-C took {:?}", t.elapsed());
        let st = stats(&mut term, &tern);
        assert!(st.contains("stop: interrupted"), "{st:?}");
        let n: usize = st
            .split("last answer: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("token count");
        assert!((1..1000).contains(&n), "stopped after {n} tokens");
    }
    term.send(b"\x04");
    term.expect(&tern, "bye\r\n");
    let mut tern = tern;
    assert_eq!(tern.wait_exit(WAIT), 0);
}

#[test]
fn garbage_and_over_long_lines_are_reported_and_the_conversation_survives() {
    let want = chat_replies(&["Hello", "Tell me a story"], &["-n", "24"]);
    let dir = scratch("noise");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    let tern = Tern::serial(&link, &dir, &["--temp", "0", "-n", "24"]);
    term.expect(&tern, BANNER_END);
    // An arrow key, NUL, two bytes that are not UTF-8, a left arrow and a bell around "Hello".
    term.send(b"\x1b[A\x00\xff\xfeHel\x1b[Dlo\x07\r");
    let out = term.expect(&tern, "\r\n> ");
    let noise = "[ignored 2 escape sequence(s) (arrow/function keys are not supported), \
                 2 invalid UTF-8 byte(s), 2 control byte(s)]\r\n";
    let (_, answer) = out.split_once(noise).unwrap_or_else(|| panic!("no noise report: {out:?}"));
    assert_eq!(
        answer.strip_suffix("\r\n> ").map(|a| a.replace("\r\n", "\n")),
        Some(want[0].clone())
    );
    let mut long = vec![b'x'; 5000];
    long.push(b'\r');
    term.send(&long);
    term.expect(&tern, "[error] line too long (5000 bytes, limit 4096); it was discarded\r\n> ");
    let before = n_past(&stats(&mut term, &tern));
    assert!(before > 0);
    assert_eq!(term.ask(&tern, "Tell me a story"), want[1], "the model state survived");
    assert!(n_past(&stats(&mut term, &tern)) > before);
}

#[test]
fn hang_up_then_reconnect_keeps_the_conversation() {
    let want = chat_replies(&["Hello", "Tell me a story"], &["-n", "24"]);
    let dir = scratch("hangup");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    let tern = Tern::serial(&link, &dir, &["--temp", "0", "-n", "24"]);
    term.expect(&tern, BANNER_END);
    assert_eq!(term.ask(&tern, "Hello"), want[0]);
    term.send(b"half a line, then the cable is pulled");
    // Another cable shows up at the same path; the first one goes away.
    let mut term2 = Term::new();
    plug(&link, &term2);
    drop(term);
    let banner = term2.expect(&tern, BANNER_END);
    assert!(banner.starts_with("tern: "), "{banner:?}");
    assert_eq!(term2.ask(&tern, "Tell me a story"), want[1], "conversation kept across hang-up");
    let log = tern.stderr();
    assert!(log.contains("hang-up") && log.matches("connected on").count() == 2, "{log}");
}

#[test]
fn machine_mode_speaks_json_lines() {
    let want = chat_replies(&["Hello", "Tell me a story"], &["-n", "24"]);
    let dir = scratch("machine");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    let tern = Tern::serial(&link, &dir, &["--machine", "--temp", "0", "-n", "24"]);
    assert_eq!(
        term.expect_json(&tern),
        serde_json::json!({"ready": true, "protocol": "tern-serial/1"})
    );
    let answer = |term: &mut Term, req: &str| -> (String, serde_json::Value) {
        term.send(req.as_bytes());
        let mut text = String::new();
        loop {
            let v = term.expect_json(&tern);
            if v.get("done").is_some() {
                return (text, v);
            }
            text.push_str(v["token"].as_str().unwrap_or_else(|| panic!("not a token: {v}")));
            assert!(v["id"].as_u64().is_some() && v["t_ms"].as_f64().is_some(), "{v}");
        }
    };
    let (text, done) = answer(&mut term, "{\"prompt\": \"Hello\"}\n");
    assert_eq!(text, want[0]);
    assert!(done["stop"] == "length" || done["stop"] == "eos", "{done}");
    assert!(done["tok_s"].as_f64().is_some_and(|t| t > 0.0), "{done}");
    let (text, done) = answer(&mut term, "{\"prompt\": \"Tell me a story\", \"n\": 5}\n");
    assert!(want[1].starts_with(&text) && !text.is_empty(), "{text:?} vs {:?}", want[1]);
    assert_eq!((done["n"].as_u64(), done["stop"].as_str()), (Some(5), Some("length")), "{done}");
    term.send(b"{\"cmd\": \"stats\"}\n");
    let st = term.expect_json(&tern);
    assert!(st["stats"].as_str().is_some_and(|s| s.contains("context: ")), "{st}");
    term.send(b"{oops\n");
    let e = term.expect_json(&tern);
    assert!(e["error"].as_str().is_some_and(|e| e.starts_with("invalid JSON")), "{e}");
    term.send(b"\xff\xfe{\"cmd\": \"reset\"}\n");
    let e = term.expect_json(&tern);
    assert!(e["error"].as_str().is_some_and(|e| e.contains("invalid UTF-8")), "{e}");
    assert_eq!(term.expect_json(&tern), serde_json::json!({"ok": true, "cmd": "reset"}));
    term.send(b"{\"cmd\": \"quit\"}\n");
    assert_eq!(term.expect_json(&tern), serde_json::json!({"ok": true, "cmd": "quit"}));
    let mut tern = tern;
    assert_eq!(tern.wait_exit(WAIT), 0);
}

#[test]
fn context_full_is_reported_and_recoverable() {
    let dir = scratch("ctxfull");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    let args = ["--temp", "0", "-c", "64", "-n", "32"];
    let tern = Tern::serial(&link, &dir, &args);
    term.expect(&tern, BANNER_END);
    term.ask(&tern, "Hello");
    let out = term.ask(&tern, "Tell me a story");
    assert!(
        out.starts_with("[error] context full (")
            && out.contains("/reset to start a new conversation, or restart with --keep-going"),
        "{out:?}"
    );
    term.send(b"/reset\r");
    term.expect(&tern, "[conversation reset]\r\n> ");
    let alone = chat_replies(&["Tell me a story"], &["-c", "64", "-n", "32"]);
    assert_eq!(term.ask(&tern, "Tell me a story"), alone[0], "usable again after /reset");
    drop(tern);

    // --keep-going drops the oldest turn instead.
    let mut term = Term::new();
    plug(&link, &term);
    let tern = Tern::serial(&link, &dir, &[&args[..], &["--keep-going"]].concat());
    term.expect(&tern, BANNER_END);
    term.ask(&tern, "Hello");
    let out = term.ask(&tern, "Tell me a story");
    assert!(!out.contains("[error]") && !out.is_empty(), "{out:?}");
    assert!(stats(&mut term, &tern).contains("(oldest turns dropped when full)"));
}

#[test]
fn sigterm_shuts_down_and_restores_the_line() {
    let dir = scratch("sigterm");
    let link = dir.join("ttyTERN");
    let mut term = Term::new();
    plug(&link, &term);
    let mut tern = Tern::serial(&link, &dir, &[]);
    term.expect(&tern, BANNER_END);
    assert!(!term.restored());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(tern.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    assert_eq!(tern.wait_exit(Duration::from_secs(10)), 0, "{}", tern.stderr());
    assert!(tern.stderr().contains("SIGTERM; shutting down"), "{}", tern.stderr());
    assert!(term.restored(), "line settings restored");
}

#[test]
fn stdio_serves_pipes_in_both_modes() {
    let want = chat_replies(&["Hello", "Tell me a story"], &["-n", "48"]);
    let dir = scratch("stdio");
    let m = model();
    let run = |args: &[&str], input: &str| -> String {
        let mut all = vec!["serve", "-m", &m, "--stdio", "--temp", "0", "-t", "1"];
        all.extend_from_slice(args);
        let mut tern = Tern::spawn(&all, &dir, Stdio::piped(), Stdio::piped());
        let mut stdin = tern.child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin); // end of input: answer everything, then exit
        let mut stdout = tern.child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        assert_eq!(tern.wait_exit(WAIT), 0, "{}", tern.stderr());
        reader.join().expect("reader")
    };
    let out = run(&["-n", "48"], "Hello\nTell me a story\n/stats\n");
    let parts: Vec<&str> = out.split("\r\n> ").collect();
    assert!(parts[0].ends_with(BANNER_END.trim_end_matches("\r\n> ")), "{out:?}");
    let reply = |p: &str, prompt: &str| {
        p.strip_prefix(&format!("{prompt}\r\n")).map(|r| r.replace("\r\n", "\n"))
    };
    assert_eq!(reply(parts[1], "Hello"), Some(want[0].clone()), "{out:?}");
    assert_eq!(reply(parts[2], "Tell me a story"), Some(want[1].clone()), "{out:?}");
    assert!(parts[3].starts_with("/stats\r\ncontext: "), "{out:?}");
    assert_eq!(parts[4], "bye\r\n");

    // Machine mode, with a last line that has no newline.
    let out = run(&["--machine", "-n", "24"], "{\"prompt\": \"Hello\"}\n{\"cmd\": \"stats\"}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    assert_eq!(lines[0]["ready"], true);
    let text: String = lines.iter().filter_map(|v| v["token"].as_str()).collect();
    assert_eq!(text, chat_replies(&["Hello"], &["-n", "24"])[0]);
    assert!(lines.iter().any(|v| v["done"] == true));
    assert!(lines.last().is_some_and(|v| v["stats"].is_string()), "{out:?}");
}

#[test]
fn stdio_on_a_terminal_uses_raw_mode_and_restores_it() {
    let want = chat_replies(&["Hello"], &["-n", "8"]);
    let dir = scratch("stdio-tty");
    let mut term = Term::new();
    let m = model();
    let args = ["serve", "-m", &m, "--stdio", "--temp", "0", "-t", "1", "-c", "1024", "-n", "1000"];
    let fd = |t: &Term| Stdio::from(t.slave.try_clone().expect("dup the pty slave"));
    let mut tern = Tern::spawn(&args, &dir, fd(&term), fd(&term));
    term.expect(&tern, BANNER_END);
    // One echo (the server's), not two: the terminal's own echo and line editing are off.
    term.send(b"Hello\r");
    assert_eq!(term.expect(&tern, "Hello\r\n"), "Hello\r\n");
    term.expect(&tern, &want[0]);
    term.send(b"\x03"); // a byte, not SIGINT
    term.expect(&tern, "\r\n[interrupted]\r\n> ");
    term.send(b"\x04");
    term.expect(&tern, "bye\r\n");
    assert_eq!(tern.wait_exit(WAIT), 0, "{}", tern.stderr());
    assert!(term.restored(), "terminal settings restored");
}

#[test]
fn bad_settings_fail_fast_with_one_line() {
    let dir = scratch("bad");
    let m = model();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--serial", "/nonexistent/ttyTERN"],
            "cannot open the serial line: /nonexistent/ttyTERN",
        ),
        (&["--serial", "/dev/null"], "not a terminal"),
        (&["--serial", "/dev/null", "--baud", "12345"], "unsupported baud rate 12345"),
    ];
    for (args, msg) in cases {
        let mut all = vec!["serve", "-m", &m];
        all.extend_from_slice(args);
        let mut tern = Tern::spawn(&all, &dir, Stdio::null(), Stdio::null());
        assert_eq!(tern.wait_exit(WAIT), 1, "{args:?}");
        let err = tern.stderr();
        assert!(err.starts_with("tern: error: ") && err.contains(msg), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // Exactly one of --serial and --stdio.
    for args in [&["serve", "-m", &m][..], &["serve", "-m", &m, "--stdio", "--serial", "/dev/null"]]
    {
        let mut tern = Tern::spawn(args, &dir, Stdio::null(), Stdio::null());
        assert_eq!(tern.wait_exit(WAIT), 2, "{args:?}");
    }
}
