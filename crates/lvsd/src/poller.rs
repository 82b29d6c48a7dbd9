//! The main loop's wait: one epoll set holding the signal pipe and every nanny's report pipe.
//! A pass costs what is ready, not what is open: with 4,000 nannies, `poll(2)` walked 4,001
//! descriptors on every pass (71% of lvsd's CPU time natively, and the first thing a reload paid
//! for).
//!
//! A pipe leaves the set by itself when lvsd closes it: lvsd is single-threaded and
//! `std::process::Command::spawn` returns only after the child has exec'd, so no other process
//! ever holds a copy of a report pipe's read end (it is close-on-exec).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The token of the signal pipe; nanny pipes get tokens from 1 up, never reused.
pub const SIGNALS: u64 = 0;

#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 has no preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: a descriptor just created and owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
        })
    }

    /// Watches `fd` for input (level-triggered): `wait` reports `token` while it has any.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: a valid epoll descriptor and event.
        let r =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (closing it does the same).
    pub fn delete(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; an fd not in the set only gives an error, ignored.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits up to `timeout_ms` (-1: no limit) and puts the tokens of what is ready into
    /// `ready`. An interrupted wait returns nothing.
    pub fn wait(&mut self, ready: &mut Vec<u64>, timeout_ms: i32) -> io::Result<()> {
        ready.clear();
        // SAFETY: `events` is a valid array of the given length.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the array.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
            0
        );
        // SAFETY: just created.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write(fd: &OwnedFd) {
        // SAFETY: one byte from a valid buffer.
        assert_eq!(
            unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) },
            1
        );
    }

    #[test]
    fn reports_what_is_ready_until_it_is_read_or_closed() {
        let mut p = Poller::new().unwrap();
        let (r1, w1) = pipe();
        let (r2, w2) = pipe();
        p.add(r1.as_raw_fd(), 1).unwrap();
        p.add(r2.as_raw_fd(), 2).unwrap();
        let mut ready = Vec::new();
        p.wait(&mut ready, 0).unwrap();
        assert!(ready.is_empty());
        write(&w2);
        p.wait(&mut ready, 1000).unwrap();
        assert_eq!(ready, [2]);
        // Level-triggered: still there while unread.
        p.wait(&mut ready, 0).unwrap();
        assert_eq!(ready, [2]);
        // A closed writer: end of file is input too.
        drop(w1);
        p.wait(&mut ready, 0).unwrap();
        ready.sort_unstable();
        assert_eq!(ready, [1, 2]);
        // Closing a read end takes it out of the set.
        drop(r1);
        drop(r2);
        p.wait(&mut ready, 0).unwrap();
        assert!(ready.is_empty());
        drop(w2);
        let (r3, _w3) = pipe();
        p.add(r3.as_raw_fd(), 3).unwrap();
        p.delete(r3.as_raw_fd());
        p.wait(&mut ready, 0).unwrap();
        assert!(ready.is_empty());
    }
}
