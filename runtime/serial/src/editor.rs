//! The line editor: a pure state machine from input bytes to events and echo bytes.
//!
//! It is what a serial console needs and no more: printable UTF-8 is echoed (when echo is on);
//! Backspace (0x08) and DEL (0x7F) erase one character; CR, LF and CRLF each end one line;
//! Ctrl-C (0x03) discards the line and yields [`Event::Interrupt`]; Ctrl-D (0x04) on an empty line
//! yields [`Event::Eof`]. Escape sequences (arrow keys, function keys: `ESC [ ... final`,
//! `ESC O x`, `ESC x`) are dropped whole. Line noise (invalid UTF-8, other control bytes) is
//! dropped and counted, and reported once per line as [`Event::Noise`] before the line itself.
//! The line buffer is bounded; a longer line is discarded up to its end and reported as
//! [`Event::Overflow`] (with an immediate notice in the echo), never truncated silently.

/// Default bound on one line, bytes.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// Bytes dropped on one line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Noise {
    /// Bytes that were not valid UTF-8.
    pub invalid_utf8: usize,
    /// Control bytes with no meaning here (NUL, BEL, Ctrl-U, ...).
    pub control: usize,
    /// Whole escape sequences (arrow keys etc.).
    pub escapes: usize,
}

impl Noise {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A one-line human description.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.escapes > 0 {
            parts.push(format!(
                "{} escape sequence(s) (arrow/function keys are not supported)",
                self.escapes
            ));
        }
        if self.invalid_utf8 > 0 {
            parts.push(format!("{} invalid UTF-8 byte(s)", self.invalid_utf8));
        }
        if self.control > 0 {
            parts.push(format!("{} control byte(s)", self.control));
        }
        format!("ignored {}", parts.join(", "))
    }
}

/// What the editor produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete line (without its terminator).
    Line(String),
    /// Ctrl-C: the partial line was discarded.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    /// A line longer than the bound was discarded; `bytes` is how long it was.
    Overflow {
        /// Length of the discarded line in bytes (saturating).
        bytes: usize,
        /// The bound.
        limit: usize,
    },
    /// Bytes dropped from the line that just ended (reported before its `Line`).
    Noise(Noise),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    Start,
    Csi(u8),
    Ss3,
}

/// The editor state.
#[derive(Clone, Debug)]
pub struct LineEditor {
    line: String,
    max: usize,
    echo: bool,
    out: Vec<u8>,
    utf8: [u8; 4],
    utf8_have: usize,
    utf8_need: usize,
    esc: Esc,
    last_cr: bool,
    overflow: Option<usize>,
    noise: Noise,
}

impl LineEditor {
    /// An editor with a line bound of `max_line` bytes; `echo` for interactive terminals.
    pub fn new(max_line: usize, echo: bool) -> Self {
        Self {
            line: String::new(),
            max: max_line.max(1),
            echo,
            out: Vec::new(),
            utf8: [0; 4],
            utf8_have: 0,
            utf8_need: 0,
            esc: Esc::None,
            last_cr: false,
            overflow: None,
            noise: Noise::default(),
        }
    }

    /// Bytes to send back (echo, erase sequences, notices). Clears the buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The partial line typed so far.
    pub fn partial(&self) -> &str {
        &self.line
    }

    /// Forgets the partial line and any pending state (after a reconnect).
    pub fn clear(&mut self) {
        let echo = self.echo;
        *self = Self::new(self.max, echo);
    }

    /// Feeds a run of bytes.
    pub fn feed_all(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        for &b in bytes {
            self.feed(b, events);
        }
    }

    /// Feeds one byte; appends any resulting events.
    pub fn feed(&mut self, b: u8, events: &mut Vec<Event>) {
        let after_cr = std::mem::take(&mut self.last_cr);
        // Escape sequences first: they swallow bytes that would otherwise mean something.
        match self.esc {
            Esc::None => {}
            Esc::Start => {
                self.esc = match b {
                    b'[' => Esc::Csi(0),
                    b'O' => Esc::Ss3,
                    0x20..=0x7E => {
                        self.noise.escapes = self.noise.escapes.saturating_add(1);
                        Esc::None
                    }
                    _ => {
                        // ESC then a control byte: count the ESC, handle the byte normally.
                        self.noise.control = self.noise.control.saturating_add(1);
                        self.esc = Esc::None;
                        return self.feed(b, events);
                    }
                };
                return;
            }
            Esc::Csi(n) => {
                match b {
                    0x40..=0x7E => {
                        self.noise.escapes = self.noise.escapes.saturating_add(1);
                        self.esc = Esc::None;
                    }
                    0x20..=0x3F if n < 32 => self.esc = Esc::Csi(n + 1),
                    _ => {
                        self.noise.escapes = self.noise.escapes.saturating_add(1);
                        self.esc = Esc::None;
                        if !(0x20..=0x3F).contains(&b) {
                            return self.feed(b, events);
                        }
                    }
                }
                return;
            }
            Esc::Ss3 => {
                self.noise.escapes = self.noise.escapes.saturating_add(1);
                self.esc = Esc::None;
                if !(0x20..=0x7E).contains(&b) {
                    return self.feed(b, events);
                }
                return;
            }
        }
        // A pending UTF-8 sequence.
        if self.utf8_need > 0 {
            if (0x80..=0xBF).contains(&b) {
                self.utf8[self.utf8_have] = b;
                self.utf8_have += 1;
                if self.utf8_have == self.utf8_need {
                    let (have, bytes) = (self.utf8_have, self.utf8);
                    self.utf8_need = 0;
                    self.utf8_have = 0;
                    match std::str::from_utf8(&bytes[..have]) {
                        Ok(s) => {
                            let s = s.to_string();
                            self.push_text(&s);
                        }
                        Err(_) => {
                            self.noise.invalid_utf8 = self.noise.invalid_utf8.saturating_add(have)
                        }
                    }
                }
                return;
            }
            self.noise.invalid_utf8 = self.noise.invalid_utf8.saturating_add(self.utf8_have);
            self.utf8_need = 0;
            self.utf8_have = 0;
        }
        match b {
            b'\r' => {
                self.end_line(events);
                self.last_cr = true;
            }
            b'\n' => {
                if !after_cr {
                    self.end_line(events);
                }
            }
            0x03 => {
                self.line.clear();
                self.overflow = None;
                self.noise = Noise::default();
                if self.echo {
                    self.out.extend_from_slice(b"^C\r\n");
                }
                events.push(Event::Interrupt);
            }
            0x04 => {
                if self.line.is_empty() && self.overflow.is_none() {
                    events.push(Event::Eof);
                }
            }
            0x08 | 0x7F => {
                if self.overflow.is_none() && self.line.pop().is_some() && self.echo {
                    self.out.extend_from_slice(b"\x08 \x08");
                }
            }
            0x1B => self.esc = Esc::Start,
            b'\t' => self.push_text(" "),
            0x00..=0x1F => self.noise.control = self.noise.control.saturating_add(1),
            0x20..=0x7E => self.push_text(char::from(b).encode_utf8(&mut [0; 4])),
            0xC2..=0xDF => self.start_utf8(b, 2),
            0xE0..=0xEF => self.start_utf8(b, 3),
            0xF0..=0xF4 => self.start_utf8(b, 4),
            _ => self.noise.invalid_utf8 = self.noise.invalid_utf8.saturating_add(1),
        }
    }

    fn start_utf8(&mut self, b: u8, need: usize) {
        self.utf8[0] = b;
        self.utf8_have = 1;
        self.utf8_need = need;
    }

    fn push_text(&mut self, s: &str) {
        if let Some(n) = self.overflow.as_mut() {
            *n = n.saturating_add(s.len());
            return;
        }
        if self.line.len() + s.len() > self.max {
            self.overflow = Some(self.line.len() + s.len());
            self.line.clear();
            if self.echo {
                self.out.extend_from_slice(
                    format!(
                        "\r\n[line too long: over {} bytes; discarding it up to Enter]",
                        self.max
                    )
                    .as_bytes(),
                );
            }
            return;
        }
        // Only reached for valid, non-control text.
        self.line.push_str(s);
        if self.echo {
            self.out.extend_from_slice(s.as_bytes());
        }
    }

    fn end_line(&mut self, events: &mut Vec<Event>) {
        if self.utf8_have > 0 {
            self.noise.invalid_utf8 = self.noise.invalid_utf8.saturating_add(self.utf8_have);
            self.utf8_have = 0;
            self.utf8_need = 0;
        }
        if self.echo {
            self.out.extend_from_slice(b"\r\n");
        }
        let noise = std::mem::take(&mut self.noise);
        if !noise.is_empty() {
            events.push(Event::Noise(noise));
        }
        match self.overflow.take() {
            Some(bytes) => events.push(Event::Overflow { bytes, limit: self.max }),
            None => events.push(Event::Line(std::mem::take(&mut self.line))),
        }
    }
}

/// A slash command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `/reset`: forget the conversation.
    Reset,
    /// `/system TEXT`: set the system prompt (empty clears it); also resets the conversation
    /// if the backend requires.
    System(String),
    /// `/temp X`: sampling temperature (0 = greedy).
    Temp(f32),
    /// `/stats`: backend statistics.
    Stats,
    /// `/help`: list commands.
    Help,
    /// `/quit`: end the session.
    Quit,
}

/// A parsed line.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Blank line.
    Empty,
    /// A prompt for the model. A line starting with `//` is a prompt starting with `/`.
    Prompt(String),
    /// A slash command.
    Command(Command),
    /// A malformed command, with the message to show.
    Invalid(String),
}

/// The `/help` text.
pub const HELP: &str = "commands: /reset  /system TEXT  /temp X  /stats  /help  /quit\r\n\
Ctrl-C stops generation; Ctrl-D on an empty line ends the session; start a prompt with // to \
send a leading /";

/// Largest accepted temperature.
pub const MAX_TEMP: f32 = 5.0;

/// Parses a temperature argument.
pub fn parse_temp(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(t) if t.is_finite() && (0.0..=MAX_TEMP).contains(&t) => Ok(t),
        _ => Err(format!("usage: /temp X with 0 <= X <= {MAX_TEMP} (0 = greedy); got {s:?}")),
    }
}

/// Parses one line into an [`Input`].
pub fn parse_input(line: &str) -> Input {
    let t = line.trim();
    if t.is_empty() {
        return Input::Empty;
    }
    if let Some(rest) = t.strip_prefix("//") {
        return Input::Prompt(format!("/{rest}"));
    }
    let Some(cmd) = t.strip_prefix('/') else {
        return Input::Prompt(t.to_string());
    };
    let (name, arg) = match cmd.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (cmd, ""),
    };
    let no_arg = |c: Command| {
        if arg.is_empty() {
            Input::Command(c)
        } else {
            Input::Invalid(format!("/{name} takes no argument"))
        }
    };
    match name {
        "reset" => no_arg(Command::Reset),
        "stats" => no_arg(Command::Stats),
        "help" | "?" => no_arg(Command::Help),
        "quit" | "exit" => no_arg(Command::Quit),
        "system" => Input::Command(Command::System(arg.to_string())),
        "temp" => match parse_temp(arg) {
            Ok(t) => Input::Command(Command::Temp(t)),
            Err(e) => Input::Invalid(e),
        },
        _ => Input::Invalid(format!("unknown command /{name}; /help lists commands")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Event> {
        let mut ev = Vec::new();
        ed.feed_all(bytes, &mut ev);
        ev
    }

    #[test]
    fn line_endings() {
        let mut ed = LineEditor::new(64, false);
        let ev = run(&mut ed, b"a\rb\nc\r\nd\n\re\r\r");
        let lines: Vec<Event> = ["a", "b", "c", "d", "", "e", ""]
            .iter()
            .map(|s| Event::Line((*s).to_string()))
            .collect();
        assert_eq!(ev, lines);
    }

    #[test]
    fn echo_and_backspace() {
        let mut ed = LineEditor::new(64, true);
        let ev = run(&mut ed, b"abx\x7f\x08c\r");
        assert_eq!(ev, vec![Event::Line("ac".into())]);
        assert_eq!(ed.take_output(), b"abx\x08 \x08\x08 \x08c\r\n".to_vec());
        // Backspace on an empty line echoes nothing.
        run(&mut ed, b"\x7f");
        assert!(ed.take_output().is_empty());
    }

    #[test]
    fn utf8_and_backspace_whole_char() {
        let mut ed = LineEditor::new(64, false);
        let ev = run(&mut ed, "héllo €\x7f✓\r".as_bytes());
        assert_eq!(ev, vec![Event::Line("héllo ✓".into())]);
    }

    #[test]
    fn ctrl_c_and_ctrl_d() {
        let mut ed = LineEditor::new(64, true);
        assert_eq!(run(&mut ed, b"abc\x03"), vec![Event::Interrupt]);
        assert_eq!(ed.partial(), "");
        assert_eq!(run(&mut ed, b"x\x04"), vec![]); // not empty: ignored
        assert_eq!(run(&mut ed, b"\x7f\x04"), vec![Event::Eof]);
    }

    #[test]
    fn escapes_and_noise_dropped_and_reported() {
        let mut ed = LineEditor::new(64, true);
        // Up arrow, F5 (CSI 15~), SS3 F1, Alt-x, a NUL, a BEL, invalid bytes, truncated UTF-8.
        let ev = run(&mut ed, b"\x1b[Ah\x1b[15~i\x1bOP\x1bx\x00\x07\xff\xc3(\r");
        assert_eq!(
            ev,
            vec![
                Event::Noise(Noise { invalid_utf8: 2, control: 2, escapes: 4 }),
                Event::Line("hi(".into())
            ]
        );
        assert_eq!(ed.take_output(), b"hi(\r\n".to_vec());
        // The count is per line.
        assert_eq!(run(&mut ed, b"ok\r"), vec![Event::Line("ok".into())]);
    }

    #[test]
    fn overlong_utf8_and_surrogates_rejected() {
        let mut ed = LineEditor::new(64, false);
        let ev = run(&mut ed, b"\xe0\x80\x80\xed\xa0\x80a\r");
        assert_eq!(
            ev,
            vec![
                Event::Noise(Noise { invalid_utf8: 6, ..Noise::default() }),
                Event::Line("a".into())
            ]
        );
    }

    #[test]
    fn overflow_discards_whole_line() {
        let mut ed = LineEditor::new(8, true);
        let ev = run(&mut ed, b"0123456789abc\r");
        assert_eq!(ev, vec![Event::Overflow { bytes: 13, limit: 8 }]);
        let out = String::from_utf8(ed.take_output()).expect("ascii");
        assert!(out.starts_with("01234567\r\n[line too long: over 8 bytes"), "{out}");
        assert_eq!(run(&mut ed, b"ok\r"), vec![Event::Line("ok".into())]);
    }

    #[test]
    fn commands() {
        assert_eq!(parse_input("  "), Input::Empty);
        assert_eq!(parse_input("hello"), Input::Prompt("hello".into()));
        assert_eq!(parse_input("//etc/passwd"), Input::Prompt("/etc/passwd".into()));
        assert_eq!(parse_input("/reset"), Input::Command(Command::Reset));
        assert_eq!(
            parse_input("/system Be brief."),
            Input::Command(Command::System("Be brief.".into()))
        );
        assert_eq!(parse_input("/system"), Input::Command(Command::System(String::new())));
        assert_eq!(parse_input("/temp 0.7"), Input::Command(Command::Temp(0.7)));
        assert!(matches!(parse_input("/temp hot"), Input::Invalid(_)));
        assert!(matches!(parse_input("/temp -1"), Input::Invalid(_)));
        assert!(matches!(parse_input("/temp NaN"), Input::Invalid(_)));
        assert_eq!(parse_input("/stats"), Input::Command(Command::Stats));
        assert_eq!(parse_input("/help"), Input::Command(Command::Help));
        assert_eq!(parse_input("/quit"), Input::Command(Command::Quit));
        assert!(matches!(parse_input("/quit now"), Input::Invalid(_)));
        assert!(matches!(parse_input("/frobnicate"), Input::Invalid(m) if m.contains("/help")));
    }
}
