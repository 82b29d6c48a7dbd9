//! The nanny -> lvsd report protocol (version 1), documented in `docs/nanny-protocol.md`.
//!
//! One line per event, ASCII words separated by single spaces, `\n` terminated:
//!
//! ```text
//! nanny 1 <pid> <rip>:<rport>   hello; always the first line
//! up <weight> <why>             put the server in the table (add, or edit a quiesced entry)
//! weight <weight> <why>         change the weight of a server that is up
//! quiesce <why>                 keep the server in the table with weight 0
//! down <why>                    remove the server from the table
//! ```
//!
//! `<why>` is the rest of the line (may be empty), with `\`, control characters and non-ASCII
//! bytes escaped (`\\`, `\n`, `\r`, `\t`, `\xHH`), so a line is always one line of printable
//! ASCII. A line is at most [`MAX_LINE`] bytes including the newline; the encoder shortens `why`
//! to fit. Weights are 0..=2147483647 (what IPVS accepts).
//!
//! No I/O here: [`Report::encode`] gives bytes to write, [`LineDecoder`] takes whatever bytes a
//! read returned and gives back complete reports.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// Longest line, newline included.
pub const MAX_LINE: usize = 4096;

/// Largest weight IPVS accepts.
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// Environment variable through which lvsd hands nanny the write end of its report pipe.
/// When set (to a file descriptor number), nanny runs in report mode and never runs ipvsadm.
pub const REPORT_FD_ENV: &str = "NANNY_REPORT_FD";

/// One event reported by a nanny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// First line: protocol version, nanny's pid and the real server it watches.
    Hello {
        version: u32,
        pid: u32,
        server: SocketAddr,
    },
    /// The server is available: it belongs in the table with this weight.
    Up { weight: u32, why: String },
    /// New weight for a server that is up.
    Weight { weight: u32, why: String },
    /// The server failed but stays in the table with weight 0 (`quiesce_server = 1`).
    Quiesce { why: String },
    /// The server is unavailable: remove it from the table.
    Down { why: String },
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// The line was longer than [`MAX_LINE`] (the rest up to the next newline is dropped).
    TooLong,
    /// The line was empty.
    Empty,
    /// The first word is not a known event.
    UnknownEvent(String),
    /// A hello with a version other than [`VERSION`].
    UnsupportedVersion(String),
    /// A field is missing or malformed; the text names it.
    Malformed(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::TooLong => write!(f, "report line longer than {MAX_LINE} bytes"),
            ReportError::Empty => write!(f, "empty report line"),
            ReportError::UnknownEvent(w) => write!(f, "unknown report event \"{w}\""),
            ReportError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported report protocol version \"{v}\" (this is {VERSION})"
                )
            }
            ReportError::Malformed(m) => write!(f, "malformed report line: {m}"),
        }
    }
}

impl std::error::Error for ReportError {}

impl Report {
    /// The line for this report, newline included, at most [`MAX_LINE`] bytes.
    pub fn encode(&self) -> String {
        let (head, why) = match self {
            Report::Hello {
                version,
                pid,
                server,
            } => {
                return format!("nanny {version} {pid} {}\n", format_server(server));
            }
            Report::Up { weight, why } => (format!("up {weight}"), why),
            Report::Weight { weight, why } => (format!("weight {weight}"), why),
            Report::Quiesce { why } => ("quiesce".to_string(), why),
            Report::Down { why } => ("down".to_string(), why),
        };
        let mut line = head;
        line.push(' ');
        let budget = MAX_LINE - 1;
        for c in why.chars() {
            let before = line.len();
            escape_char(c, &mut line);
            if line.len() > budget {
                line.truncate(before);
                break;
            }
        }
        line.push('\n');
        line
    }

    /// Decodes one line (without its newline; a trailing `\r` is tolerated).
    pub fn decode(line: &str) -> Result<Report, ReportError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.len() >= MAX_LINE {
            return Err(ReportError::TooLong);
        }
        if line.is_empty() {
            return Err(ReportError::Empty);
        }
        let (event, rest) = match line.split_once(' ') {
            Some((e, r)) => (e, Some(r)),
            None => (line, None),
        };
        match event {
            "nanny" => decode_hello(rest.unwrap_or("")),
            "up" | "weight" => {
                let rest = rest.ok_or_else(|| malformed(event, "missing weight"))?;
                let (w, why) = rest.split_once(' ').unwrap_or((rest, ""));
                let weight = parse_weight(w)
                    .ok_or_else(|| malformed(event, &format!("bad weight \"{}\"", truncate(w))))?;
                let why = unescape(why).map_err(|e| malformed(event, &e))?;
                Ok(if event == "up" {
                    Report::Up { weight, why }
                } else {
                    Report::Weight { weight, why }
                })
            }
            "quiesce" | "down" => {
                let why = unescape(rest.unwrap_or("")).map_err(|e| malformed(event, &e))?;
                Ok(if event == "down" {
                    Report::Down { why }
                } else {
                    Report::Quiesce { why }
                })
            }
            other => Err(ReportError::UnknownEvent(truncate(other))),
        }
    }
}

fn decode_hello(rest: &str) -> Result<Report, ReportError> {
    let mut words = rest.split(' ');
    let version = words.next().unwrap_or("");
    if version != VERSION.to_string() {
        return Err(ReportError::UnsupportedVersion(truncate(version)));
    }
    let pid = words
        .next()
        .and_then(parse_decimal)
        .ok_or_else(|| malformed("nanny", "bad pid"))?;
    let server = words
        .next()
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .ok_or_else(|| malformed("nanny", "bad server address"))?;
    if words.next().is_some() {
        return Err(malformed("nanny", "trailing fields"));
    }
    Ok(Report::Hello {
        version: VERSION,
        pid,
        server,
    })
}

fn format_server(server: &SocketAddr) -> String {
    match server.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", server.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", server.port()),
    }
}

/// Strict decimal: digits only, no sign, no leading `+`, fits in u32.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_weight(s: &str) -> Option<u32> {
    parse_decimal(s).filter(|w| *w <= MAX_WEIGHT)
}

fn malformed(event: &str, what: &str) -> ReportError {
    ReportError::Malformed(format!("{event}: {what}"))
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        ' '..='~' => out.push(c),
        _ => {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
}

fn unescape(s: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            if !(b' '..=b'~').contains(&b) {
                return Err("unescaped control or non-ASCII byte in text".to_string());
            }
            bytes.push(b);
            continue;
        }
        match it.next() {
            Some(b'\\') => bytes.push(b'\\'),
            Some(b'n') => bytes.push(b'\n'),
            Some(b'r') => bytes.push(b'\r'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'x') => {
                let hi = it.next().and_then(hex);
                let lo = it.next().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => bytes.push(h << 4 | l),
                    _ => return Err("bad \\x escape in text".to_string()),
                }
            }
            _ => return Err("bad escape in text".to_string()),
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits a byte stream into lines and decodes them. Feed it what each `read` returned.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Dropping the rest of an over-long line until the next newline.
    skipping: bool,
}

impl LineDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes every complete line in `bytes` (plus what earlier calls left over).
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Result<Report, ReportError>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let (line, rest) = bytes.split_at(nl);
                    bytes = &rest[1..];
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    if self.buf.len() + line.len() >= MAX_LINE {
                        self.buf.clear();
                        out.push(Err(ReportError::TooLong));
                        continue;
                    }
                    self.buf.extend_from_slice(line);
                    let decoded = match std::str::from_utf8(&self.buf) {
                        Ok(s) => Report::decode(s),
                        Err(_) => Err(ReportError::Malformed("line is not ASCII text".to_string())),
                    };
                    self.buf.clear();
                    out.push(decoded);
                }
                None => {
                    if !self.skipping {
                        if self.buf.len() + bytes.len() >= MAX_LINE {
                            self.buf.clear();
                            self.skipping = true;
                            out.push(Err(ReportError::TooLong));
                        } else {
                            self.buf.extend_from_slice(bytes);
                        }
                    }
                    bytes = &[];
                }
            }
        }
        out
    }

    /// True when a partial line is waiting for its newline (at end of stream it is lost).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Report> {
        vec![
            Report::Hello {
                version: 1,
                pid: 4242,
                server: "192.168.1.10:80".parse().unwrap(),
            },
            Report::Hello {
                version: 1,
                pid: 1,
                server: "[2001:db8::1]:8080".parse().unwrap(),
            },
            Report::Up {
                weight: 3,
                why: "check passed".into(),
            },
            Report::Up {
                weight: 0,
                why: String::new(),
            },
            Report::Weight {
                weight: MAX_WEIGHT,
                why: "load 0.15".into(),
            },
            Report::Quiesce {
                why: "READ to 10.0.0.2:80 timed out".into(),
            },
            Report::Down {
                why: "tab\there\nnew line \\ back é ☃ \x07".into(),
            },
        ]
    }

    #[test]
    fn round_trip_every_kind() {
        for r in all_kinds() {
            let line = r.encode();
            assert!(line.ends_with('\n'));
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert!(line.len() <= MAX_LINE);
            assert!(line[..line.len() - 1]
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b)));
            assert_eq!(Report::decode(line.trim_end_matches('\n')), Ok(r));
        }
    }

    #[test]
    fn exact_wire_text() {
        assert_eq!(
            Report::Hello {
                version: 1,
                pid: 77,
                server: "10.0.0.2:443".parse().unwrap()
            }
            .encode(),
            "nanny 1 77 10.0.0.2:443\n"
        );
        assert_eq!(
            Report::Up {
                weight: 5,
                why: "ok".into()
            }
            .encode(),
            "up 5 ok\n"
        );
        assert_eq!(Report::Down { why: "a\nb".into() }.encode(), "down a\\nb\n");
        assert_eq!(Report::Quiesce { why: "".into() }.encode(), "quiesce \n");
    }

    #[test]
    fn long_reason_is_shortened_to_fit() {
        let r = Report::Down {
            why: "é".repeat(5000),
        };
        let line = r.encode();
        assert!(line.len() <= MAX_LINE);
        match Report::decode(line.trim_end()).unwrap() {
            Report::Down { why } => {
                assert!(why.chars().all(|c| c == 'é'));
                assert!(why.chars().count() > 100);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("", ReportError::Empty),
            ("upp 3 x", ReportError::UnknownEvent("upp".into())),
            (
                "nanny 2 5 1.2.3.4:80",
                ReportError::UnsupportedVersion("2".into()),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(Report::decode(line), Err(want), "{line:?}");
        }
        for line in [
            "up",
            "up x why",
            "up -1",
            "up +1",
            "up 2147483648",
            "weight 99999999999",
            "nanny 1 x 1.2.3.4:80",
            "nanny 1 5 1.2.3.4",
            "nanny 1 5 1.2.3.4:80 extra",
            "down bad \\q escape",
            "down bad \\x4",
            "down raw\u{7f}",
        ] {
            assert!(
                matches!(Report::decode(line), Err(ReportError::Malformed(_))),
                "{line:?} -> {:?}",
                Report::decode(line)
            );
        }
    }

    #[test]
    fn decoder_joins_split_reads_and_skips_long_lines() {
        let mut d = LineDecoder::new();
        let mut stream = Vec::new();
        for r in all_kinds() {
            stream.extend_from_slice(r.encode().as_bytes());
        }
        // Every split point, in every chunk size up to 7.
        for chunk in 1..=7 {
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                got.extend(d.push(piece));
            }
            assert!(!d.has_partial());
            let got: Vec<Report> = got.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(got, all_kinds());
        }
        let mut long = vec![b'x'; MAX_LINE * 2];
        long.extend_from_slice(b"\nup 1 fine\n");
        let got = d.push(&long);
        assert_eq!(
            got,
            vec![
                Err(ReportError::TooLong),
                Ok(Report::Up {
                    weight: 1,
                    why: "fine".into()
                })
            ]
        );
        let got = d.push(&[0xff, 0xfe, b'\n']);
        assert!(matches!(got[..], [Err(ReportError::Malformed(_))]));
    }
}
