//! The GPT-2 "byte-level" alphabet: a bijection between the 256 byte values and 256 printable
//! Unicode characters, used to store arbitrary bytes as vocabulary strings.
//!
//! Bytes that are printable Latin-1 (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the
//! other 68 bytes (controls, space, DEL, the C1 range, NBSP and soft hyphen) are numbered in
//! increasing order and mapped to U+0100 + their rank, so space (0x20, rank 32) becomes `Ġ`
//! (U+0120) and line feed (0x0A, rank 10) becomes `Ċ` (U+010A).
//!
//! Vocabulary tokens and merges are converted to raw bytes once at build time; encoding then
//! works on the text's UTF-8 bytes directly and never needs this table.

/// Whether byte `b` is printable and so stands for itself.
const fn is_self(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Inverse table: for `c` in U+0100..U+0144, the byte it stands for.
const SHIFTED: [u8; 68] = {
    let mut t = [0u8; 68];
    let mut n = 0;
    let mut b = 0usize;
    while b < 256 {
        if !is_self(b as u8) {
            t[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    assert!(n == 68);
    t
};

/// The byte that byte-level character `c` stands for, or `None` if `c` is not in the alphabet.
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 {
        let b = u as u8;
        return is_self(b).then_some(b);
    }
    SHIFTED.get((u - 256) as usize).copied()
}

/// The byte-level character for byte `b`.
pub fn byte_to_char(b: u8) -> char {
    if is_self(b) {
        return char::from(b);
    }
    // Rank of `b` among the non-printable bytes.
    let rank = SHIFTED.iter().position(|&x| x == b).unwrap_or(0);
    char::from_u32(256 + rank as u32).unwrap_or('\u{FFFD}')
}

/// Decodes byte-level string `s` into `out`, returning the number of bytes written, or `None`
/// if `s` is not UTF-8 or uses a character outside the alphabet. `out` must be at least
/// `s.len()` long (every character decodes to one byte and takes at least one); a shorter `out`
/// also gives `None`.
pub fn decode_into(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let s = core::str::from_utf8(s).ok()?;
    let mut n = 0;
    for c in s.chars() {
        *out.get_mut(n)? = char_to_byte(c)?;
        n += 1;
    }
    Some(n)
}

/// Whether `s` is a non-empty, valid byte-level string.
pub fn is_valid(s: &[u8]) -> bool {
    match core::str::from_utf8(s) {
        Ok(s) => !s.is_empty() && s.chars().all(|c| char_to_byte(c).is_some()),
        Err(_) => false,
    }
}

/// The bytes of a string already checked with [`is_valid`] (invalid characters read as 0).
pub fn decoded(s: &[u8]) -> impl Iterator<Item = u8> + Clone + '_ {
    core::str::from_utf8(s).unwrap_or("").chars().map(|c| char_to_byte(c).unwrap_or(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bijection() {
        let mut seen = [false; 256];
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert_eq!(char_to_byte(c), Some(b));
            let cp = c as u32;
            assert!(cp < 0x144);
            assert!(!seen[(cp & 0xFF) as usize] || cp >= 256);
            if cp < 256 {
                seen[cp as usize] = true;
            }
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'\t'), 'ĉ');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        assert_eq!(char_to_byte('a'), Some(b'a'));
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('\u{144}'), None);
        assert_eq!(char_to_byte('日'), None);
    }

    #[test]
    fn decode_strings() {
        let mut out = [0u8; 16];
        let n = decode_into("ĠhelloĊ".as_bytes(), &mut out).unwrap();
        assert_eq!(&out[..n], b" hello\n");
        assert!(decode_into(b"a b", &mut out).is_none());
        assert!(decode_into(&[0xFF], &mut out).is_none());
        assert!(decode_into("abc".as_bytes(), &mut out[..2]).is_none());
        assert!(is_valid("Ġt".as_bytes()));
        assert!(!is_valid(b""));
        assert!(decoded("Ġt".as_bytes()).eq(*b" t"));
    }
}
