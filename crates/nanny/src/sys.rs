//! The few system interfaces nanny needs, wrapped: signal flags and masks, `ppoll`, file
//! descriptor helpers.
//!
//! Signals follow Piranha's scheme. SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 and SIGCHLD are
//! blocked all the time and only let through inside `ppoll`, with one of two masks:
//! - [`Mask::Sleep`] (between checks): all of them. A handler only records the signal; `ppoll`
//!   returns `EINTR` and the caller reads the record.
//! - [`Mask::Busy`] (during a probe or an external program): only SIGTERM, SIGINT and SIGCHLD, so
//!   a termination request interrupts a check at once while SIGUSR1/SIGUSR2/SIGHUP wait for the
//!   next sleep (as in Piranha, where they were handled only in `sigsuspend`).
//!
//! Nothing runs in a handler except an atomic store, so there is no async-signal-safety concern
//! and no thread.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::time::Duration;

use crate::machine::Glasses;

/// The termination signal received (0: none).
static TERM: AtomicI32 = AtomicI32::new(0);
/// The last of SIGHUP/SIGUSR1/SIGUSR2 received, as Piranha's `nextState` (0: none).
static GLASSES: AtomicU8 = AtomicU8::new(0);
/// A child changed state.
static CHILD: AtomicBool = AtomicBool::new(false);

const G_NORMAL: u8 = 1;
const G_UP: u8 = 2;
const G_DOWN: u8 = 3;

extern "C" fn on_signal(sig: libc::c_int) {
    match sig {
        libc::SIGTERM | libc::SIGINT => TERM.store(sig, Ordering::SeqCst),
        libc::SIGHUP => GLASSES.store(G_NORMAL, Ordering::SeqCst),
        libc::SIGUSR1 => GLASSES.store(G_DOWN, Ordering::SeqCst),
        libc::SIGUSR2 => GLASSES.store(G_UP, Ordering::SeqCst),
        libc::SIGCHLD => CHILD.store(true, Ordering::SeqCst),
        _ => {}
    }
}

const HANDLED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
];

/// Which signals a `ppoll` lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// Between checks: every handled signal.
    Sleep,
    /// During a check: termination and child exit only.
    Busy,
}

/// The signal masks computed once by [`install`].
#[derive(Clone, Copy)]
pub struct Signals {
    sleep: libc::sigset_t,
    busy: libc::sigset_t,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

/// Installs the handlers and blocks the handled signals. Call once, before any thread exists.
pub fn install() -> io::Result<Signals> {
    // SAFETY: plain libc calls on locally owned, initialised sigset_t/sigaction values; the
    // handler only performs atomic stores.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        for s in HANDLED {
            libc::sigaddset(&mut block, s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        for s in HANDLED {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            // No SA_RESTART: a blocking call must return EINTR so the flag is seen.
            sa.sa_flags = if s == libc::SIGCHLD {
                libc::SA_NOCLDSTOP
            } else {
                0
            };
            if libc::sigaction(s, &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // `old` has none of ours (unless inherited blocked: let them through anyway).
        let mut sleep = old;
        for s in HANDLED {
            libc::sigdelset(&mut sleep, s);
        }
        let mut busy = old;
        for s in HANDLED {
            libc::sigaddset(&mut busy, s);
        }
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            libc::sigdelset(&mut busy, s);
        }
        Ok(Signals { sleep, busy })
    }
}

/// The termination signal received so far, if any.
pub fn term_signal() -> Option<i32> {
    match TERM.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Takes the last SIGHUP/SIGUSR1/SIGUSR2 received, if any.
pub fn take_glasses() -> Option<Glasses> {
    match GLASSES.swap(0, Ordering::SeqCst) {
        G_NORMAL => Some(Glasses::Normal),
        G_UP => Some(Glasses::Up),
        G_DOWN => Some(Glasses::Down),
        _ => None,
    }
}

/// Clears the child flag and says whether it was set.
pub fn take_child() -> bool {
    CHILD.swap(false, Ordering::SeqCst)
}

/// Outcome of [`ppoll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// At least one descriptor has events.
    Ready,
    /// The timeout passed.
    Timeout,
    /// A signal was delivered (read the flags).
    Interrupted,
}

/// `ppoll` with one of the signal masks. `timeout` None waits for ever.
pub fn ppoll(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    signals: &Signals,
    mask: Mask,
) -> io::Result<Polled> {
    let ts;
    let tsp = match timeout {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    let set = match mask {
        Mask::Sleep => &signals.sleep,
        Mask::Busy => &signals.busy,
    };
    // SAFETY: `fds` is a valid slice of pollfd; `tsp` is null or points to `ts`, alive here.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tsp, set) };
    if r > 0 {
        Ok(Polled::Ready)
    } else if r == 0 {
        Ok(Polled::Timeout)
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            Ok(Polled::Interrupted)
        } else {
            Err(e)
        }
    }
}

/// A pollfd for `fd` waiting for `events`.
pub fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// True if `fd` is an open descriptor.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Sets close-on-exec on `fd`.
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; errors are reported.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Duplicates `fd` to the lowest free descriptor >= 3 (close-on-exec), then points `fd` at
/// /dev/null. Used when the report pipe arrives as a standard descriptor, which daemonizing
/// and logging would otherwise overwrite or write into.
pub fn move_above_stdio(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: fcntl/open/dup2/close on descriptor numbers; errors are reported.
    unsafe {
        let new = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, fd);
            libc::close(null);
        }
        Ok(new)
    }
}

/// Clears O_NONBLOCK on `fd` (the report pipe: a full pipe must make nanny wait, not fail).
pub fn set_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; errors are reported.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK != 0
            && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `strerror` text of an errno value, as C programs print it.
pub fn strerror(errno: i32) -> String {
    // `io::Error`'s Display appends " (os error N)"; keep C's plain text.
    let s = io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(k) => s[..k].to_string(),
        None => s,
    }
}
