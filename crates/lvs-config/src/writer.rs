//! Writes a config back as lvs.cf in the Piranha GUI's style (5-space indentation, `}` alone on its
//! line), and saves files atomically keeping the previous one as a backup.

use crate::model::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that lvs.cf cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// What holds the value, e.g. `virtual www: send`.
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.problem)
    }
}

impl std::error::Error for WriteError {}

/// Why a string cannot be written as one lvs.cf token, or `None` if it can.
///
/// Piranha's tokenizer has no escapes: a value with blanks must be quoted with a quote character it
/// does not contain, and no value may contain a line end or a NUL.
pub fn unrepresentable(value: &str) -> Option<String> {
    // One pass over the bytes (this runs on every string of a config at every load).
    let (mut line_break, mut nul, mut double, mut single) = (false, false, false, false);
    for b in value.bytes() {
        match b {
            b'\n' | b'\r' => line_break = true,
            0 => nul = true,
            b'"' => double = true,
            b'\'' => single = true,
            _ => {}
        }
    }
    if line_break {
        return Some("contains a line break, which lvs.cf cannot hold".into());
    }
    if nul {
        return Some("contains a NUL byte".into());
    }
    if double && single && needs_quotes(value) {
        return Some(
            "contains blanks and both quote characters (\" and '), which lvs.cf cannot quote"
                .into(),
        );
    }
    None
}

/// Why a string cannot be written as a token followed by more tokens on its line (a block name
/// before `{`, the address before its device), or `None` if it can.
///
/// Piranha's tokenizer looks for a closing quote only from the first blank of the token on, so a
/// quoted token that is not the last on its line must contain a blank: an empty name, or one that
/// starts with a quote character and has no blank, cannot be written there.
pub fn unrepresentable_inner(value: &str) -> Option<String> {
    if let Some(problem) = unrepresentable(value) {
        return Some(problem);
    }
    if needs_quotes(value) && !value.contains([' ', '\t']) {
        return Some(if value.is_empty() {
            "is empty".into()
        } else {
            "starts with a quote character and has no blank, which lvs.cf cannot quote here".into()
        });
    }
    None
}

fn needs_quotes(value: &str) -> bool {
    value.is_empty() || value.contains([' ', '\t']) || value.starts_with(['"', '\''])
}

/// One value as an lvs.cf token, quoted when it has to be. The value is the last on its line.
pub fn token(value: &str, field: impl FnOnce() -> String) -> Result<String, WriteError> {
    quoted(value, unrepresentable(value), field)
}

/// A token followed by more on its line: a block name, the address of `address = IP DEVICE`.
pub fn inner_token(value: &str, field: impl FnOnce() -> String) -> Result<String, WriteError> {
    quoted(value, unrepresentable_inner(value), field)
}

fn quoted(
    value: &str,
    problem: Option<String>,
    field: impl FnOnce() -> String,
) -> Result<String, WriteError> {
    if let Some(problem) = problem {
        return Err(WriteError {
            field: field(),
            problem,
        });
    }
    if !needs_quotes(value) {
        return Ok(value.to_string());
    }
    let q = if value.contains('"') { '\'' } else { '"' };
    Ok(format!("{q}{value}{q}"))
}

/// Seconds as lvs.cf writes them: `6`, or `0.25` for a fraction (extension).
pub fn format_seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        return d.as_secs().to_string();
    }
    let frac = format!("{:09}", d.subsec_nanos());
    format!("{}.{}", d.as_secs(), frac.trim_end_matches('0'))
}

fn bool01(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, indent: usize, keyword: &str, value: &str) {
        let _ = writeln!(self.text, "{:indent$}{keyword} = {value}", "");
    }
}

/// The config as lvs.cf text.
///
/// Keywords are written in the GUI's order; a keyword whose value is its default is left out,
/// except the ones the GUI always writes. `parse(write(c)) == c` for every config that
/// [`crate::validate`] accepts (and for every config whose strings are representable).
pub fn to_string(c: &Config) -> Result<String, WriteError> {
    let mut o = Out {
        text: String::new(),
    };
    let g = |k: &'static str| move || k.to_string();
    let d = Config::default();
    o.line(0, "serial_no", &c.serial_no.to_string());
    if let Some(h) = &c.primary {
        o.line(0, "primary", &token(&h.name, g("primary"))?);
    }
    if let Some(h) = &c.primary_private {
        o.line(0, "primary_private", &token(&h.name, g("primary_private"))?);
    }
    if let Some(s) = &c.primary_shared {
        o.line(0, "primary_shared", &token(s, g("primary_shared"))?);
    }
    o.line(0, "service", c.service.keyword());
    o.line(0, "backup_active", bool01(c.backup_active));
    if let Some(h) = &c.backup {
        o.line(0, "backup", &token(&h.name, g("backup"))?);
    }
    if let Some(h) = &c.backup_private {
        o.line(0, "backup_private", &token(&h.name, g("backup_private"))?);
    }
    if let Some(s) = &c.backup_shared {
        o.line(0, "backup_shared", &token(s, g("backup_shared"))?);
    }
    o.line(0, "heartbeat", bool01(c.heartbeat));
    o.line(0, "heartbeat_port", &c.heartbeat_port.to_string());
    o.line(0, "keepalive", &format_seconds(c.keepalive));
    o.line(0, "deadtime", &format_seconds(c.deadtime));
    if let Some(f) = &c.heartbeat_key_file {
        o.line(0, "heartbeat_key_file", &token(f, g("heartbeat_key_file"))?);
    }
    o.line(0, "network", c.network.keyword());
    if let Some(nr) = &c.nat_router {
        let v = format!(
            "{} {}",
            inner_token(&nr.address.name, g("nat_router"))?,
            token(&nr.device, g("nat_router"))?
        );
        o.line(0, "nat_router", &v);
    }
    if let Some(m) = c.nat_nmask {
        o.line(0, "nat_nmask", &m.to_string());
    }
    if let Some(r) = c.reservation_conflict_action {
        o.line(0, "reservation_conflict_action", r.keyword());
    }
    if c.debug_level != d.debug_level {
        o.line(0, "debug_level", &token(&c.debug_level, g("debug_level"))?);
    }
    if c.rsh_command != d.rsh_command {
        o.line(0, "rsh_command", &token(&c.rsh_command, g("rsh_command"))?);
    }
    if c.sync {
        o.line(0, "sync", "1");
    }
    if c.ipvsadm != d.ipvsadm {
        o.line(0, "ipvsadm", &token(&c.ipvsadm, g("ipvsadm"))?);
    }
    if let Some(s) = &c.active_cmd {
        o.line(0, "active_cmd", &token(s, g("active_cmd"))?);
    }
    if let Some(s) = &c.inactive_cmd {
        o.line(0, "inactive_cmd", &token(s, g("inactive_cmd"))?);
    }
    if c.monitor_links != 0 {
        o.line(0, "monitor_links", &c.monitor_links.to_string());
    }
    if c.syncdaemon {
        o.line(0, "syncdaemon", "1");
    }
    if c.syncdaemon || c.syncd_iface != d.syncd_iface {
        o.line(0, "syncd_iface", &token(&c.syncd_iface, g("syncd_iface"))?);
    }
    if c.syncd_id != 0 {
        o.line(0, "syncd_id", &c.syncd_id.to_string());
    }
    if c.tcp_timeout != 0 || c.tcpfin_timeout != 0 || c.udp_timeout != 0 {
        o.line(0, "tcp_timeout", &c.tcp_timeout.to_string());
        o.line(0, "tcpfin_timeout", &c.tcpfin_timeout.to_string());
        o.line(0, "udp_timeout", &c.udp_timeout.to_string());
    }
    o.line(0, "hard_shutdown", bool01(c.hard_shutdown));
    for vs in &c.virtual_servers {
        block(&mut o, "virtual", vs)?;
    }
    for fs in &c.failover_services {
        block(&mut o, "failover", fs)?;
    }
    Ok(o.text)
}

fn block(o: &mut Out, kind: &'static str, vs: &VirtualServer) -> Result<(), WriteError> {
    let f = |k: &'static str| {
        let name = vs.name.clone();
        move || format!("{kind} {name}: {k}")
    };
    let d = VirtualServer::new("");
    let _ = writeln!(o.text, "{kind} {} {{", inner_token(&vs.name, f("name"))?);
    o.line(5, "active", bool01(vs.active));
    if let Some(a) = &vs.address {
        let v = format!(
            "{} {}",
            inner_token(&a.address.name, f("address"))?,
            token(&a.device, f("address"))?
        );
        o.line(5, "address", &v);
    }
    if let Some(m) = vs.vip_nmask {
        o.line(5, "vip_nmask", &m.to_string());
    }
    if let Some(m) = vs.fwmark {
        o.line(5, "fwmark", &m.to_string());
    }
    o.line(5, "port", &vs.port.to_string());
    if vs.persistent != 0 {
        o.line(5, "persistent", &vs.persistent.to_string());
    }
    if let Some(m) = vs.pmask {
        o.line(5, "pmask", &m.to_string());
    }
    if let Some(s) = &vs.send {
        o.line(5, "send", &token(s, f("send"))?);
    }
    if let Some(s) = &vs.expect {
        o.line(5, "expect", &token(s, f("expect"))?);
    }
    if vs.use_regex {
        o.line(5, "use_regex", "1");
    }
    if let Some(s) = &vs.send_program {
        o.line(5, "send_program", &token(s, f("send_program"))?);
    }
    if let Some(s) = &vs.load_monitor {
        o.line(5, "load_monitor", &token(s, f("load_monitor"))?);
    }
    o.line(5, "scheduler", vs.scheduler.name());
    o.line(5, "protocol", vs.protocol.keyword());
    o.line(5, "timeout", &vs.timeout.to_string());
    o.line(5, "reentry", &vs.reentry.to_string());
    o.line(5, "quiesce_server", bool01(vs.quiesce_server));
    if let Some(a) = vs.sorry_server {
        o.line(5, "sorry_server", &a.to_string());
    }
    if vs.client_monitor != d.client_monitor {
        o.line(
            5,
            "client_monitor",
            &token(&vs.client_monitor, f("client_monitor"))?,
        );
    }
    if let Some(s) = &vs.start_cmd {
        o.line(5, "start_cmd", &token(s, f("start_cmd"))?);
    }
    if let Some(s) = &vs.stop_cmd {
        o.line(5, "stop_cmd", &token(s, f("stop_cmd"))?);
    }
    if let Some(h) = &vs.master {
        o.line(5, "master", &token(&h.name, f("master"))?);
    }
    if let Some(dirs) = &vs.dirs {
        let mut v = String::from("[");
        for d in dirs {
            v.push(' ');
            v.push_str(&inner_token(d, f("dirs"))?);
        }
        v.push_str(" ]");
        o.line(5, "dirs", &v);
    }
    for rs in &vs.servers {
        let sf = || format!("{kind} {}: server {}", vs.name, rs.name);
        let _ = writeln!(o.text, "     server {} {{", inner_token(&rs.name, sf)?);
        if let Some(h) = &rs.address {
            o.line(9, "address", &token(&h.name, sf)?);
        }
        o.line(9, "active", bool01(rs.active));
        if rs.port != vs.port {
            o.line(9, "port", &rs.port.to_string());
        }
        o.line(9, "weight", &rs.weight.to_string());
        o.text.push_str("     }\n");
    }
    o.text.push_str("}\n");
    Ok(())
}

/// The backup kept by [`save`]: `lvs.cf` -> `lvs.cf.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".bak");
    PathBuf::from(s)
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, fsync, then
/// rename over `path`; the previous file (if any) is kept as `path.bak`, and the new file gets the
/// previous one's mode. A crash at any point leaves either the old or the new file, never a torn
/// one.
pub fn save_text(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lvs.cf".into());
    let previous = std::fs::metadata(path).ok();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(contents.as_bytes())?;
    let mode = previous
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some(m) = &previous {
        use std::os::unix::fs::MetadataExt;
        // Keep the owner when we may (as root); otherwise the writer's own ids stay.
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
    }
    tmp.as_file().sync_all()?;
    if previous.is_some() {
        keep_backup(path, &dir, &file_name)?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

/// Makes `path.bak` a copy of `path`, itself atomically (hard link or copy to a temporary name,
/// then rename).
fn keep_backup(path: &Path, dir: &Path, file_name: &str) -> std::io::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.bak."))
        .tempfile_in(dir)?;
    let tmp_path = tmp.into_temp_path();
    std::fs::remove_file(&tmp_path)?;
    if std::fs::hard_link(path, &tmp_path).is_err() {
        std::fs::copy(path, &tmp_path)?;
        std::fs::File::open(&tmp_path)?.sync_all()?;
    }
    std::fs::rename(&tmp_path, backup_path(path))?;
    tmp_path.keep().map(|_| ()).map_err(|e| e.error)
}

/// Writes a config to `path` (see [`save_text`]).
pub fn save(path: &Path, config: &Config) -> Result<(), SaveError> {
    let text = to_string(config).map_err(SaveError::Unrepresentable)?;
    save_text(path, &text).map_err(SaveError::Io)
}

#[derive(Debug)]
pub enum SaveError {
    Unrepresentable(WriteError),
    Io(std::io::Error),
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::Unrepresentable(e) => e.fmt(f),
            SaveError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SaveError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_quoted_only_when_needed() {
        let t = |s: &str| token(s, || "x".into());
        assert_eq!(t("abc").unwrap(), "abc");
        assert_eq!(t("GET / HTTP/1.0").unwrap(), "\"GET / HTTP/1.0\"");
        assert_eq!(t("say \"hi\"").unwrap(), "'say \"hi\"'");
        assert_eq!(t("").unwrap(), "\"\"");
        assert_eq!(t("'x").unwrap(), "\"'x\"");
        assert_eq!(t("#x").unwrap(), "#x");
        let i = |s: &str| inner_token(s, || "x".into());
        assert_eq!(i("my web").unwrap(), "\"my web\"");
        assert!(i("").is_err());
        assert!(i("'x").is_err());
        assert!(t("a \"b\" 'c'").is_err());
        assert!(t("a\nb").is_err());
        assert_eq!(t("a\"b'c").unwrap(), "a\"b'c");
    }

    #[test]
    fn seconds() {
        assert_eq!(format_seconds(Duration::from_secs(6)), "6");
        assert_eq!(format_seconds(Duration::from_millis(200)), "0.2");
        assert_eq!(format_seconds(Duration::new(1, 5)), "1.000000005");
    }
}
