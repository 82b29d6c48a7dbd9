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
use ipvs::{ServiceEntry, ServiceId, Stats};
use nanny::report::Report;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming the status directory.
pub const ENV_DIR: &str = "PIRANHA_STATUS_DIR";
/// Environment variable: milliseconds between two IPVS counter refreshes.
pub const ENV_INTERVAL: &str = "PIRANHA_STATUS_INTERVAL_MS";
/// Environment variable: the group that may read the status files.
pub const ENV_GROUP: &str = "PIRANHA_STATUS_GROUP";
/// Default status directory.
pub const DEFAULT_DIR: &str = "/run/piranha";
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

/// Writes `text` to `path` atomically (temporary file in the same directory, then rename), mode
/// 0640, group `gid` when given.
pub fn write_atomic(path: &Path, text: &str, gid: Option<u32>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        if let Some(g) = gid {
            let _ = std::os::unix::fs::fchown(&f, None, Some(g));
        }
        f.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The gid of a group by name.
pub fn group_id(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam with a valid C string; the result is read at once (single-threaded here).
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        None
    } else {
        // SAFETY: non-null result of getgrnam.
        Some(unsafe { (*g).gr_gid })
    }
}

/// Creates the status directory if it is missing (mode 0750, group `gid`).
pub fn ensure_dir(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    if let Some(g) = gid {
        let _ = std::os::unix::fs::chown(dir, None, Some(g));
    }
    Ok(())
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
    path: Option<PathBuf>,
    gid: Option<u32>,
    interval: Duration,
    next_refresh: Instant,
    last_health: Option<BTreeMap<MonitorKey, Health>>,
    last_generation: u64,
    stats: HashMap<ServiceId, ServiceEntry>,
    stats_error: Option<String>,
    failing: bool,
    started: u64,
}

impl Publisher {
    /// A publisher configured from the environment.
    pub fn from_env() -> Publisher {
        let dir = match std::env::var_os(ENV_DIR) {
            Some(d) if d.is_empty() => None,
            Some(d) => Some(PathBuf::from(d)),
            None => Some(PathBuf::from(DEFAULT_DIR)),
        };
        Publisher::with_dir(dir)
    }

    /// A publisher that writes nothing (a controller embedded in a test, a test start).
    pub fn off() -> Publisher {
        Publisher::with_dir(None)
    }

    fn with_dir(dir: Option<PathBuf>) -> Publisher {
        let interval = std::env::var(ENV_INTERVAL)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms >= 100)
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(2));
        let group = std::env::var(ENV_GROUP).unwrap_or_else(|_| "piranha".into());
        let gid = group_id(&group);
        Publisher {
            path: dir.map(|d| d.join(FILE_NAME)),
            gid,
            interval,
            next_refresh: Instant::now(),
            last_health: None,
            last_generation: 0,
            stats: HashMap::new(),
            stats_error: None,
            failing: false,
            started: unix_now(),
        }
    }

    /// How long the main loop may sleep before the next counter refresh is due.
    pub fn wait(&self, max: Duration) -> Duration {
        if self.path.is_none() {
            return max;
        }
        max.min(self.next_refresh.saturating_duration_since(Instant::now()))
    }

    /// Called after every pass of the main loop: writes the file when a health changed, and
    /// refreshes the IPVS counters when they are due.
    pub fn tick(&mut self, ctl: &mut Controller) {
        if self.path.is_none() {
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
        if self.path.is_some() {
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
        let Some(path) = self.path.clone() else {
            return;
        };
        let text = match serde_json::to_string_pretty(&self.document(ctl, running)) {
            Ok(t) => t + "\n",
            Err(_) => return,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let result = ensure_dir(dir, self.gid).and_then(|_| write_atomic(&path, &text, self.gid));
        match result {
            Ok(()) => {
                if self.failing {
                    log::info!("status file {} written again", path.display());
                    self.failing = false;
                }
            }
            Err(e) => {
                if !self.failing {
                    log::warn!(
                        "cannot write the status file {}: {e} (set {ENV_DIR}; empty turns it off)",
                        path.display()
                    );
                    self.failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_group_readable_and_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("st");
        ensure_dir(&sub, None).unwrap();
        let p = sub.join("x.json");
        write_atomic(&p, "{\"a\":1}\n", None).unwrap();
        write_atomic(&p, "{\"a\":2}\n", None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":2}\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    }

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
