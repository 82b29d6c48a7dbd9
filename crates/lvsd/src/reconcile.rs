//! Desired vs actual → the minimal list of kernel changes. Pure.
//!
//! Only services lvsd owns are ever looked at: the caller passes, per owned service id, what it
//! wants (`None`: the service must go) and what the kernel has (`None`: absent). Services that
//! are not lvsd's never reach this module, so they cannot be touched.
//!
//! Per service the order is: add or edit the service; delete destinations that must go; edit
//! those that differ; add the missing ones. A destination whose plan is [`Want::Keep`] is left
//! exactly as the kernel has it.

use crate::plan::{DesiredService, Want};
use ipvs::{
    flags, Change, Destination, ForwardMethod, Service, ServiceEntry, ServiceId, TunnelType,
};
use std::net::IpAddr;

/// Service flags lvsd compares (the kernel adds `HASHED` on its own).
const COMPARED_FLAGS: u32 =
    flags::PERSISTENT | flags::ONEPACKET | flags::SCHED1 | flags::SCHED2 | flags::SCHED3;

/// True when the kernel's service settings differ from the wanted ones (scheduler, persistence,
/// persistence timeout and netmask, one-packet, scheduler flags, persistence engine).
pub fn settings_differ(want: &Service, have: &Service) -> bool {
    if want.scheduler != have.scheduler
        || (want.flags & COMPARED_FLAGS) != (have.flags & COMPARED_FLAGS)
        || want.pe_name != have.pe_name
    {
        return true;
    }
    want.is_persistent() && (want.timeout != have.timeout || want.netmask != have.netmask)
}

/// True when a kernel destination differs from the wanted one (method, weight, thresholds,
/// tunnel settings).
pub fn dest_differs(want: &Destination, have: &Destination) -> bool {
    want.forward != have.forward
        || want.weight != have.weight
        || want.u_threshold != have.u_threshold
        || want.l_threshold != have.l_threshold
        || (want.forward == ForwardMethod::Tunnel
            && (want.tun_type != have.tun_type
                || want.tun_port != have.tun_port
                || want.tun_flags != have.tun_flags))
}

/// The changes that make the kernel's `actual` entry of one owned service what `desired` says.
pub fn reconcile_service(
    desired: Option<&DesiredService>,
    actual: Option<&ServiceEntry>,
) -> Vec<Change> {
    let mut out = Vec::new();
    match (desired, actual) {
        (None, None) => {}
        (None, Some(a)) => out.push(Change::DeleteService(a.service.id)),
        (Some(d), None) => {
            out.push(Change::AddService(d.service.clone()));
            for dd in &d.dests {
                if let Want::Weight(w) = dd.want {
                    out.push(Change::AddDestination(d.id(), dd.destination(w)));
                }
            }
        }
        (Some(d), Some(a)) => {
            let id = d.id();
            if settings_differ(&d.service, &a.service) {
                out.push(Change::EditService(d.service.clone()));
            }
            let wanted = |dest: &Destination| {
                d.dests
                    .iter()
                    .any(|dd| IpAddr::V4(dd.addr) == dest.addr && dd.port == dest.port)
            };
            for have in &a.destinations {
                if !wanted(have) {
                    out.push(Change::DeleteDestination(id, have.clone()));
                }
            }
            for dd in &d.dests {
                let Want::Weight(w) = dd.want else { continue };
                let want = dd.destination(w);
                match a
                    .destinations
                    .iter()
                    .find(|h| h.addr == want.addr && h.port == want.port)
                {
                    Some(have) if dest_differs(&want, have) => {
                        out.push(Change::EditDestination(id, want))
                    }
                    Some(_) => {}
                    None => out.push(Change::AddDestination(id, want)),
                }
            }
        }
    }
    out
}

/// The service argument of ipvsadm: `-t 192.0.2.1:80`, `-u …`, `-f 7`.
pub fn service_arg(id: &ServiceId) -> String {
    match id {
        ServiceId::Address {
            protocol,
            addr,
            port,
        } => {
            let flag = match protocol {
                ipvs::Protocol::Tcp => "-t",
                ipvs::Protocol::Udp => "-u",
                ipvs::Protocol::Sctp => "--sctp-service",
            };
            match addr {
                IpAddr::V4(a) => format!("{flag} {a}:{port}"),
                IpAddr::V6(a) => format!("{flag} [{a}]:{port}"),
            }
        }
        ServiceId::Fwmark { family, mark } => match family {
            ipvs::Family::Inet => format!("-f {mark}"),
            ipvs::Family::Inet6 => format!("-f {mark} -6"),
        },
    }
}

fn service_opts(s: &Service) -> String {
    let mut t = format!("-s {}", s.scheduler);
    if s.is_persistent() {
        t.push_str(&format!(" -p {}", s.timeout));
        if s.id.family() == ipvs::Family::Inet && s.netmask != 0xffff_ffff {
            t.push_str(&format!(" -M {}", std::net::Ipv4Addr::from(s.netmask)));
        }
    }
    t
}

fn dest_arg(d: &Destination) -> String {
    match d.addr {
        IpAddr::V4(a) => format!("-r {a}:{}", d.port),
        IpAddr::V6(a) => format!("-r [{a}]:{}", d.port),
    }
}

fn method_flag(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "-m",
        ForwardMethod::Route => "-g",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::Local => "-g",
        ForwardMethod::Bypass => "-g",
    }
}

fn dest_opts(d: &Destination) -> String {
    let mut t = format!("{} -w {}", method_flag(d.forward), d.weight);
    if d.u_threshold != 0 {
        t.push_str(&format!(" -x {}", d.u_threshold));
    }
    if d.l_threshold != 0 {
        t.push_str(&format!(" -y {}", d.l_threshold));
    }
    if d.forward == ForwardMethod::Tunnel && d.tun_type != TunnelType::Ipip {
        let kind = match d.tun_type {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        };
        t.push_str(&format!(" --tun-type {kind}"));
        if d.tun_port != 0 {
            t.push_str(&format!(" --tun-port {}", d.tun_port));
        }
    }
    t
}

/// A change as the ipvsadm command line that would make it (for logs and `--test-start`).
pub fn describe(change: &Change) -> String {
    match change {
        Change::AddService(s) => format!("-A {} {}", service_arg(&s.id), service_opts(s)),
        Change::EditService(s) => format!("-E {} {}", service_arg(&s.id), service_opts(s)),
        Change::DeleteService(id) => format!("-D {}", service_arg(id)),
        Change::AddDestination(id, d) => {
            format!("-a {} {} {}", service_arg(id), dest_arg(d), dest_opts(d))
        }
        Change::EditDestination(id, d) => {
            format!("-e {} {} {}", service_arg(id), dest_arg(d), dest_opts(d))
        }
        Change::DeleteDestination(id, d) => format!("-d {} {}", service_arg(id), dest_arg(d)),
        Change::Flush => "-C".to_string(),
        Change::Zero(None) => "-Z".to_string(),
        Change::Zero(Some(id)) => format!("-Z {}", service_arg(id)),
        Change::SetTimeouts(t) => format!("--set {} {} {}", t.tcp, t.tcp_fin, t.udp),
        Change::StartDaemon(d) => format!("--start-daemon {}", d.state.name()),
        Change::StopDaemon(s) => format!("--stop-daemon {}", s.name()),
    }
}

/// The service a change is about, if any.
pub fn change_service(change: &Change) -> Option<ServiceId> {
    match change {
        Change::AddService(s) | Change::EditService(s) => Some(s.id),
        Change::DeleteService(id)
        | Change::AddDestination(id, _)
        | Change::EditDestination(id, _)
        | Change::DeleteDestination(id, _) => Some(*id),
        Change::Zero(id) => *id,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DesiredDest, Role};
    use ipvs::Family;
    use std::net::Ipv4Addr;

    fn id() -> ServiceId {
        ServiceId::Address {
            protocol: ipvs::Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        }
    }

    fn svc(sched: &str) -> Service {
        let mut s = Service::new(id());
        s.scheduler = sched.into();
        s
    }

    fn dd(last: u8, want: Want) -> DesiredDest {
        DesiredDest {
            addr: Ipv4Addr::new(198, 51, 100, last),
            port: 80,
            forward: ForwardMethod::Masq,
            want,
            role: Role::Real(format!("r{last}")),
        }
    }

    fn kd(last: u8, weight: i32) -> Destination {
        let mut d = Destination::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)), 80);
        d.forward = ForwardMethod::Masq;
        d.weight = weight;
        d
    }

    fn desired(dests: Vec<DesiredDest>) -> DesiredService {
        DesiredService {
            name: "www".into(),
            service: svc("wlc"),
            dests,
        }
    }

    fn kernel(service: Service, destinations: Vec<Destination>) -> ServiceEntry {
        ServiceEntry {
            service,
            destinations,
        }
    }

    fn described(changes: &[Change]) -> Vec<String> {
        changes.iter().map(describe).collect()
    }

    #[test]
    fn absent_service_is_added_with_its_up_destinations_only() {
        let d = desired(vec![
            dd(1, Want::Weight(5)),
            dd(2, Want::Keep),
            dd(3, Want::Weight(0)),
        ]);
        assert_eq!(
            described(&reconcile_service(Some(&d), None)),
            [
                "-A -t 192.0.2.1:80 -s wlc",
                "-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 5",
                "-a -t 192.0.2.1:80 -r 198.51.100.3:80 -m -w 0",
            ]
        );
    }

    #[test]
    fn identical_service_needs_nothing() {
        let d = desired(vec![dd(1, Want::Weight(5)), dd(2, Want::Keep)]);
        let mut have = svc("wlc");
        have.flags = flags::HASHED;
        have.stats.conns = 99;
        let mut k1 = kd(1, 5);
        k1.active_conns = 12;
        let a = kernel(have, vec![k1]);
        assert!(reconcile_service(Some(&d), Some(&a)).is_empty());
        // Keep leaves a present entry alone whatever it looks like.
        let a = kernel(svc("wlc"), vec![kd(1, 5), kd(2, 77)]);
        assert!(reconcile_service(Some(&d), Some(&a)).is_empty());
    }

    #[test]
    fn drift_is_repaired_minimally() {
        let d = desired(vec![
            dd(1, Want::Weight(5)),
            dd(2, Want::Weight(0)),
            dd(3, Want::Weight(1)),
        ]);
        let mut routed = kd(2, 0);
        routed.forward = ForwardMethod::Route;
        let a = kernel(svc("rr"), vec![kd(9, 1), kd(1, 4), routed]);
        assert_eq!(
            described(&reconcile_service(Some(&d), Some(&a))),
            [
                "-E -t 192.0.2.1:80 -s wlc",
                "-d -t 192.0.2.1:80 -r 198.51.100.9:80",
                "-e -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 5",
                "-e -t 192.0.2.1:80 -r 198.51.100.2:80 -m -w 0",
                "-a -t 192.0.2.1:80 -r 198.51.100.3:80 -m -w 1",
            ]
        );
    }

    #[test]
    fn thresholds_and_tunnel_settings_count_as_drift() {
        let d = desired(vec![dd(1, Want::Weight(5))]);
        let mut k = kd(1, 5);
        k.u_threshold = 100;
        let a = kernel(svc("wlc"), vec![k]);
        assert_eq!(reconcile_service(Some(&d), Some(&a)).len(), 1);
        let want = {
            let mut x = kd(1, 1);
            x.forward = ForwardMethod::Tunnel;
            x
        };
        let mut have = want.clone();
        have.tun_type = TunnelType::Gue;
        have.tun_port = 6080;
        assert!(dest_differs(&want, &have));
        // Tunnel settings do not matter for other methods.
        let mut w2 = kd(1, 1);
        let mut h2 = w2.clone();
        h2.tun_port = 5;
        assert!(!dest_differs(&w2, &h2));
        w2.weight = 2;
        assert!(dest_differs(&w2, &h2));
    }

    #[test]
    fn unwanted_service_is_deleted_whole() {
        let a = kernel(svc("wlc"), vec![kd(1, 1)]);
        assert_eq!(
            described(&reconcile_service(None, Some(&a))),
            ["-D -t 192.0.2.1:80"]
        );
        assert!(reconcile_service(None, None).is_empty());
    }

    #[test]
    fn settings_comparison() {
        let mut want = svc("wlc");
        let mut have = svc("wlc");
        have.flags = flags::HASHED;
        assert!(!settings_differ(&want, &have));
        // Not persistent: timeout and netmask do not matter.
        have.timeout = 5;
        have.netmask = 0xffff_0000;
        assert!(!settings_differ(&want, &have));
        want.flags = flags::PERSISTENT;
        want.timeout = 300;
        want.netmask = 0xffff_ff00;
        have.flags = flags::PERSISTENT | flags::HASHED;
        have.timeout = 300;
        have.netmask = 0xffff_ff00;
        assert!(!settings_differ(&want, &have));
        for change in [
            |h: &mut Service| h.timeout = 301,
            |h: &mut Service| h.netmask = 0xffff_ffff,
            |h: &mut Service| h.flags &= !flags::PERSISTENT,
            |h: &mut Service| h.flags |= flags::SH_FALLBACK,
            |h: &mut Service| h.flags |= flags::ONEPACKET,
            |h: &mut Service| h.scheduler = "sh".into(),
            |h: &mut Service| h.pe_name = Some("sip".into()),
        ] {
            let mut h = have.clone();
            change(&mut h);
            assert!(settings_differ(&want, &h), "{h:?}");
        }
    }

    #[test]
    fn descriptions_read_like_ipvsadm() {
        let mut s = Service::new(ServiceId::Fwmark {
            family: Family::Inet,
            mark: 7,
        });
        s.flags = flags::PERSISTENT;
        s.timeout = 60;
        s.netmask = 0xffff_ff00;
        assert_eq!(
            describe(&Change::AddService(s.clone())),
            "-A -f 7 -s wlc -p 60 -M 255.255.255.0"
        );
        s.netmask = 0xffff_ffff;
        assert_eq!(describe(&Change::EditService(s)), "-E -f 7 -s wlc -p 60");
        let udp = ServiceId::Address {
            protocol: ipvs::Protocol::Udp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 53,
        };
        let mut d = kd(4, 3);
        d.forward = ForwardMethod::Tunnel;
        assert_eq!(
            describe(&Change::AddDestination(udp, d.clone())),
            "-a -u 192.0.2.1:53 -r 198.51.100.4:80 -i -w 3"
        );
        d.forward = ForwardMethod::Route;
        assert_eq!(
            describe(&Change::EditDestination(udp, d.clone())),
            "-e -u 192.0.2.1:53 -r 198.51.100.4:80 -g -w 3"
        );
        assert_eq!(
            describe(&Change::DeleteDestination(udp, d)),
            "-d -u 192.0.2.1:53 -r 198.51.100.4:80"
        );
        assert_eq!(describe(&Change::DeleteService(udp)), "-D -u 192.0.2.1:53");
        assert_eq!(
            describe(&Change::SetTimeouts(ipvs::Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            })),
            "--set 900 120 300"
        );
        assert_eq!(change_service(&Change::DeleteService(udp)), Some(udp));
        assert_eq!(change_service(&Change::Flush), None);
    }
}
