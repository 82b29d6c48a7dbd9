//! What the suite is doing, read without privileges: the status files pulse and lvsd publish
//! (`/run/piranha/pulse.json`, `lvsd.json`), `/proc/net/ip_vs` and `/proc/net/ip_vs_stats` as a
//! fallback for the live table, the suite's processes from `/proc`, and "apply" (SIGHUP through
//! the pid files).

use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where to look.
#[derive(Debug, Clone)]
pub struct Paths {
    pub status_dir: PathBuf,
    pub proc_root: PathBuf,
    pub pulse_pidfile: PathBuf,
    pub lvsd_pidfile: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            status_dir: PathBuf::from("/run/piranha"),
            proc_root: PathBuf::from("/proc"),
            pulse_pidfile: PathBuf::from("/var/run/pulse.pid"),
            lvsd_pidfile: PathBuf::from("/var/run/lvs.pid"),
        }
    }
}

/// The names of the suite's programs, as `/proc/PID/comm` shows them.
pub const SUITE_PROGRAMS: &[&str] = &[
    "pulse",
    "lvsd",
    "lvs",
    "nanny",
    "send_arp",
    "fos",
    "ipvsd",
    "ipvsadm",
    "piranha-gui",
];

/// Whether a process exists (a process of another user counts).
pub fn alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: signal 0 only checks.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn comm(proc_root: &Path, pid: i64) -> Option<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A status file, with `"stale": true` added when the process that wrote it is gone (or says it
/// stopped). `None` when there is no file or it is not JSON.
pub fn read_status(path: &Path) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    if text.len() > 16 * 1024 * 1024 {
        return None;
    }
    let mut v: Value = serde_json::from_slice(&text).ok()?;
    let pid = v.get("pid").and_then(Value::as_i64).unwrap_or(0);
    let running = v.get("running").and_then(Value::as_bool).unwrap_or(false);
    let stale = !running || !alive(pid);
    if let Some(o) = v.as_object_mut() {
        o.insert("stale".into(), Value::Bool(stale));
    }
    Some(v)
}

/// The suite's processes: pid, program, command line.
pub fn processes(proc_root: &Path) -> Vec<Value> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, Value)> = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let Some(name) = comm(proc_root, pid) else {
            continue;
        };
        if !SUITE_PROGRAMS.contains(&name.as_str()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| {
                let s: String = String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .chars()
                    .take(300)
                    .collect();
                s
            })
            .unwrap_or_default();
        out.push((
            pid,
            json!({"pid": pid, "program": name, "cmdline": cmdline}),
        ));
        if out.len() >= 2000 {
            break;
        }
    }
    out.sort_by_key(|(p, _)| *p);
    out.into_iter().map(|(_, v)| v).collect()
}

fn hex_addr_port(s: &str) -> Option<String> {
    let (a, p) = s.split_once(':')?;
    if a.len() == 8 {
        let a = u32::from_str_radix(a, 16).ok()?;
        let p = u16::from_str_radix(p, 16).ok()?;
        Some(format!("{}:{p}", Ipv4Addr::from(a)))
    } else {
        // IPv6: the kernel prints it bracketed already, e.g. [2001:db8::1]:0050.
        let p = u16::from_str_radix(p.rsplit(':').next()?, 16).ok()?;
        Some(format!("{a}:{p}"))
    }
}

/// Parses `/proc/net/ip_vs` (ipvsadm -L -n in hex, as Piranha's GUI read it).
pub fn parse_proc_ip_vs(text: &str) -> Vec<Value> {
    let mut services: Vec<Value> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty()
            || t.starts_with("IP Virtual Server")
            || t.starts_with("Prot ")
            || t.starts_with("-> RemoteAddress")
        {
            continue;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        if w[0] == "->" {
            if w.len() < 6 {
                continue;
            }
            let Some(addr) = hex_addr_port(w[1]) else {
                continue;
            };
            if let Some(Value::Array(d)) =
                services.last_mut().and_then(|s| s.get_mut("destinations"))
            {
                d.push(json!({
                    "address": addr,
                    "forward": w[2],
                    "weight": w[3].parse::<i64>().unwrap_or(0),
                    "active_conns": w[4].parse::<u64>().unwrap_or(0),
                    "inactive_conns": w[5].parse::<u64>().unwrap_or(0),
                }));
            }
        } else if w.len() >= 3 {
            let (proto, addr) = match w[0] {
                "TCP" | "UDP" | "SCTP" => (w[0].to_lowercase(), hex_addr_port(w[1])),
                "FWM" => (
                    "fwmark".to_string(),
                    u32::from_str_radix(w[1], 16).ok().map(|m| m.to_string()),
                ),
                _ => continue,
            };
            let Some(addr) = addr else { continue };
            let mut flags = w[3..].join(" ");
            if flags.len() > 100 {
                flags.truncate(100);
            }
            services.push(json!({
                "protocol": proto,
                "address": addr,
                "scheduler": w[2],
                "flags": flags,
                "destinations": [],
            }));
        }
    }
    services
}

/// Parses `/proc/net/ip_vs_stats`: totals and rates (hexadecimal numbers).
pub fn parse_proc_ip_vs_stats(text: &str) -> Option<Value> {
    let rows: Vec<Vec<u64>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 5 && w.iter().all(|x| x.bytes().all(|b| b.is_ascii_hexdigit())))
        .map(|w| {
            w.iter()
                .filter_map(|x| u64::from_str_radix(x, 16).ok())
                .collect()
        })
        .filter(|v: &Vec<u64>| v.len() == 5)
        .collect();
    let t = rows.first()?;
    let r = rows.get(1);
    Some(json!({
        "conns": t[0], "inpkts": t[1], "outpkts": t[2], "inbytes": t[3], "outbytes": t[4],
        "cps": r.map(|r| r[0]), "inpps": r.map(|r| r[1]), "outpps": r.map(|r| r[2]),
        "inbps": r.map(|r| r[3]), "outbps": r.map(|r| r[4]),
    }))
}

/// The live IPVS table from `/proc` (`None` when the kernel has no IPVS).
pub fn proc_table(proc_root: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(proc_root.join("net/ip_vs")).ok()?;
    let stats = std::fs::read_to_string(proc_root.join("net/ip_vs_stats"))
        .ok()
        .and_then(|t| parse_proc_ip_vs_stats(&t));
    Some(json!({"services": parse_proc_ip_vs(&text), "totals": stats}))
}

/// Everything the monitoring panel shows.
pub fn status(paths: &Paths) -> Value {
    let pulse = read_status(&paths.status_dir.join("pulse.json"));
    let lvsd = read_status(&paths.status_dir.join("lvsd.json"));
    json!({
        "pulse": pulse,
        "lvsd": lvsd,
        "processes": processes(&paths.proc_root),
        "proc_ipvs": proc_table(&paths.proc_root),
        "time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    })
}

/// The result of "apply".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// SIGHUP sent to this program and pid.
    Signalled(&'static str, i32),
    /// Nothing runs: nobody to tell.
    NothingRunning(String),
    /// A process runs but could not be signalled.
    Failed(String),
}

fn pid_from(file: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(file).ok()?;
    let t = text.trim();
    if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Reloads the running suite: SIGHUP to pulse (which passes it on to lvsd), or to lvsd when
/// pulse does not run. A pid file is trusted only if its process has the expected name.
pub fn apply(paths: &Paths) -> Applied {
    let candidates: [(&'static str, &Path, &[&str]); 2] = [
        ("pulse", &paths.pulse_pidfile, &["pulse"]),
        ("lvsd", &paths.lvsd_pidfile, &["lvsd", "lvs"]),
    ];
    for (program, file, names) in candidates {
        let Some(pid) = pid_from(file) else { continue };
        if !alive(pid) {
            continue;
        }
        match comm(&paths.proc_root, pid) {
            Some(n) if names.contains(&n.as_str()) => {}
            _ => continue,
        }
        // SAFETY: kill with a checked pid.
        let r = unsafe { libc::kill(pid as i32, libc::SIGHUP) };
        if r == 0 {
            log::info!("apply: sent SIGHUP to {program} (pid {pid})");
            return Applied::Signalled(program, pid as i32);
        }
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            " (the GUI runs unprivileged: give it CAP_KILL, as piranha-gui.service does with \
             AmbientCapabilities=CAP_KILL, or run `service pulse reload` as root)"
        } else {
            ""
        };
        return Applied::Failed(format!("cannot signal {program} (pid {pid}): {e}{hint}"));
    }
    Applied::NothingRunning(format!(
        "nothing to reload: pulse is not running (no live pulse in {}) and neither is lvsd (no \
         live lvsd in {}); the new configuration is used when the suite starts",
        paths.pulse_pidfile.display(),
        paths.lvsd_pidfile.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP_VS: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0A80164:0050 wlc persistent 300 mask 255.255.255.0
  -> AC10000C:0050      Masq    50     1          2
  -> AC10000B:0050      Masq    100    3          4
FWM  00000007 rr
  -> AC100015:0035      Route   1      0          0
";

    #[test]
    fn proc_ip_vs_is_read_like_ipvsadm() {
        let s = parse_proc_ip_vs(IP_VS);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["address"], "192.168.1.100:80");
        assert_eq!(s[0]["protocol"], "tcp");
        assert_eq!(s[0]["flags"], "persistent 300 mask 255.255.255.0");
        assert_eq!(s[0]["destinations"][1]["address"], "172.16.0.11:80");
        assert_eq!(s[0]["destinations"][1]["weight"], 100);
        assert_eq!(s[0]["destinations"][1]["active_conns"], 3);
        assert_eq!(s[1]["protocol"], "fwmark");
        assert_eq!(s[1]["address"], "7");
        assert_eq!(s[1]["destinations"][0]["forward"], "Route");
    }

    #[test]
    fn proc_stats_are_hex() {
        let t = "   Total Incoming Outgoing         Incoming         Outgoing
   Conns  Packets  Packets            Bytes            Bytes
      1A       FF        0              100                0

 Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
       2        3        0               10                0
";
        let v = parse_proc_ip_vs_stats(t).unwrap();
        assert_eq!(v["conns"], 26);
        assert_eq!(v["inpkts"], 255);
        assert_eq!(v["inbytes"], 256);
        assert_eq!(v["cps"], 2);
        assert_eq!(v["inbps"], 16);
    }

    #[test]
    fn status_files_are_stale_without_their_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pulse.json");
        std::fs::write(
            &p,
            format!("{{\"pid\": {}, \"running\": true}}", std::process::id()),
        )
        .unwrap();
        assert_eq!(read_status(&p).unwrap()["stale"], false);
        std::fs::write(&p, "{\"pid\": 2147483646, \"running\": true}").unwrap();
        assert_eq!(read_status(&p).unwrap()["stale"], true);
        std::fs::write(&p, "not json").unwrap();
        assert!(read_status(&p).is_none());
    }

    #[test]
    fn apply_reports_nothing_running_and_ignores_foreign_pids() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            status_dir: dir.path().into(),
            proc_root: "/proc".into(),
            pulse_pidfile: dir.path().join("pulse.pid"),
            lvsd_pidfile: dir.path().join("lvs.pid"),
        };
        assert!(matches!(apply(&paths), Applied::NothingRunning(_)));
        // Our own pid is alive but is not pulse: it must not be signalled.
        std::fs::write(&paths.pulse_pidfile, format!("{}\n", std::process::id())).unwrap();
        assert!(matches!(apply(&paths), Applied::NothingRunning(_)));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&paths.lvsd_pidfile, format!("{}\n", child.id())).unwrap();
        assert!(
            matches!(apply(&paths), Applied::NothingRunning(_)),
            "sleep is not lvsd"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
