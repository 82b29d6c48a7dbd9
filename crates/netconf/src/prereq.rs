//! The router prerequisites of a NAT configuration (the HOWTO's "IP forwarding, defragmentation,
//! masquerading", today's kernel settings), checked at start and on reload: each one missing is
//! returned with the exact command that fixes it, and pulse (at start and on reload) and lvsd (at
//! start, that is when a router becomes active, and on reload) log it as a warning. Pure: the kernel
//! is read through [`System`] ([`ProcSys`] in the daemon, a table in the tests).
//!
//! What a router needs, and what is checked (only for `service = lvs`, `network = nat` with an
//! active virtual server; direct routing and tunnelling need nothing of the router's kernel):
//!
//! | Need | Checked |
//! |---|---|
//! | IP forwarding: the real servers' replies are forwarded back to the clients (IPVS rewrites their source to the VIP in the forward path) | `net.ipv4.ip_forward` = 1 |
//! | Forwarding on the inside interface (the `nat_router` device), which a per-interface setting can turn off | `net.ipv4.conf.DEV.forwarding` = 1 (when `ip_forward` is 1) |
//! | One-network NAT (the `nat_router` address on the same interface as a VIP): no ICMP redirects, or the real servers learn to send their replies past the router, untranslated | `net.ipv4.conf.all.send_redirects` and `net.ipv4.conf.DEV.send_redirects` = 0 |
//! | FTP through NAT (an active TCP virtual server on port 21): the kernel's FTP helper rewrites the addresses inside the FTP control connection | module `ip_vs_ftp` loaded |
//!
//! Not checked, on purpose: defragmentation (Piranha's era set `ip_always_defrag`, a switch gone
//! since Linux 2.4: IPVS reassembles what it needs itself) and masquerading of the real-server
//! network (it serves only the real servers' own outgoing connections, not the virtual services;
//! `etc/nftables/piranha-rs-nat.nft` has the rule, docs/howto.md explains).
//!
//! The module depends only on `lvs-config`, `log` and `std`.

use std::fmt;
use std::path::{Path, PathBuf};

use lvs_config::{Config, Network, Protocol, ServiceType};

/// Where the fixes are made permanent (shipped as `etc/sysctl.d/90-piranha-rs-router.conf`).
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-piranha-rs-router.conf";
/// Where the module list is made permanent.
pub const MODULES_FILE: &str = "/etc/modules-load.d/piranha-rs.conf";

/// The kernel as the check sees it.
pub trait System {
    /// The value of `/proc/sys/PATH` (`PATH` like `net/ipv4/ip_forward`), without its line end;
    /// `None` when it cannot be read (no such setting, or no /proc).
    fn proc_sys(&self, path: &str) -> Option<String>;

    /// Whether a kernel module is loaded or built in; `None` when that cannot be told.
    fn module_loaded(&self, _name: &str) -> Option<bool> {
        None
    }
}

/// Any `Fn(&str) -> Option<String>` reads /proc/sys (module checks are then skipped).
impl<F: Fn(&str) -> Option<String>> System for F {
    fn proc_sys(&self, path: &str) -> Option<String> {
        self(path)
    }
}

/// The running kernel: `/proc/sys` and `/sys/module` (or other roots, for tests).
#[derive(Debug, Clone)]
pub struct ProcSys {
    pub proc_sys: PathBuf,
    pub sys_module: PathBuf,
}

impl Default for ProcSys {
    fn default() -> Self {
        ProcSys {
            proc_sys: PathBuf::from("/proc/sys"),
            sys_module: PathBuf::from("/sys/module"),
        }
    }
}

impl System for ProcSys {
    fn proc_sys(&self, path: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.proc_sys.join(path)).ok()?;
        Some(text.trim_end_matches(['\n', '\r']).trim().to_string())
    }

    fn module_loaded(&self, name: &str) -> Option<bool> {
        if !self.sys_module.is_dir() {
            return None;
        }
        // /sys/module/NAME exists for a loaded module, and for a built-in one with parameters
        // (ip_vs_ftp has `ports`).
        Some(self.sys_module.join(name).exists())
    }
}

/// One missing prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is wrong, e.g. `net.ipv4.ip_forward is 0, NAT needs 1`.
    pub problem: String,
    /// Why the configuration needs it.
    pub why: String,
    /// The exact command that fixes it now.
    pub fix: String,
    /// How to keep the fix across reboots.
    pub persist: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NAT router prerequisite missing: {} ({}); fix: {}; {}",
            self.problem, self.why, self.fix, self.persist
        )
    }
}

/// A setting under /proc/sys, by its path components (a component may hold a `.`, as a VLAN
/// interface `eth0.100` does).
struct Setting<'a>(Vec<&'a str>);

impl Setting<'_> {
    /// `net/ipv4/conf/eth0.100/forwarding`.
    fn path(&self) -> String {
        self.0.join("/")
    }

    /// `net.ipv4.conf.eth0/100.forwarding`, as sysctl(8) names it.
    fn name(&self) -> String {
        self.0
            .iter()
            .map(|c| c.replace('.', "/"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The interface an address label lives on: `eth1:1` -> `eth1`.
fn interface(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// A name usable in a /proc/sys path (never `.`, `..` or anything with a `/`).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

fn sysctl_fix(name: &str, value: &str) -> (String, String) {
    (
        format!("sysctl -w {name}={value}"),
        format!("at boot: put \"{name} = {value}\" in {SYSCTL_FILE}"),
    )
}

/// The prerequisites `config` needs and `system` lacks, in a stable order. Settings that cannot
/// be read are skipped (nothing is claimed that was not seen).
pub fn check(config: &Config, system: &dyn System) -> Vec<Missing> {
    let mut missing = Vec::new();
    let active: Vec<_> = config.virtual_servers.iter().filter(|v| v.active).collect();
    if config.service != ServiceType::Lvs || config.network != Network::Nat || active.is_empty() {
        return missing;
    }

    let forwarding = Setting(vec!["net", "ipv4", "ip_forward"]);
    let global_forwarding = system.proc_sys(&forwarding.path());
    if let Some(v) = &global_forwarding {
        if v != "1" {
            let (fix, persist) = sysctl_fix(&forwarding.name(), "1");
            missing.push(Missing {
                problem: format!("{} is {v}, NAT needs 1", forwarding.name()),
                why: "the real servers' replies are forwarded back to the clients through this \
                      router"
                    .to_string(),
                fix,
                persist,
            });
        }
    }

    let inside = config
        .nat_router
        .as_ref()
        .map(|n| interface(&n.device))
        .filter(|d| plain_name(d));
    if let Some(dev) = inside {
        // Writing ip_forward sets every interface's forwarding: only worth a line of its own
        // when the global switch is on.
        if global_forwarding.as_deref() == Some("1") {
            let s = Setting(vec!["net", "ipv4", "conf", dev, "forwarding"]);
            if let Some(v) = system.proc_sys(&s.path()) {
                if v != "1" {
                    let (fix, persist) = sysctl_fix(&s.name(), "1");
                    missing.push(Missing {
                        problem: format!("{} is {v}, NAT needs 1", s.name()),
                        why: format!(
                            "the real servers' replies arrive on {dev}, the nat_router interface, \
                             and must be forwarded"
                        ),
                        fix,
                        persist,
                    });
                }
            }
        }

        let one_network = active
            .iter()
            .filter_map(|v| v.address.as_ref())
            .any(|a| interface(&a.device) == dev);
        if one_network {
            for scope in ["all", dev] {
                let s = Setting(vec!["net", "ipv4", "conf", scope, "send_redirects"]);
                if let Some(v) = system.proc_sys(&s.path()) {
                    if v != "0" {
                        let (fix, persist) = sysctl_fix(&s.name(), "0");
                        missing.push(Missing {
                            problem: format!("{} is {v}, one-network NAT needs 0", s.name()),
                            why: format!(
                                "the nat_router address and a VIP share {dev}: the router would \
                                 send the real servers ICMP redirects, and a real server that \
                                 follows one sends its replies past the router, untranslated"
                            ),
                            fix,
                            persist,
                        });
                    }
                }
            }
        }
    }

    let ftp = active.iter().any(|v| {
        v.fwmark.is_none() && v.protocol == Protocol::Tcp && v.port == 21 && v.address.is_some()
    });
    if ftp && system.module_loaded("ip_vs_ftp") == Some(false) {
        missing.push(Missing {
            problem: "kernel module ip_vs_ftp is not loaded".to_string(),
            why: "an FTP virtual server on TCP port 21 through NAT needs the addresses inside the \
                  FTP control connection rewritten"
                .to_string(),
            fix: "modprobe ip_vs_ftp".to_string(),
            persist: format!("at boot: put \"ip_vs_ftp\" in {MODULES_FILE}"),
        });
    }
    missing
}

/// [`check`] against the running kernel, each missing prerequisite logged as a warning.
pub fn log_missing(config: &Config) -> usize {
    log_missing_with(config, &ProcSys::default())
}

/// [`log_missing`] with another view of the kernel.
pub fn log_missing_with(config: &Config, system: &dyn System) -> usize {
    let missing = check(config, system);
    for m in &missing {
        log::warn!("{m}");
    }
    missing.len()
}

/// `/proc/sys` under another root (for tests with a fake tree).
pub fn proc_sys_at(root: &Path) -> ProcSys {
    ProcSys {
        proc_sys: root.join("proc/sys"),
        sys_module: root.join("sys/module"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_config::{InterfaceAddress, RealServer, VirtualServer};
    use std::collections::HashMap;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    /// A kernel made of a table; modules listed are loaded, others not (or unknown: `None`).
    struct Fake {
        sys: HashMap<&'static str, &'static str>,
        modules: Option<Vec<&'static str>>,
    }

    impl System for Fake {
        fn proc_sys(&self, path: &str) -> Option<String> {
            self.sys.get(path).map(|v| v.to_string())
        }
        fn module_loaded(&self, name: &str) -> Option<bool> {
            self.modules.as_ref().map(|m| m.contains(&name))
        }
    }

    /// A router with everything right for the five-node HOWTO cluster.
    fn good() -> Fake {
        Fake {
            sys: HashMap::from([
                ("net/ipv4/ip_forward", "1"),
                ("net/ipv4/conf/eth1/forwarding", "1"),
                ("net/ipv4/conf/eth0/forwarding", "1"),
                ("net/ipv4/conf/all/send_redirects", "0"),
                ("net/ipv4/conf/eth0/send_redirects", "0"),
                ("net/ipv4/conf/eth1/send_redirects", "1"),
                ("net/ipv4/conf/eth0.100/forwarding", "1"),
            ]),
            modules: Some(vec!["ip_vs", "ip_vs_ftp"]),
        }
    }

    fn ia(ip: [u8; 4], dev: &str) -> InterfaceAddress {
        InterfaceAddress {
            address: Ipv4Addr::from(ip).into(),
            device: dev.to_string(),
        }
    }

    fn vs(name: &str, port: u16, dev: &str) -> VirtualServer {
        let mut v = VirtualServer::new(name);
        v.active = true;
        v.address = Some(ia([192, 0, 2, 100], dev));
        v.port = port;
        let mut rs = RealServer::new("rs1", port);
        rs.active = true;
        rs.address = Some(Ipv4Addr::new(10, 11, 12, 2).into());
        v.servers.push(rs);
        v
    }

    /// NAT, VIPs on eth0:1, nat_router on eth1:1 (two networks), web and ftp.
    fn nat() -> Config {
        let mut c = Config {
            network: Network::Nat,
            nat_router: Some(ia([10, 11, 12, 1], "eth1:1")),
            ..Config::default()
        };
        c.virtual_servers.push(Arc::new(vs("web", 80, "eth0:1")));
        c.virtual_servers.push(Arc::new(vs("ftp", 21, "eth0:1")));
        c
    }

    fn with(mut f: Fake, path: &'static str, value: &'static str) -> Fake {
        f.sys.insert(path, value);
        f
    }

    #[test]
    fn a_ready_router_lacks_nothing() {
        assert_eq!(check(&nat(), &good()), vec![]);
    }

    #[test]
    fn ip_forward_off_is_reported_with_its_command() {
        let m = check(&nat(), &with(good(), "net/ipv4/ip_forward", "0"));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].problem, "net.ipv4.ip_forward is 0, NAT needs 1");
        assert_eq!(m[0].fix, "sysctl -w net.ipv4.ip_forward=1");
        assert_eq!(
            m[0].persist,
            "at boot: put \"net.ipv4.ip_forward = 1\" in /etc/sysctl.d/90-piranha-rs-router.conf"
        );
        let line = m[0].to_string();
        assert!(
            line.starts_with(
                "NAT router prerequisite missing: net.ipv4.ip_forward is 0, NAT needs 1 (the \
                 real servers' replies"
            ),
            "{line}"
        );
        assert!(line.contains("; fix: sysctl -w net.ipv4.ip_forward=1; at boot: "));
    }

    #[test]
    fn interface_forwarding_only_matters_when_the_global_switch_is_on() {
        let f = with(good(), "net/ipv4/conf/eth1/forwarding", "0");
        let m = check(&nat(), &f);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].fix, "sysctl -w net.ipv4.conf.eth1.forwarding=1");
        assert!(m[0].why.contains("arrive on eth1"));
        // With ip_forward=0, its fix turns on every interface: one line only.
        let m = check(&nat(), &with(f, "net/ipv4/ip_forward", "0"));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].fix, "sysctl -w net.ipv4.ip_forward=1");
    }

    #[test]
    fn vlan_interfaces_are_named_as_sysctl_names_them() {
        let mut c = nat();
        c.nat_router = Some(ia([10, 11, 12, 1], "eth0.100:1"));
        let f = with(good(), "net/ipv4/conf/eth0.100/forwarding", "0");
        let m = check(&c, &f);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].fix, "sysctl -w net.ipv4.conf.eth0/100.forwarding=1");
    }

    #[test]
    fn one_network_nat_needs_redirects_off() {
        let mut c = nat();
        // The inside address on the VIPs' interface.
        c.nat_router = Some(ia([10, 11, 12, 1], "eth0:2"));
        assert_eq!(check(&c, &good()), vec![]);
        let f = with(
            with(good(), "net/ipv4/conf/all/send_redirects", "1"),
            "net/ipv4/conf/eth0/send_redirects",
            "1",
        );
        let m = check(&c, &f);
        let fixes: Vec<_> = m.iter().map(|m| m.fix.as_str()).collect();
        assert_eq!(
            fixes,
            [
                "sysctl -w net.ipv4.conf.all.send_redirects=0",
                "sysctl -w net.ipv4.conf.eth0.send_redirects=0"
            ]
        );
        assert!(m[0].problem.ends_with("is 1, one-network NAT needs 0"));
        // Two networks: redirects do not matter (eth1 has send_redirects=1 in `good`).
        assert_eq!(check(&nat(), &f), vec![]);
    }

    #[test]
    fn ftp_through_nat_needs_its_helper() {
        let mut f = good();
        f.modules = Some(vec!["ip_vs"]);
        let m = check(&nat(), &f);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].fix, "modprobe ip_vs_ftp");
        assert_eq!(
            m[0].persist,
            "at boot: put \"ip_vs_ftp\" in /etc/modules-load.d/piranha-rs.conf"
        );
        // Unknown module state: nothing claimed.
        f.modules = None;
        assert_eq!(check(&nat(), &f), vec![]);
        // No FTP service, or an inactive one, or FTP by firewall mark: not needed.
        f.modules = Some(vec![]);
        let mut c = nat();
        Arc::make_mut(&mut c.virtual_servers[1]).active = false;
        assert_eq!(check(&c, &f), vec![]);
        let mut c = nat();
        Arc::make_mut(&mut c.virtual_servers[1]).fwmark = Some(21);
        assert_eq!(check(&c, &f), vec![]);
        let mut c = nat();
        Arc::make_mut(&mut c.virtual_servers[1]).protocol = Protocol::Udp;
        assert_eq!(check(&c, &f), vec![]);
    }

    #[test]
    fn only_nat_lvs_configurations_are_checked() {
        let bad = Fake {
            sys: HashMap::from([
                ("net/ipv4/ip_forward", "0"),
                ("net/ipv4/conf/all/send_redirects", "1"),
            ]),
            modules: Some(vec![]),
        };
        assert_eq!(check(&nat(), &bad).len(), 2);
        for network in [Network::Direct, Network::Tunnel] {
            let c = Config { network, ..nat() };
            assert_eq!(check(&c, &bad), vec![], "{network:?}");
        }
        let c = Config {
            service: ServiceType::Fos,
            ..nat()
        };
        assert_eq!(check(&c, &bad), vec![]);
        let mut c = nat();
        for v in &mut c.virtual_servers {
            Arc::make_mut(v).active = false;
        }
        assert_eq!(check(&c, &bad), vec![]);
    }

    #[test]
    fn nat_without_nat_router_checks_forwarding_only() {
        let c = Config {
            nat_router: None,
            ..nat()
        };
        let m = check(&c, &with(good(), "net/ipv4/ip_forward", "0"));
        assert_eq!(m.len(), 1);
        assert_eq!(check(&c, &good()), vec![]);
    }

    #[test]
    fn unreadable_settings_are_skipped() {
        let nothing = |_: &str| None;
        assert_eq!(check(&nat(), &nothing), vec![]);
        // A closure is a System too (modules then unknown).
        let off = |p: &str| (p == "net/ipv4/ip_forward").then(|| "0".to_string());
        assert_eq!(check(&nat(), &off).len(), 1);
    }

    #[test]
    fn odd_device_names_never_escape_proc_sys() {
        let mut c = nat();
        c.nat_router = Some(ia([10, 11, 12, 1], "../../x:1"));
        let seen = std::cell::RefCell::new(Vec::new());
        let spy = |p: &str| {
            seen.borrow_mut().push(p.to_string());
            Some("1".to_string())
        };
        check(&c, &spy);
        assert!(seen.borrow().iter().all(|p| !p.contains("..")), "{seen:?}");
    }

    #[test]
    fn proc_sys_reads_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let sys = proc_sys_at(dir.path());
        assert_eq!(sys.proc_sys("net/ipv4/ip_forward"), None);
        assert_eq!(sys.module_loaded("ip_vs_ftp"), None);
        std::fs::create_dir_all(dir.path().join("proc/sys/net/ipv4/conf/eth1")).unwrap();
        std::fs::write(dir.path().join("proc/sys/net/ipv4/ip_forward"), "0\n").unwrap();
        std::fs::write(
            dir.path().join("proc/sys/net/ipv4/conf/eth1/forwarding"),
            "1\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("sys/module/ip_vs")).unwrap();
        assert_eq!(sys.proc_sys("net/ipv4/ip_forward").as_deref(), Some("0"));
        assert_eq!(sys.module_loaded("ip_vs"), Some(true));
        assert_eq!(sys.module_loaded("ip_vs_ftp"), Some(false));
        let m = check(&nat(), &sys);
        let fixes: Vec<_> = m.iter().map(|m| m.fix.as_str()).collect();
        assert_eq!(
            fixes,
            ["sysctl -w net.ipv4.ip_forward=1", "modprobe ip_vs_ftp"]
        );
    }
}
