//! Status publisher: lvsd writes what it knows (each virtual and real server, health, weight, the
//! last check failure, IPVS counters and rates) as JSON to a file, so that an unprivileged reader
//! (piranha-gui) can show it without CAP_NET_ADMIN.
//!
//! The file is `$PIRANHA_STATUS_DIR/lvsd.json` (default `/run/piranha/lvsd.json`; an empty
//! `PIRANHA_STATUS_DIR` turns publishing off). It is written atomically (temporary file, then
//! rename) whenever a real server's health or weight changes, and every
//! `PIRANHA_STATUS_INTERVAL_MS` (default 2000) with fresh IPVS counters read in one dump of the
//! services lvsd owns. Mode 0640; the group is `PIRANHA_STATUS_GROUP` (default `piranha`) when
//! that group exists. Publishing never stops or fails the daemon: a failure is logged once as a
//! warning (and once more when it works again).

use crate::controller::Controller;
use crate::plan::{monitor_key, service_id, Health, MonitorKey};
use daemon::status_file::StatusFile;
use ipvs::{ServiceEntry, ServiceId, Stats};
use nanny::report::Report;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable: milliseconds between two IPVS counter refreshes.
pub const ENV_INTERVAL: &str = "PIRANHA_STATUS_INTERVAL_MS";
/// File name of lvsd's status.
pub const FILE_NAME: &str = "lvsd.json";

/// The last failure text of each real server, with the time it was reported, and a generation
/// counter bumped on every change (the main loop is single-threaded; the lock is never contended).
struct Failures {
    map: BTreeMap<MonitorKey, (String, u64)>,
    generation: u64,
}

static FAILURES: Mutex<Failures> = Mutex::new(Failures {
    map: BTreeMap::new(),
    generation: 0,
});

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Records a nanny report: a failure (down, quiesce) keeps its text as the server's last failure.
pub fn note(key: &MonitorKey, report: &Report) {
    let why = match report {
        Report::Down { why } | Report::Quiesce { why } => why,
        _ => return,
    };
    if let Ok(mut f) = FAILURES.lock() {
        let text = if why.is_empty() {
            "check failed".to_string()
        } else {
            why.clone()
        };
        f.map.insert(*key, (text, unix_now()));
        f.generation += 1;
    }
}

/// Runs `f` with the last failure texts (the main loop is single-threaded: never contended).
fn with_failures<T>(f: impl FnOnce(u64, &BTreeMap<MonitorKey, (String, u64)>) -> T) -> T {
    match FAILURES.lock() {
        Ok(g) => f(g.generation, &g.map),
        Err(_) => f(0, &BTreeMap::new()),
    }
}

fn failures_generation() -> u64 {
    with_failures(|g, _| g)
}

fn health_json(h: Option<Health>) -> (&'static str, Option<u32>) {
    match h {
        None => ("not monitored", None),
        Some(Health::Unknown) => ("unknown", None),
        Some(Health::Up(w)) => ("up", Some(w)),
        Some(Health::Quiesced) => ("quiesced", Some(0)),
        Some(Health::Down) => ("down", None),
    }
}

// The document, serialized straight from borrowed data (no intermediate JSON tree: with 4,000
// real servers that tree was most of lvsd's idle CPU time).

#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    pid: u32,
    running: bool,
    started: u64,
    updated: u64,
    interval_ms: u64,
    serial_no: i64,
    ipvs_error: Option<&'a str>,
    virtual_servers: Vec<VirtualServerStatus<'a>>,
}

#[derive(Serialize)]
struct VirtualServerStatus<'a> {
    name: &'a str,
    active: bool,
    service: Option<String>,
    scheduler: &'a str,
    sorry_server_on: bool,
    ipvs: Option<ServiceIpvs<'a>>,
    real_servers: Vec<RealServerStatus<'a>>,
}

#[derive(Serialize)]
struct ServiceIpvs<'a> {
    scheduler: &'a str,
    stats: &'a Stats,
}

#[derive(Serialize)]
struct RealServerStatus<'a> {
    name: &'a str,
    address: Option<Ipv4Addr>,
    port: u16,
    active: bool,
    configured_weight: u32,
    health: &'static str,
    weight: Option<u32>,
    nanny_pid: Option<i32>,
    last_failure: Option<&'a str>,
    last_failure_at: Option<u64>,
    ipvs: Option<DestinationIpvs<'a>>,
}

#[derive(Serialize)]
struct DestinationIpvs<'a> {
    weight: i32,
    active_conns: u32,
    inactive_conns: u32,
    stats: &'a Stats,
}

/// Publishes lvsd's status (see the module documentation).
pub struct Publisher {
    file: StatusFile,
    interval: Duration,
    next_refresh: Instant,
    /// (controller generation, failure generation) of the last write.
    last_generation: Option<(u64, u64)>,
    /// A change not written yet (writes after a change are spaced by `min_gap`).
    pending: bool,
    last_write: Option<Instant>,
    /// What the last counter refresh and write cost: the spacing grows with it, so that
    /// publishing takes a bounded share of lvsd's time however large the table.
    last_cost: Duration,
    stats: HashMap<ServiceId, ServiceEntry>,
    stats_error: Option<String>,
    started: u64,
    buffer: Vec<u8>,
}

/// Shortest spacing of two writes caused by changes (a burst of reports, thousands of nannies
/// starting) and the share of lvsd's time publishing may take.
const MIN_GAP: Duration = Duration::from_millis(250);
const GAP_PER_COST: u32 = 10;
const INTERVAL_PER_COST: u32 = 25;

impl Publisher {
    /// A publisher configured from the environment.
    pub fn from_env() -> Publisher {
        Publisher::with_file(StatusFile::from_env(FILE_NAME))
    }

    /// A publisher that writes nothing (a controller embedded in a test, a test start).
    pub fn off() -> Publisher {
        Publisher::with_file(StatusFile::off())
    }

    fn with_file(file: StatusFile) -> Publisher {
        let interval = std::env::var(ENV_INTERVAL)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms >= 100)
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(2));
        Publisher {
            file,
            interval,
            next_refresh: Instant::now(),
            last_generation: None,
            pending: false,
            last_write: None,
            last_cost: Duration::ZERO,
            stats: HashMap::default(),
            stats_error: None,
            started: unix_now(),
            buffer: Vec::new(),
        }
    }

    /// Spacing of writes caused by changes.
    fn gap(&self) -> Duration {
        MIN_GAP.max(self.last_cost * GAP_PER_COST)
    }

    /// Spacing of counter refreshes: the configured interval, longer when a refresh costs more
    /// than 1/25 of it.
    fn effective_interval(&self) -> Duration {
        self.interval.max(self.last_cost * INTERVAL_PER_COST)
    }

    /// How long the main loop may sleep before the next write is due.
    pub fn wait(&self, max: Duration) -> Duration {
        if !self.file.is_on() {
            return max;
        }
        let now = Instant::now();
        let mut due = self.next_refresh;
        if self.pending {
            due = due.min(self.last_write.map_or(now, |t| t + self.gap()));
        }
        max.min(due.saturating_duration_since(now))
    }

    /// Called after every pass of the main loop: writes the file when something it shows
    /// changed (at most once per gap), and refreshes the IPVS counters when they are due.
    pub fn tick(&mut self, ctl: &mut Controller) {
        if !self.file.is_on() {
            return;
        }
        let now = Instant::now();
        let generation = (ctl.status_generation(), failures_generation());
        if self.last_generation != Some(generation) {
            self.pending = true;
        }
        let refresh = now >= self.next_refresh;
        let change_due = self.pending && self.last_write.map_or(true, |t| now >= t + self.gap());
        if !refresh && !change_due {
            return;
        }
        if refresh {
            self.refresh_stats(ctl);
        }
        self.last_generation = Some(generation);
        self.pending = false;
        self.write(ctl, true);
        let done = Instant::now();
        if refresh {
            self.last_cost = done - now;
            self.next_refresh = done + self.effective_interval();
        } else {
            // A write without a refresh costs less; keep the larger of the two.
            self.last_cost = self.last_cost.max(done - now);
        }
        self.last_write = Some(done);
    }

    /// The last write, as lvsd stops.
    pub fn finish(&mut self, ctl: &Controller) {
        if self.file.is_on() {
            self.stats.clear();
            self.write(ctl, false);
        }
    }

    fn refresh_stats(&mut self, ctl: &mut Controller) {
        let ids: HashSet<ServiceId> = ctl
            .config()
            .virtual_servers
            .iter()
            .filter(|vs| vs.active)
            .filter_map(|vs| vs.key().map(service_id))
            .collect();
        let table = ctl.table_mut();
        // Status reads are not lvsd's own work: they do not count in its request counters.
        let saved = table.counters;
        let result = table.read_owned(&ids);
        table.counters = saved;
        match result {
            Ok(s) => {
                self.stats = s;
                self.stats_error = None;
            }
            Err(e) => {
                self.stats.clear();
                self.stats_error = Some(e.to_string());
            }
        }
    }

    fn document<'a>(
        &'a self,
        ctl: &'a Controller,
        failures: &'a BTreeMap<MonitorKey, (String, u64)>,
        running: bool,
    ) -> Document<'a> {
        let config = ctl.config();
        let mut vss = Vec::with_capacity(config.virtual_servers.len());
        for vs in &config.virtual_servers {
            let id = vs.key().map(service_id);
            let entry = id.as_ref().and_then(|id| self.stats.get(id));
            let mut rss = Vec::with_capacity(vs.servers.len());
            for rs in &vs.servers {
                let key = monitor_key(vs, rs);
                let monitored = vs.active && rs.active;
                let (h, pid) = match key.as_ref().filter(|_| monitored) {
                    Some(k) => {
                        let (h, pid) = ctl.monitor_state(k);
                        (Some(h.unwrap_or(Health::Unknown)), pid)
                    }
                    None => (None, key.as_ref().and_then(|k| ctl.monitor_state(k).1)),
                };
                let (state, weight) = health_json(h);
                let dest = match (entry, rs.address.as_ref()) {
                    (Some(e), Some(a)) => e
                        .destinations
                        .iter()
                        .find(|d| d.addr == IpAddr::V4(a.address) && d.port == rs.port),
                    _ => None,
                };
                let failure = key.as_ref().and_then(|k| failures.get(k));
                rss.push(RealServerStatus {
                    name: &rs.name,
                    address: rs.address.as_ref().map(|a| a.address),
                    port: rs.port,
                    active: rs.active,
                    configured_weight: rs.weight,
                    health: state,
                    weight,
                    nanny_pid: pid,
                    last_failure: failure.map(|f| f.0.as_str()),
                    last_failure_at: failure.map(|f| f.1),
                    ipvs: dest.map(|d| DestinationIpvs {
                        weight: d.weight,
                        active_conns: d.active_conns,
                        inactive_conns: d.inact_conns,
                        stats: &d.stats,
                    }),
                });
            }
            vss.push(VirtualServerStatus {
                name: &vs.name,
                active: vs.active,
                service: vs.key().map(|k| k.to_string()),
                scheduler: vs.scheduler.name(),
                sorry_server_on: id.as_ref().is_some_and(|id| ctl.sorry_on(id)),
                ipvs: entry.map(|e| ServiceIpvs {
                    scheduler: &e.service.scheduler,
                    stats: &e.service.stats,
                }),
                real_servers: rss,
            });
        }
        Document {
            version: 1,
            pid: std::process::id(),
            running,
            started: self.started,
            updated: unix_now(),
            interval_ms: self.effective_interval().as_millis() as u64,
            serial_no: config.serial_no,
            ipvs_error: self.stats_error.as_deref(),
            virtual_servers: vss,
        }
    }

    fn write(&mut self, ctl: &Controller, running: bool) {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let ok = with_failures(|_, failures| {
            serde_json::to_writer(&mut buffer, &self.document(ctl, failures, running)).is_ok()
        });
        if ok {
            buffer.push(b'\n');
            self.file.write_bytes(&buffer);
        }
        self.buffer = buffer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_the_last_text() {
        let key = MonitorKey {
            service: lvs_config::ServiceKey::Fwmark(4242),
            rip: "192.0.2.9".parse().unwrap(),
            rport: 80,
        };
        let g0 = failures_generation();
        note(
            &key,
            &Report::Up {
                weight: 1,
                why: String::new(),
            },
        );
        note(
            &key,
            &Report::Down {
                why: "connect refused".into(),
            },
        );
        let (g1, text) = with_failures(|g, map| (g, map.get(&key).map(|f| f.0.clone())));
        assert!(g1 > g0);
        assert_eq!(text.as_deref(), Some("connect refused"));
    }
}
