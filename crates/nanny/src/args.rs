//! nanny's command line: Piranha 0.8.6's popt table (spec §4.1), parsed the way popt does it,
//! with Piranha's messages, then checked for values Piranha accepted but could not work with.
//!
//! popt rules reproduced: short options may be bundled (`-cq`) and take their argument attached
//! (`-t10`) or as the next word (`-t 10`, even when that word starts with `-`); long options take
//! `--name=value` or `--name value`; there are no abbreviations; `--` ends the options; integers
//! are `strtol(…, 0)` (so `0x10` and `010` work, and an empty string is 0); the last of a repeated
//! option wins. Errors read `nanny: bad argument WORD: TEXT` where WORD is the last word read.
//!
//! No I/O: [`parse`] returns what to do, and the caller prints.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::machine::Service;

/// Piranha's component version (globals.h).
pub const PIRANHA_NANNY_VERSION: &str = "nanny 1.46";

/// Default ipvsadm path (globals.h `IPVSADM`).
pub const DEFAULT_IPVSADM: &str = "/sbin/ipvsadm";

/// Forwarding method, from `-M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// NAT, `-m` (the default, and anything unrecognised).
    Masq,
    /// Direct routing, `-g`.
    Gate,
    /// Tunnelling, `-i`.
    Ipip,
}

impl Method {
    /// Piranha's rule: skip one leading `-`, then `g` is `-g`, `i` is `-i`, anything else `-m`.
    pub fn from_arg(s: &[u8]) -> Method {
        let s = s.strip_prefix(b"-").unwrap_or(s);
        match s.first() {
            Some(b'g') => Method::Gate,
            Some(b'i') => Method::Ipip,
            _ => Method::Masq,
        }
    }

    /// The ipvsadm switch.
    pub fn flag(self) -> &'static str {
        match self {
            Method::Masq => "-m",
            Method::Gate => "-g",
            Method::Ipip => "-i",
        }
    }
}

/// Everything on the command line, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `-t`: seconds between checks, and the connect/read/program timeout (>= 1).
    pub interval: u32,
    /// `-I`: ipvsadm binary (legacy mode).
    pub ipvsadm: OsString,
    /// `-U`: load command; `none` reads no load.
    pub load_cmd: OsString,
    /// `-M`.
    pub method: Method,
    /// `-n`.
    pub nodaemon: bool,
    /// `-c`.
    pub nofork: bool,
    /// `-p`: virtual port (default 80).
    pub port: u16,
    /// `-r`: real port to check and to use in ipvsadm (default: the virtual port).
    pub rport: u16,
    /// `-a`: seconds of successful checks before re-admission; None when not given.
    pub reentry: Option<u32>,
    /// `-S`: maximum multiplier of the weight from load (>= 1).
    pub scale: u32,
    /// `-h`: the real server.
    pub server: IpAddr,
    /// `-e`: external check command.
    pub send_program: Option<Vec<u8>>,
    /// `-s`: probe string (escapes not yet converted).
    pub send: Option<Vec<u8>>,
    /// `-x`: expected reply (escapes not yet converted).
    pub expect: Option<Vec<u8>>,
    /// `--regex`.
    pub regex: bool,
    /// `-T`: no backslash translation.
    pub suppress: bool,
    /// `-q`.
    pub quiesce: bool,
    /// `-u`.
    pub udp: bool,
    /// `-v`.
    pub verbose: bool,
    /// `-V`: virtual address, as given (it is only ever passed on to ipvsadm).
    pub vip: Option<OsString>,
    /// `-f` (0: none).
    pub fwmark: u32,
    /// `-w`.
    pub weight: u32,
    /// `--test-start` / `--norun`: log ipvsadm commands instead of running them.
    pub test_start: bool,
    /// `--lvs` / `--fos`.
    pub service: Service,
    /// `--report-fd`: report mode on this descriptor (also `NANNY_REPORT_FD`).
    pub report_fd: Option<i32>,
}

impl Options {
    /// Piranha's `countThresh = reentry / interval`, at least 1 (an explicit `-a 0` or a reentry
    /// shorter than the interval means "one successful check"). Without `-a`: 180 s for `--lvs`,
    /// one interval for `--fos`.
    pub fn count_thresh(&self) -> u64 {
        let reentry = match (self.reentry, self.service) {
            (Some(r), _) => r,
            (None, Service::Lvs) => 180,
            (None, Service::Fos) => self.interval,
        };
        u64::from(reentry / self.interval).max(1)
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Run(Box<Options>),
    /// Print this on stdout and exit 0 (`--help`, `--usage`, `--version`).
    Print(String),
}

/// A command line nanny refuses: print on stderr, exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    Int,
    Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Interval,
    Ipvsadm,
    LoadCmd,
    Method,
    NoDaemon,
    NoFork,
    Port,
    Rport,
    Reentry,
    Scale,
    Server,
    SendProgram,
    Send,
    Expect,
    Regex,
    Suppress,
    Quiesce,
    Udp,
    Verbose,
    Vip,
    Fwmark,
    Weight,
    TestStart,
    NoRun,
    Version,
    Fos,
    Lvs,
    ReportFd,
    Help,
    Usage,
}

struct Opt {
    long: &'static str,
    short: Option<u8>,
    kind: Kind,
    tag: Tag,
    arg: &'static str,
    help: &'static str,
}

const fn o(
    long: &'static str,
    short: Option<u8>,
    kind: Kind,
    tag: Tag,
    arg: &'static str,
    help: &'static str,
) -> Opt {
    Opt {
        long,
        short,
        kind,
        tag,
        arg,
        help,
    }
}

/// Piranha's table, in its order, plus `--report-fd`, then popt's automatic help options.
const OPTIONS: &[Opt] = &[
    o(
        "interval",
        Some(b't'),
        Kind::Int,
        Tag::Interval,
        "INT",
        "seconds between connection attempts",
    ),
    o(
        "ipvsadm",
        Some(b'I'),
        Kind::Str,
        Tag::Ipvsadm,
        "STRING",
        "path to ipvsadm (default /sbin/ipvsadm)",
    ),
    o(
        "loadcmd",
        Some(b'U'),
        Kind::Str,
        Tag::LoadCmd,
        "STRING",
        "command to get remote load average (rup, rsh, ssh, none)",
    ),
    o(
        "method",
        Some(b'M'),
        Kind::Str,
        Tag::Method,
        "STRING",
        "ipvsadm routing method (default -m)",
    ),
    o(
        "nodaemon",
        Some(b'n'),
        Kind::Flag,
        Tag::NoDaemon,
        "",
        "don't run as a daemon",
    ),
    o(
        "nofork",
        Some(b'c'),
        Kind::Flag,
        Tag::NoFork,
        "",
        "don't fork, but do disassociate",
    ),
    o(
        "port",
        Some(b'p'),
        Kind::Int,
        Tag::Port,
        "INT",
        "port on virtual service (default 80)",
    ),
    o(
        "rport",
        Some(b'r'),
        Kind::Int,
        Tag::Rport,
        "INT",
        "port to check for availability (default: --port)",
    ),
    o(
        "reentrytime",
        Some(b'a'),
        Kind::Int,
        Tag::Reentry,
        "INT",
        "seconds to wait for before readmitting a machine",
    ),
    o(
        "scale",
        Some(b'S'),
        Kind::Int,
        Tag::Scale,
        "INT",
        "maximum scale to weight load average by",
    ),
    o(
        "server",
        Some(b'h'),
        Kind::Str,
        Tag::Server,
        "STRING",
        "IP address of remote server",
    ),
    o(
        "send_program",
        Some(b'e'),
        Kind::Str,
        Tag::SendProgram,
        "STRING",
        "Use an external program to test a service",
    ),
    o(
        "send_string",
        Some(b's'),
        Kind::Str,
        Tag::Send,
        "STRING",
        "string to send to port to test connectivity",
    ),
    o(
        "expect_string",
        Some(b'x'),
        Kind::Str,
        Tag::Expect,
        "STRING",
        "reponse string to receive after connecting to port",
    ),
    o(
        "regex",
        None,
        Kind::Flag,
        Tag::Regex,
        "",
        "interpret expect_string as a regular expression",
    ),
    o(
        "suppress",
        Some(b'T'),
        Kind::Flag,
        Tag::Suppress,
        "",
        "Suppress '\\' translation in send/expect strings",
    ),
    o(
        "quiesce_server",
        Some(b'q'),
        Kind::Flag,
        Tag::Quiesce,
        "",
        "quiesce server when service monitoring timeouts",
    ),
    o(
        "udp",
        Some(b'u'),
        Kind::Flag,
        Tag::Udp,
        "",
        "Use UDP protocol instead of TCP",
    ),
    o(
        "verbose",
        Some(b'v'),
        Kind::Flag,
        Tag::Verbose,
        "",
        "log debugging information",
    ),
    o(
        "virtaddress",
        Some(b'V'),
        Kind::Str,
        Tag::Vip,
        "STRING",
        "IP of virtual service",
    ),
    o(
        "fwmark",
        Some(b'f'),
        Kind::Int,
        Tag::Fwmark,
        "INT",
        "firewalling mark of virtual service",
    ),
    o(
        "weight",
        Some(b'w'),
        Kind::Int,
        Tag::Weight,
        "INT",
        "weight of remote server",
    ),
    o(
        "test-start",
        None,
        Kind::Flag,
        Tag::TestStart,
        "",
        "don't actually run ipvsadm",
    ),
    o(
        "norun",
        None,
        Kind::Flag,
        Tag::NoRun,
        "",
        "same as '--test-start'",
    ),
    o(
        "version",
        None,
        Kind::Flag,
        Tag::Version,
        "",
        "Display program version",
    ),
    o("fos", None, Kind::Flag, Tag::Fos, "", "Failover Service"),
    o("lvs", None, Kind::Flag, Tag::Lvs, "", "LVS Service"),
    o(
        "report-fd",
        None,
        Kind::Int,
        Tag::ReportFd,
        "INT",
        "report to lvsd on this descriptor (as NANNY_REPORT_FD)",
    ),
    o(
        "help",
        Some(b'?'),
        Kind::Flag,
        Tag::Help,
        "",
        "Show this help message",
    ),
    o(
        "usage",
        None,
        Kind::Flag,
        Tag::Usage,
        "",
        "Display brief usage message",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoptError {
    NoArg,
    BadOpt,
    UnwantedArg,
    BadNumber,
    Overflow,
}

impl PoptError {
    fn text(self) -> &'static str {
        match self {
            PoptError::NoArg => "missing argument",
            PoptError::BadOpt => "unknown option",
            PoptError::UnwantedArg => "option does not take an argument",
            PoptError::BadNumber => "invalid numeric value",
            PoptError::Overflow => "number too large or too small",
        }
    }
}

/// An option met and its argument.
type OptArg<'a> = (&'static Opt, Option<&'a [u8]>);

/// `poptGetNextOpt` over argv (argv[0] skipped).
struct Popt<'a> {
    argv: &'a [OsString],
    next: usize,
    /// Pending bundled short options: (argv index, byte offset).
    chars: Option<(usize, usize)>,
    rest_leftover: bool,
    leftovers: usize,
}

impl<'a> Popt<'a> {
    fn bad_option(&self) -> String {
        self.argv
            .get(self.next.wrapping_sub(1))
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn next_opt(&mut self) -> Result<Option<OptArg<'a>>, PoptError> {
        let argv = self.argv;
        loop {
            let mut long_arg: Option<&'a [u8]> = None;
            let opt: &'static Opt;
            match self.chars.take() {
                None => {
                    let Some(word) = argv.get(self.next) else {
                        return Ok(None);
                    };
                    let idx = self.next;
                    self.next += 1;
                    let s = word.as_bytes();
                    if self.rest_leftover || !s.starts_with(b"-") || s == b"-" {
                        self.leftovers += 1;
                        continue;
                    }
                    if s == b"--" {
                        self.rest_leftover = true;
                        continue;
                    }
                    if let Some(body) = s.strip_prefix(b"--") {
                        let (name, arg) = match body.iter().position(|&b| b == b'=') {
                            Some(k) => (&body[..k], Some(&body[k + 1..])),
                            None => (body, None),
                        };
                        opt = OPTIONS
                            .iter()
                            .find(|o| o.long.as_bytes() == name)
                            .ok_or(PoptError::BadOpt)?;
                        long_arg = arg;
                    } else {
                        self.chars = Some((idx, 1));
                        continue;
                    }
                }
                Some((idx, off)) => {
                    let b = argv[idx].as_bytes();
                    let c = *b.get(off).ok_or(PoptError::BadOpt)?;
                    opt = OPTIONS
                        .iter()
                        .find(|o| o.short == Some(c))
                        .ok_or(PoptError::BadOpt)?;
                    let rest = off + 1;
                    if rest < b.len() {
                        self.chars = Some((idx, rest + usize::from(b[rest] == b'=')));
                    }
                }
            }
            if opt.kind == Kind::Flag {
                let eq_follows = self
                    .chars
                    .is_some_and(|(i, o)| argv[i].as_bytes().get(o) == Some(&b'='));
                if long_arg.is_some() || eq_follows {
                    return Err(PoptError::UnwantedArg);
                }
                return Ok(Some((opt, None)));
            }
            let arg = if let Some(a) = long_arg {
                a
            } else if let Some((i, o)) = self.chars.take() {
                let r = &argv[i].as_bytes()[o..];
                r.strip_prefix(b"=").unwrap_or(r)
            } else if let Some(n) = argv.get(self.next) {
                self.next += 1;
                n.as_bytes()
            } else {
                return Err(PoptError::NoArg);
            };
            return Ok(Some((opt, Some(arg))));
        }
    }
}

/// popt's integer: `strtol(s, &end, 0)` that must consume everything (an empty string is 0),
/// refused at LONG_MIN/LONG_MAX.
fn popt_long(s: &[u8]) -> Result<i64, PoptError> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let (base, digits_at) = if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
    {
        (16u32, i + 2)
    } else if s.get(i) == Some(&b'0') {
        (8, i)
    } else {
        (10, i)
    };
    let mut j = digits_at;
    let mut v: i128 = 0;
    while let Some(d) = s.get(j).and_then(|&c| (c as char).to_digit(base)) {
        v = (v * i128::from(base) + i128::from(d)).min(i128::from(u64::MAX));
        j += 1;
    }
    if j == digits_at {
        // No digits: strtol leaves `end` at the start of the string.
        return if s.is_empty() {
            Ok(0)
        } else {
            Err(PoptError::BadNumber)
        };
    }
    if j != s.len() {
        return Err(PoptError::BadNumber);
    }
    let v = if neg { -v } else { v };
    if v >= i128::from(i64::MAX) || v <= i128::from(i64::MIN) {
        return Err(PoptError::Overflow);
    }
    Ok(v as i64)
}

pub use lvs_config::escapes::convert_escapes;

fn help_text() -> String {
    let mut s = String::from("Usage: nanny [OPTION...]\n");
    for opt in OPTIONS {
        if opt.tag == Tag::Help {
            s.push_str("\nHelp options:\n");
        }
        let mut left = match opt.short {
            Some(c) => format!("  -{}, --{}", c as char, opt.long),
            None => format!("      --{}", opt.long),
        };
        if !opt.arg.is_empty() {
            left.push('=');
            left.push_str(opt.arg);
        }
        if left.len() < 32 {
            s.push_str(&format!("{left:<32}{}\n", opt.help));
        } else {
            s.push_str(&format!("{left}\n{:32}{}\n", "", opt.help));
        }
    }
    s
}

fn usage_text() -> String {
    let mut s = String::from("Usage: nanny");
    let mut col = s.len();
    let mut add = |word: String, s: &mut String| {
        if col + word.len() + 1 > 79 {
            s.push_str("\n       ");
            col = 7;
        }
        s.push(' ');
        s.push_str(&word);
        col += word.len() + 1;
    };
    for opt in OPTIONS {
        let word = match (opt.short, opt.arg.is_empty()) {
            (Some(c), true) => format!("[-{}|--{}]", c as char, opt.long),
            (Some(c), false) => format!("[-{}|--{} {}]", c as char, opt.long, opt.arg),
            (None, true) => format!("[--{}]", opt.long),
            (None, false) => format!("[--{}={}]", opt.long, opt.arg),
        };
        add(word, &mut s);
    }
    s.push('\n');
    s
}

/// The `--version` text: Piranha's layout, without the build date.
pub fn version_text() -> String {
    format!(
        "Program Version:\t{PIRANHA_NANNY_VERSION}\nA component of:\t\tpiranha-rs-{}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Raw values as popt stores them (C ints), before validation.
#[derive(Default)]
struct Raw {
    interval: Option<i64>,
    ipvsadm: Option<Vec<u8>>,
    load_cmd: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
    nodaemon: bool,
    nofork: bool,
    port: Option<i64>,
    rport: Option<i64>,
    reentry: Option<i64>,
    scale: Option<i64>,
    server: Option<Vec<u8>>,
    send_program: Option<Vec<u8>>,
    send: Option<Vec<u8>>,
    expect: Option<Vec<u8>>,
    regex: bool,
    suppress: bool,
    quiesce: bool,
    udp: bool,
    verbose: bool,
    vip: Option<Vec<u8>>,
    fwmark: Option<i64>,
    weight: Option<i64>,
    test_start: bool,
    version: bool,
    fos: bool,
    lvs: bool,
    report_fd: Option<i64>,
    help: bool,
    usage: bool,
}

fn err(msg: String) -> ArgError {
    ArgError(format!("nanny: {msg}\n"))
}

/// Checks `v` is in `lo..=hi`, naming the option otherwise.
fn ranged(v: i64, lo: i64, hi: i64, name: &str, what: &str) -> Result<i64, ArgError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(err(format!("{name} must be {what}, not {v}")))
    }
}

/// Parses argv (argv[0] included and ignored).
pub fn parse(argv: &[OsString]) -> Result<Parsed, ArgError> {
    let mut p = Popt {
        argv,
        next: 1,
        chars: None,
        rest_leftover: false,
        leftovers: 0,
    };
    let mut raw = Raw::default();
    loop {
        let (opt, arg) = match p.next_opt() {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) => {
                return Err(err(format!(
                    "bad argument {}: {}",
                    p.bad_option(),
                    e.text()
                )));
            }
        };
        let s = || arg.map(<[u8]>::to_vec);
        let n = if opt.kind == Kind::Int {
            let a = arg.unwrap_or_default();
            match popt_long(a) {
                // popt stores ints as C int; fwmark is extended to the whole u32 range.
                Ok(v) if opt.tag == Tag::Fwmark || i32::try_from(v).is_ok() => Some(v),
                Ok(_) => {
                    return Err(err(format!(
                        "bad argument {}: {}",
                        p.bad_option(),
                        PoptError::Overflow.text()
                    )))
                }
                Err(e) => {
                    return Err(err(format!(
                        "bad argument {}: {}",
                        p.bad_option(),
                        e.text()
                    )))
                }
            }
        } else {
            None
        };
        match opt.tag {
            Tag::Interval => raw.interval = n,
            Tag::Ipvsadm => raw.ipvsadm = s(),
            Tag::LoadCmd => raw.load_cmd = s(),
            Tag::Method => raw.method = s(),
            Tag::NoDaemon => raw.nodaemon = true,
            Tag::NoFork => raw.nofork = true,
            Tag::Port => raw.port = n,
            Tag::Rport => raw.rport = n,
            Tag::Reentry => raw.reentry = n,
            Tag::Scale => raw.scale = n,
            Tag::Server => raw.server = s(),
            Tag::SendProgram => raw.send_program = s(),
            Tag::Send => raw.send = s(),
            Tag::Expect => raw.expect = s(),
            Tag::Regex => raw.regex = true,
            Tag::Suppress => raw.suppress = true,
            Tag::Quiesce => raw.quiesce = true,
            Tag::Udp => raw.udp = true,
            Tag::Verbose => raw.verbose = true,
            Tag::Vip => raw.vip = s(),
            Tag::Fwmark => raw.fwmark = n,
            Tag::Weight => raw.weight = n,
            Tag::TestStart | Tag::NoRun => raw.test_start = true,
            Tag::Version => raw.version = true,
            Tag::Fos => raw.fos = true,
            Tag::Lvs => raw.lvs = true,
            Tag::ReportFd => raw.report_fd = n,
            // popt prints its help as soon as it meets the option.
            Tag::Help => raw.help = true,
            Tag::Usage => raw.usage = true,
        }
        if raw.help {
            return Ok(Parsed::Print(help_text()));
        }
        if raw.usage {
            return Ok(Parsed::Print(usage_text()));
        }
    }
    if p.leftovers > 0 {
        return Err(err("unexpected arguments".to_string()));
    }
    if raw.version {
        return Ok(Parsed::Print(version_text()));
    }
    let Some(server) = raw.server.as_deref() else {
        return Err(err(
            "No address supplied. Use '--help' for help. ".to_string()
        ));
    };
    let server = lvs_config::lexer::inet_aton(server)
        .map(IpAddr::V4)
        .or_else(|| {
            // Extension: an IPv6 literal (IPVS and ipvsadm handle IPv6 real servers).
            std::str::from_utf8(server)
                .ok()
                .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
        .ok_or_else(|| {
            err(format!(
                "bad IP address -- {}",
                String::from_utf8_lossy(server)
            ))
        })?;
    let service = if raw.fos {
        Service::Fos
    } else if raw.lvs {
        Service::Lvs
    } else {
        return Err(err("unknown service type".to_string()));
    };

    // Values Piranha took and then misbehaved with (divided by, overflowed, or passed to
    // ipvsadm to fail there): refused here, naming the option.
    let interval = ranged(
        raw.interval.unwrap_or(10),
        1,
        i64::from(i32::MAX) / 1000,
        "--interval (-t)",
        "at least 1 second (it is the time between checks and their timeout)",
    )? as u32;
    let port = ranged(
        raw.port.unwrap_or(80),
        0,
        65535,
        "--port (-p)",
        "a port number (0-65535)",
    )? as u16;
    let rport = match raw.rport {
        // Piranha's "not given" was -1.
        None | Some(-1) => port,
        Some(r) => ranged(r, 0, 65535, "--rport (-r)", "a port number (0-65535)")? as u16,
    };
    if rport == 0 && raw.send_program.is_none() {
        return Err(err(
            "real port 0 cannot be checked: give --rport (-r) or --port (-p), or a --send_program (-e)"
                .to_string(),
        ));
    }
    let reentry = match raw.reentry {
        None => None,
        Some(r) => Some(ranged(
            r,
            0,
            i64::from(i32::MAX),
            "--reentrytime (-a)",
            "0 or more seconds",
        )? as u32),
    };
    let scale = ranged(
        raw.scale.unwrap_or(10),
        1,
        i64::from(i32::MAX),
        "--scale (-S)",
        "at least 1",
    )? as u32;
    let weight = ranged(
        raw.weight.unwrap_or(1),
        0,
        i64::from(i32::MAX),
        "--weight (-w)",
        "between 0 and 2147483647",
    )? as u32;
    let fwmark = ranged(
        raw.fwmark.unwrap_or(0),
        0,
        i64::from(u32::MAX),
        "--fwmark (-f)",
        "between 0 and 4294967295",
    )? as u32;
    let report_fd = match raw.report_fd {
        None => None,
        Some(fd) => Some(ranged(
            fd,
            0,
            i64::from(i32::MAX),
            "--report-fd",
            "a file descriptor number",
        )? as i32),
    };
    let load_cmd = raw.load_cmd.unwrap_or_else(|| b"none".to_vec());
    if load_cmd.is_empty() {
        return Err(err(
            "--loadcmd (-U) is empty (use none for no load monitoring)".to_string(),
        ));
    }
    if let Some(p) = &raw.send_program {
        if p.split(|&b| b == b' ').all(<[u8]>::is_empty) {
            return Err(err("--send_program (-e) is empty".to_string()));
        }
    }
    let ipvsadm = raw
        .ipvsadm
        .unwrap_or_else(|| DEFAULT_IPVSADM.as_bytes().to_vec());
    if ipvsadm.is_empty() {
        return Err(err("--ipvsadm (-I) is empty".to_string()));
    }
    Ok(Parsed::Run(Box::new(Options {
        interval,
        ipvsadm: OsString::from_vec(ipvsadm),
        load_cmd: OsString::from_vec(load_cmd),
        method: Method::from_arg(raw.method.as_deref().unwrap_or(b"-m")),
        nodaemon: raw.nodaemon,
        nofork: raw.nofork,
        port,
        rport,
        reentry,
        scale,
        server,
        send_program: raw.send_program,
        send: raw.send,
        expect: raw.expect,
        regex: raw.regex,
        suppress: raw.suppress,
        quiesce: raw.quiesce,
        udp: raw.udp,
        verbose: raw.verbose,
        vip: raw.vip.map(OsString::from_vec),
        fwmark,
        weight,
        test_start: raw.test_start,
        service,
        report_fd,
    })))
}

/// Convenience for tests and callers holding `&str`s.
pub fn parse_strs(argv: &[&str]) -> Result<Parsed, ArgError> {
    let v: Vec<OsString> = argv.iter().map(|s| OsStr::new(s).to_owned()).collect();
    parse(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Options {
        let mut v = vec!["nanny"];
        v.extend(line.split_whitespace());
        match parse_strs(&v) {
            Ok(Parsed::Run(o)) => *o,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn fail(line: &str) -> String {
        let mut v = vec!["nanny"];
        v.extend(line.split_whitespace());
        match parse_strs(&v) {
            Err(ArgError(m)) => m,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn lvsd_argv_is_accepted_as_is() {
        // spec §3.3, every optional part present.
        let argv = [
            "/usr/sbin/nanny",
            "-c",
            "-h",
            "172.16.0.11",
            "-p",
            "80",
            "-r",
            "8080",
            "-f",
            "7",
            "-u",
            "-e",
            "/usr/local/bin/check %h %p",
            "-s",
            "GET /health HTTP/1.0\\r\\n\\r\\n",
            "-x",
            "HTTP/1.[01] 200",
            "-q",
            "--regex",
            "-v",
            "-a",
            "15",
            "-I",
            "/sbin/ipvsadm",
            "-t",
            "6",
            "-w",
            "100",
            "-V",
            "192.168.1.100",
            "-M",
            "g",
            "-U",
            "ssh",
            "--nodaemon",
            "--lvs",
        ];
        let o = match parse_strs(&argv).unwrap() {
            Parsed::Run(o) => *o,
            p => panic!("{p:?}"),
        };
        assert!(o.nofork && o.nodaemon && o.udp && o.quiesce && o.regex && o.verbose);
        assert_eq!(o.server, "172.16.0.11".parse::<IpAddr>().unwrap());
        assert_eq!((o.port, o.rport, o.fwmark), (80, 8080, 7));
        assert_eq!(
            o.send_program.as_deref(),
            Some(&b"/usr/local/bin/check %h %p"[..])
        );
        assert_eq!(
            o.send.as_deref(),
            Some(&b"GET /health HTTP/1.0\\r\\n\\r\\n"[..])
        );
        assert_eq!(o.expect.as_deref(), Some(&b"HTTP/1.[01] 200"[..]));
        assert_eq!(o.reentry, Some(15));
        assert_eq!(o.ipvsadm, "/sbin/ipvsadm");
        assert_eq!((o.interval, o.weight), (6, 100));
        assert_eq!(o.vip.as_deref(), Some(OsStr::new("192.168.1.100")));
        assert_eq!(o.method, Method::Gate);
        assert_eq!(o.load_cmd, "ssh");
        assert_eq!(o.service, Service::Lvs);
        assert_eq!(o.count_thresh(), 2);
        // The minimal form.
        let o = run(
            "-c -h 10.0.0.2 -p 80 -r 80 -a 180 -I /sbin/ipvsadm -t 10 -w 1 -V 10.0.0.1 -M m --lvs",
        );
        assert_eq!(o.count_thresh(), 18);
        assert!(!o.nodaemon && !o.udp && !o.quiesce);
    }

    #[test]
    fn defaults() {
        let o = run("-h 10.0.0.2 --lvs");
        assert_eq!(o.interval, 10);
        assert_eq!(o.ipvsadm, DEFAULT_IPVSADM);
        assert_eq!(o.load_cmd, "none");
        assert_eq!(o.method, Method::Masq);
        assert_eq!((o.port, o.rport), (80, 80));
        assert_eq!(o.reentry, None);
        assert_eq!(o.count_thresh(), 18);
        assert_eq!(o.scale, 10);
        assert_eq!(o.weight, 1);
        assert_eq!(o.fwmark, 0);
        assert_eq!(o.vip, None);
        assert_eq!(o.report_fd, None);
        assert!(!o.test_start && !o.suppress);
        // The real port follows the virtual port when not given.
        assert_eq!(run("-h 10.0.0.2 -p 443 --lvs").rport, 443);
        // --fos: reentry defaults to the interval.
        let o = run("-h 10.0.0.2 --fos -t 4");
        assert_eq!((o.service, o.count_thresh()), (Service::Fos, 1));
        // Both: fos wins, as in Piranha.
        assert_eq!(run("-h 1.2.3.4 --lvs --fos").service, Service::Fos);
    }

    #[test]
    fn count_thresh_table() {
        for (a, t, want) in [
            (180, 10, 18),
            (15, 6, 2),
            (60, 10, 6),
            (5, 10, 1), // Piranha: 0
            (0, 10, 1), // Piranha: the default 180 s
            (19, 1, 19),
            (1, 1, 1),
        ] {
            let o = run(&format!("-h 1.2.3.4 --lvs -a {a} -t {t}"));
            assert_eq!(o.count_thresh(), want, "-a {a} -t {t}");
        }
    }

    #[test]
    fn popt_forms() {
        let o = run("-cnqvuT -t5 -h 10.0.0.2 --weight=0x20 --port 010 -r=99 --lvs");
        assert!(o.nofork && o.nodaemon && o.quiesce && o.verbose && o.udp && o.suppress);
        assert_eq!((o.interval, o.weight, o.port, o.rport), (5, 32, 8, 99));
        // The next word is the argument even when it looks like an option.
        let o = parse_strs(&["nanny", "-h", "10.0.0.2", "-s", "-x", "--lvs"]).unwrap();
        match o {
            Parsed::Run(o) => {
                assert_eq!(o.send.as_deref(), Some(&b"-x"[..]));
                assert_eq!(o.expect, None);
            }
            p => panic!("{p:?}"),
        }
        // Repeated: the last wins.
        assert_eq!(run("-h 1.1.1.1 -h 2.2.2.2 -w 3 -w 4 --lvs").weight, 4);
        // An empty integer is 0 for popt.
        let o = parse_strs(&["nanny", "-h", "1.2.3.4", "-w", "", "--lvs"]).unwrap();
        assert!(matches!(o, Parsed::Run(o) if o.weight == 0));
        // Leading blanks and a sign are strtol's.
        let o = parse_strs(&["nanny", "-h", "1.2.3.4", "-w", " +7", "--lvs"]).unwrap();
        assert!(matches!(o, Parsed::Run(o) if o.weight == 7));
        // Non-UTF-8 strings pass through.
        let v: Vec<OsString> = vec![
            "nanny".into(),
            "-h".into(),
            "1.2.3.4".into(),
            "-s".into(),
            OsString::from_vec(vec![0xff, b'a']),
            "--lvs".into(),
        ];
        assert!(matches!(parse(&v).unwrap(), Parsed::Run(o) if o.send == Some(vec![0xff, b'a'])));
    }

    #[test]
    fn popt_errors() {
        assert_eq!(
            fail("-h 1.2.3.4 --lvs --bogus"),
            "nanny: bad argument --bogus: unknown option\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -cz"),
            "nanny: bad argument -cz: unknown option\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -t"),
            "nanny: bad argument -t: missing argument\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -t abc"),
            "nanny: bad argument abc: invalid numeric value\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs --interval=5s"),
            "nanny: bad argument --interval=5s: invalid numeric value\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -w 4294967296"),
            "nanny: bad argument 4294967296: number too large or too small\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -w 99999999999999999999"),
            "nanny: bad argument 99999999999999999999: number too large or too small\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs --regex=1"),
            "nanny: bad argument --regex=1: option does not take an argument\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -t 08"),
            "nanny: bad argument 08: invalid numeric value\n"
        );
        // No abbreviations.
        assert_eq!(
            fail("-h 1.2.3.4 --lvs --interv 5"),
            "nanny: bad argument --interv: unknown option\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs extra"),
            "nanny: unexpected arguments\n"
        );
        assert_eq!(
            fail("-h 1.2.3.4 --lvs -- -t"),
            "nanny: unexpected arguments\n"
        );
    }

    #[test]
    fn piranha_validation_messages() {
        assert_eq!(
            fail("--lvs"),
            "nanny: No address supplied. Use '--help' for help. \n"
        );
        assert_eq!(
            fail("-h 10.0.0.256 --lvs"),
            "nanny: bad IP address -- 10.0.0.256\n"
        );
        assert_eq!(
            fail("-h www.example.com --lvs"),
            "nanny: bad IP address -- www.example.com\n"
        );
        assert_eq!(fail("-h 1.2.3.4"), "nanny: unknown service type\n");
        // Order: popt errors before the address check.
        assert_eq!(
            fail("--bogus"),
            "nanny: bad argument --bogus: unknown option\n"
        );
    }

    #[test]
    fn inet_aton_and_ipv6_addresses() {
        assert_eq!(
            run("-h 10.1 --lvs").server,
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            run("-h 0x7f.1 --lvs").server,
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            run("-h 2001:db8::5 --lvs").server,
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn new_validation_names_the_option() {
        let m = fail("-h 1.2.3.4 --lvs -t 0");
        assert!(
            m.starts_with("nanny: --interval (-t) must be at least 1 second"),
            "{m}"
        );
        assert!(m.ends_with(", not 0\n"), "{m}");
        assert!(fail("-h 1.2.3.4 --lvs --interval -5").contains("--interval (-t)"));
        assert!(fail("-h 1.2.3.4 --lvs -p 65536").contains("--port (-p) must be a port number"));
        assert!(fail("-h 1.2.3.4 --lvs -r 70000").contains("--rport (-r)"));
        assert!(fail("-h 1.2.3.4 --lvs -p 0").contains("real port 0 cannot be checked"));
        assert!(fail("-h 1.2.3.4 --lvs -w -1").contains("--weight (-w) must be between 0"));
        assert!(fail("-h 1.2.3.4 --lvs -S 0").contains("--scale (-S) must be at least 1"));
        assert!(fail("-h 1.2.3.4 --lvs -a -1").contains("--reentrytime (-a)"));
        assert!(fail("-h 1.2.3.4 --lvs -f -1").contains("--fwmark (-f)"));
        assert!(fail("-h 1.2.3.4 --lvs --report-fd -2").contains("--report-fd"));
        assert!(fail("-h 1.2.3.4 --lvs -e").contains("missing argument"));
        let v = ["nanny", "-h", "1.2.3.4", "--lvs", "-e", "  "];
        assert!(parse_strs(&v)
            .unwrap_err()
            .0
            .contains("--send_program (-e) is empty"));
        let v = ["nanny", "-h", "1.2.3.4", "--lvs", "-U", ""];
        assert!(parse_strs(&v)
            .unwrap_err()
            .0
            .contains("--loadcmd (-U) is empty"));
        // Port 0 is fine with a program (fwmark services), and -r -1 means "not given".
        let o = run("-h 1.2.3.4 --lvs -p 0 -e /bin/true");
        assert_eq!(o.rport, 0);
        assert_eq!(run("-h 1.2.3.4 --lvs -p 25 -r -1").rport, 25);
        // fwmark takes the whole u32 range.
        assert_eq!(run("-h 1.2.3.4 --lvs -f 4294967295").fwmark, u32::MAX);
    }

    #[test]
    fn method_letters() {
        for (arg, m) in [
            ("m", Method::Masq),
            ("-m", Method::Masq),
            ("g", Method::Gate),
            ("-g", Method::Gate),
            ("gate", Method::Gate),
            ("i", Method::Ipip),
            ("-i", Method::Ipip),
            ("t", Method::Masq), // the man page's "t" never worked
            ("", Method::Masq),
            ("--g", Method::Masq),
        ] {
            assert_eq!(Method::from_arg(arg.as_bytes()), m, "{arg:?}");
        }
    }

    #[test]
    fn help_usage_version() {
        for (line, needle) in [
            ("--help", "Usage: nanny [OPTION...]"),
            ("-?", "  -t, --interval=INT"),
            ("--usage", "[-t|--interval INT]"),
            ("--version", "Program Version:\tnanny 1.46\n"),
            // --version wins over missing options, after popt errors.
            ("--version --lvs", "nanny 1.46"),
        ] {
            let mut v = vec!["nanny"];
            v.extend(line.split_whitespace());
            match parse_strs(&v) {
                Ok(Parsed::Print(t)) => assert!(t.contains(needle), "{line}: {t}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let help = help_text();
        for opt in OPTIONS {
            assert!(help.contains(&format!("--{}", opt.long)), "{}", opt.long);
        }
    }

    #[test]
    fn escapes() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET / HTTP/1.0\\r\\n\\r\\n", b"GET / HTTP/1.0\r\n\r\n"),
            (b"a\\tb", b"a\tb"),
            (b"\\\\n", b"\\n"),
            (b"\\'x\\\"", b"'x\""),
            // Unknown escapes stay (Piranha looped for ever here).
            (b"HTTP/1\\.1", b"HTTP/1\\.1"),
            (b"\\d+", b"\\d+"),
            (b"end\\", b"end\\"),
            // Shorter than 2: untouched.
            (b"\\", b"\\"),
            (b"", b""),
            (b"\\n", b"\n"),
        ];
        for (i, o) in cases {
            assert_eq!(
                convert_escapes(i),
                o.to_vec(),
                "{:?}",
                String::from_utf8_lossy(i)
            );
        }
    }

    /// Random command lines (words drawn from options, numbers, junk and raw bytes) never
    /// panic: they parse or give a message.
    #[test]
    fn random_command_lines_never_panic() {
        let words: &[&[u8]] = &[
            b"-t",
            b"-h",
            b"--lvs",
            b"--fos",
            b"-cnq",
            b"-t5",
            b"--interval=",
            b"--",
            b"-",
            b"127.0.0.1",
            b"0x10",
            b"-1",
            b"99999999999",
            b"",
            b"=",
            b"-=",
            b"-t=",
            b"--regex=",
            b"-e",
            b"-s",
            b"-x",
            b"\\",
            b"\xff\xfe",
            b"--report-fd",
            b"-f",
            b"4294967296",
            b"-?",
            b"--usage",
            b"--version",
            b"-p",
            b"-r",
            b"0",
            b"::1",
            b"-w",
            b"-S",
            b"-a",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let n = (next() % 9) as usize;
            let mut argv = vec![OsString::from("nanny")];
            for _ in 0..n {
                let w = words[(next() % words.len() as u64) as usize];
                argv.push(OsString::from_vec(w.to_vec()));
            }
            match parse(&argv) {
                Ok(_) => {}
                Err(ArgError(m)) => assert!(m.starts_with("nanny: ") && m.ends_with('\n'), "{m:?}"),
            }
        }
    }

    #[test]
    fn popt_long_is_strtol_base_0() {
        for (s, v) in [
            ("0", Ok(0)),
            ("", Ok(0)),
            ("10", Ok(10)),
            ("0x1f", Ok(31)),
            ("0X1F", Ok(31)),
            ("017", Ok(15)),
            ("-3", Ok(-3)),
            ("  4", Ok(4)),
            ("4 ", Err(PoptError::BadNumber)),
            ("0x", Err(PoptError::BadNumber)),
            ("x", Err(PoptError::BadNumber)),
            ("-", Err(PoptError::BadNumber)),
            ("9223372036854775807", Err(PoptError::Overflow)),
            ("9223372036854775806", Ok(9223372036854775806)),
        ] {
            assert_eq!(popt_long(s.as_bytes()), v, "{s:?}");
        }
    }
}
