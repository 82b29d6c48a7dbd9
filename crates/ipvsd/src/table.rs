//! The IPVS table: services, their destinations and schedulers, persistence templates, the
//! trash of deleted destinations, timeouts and sync-daemon settings, changed with the kernel's
//! rules and errno values (`ip_vs_ctl.c`), and the scheduling of new connections
//! (`ip_vs_schedule`, `ip_vs_sched_persist` of `ip_vs_core.c`). No I/O: the forwarding engine
//! and the control server call in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use ipvs::error::{EEXIST, EINVAL, ENODEV, ENOENT, ERANGE, ESRCH};
use ipvs::userspace::{WireError, EPROTONOSUPPORT};
use ipvs::{
    flags, Change, Connection, Daemon, DaemonState, Destination, Family, ForwardMethod, Info,
    Protocol, ServiceEntry, ServiceId, Timeouts, TunnelType,
};

use crate::dest::{Binding, Dest};
use crate::sched::{self, Packet, Scheduler};
use crate::stats::StatsCell;

/// What `GET_INFO` answers: version 1.2.1 and the kernel's default connection table size, so
/// that `ipvsadm -L` prints the kernel's header.
pub const INFO: Info = Info {
    version: 0x010201,
    conn_tab_size: 4096,
};

const FTP_PORT: u16 = 21;
/// A persistence template still controlling connections when it expires lives 60 s more.
const TEMPLATE_RETRY_MS: u64 = 60_000;
/// `IP_VS_DEST_TRASH_PERIOD`.
const TRASH_PERIOD_MS: u64 = 120_000;
/// `INT_MAX / HZ` with Debian's HZ=250: larger timeouts are EINVAL.
const MAX_TIMEOUT: u32 = (i32::MAX / 250) as u32;

/// The three tunable timeouts, read by the forwarding threads.
#[derive(Debug)]
pub struct SharedTimeouts {
    tcp: AtomicU32,
    tcp_fin: AtomicU32,
    udp: AtomicU32,
}

impl Default for SharedTimeouts {
    fn default() -> Self {
        SharedTimeouts {
            tcp: AtomicU32::new(900),
            tcp_fin: AtomicU32::new(120),
            udp: AtomicU32::new(300),
        }
    }
}

impl SharedTimeouts {
    pub fn get(&self) -> Timeouts {
        Timeouts {
            tcp: self.tcp.load(Relaxed),
            tcp_fin: self.tcp_fin.load(Relaxed),
            udp: self.udp.load(Relaxed),
        }
    }
}

/// Where a persistence template points connections of one client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TemplateKey {
    protocol: u16,
    caddr: IpAddr,
    vaddr: IpAddr,
    vport: u16,
}

/// A persistence template (`IP_VS_CONN_F_TEMPLATE`): counted in the destination's
/// PersistConn while it lives.
#[derive(Debug)]
pub struct Template {
    key: TemplateKey,
    binding: Binding,
    dport: u16,
    timeout_ms: u64,
    expires_ms: AtomicU64,
    n_control: AtomicU32,
    assured: AtomicBool,
    /// Invalidated (its destination left): never found again, listed with ports 65535.
    invalid: AtomicBool,
}

impl Template {
    fn listing(&self, now_ms: u64) -> Connection {
        let invalid = self.invalid.load(Relaxed);
        Connection {
            protocol: self.key.protocol,
            caddr: self.key.caddr,
            cport: 0,
            vaddr: self.key.vaddr,
            vport: if invalid { 0xffff } else { self.key.vport },
            daddr: self.binding.dest.addr,
            dport: if invalid { 0xffff } else { self.dport },
            state: if self.assured.load(Relaxed) {
                "ASSURED".into()
            } else {
                "NONE".into()
            },
            expires: (self.expires_ms.load(Relaxed).saturating_sub(now_ms) / 1000) as u32,
            pe_name: None,
            pe_data: None,
        }
    }

    /// Expired now: gone, or 60 s more while it still controls connections.
    fn expired(&self, now_ms: u64) -> bool {
        if now_ms < self.expires_ms.load(Relaxed) {
            return false;
        }
        if self.n_control.load(Relaxed) > 0 {
            self.expires_ms.store(now_ms + TEMPLATE_RETRY_MS, Relaxed);
            return false;
        }
        true
    }
}

/// A connection controlled by a template (`ip_vs_control_add`); released when dropped.
#[derive(Debug)]
pub struct Controlled(Arc<Template>);

impl Controlled {
    /// The connection reached ESTABLISHED (`ip_vs_control_assure_ct`).
    pub fn assure(&self) {
        self.0.assured.store(true, Relaxed);
    }
}

impl Drop for Controlled {
    fn drop(&mut self) {
        self.0.n_control.fetch_sub(1, Relaxed);
    }
}

/// A scheduled connection: its destination binding (counted inactive until the state machine
/// says otherwise), the port to connect to, its template.
#[derive(Debug)]
pub struct NewConn {
    pub binding: Binding,
    pub dport: u16,
    pub template: Option<Controlled>,
}

/// A service's settings and state under its lock.
#[derive(Debug)]
pub struct Inner {
    pub scheduler: String,
    pub flags: u32,
    pub timeout: u32,
    pub netmask: u32,
    pub pe_name: Option<String>,
    /// The kernel's order: most recently added first.
    pub dests: Vec<Arc<Dest>>,
    sched: Option<Scheduler>,
    templates: HashMap<TemplateKey, Arc<Template>>,
    /// Invalidated templates, until they expire.
    stale: Vec<Arc<Template>>,
}

/// A virtual service.
#[derive(Debug)]
pub struct Service {
    pub id: ServiceId,
    /// Unique for the daemon's life.
    pub uid: u64,
    pub stats: StatsCell,
    inner: Mutex<Inner>,
}

fn mask_addr(addr: &IpAddr, netmask: u32) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4((u32::from(*a) & netmask).into()),
        IpAddr::V6(a) => {
            let plen = netmask.min(128);
            let bits = u128::from(*a);
            let mask = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl Service {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the proxy can serve it: TCP or UDP on a real port (fwmark, SCTP and port-0
    /// services are table entries only).
    pub fn forwardable(&self) -> bool {
        matches!(
            self.id,
            ServiceId::Address {
                protocol: Protocol::Tcp | Protocol::Udp,
                port: 1..,
                ..
            }
        )
    }

    /// The service as listings show it.
    pub fn listing(&self) -> ipvs::Service {
        let i = self.lock();
        self.listing_locked(&i)
    }

    fn listing_locked(&self, i: &Inner) -> ipvs::Service {
        ipvs::Service {
            id: self.id,
            scheduler: i.scheduler.clone(),
            flags: i.flags | flags::HASHED,
            timeout: i.timeout,
            netmask: i.netmask,
            pe_name: i.pe_name.clone(),
            stats: self.stats.read(),
        }
    }

    /// The destinations as listings show them, in the kernel's order.
    pub fn dest_listing(&self, with_stats: bool) -> Vec<Destination> {
        self.lock()
            .dests
            .iter()
            .map(|d| d.listing(with_stats))
            .collect()
    }

    /// Picks the destination of a new connection from `client` to `vaddr`:`vport`
    /// (`ip_vs_schedule`, with persistence `ip_vs_sched_persist`), binds it and counts it.
    /// `None`: no destination available.
    pub fn schedule(
        &self,
        protocol: u16,
        client: (IpAddr, u16),
        vaddr: IpAddr,
        vport: u16,
        now_ms: u64,
    ) -> Option<NewConn> {
        let svc_port = match self.id {
            ServiceId::Address { port, .. } => port,
            ServiceId::Fwmark { .. } => 0,
        };
        let pkt = Packet {
            saddr: client.0,
            sport: client.1,
            daddr: vaddr,
            protocol,
        };
        let mut guard = self.lock();
        let i = &mut *guard;
        let nc = if i.flags & flags::PERSISTENT != 0 {
            let snet = mask_addr(&client.0, i.netmask);
            let (tproto, tvaddr, tvport) = if vport == svc_port {
                (
                    protocol,
                    vaddr,
                    if svc_port != FTP_PORT { vport } else { 0 },
                )
            } else if let ServiceId::Fwmark { mark, .. } = self.id {
                (0, IpAddr::V4(mark.into()), 0)
            } else {
                (protocol, vaddr, 0)
            };
            let key = TemplateKey {
                protocol: tproto,
                caddr: snet,
                vaddr: tvaddr,
                vport: tvport,
            };
            let existing = i.templates.get(&key).cloned();
            let tpl = match existing {
                Some(t) if t.binding.dest.available() => t,
                other => {
                    if let Some(t) = other {
                        // ip_vs_check_template: the destination is gone, invalidate.
                        t.invalid.store(true, Relaxed);
                        i.templates.remove(&key);
                        i.stale.push(t);
                    }
                    let dest = i
                        .sched
                        .as_mut()?
                        .schedule(i.flags, &i.dests, &pkt, now_ms)?;
                    let dport = if vport == svc_port && svc_port != FTP_PORT {
                        dest.port
                    } else {
                        0
                    };
                    let timeout_ms = i.timeout as u64 * 1000;
                    let t = Arc::new(Template {
                        key,
                        binding: Binding::template(dest),
                        dport,
                        timeout_ms,
                        expires_ms: AtomicU64::new(now_ms + timeout_ms),
                        n_control: AtomicU32::new(0),
                        assured: AtomicBool::new(false),
                        invalid: AtomicBool::new(false),
                    });
                    i.templates.insert(key, t.clone());
                    t
                }
            };
            let dest = tpl.binding.dest.clone();
            let dport = if vport == svc_port && dest.port != 0 {
                dest.port
            } else {
                vport
            };
            tpl.n_control.fetch_add(1, Relaxed);
            // ip_vs_conn_put(ct): the template's timer starts again.
            tpl.expires_ms.store(now_ms + tpl.timeout_ms, Relaxed);
            NewConn {
                binding: Binding::conn(dest),
                dport,
                template: Some(Controlled(tpl)),
            }
        } else {
            if !matches!(self.id, ServiceId::Fwmark { .. }) && vport != svc_port {
                return None;
            }
            let dest = i
                .sched
                .as_mut()?
                .schedule(i.flags, &i.dests, &pkt, now_ms)?;
            let dport = if dest.port != 0 { dest.port } else { vport };
            NewConn {
                binding: Binding::conn(dest),
                dport,
                template: None,
            }
        };
        drop(guard);
        // ip_vs_conn_stats
        nc.binding.dest.stats.add_conn();
        self.stats.add_conn();
        Some(nc)
    }

    /// The 1-second housekeeping: expired templates, the schedulers' timers.
    pub fn periodic(&self, now_ms: u64) {
        let mut i = self.lock();
        i.templates.retain(|_, t| !t.expired(now_ms));
        i.stale.retain(|t| !t.expired(now_ms));
        if let Some(s) = i.sched.as_mut() {
            s.periodic(now_ms);
        }
    }

    /// The templates, as `ipvsadm -c` lists them.
    pub fn template_listing(&self, now_ms: u64) -> Vec<Connection> {
        let i = self.lock();
        i.templates
            .values()
            .chain(i.stale.iter())
            .map(|t| t.listing(now_ms))
            .collect()
    }

    /// The estimator tick for the service and its destinations.
    pub fn tick(&self) {
        self.stats.tick();
        for d in &self.lock().dests {
            d.stats.tick();
        }
    }
}

/// The sync-daemon defaults the kernel fills in when one starts.
fn daemon_defaults(mut d: Daemon, mtu: Option<u32>) -> Daemon {
    let v6 = matches!(d.mcast_group, Some(IpAddr::V6(_)));
    if d.mcast_group.is_none() {
        d.mcast_group = Some(IpAddr::V4([224, 0, 0, 81].into()));
    }
    if d.mcast_port == 0 {
        d.mcast_port = 8848;
    }
    if d.mcast_ttl == 0 {
        d.mcast_ttl = 1;
    }
    let hlen: u32 = if v6 { 48 } else { 28 };
    let max = mtu
        .unwrap_or(1500)
        .saturating_sub(hlen)
        .clamp(1, u16::MAX as u32);
    d.sync_maxlen = if d.sync_maxlen == 0 {
        max as u16
    } else {
        (d.sync_maxlen as u32).clamp(1, max) as u16
    };
    d
}

/// What a change means for the forwarding engine.
#[derive(Debug)]
pub enum Effect {
    None,
    /// Listen for this service.
    Added(Arc<Service>),
    /// Stop listening for these services.
    Removed(Vec<Arc<Service>>),
}

/// The outside facts the table asks about (interfaces, for the sync daemon).
pub trait Host {
    /// The MTU of the interface, `None` if there is none of that name.
    fn interface_mtu(&self, name: &str) -> Option<u32>;
}

/// The interfaces of this machine, from /sys/class/net.
pub struct SystemHost;

impl Host for SystemHost {
    fn interface_mtu(&self, name: &str) -> Option<u32> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        let text = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok()?;
        text.trim().parse().ok()
    }
}

/// The whole table.
pub struct Table {
    services: Vec<Arc<Service>>,
    trash: Vec<Arc<Dest>>,
    /// Templates of deleted services, until they expire.
    orphans: Vec<Arc<Template>>,
    pub timeouts: Arc<SharedTimeouts>,
    daemons: Vec<Daemon>,
    next_id: u64,
    host: Box<dyn Host + Send>,
}

fn err(errno: i32) -> WireError {
    WireError::new(errno)
}

/// The refusal of a forwarding method a proxy cannot do.
fn check_forward(d: &Destination) -> Result<(), WireError> {
    let what = match d.forward {
        ForwardMethod::Masq | ForwardMethod::Local => return Ok(()),
        ForwardMethod::Route => "direct routing (-g)",
        ForwardMethod::Tunnel => "tunnelling (-i)",
        ForwardMethod::Bypass => "bypass",
    };
    Err(WireError::with_detail(
        EPROTONOSUPPORT,
        format!(
            "ipvsd (userspace IPVS) cannot forward by {what}: only masquerading (-m) is \
             possible without the kernel's IPVS"
        ),
    ))
}

/// `inet_addr_type` must say local or unicast (and IPv6 unicast, not link-local).
fn unicast(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => {
            !(a.is_unspecified() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

impl Table {
    pub fn new(host: Box<dyn Host + Send>) -> Table {
        Table {
            services: Vec::new(),
            trash: Vec::new(),
            orphans: Vec::new(),
            timeouts: Arc::new(SharedTimeouts::default()),
            daemons: Vec::new(),
            next_id: 1,
            host,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn find(&self, id: &ServiceId) -> Option<&Arc<Service>> {
        self.services.iter().find(|s| s.id == *id)
    }

    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    fn check_service(s: &ipvs::Service) -> Result<(), WireError> {
        if s.scheduler != "none" && !sched::NAMES.contains(&s.scheduler.as_str()) {
            return Err(err(ENOENT));
        }
        if let Some(pe) = &s.pe_name {
            if !pe.is_empty() && pe != "sip" {
                return Err(err(ENOENT));
            }
        }
        if s.id.family() == Family::Inet6 && !(1..=128).contains(&s.netmask) {
            return Err(err(EINVAL));
        }
        Ok(())
    }

    fn check_dest(d: &Destination) -> Result<(), WireError> {
        if d.weight < 0 || d.l_threshold > d.u_threshold {
            return Err(err(ERANGE));
        }
        if d.tun_type == TunnelType::Gue && d.tun_port == 0 {
            return Err(err(EINVAL));
        }
        Ok(())
    }

    /// Applies one change with the kernel's checks and errors.
    pub fn apply(&mut self, change: &Change) -> Result<Effect, WireError> {
        match change {
            Change::AddService(s) => {
                if self.find(&s.id).is_some() {
                    return Err(err(EEXIST));
                }
                Self::check_service(s)?;
                let svc = Arc::new(Service {
                    id: s.id,
                    uid: self.next_id(),
                    stats: StatsCell::default(),
                    inner: Mutex::new(Inner {
                        scheduler: s.scheduler.clone(),
                        flags: s.flags & !flags::HASHED,
                        timeout: s.timeout,
                        netmask: s.netmask,
                        pe_name: s.pe_name.clone().filter(|p| !p.is_empty()),
                        dests: Vec::new(),
                        sched: Scheduler::new(&s.scheduler, &[]),
                        templates: HashMap::new(),
                        stale: Vec::new(),
                    }),
                });
                self.services.push(svc.clone());
                Ok(Effect::Added(svc))
            }
            Change::EditService(s) => {
                let svc = self.find(&s.id).ok_or(err(ESRCH))?.clone();
                Self::check_service(s)?;
                let mut i = svc.lock();
                if i.scheduler != s.scheduler {
                    let dests = i.dests.clone();
                    i.sched = Scheduler::new(&s.scheduler, &dests);
                    i.scheduler = s.scheduler.clone();
                }
                i.flags = s.flags | flags::HASHED;
                i.timeout = s.timeout;
                i.netmask = s.netmask;
                i.pe_name = s.pe_name.clone().filter(|p| !p.is_empty());
                Ok(Effect::None)
            }
            Change::DeleteService(id) => {
                let pos = self
                    .services
                    .iter()
                    .position(|s| s.id == *id)
                    .ok_or(err(ESRCH))?;
                let svc = self.services.remove(pos);
                self.retire(&svc);
                Ok(Effect::Removed(vec![svc]))
            }
            Change::Flush => {
                let all = std::mem::take(&mut self.services);
                for s in &all {
                    self.retire(s);
                }
                Ok(Effect::Removed(all))
            }
            Change::AddDestination(id, d) => {
                let svc = self.find(id).ok_or(err(ESRCH))?.clone();
                self.check_mixed(&svc, d)?;
                Self::check_dest(d)?;
                let mut i = svc.lock();
                if i.dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                    return Err(err(EEXIST));
                }
                let from_trash = self
                    .trash
                    .iter()
                    .position(|t| t.addr == d.addr && t.port == d.port && t.svc_id == svc.id);
                if from_trash.is_none() && !unicast(&d.addr) {
                    return Err(err(EINVAL));
                }
                check_forward(d)?;
                let dest = match from_trash {
                    Some(p) => {
                        let t = self.trash.remove(p);
                        if t.svc_uid.load(Relaxed) != svc.uid {
                            t.stats.zero();
                            t.svc_uid.store(svc.uid, Relaxed);
                        }
                        t.idle_start.store(0, Relaxed);
                        t.estimating.store(true, Relaxed);
                        t.update(d, true);
                        t
                    }
                    None => {
                        let id = self.next_id();
                        Arc::new(Dest::new(id, svc.id, svc.uid, d))
                    }
                };
                i.dests.insert(0, dest);
                let Inner { sched, dests, .. } = &mut *i;
                if let Some(s) = sched {
                    s.dest_added(dests);
                }
                Ok(Effect::None)
            }
            Change::EditDestination(id, d) => {
                let svc = self.find(id).ok_or(err(ESRCH))?.clone();
                self.check_mixed(&svc, d)?;
                Self::check_dest(d)?;
                let mut i = svc.lock();
                let dest = i
                    .dests
                    .iter()
                    .find(|x| x.addr == d.addr && x.port == d.port)
                    .cloned()
                    .ok_or(err(ENOENT))?;
                check_forward(d)?;
                dest.update(d, false);
                let Inner { sched, dests, .. } = &mut *i;
                if let Some(s) = sched {
                    s.dest_updated(dests);
                }
                Ok(Effect::None)
            }
            Change::DeleteDestination(id, d) => {
                let svc = self.find(id).ok_or(err(ESRCH))?.clone();
                let mut i = svc.lock();
                let pos = i
                    .dests
                    .iter()
                    .position(|x| x.addr == d.addr && x.port == d.port)
                    .ok_or(err(ENOENT))?;
                let dest = i.dests.remove(pos);
                dest.unlink();
                let Inner { sched, dests, .. } = &mut *i;
                if let Some(s) = sched {
                    s.dest_removed(dests, &dest, pos);
                }
                drop(i);
                self.trash_dest(dest);
                Ok(Effect::None)
            }
            Change::Zero(None) => {
                for s in &self.services {
                    for d in &s.lock().dests {
                        d.stats.zero();
                    }
                    s.stats.zero();
                }
                Ok(Effect::None)
            }
            Change::Zero(Some(id)) => {
                let svc = self.find(id).ok_or(err(ESRCH))?;
                for d in &svc.lock().dests {
                    d.stats.zero();
                }
                svc.stats.zero();
                Ok(Effect::None)
            }
            Change::SetTimeouts(t) => {
                if t.tcp > MAX_TIMEOUT || t.tcp_fin > MAX_TIMEOUT || t.udp > MAX_TIMEOUT {
                    return Err(err(EINVAL));
                }
                let cur = &self.timeouts;
                if t.tcp != 0 {
                    cur.tcp.store(t.tcp, Relaxed);
                }
                if t.tcp_fin != 0 {
                    cur.tcp_fin.store(t.tcp_fin, Relaxed);
                }
                if t.udp != 0 {
                    cur.udp.store(t.udp, Relaxed);
                }
                Ok(Effect::None)
            }
            Change::StartDaemon(d) => {
                let mtu = self.host.interface_mtu(&d.mcast_ifn).ok_or(err(ENODEV))?;
                if self.daemons.iter().any(|x| x.state == d.state) {
                    return Err(err(EEXIST));
                }
                self.daemons.push(daemon_defaults(d.clone(), Some(mtu)));
                self.daemons.sort_by_key(|x| x.state.number());
                Ok(Effect::None)
            }
            Change::StopDaemon(state) => {
                let pos = self
                    .daemons
                    .iter()
                    .position(|x| x.state == *state)
                    .ok_or(err(ESRCH))?;
                self.daemons.remove(pos);
                Ok(Effect::None)
            }
        }
    }

    /// Mixed address families are the kernel's EINVAL except for tunnels.
    fn check_mixed(&self, svc: &Service, d: &Destination) -> Result<(), WireError> {
        if Family::of(&d.addr) != svc.id.family() && d.forward != ForwardMethod::Tunnel {
            return Err(err(EINVAL));
        }
        Ok(())
    }

    fn trash_dest(&mut self, dest: Arc<Dest>) {
        dest.estimating.store(false, Relaxed);
        dest.idle_start.store(0, Relaxed);
        self.trash.insert(0, dest);
    }

    /// A deleted service: destinations to the trash, templates kept until they expire.
    fn retire(&mut self, svc: &Arc<Service>) {
        let mut i = svc.lock();
        let dests = std::mem::take(&mut i.dests);
        let tpl: Vec<_> = i.templates.drain().map(|(_, t)| t).collect();
        let stale = std::mem::take(&mut i.stale);
        i.sched = None;
        drop(i);
        for d in dests {
            d.unlink();
            self.trash_dest(d);
        }
        self.orphans.extend(tpl);
        self.orphans.extend(stale);
    }

    /// The 1-second housekeeping; `now_ms` on the daemon clock.
    pub fn periodic(&mut self, now_ms: u64) {
        for s in &self.services {
            s.periodic(now_ms);
        }
        self.orphans.retain(|t| !t.expired(now_ms));
        // The trash keeps a destination while anything (a connection, a template, a
        // scheduler's cache) holds it, then 120 s more (`ip_vs_dest_trash_expire`).
        self.trash.retain(|d| {
            if Arc::strong_count(d) > 1 {
                d.idle_start.store(0, Relaxed);
                return true;
            }
            let start = d.idle_start.load(Relaxed);
            if start == 0 {
                d.idle_start.store(now_ms.max(1), Relaxed);
                return true;
            }
            now_ms < start + TRASH_PERIOD_MS
        });
    }

    /// The estimator's 2-second tick.
    pub fn tick(&self) {
        for s in &self.services {
            s.tick();
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts.get()
    }

    pub fn daemons(&self) -> Vec<Daemon> {
        self.daemons.clone()
    }

    pub fn daemon_running(&self, state: DaemonState) -> bool {
        self.daemons.iter().any(|d| d.state == state)
    }

    /// Every service with its destinations.
    pub fn table(&self, with_stats: bool) -> Vec<ServiceEntry> {
        self.services
            .iter()
            .map(|s| {
                let i = s.lock();
                ServiceEntry {
                    service: s.listing_locked(&i),
                    destinations: i.dests.iter().map(|d| d.listing(with_stats)).collect(),
                }
            })
            .collect()
    }

    /// Every persistence template (live services' and orphans').
    pub fn template_listing(&self, now_ms: u64) -> Vec<Connection> {
        let mut out: Vec<Connection> = self
            .services
            .iter()
            .flat_map(|s| s.template_listing(now_ms))
            .collect();
        out.extend(self.orphans.iter().map(|t| t.listing(now_ms)));
        out
    }
}

#[cfg(test)]
mod tests;
