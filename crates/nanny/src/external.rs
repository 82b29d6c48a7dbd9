//! External programs: the `send_program` health check (spec §4.5) and the load command (§4.6).
//!
//! A program runs with a PATH search (Piranha used `execvp`), stdin and stderr on /dev/null,
//! stdout on a pipe, default signal dispositions and an empty signal mask. It gets one interval
//! to finish; then it is killed with SIGKILL. SIGTERM/SIGINT to nanny kill it at once.
//! All of its output up to [`OUTPUT_LIMIT`] bytes is kept (Piranha kept what a single `read()`
//! returned) and the rest is read and dropped, so a talkative program never blocks on a full pipe.
//!
//! The result rules for `send_program` ([`judge`]), which fix Piranha's (docs/compatibility.md):
//! - the program could not be started, ran out of time, died of a signal or exited non-zero:
//!   **failure** (Piranha: success when an expect string was set);
//! - it exited 0 and no expect string is set: **success**, whatever it printed (Piranha: always
//!   failure, since it compared a non-NULL output with a NULL expect string);
//! - it exited 0 and an expect string is set: its output, less one trailing newline (`\n` or
//!   `\r\n`), must equal the expect string exactly, or match it with `--regex` (Piranha chopped
//!   the last byte whatever it was, and ignored `--regex` here).

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::machine::Level;
use crate::posix_regex::{PosixRegex, RegexError};
use crate::probe::Failure;
use crate::sys::{self, Mask, Polled, Signals};

/// Output kept for judging (Piranha's buffer held 4095 bytes).
pub const OUTPUT_LIMIT: usize = 4095;

/// Splits a `send_program` the way Piranha did (`strtok` on single spaces: runs of spaces
/// separate, no quoting) and replaces each word that is exactly `%h` by the real server's address
/// and `%p` by its port. `--host=%h` stays as it is (whole words only, as in Piranha).
pub fn split_command(cmd: &[u8], host: &str, port: u16) -> Vec<OsString> {
    cmd.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            b"%h" => OsString::from(host),
            b"%p" => OsString::from(port.to_string()),
            w => OsString::from_vec(w.to_vec()),
        })
        .collect()
}

/// How a program ended.
#[derive(Debug)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    NotStarted(io::Error),
    /// SIGTERM/SIGINT to nanny: the program was killed.
    Interrupted,
}

/// A finished program: how it ended and what it printed (first [`OUTPUT_LIMIT`] bytes).
#[derive(Debug)]
pub struct Captured {
    pub outcome: Outcome,
    pub output: Vec<u8>,
}

/// Runs `argv` with a timeout, capturing its standard output.
pub fn run_capture(argv: &[OsString], timeout: Duration, signals: &Signals) -> Captured {
    let Some((prog, args)) = argv.split_first() else {
        return Captured {
            outcome: Outcome::NotStarted(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty command",
            )),
            output: Vec::new(),
        };
    };
    let spawned = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return Captured {
                outcome: Outcome::NotStarted(e),
                output: Vec::new(),
            }
        }
    };
    let mut output = Vec::new();
    let outcome = supervise(&mut child, timeout, signals, &mut output);
    Captured { outcome, output }
}

fn supervise(
    child: &mut Child,
    timeout: Duration,
    signals: &Signals,
    output: &mut Vec<u8>,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut pipe = child.stdout.take();
    if let Some(p) = &pipe {
        set_nonblocking(p.as_raw_fd());
    }
    sys::take_child();
    loop {
        if sys::term_signal().is_some() {
            kill(child);
            return Outcome::Interrupted;
        }
        if let Some(p) = pipe.as_mut() {
            if drain(p, output) {
                pipe = None;
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                // Whatever it wrote before exiting is in the pipe now; a descendant that keeps
                // the pipe open does not hold the check up.
                if let Some(p) = pipe.as_mut() {
                    drain(p, output);
                }
                return status_outcome(status);
            }
            Ok(None) => {}
            Err(e) => {
                kill(child);
                return Outcome::NotStarted(e);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill(child);
            return Outcome::TimedOut;
        }
        let mut fds = [sys::pollfd(
            pipe.as_ref().map_or(-1, |p| p.as_raw_fd()),
            libc::POLLIN,
        )];
        // A negative fd is ignored by poll: with the pipe closed this waits for SIGCHLD.
        match sys::ppoll(&mut fds, Some(left), signals, Mask::Busy) {
            Ok(Polled::Interrupted) => {
                sys::take_child();
            }
            Ok(_) => {}
            Err(_) => {
                // Should not happen; do not spin.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Reads what is available; true at end of file (or a read error).
fn drain(p: &mut std::process::ChildStdout, output: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match p.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(output.len());
                output.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn status_outcome(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(c), _) => Outcome::Exited(c),
        (None, Some(s)) => Outcome::Signaled(s),
        (None, None) => Outcome::Exited(-1),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on our own pipe descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// The command line for log messages: words separated by spaces.
pub fn describe(argv: &[OsString]) -> String {
    let v: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
    v.iter()
        .map(|w| w.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a `send_program`'s output must be.
#[derive(Debug)]
pub enum Want {
    /// No expect string: exit status 0 is enough.
    Success,
    /// The output (less a trailing newline) equals these bytes.
    Exact(Vec<u8>),
    /// `--regex`: the output (less a trailing newline) matches this POSIX extended regular
    /// expression somewhere.
    Regex(PosixRegex),
}

impl Want {
    /// An empty expect string is none (Piranha never passed one: lvsd omits unset strings).
    pub fn new(expect: Option<&[u8]>, regex: bool) -> Result<Want, RegexError> {
        match expect {
            None | Some(b"") => Ok(Want::Success),
            Some(e) if regex => PosixRegex::new(e).map(Want::Regex),
            Some(e) => Ok(Want::Exact(e.to_vec())),
        }
    }
}

/// Removes one trailing `\n` (and a `\r` before it).
pub fn chop(out: &[u8]) -> &[u8] {
    let out = out.strip_suffix(b"\n").unwrap_or(out);
    out.strip_suffix(b"\r").unwrap_or(out)
}

/// Judges a finished `send_program` run. `server` is `RIP:RPORT`, `argv` the command.
pub fn judge(c: &Captured, want: &Want, server: &str, argv: &[OsString]) -> Result<(), Failure> {
    let fail = |text: String| {
        Err(Failure {
            level: Level::Info,
            text,
        })
    };
    match &c.outcome {
        Outcome::NotStarted(e) => fail(format!("could not run {}: {e}", describe(argv))),
        Outcome::TimedOut => fail(format!("timeout running the following: {}", describe(argv))),
        Outcome::Signaled(s) => fail(format!(
            "The following exited abnormally: {} (killed by signal {s})",
            describe(argv)
        )),
        Outcome::Exited(code) if *code != 0 => fail(format!(
            "The following exited abnormally: {} (exit status {code})",
            describe(argv)
        )),
        Outcome::Interrupted => fail(format!("interrupted running {}", describe(argv))),
        Outcome::Exited(_) => {
            let out = chop(&c.output);
            let ok = match want {
                Want::Success => true,
                Want::Exact(e) => out == &e[..],
                Want::Regex(r) => r.is_match(out),
            };
            if ok {
                Ok(())
            } else {
                fail(format!(
                    "Trouble. Received results are not what we expected from ({server}): got \"{}\"",
                    String::from_utf8_lossy(&out[..out.len().min(80)]).escape_debug()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[OsString]) -> Vec<String> {
        v.iter().map(|w| w.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn splitting_and_substitution() {
        assert_eq!(
            words(&split_command(
                b"/usr/local/bin/check %h %p",
                "10.0.0.2",
                8080
            )),
            ["/usr/local/bin/check", "10.0.0.2", "8080"]
        );
        // Runs of spaces separate; tabs do not; words are not substituted inside.
        assert_eq!(
            words(&split_command(
                b"  check  --host=%h\t-x %p%p %h ",
                "1.2.3.4",
                80
            )),
            ["check", "--host=%h\t-x", "%p%p", "1.2.3.4"]
        );
        assert!(split_command(b"   ", "1.2.3.4", 80).is_empty());
        // No length or word-count limit (Piranha overflowed 255 bytes / 40 words).
        let long = "w ".repeat(300);
        assert_eq!(split_command(long.as_bytes(), "h", 1).len(), 300);
    }

    fn cap(outcome: Outcome, out: &str) -> Captured {
        Captured {
            outcome,
            output: out.as_bytes().to_vec(),
        }
    }

    #[test]
    fn result_rules() {
        let argv = split_command(b"check %h", "10.0.0.2", 80);
        let exact = Want::new(Some(b"OK"), false).unwrap();
        let none = Want::new(None, false).unwrap();
        let re = Want::new(Some(b"^OK( |$)"), true).unwrap();
        let j = |c: &Captured, w: &Want| judge(c, w, "10.0.0.2:80", &argv);

        // Exit 0.
        assert!(j(&cap(Outcome::Exited(0), "OK\n"), &exact).is_ok());
        assert!(j(&cap(Outcome::Exited(0), "OK\r\n"), &exact).is_ok());
        assert!(j(&cap(Outcome::Exited(0), "OK"), &exact).is_ok()); // Piranha chopped the K
        assert!(j(&cap(Outcome::Exited(0), "OK\n\n"), &exact).is_err());
        assert!(j(&cap(Outcome::Exited(0), "NOT OK\n"), &exact).is_err());
        assert!(j(&cap(Outcome::Exited(0), ""), &exact).is_err());
        assert!(j(&cap(Outcome::Exited(0), "anything\n"), &none).is_ok());
        assert!(j(&cap(Outcome::Exited(0), ""), &none).is_ok());
        assert!(j(&cap(Outcome::Exited(0), "OK then\n"), &re).is_ok());
        assert!(j(&cap(Outcome::Exited(0), "OK\n"), &re).is_ok()); // `$` before the newline
        assert!(j(&cap(Outcome::Exited(0), "NOT OK\n"), &re).is_err());
        assert!(j(&cap(Outcome::Exited(0), "OK\0\n"), &re).is_err());
        let re_nul = Want::new(Some(b"[[:digit:]]+ up$"), true).unwrap();
        assert!(j(&cap(Outcome::Exited(0), "\0 3 up\n"), &re_nul).is_ok());
        assert!(Want::new(Some(b"(OK"), true).is_err());
        // Anything else fails, expect string or not (Piranha: success with one).
        for w in [&exact, &none, &re] {
            for o in [
                Outcome::Exited(1),
                Outcome::Exited(2),
                Outcome::Signaled(9),
                Outcome::TimedOut,
                Outcome::NotStarted(io::Error::from_raw_os_error(libc::ENOENT)),
            ] {
                assert!(j(&cap(o, "OK\n"), w).is_err());
            }
        }
        let e = j(&cap(Outcome::Exited(3), ""), &exact).unwrap_err();
        assert_eq!(
            e.text,
            "The following exited abnormally: check 10.0.0.2 (exit status 3)"
        );
        let e = j(&cap(Outcome::TimedOut, ""), &none).unwrap_err();
        assert_eq!(e.text, "timeout running the following: check 10.0.0.2");
        let e = j(&cap(Outcome::Exited(0), "BAD\n"), &exact).unwrap_err();
        assert_eq!(
            e.text,
            "Trouble. Received results are not what we expected from (10.0.0.2:80): got \"BAD\""
        );
    }

    #[test]
    fn chopping() {
        assert_eq!(chop(b"OK\n"), b"OK");
        assert_eq!(chop(b"OK\r\n"), b"OK");
        assert_eq!(chop(b"OK"), b"OK");
        assert_eq!(chop(b"\n"), b"");
        assert_eq!(chop(b""), b"");
        assert_eq!(chop(b"a\n\n"), b"a\n");
    }
}
