//! Piranha's lexical rules for lvs.cf, byte for byte (lvsconfig.c `getNextToks`/`tokenizeString`),
//! and the C conversions the parser relied on (`strtol(.., 0)`, `inet_aton`).
//!
//! Differences from the C code, all deliberate (docs/compatibility.md):
//! - a line ends at `\n`, `\r\n` or a lone `\r`, and `\r\n` counts as ONE line (Piranha 0.8.6 skipped
//!   every second line of a CRLF file and counted each CRLF as two lines);
//! - a lone quote character at the end of a line is a "quotation mismatch" (the C code wrote before
//!   its buffer).

use crate::error::ErrorCode;

/// One token of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The text, without the surrounding quote characters when it was quoted (borrowed from the
    /// file: tokenizing allocates nothing per token).
    pub text: &'a [u8],
    /// `Some(b'"')` or `Some(b'\'')` when the token was quoted.
    pub quote: Option<u8>,
}

impl Token<'_> {
    pub fn is(&self, s: &str) -> bool {
        self.text == s.as_bytes()
    }
}

/// A non-blank, non-comment line split into tokens.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub line: u32,
    pub tokens: Vec<Token<'a>>,
}

/// `isblank()`: the only token separators.
pub fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// C `isspace()` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits the file into lines: (1-based number, bytes without the line end).
pub fn lines(input: &[u8]) -> Vec<(u32, &[u8])> {
    Lines::new(input).collect()
}

/// The lines of a file, one at a time: (1-based number, bytes without the line end). A line ends
/// at `\n`, `\r\n` or a lone `\r`.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    number: u32,
}

impl<'a> Lines<'a> {
    pub fn new(input: &'a [u8]) -> Lines<'a> {
        Lines {
            input,
            pos: 0,
            number: 0,
        }
    }

    /// Byte offset of the next line.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Number of the line last returned (0 before the first).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Goes on at byte `pos`, which must start a line, with `number` the line before it.
    pub(crate) fn resume_at(&mut self, pos: usize, number: u32) {
        self.pos = pos.min(self.input.len());
        self.number = number;
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<(u32, &'a [u8])> {
        let rest = &self.input[self.pos..];
        if rest.is_empty() {
            return None;
        }
        self.number = self.number.saturating_add(1);
        match memchr::memchr2(b'\n', b'\r', rest) {
            Some(i) => {
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                self.pos += i + 1 + usize::from(crlf);
                Some((self.number, &rest[..i]))
            }
            None => {
                self.pos = self.input.len();
                Some((self.number, rest))
            }
        }
    }
}

/// Number of the last line of the file (what "unexpected end of file" reports).
pub fn last_line(input: &[u8]) -> u32 {
    Lines::new(input).last().map(|(n, _)| n).unwrap_or(0)
}

/// Turns the file into statements: blank lines and lines whose first non-blank character is `#`
/// are skipped. A quoting error is returned with its line.
pub fn statements(input: &[u8]) -> Result<Vec<Statement<'_>>, (ErrorCode, u32)> {
    let mut out = Vec::new();
    for (number, text) in Lines::new(input) {
        let first = text.iter().position(|b| !is_blank(*b));
        let Some(first) = first else { continue };
        if text[first] == b'#' {
            continue;
        }
        let tokens = tokenize(&text[first..]).map_err(|code| (code, number))?;
        out.push(Statement {
            line: number,
            tokens,
        });
    }
    Ok(out)
}

/// `tokenizeString()`: `line` starts with a non-blank character.
///
/// A token runs to the next blank. A token that starts with `"` or `'` instead runs from the first
/// blank after its start to the next identical quote character, so it may contain blanks, and the
/// quote must be the last character of the token; there is no escape character.
pub fn tokenize(line: &[u8]) -> Result<Vec<Token<'_>>, ErrorCode> {
    let mut tokens = Vec::with_capacity(4);
    tokenize_into(line, &mut tokens)?;
    Ok(tokens)
}

/// [`tokenize`] into `tokens` (cleared first), so that a parser can reuse one vector for every
/// line of a file.
pub fn tokenize_into<'a>(line: &'a [u8], tokens: &mut Vec<Token<'a>>) -> Result<(), ErrorCode> {
    tokens.clear();
    let n = line.len();
    let mut i = 0;
    while i < n {
        let mut end = i;
        while end < n && !is_blank(line[end]) {
            end += 1;
        }
        let quote = match line[i] {
            q @ (b'"' | b'\'') => Some(q),
            _ => None,
        };
        let text = if let Some(q) = quote {
            let start = i + 1;
            // As in C, the search for the closing quote starts at the first blank after the
            // token's start, not right after the opening quote.
            while end < n && line[end] != q {
                end += 1;
            }
            if end < n && line[end] == q {
                end += 1;
            }
            if end <= start || line[end - 1] != q {
                return Err(ErrorCode::BadQuoting);
            }
            &line[start..end - 1]
        } else {
            &line[i..end]
        };
        tokens.push(Token { text, quote });
        i = end;
        while i < n && is_blank(line[i]) {
            i += 1;
        }
    }
    Ok(())
}

/// Result of [`strtol`]: the value, or why the token is not a whole integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntError {
    /// Trailing characters: Piranha's "integer expected".
    NotInteger,
    /// Does not fit in 64 bits (C clamped it silently; we refuse it).
    Overflow,
}

/// `strtol(tok, &end, 0)` followed by Piranha's `*end == 0` check: optional leading white space,
/// optional sign, `0x` hexadecimal, leading-`0` octal, otherwise decimal. The empty string is 0,
/// as in C.
pub fn strtol(tok: &[u8]) -> Result<i64, IntError> {
    let mut i = 0;
    while i < tok.len() && is_space(tok[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        negative = tok[i] == b'-';
        i += 1;
    }
    let (base, mut j) = if tok.len() > i + 1
        && tok[i] == b'0'
        && (tok[i + 1] == b'x' || tok[i + 1] == b'X')
        && tok.get(i + 2).is_some_and(|b| b.is_ascii_hexdigit())
    {
        (16u32, i + 2)
    } else if i < tok.len() && tok[i] == b'0' {
        (8, i)
    } else {
        (10, i)
    };
    let mut value: i128 = 0;
    let mut any = false;
    while j < tok.len() {
        let Some(d) = (tok[j] as char).to_digit(base) else {
            break;
        };
        any = true;
        value = value * base as i128 + d as i128;
        if value > (i64::MAX as i128) + 1 {
            return Err(IntError::Overflow);
        }
        j += 1;
    }
    if !any {
        // strtol consumed nothing and left `end` at the start: only the empty token passes.
        return if tok.is_empty() {
            Ok(0)
        } else {
            Err(IntError::NotInteger)
        };
    }
    if j != tok.len() {
        return Err(IntError::NotInteger);
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| IntError::Overflow)
}

/// glibc `inet_aton()`: `a.b.c.d`, `a.b.c` (c is 16 bits), `a.b` (b is 24 bits) or `a` (32 bits),
/// each part decimal, `0x` hexadecimal or leading-`0` octal; anything after white space is ignored.
pub fn inet_aton(tok: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut parts: Vec<u64> = Vec::with_capacity(4);
    let mut i = 0;
    let last;
    loop {
        if i >= tok.len() || !tok[i].is_ascii_digit() {
            return None;
        }
        let (base, start) =
            if tok[i] == b'0' && tok.get(i + 1).is_some_and(|b| *b == b'x' || *b == b'X') {
                (16u32, i + 2)
            } else if tok[i] == b'0' {
                (8, i + 1)
            } else {
                (10, i)
            };
        let mut value: u64 = 0;
        // glibc wants at least one digit: `0x` alone is not a number (`0` is, as octal).
        let mut digits = base == 8;
        i = start;
        while i < tok.len() {
            let c = tok[i];
            if c.is_ascii_digit() {
                if base == 8 && (c == b'8' || c == b'9') {
                    return None;
                }
                value = value * base as u64 + (c - b'0') as u64;
            } else if base == 16 && c.is_ascii_hexdigit() {
                value = value * 16 + (c.to_ascii_lowercase() - b'a' + 10) as u64;
            } else {
                break;
            }
            if value > u32::MAX as u64 {
                return None;
            }
            digits = true;
            i += 1;
        }
        if !digits {
            return None;
        }
        if i < tok.len() && tok[i] == b'.' {
            if parts.len() >= 3 || value > 0xff {
                return None;
            }
            parts.push(value);
            i += 1;
        } else {
            last = value;
            break;
        }
    }
    if i < tok.len() && !is_space(tok[i]) {
        return None;
    }
    let max = [0xffff_ffffu64, 0xff_ffff, 0xffff, 0xff][parts.len()];
    if last > max {
        return None;
    }
    let mut addr = last;
    for (k, p) in parts.iter().enumerate() {
        addr |= p << (24 - 8 * k);
    }
    Some(std::net::Ipv4Addr::from(addr as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Result<Vec<(String, Option<char>)>, ErrorCode> {
        tokenize(s.as_bytes()).map(|v| {
            v.into_iter()
                .map(|t| {
                    (
                        String::from_utf8(t.text.to_vec()).unwrap(),
                        t.quote.map(|q| q as char),
                    )
                })
                .collect()
        })
    }

    #[test]
    fn splits_on_blanks_only() {
        let t = toks("port\t=  80").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].0, "80");
        assert_eq!(toks("port=80").unwrap().len(), 1);
    }

    #[test]
    fn quoted_values_keep_blanks_and_record_the_quote() {
        let t = toks(r#"send = "GET / HTTP/1.0\r\n\r\n""#).unwrap();
        assert_eq!(t[2], (r"GET / HTTP/1.0\r\n\r\n".to_string(), Some('"')));
        let t = toks("expect = 'a \"b\" c'").unwrap();
        assert_eq!(t[2], ("a \"b\" c".to_string(), Some('\'')));
        assert_eq!(toks(r#"send = """#).unwrap()[2].0, "");
    }

    #[test]
    fn quoting_errors_as_piranha() {
        assert_eq!(toks(r#"send = "abc"#), Err(ErrorCode::BadQuoting));
        assert_eq!(toks(r#"send = "ab"c"#), Err(ErrorCode::BadQuoting));
        // The closing-quote search starts at the first blank: text after a quoted value breaks it.
        assert_eq!(toks(r#"send = "abc" x"#), Err(ErrorCode::BadQuoting));
        assert_eq!(toks(r#"send = ""#), Err(ErrorCode::BadQuoting));
        // ... or makes extra tokens.
        assert_eq!(toks(r#"send = "a" "b""#).unwrap().len(), 4);
    }

    #[test]
    fn lines_accept_lf_crlf_and_cr() {
        let l = lines(b"a\r\nb\rc\nd");
        let got: Vec<(u32, &[u8])> = l;
        assert_eq!(
            got,
            vec![
                (1, &b"a"[..]),
                (2, &b"b"[..]),
                (3, &b"c"[..]),
                (4, &b"d"[..])
            ]
        );
        assert_eq!(last_line(b"a\n\n"), 2);
    }

    #[test]
    fn statements_skip_comments_and_blank_lines() {
        let s =
            statements(b"# c\n   # indented comment\n\n  \t\nport = 80 # not a comment\n").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, 5);
        assert_eq!(s[0].tokens.len(), 7);
    }

    #[test]
    fn strtol_like_c() {
        assert_eq!(strtol(b"80"), Ok(80));
        assert_eq!(strtol(b"0x50"), Ok(80));
        assert_eq!(strtol(b"0120"), Ok(80));
        assert_eq!(strtol(b"-5"), Ok(-5));
        assert_eq!(strtol(b"+7"), Ok(7));
        assert_eq!(strtol(b""), Ok(0));
        assert_eq!(strtol(b"0"), Ok(0));
        assert_eq!(strtol(b"08"), Err(IntError::NotInteger));
        assert_eq!(strtol(b"0x"), Err(IntError::NotInteger));
        assert_eq!(strtol(b"12abc"), Err(IntError::NotInteger));
        assert_eq!(strtol(b"yes"), Err(IntError::NotInteger));
        assert_eq!(strtol(b"-"), Err(IntError::NotInteger));
        assert_eq!(strtol(b"99999999999999999999999"), Err(IntError::Overflow));
    }

    #[test]
    fn inet_aton_like_glibc() {
        let a = |s: &str| inet_aton(s.as_bytes()).map(|a| a.to_string());
        assert_eq!(a("192.168.1.10").as_deref(), Some("192.168.1.10"));
        assert_eq!(a("10.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.1.2").as_deref(), Some("10.1.0.2"));
        assert_eq!(a("0x7f.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(a("012.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("167772161").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("256.1.1.1"), None);
        assert_eq!(a("1.2.3.4.5"), None);
        assert_eq!(a("1.2.3.256"), None);
        assert_eq!(a("09.1.1.1"), None);
        assert_eq!(a("abc"), None);
        assert_eq!(a(""), None);
        assert_eq!(a("1.2.3.4x"), None);
        assert_eq!(a("0x"), None);
        assert_eq!(a("0x.1"), None);
        assert_eq!(a("0"), Some("0.0.0.0".into()));
    }
}
