//! A real server of a service (`struct ip_vs_dest`): its settings, the connection counters the
//! schedulers read, the overload flag the thresholds drive, and its stats.
//!
//! Counters are atomics: connections change them from the forwarding threads, without the
//! service's lock, as the kernel does. [`Binding`] is one connection (or persistence template)
//! bound to a destination: it counts while it lives (`ip_vs_bind_dest` / `ip_vs_unbind_dest`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use ipvs::{Destination, ForwardMethod, ServiceId, TunnelType};

use crate::stats::StatsCell;

/// `IP_VS_DEST_F_AVAILABLE`: in its service's list (not deleted).
pub const F_AVAILABLE: u32 = 0x0001;
/// `IP_VS_DEST_F_OVERLOAD`: the upper threshold was reached.
pub const F_OVERLOAD: u32 = 0x0002;

/// The settings of a destination that only listings read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestConf {
    pub forward: ForwardMethod,
    pub tun_type: TunnelType,
    pub tun_port: u16,
    pub tun_flags: u16,
}

#[derive(Debug)]
pub struct Dest {
    /// Unique for the daemon's life (identifies the destination in scheduler state).
    pub id: u64,
    pub addr: IpAddr,
    pub port: u16,
    /// The service it belongs to (for re-adding it from the trash).
    pub svc_id: ServiceId,
    /// The instance of that service (a re-created service is another one).
    pub svc_uid: AtomicU64,
    weight: AtomicI32,
    /// The latest non-zero weight (`last_weight`, used by mh).
    last_weight: AtomicI32,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    flags: AtomicU32,
    active: AtomicI32,
    inactive: AtomicI32,
    persist: AtomicI32,
    conf: Mutex<DestConf>,
    pub stats: StatsCell,
    /// In the trash: when it became idle (seconds of the daemon clock), 0 = not yet.
    pub idle_start: AtomicU64,
    /// In the trash: the estimator stopped.
    pub estimating: AtomicBool,
}

impl Dest {
    /// A new destination with the kernel's initial state: counters zero, not overloaded,
    /// available once listed.
    pub fn new(id: u64, svc_id: ServiceId, svc_uid: u64, d: &Destination) -> Dest {
        let dest = Dest {
            id,
            addr: d.addr,
            port: d.port,
            svc_id,
            svc_uid: AtomicU64::new(svc_uid),
            weight: AtomicI32::new(0),
            last_weight: AtomicI32::new(0),
            u_threshold: AtomicU32::new(0),
            l_threshold: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            active: AtomicI32::new(0),
            inactive: AtomicI32::new(0),
            persist: AtomicI32::new(0),
            conf: Mutex::new(DestConf {
                forward: d.forward,
                tun_type: d.tun_type,
                tun_port: d.tun_port,
                tun_flags: d.tun_flags,
            }),
            stats: StatsCell::default(),
            idle_start: AtomicU64::new(0),
            estimating: AtomicBool::new(true),
        };
        dest.update(d, true);
        dest
    }

    /// `__ip_vs_update_dest`: new settings (`add`: being linked into the list).
    pub fn update(&self, d: &Destination, add: bool) {
        if add || d.weight != 0 {
            self.last_weight.store(d.weight, Relaxed);
        }
        self.weight.store(d.weight, Relaxed);
        *self.conf.lock().unwrap_or_else(|e| e.into_inner()) = DestConf {
            forward: d.forward,
            tun_type: d.tun_type,
            tun_port: d.tun_port,
            tun_flags: d.tun_flags,
        };
        self.flags.fetch_or(F_AVAILABLE, Relaxed);
        if d.u_threshold == 0 || d.u_threshold > self.u_threshold.load(Relaxed) {
            self.flags.fetch_and(!F_OVERLOAD, Relaxed);
        }
        self.u_threshold.store(d.u_threshold, Relaxed);
        self.l_threshold.store(d.l_threshold, Relaxed);
    }

    pub fn weight(&self) -> i32 {
        self.weight.load(Relaxed)
    }

    pub fn last_weight(&self) -> i32 {
        self.last_weight.load(Relaxed)
    }

    pub fn active(&self) -> i32 {
        self.active.load(Relaxed)
    }

    pub fn inactive(&self) -> i32 {
        self.inactive.load(Relaxed)
    }

    pub fn persistent(&self) -> i32 {
        self.persist.load(Relaxed)
    }

    pub fn overloaded(&self) -> bool {
        self.flags.load(Relaxed) & F_OVERLOAD != 0
    }

    pub fn available(&self) -> bool {
        self.flags.load(Relaxed) & F_AVAILABLE != 0
    }

    /// `__ip_vs_unlink_dest`: out of the service's list.
    pub fn unlink(&self) {
        self.flags.fetch_and(!F_AVAILABLE, Relaxed);
    }

    /// `ip_vs_dest_conn_overhead`: active connections count 256 times an inactive one.
    pub fn conn_overhead(&self) -> i32 {
        (self.active() << 8).wrapping_add(self.inactive())
    }

    fn total_conns(&self) -> i64 {
        self.active() as i64 + self.inactive() as i64
    }

    /// The listing of this destination.
    pub fn listing(&self, with_stats: bool) -> Destination {
        let conf = *self.conf.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = Destination::new(self.addr, self.port);
        d.forward = conf.forward;
        d.tun_type = conf.tun_type;
        d.tun_port = conf.tun_port;
        d.tun_flags = conf.tun_flags;
        d.weight = self.weight();
        d.u_threshold = self.u_threshold.load(Relaxed);
        d.l_threshold = self.l_threshold.load(Relaxed);
        d.active_conns = self.active().max(0) as u32;
        d.inact_conns = self.inactive().max(0) as u32;
        d.persist_conns = self.persistent().max(0) as u32;
        if with_stats {
            d.stats = self.stats.read();
        }
        d
    }

    /// Sets the counters directly (scheduler tests).
    #[cfg(test)]
    pub fn set_conns(&self, active: i32, inactive: i32) {
        self.active.store(active, Relaxed);
        self.inactive.store(inactive, Relaxed);
    }

    /// Sets the overload flag directly (scheduler tests).
    #[cfg(test)]
    pub fn set_overloaded(&self, on: bool) {
        if on {
            self.flags.fetch_or(F_OVERLOAD, Relaxed);
        } else {
            self.flags.fetch_and(!F_OVERLOAD, Relaxed);
        }
    }

    /// The end of `ip_vs_bind_dest`: the upper threshold reached sets the overload flag.
    fn check_overload(&self) {
        let u = self.u_threshold.load(Relaxed);
        if u != 0 && self.total_conns() >= u as i64 {
            self.flags.fetch_or(F_OVERLOAD, Relaxed);
        }
    }

    /// The end of `ip_vs_unbind_dest`: below the lower threshold (or 3/4 of the upper one when
    /// there is no lower one) clears the flag; no threshold at all clears it too.
    fn check_underload(&self) {
        let l = self.l_threshold.load(Relaxed);
        let u = self.u_threshold.load(Relaxed);
        let total = self.total_conns();
        if l != 0 {
            if total < l as i64 {
                self.flags.fetch_and(!F_OVERLOAD, Relaxed);
            }
        } else if u != 0 {
            if total * 4 < u as i64 * 3 {
                self.flags.fetch_and(!F_OVERLOAD, Relaxed);
            }
        } else {
            self.flags.fetch_and(!F_OVERLOAD, Relaxed);
        }
    }
}

/// What a [`Binding`] counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A connection, counted as active or inactive by its state.
    Conn { active: bool },
    /// A persistence template (`persistconns`).
    Template,
}

/// A connection or template bound to a destination; unbinds when dropped.
#[derive(Debug)]
pub struct Binding {
    pub dest: Arc<Dest>,
    kind: Kind,
}

impl Binding {
    /// `ip_vs_bind_dest` of a new connection: every connection starts inactive
    /// (`IP_VS_CONN_F_INACTIVE` from the destination's flags), the protocol's state machine
    /// moves it.
    pub fn conn(dest: Arc<Dest>) -> Binding {
        dest.inactive.fetch_add(1, Relaxed);
        dest.check_overload();
        Binding {
            dest,
            kind: Kind::Conn { active: false },
        }
    }

    /// `ip_vs_bind_dest` of a persistence template.
    pub fn template(dest: Arc<Dest>) -> Binding {
        dest.persist.fetch_add(1, Relaxed);
        dest.check_overload();
        Binding {
            dest,
            kind: Kind::Template,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A state change between active and inactive (`set_tcp_state`).
    pub fn set_active(&mut self, on: bool) {
        if let Kind::Conn { active } = &mut self.kind {
            if *active != on {
                if on {
                    self.dest.active.fetch_add(1, Relaxed);
                    self.dest.inactive.fetch_sub(1, Relaxed);
                } else {
                    self.dest.active.fetch_sub(1, Relaxed);
                    self.dest.inactive.fetch_add(1, Relaxed);
                }
                *active = on;
            }
        }
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        match self.kind {
            Kind::Conn { active: true } => self.dest.active.fetch_sub(1, Relaxed),
            Kind::Conn { active: false } => self.dest.inactive.fetch_sub(1, Relaxed),
            Kind::Template => self.dest.persist.fetch_sub(1, Relaxed),
        };
        self.dest.check_underload();
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use ipvs::Protocol;

    pub fn svc_id() -> ServiceId {
        ServiceId::Address {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        }
    }

    /// A masquerading destination 10.1.0.`n`:80 with this weight, id `n`.
    pub fn dest(n: u8, weight: i32) -> Arc<Dest> {
        dest_thresholds(n, weight, 0, 0)
    }

    pub fn dest_thresholds(n: u8, weight: i32, u: u32, l: u32) -> Arc<Dest> {
        let mut d = Destination::new(IpAddr::from([10, 1, 0, n]), 80);
        d.forward = ForwardMethod::Masq;
        d.weight = weight;
        d.u_threshold = u;
        d.l_threshold = l;
        Arc::new(Dest::new(n as u64, svc_id(), 1, &d))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn counters_follow_bindings() {
        let d = dest(1, 1);
        let mut a = Binding::conn(d.clone());
        assert_eq!((d.active(), d.inactive()), (0, 1));
        a.set_active(true);
        assert_eq!((d.active(), d.inactive()), (1, 0));
        a.set_active(true);
        assert_eq!((d.active(), d.inactive()), (1, 0));
        let t = Binding::template(d.clone());
        assert_eq!(d.persistent(), 1);
        a.set_active(false);
        assert_eq!((d.active(), d.inactive()), (0, 1));
        drop(a);
        drop(t);
        assert_eq!((d.active(), d.inactive(), d.persistent()), (0, 0, 0));
        assert_eq!(d.conn_overhead(), 0);
    }

    #[test]
    fn upper_and_lower_thresholds() {
        // u=3, l=1: overloaded at 3 connections, available again below 1.
        let d = dest_thresholds(1, 1, 3, 1);
        let mut b: Vec<Binding> = (0..3).map(|_| Binding::conn(d.clone())).collect();
        assert!(d.overloaded());
        b.pop();
        assert!(d.overloaded());
        b.pop();
        assert!(d.overloaded(), "1 connection is not below l_threshold 1");
        b.pop();
        assert!(!d.overloaded());
    }

    #[test]
    fn upper_threshold_alone_clears_below_three_quarters() {
        let d = dest_thresholds(1, 1, 4, 0);
        let mut b: Vec<Binding> = (0..4).map(|_| Binding::conn(d.clone())).collect();
        assert!(d.overloaded());
        b.pop(); // 3*4 = 12 < 4*3 = 12? no
        assert!(d.overloaded());
        b.pop(); // 2*4 = 8 < 12
        assert!(!d.overloaded());
        // Templates do not count in the total.
        let _t: Vec<Binding> = (0..10).map(|_| Binding::template(d.clone())).collect();
        assert!(!d.overloaded());
    }

    #[test]
    fn raising_or_removing_the_upper_threshold_clears_overload() {
        let d = dest_thresholds(1, 1, 1, 0);
        let _b = Binding::conn(d.clone());
        assert!(d.overloaded());
        let mut conf = d.listing(false);
        conf.u_threshold = 1;
        d.update(&conf, false);
        assert!(d.overloaded(), "same threshold keeps the flag");
        conf.u_threshold = 5;
        d.update(&conf, false);
        assert!(!d.overloaded());
        let _c = Binding::conn(d.clone());
        conf.u_threshold = 2;
        d.update(&conf, false);
        assert!(
            !d.overloaded(),
            "a lower threshold is only checked at the next binding"
        );
        let _e = Binding::conn(d.clone());
        assert!(d.overloaded());
        conf.u_threshold = 0;
        d.update(&conf, false);
        assert!(!d.overloaded());
    }

    #[test]
    fn last_weight_keeps_the_latest_non_zero() {
        let d = dest(1, 5);
        let mut conf = d.listing(false);
        conf.weight = 0;
        d.update(&conf, false);
        assert_eq!((d.weight(), d.last_weight()), (0, 5));
        conf.weight = 3;
        d.update(&conf, false);
        assert_eq!((d.weight(), d.last_weight()), (3, 3));
        conf.weight = 0;
        d.update(&conf, true);
        assert_eq!(d.last_weight(), 0, "re-added with weight 0");
    }
}
