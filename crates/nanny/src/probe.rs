//! The socket health check (Piranha's `pinger`, spec §4.5), without Piranha's ICMP echo (its
//! reply was never awaited and the raw socket needed root).
//!
//! TCP: a non-blocking connect with a timeout of one interval; the send string, if any; then, if
//! an expect string is set, the reply is read **until** it can be judged: the expect string's
//! length for a prefix match (a differing byte fails at once), one byte for `*`, a match for a
//! regular expression, or the end of the stream, the buffer limit or a timeout of one interval.
//! Piranha judged a single `read()`, so a reply split across segments failed.
//!
//! UDP: the send string (an empty datagram when there is none, so that a closed port answers
//! with ICMP unreachable), then the first datagram back is judged. Without an expect string any
//! datagram is success (Piranha dereferenced NULL here). ICMP unreachable (`ECONNREFUSED`) or no
//! datagram within the interval is failure.
//!
//! The judging ([`Expect::judge`]) is pure; [`Prober::probe`] does the socket work with as few
//! system calls as it can (1,000 nannies probing every second is the benchmark).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::machine::Level;
use crate::posix_regex::{PosixRegex, RegexError};
use crate::sys::{self, Mask, Polled, Signals};

/// Largest reply kept for judging (Piranha: 254 bytes of one read).
pub const REPLY_LIMIT: usize = 4096;

/// How the reply is judged.
#[derive(Debug)]
pub enum Expect {
    /// No expect string: TCP succeeds once connected (and the send string written); UDP needs a
    /// datagram back.
    Nothing,
    /// `*`: any one byte.
    AnyByte,
    /// The reply must start with these bytes.
    Prefix(Vec<u8>),
    /// `--regex`: the reply (up to [`REPLY_LIMIT`] bytes, NUL bytes included) must match this
    /// POSIX extended regular expression somewhere.
    Regex(PosixRegex),
}

/// A judgement on the reply so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Mismatch, with the reason.
    Fail(Why),
    /// Read more (unless the stream ended: then it is [`Expect::judge_final`]'s call).
    More,
}

/// Why a reply failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Fewer bytes than needed: (got, wanted).
    TooShort(usize, usize),
    /// The bytes differ from the expect string, or the regex did not match.
    Mismatch,
}

impl Expect {
    /// Builds the matcher for an expect string (escapes already converted). An empty expect
    /// string is no expect string.
    pub fn new(expect: Option<&[u8]>, regex: bool) -> Result<Expect, RegexError> {
        match expect {
            None | Some(b"") => Ok(Expect::Nothing),
            Some(e) if regex => PosixRegex::new(e).map(Expect::Regex),
            Some(b"*") => Ok(Expect::AnyByte),
            Some(e) => Ok(Expect::Prefix(e.to_vec())),
        }
    }

    /// True when a reply is read at all (TCP with an expect string; UDP always).
    pub fn reads(&self, udp: bool) -> bool {
        udp || !matches!(self, Expect::Nothing)
    }

    /// Judges the reply so far on a stream that may still bring more.
    pub fn judge(&self, reply: &[u8]) -> Verdict {
        match self {
            Expect::Nothing => Verdict::Pass,
            Expect::AnyByte => {
                if reply.is_empty() {
                    Verdict::More
                } else {
                    Verdict::Pass
                }
            }
            Expect::Prefix(e) => {
                let n = reply.len().min(e.len());
                if reply[..n] != e[..n] {
                    Verdict::Fail(Why::Mismatch)
                } else if reply.len() >= e.len() {
                    Verdict::Pass
                } else {
                    Verdict::More
                }
            }
            Expect::Regex(r) => {
                if r.is_match(reply) {
                    Verdict::Pass
                } else if reply.len() >= REPLY_LIMIT {
                    Verdict::Fail(Why::Mismatch)
                } else {
                    Verdict::More
                }
            }
        }
    }

    /// Judges a reply that will not grow (end of stream, or one UDP datagram).
    pub fn judge_final(&self, reply: &[u8]) -> Verdict {
        match self.judge(reply) {
            Verdict::More => match self {
                Expect::AnyByte => Verdict::Fail(Why::TooShort(reply.len(), 1)),
                Expect::Prefix(e) => Verdict::Fail(Why::TooShort(reply.len(), e.len())),
                _ => Verdict::Fail(Why::Mismatch),
            },
            v => v,
        }
    }
}

/// A failed check: the text (Piranha's wording where it had one) and how loudly Piranha logged
/// it (some failures it logged only with `-v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub level: Level,
    pub text: String,
}

/// Why a probe did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    Failed(Failure),
    /// SIGTERM/SIGINT arrived: stop everything.
    Interrupted,
}

fn failed(level: Level, text: String) -> ProbeError {
    ProbeError::Failed(Failure { level, text })
}

/// The probe of one real server, with its reusable reply buffer.
#[derive(Debug)]
pub struct Prober {
    addr: SocketAddr,
    /// `RIP:RPORT` for messages.
    name: String,
    udp: bool,
    send: Option<Vec<u8>>,
    expect: Expect,
    timeout: Duration,
    buf: Vec<u8>,
}

impl Prober {
    pub fn new(
        addr: SocketAddr,
        udp: bool,
        send: Option<Vec<u8>>,
        expect: Expect,
        timeout: Duration,
    ) -> Prober {
        let cap = match &expect {
            // Room for a short reply in one read, so the connection closes without a reset.
            Expect::Prefix(e) => e.len().max(512),
            Expect::Regex(_) => REPLY_LIMIT,
            _ => 512,
        };
        Prober {
            name: crate::format_addr(&addr),
            addr,
            udp,
            send: send.filter(|s| !s.is_empty()),
            expect,
            timeout,
            buf: vec![0; cap],
        }
    }

    /// Runs one check. `Ok` is success.
    pub fn probe(&mut self, signals: &Signals) -> Result<(), ProbeError> {
        let sock = socket(&self.addr, self.udp).map_err(|e| {
            failed(
                Level::Debug,
                format!("Failed to create socket: {}", errtext(&e)),
            )
        })?;
        let fd = sock.as_raw_fd();
        let connect_deadline = Instant::now() + self.timeout;
        let mut connected = match connect(fd, &self.addr) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
            Err(e) => return Err(self.connect_failed(&e)),
        };
        if self.udp {
            connected = true;
        }

        // Send (optimistically: on loopback and fast links the connection is usually up by now,
        // and a send on a socket still connecting says EAGAIN).
        let empty: &[u8] = &[];
        let send: &[u8] = match (&self.send, self.udp) {
            (Some(s), _) => s,
            (None, true) => empty,
            (None, false) => {
                if !connected {
                    self.wait_connected(fd, connect_deadline, signals)?;
                }
                if !self.expect.reads(false) {
                    return Ok(());
                }
                &[]
            }
        };
        if self.udp || !send.is_empty() {
            let write_deadline = Instant::now() + self.timeout;
            let mut sent = 0;
            loop {
                match send_some(fd, &send[sent..]) {
                    Ok(n) => {
                        sent += n;
                        if sent >= send.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Still connecting, or the send buffer is full.
                        if !connected {
                            self.wait_connected(fd, connect_deadline, signals)?;
                            connected = true;
                        } else {
                            self.wait(fd, libc::POLLOUT, write_deadline, signals, "WRITE to")?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if !connected => return Err(self.connect_failed(&e)),
                    Err(e) => {
                        return Err(failed(
                            Level::Info,
                            format!(
                                "WRITE operation for {} returned error: {}",
                                self.name,
                                errtext(&e)
                            ),
                        ))
                    }
                }
            }
        }
        if !self.expect.reads(self.udp) {
            return Ok(());
        }
        self.read_reply(fd, signals)
    }

    fn connect_failed(&self, e: &io::Error) -> ProbeError {
        // Piranha logged a refused connection only with -v.
        failed(
            Level::Debug,
            format!("CONNECT to {} failed: {}", self.name, errtext(e)),
        )
    }

    fn wait_connected(
        &self,
        fd: RawFd,
        deadline: Instant,
        signals: &Signals,
    ) -> Result<(), ProbeError> {
        self.wait(fd, libc::POLLOUT, deadline, signals, "CONNECT to")?;
        match so_error(fd) {
            Ok(0) => Ok(()),
            Ok(errno) => Err(self.connect_failed(&io::Error::from_raw_os_error(errno))),
            Err(e) => Err(self.connect_failed(&e)),
        }
    }

    /// Waits for `events` until `deadline`; a timeout is "`what` RIP:PORT timed out".
    fn wait(
        &self,
        fd: RawFd,
        events: libc::c_short,
        deadline: Instant,
        signals: &Signals,
        what: &str,
    ) -> Result<(), ProbeError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [sys::pollfd(fd, events)];
            let r = if left.is_zero() {
                Ok(Polled::Timeout)
            } else {
                sys::ppoll(&mut fds, Some(left), signals, Mask::Busy)
            };
            match r {
                Ok(Polled::Ready) => return Ok(()),
                Ok(Polled::Timeout) => {
                    return Err(failed(
                        Level::Info,
                        format!("{what} {} timed out", self.name),
                    ))
                }
                Ok(Polled::Interrupted) => {
                    if sys::term_signal().is_some() {
                        return Err(ProbeError::Interrupted);
                    }
                }
                Err(e) => {
                    return Err(failed(
                        Level::Info,
                        format!("poll() call to {} failed: {}", self.name, errtext(&e)),
                    ))
                }
            }
        }
    }

    fn read_reply(&mut self, fd: RawFd, signals: &Signals) -> Result<(), ProbeError> {
        let deadline = Instant::now() + self.timeout;
        let mut len = 0usize;
        loop {
            self.wait(fd, libc::POLLIN, deadline, signals, "READ to")?;
            let room = &mut self.buf[len..];
            // SAFETY: recv into the unused tail of our own buffer.
            let n =
                unsafe { libc::recv(fd, room.as_mut_ptr().cast(), room.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                    _ => {
                        let errno = e.raw_os_error().unwrap_or(0);
                        return Err(failed(
                            Level::Info,
                            format!(
                                "READ returned error {errno}:{} ({})",
                                sys::strerror(errno),
                                self.name
                            ),
                        ));
                    }
                }
            }
            let n = n as usize;
            len += n;
            let reply = &self.buf[..len];
            // A UDP datagram is the whole reply; on TCP 0 bytes is the end of the stream.
            let done = self.udp || n == 0 || len == self.buf.len();
            let verdict = if done {
                self.expect.judge_final(reply)
            } else {
                self.expect.judge(reply)
            };
            match verdict {
                Verdict::Pass => return Ok(()),
                Verdict::More => {}
                Verdict::Fail(Why::TooShort(got, want)) => {
                    return Err(failed(
                        Level::Info,
                        format!("READ from {} was too short[{got}>={want}]", self.name),
                    ))
                }
                Verdict::Fail(Why::Mismatch) => {
                    return Err(failed(
                        Level::Info,
                        format!(
                            "READ from {} did not match the expected reply (got \"{}\")",
                            self.name,
                            shown(reply)
                        ),
                    ))
                }
            }
        }
    }
}

/// The start of a reply, printable, for a log line.
fn shown(reply: &[u8]) -> String {
    let mut s = String::new();
    for &b in reply.iter().take(40) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if reply.len() > 40 {
        s.push_str("...");
    }
    s
}

fn errtext(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => sys::strerror(n),
        None => e.to_string(),
    }
}

fn socket(addr: &SocketAddr, udp: bool) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let (ty, proto) = if udp {
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP)
    } else {
        (libc::SOCK_STREAM, libc::IPPROTO_TCP)
    };
    // SAFETY: socket() returns a new descriptor we own, or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn connect(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    // SAFETY: the sockaddr structures are fully initialised and outlive the call.
    let r = unsafe {
        match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_flowinfo = a.flowinfo();
                sa.sin6_scope_id = a.scope_id();
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn send_some(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: send from a valid slice; MSG_NOSIGNAL so a reset peer gives EPIPE, not SIGPIPE.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn so_error(fd: RawFd) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int into `v`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> Expect {
        Expect::new(Some(s.as_bytes()), false).unwrap()
    }

    #[test]
    fn building_matchers() {
        assert!(matches!(Expect::new(None, false), Ok(Expect::Nothing)));
        assert!(matches!(Expect::new(Some(b""), true), Ok(Expect::Nothing)));
        assert!(matches!(
            Expect::new(Some(b"*"), false),
            Ok(Expect::AnyByte)
        ));
        // With --regex, "*" is a (bad) regex, not the wildcard.
        assert!(Expect::new(Some(b"*"), true).is_err());
        assert!(matches!(
            Expect::new(Some(b"HTTP"), false),
            Ok(Expect::Prefix(_))
        ));
        assert!(matches!(
            Expect::new(Some(b"HTTP/1\\.[01] 200"), true),
            Ok(Expect::Regex(_))
        ));
        assert!(Expect::new(Some(b"(unclosed"), true).is_err());
    }

    #[test]
    fn prefix_reads_until_its_length_and_fails_early() {
        let e = prefix("HTTP");
        assert_eq!(e.judge(b""), Verdict::More);
        assert_eq!(e.judge(b"HT"), Verdict::More);
        assert_eq!(e.judge(b"HTTP"), Verdict::Pass);
        assert_eq!(e.judge(b"HTTP/1.0 200 OK\r\n"), Verdict::Pass);
        assert_eq!(e.judge(b"HX"), Verdict::Fail(Why::Mismatch));
        assert_eq!(e.judge(b"220 ftp"), Verdict::Fail(Why::Mismatch));
        // Case matters, as with strncmp.
        assert_eq!(e.judge(b"http"), Verdict::Fail(Why::Mismatch));
        assert_eq!(e.judge_final(b"HT"), Verdict::Fail(Why::TooShort(2, 4)));
        assert_eq!(e.judge_final(b""), Verdict::Fail(Why::TooShort(0, 4)));
        assert_eq!(e.judge_final(b"HTTP"), Verdict::Pass);
    }

    #[test]
    fn wildcard_needs_one_byte() {
        let e = prefix("*");
        assert_eq!(e.judge(b""), Verdict::More);
        assert_eq!(e.judge(b"x"), Verdict::Pass);
        assert_eq!(e.judge(b"\0"), Verdict::Pass);
        assert_eq!(e.judge_final(b""), Verdict::Fail(Why::TooShort(0, 1)));
        // "**" is a literal prefix, as in Piranha (only a lone * is the wildcard).
        assert_eq!(prefix("**").judge(b"ab"), Verdict::Fail(Why::Mismatch));
    }

    #[test]
    fn regex_reads_until_a_match() {
        let e = Expect::new(Some(b"HTTP/1\\.[01] 200"), true).unwrap();
        assert_eq!(e.judge(b"HTTP/1.1 2"), Verdict::More);
        assert_eq!(e.judge(b"HTTP/1.1 200 OK"), Verdict::Pass);
        assert_eq!(
            e.judge_final(b"HTTP/1.1 503 Busy"),
            Verdict::Fail(Why::Mismatch)
        );
        // Unanchored, like regexec.
        let e = Expect::new(Some(b"ok"), true).unwrap();
        assert_eq!(e.judge(b"all is ok\n"), Verdict::Pass);
        // Nothing more can come once the buffer is full.
        let e = Expect::new(Some(b"never"), true).unwrap();
        assert_eq!(
            e.judge(&vec![b'x'; REPLY_LIMIT]),
            Verdict::Fail(Why::Mismatch)
        );
        // POSIX classes and anchors.
        let e = Expect::new(Some(b"^[[:digit:]]{3} "), true).unwrap();
        assert_eq!(e.judge_final(b"220 ready"), Verdict::Pass);
        assert_eq!(e.judge_final(b"x220 ready"), Verdict::Fail(Why::Mismatch));
        // POSIX ERE, not Perl: `\d` is a literal `d`.
        let e = Expect::new(Some(b"^\\d"), true).unwrap();
        assert_eq!(e.judge_final(b"220"), Verdict::Fail(Why::Mismatch));
        assert_eq!(e.judge_final(b"d"), Verdict::Pass);
    }

    #[test]
    fn regex_sees_past_nul_bytes() {
        // The whole reply is matched (Piranha's regexec stopped at the first NUL).
        let e = Expect::new(Some(b"^HTTP/1\\.[01] 200"), true).unwrap();
        assert_eq!(e.judge(b"HTTP/1.0 \0"), Verdict::More);
        assert_eq!(
            e.judge_final(b"\0HTTP/1.0 200"),
            Verdict::Fail(Why::Mismatch)
        );
        let e = Expect::new(Some(b"READY"), true).unwrap();
        assert_eq!(e.judge(b"\x00\x01\x02\0READY\0"), Verdict::Pass);
        // Only the bytes read so far count, whatever the buffer holds after them.
        let buf = b"READY";
        assert_eq!(e.judge(&buf[..4]), Verdict::More);
    }

    #[test]
    fn invalid_regex_message() {
        let msg = |p: &[u8]| match Expect::new(Some(p), true) {
            Err(e) => e.to_string(),
            Ok(e) => panic!("{e:?}"),
        };
        assert_eq!(msg(b"(unclosed"), "Unmatched ( or \\(");
        assert_eq!(msg(b"*"), "Invalid preceding regular expression");
        assert_eq!(msg(b"[[:digits:]]"), "Invalid character class name");
    }

    #[test]
    fn nothing_expected() {
        assert_eq!(Expect::Nothing.judge(b""), Verdict::Pass);
        assert_eq!(Expect::Nothing.judge_final(b""), Verdict::Pass);
        assert!(Expect::Nothing.reads(true));
        assert!(!Expect::Nothing.reads(false));
        assert!(prefix("x").reads(false));
    }

    #[test]
    fn shown_escapes_replies() {
        assert_eq!(
            shown(b"HTTP/1.0 503\r\n\x01\""),
            "HTTP/1.0 503\\r\\n\\x01\\\""
        );
        assert_eq!(shown(&[b'a'; 50]), format!("{}...", "a".repeat(40)));
    }
}
