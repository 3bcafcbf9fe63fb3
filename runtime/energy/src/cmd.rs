//! Running helper commands (`vcgencmd`, meter one-shots) with a time limit.
//!
//! `std::process` has no timeout; a wedged `vcgencmd` (the VideoCore mailbox can hang) must not
//! hang `tern bench`, so the child is polled and killed past the limit.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Captured standard output (lossy UTF-8).
    pub stdout: String,
    /// Captured standard error (lossy UTF-8), trimmed.
    pub stderr: String,
}

/// Runs `program args...` and waits at most `limit`. Errors are short human-readable reasons.
pub fn run_with_timeout(
    program: &Path,
    args: &[&str],
    limit: Duration,
) -> Result<CmdOutput, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                let _ = child.wait();
                return Err(format!("{} timed out after {:?}", program.display(), limit));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for {}: {e}", program.display())),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(CmdOutput {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
    })
}

/// Kills a child started with `process_group(0)` together with everything it started (a shell
/// script's own children would otherwise keep our pipes open).
pub(crate) fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes no pointers; a negative pid names the process group the child
        // leads (it was spawned with process_group(0), so its pgid is its pid and not ours).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// Runs a command that must exit 0; returns its stdout.
pub fn run_ok(program: &Path, args: &[&str], limit: Duration) -> Result<String, String> {
    let o = run_with_timeout(program, args, limit)?;
    match o.code {
        Some(0) => Ok(o.stdout),
        code => {
            let code = code.map_or_else(|| "a signal".to_string(), |c| c.to_string());
            let tail: String = o.stderr.chars().take(200).collect();
            Err(format!("{} {} exited with {code}: {tail}", program.display(), args.join(" ")))
        }
    }
}
