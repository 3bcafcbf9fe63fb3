//! Pre-tokenizers: hand-written matchers equivalent to the two split regexes, over `&str`, with no
//! allocation and no regex engine.
//!
//! Both regexes are ordered alternations that together match every character, so the text is
//! cut into consecutive pieces: at each position the first alternative that matches (with the
//! backtracking a regex engine would do) gives the piece. [`next_piece`] returns where the piece
//! that starts at a given position ends.
//!
//! **Llama-3** (`llama-bpe`; Hugging Face `tokenizers` runs it with Oniguruma):
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//! **GPT-2** (`gpt2`, `default`):
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//! Classes: `\p{L}` is general category L (Lu Ll Lt Lm Lo), `\p{N}` is N (Nd Nl No), `\s` is the
//! Unicode `White_Space` property (Oniguruma's `\s` is the same set: Zs, Zl, Zp, U+0009..U+000D,
//! U+0085). Categories come from the `unicode-properties` crate, so characters assigned after the
//! Unicode version of the reference engine may classify differently (they are rare in text).
//! Oniguruma's case-insensitive `'s` also matches `'ſ` (U+017F folds to `s`); that is reproduced.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Which split regex to run before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PreTokenizer {
    /// The Llama-3 regex (`tokenizer.ggml.pre` = `llama-bpe`, `llama3`, `llama-v3`, or absent).
    Llama3,
    /// The GPT-2 regex (`tokenizer.ggml.pre` = `gpt2` or `default`).
    Gpt2,
}

/// Character class used by both regexes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Letter,
    Number,
    /// `\s`; the flag says whether it is `\r` or `\n`.
    Space {
        crlf: bool,
    },
    Other,
}

/// Unicode `White_Space`.
fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{D}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            '\r' | '\n' => Class::Space { crlf: true },
            '\t' | '\u{B}' | '\u{C}' | ' ' => Class::Space { crlf: false },
            _ => Class::Other,
        };
    }
    if is_white_space(c) {
        return Class::Space { crlf: false };
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Letter => Class::Letter,
        GeneralCategoryGroup::Number => Class::Number,
        _ => Class::Other,
    }
}

/// A cursor over the characters of `text` from a byte position.
#[derive(Clone, Copy)]
struct At<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> At<'t> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_class(&self) -> Option<Class> {
        self.peek().map(class)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Advances over characters whose class satisfies `f`, at most `max` of them; returns how
    /// many were taken.
    fn run(&mut self, max: usize, f: impl Fn(Class) -> bool) -> usize {
        let mut n = 0;
        while n < max {
            match self.peek() {
                Some(c) if f(class(c)) => {
                    self.pos += c.len_utf8();
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }
}

/// Matches a contraction suffix after an apostrophe (`s t re ve m ll d`); returns its byte length.
fn contraction(rest: &str, case_insensitive: bool) -> Option<usize> {
    let mut it = rest.chars();
    let fold = |c: char| -> char {
        if !case_insensitive {
            c
        } else if c == '\u{17F}' {
            's'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let a = it.next().map(fold)?;
    match a {
        's' | 't' | 'm' | 'd' => Some(rest.chars().next().map_or(1, char::len_utf8)),
        'r' | 'v' | 'l' => {
            let want = match a {
                'r' | 'v' => 'e',
                _ => 'l',
            };
            let b = it.next().map(fold)?;
            // Only ASCII letters reach here for `r v l`, and their partners are ASCII too.
            (b == want).then_some(2)
        }
        _ => None,
    }
}

/// Byte offset where the piece starting at `pos` ends (`pos < text.len()`, `pos` a character
/// boundary). Always returns a character boundary greater than `pos` (or `text.len()`).
pub fn next_piece(pre: PreTokenizer, text: &str, pos: usize) -> usize {
    let end = match pre {
        PreTokenizer::Llama3 => llama3(text, pos),
        PreTokenizer::Gpt2 => gpt2(text, pos),
    };
    match end {
        Some(e) if e > pos && e <= text.len() => e,
        // Unreachable for valid input (the alternations cover every character); fall back to
        // one character so encoding always progresses.
        _ => {
            let mut at = At { text, pos };
            at.bump();
            if at.pos > pos { at.pos } else { text.len() }
        }
    }
}

fn is_space(c: Class) -> bool {
    matches!(c, Class::Space { .. })
}

/// `\s*[\r\n]+`, `\s+(?!\S)` and `\s+` at a whitespace character.
fn whitespace_tail(at: At<'_>, try_crlf: bool) -> Option<usize> {
    let start = at.pos;
    // Scan the whitespace run, remembering the end of the last CR/LF and the start of the last
    // character.
    let mut cur = at;
    let mut last_crlf_end = None;
    let mut last_start = start;
    let mut n = 0usize;
    while let Some(c) = cur.peek() {
        let cl = class(c);
        if !is_space(cl) {
            break;
        }
        last_start = cur.pos;
        cur.pos += c.len_utf8();
        n += 1;
        if cl == (Class::Space { crlf: true }) {
            last_crlf_end = Some(cur.pos);
        }
    }
    if n == 0 {
        return None;
    }
    if try_crlf && let Some(e) = last_crlf_end {
        return Some(e);
    }
    // \s+(?!\S): the whole run at the end of text, else give the last space back.
    if cur.pos == at.text.len() {
        return Some(cur.pos);
    }
    if n >= 2 {
        return Some(last_start);
    }
    // \s+
    Some(cur.pos)
}

fn llama3(text: &str, pos: usize) -> Option<usize> {
    let at = At { text, pos };
    let c0 = at.peek()?;
    let k0 = class(c0);
    let after0 = pos + c0.len_utf8();
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c0 == '\''
        && let Some(n) = text.get(after0..).and_then(|r| contraction(r, true))
    {
        return Some(after0 + n);
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    {
        let mut a = at;
        if matches!(k0, Class::Other | Class::Space { crlf: false }) {
            a.pos = after0;
        }
        if a.run(usize::MAX, |c| c == Class::Letter) > 0 {
            return Some(a.pos);
        }
    }
    // \p{N}{1,3}
    if k0 == Class::Number {
        let mut a = at;
        a.run(3, |c| c == Class::Number);
        return Some(a.pos);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    {
        let mut a = at;
        if c0 == ' ' {
            a.pos = after0;
        }
        if a.run(usize::MAX, |c| c == Class::Other) > 0 {
            a.run(usize::MAX, |c| c == Class::Space { crlf: true });
            return Some(a.pos);
        }
    }
    // \s*[\r\n]+ | \s+(?!\S) | \s+
    whitespace_tail(at, true)
}

fn gpt2(text: &str, pos: usize) -> Option<usize> {
    let at = At { text, pos };
    let c0 = at.peek()?;
    let after0 = pos + c0.len_utf8();
    // 's|'t|'re|'ve|'m|'ll|'d
    if c0 == '\''
        && let Some(n) = text.get(after0..).and_then(|r| contraction(r, false))
    {
        return Some(after0 + n);
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
    let mut a = at;
    if c0 == ' ' {
        a.pos = after0;
    }
    if let Some(k) = a.peek_class()
        && !is_space(k)
    {
        a.run(usize::MAX, |c| c == k);
        return Some(a.pos);
    }
    // \s+(?!\S) | \s+
    whitespace_tail(at, false)
}

/// Iterator over the pieces of `text`.
pub struct Pieces<'t> {
    pre: PreTokenizer,
    text: &'t str,
    pos: usize,
}

impl<'t> Pieces<'t> {
    /// Pieces of `text` under `pre`.
    pub fn new(pre: PreTokenizer, text: &'t str) -> Self {
        Self { pre, text, pos: 0 }
    }
}

impl<'t> Iterator for Pieces<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let end = next_piece(self.pre, self.text, start);
        self.pos = end;
        self.text.get(start..end)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn split(pre: PreTokenizer, s: &str) -> Vec<&str> {
        let v: Vec<&str> = Pieces::new(pre, s).collect();
        assert_eq!(v.concat(), s);
        v
    }

    fn l3(s: &str) -> Vec<&str> {
        split(PreTokenizer::Llama3, s)
    }

    fn g2(s: &str) -> Vec<&str> {
        split(PreTokenizer::Gpt2, s)
    }

    #[test]
    fn llama3_contractions() {
        assert_eq!(
            l3("I'm here, aren't we?"),
            ["I", "'m", " here", ",", " aren", "'t", " we", "?"]
        );
        assert_eq!(l3("I'M HERE"), ["I", "'M", " HERE"]);
        assert_eq!(l3("x'ſt"), ["x", "'ſ", "t"]);
        assert_eq!(l3("they'LL we'Ve"), ["they", "'LL", " we", "'Ve"]);
        assert_eq!(l3("'sup"), ["'s", "up"]);
        assert_eq!(l3("'x"), ["'x"]);
        assert_eq!(l3("''"), ["''"]);
        assert_eq!(l3("'"), ["'"]);
        assert_eq!(l3("x'K"), ["x", "'K"]);
    }

    #[test]
    fn llama3_numbers() {
        assert_eq!(l3("12345 678 9"), ["123", "45", " ", "678", " ", "9"]);
        assert_eq!(l3("1000000"), ["100", "000", "0"]);
        assert_eq!(l3("abc123"), ["abc", "123"]);
        assert_eq!(l3("Ⅻ②"), ["Ⅻ②"]);
        assert_eq!(l3("٣٤٥٦"), ["٣٤٥", "٦"]);
        assert_eq!(l3("3.14"), ["3", ".", "14"]);
    }

    #[test]
    fn llama3_whitespace() {
        assert_eq!(l3("trailing spaces   "), ["trailing", " spaces", "   "]);
        assert_eq!(l3("   leading"), ["  ", " leading"]);
        assert_eq!(l3("a\n\n\nb"), ["a", "\n\n\n", "b"]);
        assert_eq!(l3("a  \n  b"), ["a", "  \n", " ", " b"]);
        assert_eq!(l3("a \n \n  "), ["a", " \n \n", "  "]);
        assert_eq!(l3("x\r\ny\rz"), ["x", "\r\n", "y", "\r", "z"]);
        assert_eq!(l3("tab\tsep"), ["tab", "\tsep"]);
        assert_eq!(l3("a 1"), ["a", " ", "1"]);
        assert_eq!(l3(" "), [" "]);
        assert_eq!(l3("\u{A0}non"), ["\u{A0}non"]);
        assert_eq!(l3("a\u{3000}\u{3000}b"), ["a", "\u{3000}", "\u{3000}b"]);
        assert_eq!(l3("\n x"), ["\n", " x"]);
    }

    #[test]
    fn llama3_punctuation_and_unicode() {
        assert_eq!(l3("!!!???"), ["!!!???"]);
        assert_eq!(l3("a !!\n\nb"), ["a", " !!\n\n", "b"]);
        assert_eq!(l3("a.\r\n"), ["a", ".\r\n"]);
        assert_eq!(l3("héllo wörld"), ["héllo", " wörld"]);
        assert_eq!(l3("日本語のテキスト"), ["日本語のテキスト"]);
        assert_eq!(l3("Привет, мир!"), ["Привет", ",", " мир", "!"]);
        assert_eq!(l3("🚀🔥 x"), ["🚀🔥", " x"]);
        assert_eq!(l3("$HOME"), ["$HOME"]);
        assert_eq!(l3("{\"a"), ["{\"", "a"]);
        assert_eq!(l3("\u{200B}zero"), ["\u{200B}zero"]);
        assert_eq!(l3("\u{0}\u{1} c"), ["\u{0}\u{1}", " c"]);
    }

    #[test]
    fn gpt2_pieces() {
        assert_eq!(g2("I'm HERE'S 123456 x"), ["I", "'m", " HERE", "'", "S", " 123456", " x"]);
        assert_eq!(g2("a  b   "), ["a", " ", " b", "   "]);
        assert_eq!(g2("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(g2("x !!?"), ["x", " !!?"]);
        assert_eq!(g2("\tword"), ["\t", "word"]);
        assert_eq!(g2("ab12"), ["ab", "12"]);
    }
}
