use super::*;

const MS: Duration = Duration::from_millis(1);

fn timing(keepalive_ms: u64, deadtime_ms: u64) -> Timing {
    Timing {
        keepalive: MS * keepalive_ms as u32,
        deadtime: MS * deadtime_ms as u32,
    }
}

fn settings(master: bool) -> Settings {
    Settings {
        timing: timing(2000, 5000),
        master,
        partner: true,
        supervise: true,
        restart: RestartPolicy::default(),
    }
}

fn logs(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(l, m) if *l <= Level::Info => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// The actions without log lines.
fn acts(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Log(..)))
        .cloned()
        .collect()
}

/// Polls at each wake-up until an action matching `want` comes; returns its time and actions.
fn run_until(m: &mut Machine, mut now: Instant, want: &Action) -> (Instant, Vec<Action>) {
    for _ in 0..1000 {
        now = m.next_wakeup().expect("a wake-up").max(now);
        let a = m.poll(now);
        if a.contains(want) {
            return (now, a);
        }
    }
    panic!("{want:?} never came");
}

use Action::*;
use PeerState::{Running as R, Stopped as S};

#[test]
fn master_starts_in_standby_and_takes_over_after_deadtime() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    let a = m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert_eq!(logs(&a), ["STARTING PULSE AS MASTER"]);
    assert_eq!(acts(&a), [Standby, Send(S)]);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 2000));
    assert_eq!(acts(&m.poll(t0 + MS * 2000)), [Send(S)]);
    assert_eq!(acts(&m.poll(t0 + MS * 4000)), [Send(S)]);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 5000));
    let a = m.poll(t0 + MS * 5000);
    assert_eq!(logs(&a), ["partner dead: activating lvs"]);
    assert_eq!(acts(&a), [Activate, Send(R)]);
    assert!(m.is_active());
    // Heartbeats go on from the activation: every keepalive.
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 7000));
    assert_eq!(acts(&m.poll(t0 + MS * 7000)), [Send(R)]);
    // Being active, a later deadline changes nothing.
    assert_eq!(acts(&m.poll(t0 + MS * 10000)), [Send(R)]);
}

#[test]
fn backup_logs_its_role() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(false), t0);
    let a = m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert_eq!(logs(&a), ["STARTING PULSE AS BACKUP"]);
    assert_eq!(acts(&a), [Standby, Send(S)]);
    let a = m.poll(t0 + MS * 5000);
    assert!(logs(&a).contains(&"partner dead: activating lvs".to_string()));
}

#[test]
fn fractional_timers_are_exact() {
    let t0 = Instant::now();
    let mut s = settings(false);
    s.timing = timing(100, 300);
    let mut m = Machine::new(s, t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    // Heartbeats at 100 ms, 200 ms, the deadline at 300 ms.
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 100));
    assert_eq!(acts(&m.poll(t0 + MS * 100)), [Send(S)]);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 200));
    // A late wake-up does not shift the schedule.
    assert_eq!(acts(&m.poll(t0 + MS * 203)), [Send(S)]);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 300));
    // A heartbeat at 250 ms moves the deadline to 550 ms.
    m.handle(t0 + MS * 250, Event::Heartbeat(R));
    assert!(acts(&m.poll(t0 + MS * 300)) == [Send(S)]);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 400));
    m.poll(t0 + MS * 400);
    m.poll(t0 + MS * 500);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 550));
    let a = m.poll(t0 + MS * 550);
    assert_eq!(acts(&a), [Activate, Send(R)]);
    // A wake-up more than a keepalive late resynchronises instead of bursting.
    let a = m.poll(t0 + MS * 1000);
    assert_eq!(acts(&a), [Send(R)]);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 1100));
}

#[test]
fn yield_rule_backup_yields_master_rearps_once() {
    let t0 = Instant::now();
    // The backup, active, hears RUNNING: one more RUNNING (so the master re-ARPs), then yields.
    let mut b = Machine::new(settings(false), t0);
    b.handle(t0, Event::Start { force_active: true });
    assert!(b.is_active());
    let a = b.handle(t0 + MS, Event::Heartbeat(R));
    assert_eq!(logs(&a), ["partner active: deactivating LVS"]);
    assert_eq!(acts(&a), [Send(R), Deactivate, Send(S)]);
    assert!(!b.is_active());
    // RUNNING while standby: nothing.
    assert!(acts(&b.handle(t0 + MS * 2, Event::Heartbeat(R))).is_empty());

    // The master, active, hears RUNNING: re-ARP once, answer at once.
    let mut m = Machine::new(settings(true), t0);
    let a = m.handle(t0, Event::Start { force_active: true });
    assert_eq!(logs(&a)[1], "Forced active on startup: activating lvs");
    assert_eq!(acts(&a), [Standby, Activate, Send(R)]);
    let a = m.handle(t0 + MS, Event::Heartbeat(R));
    assert_eq!(logs(&a), ["partner active: resending arps"]);
    assert_eq!(acts(&a), [Rearp, Send(R)]);
    for i in 2..10 {
        assert!(acts(&m.handle(t0 + MS * i, Event::Heartbeat(R))).is_empty());
    }
    // The partner went standby and later came back active: a new both-active period.
    assert!(acts(&m.handle(t0 + MS * 10, Event::Heartbeat(S))).is_empty());
    assert_eq!(
        acts(&m.handle(t0 + MS * 11, Event::Heartbeat(R))),
        [Rearp, Send(R)]
    );
    // Likewise after the partner was declared dead.
    m.poll(t0 + MS * 6000);
    assert_eq!(
        acts(&m.handle(t0 + MS * 6001, Event::Heartbeat(R))),
        [Rearp, Send(R)]
    );
}

#[test]
fn stopped_partner_activates_master_at_once() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    let a = m.handle(t0 + MS, Event::Heartbeat(S));
    assert_eq!(logs(&a), ["backup inactive: activating lvs"]);
    assert_eq!(acts(&a), [Activate, Send(R)]);
    // STOPPED while active: nothing.
    assert!(acts(&m.handle(t0 + MS * 2, Event::Heartbeat(S))).is_empty());
}

#[test]
fn backup_gives_a_starting_primary_time_but_takes_over_a_releasing_one_at_once() {
    let t0 = Instant::now();
    let mut b = Machine::new(settings(false), t0);
    b.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    // A primary that only ever said STOPPED may be starting: wait 2.5 x keepalive (5 s).
    for ms in [10, 2010, 4010] {
        let a = b.handle(t0 + MS * ms, Event::Heartbeat(S));
        assert!(acts(&a).is_empty(), "at {ms} ms: {a:?}");
    }
    let a = b.handle(t0 + MS * 5010, Event::Heartbeat(S));
    assert_eq!(logs(&a), ["primary inactive: activating lvs"]);
    assert_eq!(acts(&a), [Activate, Send(R)]);

    // A primary that was active and now says STOPPED released: take over at once.
    let mut b = Machine::new(settings(false), t0);
    b.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    b.handle(t0 + MS * 10, Event::Heartbeat(R));
    let a = b.handle(t0 + MS * 20, Event::Heartbeat(S));
    assert_eq!(logs(&a), ["primary inactive: activating lvs"]);
    assert_eq!(acts(&a), [Activate, Send(R)]);

    // The grace never exceeds deadtime.
    let mut s = settings(false);
    s.timing = timing(2000, 3000);
    let mut b = Machine::new(s, t0);
    b.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert!(acts(&b.handle(t0, Event::Heartbeat(S))).is_empty());
    assert_eq!(
        acts(&b.handle(t0 + MS * 3000, Event::Heartbeat(S))),
        [Activate, Send(R)]
    );
}

#[test]
fn alive_only_heartbeats_rearm_the_deadline() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    m.handle(t0 + MS * 4000, Event::Alive);
    assert!(!acts(&m.poll(t0 + MS * 5000)).contains(&Activate));
    assert!(acts(&m.poll(t0 + MS * 9000)).contains(&Activate));
}

#[test]
fn no_partner_lone_primary_activates_at_start_and_sends_nothing() {
    let t0 = Instant::now();
    let mut s = settings(true);
    s.partner = false;
    let mut m = Machine::new(s.clone(), t0);
    let a = m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert_eq!(
        logs(&a),
        [
            "STARTING PULSE AS MASTER",
            "no backup router (backup_active = 0): activating lvs"
        ]
    );
    assert_eq!(acts(&a), [Standby, Activate]);
    for i in 1..20 {
        assert!(acts(&m.poll(t0 + MS * 1000 * i)).is_empty());
    }
    // The backup of a pair without backup_active exits (Piranha's message).
    s.master = false;
    let mut b = Machine::new(s, t0);
    let a = b.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert_eq!(
        logs(&a),
        [
            "STARTING PULSE AS BACKUP",
            "We are backup node and backup is marked inactive -- exiting pulse"
        ]
    );
    assert_eq!(acts(&a), [Exit(0)]);
    assert_eq!(b.next_wakeup(), None);
}

#[test]
fn lone_primary_restarts_lvsd_for_ever_with_capped_backoff() {
    let t0 = Instant::now();
    let mut s = settings(true);
    s.partner = false;
    let mut m = Machine::new(s, t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..10 {
        let a = m.handle(
            now,
            Event::LvsdExited {
                pid: 42,
                end: ChildEnd::Exited(1),
            },
        );
        assert_eq!(logs(&a)[0], "Child process 42 exited with status 1");
        assert!(acts(&a).is_empty());
        let (at, a) = run_until(&mut m, now, &StartLvsd);
        delays.push(at.duration_since(now).as_millis());
        now = at;
        assert_eq!(acts(&a), [StartLvsd]);
        assert!(m.is_active());
    }
    // 0.5, 1, 2, ... doubling within the 60 s window, capped at 60 s.
    assert_eq!(delays[..4], [500, 1000, 2000, 4000]);
    assert!(delays.iter().all(|&d| d <= 60_000));
    assert_eq!(*delays.last().unwrap(), 60_000);
}

#[test]
fn lvsd_restarts_then_gives_up_with_a_partner() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(t0, Event::Start { force_active: true });
    let died = |pid| Event::LvsdExited {
        pid,
        end: ChildEnd::Signaled(9),
    };
    let mut now = t0 + MS * 100;
    for (i, want) in [500u128, 1000, 2000].into_iter().enumerate() {
        let a = m.handle(now, died(10 + i as u32));
        assert_eq!(
            logs(&a),
            [
                format!("Child process {} terminated with signal 9", 10 + i),
                format!("lvsd died: restarting it in {} s", want as f64 / 1000.0)
            ]
        );
        // Heartbeat timers run meanwhile; lvsd starts when its time comes.
        m.handle(now, Event::Heartbeat(S));
        let (at, _) = run_until(&mut m, now, &StartLvsd);
        assert_eq!(at.duration_since(now).as_millis(), want, "restart {i}");
        now = at + MS * 10;
    }
    // The fourth death within a minute: release, CHILDFAIL.
    let a = m.handle(now, died(20));
    assert_eq!(
        logs(&a)[1..],
        [
            "lvsd died 4 times, each within 60 s of its start: giving up so that the partner takes over",
            "lvsd failure: deactivating LVS"
        ]
    );
    assert_eq!(acts(&a), [Deactivate, Send(S)]);
    assert!(m.child_failed());
    // CHILDFAIL blocks activation on STOPPED and on the deadline...
    assert!(acts(&m.handle(now + MS, Event::Heartbeat(S))).is_empty());
    assert!(!acts(&m.poll(now + MS * 5002)).contains(&Activate));
    // ...until the partner's RUNNING clears it (Piranha), or the partner is dead for long.
    m.handle(now + MS * 5003, Event::Heartbeat(R));
    assert!(!m.child_failed());
    assert_eq!(
        acts(&m.handle(now + MS * 5004, Event::Heartbeat(S))),
        [Activate, Send(R)]
    );
}

#[test]
fn childfail_is_retried_when_the_partner_is_dead() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(t0, Event::Start { force_active: true });
    let mut now = t0;
    for i in 0..4 {
        m.handle(
            now,
            Event::LvsdSpawnFailed("No such file or directory".into()),
        );
        if i < 3 {
            now = run_until(&mut m, now, &StartLvsd).0;
        }
    }
    assert!(m.child_failed() && !m.is_active());
    let failed_at = now;
    let mut activated = None;
    while now < failed_at + Duration::from_secs(90) {
        now = m.next_wakeup().unwrap();
        let a = m.poll(now);
        if a.contains(&Activate) {
            activated = Some((now, logs(&a)));
            break;
        }
    }
    let (at, lines) = activated.expect("retried");
    assert!(at.duration_since(failed_at) >= Duration::from_secs(60));
    assert!(at.duration_since(failed_at) <= Duration::from_secs(66));
    assert!(lines[0].starts_with("partner dead and lvsd last failed"));
    assert!(!m.child_failed());
}

#[test]
fn lvsd_deaths_spread_out_never_give_up() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(t0, Event::Start { force_active: true });
    for i in 0..10u32 {
        let now = t0 + Duration::from_secs(61) * i;
        m.handle(now, Event::Heartbeat(S)); // keep the partner alive
        let a = m.handle(
            now,
            Event::LvsdExited {
                pid: i,
                end: ChildEnd::Exited(0),
            },
        );
        assert_eq!(logs(&a)[1], "lvsd died: restarting it in 0.5 s");
        m.poll(now + MS * 500);
        assert!(m.is_active());
    }
}

#[test]
fn test_start_runs_no_lvsd_and_ignores_child_deaths() {
    let t0 = Instant::now();
    let mut s = settings(true);
    s.supervise = false;
    let mut m = Machine::new(s, t0);
    m.handle(t0, Event::Start { force_active: true });
    let a = m.handle(
        t0,
        Event::LvsdExited {
            pid: 1,
            end: ChildEnd::Exited(1),
        },
    );
    assert!(acts(&a).is_empty());
    assert!(m.is_active());
}

#[test]
fn stale_lvsd_exit_after_release_is_only_logged() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(false), t0);
    m.handle(t0, Event::Start { force_active: true });
    m.handle(t0, Event::Heartbeat(R)); // yield
    let a = m.handle(
        t0 + MS,
        Event::LvsdExited {
            pid: 5,
            end: ChildEnd::Exited(0),
        },
    );
    assert_eq!(acts(&a), []);
}

#[test]
fn monitor_links_failure_releases_and_blocks() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(t0, Event::Start { force_active: true });
    let a = m.handle(t0 + MS, Event::Links(vec!["Primary NIC", "Private NIC"]));
    assert_eq!(
        logs(&a),
        [
            "Primary NIC: link down",
            "Private NIC: link down",
            "Local NIC link failure: Pulse disabled",
            "local link failure: deactivating LVS"
        ]
    );
    assert_eq!(acts(&a), [Deactivate, Send(S)]);
    // Still down: nothing more is logged.
    assert!(m
        .handle(t0 + MS * 2, Event::Links(vec!["Private NIC"]))
        .is_empty());
    // Neither the partner's STOPPED nor its death activates.
    assert!(acts(&m.handle(t0 + MS * 3, Event::Heartbeat(S))).is_empty());
    assert!(!acts(&m.poll(t0 + MS * 6000)).contains(&Activate));
    // Heartbeats go on (STOPPED), so the partner takes over.
    assert_eq!(acts(&m.poll(t0 + MS * 6001)), []);
    assert!(acts(&m.poll(t0 + MS * 8000)).contains(&Send(S)));
    let a = m.handle(t0 + MS * 8001, Event::Links(vec![]));
    assert_eq!(logs(&a), ["Local NIC link(s) restored: Pulse enabled"]);
    assert!(acts(&a).is_empty());
    assert!(acts(&m.handle(t0 + MS * 8002, Event::Heartbeat(S))).contains(&Activate));
    // Links up while never down: nothing.
    assert!(m.handle(t0 + MS * 8003, Event::Links(vec![])).is_empty());
}

#[test]
fn a_link_down_at_start_blocks_even_forceactive() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    let a = m.handle(t0, Event::Links(vec!["Primary NIC"]));
    assert_eq!(
        logs(&a),
        [
            "Primary NIC: link down",
            "Local NIC link failure: Pulse disabled"
        ]
    );
    let a = m.handle(t0, Event::Start { force_active: true });
    assert_eq!(acts(&a), [Standby, Send(S)]);
    assert!(!m.is_active());
    m.handle(t0 + MS, Event::Links(vec![]));
    assert!(acts(&m.poll(t0 + MS * 5000)).contains(&Activate));
}

#[test]
fn terminate_releases_then_says_stopped_and_exits() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(t0, Event::Start { force_active: true });
    let a = m.handle(t0 + MS, Event::Terminate(15));
    assert_eq!(logs(&a), ["Terminating due to signal 15"]);
    assert_eq!(acts(&a), [Deactivate, Send(S), Exit(0)]);
    assert_eq!(m.next_wakeup(), None);
    assert!(m.handle(t0 + MS * 2, Event::Heartbeat(S)).is_empty());
    assert!(m.poll(t0 + MS * 99999).is_empty());

    let mut m = Machine::new(settings(false), t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert_eq!(
        acts(&m.handle(t0 + MS, Event::Terminate(2))),
        [Send(S), Exit(0)]
    );
    let mut s = settings(true);
    s.partner = false;
    let mut m = Machine::new(s, t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    assert_eq!(
        acts(&m.handle(t0 + MS, Event::Terminate(15))),
        [Deactivate, Exit(0)]
    );
}

#[test]
fn set_timing_rearms() {
    let t0 = Instant::now();
    let mut m = Machine::new(settings(true), t0);
    m.handle(
        t0,
        Event::Start {
            force_active: false,
        },
    );
    m.set_timing(timing(100, 300), t0 + MS * 10);
    assert_eq!(m.next_wakeup(), Some(t0 + MS * 110));
    m.poll(t0 + MS * 110);
    m.poll(t0 + MS * 210);
    assert!(acts(&m.poll(t0 + MS * 310)).contains(&Activate));
}

// ---------------------------------------------------------------------------------------------
// Two machines on a simulated network.

struct Node {
    m: Machine,
    up: bool,
    log: Vec<String>,
    rearps: u32,
    activations: u32,
}

struct Sim {
    now: Instant,
    nodes: [Node; 2],
    /// (deliver at, to node, state)
    wire: Vec<(Instant, usize, PeerState)>,
    latency: Duration,
    partitioned: bool,
    /// Time both were active.
    dual: Duration,
}

impl Sim {
    fn new(t: Timing) -> Sim {
        let now = Instant::now();
        let node = |master| {
            let mut s = settings(master);
            s.timing = t;
            Node {
                m: Machine::new(s, now),
                up: false,
                log: Vec::new(),
                rearps: 0,
                activations: 0,
            }
        };
        Sim {
            now,
            nodes: [node(true), node(false)],
            wire: Vec::new(),
            latency: MS / 2,
            partitioned: false,
            dual: Duration::ZERO,
        }
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Send(s) if !self.partitioned => {
                    self.wire.push((self.now + self.latency, 1 - i, s));
                }
                Activate => self.nodes[i].activations += 1,
                Rearp => self.nodes[i].rearps += 1,
                Log(l, m) if l <= Level::Info => self.nodes[i].log.push(m),
                _ => {}
            }
        }
    }

    fn start(&mut self, i: usize, force_active: bool) {
        let t = self.nodes[i].m.settings().clone();
        self.nodes[i].m = Machine::new(t, self.now);
        self.nodes[i].up = true;
        let a = self.nodes[i]
            .m
            .handle(self.now, Event::Start { force_active });
        self.apply(i, a);
    }

    /// kill -9: the node stops sending (its addresses stay, which the real pulse cleans up at
    /// restart; here it simply stops being counted).
    fn kill(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.wire.retain(|w| w.1 != i);
    }

    fn terminate(&mut self, i: usize) {
        let a = self.nodes[i].m.handle(self.now, Event::Terminate(15));
        self.apply(i, a);
        self.nodes[i].up = false;
    }

    fn active(&self, i: usize) -> bool {
        self.nodes[i].up && self.nodes[i].m.is_active()
    }

    fn holders(&self) -> usize {
        (0..2).filter(|&i| self.active(i)).count()
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let mut next = end;
            for (i, n) in self.nodes.iter().enumerate() {
                if n.up {
                    if let Some(t) = n.m.next_wakeup() {
                        next = next.min(t);
                    }
                }
                let _ = i;
            }
            for w in &self.wire {
                next = next.min(w.0);
            }
            if self.holders() == 2 {
                self.dual += next.saturating_duration_since(self.now);
            }
            self.now = next.max(self.now);
            // Deliveries due.
            let mut due: Vec<_> = self
                .wire
                .iter()
                .filter(|w| w.0 <= self.now)
                .cloned()
                .collect();
            self.wire.retain(|w| w.0 > self.now);
            due.sort_by_key(|w| w.0);
            for (_, to, s) in due {
                if self.nodes[to].up {
                    let a = self.nodes[to].m.handle(self.now, Event::Heartbeat(s));
                    self.apply(to, a);
                }
            }
            for i in 0..2 {
                if self.nodes[i].up {
                    let a = self.nodes[i].m.poll(self.now);
                    self.apply(i, a);
                }
            }
            if self.now >= end {
                break;
            }
        }
    }
}

#[test]
fn simultaneous_start_gives_one_holder_without_a_dual_window() {
    for t in [timing(2000, 5000), timing(100, 300), timing(6000, 18000)] {
        let mut sim = Sim::new(t);
        sim.start(0, false);
        sim.start(1, false);
        sim.run_for(t.deadtime * 4);
        assert!(sim.active(0), "the master holds: {:?}", sim.nodes[0].log);
        assert!(!sim.active(1));
        assert_eq!(sim.nodes[1].activations, 0, "{:?}", sim.nodes[1].log);
        assert_eq!(sim.dual, Duration::ZERO);
        assert!(sim.nodes[0]
            .log
            .contains(&"backup inactive: activating lvs".to_string()));
    }
}

#[test]
fn backup_started_first_still_lets_the_master_take_the_lead() {
    // The backup starts alone, takes over after deadtime; the master starting later stays
    // standby (no failback).
    let t = timing(2000, 5000);
    let mut sim = Sim::new(t);
    sim.start(1, false);
    sim.run_for(MS * 6000);
    assert!(sim.active(1));
    sim.start(0, false);
    sim.run_for(MS * 30000);
    assert!(sim.active(1) && !sim.active(0));
    assert_eq!(sim.nodes[0].activations, 0);
}

#[test]
fn death_of_the_active_master_fails_over_within_deadtime_and_no_failback() {
    let t = timing(100, 300);
    let mut sim = Sim::new(t);
    sim.start(0, false);
    sim.start(1, false);
    sim.run_for(MS * 1000);
    assert!(sim.active(0));
    sim.kill(0);
    let killed = sim.now;
    let mut took_over = None;
    for _ in 0..100 {
        sim.run_for(MS * 5);
        if sim.active(1) {
            took_over = Some(sim.now.duration_since(killed));
            break;
        }
    }
    let took = took_over.expect("the backup took over");
    assert!(took <= MS * 305, "{took:?}");
    assert!(took >= MS * 200, "{took:?}");
    assert!(sim.nodes[1]
        .log
        .contains(&"partner dead: activating lvs".to_string()));
    // The primary comes back: it stays standby.
    sim.start(0, false);
    sim.run_for(MS * 5000);
    assert!(sim.active(1) && !sim.active(0));
    assert_eq!(sim.holders(), 1);
    // Unless it is started with --forceactive: it takes over, the backup yields, and the master
    // re-ARPs exactly once.
    sim.terminate(0);
    sim.run_for(MS * 100);
    sim.start(0, true);
    sim.run_for(MS * 5000);
    assert!(sim.active(0) && !sim.active(1));
    assert_eq!(sim.nodes[0].rearps, 1);
    assert!(sim.nodes[1]
        .log
        .contains(&"partner active: deactivating LVS".to_string()));
    assert!(sim.dual <= MS * 2, "{:?}", sim.dual);
}

#[test]
fn graceful_handover_takes_one_packet() {
    let t = timing(2000, 5000);
    let mut sim = Sim::new(t);
    sim.start(0, false);
    sim.start(1, false);
    sim.run_for(MS * 3000);
    assert!(sim.active(0));
    sim.terminate(0);
    let at = sim.now;
    sim.run_for(MS * 10);
    assert!(sim.active(1));
    assert!(sim.nodes[1]
        .log
        .contains(&"primary inactive: activating lvs".to_string()));
    assert!(sim.now.duration_since(at) <= MS * 10);
}

#[test]
fn partition_then_heal_leaves_exactly_one_holder() {
    for t in [timing(2000, 5000), timing(100, 300)] {
        for holder_before in [0usize, 1] {
            let mut sim = Sim::new(t);
            if holder_before == 0 {
                sim.start(0, false);
                sim.start(1, false);
            } else {
                sim.start(1, false);
                sim.run_for(t.deadtime * 2);
                sim.start(0, false);
            }
            sim.run_for(t.deadtime * 2);
            assert!(sim.active(holder_before));
            sim.partitioned = true;
            sim.run_for(t.deadtime * 3);
            assert_eq!(sim.holders(), 2, "split brain while partitioned");
            sim.partitioned = false;
            sim.dual = Duration::ZERO;
            let rearps = sim.nodes[0].rearps;
            sim.run_for(t.deadtime * 3);
            assert_eq!(sim.holders(), 1);
            assert!(sim.active(0), "the master keeps the addresses after a heal");
            assert_eq!(sim.nodes[0].rearps, rearps + 1, "re-ARP once");
            assert!(sim.dual <= t.keepalive + MS, "{:?}", sim.dual);
        }
    }
}

#[test]
fn lost_heartbeats_below_deadtime_change_nothing() {
    let t = timing(100, 300);
    let mut sim = Sim::new(t);
    sim.start(0, false);
    sim.start(1, false);
    sim.run_for(MS * 1000);
    for _ in 0..20 {
        sim.partitioned = true;
        sim.run_for(MS * 150);
        sim.partitioned = false;
        sim.run_for(MS * 150);
    }
    assert!(sim.active(0) && !sim.active(1));
    assert_eq!(sim.nodes[1].activations, 0);
}

// ---------------------------------------------------------------------------------------------
// Exhaustive: every sequence of up to 6 events from an alphabet that covers every input, from
// every start, with invariants checked after each step.

#[derive(Clone, Copy, Debug)]
enum E {
    Running,
    Stopped,
    Alive,
    LinkDown,
    LinkUp,
    LvsdDied,
    Tick,
    LongTick,
    Term,
}

const ALPHABET: [E; 9] = [
    E::Running,
    E::Stopped,
    E::Alive,
    E::LinkDown,
    E::LinkUp,
    E::LvsdDied,
    E::Tick,
    E::LongTick,
    E::Term,
];

fn check_invariants(
    m: &Machine,
    s: &Settings,
    actions: &[Action],
    was_active: bool,
    exited: &mut bool,
    trace: &str,
) {
    let mut active = was_active;
    for a in actions {
        assert!(!*exited, "action after Exit: {trace}");
        match a {
            Activate => {
                assert!(!active, "Activate while active: {trace}");
                active = true;
            }
            Deactivate => {
                assert!(active, "Deactivate while standby: {trace}");
                active = false;
            }
            Rearp => assert!(active && s.master, "Rearp: {trace}"),
            StartLvsd => assert!(active && s.supervise, "StartLvsd: {trace}"),
            Send(st) => {
                assert!(s.partner, "Send without a partner: {trace}");
                // What is sent is the state at that point (the yield's extra RUNNING excepted).
                if *st == PeerState::Stopped {
                    assert!(!active, "STOPPED sent while active: {trace}");
                }
            }
            Exit(_) => *exited = true,
            Standby | Log(..) => {}
        }
    }
    assert_eq!(active, m.is_active(), "{trace}");
    if m.link_failed() {
        assert!(!m.is_active(), "active with a failed link: {trace}");
    }
    if m.child_failed() {
        assert!(!m.is_active(), "active with CHILDFAIL: {trace}");
    }
    if let Some(w) = m.next_wakeup() {
        assert!(!*exited, "{trace}");
        let _ = w;
    }
}

fn explore(m: &Machine, s: &Settings, now: Instant, depth: usize, trace: &mut Vec<E>, n: &mut u64) {
    if depth == 0 {
        return;
    }
    for e in ALPHABET {
        let mut m2 = m.clone();
        let was = m2.is_active();
        let mut exited = false;
        let mut t = now + MS;
        let actions = match e {
            E::Running => m2.handle(t, Event::Heartbeat(PeerState::Running)),
            E::Stopped => m2.handle(t, Event::Heartbeat(PeerState::Stopped)),
            E::Alive => m2.handle(t, Event::Alive),
            E::LinkDown => m2.handle(t, Event::Links(vec!["Primary NIC"])),
            E::LinkUp => m2.handle(t, Event::Links(vec![])),
            E::LvsdDied => m2.handle(
                t,
                Event::LvsdExited {
                    pid: 1,
                    end: ChildEnd::Exited(1),
                },
            ),
            E::Tick | E::LongTick => {
                t = match m2.next_wakeup() {
                    Some(w) if matches!(e, E::Tick) => w.max(t),
                    _ => now + Duration::from_secs(61),
                };
                m2.poll(t)
            }
            E::Term => m2.handle(t, Event::Terminate(15)),
        };
        trace.push(e);
        *n += 1;
        let text = format!("{:?} master={} partner={}", trace, s.master, s.partner);
        check_invariants(&m2, s, &actions, was, &mut exited, &text);
        if !exited {
            explore(&m2, s, t, depth - 1, trace, n);
        } else {
            assert!(m2.poll(t + Duration::from_secs(999)).is_empty());
        }
        trace.pop();
    }
}

#[test]
fn exhaustive_event_sequences_keep_the_invariants() {
    let mut n = 0u64;
    for master in [true, false] {
        for partner in [true, false] {
            for supervise in [true, false] {
                for force_active in [false, true] {
                    let mut s = settings(master);
                    s.partner = partner;
                    s.supervise = supervise;
                    s.timing = timing(100, 300);
                    let t0 = Instant::now();
                    let mut m = Machine::new(s.clone(), t0);
                    let mut exited = false;
                    let a = m.handle(t0, Event::Start { force_active });
                    check_invariants(&m, &s, &a, false, &mut exited, "start");
                    if !exited {
                        explore(&m, &s, t0, 5, &mut Vec::new(), &mut n);
                    }
                }
            }
        }
    }
    assert!(n > 100_000, "{n} sequences");
}
