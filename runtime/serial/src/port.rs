//! The serial device: termios setup (raw 8N1, no flow control, CLOCAL), non-blocking reads with
//! `poll`, bounded-time writes, and restoring the previous settings on drop.
//!
//! Works the same on a UART (`/dev/ttyAMA0`, `/dev/serial0`), a USB gadget (`/dev/ttyGS0`), a USB
//! adapter (`/dev/ttyUSB0`) and a pseudo-terminal (tests). A hang-up shows up as `POLLHUP`, a
//! zero-byte read or `EIO` (a gadget whose host disconnected, a pty whose master closed) and is
//! reported as [`ReadOutcome::HangUp`], never as data.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{
    self, BaudRate, ControlFlags, FlushArg, InputFlags, LocalFlags, OutputFlags, SetArg,
    SpecialCharacterIndices, Termios,
};

/// Baud rates accepted by [`LineConfig`] (those this platform's termios can express).
pub fn supported_bauds() -> Vec<u32> {
    ALL_BAUDS.iter().copied().filter(|b| baud_rate(*b).is_some()).collect()
}

const ALL_BAUDS: &[u32] = &[
    9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 500_000, 576_000, 921_600, 1_000_000,
    1_152_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000, 3_500_000, 4_000_000,
];

fn baud_rate(b: u32) -> Option<BaudRate> {
    Some(match b {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        460_800 => BaudRate::B460800,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        500_000 => BaudRate::B500000,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        576_000 => BaudRate::B576000,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        921_600 => BaudRate::B921600,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        1_000_000 => BaudRate::B1000000,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        1_152_000 => BaudRate::B1152000,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        1_500_000 => BaudRate::B1500000,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        2_000_000 => BaudRate::B2000000,
        #[cfg(all(target_os = "linux", not(target_arch = "sparc64")))]
        2_500_000 => BaudRate::B2500000,
        #[cfg(all(target_os = "linux", not(target_arch = "sparc64")))]
        3_000_000 => BaudRate::B3000000,
        #[cfg(all(target_os = "linux", not(target_arch = "sparc64")))]
        3_500_000 => BaudRate::B3500000,
        #[cfg(all(target_os = "linux", not(target_arch = "sparc64")))]
        4_000_000 => BaudRate::B4000000,
        _ => return None,
    })
}

/// Line settings. The framing is always 8N1 without flow control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineConfig {
    /// Bits per second; one of [`supported_bauds`].
    pub baud: u32,
    /// Discard bytes that arrived before the port was opened (stale line noise).
    pub flush_on_open: bool,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self { baud: 115_200, flush_on_open: true }
    }
}

impl LineConfig {
    /// A config at `baud`, checked against [`supported_bauds`].
    pub fn new(baud: u32) -> io::Result<Self> {
        if baud_rate(baud).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported baud rate {baud} (supported: {:?})", supported_bauds()),
            ));
        }
        Ok(Self { baud, ..Self::default() })
    }
}

/// Applies raw 8N1 settings to a termios value (pure; exposed for tests and inspection).
pub fn make_raw_8n1(t: &mut Termios, baud: BaudRate) -> io::Result<()> {
    termios::cfmakeraw(t);
    t.input_flags.remove(
        InputFlags::IXON
            | InputFlags::IXOFF
            | InputFlags::IXANY
            | InputFlags::ICRNL
            | InputFlags::INLCR
            | InputFlags::IGNCR
            | InputFlags::ISTRIP
            | InputFlags::INPCK
            | InputFlags::PARMRK
            | InputFlags::BRKINT,
    );
    t.output_flags.remove(OutputFlags::OPOST);
    t.local_flags.remove(
        LocalFlags::ICANON
            | LocalFlags::ECHO
            | LocalFlags::ECHOE
            | LocalFlags::ECHONL
            | LocalFlags::ISIG
            | LocalFlags::IEXTEN,
    );
    t.control_flags.remove(ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::CSTOPB);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    t.control_flags.remove(ControlFlags::CRTSCTS);
    t.control_flags.insert(ControlFlags::CS8 | ControlFlags::CREAD | ControlFlags::CLOCAL);
    // Reads are driven by poll(2) on a non-blocking fd; VMIN=1/VTIME=0 only matters if a caller
    // clears O_NONBLOCK.
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::cfsetspeed(t, baud).map_err(io::Error::from)
}

/// What a read produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` bytes were read into the buffer.
    Data(usize),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The other side went away (POLLHUP, EOF or EIO): close and re-open.
    HangUp,
}

/// An open, configured serial line. Restores the previous termios settings on drop.
#[derive(Debug)]
pub struct SerialPort {
    file: File,
    saved: Option<Termios>,
    name: String,
}

fn is_hangup(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::EIO as i32 || c == Errno::ENXIO as i32 || c == Errno::ENODEV as i32)
        || e.kind() == io::ErrorKind::BrokenPipe
}

impl SerialPort {
    /// Opens `path` (`O_NOCTTY | O_NONBLOCK`) and configures it.
    pub fn open(path: &Path, config: &LineConfig) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::configure(file, path.display().to_string(), config)
    }

    /// Takes an already open terminal fd (e.g. a pty slave), makes it non-blocking and
    /// configures it.
    pub fn from_fd(fd: OwnedFd, name: impl Into<String>, config: &LineConfig) -> io::Result<Self> {
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        Self::configure(File::from(fd), name.into(), config)
    }

    fn configure(file: File, name: String, config: &LineConfig) -> io::Result<Self> {
        let baud = baud_rate(config.baud).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported baud rate {}", config.baud),
            )
        })?;
        let saved = termios::tcgetattr(file.as_fd())
            .map_err(|e| io::Error::other(format!("{name}: not a terminal: {e}")))?;
        let mut t = saved.clone();
        make_raw_8n1(&mut t, baud)?;
        termios::tcsetattr(file.as_fd(), SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        if config.flush_on_open {
            let _ = termios::tcflush(file.as_fd(), FlushArg::TCIFLUSH);
        }
        Ok(Self { file, saved: Some(saved), name })
    }

    /// The device name (path) for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current termios settings of the line.
    pub fn termios(&self) -> io::Result<Termios> {
        termios::tcgetattr(self.file.as_fd()).map_err(io::Error::from)
    }

    /// Waits up to `timeout` for input and reads what is there.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<ReadOutcome> {
        let revents = {
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            let t = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, t) {
                Ok(0) | Err(Errno::EINTR) => return Ok(ReadOutcome::Timeout),
                Ok(_) => fds[0].revents().unwrap_or(PollFlags::empty()),
                Err(e) => return Err(io::Error::from(e)),
            }
        };
        if !revents.contains(PollFlags::POLLIN) {
            if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                return Ok(ReadOutcome::HangUp);
            }
            return Ok(ReadOutcome::Timeout);
        }
        match self.file.read(buf) {
            Ok(0) => Ok(ReadOutcome::HangUp),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(ReadOutcome::Timeout)
            }
            Err(e) if is_hangup(&e) => Ok(ReadOutcome::HangUp),
            Err(e) => Err(e),
        }
    }

    /// Writes everything or fails: `TimedOut` when the other side stops reading for `timeout`,
    /// `BrokenPipe` on hang-up.
    pub fn write_all_timeout(&mut self, mut data: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while !data.is_empty() {
            match self.file.write(data) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "serial write returned 0",
                    ));
                }
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "serial output stalled",
                        ));
                    }
                    let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLOUT)];
                    let t = PollTimeout::try_from(left.min(Duration::from_millis(100)))
                        .unwrap_or(PollTimeout::MAX);
                    match poll(&mut fds, t) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(io::Error::from(e)),
                    }
                    let rev = fds[0].revents().unwrap_or(PollFlags::empty());
                    if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
                        && !rev.contains(PollFlags::POLLOUT)
                    {
                        return Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "serial line hung up",
                        ));
                    }
                }
                Err(e) if is_hangup(&e) => {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for SerialPort {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // Best effort: after a hang-up the line may already be gone.
            let _ = termios::tcsetattr(self.file.as_fd(), SetArg::TCSANOW, &saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bauds() {
        let b = supported_bauds();
        assert!(b.contains(&9600) && b.contains(&115_200));
        #[cfg(target_os = "linux")]
        assert!(b.contains(&4_000_000) && b.contains(&921_600));
        assert!(LineConfig::new(12345).is_err());
        assert_eq!(LineConfig::new(57600).map(|c| c.baud).ok(), Some(57600));
    }
}
