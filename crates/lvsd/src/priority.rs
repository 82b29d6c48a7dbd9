//! How lvsd and its nannies share the CPU. Control-plane work comes before health checks: with
//! thousands of nannies on a busy (or emulated) machine, a reload must not wait in the run queue
//! behind them.
//!
//! - Nannies run some nice levels below lvsd ([`set_nanny_nice`], applied between fork and exec
//!   by [`crate::supervisor::spawn`]).
//! - lvsd's bursts of kernel work (start, reload, drift repair, stop) run at a low real-time
//!   priority ([`Boost`]): bounded work that then finishes in one go instead of in slices
//!   between nanny wake-ups. Between bursts lvsd is an ordinary process again.

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
    fn priority_zero_changes_nothing() {
        let boost = Boost::enter(0);
        assert!(!boost.active());
        assert_eq!(policy(), libc::SCHED_OTHER);
    }
}
