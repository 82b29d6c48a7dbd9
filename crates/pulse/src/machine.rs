//! The failover state machine, with no I/O: events and the time go in, actions come out.
//!
//! It is Piranha's lvs-mode main loop (spec §2.5) with these differences, each marked `[ours]`
//! where it happens:
//! - a heartbeat is sent at start, and at once after every activation and release, instead of
//!   one `keepalive` later, so the partner learns each change within one packet's flight;
//! - at start the backup does not activate on the STOPPED heartbeats of a primary that may itself
//!   be starting (the primary activates on the backup's STOPPED): it waits until the primary has
//!   been stopped for 2.5 × keepalive (at most `deadtime`). A primary that stops after having been
//!   active (a graceful handover) is taken over at once. Two routers that start together thus
//!   come up with one holder instead of both;
//! - the master re-ARPs once per period in which both routers are active (Piranha: at every
//!   RUNNING heartbeat received), and answers at once with its own RUNNING so the backup yields
//!   within one packet;
//! - a lone primary (`backup_active = 0`) activates at start instead of after `deadtime`;
//! - lvsd is supervised: a dead lvsd is restarted with a growing delay; only when it keeps dying
//!   (more than `max_restarts` times in a row, each within `window` of its start) does pulse release and let the partner take
//!   over (Piranha released at the first death). A lone primary never gives up;
//! - a router that gave up on lvsd (CHILDFAIL) tries again after `childfail_retry` if the
//!   partner is dead (Piranha stayed down until the partner's RUNNING arrived).

use std::time::{Duration, Instant};

use log::Level;

/// What the partner says in its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub keepalive: Duration,
    pub deadtime: Duration,
}

/// How a dead lvsd is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed in a row; one more death releases (with a partner). A death counts in a
    /// row when lvsd had run for less than `window`.
    pub max_restarts: u32,
    pub window: Duration,
    /// Delay before the first restart; doubled for each further death in a row.
    pub first_delay: Duration,
    /// The longest delay with a partner (it should take over instead of waiting long).
    pub max_delay: Duration,
    /// The longest delay of a lone primary, which retries for ever.
    pub lone_max_delay: Duration,
    /// After giving up, try again this long after, if the partner is dead.
    pub childfail_retry: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            lone_max_delay: Duration::from_secs(60),
            childfail_retry: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub timing: Timing,
    /// `primary` is one of this host's addresses.
    pub master: bool,
    /// `backup_active = 1` (and a backup is defined): heartbeats are exchanged.
    pub partner: bool,
    /// lvsd is run (not with `--test-start`).
    pub supervise: bool,
    pub restart: RestartPolicy,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start {
        force_active: bool,
    },
    /// A valid heartbeat from the partner.
    Heartbeat(PeerState),
    /// A valid heartbeat that carries no lvs state (HOLD, HELD, STOPME): the partner is alive.
    Alive,
    /// The local links checked by `monitor_links` that are down ("Primary NIC", "Private NIC");
    /// empty when all are up.
    Links(Vec<&'static str>),
    /// The lvsd this machine asked for ended.
    LvsdExited {
        pid: u32,
        end: ChildEnd,
    },
    /// lvsd could not be started at all.
    LvsdSpawnFailed(String),
    /// SIGTERM or SIGINT.
    Terminate(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send our state to the partner on every heartbeat path.
    Send(PeerState),
    /// Start-up in standby: `inactive_cmd`, sync daemon to backup (Piranha's step 9).
    Standby,
    /// Take over: `active_cmd`, floating addresses up, gratuitous ARPs, lvsd, sync daemon to
    /// master.
    Activate,
    /// Both routers active and we are the master: `active_cmd` again, addresses ensured,
    /// gratuitous ARPs again.
    Rearp,
    /// Release: floating addresses down, pending ARPs cancelled, `inactive_cmd`, sync daemon to
    /// backup, lvsd stopped.
    Deactivate,
    /// Start lvsd again after it died (we are still active).
    StartLvsd,
    Log(Level, String),
    Exit(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lvsd {
    Down,
    Running,
    RestartAt(Instant),
}

/// The machine. Drive it with [`Machine::handle`] for events and [`Machine::poll`] when
/// [`Machine::next_wakeup`] has come.
#[derive(Debug, Clone)]
pub struct Machine {
    s: Settings,
    active: bool,
    linkfail: bool,
    childfail: Option<Instant>,
    send_at: Instant,
    need_at: Instant,
    /// The partner's last state in the current contact (None: never heard, or declared dead).
    partner: Option<PeerState>,
    /// Start of the current run of STOPPED heartbeats.
    stopped_since: Option<Instant>,
    /// The master re-ARPed in the current both-active period.
    rearped: bool,
    lvsd: Lvsd,
    /// When lvsd was last (re)started.
    lvsd_since: Instant,
    /// Deaths in a row, each after a run shorter than the policy's window.
    quick_deaths: u32,
    done: bool,
}

fn log(out: &mut Vec<Action>, level: Level, msg: impl Into<String>) {
    out.push(Action::Log(level, msg.into()));
}

fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} s")
}

impl Machine {
    pub fn new(settings: Settings, now: Instant) -> Machine {
        Machine {
            need_at: now + settings.timing.deadtime,
            send_at: now,
            s: settings,
            active: false,
            linkfail: false,
            childfail: None,
            partner: None,
            stopped_since: None,
            rearped: false,
            lvsd: Lvsd::Down,
            lvsd_since: now,
            quick_deaths: 0,
            done: false,
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn link_failed(&self) -> bool {
        self.linkfail
    }

    pub fn child_failed(&self) -> bool {
        self.childfail.is_some()
    }

    pub fn partner_state(&self) -> Option<PeerState> {
        self.partner
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// What our heartbeats say.
    pub fn state(&self) -> PeerState {
        if self.active {
            PeerState::Running
        } else {
            PeerState::Stopped
        }
    }

    /// New keepalive/deadtime (reload). The timers are re-armed from now.
    pub fn set_timing(&mut self, timing: Timing, now: Instant) {
        self.s.timing = timing;
        self.need_at = now + timing.deadtime;
        self.send_at = self.send_at.min(now + timing.keepalive);
    }

    /// The earliest moment [`poll`](Self::poll) has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        // A lone primary that is active has no deadline to watch.
        let mut t = if self.s.partner || !self.active {
            self.need_at
        } else {
            Instant::now() + Duration::from_secs(3600)
        };
        if self.s.partner {
            t = t.min(self.send_at);
        }
        if let Lvsd::RestartAt(r) = self.lvsd {
            t = t.min(r);
        }
        Some(t)
    }

    /// Runs the timers that are due.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if let Lvsd::RestartAt(t) = self.lvsd {
            if now >= t {
                self.lvsd = Lvsd::Running;
                self.lvsd_since = now;
                log(&mut out, Level::Info, "restarting lvsd");
                out.push(Action::StartLvsd);
            }
        }
        if now >= self.need_at {
            self.deadline(now, &mut out);
            self.need_at = now + self.s.timing.deadtime;
        }
        if self.s.partner && now >= self.send_at {
            out.push(Action::Send(self.state()));
            self.arm_send(now);
        }
        out
    }

    fn arm_send(&mut self, now: Instant) {
        let next = self.send_at + self.s.timing.keepalive;
        self.send_at = if next > now {
            next
        } else {
            now + self.s.timing.keepalive
        };
    }

    fn send_now(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.s.partner {
            out.push(Action::Send(self.state()));
            self.send_at = now + self.s.timing.keepalive;
        }
    }

    fn can_activate(&self) -> bool {
        !self.active && !self.linkfail && self.childfail.is_none()
    }

    fn activate(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Activate);
        self.active = true;
        self.rearped = false;
        self.lvsd = if self.s.supervise {
            Lvsd::Running
        } else {
            Lvsd::Down
        };
        self.lvsd_since = now;
        self.send_now(now, out);
    }

    fn deactivate(&mut self, now: Instant, why: &str, out: &mut Vec<Action>) {
        log(out, Level::Info, format!("{why}: deactivating LVS"));
        out.push(Action::Deactivate);
        self.active = false;
        self.lvsd = Lvsd::Down;
        self.send_now(now, out);
    }

    /// No valid heartbeat for `deadtime`.
    fn deadline(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.s.partner && self.partner.is_some() {
            log(
                out,
                Level::Debug,
                format!(
                    "DEBUG -- no heartbeat from the partner for {}",
                    secs(self.s.timing.deadtime)
                ),
            );
        }
        self.partner = None;
        self.stopped_since = None;
        self.rearped = false;
        if self.active || self.linkfail {
            return;
        }
        match self.childfail {
            None => {
                log(out, Level::Info, "partner dead: activating lvs");
                self.activate(now, out);
            }
            Some(t) if now.duration_since(t) >= self.s.restart.childfail_retry => {
                log(
                    out,
                    Level::Info,
                    format!(
                        "partner dead and lvsd last failed {} ago: activating lvs again",
                        secs(now.duration_since(t))
                    ),
                );
                self.childfail = None;
                self.quick_deaths = 0;
                self.activate(now, out);
            }
            Some(_) => {}
        }
    }

    /// The grace a backup gives a stopped primary that may be starting.
    fn start_grace(&self) -> Duration {
        (self.s.timing.keepalive * 5 / 2).min(self.s.timing.deadtime)
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        match event {
            Event::Start { force_active } => self.start(now, force_active, &mut out),
            Event::Heartbeat(PeerState::Running) => self.running(now, &mut out),
            Event::Heartbeat(PeerState::Stopped) => self.stopped(now, &mut out),
            Event::Alive => self.need_at = now + self.s.timing.deadtime,
            Event::Links(down) => self.links(now, &down, &mut out),
            Event::LvsdExited { pid, end } => {
                match end {
                    ChildEnd::Exited(code) => log(
                        &mut out,
                        Level::Info,
                        format!("Child process {pid} exited with status {code}"),
                    ),
                    ChildEnd::Signaled(sig) => log(
                        &mut out,
                        Level::Info,
                        format!("Child process {pid} terminated with signal {sig}"),
                    ),
                }
                self.lvsd_died(now, &mut out);
            }
            Event::LvsdSpawnFailed(why) => {
                log(&mut out, Level::Error, format!("cannot start lvsd: {why}"));
                self.lvsd_died(now, &mut out);
            }
            Event::Terminate(sig) => {
                log(
                    &mut out,
                    Level::Info,
                    format!("Terminating due to signal {sig}"),
                );
                if self.active {
                    out.push(Action::Deactivate);
                    self.active = false;
                    self.lvsd = Lvsd::Down;
                }
                // [ours] graceful handover: the partner activates at once instead of after
                // deadtime.
                if self.s.partner {
                    out.push(Action::Send(PeerState::Stopped));
                }
                out.push(Action::Exit(0));
                self.done = true;
            }
        }
        out
    }

    fn start(&mut self, now: Instant, force_active: bool, out: &mut Vec<Action>) {
        log(
            out,
            Level::Info,
            if self.s.master {
                "STARTING PULSE AS MASTER"
            } else {
                "STARTING PULSE AS BACKUP"
            },
        );
        if !self.s.master && !self.s.partner {
            log(
                out,
                Level::Info,
                "We are backup node and backup is marked inactive -- exiting pulse",
            );
            out.push(Action::Exit(0));
            self.done = true;
            return;
        }
        out.push(Action::Standby);
        self.need_at = now + self.s.timing.deadtime;
        if self.linkfail {
            // [ours] A local link down at start blocks even a forced activation.
            self.send_now(now, out);
        } else if force_active {
            log(out, Level::Info, "Forced active on startup: activating lvs");
            self.activate(now, out);
        } else if !self.s.partner {
            log(
                out,
                Level::Info,
                "no backup router (backup_active = 0): activating lvs",
            );
            self.activate(now, out);
        } else {
            self.send_now(now, out);
        }
    }

    fn running(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.need_at = now + self.s.timing.deadtime;
        if self.childfail.take().is_some() {
            self.quick_deaths = 0;
        }
        self.partner = Some(PeerState::Running);
        self.stopped_since = None;
        if self.active && !self.s.master {
            // Both active and we are the backup: one more RUNNING so the master re-ARPs, then
            // yield.
            out.push(Action::Send(PeerState::Running));
            self.deactivate(now, "partner active", out);
        } else if self.active {
            if self.rearped {
                return;
            }
            self.rearped = true;
            log(out, Level::Info, "partner active: resending arps");
            out.push(Action::Rearp);
            // [ours] answer at once, so the backup yields now.
            self.send_now(now, out);
        }
    }

    fn stopped(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.need_at = now + self.s.timing.deadtime;
        let previous = self.partner.replace(PeerState::Stopped);
        if previous != Some(PeerState::Stopped) {
            self.stopped_since = Some(now);
        }
        self.rearped = false;
        if !self.can_activate() {
            return;
        }
        if self.s.master {
            log(out, Level::Info, "backup inactive: activating lvs");
            self.activate(now, out);
            return;
        }
        let since = self.stopped_since.unwrap_or(now);
        if previous == Some(PeerState::Running) || now.duration_since(since) >= self.start_grace() {
            log(out, Level::Info, "primary inactive: activating lvs");
            self.activate(now, out);
        } else {
            log(
                out,
                Level::Debug,
                format!(
                    "DEBUG -- primary inactive and maybe starting: activating if it stays so for {}",
                    secs(self.start_grace())
                ),
            );
        }
    }

    fn links(&mut self, now: Instant, down: &[&'static str], out: &mut Vec<Action>) {
        if !down.is_empty() {
            if self.linkfail {
                return;
            }
            for nic in down {
                log(out, Level::Info, format!("{nic}: link down"));
            }
            log(out, Level::Info, "Local NIC link failure: Pulse disabled");
            self.linkfail = true;
            if self.active {
                self.deactivate(now, "local link failure", out);
            }
        } else if self.linkfail {
            log(
                out,
                Level::Info,
                "Local NIC link(s) restored: Pulse enabled",
            );
            self.linkfail = false;
        }
    }

    fn backoff(&self, deaths: u32) -> Duration {
        let cap = if self.s.partner {
            self.s.restart.max_delay
        } else {
            self.s.restart.lone_max_delay
        };
        let exp = deaths.saturating_sub(1).min(20);
        (self.s.restart.first_delay * 2u32.pow(exp)).min(cap)
    }

    fn lvsd_died(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.active || self.lvsd != Lvsd::Running {
            return;
        }
        if now.duration_since(self.lvsd_since) >= self.s.restart.window {
            self.quick_deaths = 1;
        } else {
            self.quick_deaths += 1;
        }
        let n = self.quick_deaths;
        if self.s.partner && n > self.s.restart.max_restarts {
            log(
                out,
                Level::Info,
                format!(
                    "lvsd died {n} times, each within {} of its start: giving up so that the partner takes over",
                    secs(self.s.restart.window)
                ),
            );
            self.deactivate(now, "lvsd failure", out);
            self.childfail = Some(now);
            return;
        }
        let delay = self.backoff(n);
        log(
            out,
            Level::Info,
            format!("lvsd died: restarting it in {}", secs(delay)),
        );
        self.lvsd = Lvsd::RestartAt(now + delay);
    }
}

#[cfg(test)]
mod tests;
