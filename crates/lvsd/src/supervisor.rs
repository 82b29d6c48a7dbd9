//! Nanny processes: spawning with a report pipe, reading reports without blocking, reaping,
//! signalling, restart backoff.
//!
//! Each nanny gets the write end of its own pipe as an inherited descriptor (every other
//! descriptor of lvsd is close-on-exec), named in `NANNY_REPORT_FD`; stdin is /dev/null, stdout
//! and stderr are lvsd's (the terminal with `-n`, /dev/null as a daemon). In the child, before
//! exec, `PR_SET_PDEATHSIG` is set to SIGTERM, so a nanny never outlives lvsd.
//!
//! Children are reaped by pid (`waitpid(pid, WNOHANG)`), never with `waitpid(-1)`, so lvsd only
//! ever collects its own nannies.

use nanny::report::{LineDecoder, Report, ReportError, REPORT_FD_ENV};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The soft `RLIMIT_NOFILE` lvsd started with (0: not raised), given back to each nanny.
static ORIGINAL_NOFILE: AtomicU64 = AtomicU64::new(0);

/// Makes room for `wanted` open files: lvsd holds one pipe per nanny, and the usual soft limit
/// of 1024 (hard 4096) would stop it near a thousand (four thousand) nannies. The soft limit is
/// raised to the hard one, and, if that is still short, both to `wanted` (root may, up to
/// `fs.nr_open`). Nannies get the original soft limit back. Returns the soft limit now in force.
// `rlim_t` is u64 here but not on every target.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit(wanted: u64) -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit structure.
    unsafe {
        cvt(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r))?;
        let original = r.rlim_cur as u64;
        if (r.rlim_max as u64) < wanted {
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(wanted);
            let bigger = libc::rlimit {
                rlim_cur: wanted.min(nr_open) as libc::rlim_t,
                rlim_max: wanted.min(nr_open) as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &bigger) == 0 {
                r = bigger;
            }
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            cvt(libc::setrlimit(libc::RLIMIT_NOFILE, &r))?;
        }
        if r.rlim_cur as u64 != original {
            ORIGINAL_NOFILE.store(original, Ordering::SeqCst);
        }
    }
    Ok(r.rlim_cur as u64)
}

/// A running nanny.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    /// Read end of the report pipe (non-blocking); `None` after end of file.
    pub reader: Option<OwnedFd>,
    pub decoder: LineDecoder,
    pub started: Instant,
    /// The hello line arrived.
    pub hello: bool,
    /// Bad lines received (logged with a limit).
    pub bad_lines: u64,
    /// Its report pipe's token in lvsd's event poller (0: not watched).
    pub token: u64,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "terminated with signal {s}"),
        }
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A pipe, both ends close-on-exec, the read end non-blocking.
fn report_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_nonblocking(r.as_raw_fd())?;
    Ok((r, w))
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Starts `argv` (argv[0] is the program path, and the process's argv[0]) with a report pipe.
pub fn spawn(argv: &[String]) -> io::Result<Child> {
    let Some(program) = argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty argv"));
    };
    let (reader, writer) = report_pipe()?;
    let wfd = writer.as_raw_fd();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let original_nofile = ORIGINAL_NOFILE.load(Ordering::SeqCst);
    let nice = crate::priority::nanny_nice();
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .env(REPORT_FD_ENV, wfd.to_string())
        .stdin(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // lvsd died between fork and prctl: the death signal would never come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            if original_nofile != 0 {
                let mut r = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
                    r.rlim_cur = original_nofile as libc::rlim_t;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &r);
                }
            }
            // Lowering one's own priority needs no privilege; a failure leaves lvsd's.
            if let Some(nice) = nice {
                libc::setpriority(libc::PRIO_PROCESS, 0, nice);
            }
            // The report pipe is the one descriptor the nanny inherits.
            let fl = libc::fcntl(wfd, libc::F_GETFD);
            if fl < 0 || libc::fcntl(wfd, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(writer);
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
    // The std handle is dropped without waiting: lvsd reaps by pid itself.
    drop(child);
    Ok(Child {
        pid,
        reader: Some(reader),
        decoder: LineDecoder::new(),
        started: Instant::now(),
        hello: false,
        bad_lines: 0,
        token: 0,
    })
}

/// What one read pass over a nanny's pipe gave.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub lines: Vec<Result<Report, ReportError>>,
    /// The pipe reached end of file (or failed): the reader was closed.
    pub eof: bool,
}

/// Most bytes read from one nanny per pass, so one chatty nanny cannot starve the others.
const READ_BUDGET: usize = 256 * 1024;

/// Reads whatever the pipe holds now, without blocking.
pub fn read_reports(child: &mut Child) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let Some(fd) = child.reader.as_ref().map(|r| r.as_raw_fd()) else {
        out.eof = true;
        return out;
    };
    let mut buf = [0u8; 8192];
    let mut total = 0;
    loop {
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let n = n as usize;
            out.lines.extend(child.decoder.push(&buf[..n]));
            total += n;
            if total >= READ_BUDGET {
                break;
            }
            continue;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => break,
                _ => {}
            }
        }
        // End of file, or an error that will not go away.
        child.reader = None;
        out.eof = true;
        break;
    }
    out
}

/// Collects the child if it has ended.
pub fn try_reap(pid: i32) -> io::Result<Option<Exit>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on one of our children with a status out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(Some(decode_status(status)));
    }
}

fn decode_status(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}

/// Sends a signal to a child (errors, e.g. an already ended child, are ignored).
pub fn signal(pid: i32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill with a positive pid of our own child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Restart delays after a nanny dies: 1 s, doubled after each death that follows a short run,
/// at most 60 s; back to 1 s after a nanny ran for a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub next: Duration,
    pub min: Duration,
    pub max: Duration,
    /// A run at least this long resets the delay.
    pub stable: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_secs(1),
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
            stable: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    pub fn with(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
            stable: max,
        }
    }

    /// The delay before restarting a nanny that ran for `ran`.
    pub fn delay(&mut self, ran: Duration) -> Duration {
        if ran >= self.stable {
            self.next = self.min;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn script(dir: &Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        writeln!(f, "#!/bin/bash\n{body}").unwrap();
        drop(f);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    fn wait_exit(pid: i32) -> Exit {
        let t0 = Instant::now();
        loop {
            if let Some(e) = try_reap(pid).unwrap() {
                return e;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "child {pid} did not end"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn read_until_eof(c: &mut Child) -> Vec<Result<Report, ReportError>> {
        let t0 = Instant::now();
        let mut all = Vec::new();
        loop {
            let o = read_reports(c);
            all.extend(o.lines);
            if o.eof {
                return all;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn child_reports_through_the_named_descriptor_and_sees_its_argv() {
        let dir = tempfile::tempdir().unwrap();
        // Another close-on-exec descriptor of the parent (as lvsd's netlink socket is): it must
        // not reach the nanny.
        let (other_r, other_w) = report_pipe().unwrap();
        let prog = script(
            dir.path(),
            "nanny",
            r#"out=/proc/self/fd/$NANNY_REPORT_FD
echo "nanny 1 $$ $2:$4" > $out
echo "up $# argv0=$(basename $0)" > $out
leaked=0
for fd in $5 $6; do [ -e /proc/$$/fd/$fd ] && leaked=$((leaked+1)); done
[ -e /proc/$$/fd/$NANNY_REPORT_FD ] || leaked=99
echo "weight $leaked leaked" > $out
exit 3"#,
        );
        let argv: Vec<String> = [
            prog,
            "-h".into(),
            "192.0.2.7".into(),
            "-p".into(),
            "8080".into(),
            other_r.as_raw_fd().to_string(),
            other_w.as_raw_fd().to_string(),
        ]
        .to_vec();
        let mut c = spawn(&argv).unwrap();
        let lines: Vec<Report> = read_until_eof(&mut c)
            .into_iter()
            .map(|l| l.unwrap())
            .collect();
        assert_eq!(
            lines[0],
            Report::Hello {
                version: 1,
                pid: c.pid as u32,
                server: "192.0.2.7:8080".parse().unwrap()
            }
        );
        assert_eq!(
            lines[1],
            Report::Up {
                weight: 6,
                why: "argv0=nanny".into()
            }
        );
        assert_eq!(
            lines[2],
            Report::Weight {
                weight: 0,
                why: "leaked".into()
            }
        );
        assert_eq!(wait_exit(c.pid), Exit::Code(3));
        assert!(c.reader.is_none());
    }

    #[test]
    fn the_open_file_limit_only_grows() {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit with a valid structure.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        let now = raise_fd_limit(16).unwrap();
        assert!(now as u128 >= r.rlim_cur as u128);
    }

    #[test]
    fn missing_program_fails_to_spawn() {
        let e = spawn(&["/nonexistent/nanny".to_string()]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(spawn(&[]).is_err());
    }

    #[test]
    fn signals_and_exit_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let prog = script(dir.path(), "sleeper", "exec sleep 30");
        let c = spawn(&[prog]).unwrap();
        assert_eq!(try_reap(c.pid).unwrap(), None);
        signal(c.pid, libc::SIGTERM);
        assert_eq!(wait_exit(c.pid), Exit::Signal(libc::SIGTERM));
        assert!(try_reap(c.pid).is_err());
        assert_eq!(Exit::Code(1).to_string(), "exited with status 1");
        assert_eq!(Exit::Signal(9).to_string(), "terminated with signal 9");
    }

    #[test]
    fn a_silent_child_reads_as_nothing_yet() {
        let dir = tempfile::tempdir().unwrap();
        let prog = script(dir.path(), "quiet", "exec sleep 30");
        let mut c = spawn(&[prog]).unwrap();
        let o = read_reports(&mut c);
        assert!(o.lines.is_empty() && !o.eof);
        signal(c.pid, libc::SIGKILL);
        wait_exit(c.pid);
        assert!(read_until_eof(&mut c).is_empty());
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_stable_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let got: Vec<u64> = (0..8).map(|_| b.delay(short).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(Duration::from_secs(61)).as_secs(), 1);
        assert_eq!(b.delay(short).as_secs(), 2);
        let mut b = Backoff::with(Duration::from_millis(10), Duration::from_millis(30));
        assert_eq!(
            (0..3)
                .map(|_| b.delay(Duration::ZERO).as_millis())
                .collect::<Vec<_>>(),
            [10, 20, 30]
        );
    }
}
