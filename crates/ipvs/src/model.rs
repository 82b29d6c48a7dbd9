//! The IPVS table as the kernel holds it: services, destinations, stats, timeouts, sync daemons.
//! Field names and values follow `include/uapi/linux/ip_vs.h`.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `AF_INET` / `AF_INET6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub const AF_INET: u16 = 2;
    pub const AF_INET6: u16 = 10;

    pub fn number(self) -> u16 {
        match self {
            Family::Inet => Self::AF_INET,
            Family::Inet6 => Self::AF_INET6,
        }
    }

    pub fn from_number(n: u16) -> Option<Family> {
        match n {
            Self::AF_INET => Some(Family::Inet),
            Self::AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }

    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }

    /// The all-zero address of this family.
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// IP protocol of an address-based service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(n: u16) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// As ipvsadm lists it: `TCP`, `UDP`, `SCTP`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceId {
    /// `-t|-u|--sctp-service addr:port`.
    Address {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// `-f mark` (`-6` for IPv6).
    Fwmark { family: Family, mark: u32 },
}

impl ServiceId {
    pub fn family(&self) -> Family {
        match self {
            ServiceId::Address { addr, .. } => Family::of(addr),
            ServiceId::Fwmark { family, .. } => *family,
        }
    }
}

/// `IP_VS_SVC_F_*` service flags.
pub mod flags {
    pub const PERSISTENT: u32 = 0x0001;
    pub const HASHED: u32 = 0x0002;
    pub const ONEPACKET: u32 = 0x0004;
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
    /// sh / mh scheduler flags.
    pub const SH_FALLBACK: u32 = SCHED1;
    pub const SH_PORT: u32 = SCHED2;
    pub const MH_FALLBACK: u32 = SCHED1;
    pub const MH_PORT: u32 = SCHED2;
}

/// Counters and rates (the kernel's 64-bit stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    /// Kernel scheduler name (`wlc`, ...).
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` bits (see [`flags`]).
    pub flags: u32,
    /// Persistence timeout in seconds (meaningful with [`flags::PERSISTENT`]).
    pub timeout: u32,
    /// IPv4: the persistence netmask as a host-order u32 (`0xffffff00` for /24); IPv6: the prefix
    /// length.
    pub netmask: u32,
    /// Persistence engine (`sip`).
    pub pe_name: Option<String>,
    /// From listings only.
    pub stats: Stats,
}

impl Service {
    /// A service with ipvsadm's defaults: wlc, not persistent, host netmask.
    pub fn new(id: ServiceId) -> Service {
        Service {
            id,
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 0,
            netmask: match id.family() {
                Family::Inet => 0xffff_ffff,
                Family::Inet6 => 128,
            },
            pe_name: None,
            stats: Stats::default(),
        }
    }

    pub fn is_persistent(&self) -> bool {
        self.flags & flags::PERSISTENT != 0
    }
}

/// `IP_VS_CONN_F_FWD_MASK` values: how a destination is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ForwardMethod {
    /// NAT (`-m`).
    Masq,
    Local,
    /// IP-IP/GUE/GRE tunnel (`-i`).
    Tunnel,
    /// Direct routing (`-g`).
    Route,
    Bypass,
}

impl ForwardMethod {
    pub fn number(self) -> u32 {
        match self {
            ForwardMethod::Masq => 0,
            ForwardMethod::Local => 1,
            ForwardMethod::Tunnel => 2,
            ForwardMethod::Route => 3,
            ForwardMethod::Bypass => 4,
        }
    }

    pub fn from_number(n: u32) -> Option<ForwardMethod> {
        match n & 7 {
            0 => Some(ForwardMethod::Masq),
            1 => Some(ForwardMethod::Local),
            2 => Some(ForwardMethod::Tunnel),
            3 => Some(ForwardMethod::Route),
            4 => Some(ForwardMethod::Bypass),
            _ => None,
        }
    }
}

/// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub fn number(self) -> u8 {
        match self {
            TunnelType::Ipip => 0,
            TunnelType::Gue => 1,
            TunnelType::Gre => 2,
        }
    }

    pub fn from_number(n: u8) -> Option<TunnelType> {
        match n {
            0 => Some(TunnelType::Ipip),
            1 => Some(TunnelType::Gue),
            2 => Some(TunnelType::Gre),
            _ => None,
        }
    }
}

/// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
pub mod tun_flags {
    pub const NOCSUM: u16 = 0;
    pub const CSUM: u16 = 1;
    pub const REMCSUM: u16 = 2;
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: ForwardMethod,
    /// The kernel keeps an int; ipvsadm prints it with `%d`.
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub tun_type: TunnelType,
    pub tun_port: u16,
    pub tun_flags: u16,
    /// From listings only.
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Stats,
}

impl Destination {
    /// A destination with ipvsadm's defaults: direct routing, weight 1, no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> Destination {
        Destination {
            addr,
            port,
            forward: ForwardMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: tun_flags::NOCSUM,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Stats::default(),
        }
    }
}

/// Connection timeouts in seconds (`--set tcp tcpfin udp`); 0 leaves a value unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// `GET_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// 0x010201 for 1.2.1.
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
}

impl Info {
    /// `major.minor.patch`.
    pub fn version_triple(&self) -> (u32, u32, u32) {
        (
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff,
        )
    }
}

/// Sync daemon role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn number(self) -> u32 {
        match self {
            DaemonState::Master => 1,
            DaemonState::Backup => 2,
        }
    }

    pub fn from_number(n: u32) -> Option<DaemonState> {
        match n {
            1 => Some(DaemonState::Master),
            2 => Some(DaemonState::Backup),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DaemonState::Master => "master",
            DaemonState::Backup => "backup",
        }
    }
}

/// A connection-sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    pub state: DaemonState,
    pub mcast_ifn: String,
    pub sync_id: u32,
    /// Optional settings (0 / None = kernel default).
    pub sync_maxlen: u16,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}

/// One entry of the connection table (`ipvsadm -c`), as `/proc/net/ip_vs_conn` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// IP protocol number: 6, 17, 132; 0 (`IP`) for the template of a persistent fwmark
    /// service.
    pub protocol: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    /// For a fwmark template: the mark, as an IPv4 address.
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// `ESTABLISHED`, `FIN_WAIT`, `UDP`, `NONE` (a template), ...
    pub state: String,
    /// Seconds until the entry expires.
    pub expires: u32,
    /// Persistence engine name and data (` sip CALLID` in the kernel's listing).
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}

/// The kernel's name of an IP protocol in `/proc/net/ip_vs_conn` (`ip_vs_proto_name`).
pub fn proto_name(protocol: u16) -> String {
    match protocol {
        0 => "IP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        58 => "ICMPv6".into(),
        1 => "ICMP".into(),
        n => format!("IP_{n}"),
    }
}

/// `%pI6`: eight groups of four hex digits, never compressed.
fn full_ipv6(a: &Ipv6Addr) -> String {
    let s = a.segments();
    format!(
        "{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}",
        s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
    )
}

fn hex_v4(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => format!("{:08X}", u32::from(*v4)),
        IpAddr::V6(v6) => full_ipv6(v6),
    }
}

/// The text of `/proc/net/ip_vs_conn` for these entries, byte for byte as the kernel writes it
/// (`ip_vs_conn_seq_show`), so that ipvsadm's reader sees the same input from every backend.
pub fn proc_conn_text(conns: &[Connection]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
    );
    for c in conns {
        let pe = match (&c.pe_name, &c.pe_data) {
            (Some(n), Some(d)) => format!(" {n} {d}"),
            _ => String::new(),
        };
        let dbuf = hex_v4(&c.daddr);
        let name = proto_name(c.protocol);
        let (ca, va) = match (&c.caddr, &c.vaddr) {
            (IpAddr::V6(ca), va) => (
                full_ipv6(ca),
                match va {
                    IpAddr::V6(v) => full_ipv6(v),
                    IpAddr::V4(v) => full_ipv6(&v.to_ipv6_mapped()),
                },
            ),
            (ca, va) => (hex_v4(ca), hex_v4(va)),
        };
        let _ = writeln!(
            out,
            "{name:<3} {ca} {:04X} {va} {:04X} {dbuf} {:04X} {:<11} {:>7}{pe}",
            c.cport, c.vport, c.dport, c.state, c.expires
        );
    }
    out
}
