//! The check and weight state machine of one nanny: Piranha's `run`, `checkState` and
//! `adjustWeight` (spec §4.3, §4.6, §4.7) with no I/O.
//!
//! The machine is fed what happened (a check result, a load reading, a signal, the clock) and
//! answers with [`Effect`]s to carry out now (log lines, changes to the server's table entry) and
//! the [`Next`] thing to do (run a check, read the load, sleep until a time, wait for a signal,
//! exit). The process around it (`run.rs`) does the probing, the waiting and the reporting; the
//! tests here drive it with made-up inputs and a made-up clock.
//!
//! Time is a millisecond count from any fixed origin (the driver uses a monotonic clock).
//!
//! Piranha's behaviour is kept, including its odd corners, except for these fixes (also listed
//! in docs/compatibility.md):
//! - the re-entry threshold is at least one check (`reentry < timeout` gave 0 in Piranha, which
//!   behaved the same for admission but is now explicit);
//! - the entry in the table is tracked exactly: a forced down (SIGUSR1) of a quiesced server, a
//!   forced up (SIGUSR2) of a quiesced one, and a recovery after a forced down no longer issue an
//!   add for an entry that exists or an edit for one that does not (Piranha's ipvsadm then failed
//!   and nanny exited);
//! - a forced up records the full weight it set, so the ramp does not restart from weight 0
//!   (Piranha doubled 0 for ever, leaving the server at weight 0);
//! - a weight "change" to the current weight is not issued (only possible with weight 0).

use std::fmt::Write as _;

/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// Piranha's `nextState`: what SIGHUP, SIGUSR1 and SIGUSR2 ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glasses {
    /// SIGHUP: resume normal monitoring ("removing glasses").
    Normal,
    /// SIGUSR2: force the server up and stop monitoring ("rose-colored glasses on").
    Up,
    /// SIGUSR1: force the server down and stop monitoring ("opaque glasses on").
    Down,
}

/// `--lvs` or `--fos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A real server of a virtual service: its entry in the IPVS table is managed.
    Lvs,
    /// The partner's copy of a failover service: nanny exits when it fails (pulse/fos fail over).
    Fos,
}

/// The machine's fixed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub service: Service,
    /// Configured weight `-w`.
    pub weight: u32,
    /// Maximum multiplier of the weight from load `-S`.
    pub scale: u32,
    /// Seconds between checks `-t` (at least 1).
    pub interval: u32,
    /// Consecutive successful checks needed to (re)admit the server (at least 1).
    pub count_thresh: u64,
    /// `-q`: on failure set weight 0 instead of removing.
    pub quiesce: bool,
    /// A load command other than `none` is configured.
    pub load_monitor: bool,
    /// `-v`: emit Piranha's verbose debug lines.
    pub verbose: bool,
    /// `RIP:RPORT` as it appears in log lines.
    pub server: String,
}

/// Log severity of an [`Effect::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Debug,
}

/// A change to the server's entry in the IPVS table. In legacy mode each is one ipvsadm command;
/// in report mode one report line (docs/nanny-protocol.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Put the server in the table (`ipvsadm -a … -w W`; report `up W`).
    Add { weight: u32, why: String },
    /// Bring a quiesced entry back (`ipvsadm -e … -w W`; report `up W`).
    Restore { weight: u32, why: String },
    /// New weight for an entry that is up (`ipvsadm -e … -w W`; report `weight W`).
    Weight { weight: u32, why: String },
    /// Keep the entry with weight 0 (`ipvsadm -e … -w 0`; report `quiesce`).
    Quiesce { why: String },
    /// Remove the entry (`ipvsadm -d`; report `down`).
    Remove { why: String },
}

/// Something to do at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Log(Level, String),
    Change(Change),
}

/// What the driver does after carrying out the effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the health check and call [`Machine::check_done`].
    Check,
    /// Read the server's load and call [`Machine::load_done`].
    ReadLoad,
    /// Sleep until this time (then [`Machine::tick`]), waking early for signals.
    SleepUntil(Millis),
    /// Monitoring is suspended: wait for a signal, however long.
    WaitSignal,
    /// Exit with this status.
    Exit(i32),
}

/// Where the server's entry is, as far as this nanny knows (Piranha's `isSrvUp`, made exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Absent,
    Present,
    /// Present with weight 0 after a failure (`-q`).
    Quiesced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before [`Machine::start`].
    Idle,
    Checking,
    Loading,
    Sleeping(Millis),
    /// Glasses on: monitoring suspended.
    Forced,
    Done,
}

/// The state machine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Machine {
    cfg: Config,
    phase: Phase,
    /// Piranha's `isActive`: the server counts as available.
    active: bool,
    entry: Entry,
    /// Piranha's `currCount`: successful checks since the last failure.
    count: u64,
    /// Piranha's `lastWeight`.
    last_weight: u32,
    /// A SIGHUP/SIGUSR1/SIGUSR2 that arrived while a check or load reading was running.
    pending: Option<Glasses>,
    /// FOS: failed checks while waiting for the remote service.
    fos_counter: u32,
}

/// Piranha's initial weight after admission: `max(1, W >> 5)`.
pub fn initial_weight(weight: u32) -> u32 {
    (weight >> 5).max(1)
}

/// One slow-start step: `min(2 * last, W)`.
pub fn ramp_weight(last: u32, weight: u32) -> u32 {
    last.saturating_mul(2).min(weight)
}

/// Piranha's load-based weight (`adjustWeight` once `last >= W`), exactly as its C arithmetic
/// does it: `load` is a C `float`, the step `(W/2)·∛|1−load|` is computed in `double`, the sum is
/// truncated toward zero into an `int`, capped at `scale·W` (load < 1) or floored at `W`
/// (load > 1), and applied only if `|new − last| >= W/4` (a `float` comparison).
///
/// Returns the new weight, or None when nothing changes (load unavailable, exactly 1.0, change
/// below the threshold, or no change at all).
pub fn load_weight(weight: u32, scale: u32, last: u32, load: f32) -> Option<u32> {
    if load.is_nan() || load < 0.0 || load == 1.0 {
        return None;
    }
    let w = i64::from(weight);
    let last_i = i64::from(last);
    let scale_factor = f64::from(weight) / 2.0;
    let diff_thresh = weight as f32 / 4.0;
    let new = if load < 1.0 {
        let step = scale_factor * (1.0 - f64::from(load)).powf(1.0 / 3.0);
        let n = (last_i as f64 + step) as i64;
        n.min(i64::from(scale).saturating_mul(w))
    } else {
        let step = scale_factor * (f64::from(load) - 1.0).powf(1.0 / 3.0);
        let n = (last_i as f64 - step) as i64;
        n.max(w)
    };
    let new = new.clamp(0, i64::from(crate::report::MAX_WEIGHT));
    if (new - last_i).abs() as f32 >= diff_thresh && new != last_i {
        Some(new as u32)
    } else {
        None
    }
}

/// Whether Piranha adjusts the weight on this check: every check when the interval is over 20 s
/// (or 11-20 s, where `20 / interval` is 1), else every `20 / interval` successful checks.
pub fn weight_due(interval: u32, count: u64) -> bool {
    interval > 20 || count % u64::from(20 / interval.max(1)) == 0
}

impl Machine {
    pub fn new(cfg: Config) -> Machine {
        let count = cfg.count_thresh.max(1);
        let cfg = Config {
            count_thresh: count,
            interval: cfg.interval.max(1),
            ..cfg
        };
        Machine {
            phase: Phase::Idle,
            active: false,
            entry: Entry::Absent,
            // The first successful check admits the server at once.
            count,
            last_weight: 0,
            pending: None,
            fos_counter: 0,
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Piranha's `isActive`.
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn entry(&self) -> Entry {
        self.entry
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn last_weight(&self) -> u32 {
        self.last_weight
    }

    /// Monitoring is suspended by SIGUSR1/SIGUSR2.
    pub fn is_forced(&self) -> bool {
        self.phase == Phase::Forced
    }

    /// Begin: the first check runs at once.
    pub fn start(&mut self, _now: Millis, _fx: &mut Vec<Effect>) -> Next {
        if self.phase != Phase::Idle {
            return self.resume();
        }
        self.phase = Phase::Checking;
        Next::Check
    }

    /// The result of the check asked for by [`Next::Check`]. `Err` carries the failure text.
    pub fn check_done(
        &mut self,
        now: Millis,
        result: Result<(), String>,
        fx: &mut Vec<Effect>,
    ) -> Next {
        if self.phase != Phase::Checking {
            return self.resume();
        }
        let avail = result.is_ok();
        if avail {
            self.count = self.count.wrapping_add(1);
        } else if self.cfg.service == Service::Fos {
            if self.fos_counter > 0 {
                self.fos_counter += 1;
            }
            if self.fos_counter > 1 {
                info(
                    fx,
                    "Timeout waiting for remote service -- triggering failover!",
                );
                self.phase = Phase::Done;
                return Next::Exit(1);
            }
        }
        if self.cfg.verbose {
            fx.push(Effect::Log(
                Level::Debug,
                format!(
                    "avail: {} active: {}: count: {}",
                    u8::from(avail),
                    u8::from(self.active),
                    self.count
                ),
            ));
        }

        if avail && !self.active && self.count >= self.cfg.count_thresh {
            self.active = true;
            match self.cfg.service {
                Service::Fos => {
                    info(
                        fx,
                        &format!("Remote service {} is available", self.cfg.server),
                    );
                }
                Service::Lvs => {
                    info(
                        fx,
                        &format!("[ active ] making {} available", self.cfg.server),
                    );
                    let w0 = initial_weight(self.cfg.weight);
                    self.put_up(w0, "check passed".to_string(), fx);
                    self.last_weight = w0;
                }
            }
        } else if !avail && self.active {
            self.count = 0;
            self.active = false;
            let why = result.err().unwrap_or_default();
            match self.cfg.service {
                Service::Fos => {
                    info(
                        fx,
                        &format!("Exiting due to connection failure of {}", self.cfg.server),
                    );
                    self.phase = Phase::Done;
                    return Next::Exit(0);
                }
                Service::Lvs => {
                    info(
                        fx,
                        &format!(
                            "[inactive] shutting down {} due to connection failure",
                            self.cfg.server
                        ),
                    );
                    if self.cfg.quiesce && self.entry != Entry::Absent {
                        fx.push(Effect::Change(Change::Quiesce { why }));
                        self.entry = Entry::Quiesced;
                    } else {
                        fx.push(Effect::Change(Change::Remove { why }));
                        self.entry = Entry::Absent;
                    }
                }
            }
        } else if !avail && self.count > 0 {
            self.count = 0;
            match self.cfg.service {
                Service::Fos => {
                    info(fx, "No service active & available...");
                    self.fos_counter += 1;
                }
                Service::Lvs => {
                    if self.cfg.verbose {
                        fx.push(Effect::Log(
                            Level::Debug,
                            "No service active & available...".to_string(),
                        ));
                    }
                }
            }
        }

        if self.cfg.service == Service::Lvs
            && self.active
            && weight_due(self.cfg.interval, self.count)
        {
            if self.last_weight < self.cfg.weight {
                let new = ramp_weight(self.last_weight, self.cfg.weight);
                if self.cfg.verbose {
                    fx.push(Effect::Log(
                        Level::Debug,
                        format!("Adjusting weight of {} to {new}", self.cfg.server),
                    ));
                }
                if new != self.last_weight {
                    fx.push(Effect::Change(Change::Weight {
                        weight: new,
                        why: "slow start".to_string(),
                    }));
                    self.last_weight = new;
                }
            } else if self.cfg.load_monitor {
                self.phase = Phase::Loading;
                return Next::ReadLoad;
            }
        }
        self.sleep(now, fx)
    }

    /// The load reading asked for by [`Next::ReadLoad`]; None when it could not be read.
    pub fn load_done(&mut self, now: Millis, load: Option<f32>, fx: &mut Vec<Effect>) -> Next {
        if self.phase != Phase::Loading {
            return self.resume();
        }
        if let Some(load) = load {
            let new = load_weight(self.cfg.weight, self.cfg.scale, self.last_weight, load);
            if self.cfg.verbose && load >= 0.0 && load != 1.0 {
                fx.push(Effect::Log(
                    Level::Debug,
                    format!(
                        "Computing new weight {} based on last weight {} and load {:.6}",
                        new.unwrap_or(self.last_weight),
                        self.last_weight,
                        load
                    ),
                ));
            }
            if let Some(new) = new {
                // The machine only reads the load while the server is up.
                if self.active && self.entry == Entry::Present {
                    let mut why = String::new();
                    let _ = write!(why, "load {load:.2}");
                    fx.push(Effect::Change(Change::Weight { weight: new, why }));
                    self.last_weight = new;
                }
            }
        }
        self.sleep(now, fx)
    }

    /// SIGHUP, SIGUSR1 or SIGUSR2. During a check or a load reading the signal waits for its end
    /// (Piranha handled them only while sleeping).
    pub fn signal(&mut self, _now: Millis, g: Glasses, fx: &mut Vec<Effect>) -> Next {
        match self.phase {
            Phase::Checking | Phase::Loading | Phase::Idle => {
                self.pending = Some(g);
                self.resume()
            }
            Phase::Done => Next::Exit(0),
            Phase::Sleeping(_) | Phase::Forced => self.glasses(g, fx),
        }
    }

    /// SIGTERM or SIGINT: remove the server if it is active, then exit 0. A quiesced entry is
    /// left for lvsd to delete with its virtual service, as in Piranha.
    pub fn terminate(&mut self, signal: i32, fx: &mut Vec<Effect>) -> Next {
        if self.phase == Phase::Done {
            return Next::Exit(0);
        }
        info(fx, &format!("Terminating due to signal {signal}"));
        if self.active && self.cfg.service == Service::Lvs {
            fx.push(Effect::Change(Change::Remove {
                why: format!("terminating on signal {signal}"),
            }));
            self.entry = Entry::Absent;
            self.active = false;
        }
        self.phase = Phase::Done;
        Next::Exit(0)
    }

    /// The clock reached (or passed) the time of a [`Next::SleepUntil`].
    pub fn tick(&mut self, now: Millis, _fx: &mut Vec<Effect>) -> Next {
        match self.phase {
            Phase::Sleeping(t) if now >= t => {
                self.phase = Phase::Checking;
                Next::Check
            }
            _ => self.resume(),
        }
    }

    /// What the machine is waiting for, for a caller that lost track.
    pub fn resume(&self) -> Next {
        match self.phase {
            Phase::Idle | Phase::Checking => Next::Check,
            Phase::Loading => Next::ReadLoad,
            Phase::Sleeping(t) => Next::SleepUntil(t),
            Phase::Forced => Next::WaitSignal,
            Phase::Done => Next::Exit(0),
        }
    }

    fn sleep(&mut self, now: Millis, fx: &mut Vec<Effect>) -> Next {
        let until = now.saturating_add(u64::from(self.cfg.interval) * 1000);
        self.phase = Phase::Sleeping(until);
        if let Some(g) = self.pending.take() {
            return self.glasses(g, fx);
        }
        Next::SleepUntil(until)
    }

    /// Piranha's `checkState`.
    fn glasses(&mut self, g: Glasses, fx: &mut Vec<Effect>) -> Next {
        match g {
            Glasses::Up => {
                info(fx, "rose-colored glasses on");
                if !self.active {
                    if self.cfg.service == Service::Lvs {
                        self.put_up(self.cfg.weight, "forced up (SIGUSR2)".to_string(), fx);
                        self.last_weight = self.cfg.weight;
                    }
                    self.active = true;
                }
                self.phase = Phase::Forced;
                Next::WaitSignal
            }
            Glasses::Down => {
                info(fx, "opaque glasses on");
                if self.active {
                    if self.cfg.service == Service::Lvs {
                        fx.push(Effect::Change(Change::Remove {
                            why: "forced down (SIGUSR1)".to_string(),
                        }));
                        self.entry = Entry::Absent;
                    }
                    self.active = false;
                }
                self.phase = Phase::Forced;
                Next::WaitSignal
            }
            Glasses::Normal => {
                info(fx, "DEBUG -- removing glasses");
                self.count = self.cfg.count_thresh;
                self.phase = Phase::Checking;
                Next::Check
            }
        }
    }

    /// Puts the entry up with `weight`: add it, or bring a quiesced one back.
    fn put_up(&mut self, weight: u32, why: String, fx: &mut Vec<Effect>) {
        let change = match self.entry {
            Entry::Absent => Change::Add { weight, why },
            Entry::Quiesced => Change::Restore { weight, why },
            Entry::Present => Change::Weight { weight, why },
        };
        fx.push(Effect::Change(change));
        self.entry = Entry::Present;
    }
}

fn info(fx: &mut Vec<Effect>, text: &str) {
    fx.push(Effect::Log(Level::Info, text.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            service: Service::Lvs,
            weight: 100,
            scale: 10,
            interval: 1,
            count_thresh: 3,
            quiesce: false,
            load_monitor: false,
            verbose: false,
            server: "10.0.0.2:80".to_string(),
        }
    }

    /// A machine plus a clock, and the effects it produced.
    struct Rig {
        m: Machine,
        now: Millis,
        next: Next,
        fx: Vec<Effect>,
    }

    impl Rig {
        fn new(c: Config) -> Rig {
            let mut m = Machine::new(c);
            let mut fx = Vec::new();
            let next = m.start(0, &mut fx);
            Rig {
                m,
                now: 0,
                next,
                fx,
            }
        }

        /// Feeds a check result (the machine must be waiting for one).
        fn check(&mut self, ok: bool) -> Next {
            assert_eq!(self.next, Next::Check, "not waiting for a check");
            self.now += 5;
            let r = if ok {
                Ok(())
            } else {
                Err("refused".to_string())
            };
            self.next = self.m.check_done(self.now, r, &mut self.fx);
            self.next
        }

        /// Sleeps to the wake-up time and ticks.
        fn wake(&mut self) -> Next {
            match self.next {
                Next::SleepUntil(t) => {
                    self.now = t;
                    self.next = self.m.tick(t, &mut self.fx);
                }
                other => panic!("not sleeping: {other:?}"),
            }
            self.next
        }

        /// A whole iteration: check, then sleep to the next one (when it sleeps).
        fn cycle(&mut self, ok: bool) {
            self.check(ok);
            if matches!(self.next, Next::SleepUntil(_)) {
                self.wake();
            }
        }

        fn sig(&mut self, g: Glasses) -> Next {
            self.next = self.m.signal(self.now, g, &mut self.fx);
            self.next
        }

        fn changes(&mut self) -> Vec<Change> {
            let out = self
                .fx
                .iter()
                .filter_map(|e| match e {
                    Effect::Change(c) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            self.fx.retain(|e| !matches!(e, Effect::Change(_)));
            out
        }

        fn logs(&mut self) -> Vec<String> {
            let out = self
                .fx
                .iter()
                .filter_map(|e| match e {
                    Effect::Log(_, t) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            self.fx.retain(|e| !matches!(e, Effect::Log(..)));
            out
        }
    }

    fn add(w: u32) -> Change {
        Change::Add {
            weight: w,
            why: "check passed".into(),
        }
    }
    fn ramp(w: u32) -> Change {
        Change::Weight {
            weight: w,
            why: "slow start".into(),
        }
    }
    fn remove() -> Change {
        Change::Remove {
            why: "refused".into(),
        }
    }

    // ---- the weight formula -------------------------------------------------------------

    #[test]
    fn initial_weight_is_w_over_32_at_least_1() {
        for (w, w0) in [
            (0, 1),
            (1, 1),
            (31, 1),
            (32, 1),
            (63, 1),
            (64, 2),
            (100, 3),
            (1000, 31),
            (1024, 32),
            (u32::MAX >> 1, (u32::MAX >> 1) >> 5),
        ] {
            assert_eq!(initial_weight(w), w0, "W={w}");
        }
    }

    #[test]
    fn ramp_doubles_up_to_the_weight() {
        let mut seq = vec![initial_weight(100)];
        while *seq.last().unwrap() < 100 {
            seq.push(ramp_weight(*seq.last().unwrap(), 100));
        }
        assert_eq!(seq, [3, 6, 12, 24, 48, 96, 100]);
        let mut seq = vec![initial_weight(1000)];
        while *seq.last().unwrap() < 1000 {
            seq.push(ramp_weight(*seq.last().unwrap(), 1000));
        }
        assert_eq!(seq, [31, 62, 124, 248, 496, 992, 1000]);
        assert_eq!(ramp_weight(u32::MAX, u32::MAX), u32::MAX);
    }

    /// Piranha's formula on chosen loads. Expected values worked out by hand from the C:
    /// new = trunc(last ± (W/2)·∛|1−load|), cap S·W / floor W, applied if |new−last| >= W/4.
    #[test]
    fn load_formula_table() {
        // (W, S, last, load, expected)
        let table: &[(u32, u32, u32, f32, Option<u32>)] = &[
            // Idle server: last + W/2.
            (100, 10, 100, 0.0, Some(150)),
            // ∛0.5 = 0.7937: 100 + 39.685 -> 139.
            (100, 10, 100, 0.5, Some(139)),
            // ∛0.1 = 0.4642: +23.2 < 25 (W/4): unchanged.
            (100, 10, 100, 0.9, None),
            // ∛(1-0.15 as f32) = 0.94726: +47.36 -> 147.
            (100, 10, 100, 0.15, Some(147)),
            // Exactly 1.0: no change, no matter what.
            (100, 10, 300, 1.0, None),
            // Overloaded: 300 - 50 = 250.
            (100, 10, 300, 2.0, Some(250)),
            // ∛0.5·50 = 39.685: 300 - 39.685 = 260.315 -> 260.
            (100, 10, 300, 1.5, Some(260)),
            // ∛4·50 = 79.37: 120 - 79.37 = 40.6 -> floor W=100; |100-120| = 20 < 25: unchanged.
            (100, 10, 120, 5.0, None),
            // Floor reached from far: 500 - 79.37 = 420.6 -> 420.
            (100, 10, 500, 5.0, Some(420)),
            // Cap S·W: 990 + 50 -> 1000, but |10| < 25: unchanged.
            (100, 10, 990, 0.0, None),
            // Cap S·W reached: 960 + 50 = 1010 -> 1000, |40| >= 25.
            (100, 10, 960, 0.0, Some(1000)),
            // Smaller scale: cap 2·W = 200.
            (100, 2, 180, 0.0, None),
            (100, 2, 170, 0.0, Some(200)),
            // Weight 1 never moves: 1 + 0.5 truncates to 1.
            (1, 10, 1, 0.0, None),
            (1, 10, 1, 9.0, None),
            // Weight 3: 3 + 1.5 = 4.5 -> 4; |1| >= 0.75.
            (3, 10, 3, 0.0, Some(4)),
            // Weight 4: 4 + 2·∛0.5 = 5.587 -> 5; |1| >= 1.
            (4, 10, 4, 0.5, Some(5)),
            // Weight 8, load 0.9: 8 + 4·0.4642 = 9.857 -> 9; |1| < 2: unchanged.
            (8, 10, 8, 0.9, None),
            // Negative (unavailable) load: no change.
            (100, 10, 100, -1.0, None),
            (100, 10, 100, f32::NAN, None),
            // Weight 0 (admitted at 1): the cap S·W is 0, so a light load sets 0, as in C...
            (0, 10, 1, 0.0, Some(0)),
            // ...and a heavy one leaves 1 (Piranha re-issued the same weight; not done here).
            (0, 10, 1, 2.0, None),
            // Big weights do not overflow: cap at S·W clamped to IPVS's maximum.
            (i32::MAX as u32, 10, i32::MAX as u32, 0.0, None),
            (1 << 30, 10, 1 << 30, 0.0, Some((1 << 30) + (1 << 29))),
        ];
        for &(w, s, last, load, want) in table {
            assert_eq!(
                load_weight(w, s, last, load),
                want,
                "W={w} S={s} last={last} load={load}"
            );
        }
    }

    #[test]
    fn load_is_a_c_float() {
        // 0.15 as f32 is 0.150000006; the step uses that value, as Piranha's float did.
        let w = 1_000_000_000;
        let as_float = (1.0 - f64::from(0.15f32)).powf(1.0 / 3.0) * 500_000_000.0;
        let as_double = (1.0 - 0.15f64).powf(1.0 / 3.0) * 500_000_000.0;
        assert_ne!(as_float as i64, as_double as i64);
        assert_eq!(
            load_weight(w, 10, w, 0.15),
            Some((1_000_000_000.0 + as_float) as u32)
        );
    }

    #[test]
    fn weight_schedule_follows_piranha() {
        // interval 1: every 20 checks; 5: every 4; 10: every 2; 11..: every check.
        assert!(weight_due(1, 20) && weight_due(1, 40) && !weight_due(1, 21));
        assert!(weight_due(5, 8) && !weight_due(5, 9));
        assert!(weight_due(10, 2) && !weight_due(10, 3));
        for i in [11, 15, 20, 21, 60] {
            assert!(weight_due(i, 7), "interval {i}");
        }
        assert!(weight_due(3, 6) && !weight_due(3, 7)); // 20/3 = 6
        assert!(weight_due(7, 4) && !weight_due(7, 5)); // 20/7 = 2
    }

    // ---- admission, failure, re-entry ----------------------------------------------------

    #[test]
    fn first_success_admits_at_initial_weight() {
        let mut r = Rig::new(cfg());
        assert_eq!(r.next, Next::Check);
        assert_eq!(r.check(true), Next::SleepUntil(1005));
        assert_eq!(r.changes(), vec![add(3)]);
        assert_eq!(r.logs(), vec!["[ active ] making 10.0.0.2:80 available"]);
        assert!(r.m.is_active());
        assert_eq!(r.m.entry(), Entry::Present);
        assert_eq!(r.m.last_weight(), 3);
        // The next check comes one interval after this one ended.
        assert_eq!(r.wake(), Next::Check);
        assert_eq!(r.now, 1005);
    }

    #[test]
    fn first_failure_does_nothing_but_reset_the_count() {
        let mut r = Rig::new(cfg());
        r.check(false);
        assert!(r.changes().is_empty());
        assert!(r.logs().is_empty());
        assert_eq!(r.m.count(), 0);
        assert!(!r.m.is_active());
    }

    #[test]
    fn failure_removes_then_reentry_needs_thresh_consecutive_successes() {
        let mut r = Rig::new(cfg()); // thresh 3
        r.cycle(true);
        r.changes();
        r.logs();
        r.cycle(false);
        assert_eq!(r.changes(), vec![remove()]);
        assert_eq!(
            r.logs(),
            vec!["[inactive] shutting down 10.0.0.2:80 due to connection failure"]
        );
        assert_eq!(r.m.entry(), Entry::Absent);
        // Two successes, a failure: the count starts again.
        r.cycle(true);
        r.cycle(true);
        r.cycle(false);
        assert!(r.changes().is_empty());
        r.cycle(true);
        r.cycle(true);
        assert!(r.changes().is_empty());
        r.cycle(true);
        assert_eq!(r.changes(), vec![add(3)]);
    }

    #[test]
    fn reentry_threshold_table() {
        // (thresh, successes after a failure before re-admission)
        for thresh in [1u64, 2, 5, 18] {
            let mut r = Rig::new(Config {
                count_thresh: thresh,
                ..cfg()
            });
            r.cycle(true);
            r.cycle(false);
            r.changes();
            let mut n = 0;
            loop {
                r.cycle(true);
                n += 1;
                if !r.changes().is_empty() {
                    break;
                }
                assert!(n < 100);
            }
            assert_eq!(n, thresh, "thresh {thresh}");
        }
    }

    #[test]
    fn zero_threshold_is_one_check() {
        let r = Machine::new(Config {
            count_thresh: 0,
            ..cfg()
        });
        assert_eq!(r.config().count_thresh, 1);
    }

    #[test]
    fn failure_text_is_the_reason() {
        let mut r = Rig::new(cfg());
        r.cycle(true);
        r.changes();
        r.now += 1;
        r.next = r.m.check_done(
            r.now,
            Err("READ to 10.0.0.2:80 timed out".into()),
            &mut r.fx,
        );
        assert_eq!(
            r.changes(),
            vec![Change::Remove {
                why: "READ to 10.0.0.2:80 timed out".into()
            }]
        );
    }

    // ---- slow start and load ------------------------------------------------------------

    #[test]
    fn slow_start_every_20_checks_at_interval_1() {
        let mut r = Rig::new(cfg()); // thresh 3: first success makes count 4
        r.cycle(true);
        assert_eq!(r.changes(), vec![add(3)]);
        let mut seen = Vec::new();
        for i in 5..=200u64 {
            r.cycle(true);
            for c in r.changes() {
                seen.push((i, c));
            }
        }
        assert_eq!(
            seen,
            vec![
                (20, ramp(6)),
                (40, ramp(12)),
                (60, ramp(24)),
                (80, ramp(48)),
                (100, ramp(96)),
                (120, ramp(100)),
            ]
        );
    }

    #[test]
    fn slow_start_can_run_with_admission() {
        // thresh 19 at interval 1: the admitting check makes count 20, due at once.
        let mut r = Rig::new(Config {
            count_thresh: 19,
            weight: 64,
            ..cfg()
        });
        r.cycle(true);
        assert_eq!(r.changes(), vec![add(2), ramp(4)]);
    }

    #[test]
    fn slow_start_every_check_over_10s() {
        let mut r = Rig::new(Config {
            interval: 15,
            ..cfg()
        });
        r.cycle(true);
        assert_eq!(r.changes(), vec![add(3), ramp(6)]);
        r.cycle(true);
        assert_eq!(r.changes(), vec![ramp(12)]);
        // Each check starts one interval after the previous one ended.
        assert_eq!(r.now, 30_010);
    }

    fn to_full_weight(r: &mut Rig) {
        for _ in 0..500 {
            if r.next == Next::ReadLoad {
                break;
            }
            r.cycle(true);
            if r.m.last_weight() >= r.m.config().weight && r.next == Next::ReadLoad {
                break;
            }
        }
        r.changes();
    }

    #[test]
    fn load_reading_once_at_full_weight() {
        let mut r = Rig::new(Config {
            interval: 11,
            load_monitor: true,
            ..cfg()
        });
        // 3 -> 6 -> 12 -> 24 -> 48 -> 96 -> 100, one per check at interval 11.
        to_full_weight(&mut r);
        assert_eq!(r.m.last_weight(), 100);
        assert_eq!(r.next, Next::ReadLoad);
        r.now += 3;
        let n = r.m.load_done(r.now, Some(0.0), &mut r.fx);
        assert!(matches!(n, Next::SleepUntil(_)));
        r.next = n;
        assert_eq!(
            r.changes(),
            vec![Change::Weight {
                weight: 150,
                why: "load 0.00".into()
            }]
        );
        r.wake();
        r.check(true);
        assert_eq!(r.next, Next::ReadLoad);
        r.next = r.m.load_done(r.now, None, &mut r.fx);
        assert!(r.changes().is_empty());
        assert_eq!(r.m.last_weight(), 150);
        r.wake();
        r.check(true);
        r.next = r.m.load_done(r.now, Some(3.0), &mut r.fx);
        // 150 - 50·∛2 = 87 -> floor 100; |50| >= 25.
        assert_eq!(
            r.changes(),
            vec![Change::Weight {
                weight: 100,
                why: "load 3.00".into()
            }]
        );
    }

    #[test]
    fn no_load_command_means_no_reading() {
        let mut r = Rig::new(Config {
            interval: 11,
            ..cfg()
        });
        for _ in 0..20 {
            r.cycle(true);
            assert_ne!(r.next, Next::ReadLoad);
        }
        assert_eq!(r.m.last_weight(), 100);
    }

    #[test]
    fn weight_one_never_reads_load_during_ramp() {
        let mut r = Rig::new(Config {
            interval: 11,
            weight: 1,
            load_monitor: true,
            ..cfg()
        });
        r.check(true);
        // Admitted at 1 = W: the load is read at once (count due every check).
        assert_eq!(r.changes(), vec![add(1)]);
        assert_eq!(r.next, Next::ReadLoad);
        r.next = r.m.load_done(r.now, Some(0.0), &mut r.fx);
        assert!(r.changes().is_empty());
    }

    #[test]
    fn readmission_restarts_the_ramp() {
        let mut r = Rig::new(Config {
            interval: 11,
            ..cfg()
        });
        for _ in 0..8 {
            r.cycle(true);
        }
        assert_eq!(r.m.last_weight(), 100);
        r.cycle(false);
        r.changes();
        for _ in 0..3 {
            r.cycle(true);
        }
        assert_eq!(r.changes(), vec![add(3), ramp(6)]);
    }

    // ---- quiesce -------------------------------------------------------------------------

    #[test]
    fn quiesce_keeps_the_entry_and_restores_it() {
        let mut r = Rig::new(Config {
            quiesce: true,
            count_thresh: 1,
            ..cfg()
        });
        r.cycle(true);
        assert_eq!(r.changes(), vec![add(3)]);
        r.cycle(false);
        assert_eq!(
            r.changes(),
            vec![Change::Quiesce {
                why: "refused".into()
            }]
        );
        assert_eq!(r.m.entry(), Entry::Quiesced);
        r.cycle(false);
        assert!(r.changes().is_empty());
        r.cycle(true);
        assert_eq!(
            r.changes(),
            vec![Change::Restore {
                weight: 3,
                why: "check passed".into()
            }]
        );
        assert_eq!(r.m.entry(), Entry::Present);
    }

    #[test]
    fn quiesced_entry_survives_termination() {
        let mut r = Rig::new(Config {
            quiesce: true,
            ..cfg()
        });
        r.cycle(true);
        r.cycle(false);
        r.changes();
        r.logs();
        assert_eq!(r.m.terminate(15, &mut r.fx), Next::Exit(0));
        assert!(r.changes().is_empty());
        assert_eq!(r.logs(), vec!["Terminating due to signal 15"]);
    }

    // ---- termination ---------------------------------------------------------------------

    #[test]
    fn terminate_removes_only_an_active_server() {
        let mut r = Rig::new(cfg());
        assert_eq!(r.m.terminate(2, &mut r.fx), Next::Exit(0));
        assert!(r.changes().is_empty());

        let mut r = Rig::new(cfg());
        r.cycle(true);
        r.changes();
        assert_eq!(r.m.terminate(15, &mut r.fx), Next::Exit(0));
        assert_eq!(
            r.changes(),
            vec![Change::Remove {
                why: "terminating on signal 15".into()
            }]
        );
        // Once done, stays done.
        assert_eq!(r.m.terminate(15, &mut r.fx), Next::Exit(0));
        assert!(r.changes().is_empty());
    }

    // ---- glasses (SIGUSR1 / SIGUSR2 / SIGHUP) ----------------------------------------------

    #[test]
    fn usr1_forces_down_and_suspends_until_hup() {
        let mut r = Rig::new(cfg());
        r.check(true);
        r.changes();
        r.logs();
        assert_eq!(r.sig(Glasses::Down), Next::WaitSignal);
        assert_eq!(
            r.changes(),
            vec![Change::Remove {
                why: "forced down (SIGUSR1)".into()
            }]
        );
        assert_eq!(r.logs(), vec!["opaque glasses on"]);
        assert!(r.m.is_forced());
        // Ticks do nothing while forced.
        assert_eq!(r.m.tick(1_000_000, &mut r.fx), Next::WaitSignal);
        // SIGHUP: back to normal, immediate check, and one success re-admits.
        assert_eq!(r.sig(Glasses::Normal), Next::Check);
        assert_eq!(r.logs(), vec!["DEBUG -- removing glasses"]);
        assert_eq!(r.m.count(), 3);
        r.check(true);
        assert_eq!(r.changes(), vec![add(3)]);
    }

    #[test]
    fn usr1_when_inactive_changes_nothing() {
        let mut r = Rig::new(cfg());
        r.check(false);
        assert_eq!(r.sig(Glasses::Down), Next::WaitSignal);
        assert!(r.changes().is_empty());
    }

    #[test]
    fn usr1_removes_a_server_even_with_quiesce() {
        let mut r = Rig::new(Config {
            quiesce: true,
            ..cfg()
        });
        r.check(true);
        r.changes();
        r.sig(Glasses::Down);
        assert_eq!(
            r.changes(),
            vec![Change::Remove {
                why: "forced down (SIGUSR1)".into()
            }]
        );
        assert_eq!(r.m.entry(), Entry::Absent);
        // Recovery adds (Piranha edited a deleted entry and died).
        r.sig(Glasses::Normal);
        r.check(true);
        assert_eq!(r.changes(), vec![add(3)]);
    }

    #[test]
    fn usr1_on_a_quiesced_server_leaves_it() {
        let mut r = Rig::new(Config {
            quiesce: true,
            ..cfg()
        });
        r.cycle(true);
        r.check(false);
        r.changes();
        assert_eq!(r.sig(Glasses::Down), Next::WaitSignal);
        assert!(r.changes().is_empty());
        assert_eq!(r.m.entry(), Entry::Quiesced);
    }

    #[test]
    fn usr2_forces_up_at_full_weight() {
        let mut r = Rig::new(cfg());
        r.check(false);
        r.logs();
        assert_eq!(r.sig(Glasses::Up), Next::WaitSignal);
        assert_eq!(
            r.changes(),
            vec![Change::Add {
                weight: 100,
                why: "forced up (SIGUSR2)".into()
            }]
        );
        assert_eq!(r.logs(), vec!["rose-colored glasses on"]);
        assert_eq!(r.m.last_weight(), 100);
        // A second USR2: already active, nothing.
        r.sig(Glasses::Up);
        assert!(r.changes().is_empty());
        // Terminating while forced up removes it.
        r.m.terminate(15, &mut r.fx);
        assert_eq!(
            r.changes(),
            vec![Change::Remove {
                why: "terminating on signal 15".into()
            }]
        );
    }

    #[test]
    fn usr2_when_already_active_keeps_the_ramp_weight() {
        let mut r = Rig::new(cfg());
        r.check(true);
        r.changes();
        r.sig(Glasses::Up);
        assert!(r.changes().is_empty());
        assert_eq!(r.m.last_weight(), 3);
    }

    #[test]
    fn usr2_restores_a_quiesced_entry() {
        let mut r = Rig::new(Config {
            quiesce: true,
            ..cfg()
        });
        r.cycle(true);
        r.check(false);
        r.changes();
        assert_eq!(r.sig(Glasses::Up), Next::WaitSignal);
        assert_eq!(
            r.changes(),
            vec![Change::Restore {
                weight: 100,
                why: "forced up (SIGUSR2)".into()
            }]
        );
        assert_eq!(r.m.entry(), Entry::Present);
    }

    #[test]
    fn forced_up_then_hup_continues_from_full_weight() {
        let mut r = Rig::new(Config {
            interval: 11,
            ..cfg()
        });
        r.check(false);
        r.sig(Glasses::Up);
        r.changes();
        r.sig(Glasses::Normal);
        // Active: the check passes, no re-add, and no ramp from 0 (Piranha set weight 0).
        r.check(true);
        assert!(r.changes().is_empty());
        assert_eq!(r.m.last_weight(), 100);
    }

    #[test]
    fn up_then_down_then_up() {
        let mut r = Rig::new(cfg());
        r.check(false);
        r.sig(Glasses::Up);
        r.sig(Glasses::Down);
        r.sig(Glasses::Up);
        assert_eq!(
            r.changes(),
            vec![
                Change::Add {
                    weight: 100,
                    why: "forced up (SIGUSR2)".into()
                },
                Change::Remove {
                    why: "forced down (SIGUSR1)".into()
                },
                Change::Add {
                    weight: 100,
                    why: "forced up (SIGUSR2)".into()
                },
            ]
        );
    }

    #[test]
    fn hup_in_normal_mode_checks_at_once_with_full_count() {
        let mut r = Rig::new(cfg());
        r.cycle(true);
        r.cycle(false); // count 0, removed
        r.changes();
        assert!(matches!(r.next, Next::Check));
        r.check(false);
        assert!(matches!(r.next, Next::SleepUntil(_)));
        r.logs();
        assert_eq!(r.sig(Glasses::Normal), Next::Check);
        assert_eq!(r.logs(), vec!["DEBUG -- removing glasses"]);
        r.check(true);
        assert_eq!(r.changes(), vec![add(3)]);
    }

    #[test]
    fn signal_during_a_check_waits_for_its_end() {
        let mut r = Rig::new(cfg());
        assert_eq!(r.sig(Glasses::Down), Next::Check);
        assert!(r.changes().is_empty());
        // The check admits the server, then the pending USR1 removes it.
        assert_eq!(r.check(true), Next::WaitSignal);
        assert_eq!(
            r.changes(),
            vec![
                add(3),
                Change::Remove {
                    why: "forced down (SIGUSR1)".into()
                }
            ]
        );
    }

    #[test]
    fn last_pending_signal_wins() {
        let mut r = Rig::new(cfg());
        r.sig(Glasses::Down);
        r.sig(Glasses::Up);
        assert_eq!(r.check(false), Next::WaitSignal);
        assert_eq!(
            r.changes(),
            vec![Change::Add {
                weight: 100,
                why: "forced up (SIGUSR2)".into()
            }]
        );
    }

    #[test]
    fn signal_during_load_reading_waits() {
        let mut r = Rig::new(Config {
            interval: 11,
            weight: 1,
            load_monitor: true,
            ..cfg()
        });
        r.check(true);
        r.changes();
        assert_eq!(r.next, Next::ReadLoad);
        assert_eq!(r.sig(Glasses::Down), Next::ReadLoad);
        assert_eq!(r.m.load_done(r.now, Some(0.5), &mut r.fx), Next::WaitSignal);
        assert_eq!(
            r.changes(),
            vec![Change::Remove {
                why: "forced down (SIGUSR1)".into()
            }]
        );
    }

    #[test]
    fn early_tick_and_stray_inputs_are_harmless() {
        let mut r = Rig::new(cfg());
        r.check(true);
        let until = match r.next {
            Next::SleepUntil(t) => t,
            n => panic!("{n:?}"),
        };
        assert_eq!(r.m.tick(until - 1, &mut r.fx), Next::SleepUntil(until));
        // A check result or load reading nobody asked for is ignored.
        r.changes();
        assert_eq!(
            r.m.check_done(until - 1, Err("x".into()), &mut r.fx),
            Next::SleepUntil(until)
        );
        assert_eq!(
            r.m.load_done(until - 1, Some(0.0), &mut r.fx),
            Next::SleepUntil(until)
        );
        assert!(r.changes().is_empty());
        assert!(r.m.is_active());
        assert_eq!(r.m.tick(until, &mut r.fx), Next::Check);
    }

    #[test]
    fn verbose_lines() {
        let mut r = Rig::new(Config {
            verbose: true,
            ..cfg()
        });
        r.check(true);
        let logs = r.logs();
        assert_eq!(logs[0], "avail: 1 active: 0: count: 4");
        assert_eq!(logs[1], "[ active ] making 10.0.0.2:80 available");
    }

    // ---- failover services (--fos) --------------------------------------------------------

    fn fos() -> Config {
        Config {
            service: Service::Fos,
            count_thresh: 1,
            ..cfg()
        }
    }

    #[test]
    fn fos_available_then_failure_exits_0() {
        let mut r = Rig::new(fos());
        r.cycle(true);
        assert_eq!(r.logs(), vec!["Remote service 10.0.0.2:80 is available"]);
        assert!(r.changes().is_empty());
        r.cycle(true);
        assert_eq!(r.check(false), Next::Exit(0));
        assert_eq!(
            r.logs(),
            vec!["Exiting due to connection failure of 10.0.0.2:80"]
        );
    }

    #[test]
    fn fos_never_available_exits_1_on_the_second_failure() {
        let mut r = Rig::new(fos());
        r.cycle(false);
        assert_eq!(r.logs(), vec!["No service active & available..."]);
        assert_eq!(r.check(false), Next::Exit(1));
        assert_eq!(
            r.logs(),
            vec!["Timeout waiting for remote service -- triggering failover!"]
        );
    }

    #[test]
    fn fos_signals_touch_no_table() {
        let mut r = Rig::new(fos());
        r.check(false);
        r.sig(Glasses::Up);
        r.sig(Glasses::Down);
        assert!(r.changes().is_empty());
        r.m.terminate(15, &mut r.fx);
        assert!(r.changes().is_empty());
    }

    // ---- exhaustive: every short input sequence keeps the invariants ------------------------

    #[derive(Debug, Clone, Copy)]
    enum In {
        Ok,
        Fail,
        Load(f32),
        LoadNone,
        Tick,
        Sig(Glasses),
    }

    const INPUTS: [In; 8] = [
        In::Ok,
        In::Fail,
        In::Load(0.2),
        In::LoadNone,
        In::Tick,
        In::Sig(Glasses::Normal),
        In::Sig(Glasses::Up),
        In::Sig(Glasses::Down),
    ];

    /// The table as lvsd (or ipvsadm) would hold it, rebuilt from the changes alone.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Table {
        Absent,
        Weight(u32),
    }

    fn apply(t: &mut Table, c: &Change) {
        *t = match (*t, c) {
            (Table::Absent, Change::Add { weight, .. }) => Table::Weight(*weight),
            (Table::Weight(0), Change::Restore { weight, .. }) => Table::Weight(*weight),
            (Table::Weight(w), Change::Weight { weight, .. }) if w > 0 => Table::Weight(*weight),
            (Table::Weight(w), Change::Quiesce { .. }) if w > 0 => Table::Weight(0),
            (Table::Weight(_), Change::Remove { .. }) => Table::Absent,
            (t, c) => panic!("{c:?} applied to {t:?}"),
        };
    }

    fn feed(r: &mut Rig, i: In) {
        let now = r.now + 7;
        r.now = now;
        r.next = match (i, r.next) {
            (In::Ok, Next::Check) => r.m.check_done(now, Ok(()), &mut r.fx),
            (In::Fail, Next::Check) => r.m.check_done(now, Err("x".into()), &mut r.fx),
            (In::Load(l), Next::ReadLoad) => r.m.load_done(now, Some(l), &mut r.fx),
            (In::LoadNone, Next::ReadLoad) => r.m.load_done(now, None, &mut r.fx),
            (In::Tick, Next::SleepUntil(t)) => {
                r.now = t;
                r.m.tick(t, &mut r.fx)
            }
            (In::Sig(g), _) => r.m.signal(now, g, &mut r.fx),
            (_, n) => n, // input not applicable now
        };
    }

    #[test]
    fn exhaustive_sequences_keep_the_table_consistent() {
        let configs = [
            cfg(),
            Config {
                quiesce: true,
                count_thresh: 2,
                ..cfg()
            },
            Config {
                interval: 11,
                load_monitor: true,
                weight: 8,
                count_thresh: 1,
                ..cfg()
            },
            Config {
                interval: 11,
                load_monitor: true,
                quiesce: true,
                weight: 40,
                scale: 2,
                count_thresh: 1,
                ..cfg()
            },
        ];
        let depth = 6;
        let mut total = 0u64;
        for c in configs {
            let n = INPUTS.len().pow(depth);
            for mut code in 0..n {
                let mut r = Rig::new(c.clone());
                let mut table = Table::Absent;
                for _ in 0..depth {
                    let i = INPUTS[code % INPUTS.len()];
                    code /= INPUTS.len();
                    feed(&mut r, i);
                    for ch in r.changes() {
                        apply(&mut table, &ch);
                        if let Change::Add { weight, .. }
                        | Change::Restore { weight, .. }
                        | Change::Weight { weight, .. } = ch
                        {
                            assert!(weight >= 1 && weight <= c.weight.max(1) * c.scale);
                        }
                    }
                    // The machine's idea of the entry matches the table rebuilt from its changes.
                    match (r.m.entry(), table) {
                        (Entry::Absent, Table::Absent) => {}
                        (Entry::Quiesced, Table::Weight(0)) => {}
                        (Entry::Present, Table::Weight(w)) if w > 0 => {
                            assert_eq!(w, r.m.last_weight())
                        }
                        (e, t) => panic!("entry {e:?} but table {t:?}"),
                    }
                    assert_eq!(r.m.is_active(), r.m.entry() == Entry::Present);
                    assert!(r.m.entry() != Entry::Quiesced || c.quiesce);
                    total += 1;
                }
                // Termination always leaves no active entry behind.
                let mut m = r.m.clone();
                let mut fx = Vec::new();
                assert_eq!(m.terminate(15, &mut fx), Next::Exit(0));
                for e in fx {
                    if let Effect::Change(ch) = e {
                        apply(&mut table, &ch);
                    }
                }
                assert!(matches!(table, Table::Absent | Table::Weight(0)));
            }
        }
        assert_eq!(total, 4 * 6 * 8u64.pow(6));
    }
}
