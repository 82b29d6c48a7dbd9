//! Form fields to lvs.cf: strict parsing of each field (a malformed value is an error beside its
//! field), application to a [`Config`], and validation diagnostics mapped back to fields.
//!
//! Field names are the lvs.cf keywords, except `nat_router_ip`/`nat_router_device` (the two
//! values of `nat_router`) and, in a virtual server, `address`/`device` (the two values of
//! `address`).

use lvs_config::writer::unrepresentable;
use lvs_config::{
    BlockKind, Config, Diagnostic, Host, InterfaceAddress, Network, Protocol, RealServer, Resolver,
    Scheduler, ServiceType, VirtualServer,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// What a set of fields edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// GLOBAL SETTINGS and REDUNDANCY.
    Global,
    /// A virtual server (`None`: a new one).
    Virtual(Option<usize>),
    /// A real server of a virtual server (`None`: a new one).
    Server(usize, Option<usize>),
}

/// An error shown beside a field (`field` empty: about the whole form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

pub const GLOBAL_FIELDS: &[&str] = &[
    "primary",
    "primary_private",
    "service",
    "network",
    "nat_router_ip",
    "nat_router_device",
    "nat_nmask",
    "rsh_command",
    "active_cmd",
    "inactive_cmd",
    "tcp_timeout",
    "tcpfin_timeout",
    "udp_timeout",
    "hard_shutdown",
    "debug_level",
    // REDUNDANCY
    "backup_active",
    "backup",
    "backup_private",
    "heartbeat",
    "heartbeat_port",
    "keepalive",
    "deadtime",
    "monitor_links",
    "syncdaemon",
    "syncd_iface",
    "syncd_id",
    "heartbeat_key_file",
];

pub const VIRTUAL_FIELDS: &[&str] = &[
    "name",
    "active",
    "address",
    "device",
    "vip_nmask",
    "port",
    "protocol",
    "fwmark",
    "sorry_server",
    "timeout",
    "reentry",
    "quiesce_server",
    "load_monitor",
    "scheduler",
    "persistent",
    "pmask",
    // MONITORING SCRIPTS
    "send_program",
    "send",
    "expect",
    "use_regex",
];

pub const SERVER_FIELDS: &[&str] = &["name", "address", "port", "weight", "active"];

/// Longest value of any field.
pub const MAX_VALUE: usize = 4096;

/// Parses and applies fields one by one, collecting every error.
struct Fields<'a> {
    map: &'a BTreeMap<String, String>,
    resolver: &'a dyn Resolver,
    errors: Vec<FieldError>,
}

fn is_digits(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

impl<'a> Fields<'a> {
    fn get(&self, k: &str) -> Option<&'a str> {
        self.map.get(k).map(|s| s.as_str())
    }

    fn err(&mut self, k: &str, m: impl Into<String>) {
        self.errors.push(FieldError::new(k, m));
    }

    fn bool(&mut self, k: &str, out: &mut bool) {
        if let Some(v) = self.get(k) {
            match v {
                "0" => *out = false,
                "1" => *out = true,
                _ => self.err(k, "must be 0 or 1"),
            }
        }
    }

    fn uint<T: TryFrom<u64> + Copy>(&mut self, k: &str, min: u64, max: u64, out: &mut T) {
        if let Some(v) = self.get(k) {
            if let Some(n) = self.parse_uint(k, v, min, max) {
                if let Ok(t) = T::try_from(n) {
                    *out = t;
                }
            }
        }
    }

    fn parse_uint(&mut self, k: &str, v: &str, min: u64, max: u64) -> Option<u64> {
        if !is_digits(v) || v.len() > 10 {
            self.err(k, format!("must be a whole number from {min} to {max}"));
            return None;
        }
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(k, format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    /// An optional number where empty means "not set".
    fn opt_uint(&mut self, k: &str, min: u64, max: u64, out: &mut Option<u32>) {
        if let Some(v) = self.get(k) {
            if v.is_empty() {
                *out = None;
            } else if let Some(n) = self.parse_uint(k, v, min, max) {
                *out = u32::try_from(n).ok().filter(|&n| n != 0);
            }
        }
    }

    fn seconds(&mut self, k: &str, out: &mut Duration) {
        let Some(v) = self.get(k) else { return };
        let ok = match v.split_once('.') {
            None => is_digits(v) && v.len() <= 9,
            Some((a, b)) => is_digits(a) && a.len() <= 9 && is_digits(b) && b.len() <= 9,
        };
        let parsed = if ok { v.parse::<f64>().ok() } else { None };
        match parsed.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
            Some(d) if !d.is_zero() => *out = d,
            _ => self.err(
                k,
                "must be a number of seconds greater than 0 (e.g. 6 or 0.5)",
            ),
        }
    }

    /// A dotted quad; empty means "not set".
    fn opt_quad(&mut self, k: &str, out: &mut Option<Ipv4Addr>) {
        if let Some(v) = self.get(k) {
            if v.is_empty() {
                *out = None;
            } else {
                match v.parse::<Ipv4Addr>() {
                    Ok(a) => *out = Some(a),
                    Err(_) => self.err(k, "must be an IPv4 address in dotted-quad form (a.b.c.d)"),
                }
            }
        }
    }

    /// A dotted quad or a resolvable host name.
    fn host_value(&mut self, k: &str, v: &str) -> Option<Host> {
        if let Ok(a) = v.parse::<Ipv4Addr>() {
            return Some(Host::from(a));
        }
        if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            self.err(k, "is not a valid IPv4 address");
            return None;
        }
        if !lvs_config::resolve::is_valid_hostname(v) {
            self.err(k, "must be an IPv4 address or a host name");
            return None;
        }
        match self.resolver.host(v) {
            Some(a) => Some(Host {
                name: v.to_string(),
                address: a,
            }),
            None => {
                self.err(
                    k,
                    format!("host name `{v}` does not resolve to an IPv4 address"),
                );
                None
            }
        }
    }

    fn opt_host(&mut self, k: &str, out: &mut Option<Host>) {
        if let Some(v) = self.get(k) {
            if v.is_empty() {
                *out = None;
            } else if let Some(h) = self.host_value(k, v) {
                *out = Some(h);
            }
        }
    }

    fn checked_string(&mut self, k: &str, v: &str) -> Option<String> {
        if v.len() > MAX_VALUE {
            self.err(k, format!("is longer than {MAX_VALUE} characters"));
            return None;
        }
        if v.chars().any(|c| c.is_control() && c != '\t') {
            self.err(k, "must not contain control characters or line breaks");
            return None;
        }
        if let Some(problem) = unrepresentable(v) {
            self.err(k, problem);
            return None;
        }
        Some(v.to_string())
    }

    fn opt_string(&mut self, k: &str, out: &mut Option<String>) {
        if let Some(v) = self.get(k) {
            if v.is_empty() {
                *out = None;
            } else if let Some(s) = self.checked_string(k, v) {
                *out = Some(s);
            }
        }
    }

    fn string(&mut self, k: &str, default: &str, out: &mut String) {
        if let Some(v) = self.get(k) {
            if v.is_empty() {
                *out = default.to_string();
            } else if let Some(s) = self.checked_string(k, v) {
                *out = s;
            }
        }
    }

    /// A single word: a block name, a device, an interface.
    fn word(&mut self, k: &str, v: &str, what: &str) -> Option<String> {
        if v.is_empty() {
            self.err(k, format!("{what} is required"));
            return None;
        }
        if v.len() > 64 {
            self.err(k, format!("{what} is longer than 64 characters"));
            return None;
        }
        if !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-@+".contains(&b))
        {
            self.err(
                k,
                format!("{what} may only contain letters, digits and _ . : - @ +"),
            );
            return None;
        }
        Some(v.to_string())
    }

    fn keyword<T: Copy>(&mut self, k: &str, choices: &[(&str, T)], out: &mut T) {
        if let Some(v) = self.get(k) {
            match choices.iter().find(|(n, _)| *n == v) {
                Some((_, t)) => *out = *t,
                None => {
                    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                    self.err(k, format!("must be one of: {}", names.join(", ")));
                }
            }
        }
    }
}

fn unknown_fields(map: &BTreeMap<String, String>, allowed: &[&str]) -> Vec<FieldError> {
    map.keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldError::new(k, "unknown field"))
        .collect()
}

/// Applies `fields` to `config` at `target`. Returns the index of the virtual server (and of the
/// real server) edited or created. Fields not given are left as they are; a new block starts
/// from Piranha's defaults. On error nothing useful is left in `config` (work on a copy).
pub fn apply(
    config: &mut Config,
    target: Target,
    map: &BTreeMap<String, String>,
    resolver: &dyn Resolver,
) -> Result<(usize, Option<usize>), Vec<FieldError>> {
    let mut f = Fields {
        map,
        resolver,
        errors: Vec::new(),
    };
    let result = match target {
        Target::Global => {
            f.errors.extend(unknown_fields(map, GLOBAL_FIELDS));
            apply_global(&mut f, config);
            (0, None)
        }
        Target::Virtual(index) => {
            f.errors.extend(unknown_fields(map, VIRTUAL_FIELDS));
            let i = match index {
                Some(i) if i < config.virtual_servers.len() => i,
                Some(_) => return Err(vec![FieldError::new("", "no such virtual server")]),
                None => {
                    if map.get("name").map_or(true, |n| n.is_empty()) {
                        f.err("name", "name is required");
                    }
                    config
                        .virtual_servers
                        .push(Arc::new(VirtualServer::new("")));
                    config.virtual_servers.len() - 1
                }
            };
            apply_virtual(&mut f, Arc::make_mut(&mut config.virtual_servers[i]));
            (i, None)
        }
        Target::Server(vi, index) => {
            f.errors.extend(unknown_fields(map, SERVER_FIELDS));
            let Some(vs) = config.virtual_servers.get_mut(vi) else {
                return Err(vec![FieldError::new("", "no such virtual server")]);
            };
            let vs = Arc::make_mut(vs);
            let j = match index {
                Some(j) if j < vs.servers.len() => j,
                Some(_) => return Err(vec![FieldError::new("", "no such real server")]),
                None => {
                    if map.get("name").map_or(true, |n| n.is_empty()) {
                        f.err("name", "name is required");
                    }
                    vs.servers.push(RealServer::new("", vs.port));
                    vs.servers.len() - 1
                }
            };
            let port = vs.port;
            apply_server(&mut f, &mut vs.servers[j], port);
            (vi, Some(j))
        }
    };
    if f.errors.is_empty() {
        Ok(result)
    } else {
        Err(f.errors)
    }
}

fn apply_global(f: &mut Fields, c: &mut Config) {
    f.opt_host("primary", &mut c.primary);
    f.opt_host("primary_private", &mut c.primary_private);
    f.keyword(
        "service",
        &[("lvs", ServiceType::Lvs), ("fos", ServiceType::Fos)],
        &mut c.service,
    );
    f.keyword(
        "network",
        &[
            ("nat", Network::Nat),
            ("direct", Network::Direct),
            ("tunnel", Network::Tunnel),
        ],
        &mut c.network,
    );
    let ip = f.get("nat_router_ip");
    let dev = f.get("nat_router_device");
    if ip.is_some() || dev.is_some() {
        let ip = ip
            .map(str::to_string)
            .or_else(|| c.nat_router.as_ref().map(|n| n.address.name.clone()))
            .unwrap_or_default();
        let dev = dev
            .map(str::to_string)
            .or_else(|| c.nat_router.as_ref().map(|n| n.device.clone()))
            .unwrap_or_default();
        if ip.is_empty() && dev.is_empty() {
            c.nat_router = None;
        } else if ip.is_empty() {
            f.err(
                "nat_router_ip",
                "the NAT router IP is required with a device",
            );
        } else {
            let host = f.host_value("nat_router_ip", &ip);
            let device = f.word("nat_router_device", &dev, "the NAT router device");
            if let (Some(address), Some(device)) = (host, device) {
                c.nat_router = Some(InterfaceAddress { address, device });
            }
        }
    }
    f.opt_quad("nat_nmask", &mut c.nat_nmask);
    f.string("rsh_command", "rsh", &mut c.rsh_command);
    f.opt_string("active_cmd", &mut c.active_cmd);
    f.opt_string("inactive_cmd", &mut c.inactive_cmd);
    f.uint("tcp_timeout", 0, u32::MAX as u64, &mut c.tcp_timeout);
    f.uint("tcpfin_timeout", 0, u32::MAX as u64, &mut c.tcpfin_timeout);
    f.uint("udp_timeout", 0, u32::MAX as u64, &mut c.udp_timeout);
    f.bool("hard_shutdown", &mut c.hard_shutdown);
    f.string("debug_level", "NONE", &mut c.debug_level);
    f.bool("backup_active", &mut c.backup_active);
    f.opt_host("backup", &mut c.backup);
    f.opt_host("backup_private", &mut c.backup_private);
    f.bool("heartbeat", &mut c.heartbeat);
    if f.get("heartbeat_port") == Some("") {
        c.heartbeat_port = 539;
    } else {
        f.uint("heartbeat_port", 1, 65535, &mut c.heartbeat_port);
    }
    f.seconds("keepalive", &mut c.keepalive);
    f.seconds("deadtime", &mut c.deadtime);
    if let Some(v) = f.get("monitor_links") {
        match v {
            "0" => c.monitor_links = 0,
            "1" => c.monitor_links = 1,
            _ => f.err("monitor_links", "must be 0 or 1"),
        }
    }
    f.bool("syncdaemon", &mut c.syncdaemon);
    if let Some(v) = f.get("syncd_iface") {
        if v.is_empty() {
            c.syncd_iface = "eth0".into();
        } else if let Some(w) = f.word("syncd_iface", v, "the interface") {
            c.syncd_iface = w;
        }
    }
    f.uint("syncd_id", 0, 255, &mut c.syncd_id);
    f.opt_string("heartbeat_key_file", &mut c.heartbeat_key_file);
}

const SCHEDULERS: &[(&str, Scheduler)] = &[
    ("rr", Scheduler::Rr),
    ("wrr", Scheduler::Wrr),
    ("lc", Scheduler::Lc),
    ("wlc", Scheduler::Wlc),
    ("lblc", Scheduler::Lblc),
    ("lblcr", Scheduler::Lblcr),
    ("dh", Scheduler::Dh),
    ("sh", Scheduler::Sh),
    ("sed", Scheduler::Sed),
    ("nq", Scheduler::Nq),
    ("fo", Scheduler::Fo),
    ("ovf", Scheduler::Ovf),
    ("mh", Scheduler::Mh),
];

/// The load monitoring tools the GUI offers (any command name is accepted by lvs.cf; the GUI
/// offers Piranha's list).
pub const LOAD_MONITORS: &[&str] = &["none", "rup", "ruptime", "uptime"];

fn apply_virtual(f: &mut Fields, vs: &mut VirtualServer) {
    if let Some(v) = f.get("name") {
        if let Some(n) = f.word("name", v, "the name") {
            vs.name = n;
        }
    }
    f.bool("active", &mut vs.active);
    let ip = f.get("address");
    let dev = f.get("device");
    if ip.is_some() || dev.is_some() {
        let ip = ip
            .map(str::to_string)
            .or_else(|| vs.address.as_ref().map(|a| a.address.name.clone()))
            .unwrap_or_default();
        let dev = dev
            .map(str::to_string)
            .or_else(|| vs.address.as_ref().map(|a| a.device.clone()))
            .unwrap_or_default();
        if ip.is_empty() && dev.is_empty() {
            vs.address = None;
        } else if ip.is_empty() {
            f.err(
                "address",
                "the virtual IP address is required with a device",
            );
        } else {
            let host = f.host_value("address", &ip);
            let device = f.word("device", &dev, "the device");
            if let (Some(address), Some(device)) = (host, device) {
                vs.address = Some(InterfaceAddress { address, device });
            }
        }
    }
    f.opt_quad("vip_nmask", &mut vs.vip_nmask);
    let old_port = vs.port;
    f.uint("port", 0, 65535, &mut vs.port);
    if vs.port != old_port {
        // Real servers that followed the virtual port keep following it.
        for rs in &mut vs.servers {
            if rs.port == old_port {
                rs.port = vs.port;
            }
        }
    }
    f.keyword(
        "protocol",
        &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
        &mut vs.protocol,
    );
    f.opt_uint("fwmark", 0, u32::MAX as u64, &mut vs.fwmark);
    f.opt_quad("sorry_server", &mut vs.sorry_server);
    f.uint("timeout", 1, u32::MAX as u64, &mut vs.timeout);
    f.uint("reentry", 0, u32::MAX as u64, &mut vs.reentry);
    f.bool("quiesce_server", &mut vs.quiesce_server);
    if let Some(v) = f.get("load_monitor") {
        if v.is_empty() {
            vs.load_monitor = None;
        } else if let Some(w) = f.word("load_monitor", v, "the load monitoring tool") {
            vs.load_monitor = Some(w);
        }
    }
    f.keyword("scheduler", SCHEDULERS, &mut vs.scheduler);
    f.uint("persistent", 0, u32::MAX as u64, &mut vs.persistent);
    f.opt_quad("pmask", &mut vs.pmask);
    f.opt_string("send_program", &mut vs.send_program);
    f.opt_string("send", &mut vs.send);
    f.opt_string("expect", &mut vs.expect);
    f.bool("use_regex", &mut vs.use_regex);
}

fn apply_server(f: &mut Fields, rs: &mut RealServer, vs_port: u16) {
    if let Some(v) = f.get("name") {
        if let Some(n) = f.word("name", v, "the name") {
            rs.name = n;
        }
    }
    if let Some(v) = f.get("address") {
        if v.is_empty() {
            f.err("address", "the address is required");
        } else if let Some(h) = f.host_value("address", v) {
            rs.address = Some(h);
        }
    }
    if f.get("port") == Some("") {
        rs.port = vs_port;
    } else {
        f.uint("port", 0, 65535, &mut rs.port);
    }
    f.uint("weight", 0, i32::MAX as u64, &mut rs.weight);
    f.bool("active", &mut rs.active);
}

/// Whether the GUI refuses to save with this diagnostic. Validation's "nothing active" error is
/// about running the suite, not about the file: the GUI must be able to save a configuration
/// before its first virtual server is activated (or after the last is deactivated), so it is a
/// warning here (pulse still refuses to start on it).
pub fn blocks_save(d: &Diagnostic) -> bool {
    d.is_error()
        && !(d.location.block.is_none()
            && d.location.keyword == Some("service")
            && (d.message.starts_with("no active virtual server")
                || d.message.contains("but no active failover service")))
}

/// The field a diagnostic without a keyword is about: the first backquoted word of its message
/// that is one of the form's fields.
fn field_in_message(message: &str, fields: &[&str]) -> Option<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|w| fields.contains(w))
        .map(str::to_string)
}

/// The form field a diagnostic keyword belongs to.
fn field_of(keyword: &str) -> &str {
    match keyword {
        "nat_router" => "nat_router_ip",
        k => k,
    }
}

/// Splits validation diagnostics into errors beside the target's fields and errors elsewhere
/// (with where they are). Warnings are returned as text.
pub fn map_diagnostics(
    config: &Config,
    target: Target,
    target_index: (usize, Option<usize>),
    diags: &[Diagnostic],
) -> (Vec<FieldError>, Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut general = Vec::new();
    let mut warnings = Vec::new();
    for d in diags {
        let loc = &d.location;
        let place = describe(config, loc);
        if !blocks_save(d) {
            warnings.push(format!("{place}{}", d.message));
            continue;
        }
        let ours = match (target, loc.block, loc.server) {
            (Target::Global, None, None) => true,
            (Target::Virtual(_), Some((BlockKind::Virtual, b)), None) => b == target_index.0,
            (Target::Server(..), Some((BlockKind::Virtual, b)), Some(s)) => {
                b == target_index.0 && Some(s) == target_index.1
            }
            _ => false,
        };
        if ours {
            let allowed = match target {
                Target::Global => GLOBAL_FIELDS,
                Target::Virtual(_) => VIRTUAL_FIELDS,
                Target::Server(..) => SERVER_FIELDS,
            };
            let field = match loc.keyword {
                Some(k) => field_of(k).to_string(),
                None => field_in_message(&d.message, allowed).unwrap_or_else(|| "name".into()),
            };
            fields.push(FieldError::new(&field, d.message.clone()));
        } else {
            general.push(format!("{place}{}", d.message));
        }
    }
    (fields, general, warnings)
}

/// Every diagnostic as text with its place: (errors, warnings).
pub fn describe_all(config: &Config, diags: &[Diagnostic]) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for d in diags {
        let mut text = describe(config, &d.location);
        if let Some(k) = d.location.keyword {
            if !d.message.contains(k) {
                text.push_str(&format!("{k}: "));
            }
        }
        text.push_str(&d.message);
        if blocks_save(d) {
            errors.push(text);
        } else {
            warnings.push(text);
        }
    }
    (errors, warnings)
}

fn describe(config: &Config, loc: &lvs_config::Location) -> String {
    let mut s = String::new();
    if let Some((kind, b)) = loc.block {
        let list = match kind {
            BlockKind::Virtual => &config.virtual_servers,
            BlockKind::Failover => &config.failover_services,
        };
        let word = match kind {
            BlockKind::Virtual => "virtual server",
            BlockKind::Failover => "failover service",
        };
        if let Some(vs) = list.get(b) {
            s.push_str(&format!("{word} {}", vs.name));
            if let Some(si) = loc.server {
                if let Some(rs) = vs.servers.get(si) {
                    s.push_str(&format!(", real server {}", rs.name));
                }
            }
            s.push_str(": ");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_config::StaticResolver;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn new_virtual_server_with_fields() {
        let mut c = Config::default();
        let r = StaticResolver::standard();
        let fields = m(&[
            ("name", "www"),
            ("active", "1"),
            ("address", "192.0.2.10"),
            ("device", "eth0:1"),
            ("port", "8080"),
            ("scheduler", "rr"),
            ("send", "GET / HTTP/1.0\\r\\n\\r\\n"),
            ("expect", "HTTP"),
        ]);
        let (i, _) = apply(&mut c, Target::Virtual(None), &fields, &r).unwrap();
        let vs = &c.virtual_servers[i];
        assert_eq!(vs.name, "www");
        assert!(vs.active);
        assert_eq!(vs.port, 8080);
        assert_eq!(vs.scheduler, Scheduler::Rr);
        assert_eq!(vs.address.as_ref().unwrap().device, "eth0:1");
        assert_eq!(vs.timeout, 10, "Piranha default kept");
        let (vi, j) = apply(
            &mut c,
            Target::Server(0, None),
            &m(&[("name", "a"), ("address", "198.51.100.1"), ("active", "1")]),
            &r,
        )
        .unwrap();
        assert_eq!((vi, j), (0, Some(0)));
        assert_eq!(c.virtual_servers[0].servers[0].port, 8080);
        assert_eq!(c.virtual_servers[0].servers[0].weight, 1);
    }

    #[test]
    fn malformed_values_are_field_errors() {
        let r = StaticResolver::standard();
        let mut c = Config::default();
        let bad = m(&[
            ("name", "w w"),
            ("port", "80x"),
            ("active", "yes"),
            ("address", "10.0.0.256"),
            ("device", "eth0"),
            ("timeout", "-1"),
            ("protocol", "sctp"),
            ("vip_nmask", "255.255.255"),
            ("send", "a\nb"),
            ("bogus", "1"),
        ]);
        let errs = apply(&mut c, Target::Virtual(None), &bad, &r).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "name",
            "port",
            "active",
            "address",
            "timeout",
            "protocol",
            "vip_nmask",
            "send",
            "bogus",
        ] {
            assert!(fields.contains(&f), "{f} missing in {errs:?}");
        }
        let errs = apply(
            &mut Config::default(),
            Target::Global,
            &m(&[
                ("keepalive", "0"),
                ("deadtime", "1e3"),
                ("heartbeat_port", "70000"),
                ("syncd_id", "256"),
                ("primary", "not a host!"),
            ]),
            &r,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:?}");
        let errs = apply(
            &mut Config::default(),
            Target::Server(3, None),
            &m(&[("name", "a")]),
            &r,
        )
        .unwrap_err();
        assert_eq!(errs[0].message, "no such virtual server");
    }

    #[test]
    fn global_fields_and_defaults() {
        let r = StaticResolver::standard();
        let mut c = Config::default();
        apply(
            &mut c,
            Target::Global,
            &m(&[
                ("primary", "192.0.2.1"),
                ("network", "direct"),
                ("nat_router_ip", "10.0.0.254"),
                ("nat_router_device", "eth1:1"),
                ("backup_active", "1"),
                ("backup", "192.0.2.2"),
                ("keepalive", "0.5"),
                ("deadtime", "18"),
                ("heartbeat_port", ""),
            ]),
            &r,
        )
        .unwrap();
        assert_eq!(c.network, Network::Direct);
        assert_eq!(c.keepalive, Duration::from_millis(500));
        assert_eq!(c.heartbeat_port, 539);
        assert_eq!(c.nat_router.as_ref().unwrap().device, "eth1:1");
        apply(
            &mut c,
            Target::Global,
            &m(&[("nat_router_ip", ""), ("nat_router_device", "")]),
            &r,
        )
        .unwrap();
        assert!(c.nat_router.is_none());
    }

    #[test]
    fn diagnostics_go_beside_their_fields() {
        let r = StaticResolver::standard();
        let mut c = Config::default();
        let (i, _) = apply(
            &mut c,
            Target::Virtual(None),
            &m(&[("name", "www"), ("active", "1")]),
            &r,
        )
        .unwrap();
        let diags = lvs_config::validate(&c, None);
        let (fields, _general, _) = map_diagnostics(&c, Target::Virtual(None), (i, None), &diags);
        assert!(
            fields.iter().any(|e| e.field == "address"),
            "active virtual server without an address: {fields:?}"
        );
    }
}
