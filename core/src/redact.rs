//! Cutting credentials out of text a server sent back, and making such text
//! safe to quote in an error ([`clean`], [`excerpt`]).
//!
//! A leaf: nothing here knows about configurations or requests (the caller
//! says which values are credentials), so every place that quotes server text
//! uses the same matcher.
//!
//! A server may echo what it received in any escaped form: an HTML error page
//! (`&amp;`, `&#x2F;`), JSON (`\/`, `\u0041`), a URL or form (`%2f` or `%2F`,
//! `+` for a space). The matcher decodes each character of the text in any of
//! these forms, mixed freely, while comparing it with a credential, so
//! `a%2Fb\u0026c` matches the credential `a/b&c`. One level of escaping is
//! undone (`%252F` is not `/`).

use std::collections::HashSet;
use std::fmt;

/// What a cut-out credential is replaced with.
pub(crate) const REDACTED: &str = "[redacted]";

/// Values shorter than this are not cut: they would garble ordinary text
/// (and a credential that short protects nothing).
pub(crate) const MIN_LEN: usize = 4;

/// How many characters of a body an error message quotes.
const EXCERPT_CHARS: usize = 200;

/// The credentials a request carried (or a configuration holds), to be cut
/// out of any text quoted from the answer.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Credentials {
    values: Vec<String>,
}

/// They are copies of secrets: overwritten when dropped.
impl Drop for Credentials {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.values);
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({} values)", self.values.len())
    }
}

impl Credentials {
    /// No credentials: what the standalone parsers' requests carry.
    pub(crate) const NONE: &'static Credentials = &Credentials { values: Vec::new() };

    /// Adds a value (ignored when shorter than [`MIN_LEN`] bytes or already there).
    pub(crate) fn add(&mut self, value: &str) {
        if value.len() >= MIN_LEN && !self.values.iter().any(|v| v == value) {
            self.values.push(value.to_owned());
        }
    }

    /// The same set with `value` added.
    #[cfg(test)]
    fn with(mut self, value: &str) -> Self {
        self.add(value);
        self
    }

    /// `text` with every occurrence of every credential, in any escaped
    /// form, replaced by `[redacted]`.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_owned();
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut at = 0;
        while at < bytes.len() {
            if text.is_char_boundary(at) {
                let end = self
                    .values
                    .iter()
                    .filter_map(|value| match_at(bytes, at, value.as_bytes()))
                    .filter(|&end| text.is_char_boundary(end))
                    .max();
                if let Some(end) = end {
                    out.push_str(&text[copied..at]);
                    out.push_str(REDACTED);
                    copied = end;
                    at = end;
                    continue;
                }
            }
            at += 1;
        }
        out.push_str(&text[copied..]);
        out
    }
}

/// Where a match of `credential` starting at `start` ends, if one does.
///
/// A search over (text position, credential position): a `%` or `\` in the
/// text may stand for itself or start an escape, so both are tried; states
/// already seen are skipped, which bounds the work by `text × credential`.
fn match_at(text: &[u8], start: usize, credential: &[u8]) -> Option<usize> {
    // Nearly every start fails on the first character: decide that without allocating.
    if !units(text, start).any(|(_, decoded)| credential.starts_with(decoded.as_slice())) {
        return None;
    }
    let mut stack = vec![(start, 0)];
    let mut seen = HashSet::new();
    while let Some((at, matched)) = stack.pop() {
        if matched == credential.len() {
            return Some(at);
        }
        if !seen.insert((at, matched)) {
            continue;
        }
        for (len, decoded) in units(text, at) {
            if credential[matched..].starts_with(decoded.as_slice()) {
                stack.push((at + len, matched + decoded.len));
            }
        }
    }
    None
}

/// Up to four decoded bytes (one UTF-8 character at most).
#[derive(Clone, Copy)]
struct Decoded {
    bytes: [u8; 4],
    len: usize,
}

impl Decoded {
    fn byte(byte: u8) -> Self {
        Decoded {
            bytes: [byte, 0, 0, 0],
            len: 1,
        }
    }

    fn char(c: char) -> Self {
        let mut bytes = [0; 4];
        let len = c.encode_utf8(&mut bytes).len();
        Decoded { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The readings of the text at `at`: the byte itself, and the escape that
/// starts there, if any, as (bytes of text consumed, what they stand for).
fn units(text: &[u8], at: usize) -> impl Iterator<Item = (usize, Decoded)> {
    let literal = text.get(at).map(|&byte| (1, Decoded::byte(byte)));
    literal.into_iter().chain(escape(text, at))
}

fn escape(text: &[u8], at: usize) -> Option<(usize, Decoded)> {
    let rest = text.get(at..)?;
    match *rest.first()? {
        b'+' => Some((1, Decoded::byte(b' '))),
        b'%' => Some((3, Decoded::byte(hex(rest.get(1..3)?)? as u8))),
        b'\\' => backslash(rest),
        b'&' => entity(rest),
        _ => None,
    }
}

/// JSON and JavaScript escapes: `\/`, `\"`, `\\`, `\n`…, `\uXXXX` (with
/// surrogate pairs), `\xHH`.
fn backslash(rest: &[u8]) -> Option<(usize, Decoded)> {
    let simple = |byte: u8| Some((2, Decoded::byte(byte)));
    match *rest.get(1)? {
        b'/' => simple(b'/'),
        b'\\' => simple(b'\\'),
        b'"' => simple(b'"'),
        b'\'' => simple(b'\''),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'b' => simple(0x08),
        b'f' => simple(0x0c),
        b'x' => Some((4, Decoded::char(char::from_u32(hex(rest.get(2..4)?)?)?))),
        b'u' => {
            let unit = hex(rest.get(2..6)?)?;
            if (0xD800..0xDC00).contains(&unit) {
                // A high surrogate: only a following `\uDC00`–`\uDFFF` completes it.
                let low = match rest.get(6..8)? {
                    b"\\u" => hex(rest.get(8..12)?)?,
                    _ => return None,
                };
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
                Some((12, Decoded::char(c)))
            } else {
                Some((6, Decoded::char(char::from_u32(unit)?)))
            }
        }
        _ => None,
    }
}

/// HTML character references: `&#NN;`, `&#xHH;` and the named ones for
/// characters found in credentials (base64 `+/=`, URL and JSON punctuation).
fn entity(rest: &[u8]) -> Option<(usize, Decoded)> {
    let end = rest.iter().take(12).position(|&b| b == b';')?;
    let name = &rest[1..end];
    let c = if let Some(number) = name.strip_prefix(b"#") {
        let value = match number.first()? {
            b'x' | b'X' => hex(&number[1..])?,
            _ => parse_digits(number, 10, 7)?,
        };
        char::from_u32(value)?
    } else {
        match name {
            b"amp" | b"AMP" => '&',
            b"lt" | b"LT" => '<',
            b"gt" | b"GT" => '>',
            b"quot" | b"QUOT" => '"',
            b"apos" => '\'',
            b"plus" => '+',
            b"sol" => '/',
            b"equals" => '=',
            b"colon" => ':',
            b"percnt" => '%',
            b"num" => '#',
            b"bsol" => '\\',
            _ => return None,
        }
    };
    Some((end + 1, Decoded::char(c)))
}

/// Hexadecimal digits, either case; `None` if empty, too long or not hex.
fn hex(digits: &[u8]) -> Option<u32> {
    parse_digits(digits, 16, 6)
}

/// Digits in `radix` (letters in either case), at most `max_len` of them so
/// the value cannot overflow; `None` if empty, too long or not such digits.
fn parse_digits(digits: &[u8], radix: u32, max_len: usize) -> Option<u32> {
    if digits.is_empty() || digits.len() > max_len {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |value, &d| Some(value * radix + char::from(d).to_digit(radix)?))
}

/// Keeps printable characters only, at most `max` of them.
pub(crate) fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The start of a body for an error message, with the credentials cut out.
///
/// They are cut from the whole body before it is shortened, so a credential
/// straddling the cut cannot leave its first characters behind.
pub(crate) fn excerpt(body: &[u8], credentials: &Credentials) -> String {
    let text = credentials.redact(&String::from_utf8_lossy(body));
    clean(text.trim(), EXCERPT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(credential: &str, text: &str) -> String {
        Credentials::default().with(credential).redact(text)
    }

    #[test]
    fn every_escaped_form_is_cut() {
        let secret = "s3cr+t/&\"é 🔑x";
        let forms = [
            "s3cr+t/&\"é 🔑x",
            // form encoding, both hex cases, `+` for space
            "s3cr%2Bt%2F%26%22%C3%A9+%F0%9F%94%91x",
            "s3cr%2bt%2f%26%22%c3%a9%20%f0%9f%94%91x",
            // JSON: `\/`, `\"`, `\uXXXX` (with a surrogate pair), mixed case
            "s3cr+t\\/&\\\"\\u00e9 \\uD83D\\uDD11x",
            "\\u0073\\u0033cr\\u002Bt\\/\\u0026\\u0022\\u00E9\\u0020\\ud83d\\udd11\\u0078",
            // HTML
            "s3cr&plus;t&#x2F;&amp;&quot;&#233; &#128273;x",
            "s3cr+t&sol;&AMP;&#34;é&#32;🔑x",
            // JavaScript `\x`
            "s3cr\\x2bt/\\x26\"é 🔑x",
        ];
        for form in forms {
            let text = format!("error: got {form}, rejected");
            assert_eq!(cut(secret, &text), "error: got [redacted], rejected", "{form}");
        }
    }

    #[test]
    fn text_around_and_between_matches_is_kept() {
        assert_eq!(
            cut("abcd", "abcdabcd-abc-ab%63d"),
            "[redacted][redacted]-abc-[redacted]"
        );
        assert_eq!(
            cut("abcd", "no match here: abc d, %61bc"),
            "no match here: abc d, %61bc"
        );
        assert_eq!(cut("a%41b", "x a%41b y a%2541b"), "x [redacted] y [redacted]");
        assert_eq!(cut("abc", "abc"), "abc", "too short to cut");
        assert_eq!(Credentials::default().redact("anything"), "anything");
    }

    #[test]
    fn the_longest_of_overlapping_credentials_wins() {
        let credentials = Credentials::default().with("abcd").with("abcdefgh");
        assert_eq!(credentials.redact("-abcdefgh-abcd-"), "-[redacted]-[redacted]-");
    }

    #[test]
    fn malformed_escapes_are_text() {
        for text in [
            "%",
            "%4",
            "%zz",
            "\\",
            "\\u12",
            "\\uD83D",
            "\\uD83Dx",
            "&",
            "&#;",
            "&#xZZ;",
            "&unknown;",
            "é",
        ] {
            assert_eq!(cut("secret", text), text);
        }
    }

    #[test]
    fn pathological_inputs_finish() {
        let credential = "%".repeat(40) + "!";
        let text = "%25".repeat(5_000);
        assert_eq!(cut(&credential, &text), text);
        let debug = format!("{:?}", Credentials::default().with("secret value"));
        assert!(!debug.contains("secret"), "{debug}");
    }
}
