//! Signals through a `signalfd`: every signal whose default action would end pulse without
//! releasing its addresses is blocked and read in the main loop (no handler runs at an awkward
//! moment, and none can be lost between a check and the `ppoll`).
//!
//! | Signal | pulse |
//! |---|---|
//! | SIGTERM, SIGINT, SIGQUIT | release (addresses down, STOPPED to the partner, lvsd stopped), exit 0 |
//! | SIGHUP | forwarded to lvsd; pulse re-reads what it can change without a restart |
//! | SIGCHLD | reap lvsd and the commands |
//! | SIGUSR1 | log the state |
//! | any other that would kill (SIGUSR2, SIGALRM, SIGPIPE, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGXFSZ, SIGSTKFLT, real-time signals) | logged and ignored |
//!
//! Children get an empty signal mask: the driver resets it before `exec` (the standard library
//! does not, and a blocked SIGTERM would make lvsd deaf to pulse's stop).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct SignalFd {
    fd: OwnedFd,
}

/// The signals pulse takes over.
pub fn handled() -> Vec<i32> {
    let mut v = vec![
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGCHLD,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGPIPE,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGSTKFLT,
    ];
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

impl SignalFd {
    /// Blocks the signals in this thread (call before any other thread starts) and opens the
    /// descriptor that reports them.
    pub fn install() -> io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sigemptyset(&mut set) };
        for s in handled() {
            // SAFETY: a valid set and signal numbers.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        // SAFETY: a valid set; the old mask is not needed.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: a valid set; -1 creates a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(SignalFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The signals that arrived (each standard signal at most once per batch, as the kernel
    /// merges pending ones).
    pub fn read(&self) -> Vec<i32> {
        let mut out = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data; read fills it.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n as usize != size {
                return out;
            }
            out.push(info.ssi_signo as i32);
        }
    }
}
