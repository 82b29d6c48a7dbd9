//! How lvsd and its nannies share the CPU. Control-plane work comes before health checks: with
//! thousands of nannies on a busy (or emulated) machine, a reload must not wait in the run queue
//! behind them.
//!
//! - Nannies run some nice levels below lvsd ([`set_nanny_nice`], applied between fork and exec
//!   by [`crate::supervisor::spawn`]).
//! - lvsd's bursts of kernel work (start, reload, drift repair, stop) run at a low real-time
//!   priority ([`Boost`]): bounded work that then finishes in one go instead of in slices
//!   between nanny wake-ups. Between bursts lvsd is an ordinary process again.
//! - lvsd's memory is locked in RAM ([`lock_memory`], as keepalived's `vrrp_no_swap`): a reload
//!   or a failover's kernel work never waits for its code or data to be read back from disk or
//!   swap, however long it sat idle on a router short of memory.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The nice value nannies run at (`i32::MIN`: lvsd's own, not changed).
static NANNY_NICE: AtomicI32 = AtomicI32::new(i32::MIN);

/// Runs the nannies `offset` nice levels below lvsd (capped at 19); returns their nice value.
pub fn set_nanny_nice(offset: i32) -> i32 {
    let nice = own_nice().saturating_add(offset).clamp(-20, 19);
    NANNY_NICE.store(if offset == 0 { i32::MIN } else { nice }, Ordering::SeqCst);
    nice
}

/// The nice value to give a nanny, if any (read before fork).
pub(crate) fn nanny_nice() -> Option<i32> {
    let n = NANNY_NICE.load(Ordering::SeqCst);
    (n != i32::MIN).then_some(n)
}

fn own_nice() -> i32 {
    // SAFETY: getpriority has no preconditions; -1 is also a valid value, so errno is cleared
    // first and checked after.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        if n == -1 && *libc::__errno_location() != 0 {
            0
        } else {
            n
        }
    }
}

/// The calling thread at `SCHED_FIFO` priority `priority` until dropped, then back to
/// `SCHED_OTHER` (its nice value is kept by the kernel meanwhile). `SCHED_RESET_ON_FORK`: a
/// process started meanwhile never inherits it. Without the privilege (`CAP_SYS_NICE`), or with
/// priority 0, nothing changes.
#[derive(Debug)]
pub struct Boost {
    active: bool,
}

impl Boost {
    pub fn enter(priority: u8) -> Boost {
        if priority == 0 {
            return Boost { active: false };
        }
        match set_policy(
            libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK,
            i32::from(priority),
        ) {
            Ok(()) => Boost { active: true },
            Err(e) => {
                log::debug!("cannot run at real-time priority {priority}: {e}");
                Boost { active: false }
            }
        }
    }

    /// Whether the priority was raised.
    pub fn active(&self) -> bool {
        self.active
    }
}

impl Drop for Boost {
    fn drop(&mut self) {
        if self.active {
            if let Err(e) = set_policy(libc::SCHED_OTHER, 0) {
                log::warn!("cannot leave real-time priority: {e}");
            }
        }
    }
}

/// Whether [`lock_memory`] locked lvsd's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLock {
    Locked,
    /// Neither `CAP_IPC_LOCK` nor an unlimited `RLIMIT_MEMLOCK`: locking future allocations
    /// could make one fail later, so nothing was locked.
    NotPermitted,
}

/// Locks every page lvsd has mapped now and will map (`mlockall(MCL_CURRENT | MCL_FUTURE)`):
/// its program and libraries are read in once, here, and never evicted. Only with the privilege
/// to lock without limit; a nanny never inherits the lock (fork and exec both drop it).
pub fn lock_memory() -> io::Result<MemoryLock> {
    if !may_lock_without_limit() {
        return Ok(MemoryLock::NotPermitted);
    }
    // SAFETY: mlockall has no memory-safety preconditions.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(MemoryLock::Locked)
}

/// Undoes [`lock_memory`] (`munlockall`).
pub fn unlock_memory() {
    // SAFETY: munlockall has no preconditions.
    unsafe { libc::munlockall() };
}

const CAP_IPC_LOCK: u32 = 14;

fn may_lock_without_limit() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0
        && lim.rlim_cur == libc::RLIM_INFINITY
    {
        return true;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_caps(&s))
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// The `CapEff:` mask of a /proc/PID/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn set_policy(policy: libc::c_int, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a valid sched_param; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: no preconditions; pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn a_boost_lasts_until_dropped_and_keeps_the_nice_value() {
        let nice = own_nice();
        let boost = Boost::enter(1);
        if boost.active() {
            assert_eq!(
                policy(),
                libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK,
                "while boosted"
            );
        } else {
            // Not privileged: nothing may have changed.
            assert_eq!(policy(), libc::SCHED_OTHER);
        }
        drop(boost);
        assert_eq!(policy(), libc::SCHED_OTHER);
        assert_eq!(own_nice(), nice);
    }

    #[test]
    fn effective_caps_are_read_from_the_status_text() {
        let status = "Name:\tlvsd\nCapPrm:\t0000000000000000\nCapEff:\t0000000000004000\n";
        assert_eq!(effective_caps(status), Some(1 << CAP_IPC_LOCK));
        assert_eq!(effective_caps("Name:\tlvsd\n"), None);
        assert_eq!(effective_caps("CapEff:\tzz\n"), None);
    }

    #[test]
    fn memory_is_locked_only_when_it_may_be_without_limit() {
        let vm_locked = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("VmLck:"))
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
                .unwrap()
        };
        match lock_memory().unwrap() {
            MemoryLock::Locked => {
                assert!(may_lock_without_limit());
                assert!(vm_locked() > 0, "VmLck after mlockall");
                unlock_memory();
                assert_eq!(vm_locked(), 0);
            }
            MemoryLock::NotPermitted => {
                assert!(!may_lock_without_limit());
                assert_eq!(vm_locked(), 0);
            }
        }
    }

    #[test]
    fn priority_zero_changes_nothing() {
        let boost = Boost::enter(0);
        assert!(!boost.active());
        assert_eq!(policy(), libc::SCHED_OTHER);
    }
}
