//! A real server's health from its nanny's reports, and the sorry-server rule. Pure (time is an
//! argument).
//!
//! A server starts [`Health::Unknown`] when its nanny starts (or restarts). It is **settled** once
//! its nanny has reported (up, weight, quiesce, down) or, failing that, once its settling deadline
//! passes: the nanny's first check has then had its whole `timeout` plus a margin, and a nanny
//! that says nothing about a server it never admitted has found it down. At the deadline an
//! Unknown server becomes Down.
//!
//! Sorry server (spec §3.6, without Piranha's start-up flap): switched **on** when every monitored
//! real server of the virtual server is settled and none is up; switched **off** as soon as one is
//! up; otherwise left as it is. A virtual server with no active real server has it on at once.

use crate::plan::Health;
use nanny::report::Report;
use std::time::{Duration, Instant};

/// Time a nanny gets for its first report beyond its `timeout` (the connect/read timeout of its
/// first check): process start-up and scheduling.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(2);

/// The settling time of a server whose virtual server has `timeout` seconds.
pub fn settle_time(timeout_secs: u32, margin: Duration) -> Duration {
    Duration::from_secs(u64::from(timeout_secs)) + margin
}

/// The state after a report (pure transition).
///
/// - `up W`: in the table with weight W, whatever the state was.
/// - `weight W`: new weight of a server that is up; ignored otherwise (a weight is meaningless
///   for a server that is not in the table, and a quiesced one stays at 0 until `up`).
/// - `quiesce`: weight 0 but kept in the table; a server that is down stays down.
/// - `down`: removed.
/// - the hello line changes nothing.
pub fn next_state(state: Health, report: &Report) -> Health {
    match report {
        Report::Hello { .. } => state,
        Report::Up { weight, .. } => Health::Up(*weight),
        Report::Weight { weight, .. } => match state {
            Health::Up(_) => Health::Up(*weight),
            other => other,
        },
        Report::Quiesce { .. } => match state {
            Health::Down => Health::Down,
            _ => Health::Quiesced,
        },
        Report::Down { .. } => Health::Down,
    }
}

/// One real server's health with its settling deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHealth {
    pub state: Health,
    /// While [`Health::Unknown`]: when it turns [`Health::Down`] without a report.
    pub settle_by: Option<Instant>,
}

impl ServerHealth {
    /// A server whose nanny starts now.
    pub fn new(now: Instant, settle: Duration) -> ServerHealth {
        ServerHealth {
            state: Health::Unknown,
            settle_by: Some(now + settle),
        }
    }

    /// A server whose nanny is not started yet: unknown, with no deadline until it starts.
    pub fn waiting() -> ServerHealth {
        ServerHealth {
            state: Health::Unknown,
            settle_by: None,
        }
    }

    /// Its nanny (re)starts at `at`: nothing is known until it reports; the kernel's entry is
    /// left as it is meanwhile. A server that is already unknown keeps its earlier deadline, so
    /// a nanny that keeps dying before its first report cannot keep its server unknown forever.
    pub fn restart(&mut self, at: Instant, settle: Duration) {
        let deadline = at + settle;
        self.settle_by = match (self.state, self.settle_by) {
            (Health::Unknown, Some(t)) => Some(t.min(deadline)),
            _ => Some(deadline),
        };
        self.state = Health::Unknown;
    }

    pub fn settled(&self) -> bool {
        self.state != Health::Unknown
    }

    /// Applies a report; returns the previous state if the state changed.
    pub fn report(&mut self, report: &Report) -> Option<Health> {
        if matches!(report, Report::Hello { .. }) {
            return None;
        }
        let before = self.state;
        self.state = next_state(before, report);
        self.settle_by = None;
        (self.state != before).then_some(before)
    }

    /// Applies the deadline; returns true if the server just settled as down.
    pub fn tick(&mut self, now: Instant) -> bool {
        match (self.state, self.settle_by) {
            (Health::Unknown, Some(t)) if now >= t => {
                self.state = Health::Down;
                self.settle_by = None;
                true
            }
            _ => false,
        }
    }

    /// The next time [`tick`](Self::tick) may change something.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            Health::Unknown => self.settle_by,
            _ => None,
        }
    }
}

/// The sorry-server switch after an event, from its current position and the servers' health.
pub fn sorry_next(current: bool, servers: &[Health]) -> bool {
    if servers.iter().any(|h| h.is_up()) {
        false
    } else if servers.iter().all(|h| *h != Health::Unknown) {
        true
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(w: u32) -> Report {
        Report::Up {
            weight: w,
            why: String::new(),
        }
    }
    fn weight(w: u32) -> Report {
        Report::Weight {
            weight: w,
            why: String::new(),
        }
    }
    fn quiesce() -> Report {
        Report::Quiesce { why: String::new() }
    }
    fn down() -> Report {
        Report::Down { why: String::new() }
    }
    fn hello() -> Report {
        Report::Hello {
            version: 1,
            pid: 1,
            server: "192.0.2.1:80".parse().unwrap(),
        }
    }

    /// Every state × every report.
    #[test]
    fn transition_table() {
        use Health::*;
        let states = [Unknown, Up(4), Quiesced, Down];
        let table: [(Report, [Health; 4]); 5] = [
            (hello(), [Unknown, Up(4), Quiesced, Down]),
            (up(7), [Up(7), Up(7), Up(7), Up(7)]),
            (weight(9), [Unknown, Up(9), Quiesced, Down]),
            (quiesce(), [Quiesced, Quiesced, Quiesced, Down]),
            (down(), [Down, Down, Down, Down]),
        ];
        for (report, after) in table {
            for (s, want) in states.iter().zip(after) {
                assert_eq!(next_state(*s, &report), want, "{s:?} + {report:?}");
            }
        }
    }

    #[test]
    fn settles_on_first_report_or_at_the_deadline() {
        let t0 = Instant::now();
        let settle = settle_time(3, SETTLE_MARGIN);
        assert_eq!(settle, Duration::from_secs(5));
        let mut h = ServerHealth::new(t0, settle);
        assert!(!h.settled());
        assert_eq!(h.deadline(), Some(t0 + settle));
        assert_eq!(h.report(&hello()), None);
        assert!(!h.settled());
        assert!(!h.tick(t0 + Duration::from_secs(4)));
        assert!(h.tick(t0 + settle));
        assert_eq!(h.state, Health::Down);
        assert_eq!(h.deadline(), None);
        assert!(!h.tick(t0 + settle * 2));
        assert_eq!(h.report(&up(2)), Some(Health::Down));
        assert_eq!(h.report(&up(2)), None);
        assert_eq!(h.report(&weight(3)), Some(Health::Up(2)));
        assert_eq!(h.state, Health::Up(3));
        // A restart forgets what was known until the new nanny reports.
        h.restart(t0 + settle, settle);
        assert_eq!(h.state, Health::Unknown);
        assert_eq!(h.deadline(), Some(t0 + settle * 2));
        // Restarted again before any report: the first deadline stands.
        h.restart(t0 + settle * 2, settle);
        assert_eq!(h.deadline(), Some(t0 + settle * 2));
        assert_eq!(h.report(&quiesce()), Some(Health::Unknown));
        assert_eq!(h.deadline(), None);
        assert!(!h.tick(t0 + settle * 3));
        assert_eq!(h.state, Health::Quiesced);
    }

    #[test]
    fn sorry_rule() {
        use Health::*;
        // Nothing settled: stay as is (no start-up flap).
        assert!(!sorry_next(false, &[Unknown, Unknown]));
        assert!(sorry_next(true, &[Unknown, Down]));
        // Some settled down, others unknown: still no change.
        assert!(!sorry_next(false, &[Down, Unknown]));
        // All settled, none up: on.
        assert!(sorry_next(false, &[Down, Down]));
        assert!(sorry_next(false, &[Quiesced, Down]));
        // One up: off at once, even if others are unknown.
        assert!(!sorry_next(true, &[Unknown, Up(1)]));
        assert!(!sorry_next(true, &[Up(0), Down]));
        // No real server at all: on.
        assert!(sorry_next(false, &[]));
    }
}
