//! An external power meter driven by a user command (`--energy meter:CMD`).
//!
//! `CMD` runs under `sh -c` and prints watts: either one number per invocation (it is re-run every
//! period) or a stream of lines (read as they come). A line's first number is taken (`4.87`,
//! `4.87 W`, `power=4.87W`; `mW` is converted); other lines are ignored and counted. The latest
//! value is held (zero-order) and sampled by the [`crate::Sampler`]; a value older than the
//! staleness limit is an error, not a reading.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cmd::kill_group;
use crate::source::{EnergySource, Reading};

/// Parses the first power value on a line, in watts.
pub fn parse_watts(line: &str) -> Option<f64> {
    for tok in line.split(|c: char| c.is_whitespace() || matches!(c, '=' | ',' | ';' | ':')) {
        if tok.is_empty() {
            continue;
        }
        let (num, scale) = if let Some(n) = tok.strip_suffix("mW") {
            (n, 1e-3)
        } else if let Some(n) = tok.strip_suffix('W').or_else(|| tok.strip_suffix('w')) {
            (n, 1.0)
        } else {
            (tok, 1.0)
        };
        if let Ok(v) = num.parse::<f64>()
            && v.is_finite()
            && v >= 0.0
        {
            return Some(v * scale);
        }
    }
    None
}

#[derive(Default)]
struct State {
    latest: Option<(Instant, f64)>,
    values: u64,
    ignored_lines: u64,
    runs: u64,
    last_error: Option<String>,
    child: Option<Child>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running meter command.
pub struct Meter {
    cmd: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stale_after: Duration,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").field("cmd", &self.cmd).finish()
    }
}

impl Meter {
    /// Starts `cmd` and waits up to `first_value` for a number, or says why not.
    /// `period` is the re-run interval for one-shot commands.
    pub fn probe(cmd: &str, period: Duration, first_value: Duration) -> Result<Self, String> {
        if cmd.trim().is_empty() {
            return Err("empty meter command".into());
        }
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (cmd, state, stop) = (cmd.to_string(), state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("tern-meter".into())
                .spawn(move || reader_loop(&cmd, period, &state, &stop))
                .map_err(|e| format!("cannot start meter thread: {e}"))?
        };
        let meter = Self {
            cmd: cmd.to_string(),
            state,
            stop,
            thread: Some(thread),
            stale_after: (period * 5).max(Duration::from_secs(2)),
        };
        let deadline = Instant::now() + first_value;
        loop {
            {
                let s = lock(&meter.state);
                if s.latest.is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let why = s.last_error.clone().unwrap_or_else(|| {
                        format!(
                            "printed no number within {first_value:?} ({} other lines)",
                            s.ignored_lines
                        )
                    });
                    return Err(format!("meter command {cmd:?}: {why}"));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(meter)
    }

    /// How many values were read and how many lines ignored so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.values, s.ignored_lines)
    }
}

fn reader_loop(cmd: &str, period: Duration, state: &Mutex<State>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                lock(state).last_error = Some(format!("cannot run sh -c: {e}"));
                return;
            }
        };
        let stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        {
            let mut s = lock(state);
            s.runs += 1;
            s.child = Some(child);
            // Drop may have run between spawn and here; it set `stop` before taking the lock.
            if stop.load(Ordering::SeqCst)
                && let Some(c) = s.child.as_mut()
            {
                kill_group(c);
            }
        }
        let mut got = 0u64;
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut s = lock(state);
                match parse_watts(&line) {
                    Some(w) => {
                        s.latest = Some((Instant::now(), w));
                        s.values += 1;
                        got += 1;
                    }
                    None => s.ignored_lines += 1,
                }
            }
        }
        let mut err_text = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(4096).read_to_string(&mut err_text);
        }
        let child = lock(state).child.take();
        let status = child.map(|mut c| c.wait());
        if got == 0 && !stop.load(Ordering::SeqCst) {
            let code = match status {
                Some(Ok(st)) => st.code().map_or_else(|| "a signal".into(), |c| c.to_string()),
                _ => "?".into(),
            };
            let tail: String = err_text.trim().chars().take(200).collect();
            lock(state).last_error =
                Some(format!("exited with {code} without printing a number: {tail}"));
        }
        // One-shot commands are re-run every period; a stream that ended is restarted likewise.
        let next = started + period;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(5).min(period));
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = lock(&self.state).child.as_mut() {
            kill_group(c);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl EnergySource for Meter {
    fn method(&self) -> &str {
        "meter"
    }

    fn sensors(&self) -> Vec<String> {
        vec![format!("meter:{}", self.cmd)]
    }

    fn scope(&self) -> String {
        "external meter command; covers whatever the meter is wired to (usually the board's supply)"
            .into()
    }

    fn read(&mut self) -> Result<Reading, String> {
        let s = lock(&self.state);
        match s.latest {
            Some((t, w)) if t.elapsed() <= self.stale_after => Ok(Reading::Watts(w)),
            Some((t, _)) => {
                Err(format!("meter value is stale ({:.1} s old)", t.elapsed().as_secs_f64()))
            }
            None => Err("meter has produced no value".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_watts;

    #[test]
    fn watts_forms() {
        assert_eq!(parse_watts("4.87"), Some(4.87));
        assert_eq!(parse_watts("  4.87 W"), Some(4.87));
        assert_eq!(parse_watts("power=4.87W"), Some(4.87));
        assert_eq!(parse_watts("P: 1500mW"), Some(1.5));
        assert_eq!(parse_watts("no number"), None);
        assert_eq!(parse_watts("-3"), None);
        assert_eq!(parse_watts("NaN"), None);
    }
}
