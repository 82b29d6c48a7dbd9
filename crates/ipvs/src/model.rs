//! The IPVS table as the kernel holds it: services, destinations, stats, timeouts, sync daemons.
//! Field names and values follow `include/uapi/linux/ip_vs.h`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `AF_INET` / `AF_INET6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// `GET_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
