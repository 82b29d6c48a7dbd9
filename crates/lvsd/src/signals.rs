//! Signals as flags plus a wake-up pipe the main loop polls (signal-hook's self-pipe pattern):
//! handlers only set an atomic and write a byte; everything else happens in the loop.
//!
//! | Signal | lvsd |
//! |---|---|
//! | SIGTERM, SIGINT | shut down: stop nannies, remove owned services, exit 0 |
//! | SIGHUP | reload lvs.cf |
//! | SIGCHLD | collect ended nannies |
//! | SIGUSR1 | log the state of every virtual and real server |
//! | SIGUSR2 | compare the whole owned table with the kernel now and repair drift |

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Signals that arrived since the last [`Signals::take`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// SIGTERM or SIGINT (the number of the last one).
    pub term: Option<i32>,
    pub hup: bool,
    /// How long ago the first SIGHUP of `hup` arrived (measured in its handler).
    pub hup_age: Option<Duration>,
    pub chld: bool,
    pub usr1: bool,
    pub usr2: bool,
}

impl Pending {
    pub fn any(&self) -> bool {
        self.term.is_some() || self.hup || self.chld || self.usr1 || self.usr2
    }
}

pub struct Signals {
    read: OwnedFd,
    write: OwnedFd,
    term: Arc<AtomicUsize>,
    hup: Arc<AtomicBool>,
    /// CLOCK_MONOTONIC (ns) of the first SIGHUP not taken yet; 0: none.
    hup_at: Arc<AtomicU64>,
    chld: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    usr2: Arc<AtomicBool>,
    registered: Vec<signal_hook::SigId>,
}

/// CLOCK_MONOTONIC in nanoseconds (async-signal-safe).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a valid timespec and is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

impl Signals {
    /// The flags and the pipe, without handlers (tests raise signals with [`Signals::raise`]).
    pub fn new() -> io::Result<Signals> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: freshly created descriptors, owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Signals {
            read,
            write,
            term: Arc::new(AtomicUsize::new(0)),
            hup: Arc::new(AtomicBool::new(false)),
            hup_at: Arc::new(AtomicU64::new(0)),
            chld: Arc::new(AtomicBool::new(false)),
            usr1: Arc::new(AtomicBool::new(false)),
            usr2: Arc::new(AtomicBool::new(false)),
            registered: Vec::new(),
        })
    }

    /// The flags, the pipe and the process's handlers for the six signals.
    pub fn install() -> io::Result<Signals> {
        use signal_hook::consts::*;
        let mut s = Signals::new()?;
        for sig in [SIGTERM, SIGINT] {
            s.registered.push(signal_hook::flag::register_usize(
                sig,
                Arc::clone(&s.term),
                sig as usize,
            )?);
        }
        for (sig, flag) in [
            (SIGHUP, &s.hup),
            (SIGCHLD, &s.chld),
            (SIGUSR1, &s.usr1),
            (SIGUSR2, &s.usr2),
        ] {
            s.registered
                .push(signal_hook::flag::register(sig, Arc::clone(flag))?);
        }
        let hup_at = Arc::clone(&s.hup_at);
        // SAFETY: the handler only reads the clock and does an atomic compare-and-swap, both
        // async-signal-safe.
        s.registered.push(unsafe {
            signal_hook::low_level::register(SIGHUP, move || {
                let _ =
                    hup_at.compare_exchange(0, monotonic_ns(), Ordering::SeqCst, Ordering::SeqCst);
            })
        }?);
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2] {
            // signal-hook owns (and closes on unregistration) the descriptor it is given.
            let w = s.write.try_clone()?;
            s.registered
                .push(signal_hook::low_level::pipe::register(sig, w)?);
        }
        Ok(s)
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// As if `sig` had arrived (for tests and internal wake-ups).
    pub fn raise(&self, sig: i32) {
        use signal_hook::consts::*;
        match sig {
            SIGTERM | SIGINT => self.term.store(sig as usize, Ordering::SeqCst),
            SIGHUP => {
                let _ = self.hup_at.compare_exchange(
                    0,
                    monotonic_ns(),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                self.hup.store(true, Ordering::SeqCst)
            }
            SIGCHLD => self.chld.store(true, Ordering::SeqCst),
            SIGUSR1 => self.usr1.store(true, Ordering::SeqCst),
            SIGUSR2 => self.usr2.store(true, Ordering::SeqCst),
            _ => return,
        }
        // SAFETY: a one-byte write to our own non-blocking pipe; a full pipe is fine (the loop is
        // woken already).
        unsafe {
            libc::write(self.write.as_raw_fd(), [0u8].as_ptr().cast(), 1);
        }
    }

    /// Drains the pipe and returns (and clears) the flags.
    pub fn take(&self) -> Pending {
        let mut buf = [0u8; 256];
        // SAFETY: reads into a local buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
        let term = self.term.swap(0, Ordering::SeqCst);
        let hup = self.hup.swap(false, Ordering::SeqCst);
        let hup_at = self.hup_at.swap(0, Ordering::SeqCst);
        Pending {
            term: (term != 0).then_some(term as i32),
            hup,
            hup_age: (hup && hup_at != 0)
                .then(|| Duration::from_nanos(monotonic_ns().saturating_sub(hup_at))),
            chld: self.chld.swap(false, Ordering::SeqCst),
            usr1: self.usr1.swap(false, Ordering::SeqCst),
            usr2: self.usr2.swap(false, Ordering::SeqCst),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.registered.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn raised_signals_wake_and_are_taken_once() {
        let s = Signals::new().unwrap();
        assert!(!readable(s.fd()));
        assert!(!s.take().any());
        s.raise(libc::SIGHUP);
        s.raise(libc::SIGCHLD);
        s.raise(libc::SIGINT);
        s.raise(libc::SIGALRM); // not one of ours: ignored
        assert!(readable(s.fd()));
        std::thread::sleep(Duration::from_millis(20));
        s.raise(libc::SIGHUP); // a second one: the age is the first one's
        let p = s.take();
        let age = p.hup_age.expect("the SIGHUP's age");
        assert!(
            age >= Duration::from_millis(20) && age < Duration::from_secs(10),
            "{age:?}"
        );
        assert_eq!(
            p,
            Pending {
                term: Some(libc::SIGINT),
                hup: true,
                hup_age: Some(age),
                chld: true,
                usr1: false,
                usr2: false
            }
        );
        assert!(!readable(s.fd()));
        assert!(!s.take().any());
        s.raise(libc::SIGUSR1);
        s.raise(libc::SIGUSR2);
        let p = s.take();
        assert!(p.usr1 && p.usr2 && p.term.is_none() && p.hup_age.is_none());
    }
}
