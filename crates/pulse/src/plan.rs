//! What lvs.cf means for this router, decided once from the config and the host's addresses:
//! master or backup, the heartbeat paths, the floating addresses, the commands. Pure.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use lvs_config::{Config, Network, ServiceType};
use netconf::FloatingAddress;

use crate::heartbeat::Role;
use crate::machine::Timing;

/// The heartbeat sockets and where they send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Addresses to bind (port `port`): own public, then own private if it differs.
    pub bind: Vec<Ipv4Addr>,
    /// (index into `bind`, destination): partner public, then partner private on the private
    /// path when there is one.
    pub send: Vec<(usize, SocketAddrV4)>,
    /// Heartbeats are accepted only from these addresses.
    pub accept: Vec<Ipv4Addr>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub master: bool,
    /// `backup_active = 1` with a backup defined: heartbeats are exchanged.
    pub partner: bool,
    pub own_public: Ipv4Addr,
    pub own_private: Ipv4Addr,
    pub paths: Paths,
    pub timing: Timing,
    /// NAT router address first (with `network = nat`), then each active virtual server's VIP
    /// once (the first device named for it wins, as in Piranha).
    pub floating: Vec<FloatingAddress>,
    pub active_cmd: Option<String>,
    pub inactive_cmd: Option<String>,
    /// `monitor_links` in force (only with a partner, as in Piranha).
    pub monitor_links: bool,
    /// `syncdaemon = 1`: (interface, sync id).
    pub sync_daemon: Option<(String, u8)>,
    pub key_file: Option<String>,
}

impl Plan {
    pub fn role(&self) -> Role {
        if self.master {
            Role::Primary
        } else {
            Role::Backup
        }
    }

    pub fn partner_role(&self) -> Role {
        if self.master {
            Role::Backup
        } else {
            Role::Primary
        }
    }
}

/// What makes pulse refuse to start. The texts follow Piranha's where it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    NoPrimary,
    /// Piranha: "no active lvs services defined in FILE".
    NoActiveServices,
    Fos,
    /// Neither `primary` nor (with a partner) `backup` is an address of this host.
    NotARouter {
        primary: Ipv4Addr,
        backup: Option<Ipv4Addr>,
    },
    BadAddress {
        what: String,
        error: String,
    },
}

impl PlanError {
    /// The message, for `pulse: MESSAGE` on stderr; `file` is the config path.
    pub fn message(&self, file: &str) -> String {
        match self {
            PlanError::NoPrimary => format!("no primary router address (primary) in {file}"),
            PlanError::NoActiveServices => format!("no active lvs services defined in {file}"),
            PlanError::Fos => format!(
                "{file} has service = fos: failover services (fos) are not supported by this \
                 pulse, only lvs"
            ),
            PlanError::NotARouter { primary, backup } => match backup {
                Some(b) => format!(
                    "this host has neither the primary address {primary} nor the backup address \
                     {b} of {file}"
                ),
                None => format!(
                    "this host does not have the primary address {primary} of {file}, and \
                     backup_active is 0"
                ),
            },
            PlanError::BadAddress { what, error } => format!("{what}: {error}"),
        }
    }
}

/// Whether this host is the master: `primary` is one of its addresses. (Piranha compared it
/// with each interface's first address; here any IPv4 address of the host counts.)
pub fn is_master(config: &Config, local: &[Ipv4Addr]) -> bool {
    config
        .primary
        .as_ref()
        .is_some_and(|p| local.contains(&p.address))
}

/// The floating addresses of a config, in bring-up order.
pub fn floating_addresses(config: &Config) -> Result<Vec<FloatingAddress>, PlanError> {
    let mut out: Vec<FloatingAddress> = Vec::new();
    if config.network == Network::Nat {
        if let Some(nat) = &config.nat_router {
            let a = FloatingAddress::new(nat.address.address, &nat.device, config.nat_nmask)
                .map_err(|e| PlanError::BadAddress {
                    what: format!("nat_router {} {}", nat.address.address, nat.device),
                    error: e.to_string(),
                })?;
            out.push(a);
        }
    }
    for vs in config.virtual_servers.iter().filter(|v| v.active) {
        let Some(ia) = &vs.address else { continue };
        let ip = ia.address.address;
        if out.iter().any(|a| a.address == ip) {
            continue;
        }
        let a = FloatingAddress::new(ip, &ia.device, vs.vip_nmask).map_err(|e| {
            PlanError::BadAddress {
                what: format!("virtual {}: address {} {}", vs.name, ip, ia.device),
                error: e.to_string(),
            }
        })?;
        out.push(a);
    }
    Ok(out)
}

/// The plan for this router. `local` is every IPv4 address of the host.
pub fn plan(config: &Config, local: &[Ipv4Addr]) -> Result<Plan, PlanError> {
    if config.service == ServiceType::Fos {
        return Err(PlanError::Fos);
    }
    let primary = config.primary.as_ref().ok_or(PlanError::NoPrimary)?.address;
    if !config.virtual_servers.iter().any(|v| v.active) {
        return Err(PlanError::NoActiveServices);
    }
    let backup = config.backup.as_ref().map(|b| b.address);
    let partner = config.backup_active && backup.is_some();
    let master = is_master(config, local);
    let primary_private = config
        .primary_private_or_public()
        .map_or(primary, |h| h.address);
    let (own_public, own_private, partner_public, partner_private) = if master {
        let b = backup.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let bp = config.backup_private_or_public().map_or(b, |h| h.address);
        (primary, primary_private, b, bp)
    } else {
        let Some(b) = backup.filter(|b| partner && local.contains(b)) else {
            // A backup without backup_active exits with Piranha's message (the machine says
            // it); anything else is a host that is neither router.
            if !partner && backup.is_some_and(|b| local.contains(&b)) {
                let bp = config
                    .backup_private_or_public()
                    .map_or(Ipv4Addr::UNSPECIFIED, |h| h.address);
                return Ok(Plan {
                    master: false,
                    partner: false,
                    own_public: backup.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    own_private: bp,
                    paths: Paths {
                        bind: Vec::new(),
                        send: Vec::new(),
                        accept: Vec::new(),
                        port: config.heartbeat_port,
                    },
                    timing: timing(config),
                    floating: floating_addresses(config)?,
                    active_cmd: config.active_cmd.clone(),
                    inactive_cmd: config.inactive_cmd.clone(),
                    monitor_links: false,
                    sync_daemon: None,
                    key_file: None,
                });
            }
            return Err(PlanError::NotARouter {
                primary,
                backup: backup.filter(|_| partner),
            });
        };
        let bp = config.backup_private_or_public().map_or(b, |h| h.address);
        (b, bp, primary, primary_private)
    };
    let paths = if partner {
        let mut bind = vec![own_public];
        if own_private != own_public {
            bind.push(own_private);
        }
        let port = config.heartbeat_port;
        let mut send = vec![(0, SocketAddrV4::new(partner_public, port))];
        let private_path = own_private != own_public || partner_private != partner_public;
        let mut accept = vec![partner_public];
        if private_path {
            let sock = if own_private != own_public { 1 } else { 0 };
            let dest = (sock, SocketAddrV4::new(partner_private, port));
            if !send.contains(&dest) {
                send.push(dest);
            }
            if !accept.contains(&partner_private) {
                accept.push(partner_private);
            }
        }
        Paths {
            bind,
            send,
            accept,
            port,
        }
    } else {
        Paths {
            bind: Vec::new(),
            send: Vec::new(),
            accept: Vec::new(),
            port: config.heartbeat_port,
        }
    };
    Ok(Plan {
        master,
        partner,
        own_public,
        own_private,
        paths,
        timing: timing(config),
        floating: floating_addresses(config)?,
        active_cmd: config.active_cmd.clone(),
        inactive_cmd: config.inactive_cmd.clone(),
        monitor_links: config.monitor_links != 0 && partner,
        sync_daemon: config
            .syncdaemon
            .then(|| (config.syncd_iface.clone(), config.syncd_id)),
        key_file: config.heartbeat_key_file.clone(),
    })
}

fn timing(config: &Config) -> Timing {
    // A zero keepalive would spin; lvs-config's validation refuses it, this only guards.
    let floor = Duration::from_millis(1);
    Timing {
        keepalive: config.keepalive.max(floor),
        deadtime: config.deadtime.max(floor),
    }
}

/// `active_cmd`/`inactive_cmd` as Piranha ran them: split on spaces (no shell, no quoting).
pub fn command_argv(cmd: &str) -> Vec<String> {
    cmd.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Settings that a reload cannot change (they need a pulse restart), by name.
pub fn restart_only_changes(old: &Plan, new: &Plan) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.master != new.master {
        out.push("primary");
    }
    if old.partner != new.partner {
        out.push("backup_active");
    }
    if old.paths != new.paths || old.own_public != new.own_public {
        out.push("heartbeat addresses or heartbeat_port");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_config::{parse, StaticResolver};

    fn cfg(text: &str) -> Config {
        parse(text.as_bytes(), &StaticResolver::standard())
            .unwrap()
            .config
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const BASE: &str = "primary = 10.9.0.1\nbackup = 10.9.0.2\nbackup_active = 1\n\
        nat_router = 192.168.50.254 eth1:1\nnat_nmask = 255.255.255.0\n\
        virtual web {\n active = 1\n address = 10.9.0.100 eth0:1\n vip_nmask = 255.255.255.0\n}\n\
        virtual web2 {\n active = 1\n address = 10.9.0.100 eth0:2\n port = 443\n}\n\
        virtual off {\n active = 0\n address = 10.9.0.101 eth0:3\n}\n\
        virtual mail {\n active = 1\n address = 10.9.0.102 eth0:4\n port = 25\n}\n";

    #[test]
    fn master_with_one_path() {
        let p = plan(&cfg(BASE), &[ip("127.0.0.1"), ip("10.9.0.1")]).unwrap();
        assert!(p.master && p.partner);
        assert_eq!(p.role(), Role::Primary);
        assert_eq!(p.partner_role(), Role::Backup);
        assert_eq!(p.paths.bind, [ip("10.9.0.1")]);
        assert_eq!(p.paths.send, [(0, "10.9.0.2:539".parse().unwrap())]);
        assert_eq!(p.paths.accept, [ip("10.9.0.2")]);
        // NAT router first, each VIP once (first device wins), inactive ones skipped.
        let f: Vec<String> = p.floating.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            f,
            [
                "192.168.50.254/24 on eth1:1",
                "10.9.0.100/24 on eth0:1",
                "10.9.0.102/8 on eth0:4"
            ]
        );
        assert!(!p.monitor_links);
        assert_eq!(p.sync_daemon, None);
    }

    #[test]
    fn backup_with_a_private_path() {
        let text = format!(
            "{BASE}primary_private = 172.20.0.1\nbackup_private = 172.20.0.2\nheartbeat_port = 1539\n\
             monitor_links = 1\nsyncdaemon = 1\nsyncd_iface = eth2\nsyncd_id = 7\n"
        );
        let p = plan(&cfg(&text), &[ip("10.9.0.2"), ip("172.20.0.2")]).unwrap();
        assert!(!p.master && p.partner);
        assert_eq!(p.own_public, ip("10.9.0.2"));
        assert_eq!(p.own_private, ip("172.20.0.2"));
        assert_eq!(p.paths.bind, [ip("10.9.0.2"), ip("172.20.0.2")]);
        assert_eq!(
            p.paths.send,
            [
                (0, "10.9.0.1:1539".parse().unwrap()),
                (1, "172.20.0.1:1539".parse().unwrap())
            ]
        );
        assert_eq!(p.paths.accept, [ip("10.9.0.1"), ip("172.20.0.1")]);
        assert!(p.monitor_links);
        assert_eq!(p.sync_daemon, Some(("eth2".into(), 7)));
    }

    #[test]
    fn private_address_on_one_side_only() {
        // Only the primary has a separate private address: the backup sends its second
        // heartbeat from its public socket.
        let text = format!("{BASE}primary_private = 172.20.0.1\n");
        let p = plan(&cfg(&text), &[ip("10.9.0.2")]).unwrap();
        assert_eq!(p.paths.bind, [ip("10.9.0.2")]);
        assert_eq!(
            p.paths.send,
            [
                (0, "10.9.0.1:539".parse().unwrap()),
                (0, "172.20.0.1:539".parse().unwrap())
            ]
        );
        let p = plan(&cfg(&text), &[ip("10.9.0.1"), ip("172.20.0.1")]).unwrap();
        assert_eq!(p.paths.bind, [ip("10.9.0.1"), ip("172.20.0.1")]);
        assert_eq!(
            p.paths.send,
            [
                (0, "10.9.0.2:539".parse().unwrap()),
                (1, "10.9.0.2:539".parse().unwrap())
            ]
        );
        assert_eq!(p.paths.accept, [ip("10.9.0.2")]);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            plan(&cfg(BASE), &[ip("10.9.0.3")]),
            Err(PlanError::NotARouter {
                primary: ip("10.9.0.1"),
                backup: Some(ip("10.9.0.2"))
            })
        );
        let no_vs = "primary = 10.9.0.1\nvirtual a {\n active = 0\n address = 10.9.0.9 eth0:1\n}\n";
        assert_eq!(
            plan(&cfg(no_vs), &[ip("10.9.0.1")]),
            Err(PlanError::NoActiveServices)
        );
        assert_eq!(
            PlanError::NoActiveServices.message("/etc/lvs.cf"),
            "no active lvs services defined in /etc/lvs.cf"
        );
        let fos = format!("{BASE}service = fos\n");
        assert_eq!(plan(&cfg(&fos), &[ip("10.9.0.1")]), Err(PlanError::Fos));
        let nop = "virtual a {\n active = 1\n address = 10.9.0.9 eth0:1\n}\n";
        assert_eq!(plan(&cfg(nop), &[]), Err(PlanError::NoPrimary));
    }

    #[test]
    fn lone_primary_and_inactive_backup() {
        let lone = BASE.replace("backup_active = 1", "backup_active = 0");
        let p = plan(&cfg(&lone), &[ip("10.9.0.1")]).unwrap();
        assert!(p.master && !p.partner);
        assert!(p.paths.bind.is_empty() && p.paths.send.is_empty());
        let b = plan(&cfg(&lone), &[ip("10.9.0.2")]).unwrap();
        assert!(!b.master && !b.partner);
        assert!(plan(&cfg(&lone), &[ip("10.9.0.3")]).is_err());
        // backup_active = 1 without a backup: Piranha cleared it.
        let nob = "primary = 10.9.0.1\nbackup_active = 1\nvirtual a {\n active = 1\n address = 10.9.0.9 eth0:1\n}\n";
        let p = plan(&cfg(nob), &[ip("10.9.0.1")]).unwrap();
        assert!(!p.partner);
    }

    #[test]
    fn nat_router_only_with_nat() {
        let direct = format!("{BASE}network = direct\n");
        let p = plan(&cfg(&direct), &[ip("10.9.0.1")]).unwrap();
        assert_eq!(p.floating[0].to_string(), "10.9.0.100/24 on eth0:1");
    }

    #[test]
    fn commands_split_like_strtok() {
        assert_eq!(
            command_argv("/usr/local/bin/notify  master   now"),
            ["/usr/local/bin/notify", "master", "now"]
        );
        assert!(command_argv("   ").is_empty());
    }

    #[test]
    fn reload_limits() {
        let a = plan(&cfg(BASE), &[ip("10.9.0.1")]).unwrap();
        let b = plan(
            &cfg(&BASE.replace(
                "primary = 10.9.0.1",
                "primary = 10.9.0.1\nheartbeat_port = 600",
            )),
            &[ip("10.9.0.1")],
        )
        .unwrap();
        assert_eq!(
            restart_only_changes(&a, &b),
            ["heartbeat addresses or heartbeat_port"]
        );
        assert!(restart_only_changes(&a, &a).is_empty());
    }
}
