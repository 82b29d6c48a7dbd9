//! The generic netlink "IPVS" family: commands and attributes (`include/uapi/linux/ip_vs.h`),
//! encoded and decoded without any socket. This is the one place that knows the wire format.

use crate::model::*;
use netlink_packet_core::{
    DecodeError, Emitable, Nla, NlaBuffer, NlasIterator, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const FAMILY_NAME: &str = "IPVS";
pub const FAMILY_VERSION: u8 = 1;

/// `IPVS_CMD_*`.
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const NEW_DAEMON: u8 = 9;
    pub const DEL_DAEMON: u8 = 10;
    pub const GET_DAEMON: u8 = 11;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    pub const SET_INFO: u8 = 14;
    pub const GET_INFO: u8 = 15;
    pub const ZERO: u8 = 16;
    pub const FLUSH: u8 = 17;
}

/// `IPVS_CMD_ATTR_*` (top level of requests and of most replies).
pub mod attr {
    pub const SERVICE: u16 = 1;
    pub const DEST: u16 = 2;
    pub const DAEMON: u16 = 3;
    pub const TIMEOUT_TCP: u16 = 4;
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    pub const TIMEOUT_UDP: u16 = 6;
}

/// `IPVS_SVC_ATTR_*`.
pub mod svc {
    pub const AF: u16 = 1;
    pub const PROTOCOL: u16 = 2;
    pub const ADDR: u16 = 3;
    pub const PORT: u16 = 4;
    pub const FWMARK: u16 = 5;
    pub const SCHED_NAME: u16 = 6;
    pub const FLAGS: u16 = 7;
    pub const TIMEOUT: u16 = 8;
    pub const NETMASK: u16 = 9;
    pub const STATS: u16 = 10;
    pub const PE_NAME: u16 = 11;
    pub const STATS64: u16 = 12;
}

/// `IPVS_DEST_ATTR_*`.
pub mod dest {
    pub const ADDR: u16 = 1;
    pub const PORT: u16 = 2;
    pub const FWD_METHOD: u16 = 3;
    pub const WEIGHT: u16 = 4;
    pub const U_THRESH: u16 = 5;
    pub const L_THRESH: u16 = 6;
    pub const ACTIVE_CONNS: u16 = 7;
    pub const INACT_CONNS: u16 = 8;
    pub const PERSIST_CONNS: u16 = 9;
    pub const STATS: u16 = 10;
    pub const ADDR_FAMILY: u16 = 11;
    pub const STATS64: u16 = 12;
    pub const TUN_TYPE: u16 = 13;
    pub const TUN_PORT: u16 = 14;
    pub const TUN_FLAGS: u16 = 15;
}

/// `IPVS_DAEMON_ATTR_*`.
pub mod daemon {
    pub const STATE: u16 = 1;
    pub const MCAST_IFN: u16 = 2;
    pub const SYNC_ID: u16 = 3;
    pub const SYNC_MAXLEN: u16 = 4;
    pub const MCAST_GROUP: u16 = 5;
    pub const MCAST_GROUP6: u16 = 6;
    pub const MCAST_PORT: u16 = 7;
    pub const MCAST_TTL: u16 = 8;
}

/// `IPVS_STATS_ATTR_*`.
pub mod stats {
    pub const CONNS: u16 = 1;
    pub const INPKTS: u16 = 2;
    pub const OUTPKTS: u16 = 3;
    pub const INBYTES: u16 = 4;
    pub const OUTBYTES: u16 = 5;
    pub const CPS: u16 = 6;
    pub const INPPS: u16 = 7;
    pub const OUTPPS: u16 = 8;
    pub const INBPS: u16 = 9;
    pub const OUTBPS: u16 = 10;
}

/// `IPVS_INFO_ATTR_*` (top level of the GET_INFO reply).
pub mod info {
    pub const VERSION: u16 = 1;
    pub const CONN_TAB_SIZE: u16 = 2;
}

/// Scheduler and persistence-engine names are at most 15 bytes (+ NUL) in the kernel.
pub const NAME_MAX: usize = 15;

/// One attribute: its type and raw value (a nest's value is its encoded children).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl Attr {
    pub fn u8(kind: u16, v: u8) -> Attr {
        Attr {
            kind,
            value: vec![v],
        }
    }
    pub fn u16(kind: u16, v: u16) -> Attr {
        Attr {
            kind,
            value: v.to_ne_bytes().to_vec(),
        }
    }
    pub fn be16(kind: u16, v: u16) -> Attr {
        Attr {
            kind,
            value: v.to_be_bytes().to_vec(),
        }
    }
    pub fn u32(kind: u16, v: u32) -> Attr {
        Attr {
            kind,
            value: v.to_ne_bytes().to_vec(),
        }
    }
    pub fn string(kind: u16, s: &str) -> Attr {
        let mut value = s.as_bytes().to_vec();
        value.push(0);
        Attr { kind, value }
    }
    /// A 16-byte `union nf_inet_addr`.
    pub fn addr(kind: u16, a: &IpAddr) -> Attr {
        let mut value = vec![0u8; 16];
        match a {
            IpAddr::V4(v4) => value[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => value.copy_from_slice(&v6.octets()),
        }
        Attr { kind, value }
    }
    pub fn nest(kind: u16, children: &[Attr]) -> Attr {
        Attr {
            kind,
            value: encode_attrs(children),
        }
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        self.value.len()
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer[..self.value.len()].copy_from_slice(&self.value);
    }
}

/// Attributes as bytes (each padded to 4 bytes).
pub fn encode_attrs(attrs: &[Attr]) -> Vec<u8> {
    let mut out = vec![0u8; attrs.buffer_len()];
    attrs.emit(&mut out);
    out
}

/// Bytes as attributes (the flags bits of each type are dropped).
pub fn decode_attrs(buf: &[u8]) -> Result<Vec<Attr>, DecodeError> {
    let mut out = Vec::new();
    for nla in NlasIterator::new(buf) {
        let nla: NlaBuffer<&[u8]> = nla?;
        out.push(Attr {
            kind: nla.kind() & 0x3fff,
            value: nla.value().to_vec(),
        });
    }
    Ok(out)
}

/// One IPVS generic netlink message: a command and its top-level attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: u8,
    pub attrs: Vec<Attr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs: decode_attrs(buf)?,
        })
    }
}

impl IpvsMessage {
    pub fn new(cmd: u8, attrs: Vec<Attr>) -> IpvsMessage {
        IpvsMessage { cmd, attrs }
    }

    pub fn attr(&self, kind: u16) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.kind == kind)
    }
}

fn get(attrs: &[Attr], kind: u16) -> Option<&[u8]> {
    attrs
        .iter()
        .find(|a| a.kind == kind)
        .map(|a| a.value.as_slice())
}

fn need<'a>(attrs: &'a [Attr], kind: u16, what: &str) -> Result<&'a [u8], DecodeError> {
    get(attrs, kind).ok_or_else(|| DecodeError::from(format!("missing attribute {what}")))
}

fn u8_of(v: &[u8]) -> Result<u8, DecodeError> {
    v.first()
        .copied()
        .ok_or_else(|| DecodeError::from("short u8 attribute"))
}

fn u16_of(v: &[u8]) -> Result<u16, DecodeError> {
    let b: [u8; 2] = v
        .get(..2)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| DecodeError::from("short u16 attribute"))?;
    Ok(u16::from_ne_bytes(b))
}

fn be16_of(v: &[u8]) -> Result<u16, DecodeError> {
    Ok(u16::from_be(u16_of(v)?))
}

fn u32_of(v: &[u8]) -> Result<u32, DecodeError> {
    let b: [u8; 4] = v
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| DecodeError::from("short u32 attribute"))?;
    Ok(u32::from_ne_bytes(b))
}

fn u64_of(v: &[u8]) -> Result<u64, DecodeError> {
    let b: [u8; 8] = v
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| DecodeError::from("short u64 attribute"))?;
    Ok(u64::from_ne_bytes(b))
}

fn string_of(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn addr_of(v: &[u8], family: Family) -> Result<IpAddr, DecodeError> {
    match family {
        Family::Inet => {
            let b: [u8; 4] = v
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| DecodeError::from("short address"))?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        Family::Inet6 => {
            let b: [u8; 16] = v
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| DecodeError::from("short address"))?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
    }
}

fn family_of(v: &[u8]) -> Result<Family, DecodeError> {
    let n = u16_of(v)?;
    Family::from_number(n).ok_or_else(|| DecodeError::from(format!("unknown address family {n}")))
}

/// The attributes that identify a service (AF + fwmark, or AF + protocol + address + port).
pub fn service_id_attrs(id: &ServiceId) -> Vec<Attr> {
    match id {
        ServiceId::Address {
            protocol,
            addr,
            port,
        } => vec![
            Attr::u16(svc::AF, Family::of(addr).number()),
            Attr::u16(svc::PROTOCOL, protocol.number()),
            Attr::addr(svc::ADDR, addr),
            Attr::be16(svc::PORT, *port),
        ],
        ServiceId::Fwmark { family, mark } => vec![
            Attr::u16(svc::AF, family.number()),
            Attr::u32(svc::FWMARK, *mark),
        ],
    }
}

/// A full service nest (NEW_SERVICE / SET_SERVICE), flags sent with mask ~0 as ipvsadm does.
pub fn service_attrs(s: &Service) -> Vec<Attr> {
    let mut a = service_id_attrs(&s.id);
    a.push(Attr::string(svc::SCHED_NAME, &s.scheduler));
    if let Some(pe) = &s.pe_name {
        a.push(Attr::string(svc::PE_NAME, pe));
    }
    let mut flags = s.flags.to_ne_bytes().to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    a.push(Attr {
        kind: svc::FLAGS,
        value: flags,
    });
    a.push(Attr::u32(svc::TIMEOUT, s.timeout));
    let netmask = match s.id.family() {
        Family::Inet => s.netmask.to_be(),
        Family::Inet6 => s.netmask,
    };
    a.push(Attr::u32(svc::NETMASK, netmask));
    a
}

/// A service from a SERVICE nest's attributes.
pub fn decode_service(attrs: &[Attr]) -> Result<Service, DecodeError> {
    let family = family_of(need(attrs, svc::AF, "service AF")?)?;
    let id = match get(attrs, svc::FWMARK).map(u32_of).transpose()? {
        Some(mark) if mark != 0 => ServiceId::Fwmark { family, mark },
        _ => {
            let pn = u16_of(need(attrs, svc::PROTOCOL, "service protocol")?)?;
            let protocol = Protocol::from_number(pn)
                .ok_or_else(|| DecodeError::from(format!("unknown protocol {pn}")))?;
            ServiceId::Address {
                protocol,
                addr: addr_of(need(attrs, svc::ADDR, "service address")?, family)?,
                port: be16_of(need(attrs, svc::PORT, "service port")?)?,
            }
        }
    };
    let flags = match get(attrs, svc::FLAGS) {
        Some(v) => u32_of(v)?,
        None => 0,
    };
    let netmask = match get(attrs, svc::NETMASK).map(u32_of).transpose()? {
        Some(m) => match family {
            Family::Inet => u32::from_be(m),
            Family::Inet6 => m,
        },
        None => Service::new(id).netmask,
    };
    let stats = match (get(attrs, svc::STATS64), get(attrs, svc::STATS)) {
        (Some(v), _) => decode_stats(v, true)?,
        (None, Some(v)) => decode_stats(v, false)?,
        (None, None) => Stats::default(),
    };
    Ok(Service {
        id,
        scheduler: get(attrs, svc::SCHED_NAME)
            .map(string_of)
            .unwrap_or_default(),
        flags,
        timeout: get(attrs, svc::TIMEOUT)
            .map(u32_of)
            .transpose()?
            .unwrap_or(0),
        netmask,
        pe_name: get(attrs, svc::PE_NAME)
            .map(string_of)
            .filter(|s| !s.is_empty()),
        stats,
    })
}

/// Stats from a STATS (32-bit counters, 64-bit bytes) or STATS64 nest.
pub fn decode_stats(buf: &[u8], wide: bool) -> Result<Stats, DecodeError> {
    let attrs = decode_attrs(buf)?;
    let num = |kind: u16, always_wide: bool| -> Result<u64, DecodeError> {
        match get(&attrs, kind) {
            None => Ok(0),
            Some(v) if wide || always_wide => u64_of(v),
            Some(v) => u32_of(v).map(u64::from),
        }
    };
    Ok(Stats {
        conns: num(stats::CONNS, false)?,
        inpkts: num(stats::INPKTS, false)?,
        outpkts: num(stats::OUTPKTS, false)?,
        inbytes: num(stats::INBYTES, true)?,
        outbytes: num(stats::OUTBYTES, true)?,
        cps: num(stats::CPS, false)?,
        inpps: num(stats::INPPS, false)?,
        outpps: num(stats::OUTPPS, false)?,
        inbps: num(stats::INBPS, false)?,
        outbps: num(stats::OUTBPS, false)?,
    })
}

/// Encodes stats as a STATS64 nest's contents (for tests and a userspace backend).
pub fn stats64_attrs(s: &Stats) -> Vec<Attr> {
    let w = |kind, v: u64| Attr {
        kind,
        value: v.to_ne_bytes().to_vec(),
    };
    vec![
        w(stats::CONNS, s.conns),
        w(stats::INPKTS, s.inpkts),
        w(stats::OUTPKTS, s.outpkts),
        w(stats::INBYTES, s.inbytes),
        w(stats::OUTBYTES, s.outbytes),
        w(stats::CPS, s.cps),
        w(stats::INPPS, s.inpps),
        w(stats::OUTPPS, s.outpps),
        w(stats::INBPS, s.inbps),
        w(stats::OUTBPS, s.outbps),
    ]
}

/// A full DEST nest (NEW_DEST / SET_DEST); `identity_only` for DEL_DEST.
pub fn dest_attrs(d: &Destination, identity_only: bool) -> Vec<Attr> {
    let mut a = vec![
        Attr::u16(dest::ADDR_FAMILY, Family::of(&d.addr).number()),
        Attr::addr(dest::ADDR, &d.addr),
        Attr::be16(dest::PORT, d.port),
    ];
    if identity_only {
        return a;
    }
    a.push(Attr::u32(dest::FWD_METHOD, d.forward.number()));
    a.push(Attr::u32(dest::WEIGHT, d.weight as u32));
    a.push(Attr::u8(dest::TUN_TYPE, d.tun_type.number()));
    a.push(Attr::be16(dest::TUN_PORT, d.tun_port));
    a.push(Attr::u16(dest::TUN_FLAGS, d.tun_flags));
    a.push(Attr::u32(dest::U_THRESH, d.u_threshold));
    a.push(Attr::u32(dest::L_THRESH, d.l_threshold));
    a
}

/// A destination from a DEST nest's attributes; `service_family` when the nest has no family.
pub fn decode_dest(attrs: &[Attr], service_family: Family) -> Result<Destination, DecodeError> {
    let family = match get(attrs, dest::ADDR_FAMILY) {
        Some(v) if u16_of(v)? != 0 => family_of(v)?,
        _ => service_family,
    };
    let addr = addr_of(need(attrs, dest::ADDR, "destination address")?, family)?;
    let port = be16_of(need(attrs, dest::PORT, "destination port")?)?;
    let fwd = u32_of(need(attrs, dest::FWD_METHOD, "forwarding method")?)?;
    let n = |kind| {
        get(attrs, kind)
            .map(u32_of)
            .transpose()
            .map(|v| v.unwrap_or(0))
    };
    let stats = match (get(attrs, dest::STATS64), get(attrs, dest::STATS)) {
        (Some(v), _) => decode_stats(v, true)?,
        (None, Some(v)) => decode_stats(v, false)?,
        (None, None) => Stats::default(),
    };
    Ok(Destination {
        addr,
        port,
        forward: ForwardMethod::from_number(fwd)
            .ok_or_else(|| DecodeError::from(format!("unknown forwarding method {fwd}")))?,
        weight: n(dest::WEIGHT)? as i32,
        u_threshold: n(dest::U_THRESH)?,
        l_threshold: n(dest::L_THRESH)?,
        tun_type: match get(attrs, dest::TUN_TYPE) {
            Some(v) => TunnelType::from_number(u8_of(v)?).unwrap_or_default(),
            None => TunnelType::Ipip,
        },
        tun_port: get(attrs, dest::TUN_PORT)
            .map(be16_of)
            .transpose()?
            .unwrap_or(0),
        tun_flags: get(attrs, dest::TUN_FLAGS)
            .map(u16_of)
            .transpose()?
            .unwrap_or(0),
        active_conns: n(dest::ACTIVE_CONNS)?,
        inact_conns: n(dest::INACT_CONNS)?,
        persist_conns: n(dest::PERSIST_CONNS)?,
        stats,
    })
}

/// A DAEMON nest for NEW_DAEMON.
pub fn daemon_attrs(d: &Daemon) -> Vec<Attr> {
    let mut a = vec![
        Attr::u32(daemon::STATE, d.state.number()),
        Attr::string(daemon::MCAST_IFN, &d.mcast_ifn),
        Attr::u32(daemon::SYNC_ID, d.sync_id),
    ];
    if d.sync_maxlen != 0 {
        a.push(Attr::u16(daemon::SYNC_MAXLEN, d.sync_maxlen));
    }
    match d.mcast_group {
        Some(IpAddr::V4(g)) => a.push(Attr {
            kind: daemon::MCAST_GROUP,
            value: g.octets().to_vec(),
        }),
        Some(IpAddr::V6(g)) => a.push(Attr {
            kind: daemon::MCAST_GROUP6,
            value: g.octets().to_vec(),
        }),
        None => {}
    }
    if d.mcast_port != 0 {
        a.push(Attr::u16(daemon::MCAST_PORT, d.mcast_port));
    }
    if d.mcast_ttl != 0 {
        a.push(Attr::u8(daemon::MCAST_TTL, d.mcast_ttl));
    }
    a
}

/// A daemon from a DAEMON nest.
pub fn decode_daemon(attrs: &[Attr]) -> Result<Daemon, DecodeError> {
    let state = u32_of(need(attrs, daemon::STATE, "daemon state")?)?;
    let group = match (
        get(attrs, daemon::MCAST_GROUP),
        get(attrs, daemon::MCAST_GROUP6),
    ) {
        (Some(v), _) => Some(addr_of(v, Family::Inet)?),
        (None, Some(v)) => Some(addr_of(v, Family::Inet6)?),
        _ => None,
    };
    Ok(Daemon {
        state: DaemonState::from_number(state)
            .ok_or_else(|| DecodeError::from(format!("unknown daemon state {state}")))?,
        mcast_ifn: get(attrs, daemon::MCAST_IFN)
            .map(string_of)
            .unwrap_or_default(),
        sync_id: get(attrs, daemon::SYNC_ID)
            .map(u32_of)
            .transpose()?
            .unwrap_or(0),
        sync_maxlen: get(attrs, daemon::SYNC_MAXLEN)
            .map(u16_of)
            .transpose()?
            .unwrap_or(0),
        mcast_group: group.filter(|g| !g.is_unspecified()),
        mcast_port: get(attrs, daemon::MCAST_PORT)
            .map(u16_of)
            .transpose()?
            .unwrap_or(0),
        mcast_ttl: get(attrs, daemon::MCAST_TTL)
            .map(u8_of)
            .transpose()?
            .unwrap_or(0),
    })
}

/// The request for one change.
pub fn change_message(change: &crate::Change) -> IpvsMessage {
    use crate::Change::*;
    let svc_nest = |id: &ServiceId| Attr::nest(attr::SERVICE, &service_id_attrs(id));
    match change {
        AddService(s) => IpvsMessage::new(
            cmd::NEW_SERVICE,
            vec![Attr::nest(attr::SERVICE, &service_attrs(s))],
        ),
        EditService(s) => IpvsMessage::new(
            cmd::SET_SERVICE,
            vec![Attr::nest(attr::SERVICE, &service_attrs(s))],
        ),
        DeleteService(id) => IpvsMessage::new(cmd::DEL_SERVICE, vec![svc_nest(id)]),
        AddDestination(id, d) => IpvsMessage::new(
            cmd::NEW_DEST,
            vec![svc_nest(id), Attr::nest(attr::DEST, &dest_attrs(d, false))],
        ),
        EditDestination(id, d) => IpvsMessage::new(
            cmd::SET_DEST,
            vec![svc_nest(id), Attr::nest(attr::DEST, &dest_attrs(d, false))],
        ),
        DeleteDestination(id, d) => IpvsMessage::new(
            cmd::DEL_DEST,
            vec![svc_nest(id), Attr::nest(attr::DEST, &dest_attrs(d, true))],
        ),
        Flush => IpvsMessage::new(cmd::FLUSH, vec![]),
        Zero(None) => IpvsMessage::new(cmd::ZERO, vec![]),
        Zero(Some(id)) => IpvsMessage::new(cmd::ZERO, vec![svc_nest(id)]),
        SetTimeouts(t) => IpvsMessage::new(
            cmd::SET_CONFIG,
            vec![
                Attr::u32(attr::TIMEOUT_TCP, t.tcp),
                Attr::u32(attr::TIMEOUT_TCP_FIN, t.tcp_fin),
                Attr::u32(attr::TIMEOUT_UDP, t.udp),
            ],
        ),
        StartDaemon(d) => IpvsMessage::new(
            cmd::NEW_DAEMON,
            vec![Attr::nest(attr::DAEMON, &daemon_attrs(d))],
        ),
        StopDaemon(state) => IpvsMessage::new(
            cmd::DEL_DAEMON,
            vec![Attr::nest(
                attr::DAEMON,
                &[Attr::u32(daemon::STATE, state.number())],
            )],
        ),
    }
}

/// The operation a change is, for error texts.
pub fn change_operation(change: &crate::Change) -> crate::Operation {
    use crate::Change::*;
    use crate::Operation as O;
    match change {
        AddService(_) => O::AddService,
        EditService(_) => O::EditService,
        DeleteService(_) => O::DeleteService,
        AddDestination(..) => O::AddDestination,
        EditDestination(..) => O::EditDestination,
        DeleteDestination(..) => O::DeleteDestination,
        Flush => O::Flush,
        Zero(None) => O::Zero,
        Zero(Some(_)) => O::ZeroService,
        SetTimeouts(_) => O::SetTimeouts,
        StartDaemon(_) => O::StartDaemon,
        StopDaemon(_) => O::StopDaemon,
    }
}

/// The SERVICE nest of a NEW_SERVICE reply.
pub fn service_from_message(m: &IpvsMessage) -> Result<Service, DecodeError> {
    let nest = m
        .attr(attr::SERVICE)
        .ok_or_else(|| DecodeError::from("reply without a service"))?;
    decode_service(&decode_attrs(&nest.value)?)
}

/// The DEST nest of a NEW_DEST reply.
pub fn dest_from_message(m: &IpvsMessage, family: Family) -> Result<Destination, DecodeError> {
    let nest = m
        .attr(attr::DEST)
        .ok_or_else(|| DecodeError::from("reply without a destination"))?;
    decode_dest(&decode_attrs(&nest.value)?, family)
}

/// The DAEMON nest of a NEW_DAEMON reply.
pub fn daemon_from_message(m: &IpvsMessage) -> Result<Daemon, DecodeError> {
    let nest = m
        .attr(attr::DAEMON)
        .ok_or_else(|| DecodeError::from("reply without a daemon"))?;
    decode_daemon(&decode_attrs(&nest.value)?)
}

/// The GET_INFO reply.
pub fn info_from_message(m: &IpvsMessage) -> Result<Info, DecodeError> {
    Ok(Info {
        version: u32_of(&m.attr(info::VERSION).ok_or("no version")?.value)?,
        conn_tab_size: u32_of(&m.attr(info::CONN_TAB_SIZE).ok_or("no table size")?.value)?,
    })
}

/// The GET_CONFIG reply.
pub fn timeouts_from_message(m: &IpvsMessage) -> Result<Timeouts, DecodeError> {
    let t = |kind| {
        m.attr(kind)
            .map(|a| u32_of(&a.value))
            .transpose()
            .map(|v| v.unwrap_or(0))
    };
    Ok(Timeouts {
        tcp: t(attr::TIMEOUT_TCP)?,
        tcp_fin: t(attr::TIMEOUT_TCP_FIN)?,
        udp: t(attr::TIMEOUT_UDP)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Change;

    fn roundtrip_attrs(a: &[Attr]) -> Vec<Attr> {
        decode_attrs(&encode_attrs(a)).unwrap()
    }

    #[test]
    fn attributes_are_padded_and_decoded() {
        let a = vec![
            Attr::u8(1, 7),
            Attr::u16(2, 0x1234),
            Attr::string(3, "wlc"),
            Attr::nest(4, &[Attr::u32(1, 9)]),
        ];
        let bytes = encode_attrs(&a);
        assert_eq!(bytes.len() % 4, 0);
        // u8: 4-byte header + 1 byte + 3 padding.
        assert_eq!(&bytes[..8], &[5, 0, 1, 0, 7, 0, 0, 0]);
        assert_eq!(roundtrip_attrs(&a), a);
    }

    #[test]
    fn port_and_ipv4_netmask_are_big_endian() {
        let mut s = Service::new(ServiceId::Address {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        });
        s.netmask = 0xffff_ff00;
        let a = service_attrs(&s);
        assert_eq!(get(&a, svc::PORT).unwrap(), &[0, 80]);
        assert_eq!(get(&a, svc::NETMASK).unwrap(), &[255, 255, 255, 0]);
        assert_eq!(get(&a, svc::ADDR).unwrap()[..4], [10, 0, 0, 1]);
        assert_eq!(get(&a, svc::ADDR).unwrap().len(), 16);
        assert_eq!(get(&a, svc::SCHED_NAME).unwrap(), b"wlc\0");
        assert_eq!(get(&a, svc::FLAGS).unwrap().len(), 8);
    }

    #[test]
    fn services_round_trip() {
        let ids = [
            ServiceId::Address {
                protocol: Protocol::Udp,
                addr: "192.0.2.1".parse().unwrap(),
                port: 53,
            },
            ServiceId::Address {
                protocol: Protocol::Sctp,
                addr: "2001:db8::1".parse().unwrap(),
                port: 9,
            },
            ServiceId::Fwmark {
                family: Family::Inet,
                mark: 4_294_967_295,
            },
            ServiceId::Fwmark {
                family: Family::Inet6,
                mark: 5,
            },
        ];
        for id in ids {
            let mut s = Service::new(id);
            s.scheduler = "sh".into();
            s.flags = flags::PERSISTENT | flags::SH_FALLBACK | flags::ONEPACKET;
            s.timeout = 600;
            s.pe_name = Some("sip".into());
            s.netmask = if id.family() == Family::Inet {
                0xffff_0000
            } else {
                64
            };
            let back = decode_service(&roundtrip_attrs(&service_attrs(&s))).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn stats_32_and_64_bit() {
        let s = Stats {
            conns: 1,
            inpkts: 2,
            outpkts: 3,
            inbytes: 1 << 40,
            outbytes: 5,
            cps: 6,
            inpps: 7,
            outpps: 8,
            inbps: 9,
            outbps: 10,
        };
        assert_eq!(
            decode_stats(&encode_attrs(&stats64_attrs(&s)), true).unwrap(),
            s
        );
        // STATS: u32 counters, u64 bytes.
        let narrow = vec![
            Attr::u32(stats::CONNS, 1),
            Attr {
                kind: stats::INBYTES,
                value: (1u64 << 40).to_ne_bytes().to_vec(),
            },
        ];
        let d = decode_stats(&encode_attrs(&narrow), false).unwrap();
        assert_eq!((d.conns, d.inbytes), (1, 1 << 40));
    }

    #[test]
    fn destinations_round_trip_with_tunnel_options_and_mixed_family() {
        let mut d = Destination::new("2001:db8::5".parse().unwrap(), 8080);
        d.forward = ForwardMethod::Tunnel;
        d.weight = i32::MAX;
        d.u_threshold = 100;
        d.l_threshold = 10;
        d.tun_type = TunnelType::Gue;
        d.tun_port = 6080;
        d.tun_flags = tun_flags::REMCSUM;
        let back = decode_dest(&roundtrip_attrs(&dest_attrs(&d, false)), Family::Inet).unwrap();
        assert_eq!(back, d);
        let a = dest_attrs(&d, false);
        assert_eq!(get(&a, dest::TUN_PORT).unwrap(), &6080u16.to_be_bytes());
        // Without ADDR_FAMILY the service's family applies.
        let v4 = Destination::new("10.0.0.9".parse().unwrap(), 80);
        let attrs: Vec<Attr> = dest_attrs(&v4, false)
            .into_iter()
            .filter(|a| a.kind != dest::ADDR_FAMILY)
            .collect();
        assert_eq!(decode_dest(&attrs, Family::Inet).unwrap(), v4);
        assert_eq!(dest_attrs(&v4, true).len(), 3);
    }

    #[test]
    fn daemons_round_trip() {
        let d = Daemon {
            state: DaemonState::Backup,
            mcast_ifn: "dummy0".into(),
            sync_id: 7,
            sync_maxlen: 1472,
            mcast_group: Some("224.0.0.81".parse().unwrap()),
            mcast_port: 8848,
            mcast_ttl: 1,
        };
        assert_eq!(
            decode_daemon(&roundtrip_attrs(&daemon_attrs(&d))).unwrap(),
            d
        );
        let d6 = Daemon {
            mcast_group: Some("ff02::81".parse().unwrap()),
            ..d
        };
        assert_eq!(
            decode_daemon(&roundtrip_attrs(&daemon_attrs(&d6))).unwrap(),
            d6
        );
    }

    #[test]
    fn change_messages_have_the_right_commands_and_nests() {
        let id = ServiceId::Fwmark {
            family: Family::Inet,
            mark: 1,
        };
        let d = Destination::new("10.0.0.2".parse().unwrap(), 0);
        let cases = [
            (
                Change::AddService(Service::new(id)),
                cmd::NEW_SERVICE,
                vec![attr::SERVICE],
            ),
            (
                Change::EditService(Service::new(id)),
                cmd::SET_SERVICE,
                vec![attr::SERVICE],
            ),
            (
                Change::DeleteService(id),
                cmd::DEL_SERVICE,
                vec![attr::SERVICE],
            ),
            (
                Change::AddDestination(id, d.clone()),
                cmd::NEW_DEST,
                vec![attr::SERVICE, attr::DEST],
            ),
            (
                Change::EditDestination(id, d.clone()),
                cmd::SET_DEST,
                vec![attr::SERVICE, attr::DEST],
            ),
            (
                Change::DeleteDestination(id, d),
                cmd::DEL_DEST,
                vec![attr::SERVICE, attr::DEST],
            ),
            (Change::Flush, cmd::FLUSH, vec![]),
            (Change::Zero(None), cmd::ZERO, vec![]),
            (Change::Zero(Some(id)), cmd::ZERO, vec![attr::SERVICE]),
            (
                Change::SetTimeouts(Timeouts {
                    tcp: 1,
                    tcp_fin: 2,
                    udp: 3,
                }),
                cmd::SET_CONFIG,
                vec![attr::TIMEOUT_TCP, attr::TIMEOUT_TCP_FIN, attr::TIMEOUT_UDP],
            ),
            (
                Change::StopDaemon(DaemonState::Master),
                cmd::DEL_DAEMON,
                vec![attr::DAEMON],
            ),
        ];
        for (change, c, kinds) in cases {
            let m = change_message(&change);
            assert_eq!(m.cmd, c, "{change:?}");
            assert_eq!(m.attrs.iter().map(|a| a.kind).collect::<Vec<_>>(), kinds);
            // Every message survives encode/decode.
            let mut buf = vec![0u8; m.buffer_len()];
            m.emit(&mut buf);
            assert_eq!(decode_attrs(&buf).unwrap(), m.attrs);
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let full = encode_attrs(&service_attrs(&Service::new(ServiceId::Address {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        })));
        for n in 0..full.len() {
            let _ = decode_attrs(&full[..n]).map(|a| decode_service(&a));
        }
        let short_port = vec![
            Attr::u16(svc::AF, 2),
            Attr::u16(svc::PROTOCOL, 6),
            Attr::addr(svc::ADDR, &"10.0.0.1".parse().unwrap()),
            Attr::u8(svc::PORT, 1),
        ];
        assert!(decode_service(&short_port).is_err());
        assert!(decode_service(&[Attr::u16(svc::AF, 99)]).is_err());
    }
}
