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
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
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

fn failures() -> (u64, BTreeMap<MonitorKey, (String, u64)>) {
    match FAILURES.lock() {
        Ok(f) => (f.generation, f.map.clone()),
        Err(_) => (0, BTreeMap::new()),
    }
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts,
        "inbytes": s.inbytes, "outbytes": s.outbytes, "cps": s.cps,
        "inpps": s.inpps, "outpps": s.outpps, "inbps": s.inbps, "outbps": s.outbps,
    })
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

/// Publishes lvsd's status (see the module documentation).
pub struct Publisher {
    file: StatusFile,
    interval: Duration,
    next_refresh: Instant,
    last_health: Option<BTreeMap<MonitorKey, Health>>,
    last_generation: u64,
    stats: HashMap<ServiceId, ServiceEntry>,
    stats_error: Option<String>,
    started: u64,
}

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
            last_health: None,
            last_generation: 0,
            stats: HashMap::new(),
            stats_error: None,
            started: unix_now(),
        }
    }

    /// How long the main loop may sleep before the next counter refresh is due.
    pub fn wait(&self, max: Duration) -> Duration {
        if !self.file.is_on() {
            return max;
        }
        max.min(self.next_refresh.saturating_duration_since(Instant::now()))
    }

    /// Called after every pass of the main loop: writes the file when a health changed, and
    /// refreshes the IPVS counters when they are due.
    pub fn tick(&mut self, ctl: &mut Controller) {
        if !self.file.is_on() {
            return;
        }
        let now = Instant::now();
        let health = ctl.health();
        let (generation, _) = failures();
        let refresh = now >= self.next_refresh;
        let changed =
            self.last_health.as_ref() != Some(&health) || generation != self.last_generation;
        if !refresh && !changed {
            return;
        }
        if refresh {
            self.refresh_stats(ctl);
            self.next_refresh = now + self.interval;
        }
        self.last_generation = generation;
        self.last_health = Some(health);
        self.write(ctl, true);
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

    fn document(&self, ctl: &Controller, running: bool) -> Value {
        let config = ctl.config();
        let health = self.last_health.clone().unwrap_or_default();
        let pids = ctl.nanny_pids();
        let (_, failures) = failures();
        let mut vss = Vec::new();
        for vs in &config.virtual_servers {
            let id = vs.key().map(service_id);
            let entry = id.as_ref().and_then(|id| self.stats.get(id));
            let mut rss = Vec::new();
            for rs in &vs.servers {
                let key = monitor_key(vs, rs);
                let monitored = vs.active && rs.active;
                let h = key
                    .as_ref()
                    .filter(|_| monitored)
                    .map(|k| health.get(k).copied().unwrap_or(Health::Unknown));
                let (state, weight) = health_json(h);
                let dest = match (entry, rs.address.as_ref()) {
                    (Some(e), Some(a)) => e
                        .destinations
                        .iter()
                        .find(|d| d.addr == IpAddr::V4(a.address) && d.port == rs.port),
                    _ => None,
                };
                let failure = key.as_ref().and_then(|k| failures.get(k));
                rss.push(json!({
                    "name": rs.name,
                    "address": rs.address.as_ref().map(|a| a.address.to_string()),
                    "port": rs.port,
                    "active": rs.active,
                    "configured_weight": rs.weight,
                    "health": state,
                    "weight": weight,
                    "nanny_pid": key.as_ref().and_then(|k| pids.get(k)),
                    "last_failure": failure.map(|f| f.0.clone()),
                    "last_failure_at": failure.map(|f| f.1),
                    "ipvs": dest.map(|d| json!({
                        "weight": d.weight,
                        "active_conns": d.active_conns,
                        "inactive_conns": d.inact_conns,
                        "stats": stats_json(&d.stats),
                    })),
                }));
            }
            vss.push(json!({
                "name": vs.name,
                "active": vs.active,
                "service": vs.key().map(|k| k.to_string()),
                "scheduler": vs.scheduler.name(),
                "sorry_server_on": id.as_ref().is_some_and(|id| ctl.sorry_on(id)),
                "ipvs": entry.map(|e| json!({
                    "scheduler": e.service.scheduler,
                    "stats": stats_json(&e.service.stats),
                })),
                "real_servers": rss,
            }));
        }
        json!({
            "version": 1,
            "pid": std::process::id(),
            "running": running,
            "started": self.started,
            "updated": unix_now(),
            "interval_ms": self.interval.as_millis() as u64,
            "serial_no": config.serial_no,
            "ipvs_error": self.stats_error,
            "virtual_servers": vss,
        })
    }

    fn write(&mut self, ctl: &Controller, running: bool) {
        if let Ok(text) = serde_json::to_string_pretty(&self.document(ctl, running)) {
            self.file.write(&(text + "\n"));
        }
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
        let (g0, _) = failures();
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
        let (g1, map) = failures();
        assert!(g1 > g0);
        assert_eq!(map.get(&key).map(|f| f.0.as_str()), Some("connect refused"));
    }
}
