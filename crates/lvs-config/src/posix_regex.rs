//! POSIX extended regular expressions from the C library, as Piranha's nanny used them for
//! `--regex` (spec §4.5: `regcomp(REG_EXTENDED)`, then `regexec`).
//!
//! It lives in lvs-config so that `lvsd --config-test` (validation of `expect` with
//! `use_regex = 1`) and nanny (the match itself) agree on what a pattern means. The only `unsafe`
//! code for regular expressions is here. [`PosixRegex`] owns a compiled
//! `regex_t` (`regcomp` with `REG_EXTENDED | REG_NOSUB`: only match or no match is wanted) and
//! frees it with `regfree` when dropped. A pattern that does not compile gives `regerror`'s text.
//!
//! Syntax and meaning are the C library's: POSIX ERE (alternation `|`, groups, `* + ? {n,m}`,
//! bracket expressions with classes such as `[[:digit:]]`, anchors `^ $`) plus glibc's
//! extensions (back-references `\1`, `\w \s \b \< \>`). A backslash before an ordinary character
//! is that character: `\d` is a `d`, not a digit. nanny and lvsd never call `setlocale`, so the C locale
//! applies, as in Piranha: one byte is one character and classes are ASCII. Without `REG_NEWLINE`
//! `.` matches a newline and `^`/`$` match only at the start/end of the whole text.
//!
//! Matching is over a byte slice, not a C string: glibc's `REG_STARTEND` passes the range in
//! `pmatch[0]` (`rm_so = 0`, `rm_eo = len`), so the text needs no terminating NUL and a NUL byte
//! inside it is an ordinary byte (except that `.` never matches NUL: glibc's `RE_DOT_NOT_NULL`).
//! Piranha passed the reply as a C string, so it saw only what came before the first NUL; nanny
//! matches the whole reply (docs/compatibility.md, "nanny"). On C libraries without
//! `REG_STARTEND` (not glibc) the text is copied and cut at its first NUL, Piranha's behaviour.

use std::ffi::{CStr, CString};
use std::fmt;

/// A compiled POSIX extended regular expression.
pub struct PosixRegex {
    /// Boxed so that its address never changes between `regcomp` and `regfree`.
    re: Box<libc::regex_t>,
    /// The source, for `Debug`.
    pattern: Vec<u8>,
}

/// A pattern that did not compile: `regerror`'s message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError(String);

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RegexError {}

impl PosixRegex {
    /// Compiles `pattern` as a POSIX ERE. A pattern cannot contain a NUL byte (it could not come
    /// from a command line either).
    pub fn new(pattern: &[u8]) -> Result<PosixRegex, RegexError> {
        let c = CString::new(pattern)
            .map_err(|_| RegexError("the pattern contains a NUL byte".to_string()))?;
        if expanded_size(pattern) > MAX_EXPANDED {
            return Err(RegexError(format!(
                "too big: its repetitions expand to more than {MAX_EXPANDED} elements"
            )));
        }
        // SAFETY: regex_t is plain data (pointers, sizes, bit fields); all zeroes is a valid
        // value, and regcomp initialises it.
        let mut re: Box<libc::regex_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `re` is writable and `c` is a NUL-terminated string that outlives the call.
        let rc =
            unsafe { libc::regcomp(&mut *re, c.as_ptr(), libc::REG_EXTENDED | libc::REG_NOSUB) };
        if rc != 0 {
            // regcomp has freed whatever it allocated; `re` must not go to regfree.
            return Err(RegexError(error_text(rc, &re)));
        }
        Ok(PosixRegex {
            re,
            pattern: pattern.to_vec(),
        })
    }

    /// True when the expression matches somewhere in `text` (unanchored, like `regexec`).
    /// A failure of `regexec` itself (out of memory) is no match.
    pub fn is_match(&self, text: &[u8]) -> bool {
        self.exec(text) == 0
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn exec(&self, text: &[u8]) -> libc::c_int {
        // regoff_t is an int in glibc: beyond 2 GiB the rest is not looked at (nanny's replies
        // are at most a few KiB).
        let len = text.len().min(libc::regoff_t::MAX as usize);
        // With REG_STARTEND glibc reads only bytes [rm_so, rm_eo) of the text; the pointer of an
        // empty slice is never dereferenced, but give it a real byte anyway.
        let ptr: *const libc::c_char = if len == 0 {
            c"".as_ptr()
        } else {
            text.as_ptr().cast()
        };
        let mut range = [libc::regmatch_t {
            rm_so: 0,
            rm_eo: len as libc::regoff_t,
        }];
        // SAFETY: `self.re` was compiled by regcomp and not freed; `ptr` points to at least `len`
        // readable bytes; with REG_NOSUB glibc reads pmatch[0] (the range) and writes nothing.
        unsafe {
            libc::regexec(
                &*self.re,
                ptr,
                range.len(),
                range.as_mut_ptr(),
                libc::REG_STARTEND,
            )
        }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn exec(&self, text: &[u8]) -> libc::c_int {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let Ok(c) = CString::new(&text[..end]) else {
            return libc::REG_NOMATCH;
        };
        // SAFETY: a compiled regex_t and a NUL-terminated string; REG_NOSUB, no match array.
        unsafe { libc::regexec(&*self.re, c.as_ptr(), 0, std::ptr::null_mut(), 0) }
    }
}

impl Drop for PosixRegex {
    fn drop(&mut self) {
        // SAFETY: compiled by regcomp (a failed compile never builds a PosixRegex), freed once.
        unsafe { libc::regfree(&mut *self.re) }
    }
}

impl fmt::Debug for PosixRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PosixRegex")
            .field(&String::from_utf8_lossy(&self.pattern))
            .finish()
    }
}

/// The largest pattern accepted, in elements after repetition (see [`expanded_size`]).
///
/// glibc compiles `x{n,m}` by copying `x` m times, and its automaton for optional copies grows
/// with the square of their number: `a{0,255}` keeps 0.6 MiB, `a{1,1000}` 8 MiB, `a{1,4000}`
/// 125 MiB, `((a{1,100}){1,100}){1,100}` took 1.1 GiB and `a{1,32767}` more than 20 s to compile.
/// In a thousand nannies that is the director's memory, so such patterns are refused (the
/// `regex` crate used before had a 1 MiB limit on a compiled expression; Piranha had none). Real
/// health-check patterns stay far below: `^HTTP/1\.[01] (200|30[12])` is 16.
pub const MAX_EXPANDED: u64 = 1000;

/// An upper estimate of the number of elements (characters, bracket expressions, anchors) of an
/// ERE once its repetitions are expanded: `x{n,m}` counts `x` m times (n+1 times for `{n,}`),
/// `x+` twice, a group the sum of its branches. Only an estimate for the guard: whether the
/// pattern is valid is for `regcomp` to say.
pub fn expanded_size(pattern: &[u8]) -> u64 {
    let mut frames = vec![Frame { sum: 0, last: 0 }];
    let mut i = 0;
    while i < pattern.len() {
        let mut atom = true;
        match pattern[i] {
            b'\\' => i += 1,
            b'[' => i = bracket_end(pattern, i),
            b'(' => {
                frames.push(Frame { sum: 0, last: 0 });
                atom = false;
            }
            b')' if frames.len() > 1 => {
                let inner = frames.pop().map_or(1, |f| f.sum.max(1));
                if let Some(f) = frames.last_mut() {
                    f.sum = f.sum.saturating_add(inner);
                    f.last = inner;
                }
                atom = false;
            }
            b'|' => {
                if let Some(f) = frames.last_mut() {
                    f.last = 0;
                }
                atom = false;
            }
            b'*' | b'?' => atom = false,
            b'+' => {
                repeat(frames.last_mut(), 2);
                atom = false;
            }
            b'{' => {
                if let Some((times, end)) = interval(pattern, i) {
                    repeat(frames.last_mut(), times);
                    i = end;
                    atom = false;
                }
            }
            _ => {}
        }
        if atom {
            if let Some(f) = frames.last_mut() {
                f.sum = f.sum.saturating_add(1);
                f.last = 1;
            }
        }
        i += 1;
    }
    // Unclosed groups (regcomp refuses them) count too.
    frames.iter().fold(0, |acc, f| acc.saturating_add(f.sum))
}

/// One level of parentheses in [`expanded_size`]: its size so far and the size of its last item
/// (what a repetition operator applies to).
struct Frame {
    sum: u64,
    last: u64,
}

/// The last item repeated `times` times in all.
fn repeat(f: Option<&mut Frame>, times: u64) {
    if let Some(f) = f {
        let more = f.last.saturating_mul(times.saturating_sub(1));
        f.sum = f.sum.saturating_add(more);
        f.last = f.last.saturating_mul(times);
    }
}

/// The index of the `]` closing the bracket expression that opens at `start` (or the last
/// index if it is not closed): a leading `^`, then a leading `]`, are members; `[:…:]`, `[=…=]`
/// and `[.….]` are skipped whole; a backslash is an ordinary member.
fn bracket_end(p: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    if p.get(i) == Some(&b'^') {
        i += 1;
    }
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    while i < p.len() {
        match (p[i], p.get(i + 1)) {
            (b']', _) => return i,
            (b'[', Some(&d)) if matches!(d, b':' | b'=' | b'.') => {
                let mut j = i + 2;
                while j + 1 < p.len() && !(p[j] == d && p[j + 1] == b']') {
                    j += 1;
                }
                i = j + 2;
            }
            _ => i += 1,
        }
    }
    p.len().saturating_sub(1)
}

/// An interval `{n}`, `{n,}`, `{n,m}` or `{,m}` (glibc) at `start`: how many copies it makes at
/// most (at least 1) and the index of its `}`. `None` if it is not one (regcomp decides).
fn interval(p: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut i = start + 1;
    let number = |i: &mut usize| -> Option<u64> {
        let from = *i;
        let mut n: u64 = 0;
        while let Some(d) = p.get(*i).filter(|d| d.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
            *i += 1;
        }
        (*i > from).then_some(n)
    };
    let low = number(&mut i);
    let times = if p.get(i) == Some(&b',') {
        i += 1;
        match (low, number(&mut i)) {
            (_, Some(high)) => high,
            (Some(low), None) => low.saturating_add(1),
            (None, None) => return None,
        }
    } else {
        low?
    };
    (p.get(i) == Some(&b'}')).then_some((times.max(1), i))
}

/// `regerror`'s text for an error code.
fn error_text(code: libc::c_int, re: &libc::regex_t) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: regerror writes at most `buf.len()` bytes, NUL included, and only reads `re`.
    unsafe { libc::regerror(code, re, buf.as_mut_ptr().cast(), buf.len()) };
    match CStr::from_bytes_until_nul(&buf) {
        Ok(s) if !s.is_empty() => s.to_string_lossy().into_owned(),
        _ => format!("error {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> PosixRegex {
        match PosixRegex::new(p.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{p:?}: {e}"),
        }
    }

    fn err(p: &str) -> String {
        match PosixRegex::new(p.as_bytes()) {
            Ok(r) => panic!("{p:?} compiled: {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unanchored_search() {
        let r = re("ok");
        assert!(r.is_match(b"ok"));
        assert!(r.is_match(b"all is ok\n"));
        assert!(!r.is_match(b"OK"));
        assert!(!r.is_match(b""));
        assert!(re("").is_match(b""));
        assert!(re("x*").is_match(b""));
    }

    #[test]
    fn alternation_and_groups() {
        let r = re("^(HTTP/1\\.[01] (200|301|302)|220 )");
        assert!(r.is_match(b"HTTP/1.0 200 OK\r\n"));
        assert!(r.is_match(b"HTTP/1.1 302 Found\r\n"));
        assert!(r.is_match(b"220 ftp.example.com ready"));
        assert!(!r.is_match(b"HTTP/1.1 503 Busy\r\n"));
        assert!(!r.is_match(b"HTTP/2 200"));
        assert!(re("OK|READY").is_match(b"+READY\r\n"));
    }

    #[test]
    fn bracket_expressions() {
        let r = re("^[[:digit:]]{3} [[:alpha:]]+");
        assert!(r.is_match(b"220 ready"));
        assert!(!r.is_match(b"22 ready"));
        assert!(!r.is_match(b"x220 ready"));
        assert!(re("^[0-9]+$").is_match(b"12345"));
        assert!(!re("^[0-9]+$").is_match(b"123a45"));
        assert!(re("[^[:space:]]").is_match(b" \t x"));
        assert!(!re("[^[:space:]]").is_match(b" \t\r\n"));
        assert!(re("^[[:upper:]][[:lower:]]+$").is_match(b"Ready"));
        // In POSIX a backslash inside brackets is literal; `]` first is a member.
        assert!(re("[\\]").is_match(b"a\\b"));
        assert!(re("[]x]").is_match(b"]"));
        // The C locale: a byte is a character, classes are ASCII.
        assert!(!re("[[:alpha:]]").is_match("é".as_bytes()));
        assert!(re("^.{2}$").is_match("é".as_bytes()));
    }

    #[test]
    fn anchors() {
        assert!(re("^OK$").is_match(b"OK"));
        assert!(!re("^OK$").is_match(b"OK\r\n"));
        assert!(!re("^OK").is_match(b" OK"));
        assert!(re("OK\r?$").is_match(b"OK\r"));
        // No REG_NEWLINE: ^ and $ are the ends of the whole text, and . matches a newline.
        assert!(!re("^b").is_match(b"a\nb"));
        assert!(re("a.b").is_match(b"a\nb"));
    }

    #[test]
    fn repetition() {
        let r = re("^a+b?c{2,3}$");
        assert!(r.is_match(b"acc"));
        assert!(r.is_match(b"aaabccc"));
        assert!(!r.is_match(b"bcc"));
        assert!(!r.is_match(b"abbcc"));
        assert!(!r.is_match(b"ac"));
        assert!(!r.is_match(b"acccc"));
        assert!(re("^x{2}$").is_match(b"xx"));
        assert!(re("^x{2,}$").is_match(b"xxxxx"));
        assert!(!re("^x{2,}$").is_match(b"x"));
    }

    #[test]
    fn posix_not_perl() {
        // `\d` is not a class: an escaped ordinary character is that character.
        assert!(re("\\d").is_match(b"d"));
        assert!(!re("\\d").is_match(b"7"));
        // glibc's GNU operators (RE_NO_GNU_OPS is not in the POSIX syntax).
        assert!(re("^\\w+/1\\.0\\s\\S").is_match(b"HTTP/1.0 200"));
        assert!(re("\\<200\\>").is_match(b"HTTP/1.0 200 OK"));
        assert!(!re("\\<200\\>").is_match(b"HTTP/1.0 2000 OK"));
        assert!(re("\\bOK\\b").is_match(b"200 OK\r\n"));
        // A back-reference (glibc extension, accepted by Piranha's regcomp as well).
        assert!(re("^(ab)\\1$").is_match(b"abab"));
        assert!(!re("^(ab)\\1$").is_match(b"abba"));
    }

    #[test]
    fn invalid_patterns_give_regerror_text() {
        assert_eq!(err("("), "Unmatched ( or \\(");
        assert_eq!(err("(unclosed"), "Unmatched ( or \\(");
        assert_eq!(err("*"), "Invalid preceding regular expression");
        assert_eq!(err("[a"), "Unmatched [, [^, [:, [., or [=");
        assert_eq!(err("[[:digits:]]"), "Invalid character class name");
        assert_eq!(err("a{2"), "Unmatched \\{");
        assert_eq!(err("a\\"), "Trailing backslash");
        assert_eq!(err("a\0b"), "the pattern contains a NUL byte");
    }

    #[test]
    fn nul_bytes_and_unterminated_text() {
        // The whole slice is searched: bytes after a NUL are seen (Piranha's C string ended there).
        assert!(re("200 OK").is_match(b"\0\0HTTP/1.0 200 OK"));
        assert!(re("^a").is_match(b"a\0b"));
        assert!(re("b$").is_match(b"a\0b"));
        assert!(re("a[^x]b").is_match(b"a\0b"));
        // ... but `.` does not match NUL (glibc's RE_DOT_NOT_NULL for POSIX syntax).
        assert!(!re("a.b").is_match(b"a\0b"));
        // Only the slice is read: the match cannot run into the bytes that follow it.
        let buf = b"HTTP/1.0 200 OK";
        assert!(re("^HTTP").is_match(&buf[..4]));
        assert!(!re("200").is_match(&buf[..10]));
        assert!(!re("HTTP$").is_match(buf));
        assert!(re("HTTP$").is_match(&buf[..4]));
        // An exactly sized heap buffer (valgrind would see a read past its end).
        let v = b"abc".to_vec().into_boxed_slice();
        assert!(re("c$").is_match(&v));
        assert!(!re("abcd").is_match(&v));
    }

    #[test]
    fn expansion_estimate() {
        let n = |p: &str| expanded_size(p.as_bytes());
        assert_eq!(n(""), 0);
        assert_eq!(n("HTTP"), 4);
        assert_eq!(n("^HTTP/1\\.[01] (200|30[12])"), 16);
        assert_eq!(n("a{3}"), 3);
        assert_eq!(n("a{2,5}b"), 6);
        assert_eq!(n("a{2,}"), 3);
        assert_eq!(n("a{,4}"), 4);
        assert_eq!(n("a{0}"), 1);
        assert_eq!(n("a+"), 2);
        assert_eq!(n("a*b?"), 2);
        assert_eq!(n("(ab|cd){10}"), 40);
        assert_eq!(n("((a{1,10}){1,10}){1,10}"), 1000);
        assert_eq!(n("x(ab)+"), 5);
        // Bracket expressions are one element, whatever they hold.
        assert_eq!(n("[[:digit:]]{3}"), 3);
        assert_eq!(n("[]{}()|]{2}"), 2);
        assert_eq!(n("[^]a]"), 1);
        assert_eq!(n("[\\]x"), 2);
        assert_eq!(n("[[.-.]a]"), 1);
        // Escaped operators are characters; `{` that is no interval is one too.
        assert_eq!(n("\\{5\\}"), 3);
        assert_eq!(n("a\\+{9}"), 10);
        assert_eq!(n("a{x}"), 4);
        assert_eq!(n(")a"), 2);
        // Unclosed constructs and huge numbers do not overflow.
        assert_eq!(n("(ab"), 2);
        assert_eq!(n("[abc"), 1);
        assert_eq!(n("a{99999999999999999999999}"), u64::MAX);
        assert_eq!(n("((((a{65535}){65535}){65535}){65535}){65535}"), u64::MAX);
    }

    #[test]
    fn huge_repetitions_are_refused() {
        let too_big = "too big: its repetitions expand to more than 1000 elements";
        assert_eq!(err("a{1,32767}"), too_big);
        assert_eq!(err("((a{1,100}){1,100}){1,100}"), too_big);
        assert_eq!(err("(a|b|c|d|e|f|g|h){0,255}"), too_big);
        assert_eq!(err("a{1001}"), too_big);
        assert!(re("a{1000}").is_match(&[b'a'; 1000]));
        assert!(re("[[:alnum:]]{0,255}").is_match(b"x"));
        assert!(re("^([0-9]{1,3}\\.){3}[0-9]{1,3}$").is_match(b"10.0.0.1"));
        // glibc's own limit (RE_DUP_MAX, 32767) is behind ours.
        assert_eq!(err("a{32768}"), too_big);
    }

    #[test]
    fn debug_shows_the_pattern() {
        assert_eq!(format!("{:?}", re("^a|b")), "PosixRegex(\"^a|b\")");
    }

    #[test]
    fn many_compile_and_drop() {
        for i in 0..2000 {
            let r = re(&format!("^x{{{}}}$", i % 50 + 1));
            assert!(r.is_match("x".repeat(i % 50 + 1).as_bytes()));
        }
    }
}
