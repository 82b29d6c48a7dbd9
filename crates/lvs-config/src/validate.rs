//! Semantic validation Piranha never did. Every problem is reported (not only the first), each
//! as an error (the suite refuses the file) or a warning (it runs, but the operator should look).

use crate::error::{BlockKind, Diagnostic, Location, Severity};
use crate::model::*;
use crate::parser::SourceMap;
use rustc_hash::FxHashMap as HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Validates a config. With `source` (a config read from a file) every diagnostic carries the line
/// it is about. Diagnostics come sorted by line.
pub fn validate(config: &Config, source: Option<&SourceMap>) -> Vec<Diagnostic> {
    validate_skipping(config, source, &|_, _| false).0
}

/// Whether the checks of each block alone (not those between blocks) found nothing: per kind
/// (virtual, failover), in order.
pub(crate) type CleanBlocks = [Vec<bool>; 2];

/// [`validate`] without the checks of each block alone for the blocks `skip` names: blocks known
/// to pass them (the same block passed them before, under the same global settings). Also says
/// which blocks passed them (a skipped block counts as passed).
pub(crate) fn validate_skipping(
    config: &Config,
    source: Option<&SourceMap>,
    skip: &dyn Fn(BlockKind, usize) -> bool,
) -> (Vec<Diagnostic>, CleanBlocks) {
    let mut v = Validator {
        config,
        out: Vec::new(),
    };
    v.global();
    let mut clean: CleanBlocks = Default::default();
    let [clean_virtual, clean_failover] = &mut clean;
    for (kind, blocks, clean) in [
        (BlockKind::Virtual, &config.virtual_servers, clean_virtual),
        (
            BlockKind::Failover,
            &config.failover_services,
            clean_failover,
        ),
    ] {
        clean.reserve(blocks.len());
        for (i, vs) in blocks.iter().enumerate() {
            if skip(kind, i) {
                clean.push(true);
                continue;
            }
            let before = v.out.len();
            v.block(kind, i, vs);
            clean.push(v.out.len() == before);
        }
    }
    v.cross_block(BlockKind::Virtual, &config.virtual_servers);
    v.cross_block(BlockKind::Failover, &config.failover_services);
    let mut out = v.out;
    if let Some(source) = source {
        for d in &mut out {
            if d.location.line.is_none() {
                d.location.line = source.line_of(&d.location);
            }
        }
    }
    sort(&mut out);
    (out, clean)
}

/// Whether two configs agree on every global setting the checks of a block read.
pub(crate) fn same_block_context(a: &Config, b: &Config) -> bool {
    BlockContext::of(a) == BlockContext::of(b)
}

/// The global settings the checks of a block alone may read: they see nothing else of the
/// config, so a block that passed them passes them again while these stay the same.
#[derive(PartialEq)]
struct BlockContext<'a> {
    primary: &'a Option<Host>,
    backup: &'a Option<Host>,
    service: ServiceType,
    network: Network,
}

impl BlockContext<'_> {
    fn of(c: &Config) -> BlockContext<'_> {
        BlockContext {
            primary: &c.primary,
            backup: &c.backup,
            service: c.service,
            network: c.network,
        }
    }
}

/// Orders diagnostics by line (file-level ones first), then errors before warnings.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.location.line, std::cmp::Reverse(a.severity))
            .cmp(&(b.location.line, std::cmp::Reverse(b.severity)))
    });
}

/// Whether `m` is a contiguous netmask (ones then zeros).
pub fn is_netmask(m: Ipv4Addr) -> bool {
    let bits = u32::from(m);
    bits.leading_ones() + bits.trailing_zeros() == 32
}

struct Validator<'a> {
    config: &'a Config,
    out: Vec<Diagnostic>,
}

fn at(
    block: Option<(BlockKind, usize)>,
    server: Option<usize>,
    keyword: Option<&'static str>,
) -> Location {
    Location {
        line: None,
        block,
        server,
        keyword,
    }
}

impl Validator<'_> {
    fn push(&mut self, severity: Severity, location: Location, message: String) {
        self.out.push(Diagnostic {
            severity,
            location,
            message,
        });
    }

    fn error(&mut self, location: Location, message: String) {
        self.push(Severity::Error, location, message);
    }

    fn warning(&mut self, location: Location, message: String) {
        self.push(Severity::Warning, location, message);
    }

    fn global(&mut self) {
        let c = self.config;
        let g = |k| at(None, None, Some(k));
        for (k, h) in [
            ("primary", &c.primary),
            ("primary_private", &c.primary_private),
            ("backup_private", &c.backup_private),
        ] {
            if h.as_ref().is_some_and(|h| h.address.is_unspecified()) {
                self.error(g(k), format!("`{k}` must not be 0.0.0.0"));
            }
        }
        for (k, d) in [("keepalive", c.keepalive), ("deadtime", c.deadtime)] {
            if d.as_secs() > u32::MAX as u64 {
                self.error(
                    g(k),
                    format!("`{k}` is too long (at most {} seconds)", u32::MAX),
                );
            }
        }
        if c.primary.is_none() {
            self.warning(
                g("primary"),
                "`primary` is not set: pulse cannot run with this file (lvsd can)".into(),
            );
        }
        if c.backup_active && c.backup.is_none() {
            self.error(
                g("backup_active"),
                "`backup_active = 1` but no `backup` router is set".into(),
            );
        }
        if c.backup_active {
            if let (Some(p), Some(b)) = (&c.primary, &c.backup) {
                if p.address == b.address {
                    self.error(
                        g("backup"),
                        format!("`backup` has the same address as `primary` ({})", p.address),
                    );
                }
            }
            if let Some(f) = &c.heartbeat_key_file {
                if !f.starts_with('/') {
                    self.error(
                        g("heartbeat_key_file"),
                        format!("`heartbeat_key_file` must be an absolute path, not `{f}`"),
                    );
                }
            }
            if c.heartbeat_port == 0 {
                self.error(g("heartbeat_port"), "`heartbeat_port` must not be 0".into());
            }
            if c.keepalive.is_zero() {
                self.error(g("keepalive"), "`keepalive` must be greater than 0".into());
            } else if c.deadtime < c.keepalive {
                self.error(
                    g("deadtime"),
                    format!(
                        "`deadtime` ({}) is shorter than `keepalive` ({}): the partner would be declared dead between two heartbeats",
                        crate::writer::format_seconds(c.deadtime),
                        crate::writer::format_seconds(c.keepalive)
                    ),
                );
            } else if c.deadtime < c.keepalive * 2 {
                self.warning(
                    g("deadtime"),
                    format!(
                        "`deadtime` ({}) is less than twice `keepalive` ({}): one lost heartbeat causes a failover",
                        crate::writer::format_seconds(c.deadtime),
                        crate::writer::format_seconds(c.keepalive)
                    ),
                );
            }
        }
        if let Some(m) = c.nat_nmask {
            if !is_netmask(m) {
                self.error(
                    g("nat_nmask"),
                    format!("`nat_nmask` {m} is not a netmask (its one bits must be contiguous)"),
                );
            }
        }
        if let Some(nr) = &c.nat_router {
            self.device_check(g("nat_router"), "nat_router", &nr.device);
        }
        if c.monitor_links != 0 && c.monitor_links != 1 {
            self.warning(
                g("monitor_links"),
                format!("`monitor_links` = {} is taken as 1 (on)", c.monitor_links),
            );
        }
        self.strings_check(
            None,
            &[
                ("primary_shared", c.primary_shared.as_deref()),
                ("backup_shared", c.backup_shared.as_deref()),
                ("debug_level", Some(&c.debug_level)),
                ("rsh_command", Some(&c.rsh_command)),
                ("ipvsadm", Some(&c.ipvsadm)),
                ("active_cmd", c.active_cmd.as_deref()),
                ("inactive_cmd", c.inactive_cmd.as_deref()),
                ("syncd_iface", Some(&c.syncd_iface)),
            ],
        );
        match c.service {
            ServiceType::Lvs => {
                if !c.virtual_servers.iter().any(|v| v.active) {
                    self.error(
                        g("service"),
                        "no active virtual server: pulse and lvsd would have nothing to run".into(),
                    );
                }
                let active_nat = c.network == Network::Nat
                    && c.virtual_servers
                        .iter()
                        .any(|v| v.active && v.servers.iter().any(|s| s.active));
                if active_nat && c.nat_router.is_none() {
                    self.warning(
                        g("network"),
                        "`network = nat` without `nat_router`: the real servers need a gateway that follows the active router".into(),
                    );
                }
            }
            ServiceType::Fos => {
                if !c.failover_services.iter().any(|v| v.active) {
                    self.error(
                        g("service"),
                        "`service = fos` but no active failover service".into(),
                    );
                }
            }
        }
    }

    /// Piranha's failover ran `ifconfig DEV down`: on a whole NIC (no `:alias`) that takes the
    /// interface down. piranha-rs removes only the address, but a Piranha peer would not.
    fn device_check(&mut self, loc: Location, what: &str, device: &str) {
        if device.is_empty() {
            self.error(loc, format!("`{what}` has an empty device name"));
        } else if !device.contains(':') {
            self.warning(
                loc,
                format!(
                    "`{what}` device `{device}` is a whole interface, not an alias such as `{device}:1`: Piranha's failover takes the interface down (piranha-rs removes only the address)"
                ),
            );
        }
    }

    fn strings_check(
        &mut self,
        block: Option<(BlockKind, usize)>,
        fields: &[(&'static str, Option<&str>)],
    ) {
        for (k, v) in fields {
            let Some(v) = v else { continue };
            if let Some(problem) = crate::writer::unrepresentable(v) {
                self.error(at(block, None, Some(k)), format!("`{k}` {problem}"));
            }
        }
    }

    fn block(&mut self, kind: BlockKind, i: usize, vs: &VirtualServer) {
        let b = Some((kind, i));
        let k = |kw| at(b, None, Some(kw));
        let c = BlockContext::of(self.config);
        let what = match kind {
            BlockKind::Virtual => "virtual server",
            BlockKind::Failover => "failover service",
        };
        let name = &vs.name;
        if let Some(problem) = crate::writer::unrepresentable_inner(name) {
            self.error(at(b, None, None), format!("{what} name {problem}"));
        }
        self.strings_check(
            b,
            &[
                ("send", vs.send.as_deref()),
                ("expect", vs.expect.as_deref()),
                ("send_program", vs.send_program.as_deref()),
                ("load_monitor", vs.load_monitor.as_deref()),
                ("client_monitor", Some(&vs.client_monitor)),
                ("start_cmd", vs.start_cmd.as_deref()),
                ("stop_cmd", vs.stop_cmd.as_deref()),
            ],
        );
        for d in vs.dirs.iter().flatten() {
            if let Some(problem) = crate::writer::unrepresentable_inner(d) {
                self.error(k("dirs"), format!("`dirs` entry {problem}"));
            } else if d == "]" {
                self.error(k("dirs"), "`dirs` entry `]` would end the list".into());
            }
        }
        match &vs.address {
            None if vs.active => self.error(
                at(b, None, None),
                format!("active {what} `{name}` has no `address`"),
            ),
            None => {}
            Some(a) => {
                self.device_check(k("address"), "address", &a.device);
                if let Some(problem) = crate::writer::unrepresentable(&a.device) {
                    self.error(k("address"), format!("device name {problem}"));
                }
                for (router, host) in [("primary", &c.primary), ("backup", &c.backup)] {
                    if host
                        .as_ref()
                        .is_some_and(|h| h.address == a.address.address)
                    {
                        self.error(
                            k("address"),
                            format!(
                                "the address {} of {what} `{name}` is the `{router}` router's own address: a floating address must not belong to a router",
                                a.address.address
                            ),
                        );
                    }
                }
            }
        }
        if let Some(m) = vs.vip_nmask {
            if !is_netmask(m) {
                self.error(
                    k("vip_nmask"),
                    format!("`vip_nmask` {m} is not a netmask (its one bits must be contiguous)"),
                );
            }
        }
        if let Some(m) = vs.pmask {
            if !is_netmask(m) {
                self.error(
                    k("pmask"),
                    format!("`pmask` {m} is not a netmask (its one bits must be contiguous)"),
                );
            } else if vs.persistent == 0 {
                self.warning(
                    k("pmask"),
                    "`pmask` has no effect without `persistent`".into(),
                );
            }
        }
        if vs.timeout == 0 {
            self.error(
                k("timeout"),
                "`timeout` must be at least 1 second (Piranha's nanny divided by it)".into(),
            );
        } else if vs.reentry < vs.timeout {
            self.warning(
                k("reentry"),
                format!(
                    "`reentry` ({}) is shorter than `timeout` ({}): a failed server is re-added after a single successful check",
                    vs.reentry, vs.timeout
                ),
            );
        }
        if kind == BlockKind::Virtual && vs.fwmark.is_none() && vs.port == 0 && vs.persistent == 0 {
            self.error(
                k("port"),
                "`port = 0` (all ports) needs `persistent` or `fwmark` (ipvsadm: Zero port specified for non-persistent service)".into(),
            );
        }
        if vs.send_program.is_some() && vs.send.is_some() {
            self.warning(
                k("send"),
                "`send` is ignored because `send_program` is set".into(),
            );
        }
        if vs.use_regex {
            match &vs.expect {
                None => self.warning(
                    k("use_regex"),
                    "`use_regex = 1` without `expect` has no effect".into(),
                ),
                Some(e) => {
                    // What nanny will compile: the escapes converted, then POSIX ERE from the C
                    // library, as Piranha's nanny.
                    let pattern = crate::escapes::convert_escapes(e.as_bytes());
                    if let Err(err) = crate::posix_regex::PosixRegex::new(&pattern) {
                        self.error(
                            k("expect"),
                            format!("`expect` is not a valid regular expression: {err}"),
                        );
                    }
                }
            }
        }
        if kind == BlockKind::Failover && vs.active && c.service == ServiceType::Fos {
            for (kw, v) in [("start_cmd", &vs.start_cmd), ("stop_cmd", &vs.stop_cmd)] {
                if v.is_none() {
                    self.error(
                        at(b, None, None),
                        format!("active failover service `{name}` has no `{kw}`"),
                    );
                }
            }
        }
        self.servers(kind, i, vs);
    }

    fn servers(&mut self, kind: BlockKind, i: usize, vs: &VirtualServer) {
        let b = Some((kind, i));
        let c = BlockContext::of(self.config);
        let n = vs.servers.len();
        let mut by_name: HashMap<&str, usize> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut by_addr: HashMap<(Ipv4Addr, u16), usize> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        for (si, rs) in vs.servers.iter().enumerate() {
            let s = |kw| at(b, Some(si), kw);
            if let Some(problem) = crate::writer::unrepresentable_inner(&rs.name) {
                self.error(s(None), format!("server name {problem}"));
            }
            if let Some(first) = by_name.insert(&rs.name, si) {
                self.error(
                    s(None),
                    format!(
                        "duplicate real server name `{}` in `{}` (also server #{})",
                        rs.name,
                        vs.name,
                        first + 1
                    ),
                );
            }
            if rs.weight > i32::MAX as u32 {
                self.error(
                    s(Some("weight")),
                    format!(
                        "`weight` = {} is out of range (0 to {})",
                        rs.weight,
                        i32::MAX
                    ),
                );
            }
            let Some(addr) = &rs.address else {
                if rs.active {
                    self.error(
                        s(None),
                        format!("active real server `{}` has no `address`", rs.name),
                    );
                }
                continue;
            };
            if let Some(first) = by_addr.insert((addr.address, rs.port), si) {
                let other = &vs.servers[first];
                let both_active = vs.active && rs.active && other.active;
                self.push(
                    if both_active {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    s(Some("address")),
                    format!(
                        "real server `{}` ({}:{}) duplicates `{}` in `{}`",
                        rs.name, addr.address, rs.port, other.name, vs.name
                    ),
                );
            }
            if vs.vip() == Some(addr.address) {
                self.error(
                    s(Some("address")),
                    format!(
                        "real server `{}` has the virtual server's own address",
                        rs.name
                    ),
                );
            }
            if kind == BlockKind::Virtual
                && c.network != Network::Nat
                && rs.port != vs.port
                && vs.port != 0
            {
                self.warning(
                    s(Some("port")),
                    format!(
                        "real server port {} differs from the virtual port {}, but `network = {}` cannot map ports: packets keep their destination port",
                        rs.port,
                        vs.port,
                        c.network.keyword()
                    ),
                );
            }
            if vs.active && rs.active && rs.port == 0 && vs.send_program.is_none() {
                self.error(
                    s(Some("port")),
                    format!(
                        "real server `{}` has port 0, which nanny cannot check: set `port` or `send_program`",
                        rs.name
                    ),
                );
            }
            if vs.sorry_server == Some(addr.address) {
                self.warning(
                    at(b, None, Some("sorry_server")),
                    format!("`sorry_server` is also the real server `{}`", rs.name),
                );
            }
        }
    }

    /// Problems between blocks: duplicate names, duplicate IPVS services, one VIP on two devices.
    fn cross_block(&mut self, kind: BlockKind, blocks: &[Arc<VirtualServer>]) {
        let what = match kind {
            BlockKind::Virtual => "virtual server",
            BlockKind::Failover => "failover service",
        };
        let n = blocks.len();
        let mut by_name: HashMap<&str, usize> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut by_key: HashMap<ServiceKey, usize> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut device_of: HashMap<Ipv4Addr, (usize, &str)> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut address_at: HashMap<(Ipv4Addr, u16), usize> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut fwmark_at: HashMap<(Ipv4Addr, u16), usize> = HashMap::default();
        for (i, vs) in blocks.iter().enumerate() {
            let b = Some((kind, i));
            if let Some(first) = by_name.insert(&vs.name, i) {
                self.error(
                    at(b, None, None),
                    format!(
                        "duplicate {what} name `{}` (also block #{})",
                        vs.name,
                        first + 1
                    ),
                );
            }
            if kind == BlockKind::Virtual {
                if let Some(key) = vs.key() {
                    if let Some(first) = by_key.insert(key, i) {
                        let other = &blocks[first];
                        let both = vs.active && other.active;
                        self.push(
                            if both {
                                Severity::Error
                            } else {
                                Severity::Warning
                            },
                            at(
                                b,
                                None,
                                Some(if vs.fwmark.is_some() {
                                    "fwmark"
                                } else {
                                    "port"
                                }),
                            ),
                            format!(
                                "virtual server `{}` is the same IPVS service ({key}) as `{}`{}",
                                vs.name,
                                other.name,
                                if both { "" } else { " (not both active)" }
                            ),
                        );
                    }
                }
            }
            if kind == BlockKind::Virtual && vs.active {
                if let Some(vip) = vs.vip() {
                    let slot = (vip, vs.port);
                    let (same, other_kind) = if vs.fwmark.is_some() {
                        (&mut fwmark_at, &address_at)
                    } else {
                        (&mut address_at, &fwmark_at)
                    };
                    same.entry(slot).or_insert(i);
                    if let Some(&j) = other_kind.get(&slot) {
                        let (marked, plain) = if vs.fwmark.is_some() { (i, j) } else { (j, i) };
                        self.warning(
                            at(b, None, Some(if vs.fwmark.is_some() { "fwmark" } else { "port" })),
                            format!(
                                "fwmark virtual server `{}` and virtual server `{}` are both on {}:{}: traffic the firewall marks goes to `{}` and never reaches `{}`",
                                blocks[marked].name, blocks[plain].name, vip, vs.port,
                                blocks[marked].name, blocks[plain].name
                            ),
                        );
                    }
                }
            }
            if let Some(a) = &vs.address {
                match device_of.get(&a.address.address) {
                    Some((first, dev)) if *dev != a.device => {
                        self.warning(
                            at(b, None, Some("address")),
                            format!(
                                "VIP {} is on `{}` here but on `{}` in `{}`: only the first device is used",
                                a.address.address, a.device, dev, blocks[*first].name
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        device_of.insert(a.address.address, (i, &a.device));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert!(is_netmask("255.255.255.0".parse().unwrap()));
        assert!(is_netmask("255.255.254.0".parse().unwrap()));
        assert!(is_netmask("0.0.0.0".parse().unwrap()));
        assert!(is_netmask("255.255.255.255".parse().unwrap()));
        assert!(!is_netmask("255.0.255.0".parse().unwrap()));
        assert!(!is_netmask("0.255.255.255".parse().unwrap()));
    }
}
