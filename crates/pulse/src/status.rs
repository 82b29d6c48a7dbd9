//! Status publisher: pulse writes its state (role, active or standby, the partner, failovers) as
//! JSON to a file on every change, so that an unprivileged reader (piranha-gui) can show it.
//!
//! The file is `$PIRANHA_STATUS_DIR/pulse.json` (default `/run/piranha/pulse.json`; an empty
//! `PIRANHA_STATUS_DIR` turns publishing off), written atomically (temporary file, then rename),
//! mode 0640, group `PIRANHA_STATUS_GROUP` (default `piranha`) when that group exists.
//! `failovers` counts the changes between active and standby since pulse started (the state it
//! starts in is not one). Publishing never stops or fails the daemon: a failure is logged once
//! as a warning.

use crate::machine::PeerState;
use daemon::status_file::StatusFile;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// File name of pulse's status.
pub const FILE_NAME: &str = "pulse.json";

/// What pulse is doing, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// This router is the primary (`primary` is one of its addresses).
    pub master: bool,
    pub active: bool,
    /// `backup_active = 1` with a backup: heartbeats are exchanged.
    pub partner_configured: bool,
    /// The partner's last heartbeat (`None`: not heard from, or dead).
    pub partner: Option<PeerState>,
    pub link_failed: bool,
    pub lvsd_failed: bool,
    pub lvsd_pid: Option<i32>,
    /// Floating addresses held, as `IP on DEVICE`.
    pub addresses: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Publishes pulse's status (see the module documentation).
pub struct Publisher {
    file: StatusFile,
    last: Option<Snapshot>,
    failovers: u64,
    since: u64,
    started: u64,
}

impl Publisher {
    /// A publisher configured from the environment.
    pub fn from_env() -> Publisher {
        Publisher::with_file(StatusFile::from_env(FILE_NAME))
    }

    /// A publisher writing to `path` (`None`: off).
    pub fn new(path: Option<PathBuf>, gid: Option<u32>) -> Publisher {
        Publisher::with_file(StatusFile::new(path, gid))
    }

    fn with_file(file: StatusFile) -> Publisher {
        let now = unix_now();
        Publisher {
            file,
            last: None,
            failovers: 0,
            since: now,
            started: now,
        }
    }

    /// Changes between active and standby so far.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    /// Writes the file if the state changed since the last call.
    pub fn update(&mut self, s: Snapshot) {
        if !self.file.is_on() || self.last.as_ref() == Some(&s) {
            return;
        }
        if let Some(last) = &self.last {
            if last.active != s.active {
                self.failovers += 1;
                self.since = unix_now();
            }
        }
        self.last = Some(s);
        self.write(true);
    }

    /// The last write, as pulse stops.
    pub fn finish(&mut self) {
        if self.file.is_on() && self.last.is_some() {
            self.write(false);
        }
    }

    /// The JSON document.
    pub fn document(&self, running: bool) -> String {
        let Some(s) = &self.last else {
            return String::new();
        };
        let partner = match (s.partner_configured, s.partner) {
            (false, _) => "none",
            (true, Some(PeerState::Running)) => "active",
            (true, Some(PeerState::Stopped)) => "standby",
            (true, None) => "not heard from",
        };
        let addresses: Vec<String> = s.addresses.iter().map(|a| js(a)).collect();
        format!(
            "{{\n  \"version\": 1,\n  \"pid\": {},\n  \"running\": {running},\n  \"role\": {},\n  \
             \"state\": {},\n  \"partner_configured\": {},\n  \"partner\": {},\n  \
             \"partner_seen\": {},\n  \"link_failure\": {},\n  \"lvsd_failed\": {},\n  \
             \"lvsd_pid\": {},\n  \"failovers\": {},\n  \"since\": {},\n  \"started\": {},\n  \
             \"updated\": {},\n  \"addresses\": [{}]\n}}\n",
            std::process::id(),
            js(if s.master { "primary" } else { "backup" }),
            js(if s.active { "active" } else { "standby" }),
            s.partner_configured,
            js(partner),
            s.partner.is_some(),
            s.link_failed,
            s.lvsd_failed,
            s.lvsd_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "null".into()),
            self.failovers,
            self.since,
            self.started,
            unix_now(),
            addresses.join(", ")
        )
    }

    fn write(&mut self, running: bool) {
        let text = self.document(running);
        self.file.write(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(active: bool) -> Snapshot {
        Snapshot {
            master: false,
            active,
            partner_configured: true,
            partner: if active {
                None
            } else {
                Some(PeerState::Running)
            },
            link_failed: false,
            lvsd_failed: false,
            lvsd_pid: None,
            addresses: vec!["192.0.2.1 on eth0:1 \"x\"".into()],
        }
    }

    #[test]
    fn counts_failovers_and_writes_valid_json_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        let mut p = Publisher::new(Some(path.clone()), None);
        p.update(snap(false));
        let t1 = std::fs::read_to_string(&path).unwrap();
        assert!(t1.contains("\"state\": \"standby\""), "{t1}");
        assert!(t1.contains("\"failovers\": 0"), "{t1}");
        p.update(snap(true));
        p.update(snap(true));
        assert_eq!(p.failovers(), 1);
        p.update(snap(false));
        assert_eq!(p.failovers(), 2);
        p.finish();
        let t = std::fs::read_to_string(&path).unwrap();
        assert!(t.contains("\"running\": false"), "{t}");
        assert!(t.contains("\\\"x\\\""), "{t}");
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn off_when_no_path() {
        let mut p = Publisher::new(None, None);
        p.update(snap(true));
        p.update(snap(false));
        assert_eq!(p.failovers(), 0);
    }
}
