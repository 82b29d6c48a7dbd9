//! The lvs.cf model: one struct per block, fields named after the lvs.cf keywords, defaults exactly
//! Piranha's (`lvsParseConfig`, `lvsInitVirtualServer`, `parseActualServer`).
//!
//! Where Piranha used 0 / 0.0.0.0 to mean "not set" the model uses `None`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// Default config path (Piranha's `CFGFILE`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sysconfig/ha/lvs.cf";
/// Config path of the releases before 0.8 (Red Hat HA Server 1.0).
pub const LEGACY_CONFIG_PATH: &str = "/etc/lvs.cf";
/// Default `ipvsadm` (Piranha's `IPVSADM`).
pub const DEFAULT_IPVSADM: &str = "/sbin/ipvsadm";
/// Default `client_monitor`.
pub const DEFAULT_CLIENT_MONITOR: &str = "/usr/sbin/nanny";

/// An address given as a dotted quad or a host name, with the address it resolved to.
/// `name` is kept as written so that writing the file back keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
}

impl From<Ipv4Addr> for Host {
    fn from(address: Ipv4Addr) -> Self {
        Host {
            name: address.to_string(),
            address,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.address.to_string() {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{} ({})", self.name, self.address)
        }
    }
}

/// `address = IP DEVICE` (virtual, failover) and `nat_router = IP DEVICE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InterfaceAddress {
    pub address: Host,
    /// Interface or alias the address is brought up on, e.g. `eth0:1`.
    pub device: String,
}

/// `service = lvs|fos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceType {
    #[default]
    Lvs,
    Fos,
}

impl ServiceType {
    pub fn keyword(self) -> &'static str {
        match self {
            ServiceType::Lvs => "lvs",
            ServiceType::Fos => "fos",
        }
    }
}

/// `network = nat|direct|tunnel`: the forwarding method of every real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Nat,
    Direct,
    Tunnel,
}

impl Network {
    pub fn keyword(self) -> &'static str {
        match self {
            Network::Nat => "nat",
            Network::Direct => "direct",
            Network::Tunnel => "tunnel",
        }
    }

    /// nanny `-M` letter (and ipvsadm's `-m`/`-g`/`-i`).
    pub fn method_letter(self) -> char {
        match self {
            Network::Nat => 'm',
            Network::Direct => 'g',
            Network::Tunnel => 'i',
        }
    }
}

/// `protocol = tcp|udp`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// `scheduler = ...`: Piranha's eight, plus (extension) the kernel's later schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    #[default]
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
}

impl Scheduler {
    pub const ALL: [Scheduler; 13] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
    ];

    /// The kernel scheduler name (also the lvs.cf word).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheduler> {
        Scheduler::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether Piranha 0.8.6 knew this scheduler (the others are an extension).
    pub fn in_piranha(self) -> bool {
        matches!(
            self,
            Scheduler::Rr
                | Scheduler::Wrr
                | Scheduler::Lc
                | Scheduler::Wlc
                | Scheduler::Lblc
                | Scheduler::Lblcr
                | Scheduler::Dh
                | Scheduler::Sh
        )
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `reservation_conflict_action = nothing|preempt` (FOS shared SCSI only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationConflictAction {
    Nothing,
    Preempt,
}

impl ReservationConflictAction {
    pub fn keyword(self) -> &'static str {
        match self {
            ReservationConflictAction::Nothing => "nothing",
            ReservationConflictAction::Preempt => "preempt",
        }
    }
}

/// Serde for durations as (fractional) seconds.
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// The whole of lvs.cf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub serial_no: i64,
    pub service: ServiceType,
    pub primary: Option<Host>,
    /// `None`: the heartbeat's second path is the public address.
    pub primary_private: Option<Host>,
    pub primary_shared: Option<String>,
    pub backup: Option<Host>,
    pub backup_active: bool,
    pub backup_private: Option<Host>,
    pub backup_shared: Option<String>,
    /// Parsed, ignored by pulse (as in Piranha).
    pub heartbeat: bool,
    pub heartbeat_port: u16,
    #[serde(with = "seconds")]
    pub keepalive: Duration,
    #[serde(with = "seconds")]
    pub deadtime: Duration,
    /// Extension (piranha-rs): a file holding the key of authenticated heartbeats
    /// (HMAC-SHA256); `None`: Piranha's plain heartbeats.
    #[serde(default)]
    pub heartbeat_key_file: Option<String>,
    pub network: Network,
    pub nat_router: Option<InterfaceAddress>,
    pub nat_nmask: Option<Ipv4Addr>,
    pub reservation_conflict_action: Option<ReservationConflictAction>,
    pub debug_level: String,
    pub rsh_command: String,
    pub sync: bool,
    pub ipvsadm: String,
    pub active_cmd: Option<String>,
    pub inactive_cmd: Option<String>,
    /// Parsed as an integer by Piranha; 0 = off.
    pub monitor_links: i64,
    pub syncdaemon: bool,
    pub syncd_iface: String,
    pub syncd_id: u8,
    /// IPVS timeouts in seconds; 0 = leave the kernel's value unchanged.
    pub tcp_timeout: u32,
    pub tcpfin_timeout: u32,
    pub udp_timeout: u32,
    pub hard_shutdown: bool,
    /// Blocks are shared (`Arc`): a reload copies the unchanged blocks of the running config
    /// without copying their contents, and comparing a block with its copy is a pointer check.
    /// Change one with `Arc::make_mut`.
    pub virtual_servers: Vec<Arc<VirtualServer>>,
    pub failover_services: Vec<Arc<VirtualServer>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            serial_no: 0,
            service: ServiceType::Lvs,
            primary: None,
            primary_private: None,
            primary_shared: None,
            backup: None,
            backup_active: false,
            backup_private: None,
            backup_shared: None,
            heartbeat: false,
            heartbeat_port: 539,
            keepalive: Duration::from_secs(2),
            deadtime: Duration::from_secs(5),
            heartbeat_key_file: None,
            network: Network::Nat,
            nat_router: None,
            nat_nmask: None,
            reservation_conflict_action: None,
            debug_level: "NONE".to_string(),
            rsh_command: "rsh".to_string(),
            sync: false,
            ipvsadm: DEFAULT_IPVSADM.to_string(),
            active_cmd: None,
            inactive_cmd: None,
            monitor_links: 0,
            syncdaemon: false,
            syncd_iface: "eth0".to_string(),
            syncd_id: 0,
            tcp_timeout: 0,
            tcpfin_timeout: 0,
            udp_timeout: 0,
            hard_shutdown: true,
            virtual_servers: Vec::new(),
            failover_services: Vec::new(),
        }
    }
}

impl Config {
    /// The primary's heartbeat address on the private path (Piranha: = `primary` when not given).
    pub fn primary_private_or_public(&self) -> Option<&Host> {
        self.primary_private.as_ref().or(self.primary.as_ref())
    }

    /// The backup's heartbeat address on the private path (= `backup` when not given).
    pub fn backup_private_or_public(&self) -> Option<&Host> {
        self.backup_private.as_ref().or(self.backup.as_ref())
    }

    /// The blocks pulse runs: `virtual` for `service = lvs`, `failover` for `service = fos`.
    pub fn running_blocks(&self) -> &[Arc<VirtualServer>] {
        match self.service {
            ServiceType::Lvs => &self.virtual_servers,
            ServiceType::Fos => &self.failover_services,
        }
    }

    /// Counts for a one-line summary.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for vs in &self.virtual_servers {
            if vs.active {
                s.active_virtual += 1;
            } else {
                s.inactive_virtual += 1;
            }
            for rs in &vs.servers {
                if vs.active && rs.active {
                    s.active_real += 1;
                } else {
                    s.inactive_real += 1;
                }
            }
        }
        for fs in &self.failover_services {
            if fs.active {
                s.active_failover += 1;
            } else {
                s.inactive_failover += 1;
            }
        }
        s
    }
}

/// Numbers of blocks. A real server counts as active when it and its virtual server are both
/// active (that is when lvsd monitors it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub active_virtual: usize,
    pub inactive_virtual: usize,
    pub active_real: usize,
    pub inactive_real: usize,
    pub active_failover: usize,
    pub inactive_failover: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn count(n: usize, what: &str) -> String {
            format!("{n} {what}{}", if n == 1 { "" } else { "s" })
        }
        write!(
            f,
            "{} ({} active, {} inactive), {} ({} active, {} inactive)",
            count(
                self.active_virtual + self.inactive_virtual,
                "virtual server"
            ),
            self.active_virtual,
            self.inactive_virtual,
            count(self.active_real + self.inactive_real, "real server"),
            self.active_real,
            self.inactive_real
        )?;
        if self.active_failover + self.inactive_failover > 0 {
            write!(
                f,
                ", {} ({} active, {} inactive)",
                count(
                    self.active_failover + self.inactive_failover,
                    "failover service"
                ),
                self.active_failover,
                self.inactive_failover
            )?;
        }
        Ok(())
    }
}

/// A `virtual NAME { }` block (also used for `failover NAME { }`, which Piranha parsed with the
/// same code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServer {
    pub name: String,
    pub active: bool,
    /// The VIP and the device (alias) it lives on.
    pub address: Option<InterfaceAddress>,
    pub vip_nmask: Option<Ipv4Addr>,
    /// Firewall mark: the service is `-f MARK` instead of `-t|-u VIP:PORT`.
    pub fwmark: Option<u32>,
    pub port: u16,
    pub protocol: Protocol,
    pub scheduler: Scheduler,
    /// Persistence timeout in seconds; 0 = not persistent.
    pub persistent: u32,
    pub pmask: Option<Ipv4Addr>,
    pub send: Option<String>,
    pub expect: Option<String>,
    pub use_regex: bool,
    pub send_program: Option<String>,
    pub load_monitor: Option<String>,
    /// Seconds between checks, also the connect/read timeout.
    pub timeout: u32,
    /// Seconds a failed server must pass checks before it is re-added.
    pub reentry: u32,
    pub quiesce_server: bool,
    pub sorry_server: Option<Ipv4Addr>,
    pub client_monitor: String,
    /// FOS only.
    pub start_cmd: Option<String>,
    /// FOS only.
    pub stop_cmd: Option<String>,
    /// FOS/legacy.
    pub master: Option<Host>,
    /// FOS/legacy `dirs = [ a b ]`.
    pub dirs: Option<Vec<String>>,
    pub servers: Vec<RealServer>,
}

impl VirtualServer {
    /// A block with Piranha's defaults.
    pub fn new(name: impl Into<String>) -> Self {
        VirtualServer {
            name: name.into(),
            active: false,
            address: None,
            vip_nmask: None,
            fwmark: None,
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: Scheduler::Wlc,
            persistent: 0,
            pmask: None,
            send: None,
            expect: None,
            use_regex: false,
            send_program: None,
            load_monitor: None,
            timeout: 10,
            reentry: 180,
            quiesce_server: false,
            sorry_server: None,
            client_monitor: DEFAULT_CLIENT_MONITOR.to_string(),
            start_cmd: None,
            stop_cmd: None,
            master: None,
            dirs: None,
            servers: Vec::new(),
        }
    }

    /// The IPVS service this block programs.
    pub fn key(&self) -> Option<ServiceKey> {
        if let Some(mark) = self.fwmark {
            return Some(ServiceKey::Fwmark(mark));
        }
        let addr = self.address.as_ref()?.address.address;
        Some(ServiceKey::Address {
            protocol: self.protocol,
            address: addr,
            port: self.port,
        })
    }

    pub fn vip(&self) -> Option<Ipv4Addr> {
        self.address.as_ref().map(|a| a.address.address)
    }
}

/// Identity of an IPVS virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ServiceKey {
    Address {
        protocol: Protocol,
        address: Ipv4Addr,
        port: u16,
    },
    Fwmark(u32),
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Address {
                protocol,
                address,
                port,
            } => write!(f, "{} {}:{}", protocol.keyword(), address, port),
            ServiceKey::Fwmark(m) => write!(f, "fwmark {m}"),
        }
    }
}

/// A `server NAME { }` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServer {
    pub name: String,
    pub address: Option<Host>,
    pub active: bool,
    pub weight: u32,
    /// Piranha's default: the virtual server's port in force when the block was parsed.
    pub port: u16,
}

impl RealServer {
    /// A block with Piranha's defaults, inside a virtual server whose port is `virtual_port`.
    pub fn new(name: impl Into<String>, virtual_port: u16) -> Self {
        RealServer {
            name: name.into(),
            address: None,
            active: false,
            weight: 1,
            port: virtual_port,
        }
    }
}
