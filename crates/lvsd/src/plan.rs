//! The desired IPVS table: what the kernel must hold for a config, given each real server's health
//! (as its nanny reported it) and whether each sorry server is switched on. Pure.
//!
//! - Every **active** virtual server is one IPVS service: `-f MARK` when `fwmark` is set, else
//!   `-t|-u VIP:PORT`; scheduler, persistence (`-p`), persistence netmask (`-M`, only when
//!   persistent) as `ipvsadm -A` would set them.
//! - Every **active** real server of it is a destination only while its health says so: up (with
//!   the weight its nanny reported) or quiesced (weight 0). Down: absent. Unknown (its nanny has
//!   not reported yet): whatever the kernel holds is left alone (never added, never removed), so a
//!   restarted lvsd or nanny does not take a serving real server out before its first check.
//! - Forwarding from the global `network`: nat → masquerading (`-m`), direct → direct routing
//!   (`-g`), tunnel → IP-IP (`-i`). As ipvsadm does for `-g`/`-i` on address services, the
//!   destination port is then the virtual port (a port cannot be mapped without NAT).
//! - The sorry server, when switched on, is one more destination with weight 1 on the virtual
//!   port (spec §3.6).

use ipvs::{flags, Destination, Family, ForwardMethod, Service, ServiceId};
use lvs_config::{Config, Network, Protocol, RealServer, ServiceKey, VirtualServer};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::{IpAddr, Ipv4Addr};

/// What a nanny watches: one real server of one virtual service (Piranha keyed its monitors by
/// VIP, RIP, VPORT, RPORT and protocol; the virtual service key covers fwmark services too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorKey {
    pub service: ServiceKey,
    pub rip: Ipv4Addr,
    pub rport: u16,
}

impl std::fmt::Display for MonitorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}:{}", self.service, self.rip, self.rport)
    }
}

/// A real server's state as lvsd knows it from its nanny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No report since its nanny (re)started: leave the kernel's entry, if any, as it is.
    Unknown,
    /// In the table with this weight.
    Up(u32),
    /// In the table with weight 0 (`quiesce_server = 1`).
    Quiesced,
    /// Not in the table.
    Down,
}

impl Health {
    pub fn is_up(self) -> bool {
        matches!(self, Health::Up(_))
    }
}

/// What a destination of an owned service must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Present with this weight (added if missing, edited if different).
    Weight(i32),
    /// Left as the kernel has it: neither added, nor edited, nor removed.
    Keep,
}

/// Why a destination is in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A real server (its `server` block name).
    Real(String),
    /// The virtual server's sorry server.
    Sorry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredDest {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub forward: ForwardMethod,
    pub want: Want,
    pub role: Role,
}

impl DesiredDest {
    /// The kernel destination to add or edit to.
    pub fn destination(&self, weight: i32) -> Destination {
        let mut d = Destination::new(IpAddr::V4(self.addr), self.port);
        d.forward = self.forward;
        d.weight = weight;
        d
    }
}

/// One owned service with its destinations, in config order (sorry server last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// The `virtual` block's name.
    pub name: String,
    pub service: Service,
    pub dests: Vec<DesiredDest>,
}

impl DesiredService {
    pub fn id(&self) -> ServiceId {
        self.service.id
    }
}

/// Every owned service, in config order, with an index by service id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTable {
    pub services: Vec<DesiredService>,
    index: HashMap<ServiceId, usize>,
}

impl DesiredTable {
    pub fn get(&self, id: &ServiceId) -> Option<&DesiredService> {
        self.index.get(id).map(|&i| &self.services[i])
    }

    pub fn contains(&self, id: &ServiceId) -> bool {
        self.index.contains_key(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = ServiceId> + '_ {
        self.services.iter().map(|s| s.id())
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Adds a service unless one with the same id is already there (the first block wins, as
    /// validation refuses two active blocks for one service anyway).
    pub fn push(&mut self, s: DesiredService) -> bool {
        if self.index.contains_key(&s.id()) {
            return false;
        }
        self.index.insert(s.id(), self.services.len());
        self.services.push(s);
        true
    }
}

/// The IPVS service id of a config service key.
pub fn service_id(key: ServiceKey) -> ServiceId {
    match key {
        ServiceKey::Fwmark(mark) => ServiceId::Fwmark {
            family: Family::Inet,
            mark,
        },
        ServiceKey::Address {
            protocol,
            address,
            port,
        } => ServiceId::Address {
            protocol: match protocol {
                Protocol::Tcp => ipvs::Protocol::Tcp,
                Protocol::Udp => ipvs::Protocol::Udp,
            },
            addr: IpAddr::V4(address),
            port,
        },
    }
}

/// The config service key of an IPVS service id, if lvs.cf can name that service (IPv4, TCP or
/// UDP, or an IPv4 firewall mark): the inverse of [`service_id`].
pub fn service_key(id: &ServiceId) -> Option<ServiceKey> {
    match *id {
        ServiceId::Fwmark {
            family: Family::Inet,
            mark,
        } => Some(ServiceKey::Fwmark(mark)),
        ServiceId::Address {
            protocol,
            addr: IpAddr::V4(address),
            port,
        } => Some(ServiceKey::Address {
            protocol: match protocol {
                ipvs::Protocol::Tcp => Protocol::Tcp,
                ipvs::Protocol::Udp => Protocol::Udp,
                ipvs::Protocol::Sctp => return None,
            },
            address,
            port,
        }),
        _ => None,
    }
}

impl MonitorKey {
    /// Every monitor key of one service, as a range of the ordered keys.
    pub fn all_of(service: ServiceKey) -> std::ops::RangeInclusive<MonitorKey> {
        MonitorKey {
            service,
            rip: Ipv4Addr::UNSPECIFIED,
            rport: 0,
        }..=MonitorKey {
            service,
            rip: Ipv4Addr::BROADCAST,
            rport: u16::MAX,
        }
    }
}

/// The forwarding method of `network`.
pub fn forward_method(network: Network) -> ForwardMethod {
    match network {
        Network::Nat => ForwardMethod::Masq,
        Network::Direct => ForwardMethod::Route,
        Network::Tunnel => ForwardMethod::Tunnel,
    }
}

/// The service as `ipvsadm -A` would create it for this block.
pub fn service_spec(vs: &VirtualServer, id: ServiceId) -> Service {
    let mut s = Service::new(id);
    s.scheduler = vs.scheduler.name().to_string();
    if vs.persistent > 0 {
        s.flags = flags::PERSISTENT;
        s.timeout = vs.persistent;
        if let Some(mask) = vs.pmask {
            s.netmask = u32::from(mask);
        }
    }
    s
}

/// The destination port of a real server: its own port, except for direct routing and tunnels
/// on address services, where ipvsadm (and so Piranha's nanny) forces the virtual port.
pub fn dest_port(network: Network, vs: &VirtualServer, rport: u16) -> u16 {
    if network != Network::Nat && vs.fwmark.is_none() {
        vs.port
    } else {
        rport
    }
}

/// The monitor key of a real server, if both blocks are complete enough to have one.
pub fn monitor_key(vs: &VirtualServer, rs: &RealServer) -> Option<MonitorKey> {
    Some(MonitorKey {
        service: vs.key()?,
        rip: rs.address.as_ref()?.address,
        rport: rs.port,
    })
}

/// The real servers lvsd monitors in a block: active ones with an address, once per key.
pub fn monitored_servers(vs: &VirtualServer) -> impl Iterator<Item = (&RealServer, MonitorKey)> {
    let mut seen = HashSet::default();
    vs.servers
        .iter()
        .filter(|rs| rs.active)
        .filter_map(move |rs| monitor_key(vs, rs).map(|k| (rs, k)))
        .filter(move |(_, k)| seen.insert(*k))
}

/// The desired service of one active virtual server; `None` for inactive or incomplete blocks.
pub fn desired_service(
    config: &Config,
    vs: &VirtualServer,
    health: &dyn Fn(&MonitorKey) -> Health,
    sorry_on: bool,
) -> Option<DesiredService> {
    if !vs.active {
        return None;
    }
    let id = service_id(vs.key()?);
    let forward = forward_method(config.network);
    let mut dests: Vec<DesiredDest> = Vec::new();
    for (rs, key) in monitored_servers(vs) {
        let want = match health(&key) {
            Health::Unknown => Want::Keep,
            Health::Up(w) => Want::Weight(i32::try_from(w).unwrap_or(i32::MAX)),
            Health::Quiesced => Want::Weight(0),
            Health::Down => continue,
        };
        let port = dest_port(config.network, vs, key.rport);
        if dests.iter().any(|d| d.addr == key.rip && d.port == port) {
            continue;
        }
        dests.push(DesiredDest {
            addr: key.rip,
            port,
            forward,
            want,
            role: Role::Real(rs.name.clone()),
        });
    }
    if let (Some(sorry), true) = (vs.sorry_server, sorry_on) {
        // The sorry server serves when nothing else does: it takes the place of a quiesced or
        // unknown entry with the same address and port (a configuration validation warns about).
        dests.retain(|d| !(d.addr == sorry && d.port == vs.port));
        dests.push(DesiredDest {
            addr: sorry,
            port: vs.port,
            forward,
            want: Want::Weight(1),
            role: Role::Sorry,
        });
    }
    Some(DesiredService {
        name: vs.name.clone(),
        service: service_spec(vs, id),
        dests,
    })
}

/// The whole desired table: one service per active virtual server, in config order.
pub fn desired_table(
    config: &Config,
    health: &dyn Fn(&MonitorKey) -> Health,
    sorry_on: &dyn Fn(&ServiceId) -> bool,
) -> DesiredTable {
    let mut table = DesiredTable::default();
    for vs in &config.virtual_servers {
        let Some(key) = vs.key() else { continue };
        if !vs.active {
            continue;
        }
        let on = sorry_on(&service_id(key));
        if let Some(s) = desired_service(config, vs, health, on) {
            table.push(s);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_config::{parse, StaticResolver};

    #[test]
    fn service_key_inverts_service_id() {
        let keys = [
            ServiceKey::Fwmark(7),
            ServiceKey::Address {
                protocol: Protocol::Tcp,
                address: Ipv4Addr::new(10, 0, 0, 1),
                port: 80,
            },
            ServiceKey::Address {
                protocol: Protocol::Udp,
                address: Ipv4Addr::new(10, 0, 0, 2),
                port: 53,
            },
        ];
        for k in keys {
            assert_eq!(service_key(&service_id(k)), Some(k));
        }
        let v6 = ServiceId::Address {
            protocol: ipvs::Protocol::Tcp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(service_key(&v6), None);
        let sctp = ServiceId::Address {
            protocol: ipvs::Protocol::Sctp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(service_key(&sctp), None);
    }

    #[test]
    fn all_of_a_service_covers_its_keys_only() {
        let s = |port| ServiceKey::Address {
            protocol: Protocol::Tcp,
            address: Ipv4Addr::new(10, 0, 0, 1),
            port,
        };
        let key = |service, rip: [u8; 4], rport| MonitorKey {
            service,
            rip: rip.into(),
            rport,
        };
        let keys: std::collections::BTreeSet<MonitorKey> = [
            key(s(79), [255, 255, 255, 255], 65535),
            key(s(80), [0, 0, 0, 0], 0),
            key(s(80), [192, 168, 0, 1], 80),
            key(s(80), [255, 255, 255, 255], 65535),
            key(s(81), [0, 0, 0, 0], 0),
        ]
        .into();
        let got: Vec<_> = keys.range(MonitorKey::all_of(s(80))).collect();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|k| k.service == s(80)));
    }

    pub(crate) fn cfg(text: &str) -> Config {
        parse(text.as_bytes(), &StaticResolver::standard())
            .unwrap()
            .config
    }

    const TWO: &str = "network = nat
virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     port = 80
     scheduler = wrr
     persistent = 300
     pmask = 255.255.255.0
     sorry_server = 198.51.100.99
     server a {
         address = 198.51.100.1
         active = 1
         weight = 10
     }
     server b {
         address = 198.51.100.2
         active = 1
         port = 8080
         weight = 20
     }
     server c {
         address = 198.51.100.3
         active = 0
     }
}
virtual dns {
     active = 1
     address = 192.0.2.101 eth0:2
     port = 53
     protocol = udp
     scheduler = rr
     server ns {
         address = 198.51.100.21
         active = 1
     }
}
virtual off {
     active = 0
     address = 192.0.2.102 eth0:3
     server x {
         address = 198.51.100.31
         active = 1
     }
}
virtual marked {
     active = 1
     address = 192.0.2.103 eth0:4
     fwmark = 7
     port = 443
     server m {
         address = 198.51.100.41
         active = 1
         port = 8443
     }
}
";

    fn up_all(w: u32) -> impl Fn(&MonitorKey) -> Health {
        move |_| Health::Up(w)
    }

    fn tcp(a: &str, port: u16) -> ServiceId {
        ServiceId::Address {
            protocol: ipvs::Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn services_of_active_blocks_in_config_order() {
        let c = cfg(TWO);
        let t = desired_table(&c, &|_| Health::Down, &|_| false);
        let names: Vec<&str> = t.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["www", "dns", "marked"]);
        let www = &t.services[0].service;
        assert_eq!(www.id, tcp("192.0.2.100", 80));
        assert_eq!(www.scheduler, "wrr");
        assert_eq!(www.flags, flags::PERSISTENT);
        assert_eq!(www.timeout, 300);
        assert_eq!(www.netmask, 0xffff_ff00);
        let dns = &t.services[1].service;
        assert_eq!(
            dns.id,
            ServiceId::Address {
                protocol: ipvs::Protocol::Udp,
                addr: "192.0.2.101".parse().unwrap(),
                port: 53
            }
        );
        assert_eq!(dns.scheduler, "rr");
        assert_eq!(dns.flags, 0);
        assert_eq!(dns.netmask, 0xffff_ffff);
        assert_eq!(
            t.services[2].service.id,
            ServiceId::Fwmark {
                family: Family::Inet,
                mark: 7
            }
        );
        assert!(t.services.iter().all(|s| s.dests.is_empty()));
        assert!(t.contains(&tcp("192.0.2.100", 80)));
        assert!(!t.contains(&tcp("192.0.2.102", 80)));
    }

    #[test]
    fn pmask_without_persistence_is_not_used() {
        let c = cfg(&TWO.replace("     persistent = 300\n", ""));
        let t = desired_table(&c, &|_| Health::Down, &|_| false);
        let s = &t.services[0].service;
        assert_eq!((s.flags, s.timeout, s.netmask), (0, 0, 0xffff_ffff));
    }

    #[test]
    fn health_decides_each_destination() {
        let c = cfg(TWO);
        let a = MonitorKey {
            service: c.virtual_servers[0].key().unwrap(),
            rip: "198.51.100.1".parse().unwrap(),
            rport: 80,
        };
        let b = MonitorKey {
            rip: "198.51.100.2".parse().unwrap(),
            rport: 8080,
            ..a
        };
        let cases = [
            (Health::Up(5), Some(Want::Weight(5))),
            (Health::Up(u32::MAX), Some(Want::Weight(i32::MAX))),
            (Health::Quiesced, Some(Want::Weight(0))),
            (Health::Unknown, Some(Want::Keep)),
            (Health::Down, None),
        ];
        for (h, want) in cases {
            let health = move |k: &MonitorKey| if *k == a { h } else { Health::Up(3) };
            let s = desired_service(&c, &c.virtual_servers[0], &health, false).unwrap();
            let got = s
                .dests
                .iter()
                .find(|d| d.role == Role::Real("a".into()))
                .map(|d| d.want);
            assert_eq!(got, want, "{h:?}");
            let bd = s.dests.iter().find(|d| d.addr == b.rip).unwrap();
            assert_eq!((bd.port, bd.want), (8080, Want::Weight(3)));
            assert!(s.dests.iter().all(|d| d.forward == ForwardMethod::Masq));
            // The inactive server c never appears.
            assert!(s.dests.iter().all(|d| d.role != Role::Real("c".into())));
        }
    }

    #[test]
    fn forwarding_and_ports_follow_network() {
        for (net, fwd, www_port_b, marked_port) in [
            ("nat", ForwardMethod::Masq, 8080, 8443),
            ("direct", ForwardMethod::Route, 80, 8443),
            ("tunnel", ForwardMethod::Tunnel, 80, 8443),
        ] {
            let c = cfg(&TWO.replace("network = nat", &format!("network = {net}")));
            let t = desired_table(&c, &up_all(1), &|_| false);
            let www = &t.services[0];
            assert!(www.dests.iter().all(|d| d.forward == fwd), "{net}");
            assert_eq!(www.dests[1].port, www_port_b, "{net}");
            // fwmark services keep the real port, as ipvsadm -a -f does.
            assert_eq!(t.services[2].dests[0].port, marked_port, "{net}");
            let d = www.dests[1].destination(7);
            assert_eq!(
                (d.forward, d.weight, d.port, d.u_threshold),
                (fwd, 7, www_port_b, 0)
            );
        }
    }

    #[test]
    fn sorry_server_is_weight_one_on_the_virtual_port() {
        let c = cfg(TWO);
        let www = tcp("192.0.2.100", 80);
        let t = desired_table(&c, &|_| Health::Down, &|id| *id == www);
        let s = t.get(&www).unwrap();
        assert_eq!(
            s.dests,
            vec![DesiredDest {
                addr: "198.51.100.99".parse().unwrap(),
                port: 80,
                forward: ForwardMethod::Masq,
                want: Want::Weight(1),
                role: Role::Sorry,
            }]
        );
        // A virtual server without sorry_server ignores the switch.
        let t = desired_table(&c, &|_| Health::Down, &|_| true);
        assert!(t.services[1].dests.is_empty());
        // Sorry server off: absent.
        let t = desired_table(&c, &|_| Health::Quiesced, &|_| false);
        assert!(t
            .get(&www)
            .unwrap()
            .dests
            .iter()
            .all(|d| d.role != Role::Sorry));
    }

    #[test]
    fn sorry_server_replaces_a_quiesced_entry_with_its_address() {
        let c = cfg(&TWO.replace(
            "sorry_server = 198.51.100.99",
            "sorry_server = 198.51.100.1",
        ));
        let s = desired_service(&c, &c.virtual_servers[0], &|_| Health::Quiesced, true).unwrap();
        let at: Vec<_> = s
            .dests
            .iter()
            .filter(|d| d.addr.to_string() == "198.51.100.1")
            .collect();
        assert_eq!(at.len(), 1);
        assert_eq!((at[0].want, &at[0].role), (Want::Weight(1), &Role::Sorry));
    }

    #[test]
    fn duplicate_servers_and_services_keep_the_first() {
        let text = TWO.replace(
            "     server c {\n         address = 198.51.100.3",
            "     server c {\n         address = 198.51.100.1\n         active = 1\n         port = 80\n",
        );
        let c = cfg(&text);
        let s = desired_service(&c, &c.virtual_servers[0], &up_all(2), false).unwrap();
        assert_eq!(s.dests.len(), 2);
        assert_eq!(s.dests[0].role, Role::Real("a".into()));
        let dup = TWO.replace(
            "address = 192.0.2.101 eth0:2\n     port = 53\n     protocol = udp",
            "address = 192.0.2.100 eth0:2\n     port = 80",
        );
        let t = desired_table(&cfg(&dup), &up_all(2), &|_| false);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&tcp("192.0.2.100", 80)).unwrap().name, "www");
    }

    #[test]
    fn direct_routing_ports_collapse_to_one_destination() {
        // Two real servers on one address but different ports: with direct routing both map to
        // the virtual port, so only the first is planned.
        let text = TWO
            .replace("network = nat", "network = direct")
            .replace("address = 198.51.100.2\n", "address = 198.51.100.1\n");
        let c = cfg(&text);
        let s = desired_service(&c, &c.virtual_servers[0], &up_all(2), false).unwrap();
        assert_eq!(s.dests.len(), 1);
    }

    #[test]
    fn monitored_servers_are_active_with_an_address() {
        let c = cfg(TWO);
        let keys: Vec<String> = monitored_servers(&c.virtual_servers[0])
            .map(|(rs, k)| format!("{} {k}", rs.name))
            .collect();
        assert_eq!(
            keys,
            [
                "a tcp 192.0.2.100:80 -> 198.51.100.1:80",
                "b tcp 192.0.2.100:80 -> 198.51.100.2:8080"
            ]
        );
    }
}
