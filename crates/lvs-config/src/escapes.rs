//! The backslash escapes of `send` and `expect` strings, as nanny applies them (unless `-T`).
//!
//! Here rather than in nanny so that validation (`lvsd --config-test`) judges an `expect`
//! regular expression exactly as nanny will compile it.

/// Piranha's `convert_str`: `\\ \r \n \t \' \"` become the character; any other backslash is
/// kept as it is (Piranha looped for ever on one); strings shorter than 2 bytes are untouched.
pub fn convert_escapes(s: &[u8]) -> Vec<u8> {
    if s.len() < 2 {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            let c = match s.get(i + 1) {
                Some(b'\\') => Some(b'\\'),
                Some(b'r') => Some(b'\r'),
                Some(b'n') => Some(b'\n'),
                Some(b't') => Some(b'\t'),
                Some(b'\'') => Some(b'\''),
                Some(b'"') => Some(b'"'),
                _ => None,
            };
            if let Some(c) = c {
                out.push(c);
                i += 2;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}
