//! [`StreamDecoder`]: turns token bytes, arriving one token at a time, into valid UTF-8 text.
//!
//! A byte-level token can end in the middle of a character (an emoji is often two or three
//! tokens). The decoder holds back an incomplete sequence (at most 3 bytes) until the rest
//! arrives, and replaces invalid bytes by U+FFFD exactly as `String::from_utf8_lossy` does on
//! the whole stream (one U+FFFD per maximal invalid subpart), so the concatenated output always
//! equals the lossy decoding of the concatenated input. [`StreamDecoder::flush`] ends the stream
//! (a trailing incomplete sequence becomes U+FFFD).

use super::TokenizeError;

const REPLACEMENT: &str = "\u{FFFD}";

/// Width of the UTF-8 sequence that lead byte `b` starts (0: not a lead byte).
fn width(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Whether `b` may follow `prefix` (a proper prefix of a sequence, `prefix.len() >= 1`).
fn continues(prefix: &[u8], b: u8) -> bool {
    let (lo, hi) = match (prefix.first(), prefix.len()) {
        (Some(0xE0), 1) => (0xA0, 0xBF),
        (Some(0xED), 1) => (0x80, 0x9F),
        (Some(0xF0), 1) => (0x90, 0xBF),
        (Some(0xF4), 1) => (0x80, 0x8F),
        _ => (0x80, 0xBF),
    };
    (lo..=hi).contains(&b)
}

/// Streaming UTF-8 assembler: holds back an incomplete character (at most 3 bytes) between
/// pushes and replaces invalid bytes by U+FFFD exactly like `String::from_utf8_lossy` on the whole
/// stream; [`StreamDecoder::flush`] ends the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamDecoder {
    pending: [u8; 4],
    len: u8,
}

impl StreamDecoder {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self { pending: [0; 4], len: 0 }
    }

    /// Bytes held back (0..=3).
    pub fn pending(&self) -> usize {
        usize::from(self.len)
    }

    /// Most bytes of text one [`StreamDecoder::push_to`] of `n` input bytes can produce.
    pub const fn max_output(n: usize) -> usize {
        // Worst case: every byte (and the up to 3 pending ones) becomes a 3-byte U+FFFD.
        n.saturating_add(3).saturating_mul(3)
    }

    /// Feeds `bytes`; `sink` receives the complete text in order (possibly in several pieces,
    /// possibly none).
    pub fn push(&mut self, bytes: &[u8], sink: &mut impl FnMut(&str)) {
        let mut i = 0;
        // Finish the held-back sequence first.
        while self.len > 0 {
            let Some(&b) = bytes.get(i) else { return };
            let held = &self.pending[..usize::from(self.len)];
            if continues(held, b) {
                self.pending[usize::from(self.len)] = b;
                self.len += 1;
                i += 1;
                if usize::from(self.len) == width(self.pending[0]) {
                    let s = core::str::from_utf8(&self.pending[..usize::from(self.len)]);
                    sink(s.unwrap_or(REPLACEMENT));
                    self.len = 0;
                }
            } else {
                // Maximal invalid subpart: one replacement, then `b` is read afresh.
                sink(REPLACEMENT);
                self.len = 0;
            }
        }
        let rest = bytes.get(i..).unwrap_or(&[]);
        let mut at = 0;
        for chunk in rest.utf8_chunks() {
            if !chunk.valid().is_empty() {
                sink(chunk.valid());
            }
            at += chunk.valid().len();
            let bad = chunk.invalid();
            at += bad.len();
            if bad.is_empty() {
                continue;
            }
            let incomplete = at == rest.len()
                && bad.len() < width(bad[0])
                && bad.iter().enumerate().skip(1).all(|(k, &b)| continues(&bad[..k], b));
            if incomplete {
                self.pending[..bad.len()].copy_from_slice(bad);
                self.len = bad.len() as u8;
            } else {
                sink(REPLACEMENT);
            }
        }
    }

    /// Ends the stream: a held-back incomplete sequence is emitted as U+FFFD.
    pub fn flush(&mut self, sink: &mut impl FnMut(&str)) {
        if self.len > 0 {
            self.len = 0;
            sink(REPLACEMENT);
        }
    }

    /// [`StreamDecoder::push`] into a buffer: returns the text produced. `out` must hold
    /// [`StreamDecoder::max_output`]`(bytes.len())` bytes, else
    /// [`TokenizeError::OutputTooSmall`] and nothing is consumed.
    pub fn push_to<'b>(
        &mut self,
        bytes: &[u8],
        out: &'b mut [u8],
    ) -> Result<&'b str, TokenizeError> {
        let needed = Self::max_output(bytes.len());
        if out.len() < needed {
            return Err(TokenizeError::OutputTooSmall { needed, capacity: out.len() });
        }
        let mut n = 0;
        self.push(bytes, &mut |s: &str| {
            if let Some(dst) = out.get_mut(n..n + s.len()) {
                dst.copy_from_slice(s.as_bytes());
                n += s.len();
            }
        });
        Ok(core::str::from_utf8(&out[..n]).unwrap_or(""))
    }

    /// [`StreamDecoder::flush`] into a buffer of at least 3 bytes.
    pub fn flush_to<'b>(&mut self, out: &'b mut [u8]) -> Result<&'b str, TokenizeError> {
        if out.len() < REPLACEMENT.len() {
            return Err(TokenizeError::OutputTooSmall { needed: 3, capacity: out.len() });
        }
        let mut n = 0;
        self.flush(&mut |s: &str| {
            if let Some(dst) = out.get_mut(..s.len()) {
                dst.copy_from_slice(s.as_bytes());
                n = s.len();
            }
        });
        Ok(core::str::from_utf8(&out[..n]).unwrap_or(""))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn run(parts: &[&[u8]]) -> String {
        let mut d = StreamDecoder::new();
        let mut s = String::new();
        for p in parts {
            d.push(p, &mut |t: &str| s.push_str(t));
            assert!(d.pending() <= 3);
        }
        d.flush(&mut |t: &str| s.push_str(t));
        s
    }

    #[test]
    fn emoji_split_across_tokens() {
        let rocket = "🚀".as_bytes();
        let mut d = StreamDecoder::new();
        let mut got: Vec<String> = Vec::new();
        for p in [&rocket[..1], &rocket[1..3], &rocket[3..], b" ok"] {
            let mut s = String::new();
            d.push(p, &mut |t: &str| s.push_str(t));
            got.push(s);
        }
        assert_eq!(got, ["", "", "🚀", " ok"]);
        assert_eq!(run(&[b"a\xF0\x9F", b"\x9A\x80b"]), "a🚀b");
    }

    #[test]
    fn invalid_bytes_become_replacement() {
        assert_eq!(run(&[b"a\xFFb"]), "a\u{FFFD}b");
        assert_eq!(run(&[b"\xF0\x9F", b"x"]), "\u{FFFD}x");
        assert_eq!(run(&[b"\xF0\x9F"]), "\u{FFFD}");
        assert_eq!(run(&[b"\xE0", b"\x80"]), "\u{FFFD}\u{FFFD}");
        assert_eq!(run(&[b"\xED\xA0\x80"]), "\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(run(&[b"\xC3", b"\xC3\xA9"]), "\u{FFFD}é");
    }

    #[test]
    fn equals_lossy_on_every_split() {
        let samples: [&[u8]; 4] = [
            "héllo 🚀 wörld 日本".as_bytes(),
            b"\xF0\x9F\x9A\xF0\x9F\x9A\x80\xFF\xC0\xAF\xE2\x82",
            b"\xF4\x90\x80\x80\xF4\x8F\xBF\xBF\xE0\xA0",
            b"\x80\x80abc\xEF\xBF\xBD",
        ];
        for s in samples {
            let want = String::from_utf8_lossy(s);
            for a in 0..=s.len() {
                for b in a..=s.len() {
                    assert_eq!(run(&[&s[..a], &s[a..b], &s[b..]]), want, "{s:?} {a} {b}");
                }
            }
        }
    }

    #[test]
    fn buffer_api() {
        let mut d = StreamDecoder::new();
        let mut buf = [0u8; 64];
        assert_eq!(d.push_to(b"\xE6\x97", &mut buf).unwrap(), "");
        assert_eq!(d.push_to(b"\xA5x", &mut buf).unwrap(), "日x");
        assert!(matches!(
            d.push_to(&[0u8; 30], &mut buf),
            Err(TokenizeError::OutputTooSmall { .. })
        ));
        assert_eq!(d.push_to(b"\xE6", &mut buf).unwrap(), "");
        assert_eq!(d.flush_to(&mut buf).unwrap(), "\u{FFFD}");
        assert_eq!(d.flush_to(&mut buf).unwrap(), "");
    }
}
