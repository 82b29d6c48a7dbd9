//! The table's changes with the kernel's errno values, scheduling through services,
//! persistence templates, the trash.

use super::*;

struct FakeHost;
impl Host for FakeHost {
    fn interface_mtu(&self, name: &str) -> Option<u32> {
        match name {
            "eth0" | "dummy0" => Some(1500),
            "lo" => Some(65536),
            _ => None,
        }
    }
}

fn table() -> Table {
    Table::new(Box::new(FakeHost))
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Address {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn svc(id: ServiceId, sched: &str) -> ipvs::Service {
    let mut s = ipvs::Service::new(id);
    s.scheduler = sched.into();
    s
}

fn masq(addr: &str, port: u16, weight: i32) -> Destination {
    let mut d = Destination::new(addr.parse().unwrap(), port);
    d.forward = ForwardMethod::Masq;
    d.weight = weight;
    d
}

fn errno(r: Result<Effect, WireError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.errno,
    }
}

fn ok(t: &mut Table, c: Change) {
    if let Err(e) = t.apply(&c) {
        panic!("{c:?}: {e:?}");
    }
}

const CLIENT: (IpAddr, u16) = (IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 40000);

fn pick(t: &Table, id: &ServiceId, client: (IpAddr, u16), now: u64) -> Option<NewConn> {
    let s = t.find(id).unwrap();
    let ServiceId::Address { addr, port, .. } = *id else {
        unreachable!()
    };
    s.schedule(6, client, addr, port, now)
}

fn picked(n: &Option<NewConn>) -> String {
    n.as_ref().map_or("-".into(), |n| {
        format!("{}:{}", n.binding.dest.addr, n.dport)
    })
}

#[test]
fn service_errors_as_the_kernel() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    ok(&mut t, Change::AddService(svc(a, "rr")));
    assert_eq!(errno(t.apply(&Change::AddService(svc(a, "wlc")))), EEXIST);
    assert_eq!(
        errno(t.apply(&Change::AddService(svc(tcp("10.0.0.2", 80), "RR")))),
        ENOENT
    );
    let mut pe = svc(tcp("10.0.0.2", 80), "rr");
    pe.pe_name = Some("bogus".into());
    assert_eq!(errno(t.apply(&Change::AddService(pe))), ENOENT);
    let mut v6 = svc(tcp("2001:db8::1", 80), "rr");
    v6.netmask = 129;
    assert_eq!(errno(t.apply(&Change::AddService(v6))), EINVAL);
    let b = tcp("10.0.0.9", 80);
    assert_eq!(errno(t.apply(&Change::EditService(svc(b, "rr")))), ESRCH);
    assert_eq!(errno(t.apply(&Change::DeleteService(b))), ESRCH);
    assert_eq!(errno(t.apply(&Change::Zero(Some(b)))), ESRCH);
    assert_eq!(errno(t.apply(&Change::EditService(svc(a, "nope")))), ENOENT);
    // "none" is accepted: a service without scheduler.
    ok(&mut t, Change::EditService(svc(a, "none")));
    let l = t.find(&a).unwrap().listing();
    assert_eq!(l.scheduler, "none");
    assert_eq!(l.flags & flags::HASHED, flags::HASHED);
    ok(&mut t, Change::DeleteService(a));
    assert!(t.services().is_empty());
}

#[test]
fn destination_errors_and_refusals() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    assert_eq!(
        errno(t.apply(&Change::AddDestination(a, masq("10.1.0.1", 80, 1)))),
        ESRCH
    );
    ok(&mut t, Change::AddService(svc(a, "rr")));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 1)));
    assert_eq!(
        errno(t.apply(&Change::AddDestination(a, masq("10.1.0.1", 80, 3)))),
        EEXIST
    );
    assert_eq!(
        errno(t.apply(&Change::EditDestination(a, masq("10.1.0.2", 80, 3)))),
        ENOENT
    );
    assert_eq!(
        errno(t.apply(&Change::DeleteDestination(a, masq("10.1.0.2", 80, 3)))),
        ENOENT
    );
    assert_eq!(
        errno(t.apply(&Change::AddDestination(a, masq("10.1.0.3", 80, -1)))),
        ERANGE
    );
    let mut th = masq("10.1.0.3", 80, 1);
    th.u_threshold = 10;
    th.l_threshold = 20;
    assert_eq!(errno(t.apply(&Change::AddDestination(a, th))), ERANGE);
    assert_eq!(
        errno(t.apply(&Change::AddDestination(a, masq("224.0.0.1", 80, 1)))),
        EINVAL
    );
    assert_eq!(
        errno(t.apply(&Change::AddDestination(a, masq("2001:db8::5", 80, 1)))),
        EINVAL,
        "mixed families only for tunnels"
    );
    // Direct routing and tunnels cannot be done by a proxy: a clear refusal.
    let mut dr = masq("10.1.0.4", 80, 1);
    dr.forward = ForwardMethod::Route;
    let e = t.apply(&Change::AddDestination(a, dr.clone())).unwrap_err();
    assert_eq!(e.errno, EPROTONOSUPPORT);
    let msg = e.into_error(ipvs::Operation::AddDestination).message();
    assert!(msg.contains("direct routing (-g)"), "{msg}");
    assert!(msg.contains("masquerading (-m)"), "{msg}");
    let mut tun = dr.clone();
    tun.forward = ForwardMethod::Tunnel;
    let e = t.apply(&Change::AddDestination(a, tun)).unwrap_err();
    assert!(e.detail.unwrap().contains("tunnelling (-i)"));
    let mut edit = masq("10.1.0.1", 80, 1);
    edit.forward = ForwardMethod::Route;
    assert_eq!(
        errno(t.apply(&Change::EditDestination(a, edit))),
        EPROTONOSUPPORT
    );
    // Listing: newest first, kernel fields.
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.2", 8080, 3)));
    let l = t.find(&a).unwrap().dest_listing(false);
    assert_eq!(
        l.iter()
            .map(|d| (d.addr.to_string(), d.port, d.weight))
            .collect::<Vec<_>>(),
        vec![("10.1.0.2".into(), 8080, 3), ("10.1.0.1".into(), 80, 1)]
    );
    assert_eq!(l[0].forward, ForwardMethod::Masq);
}

#[test]
fn scheduling_through_the_table() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    ok(&mut t, Change::AddService(svc(a, "rr")));
    assert!(pick(&t, &a, CLIENT, 0).is_none(), "no destination");
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 8080, 1)));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.2", 0, 1)));
    let mut held = vec![];
    for _ in 0..4 {
        held.push(pick(&t, &a, CLIENT, 0));
    }
    // newest first; port 0 means the virtual port.
    assert_eq!(
        held.iter().map(picked).collect::<Vec<_>>(),
        vec![
            "10.1.0.2:80",
            "10.1.0.1:8080",
            "10.1.0.2:80",
            "10.1.0.1:8080"
        ]
    );
    let l = t.find(&a).unwrap().dest_listing(true);
    assert_eq!((l[0].inact_conns, l[0].active_conns), (2, 0));
    assert_eq!(l[0].stats.conns, 2);
    assert_eq!(t.find(&a).unwrap().listing().stats.conns, 4);
    // weight 0: no new connections, the old ones stay counted.
    ok(&mut t, Change::EditDestination(a, masq("10.1.0.2", 0, 0)));
    assert_eq!(picked(&pick(&t, &a, CLIENT, 0)), "10.1.0.1:8080");
    assert_eq!(t.find(&a).unwrap().dest_listing(false)[0].inact_conns, 2);
    held.clear();
    assert_eq!(t.find(&a).unwrap().dest_listing(false)[0].inact_conns, 0);
    // A connection to another port of the address is not for this service.
    let s = t.find(&a).unwrap();
    assert!(s
        .schedule(6, CLIENT, "10.0.0.1".parse().unwrap(), 81, 0)
        .is_none());
}

#[test]
fn thresholds_through_the_table() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    ok(&mut t, Change::AddService(svc(a, "wlc")));
    let mut d = masq("10.1.0.1", 80, 1);
    d.u_threshold = 2;
    d.l_threshold = 1;
    ok(&mut t, Change::AddDestination(a, d));
    let one = pick(&t, &a, CLIENT, 0);
    let two = pick(&t, &a, CLIENT, 0);
    assert!(one.is_some() && two.is_some());
    assert!(pick(&t, &a, CLIENT, 0).is_none(), "upper threshold reached");
    drop(two);
    assert!(
        pick(&t, &a, CLIENT, 0).is_none(),
        "1 is not below the lower threshold 1"
    );
    drop(one);
    assert!(pick(&t, &a, CLIENT, 0).is_some());
}

#[test]
fn persistence_with_netmask_and_timeout() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    let mut s = svc(a, "rr");
    s.flags = flags::PERSISTENT;
    s.timeout = 10;
    s.netmask = 0xffff_ff00;
    ok(&mut t, Change::AddService(s));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 1)));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.2", 80, 1)));
    let c = |s: &str, p| (s.parse::<IpAddr>().unwrap(), p);
    let x1 = pick(&t, &a, c("192.0.2.1", 1000), 0);
    let x2 = pick(&t, &a, c("192.0.2.77", 1001), 100);
    let y1 = pick(&t, &a, c("198.51.100.1", 1002), 200);
    assert_eq!(picked(&x1), "10.1.0.2:80");
    assert_eq!(picked(&x2), "10.1.0.2:80", "same /24, same server");
    assert_eq!(picked(&y1), "10.1.0.1:80");
    let l = t.find(&a).unwrap().dest_listing(false);
    assert_eq!((l[0].persist_conns, l[1].persist_conns), (1, 1));
    // The template outlives its connections by the timeout, counted from the last use.
    drop((x1, x2, y1));
    let tl = t.template_listing(1000);
    assert_eq!(tl.len(), 2);
    let mine = tl
        .iter()
        .find(|x| x.caddr.to_string() == "192.0.2.0")
        .unwrap();
    assert_eq!((mine.cport, mine.vport, mine.dport), (0, 80, 80));
    assert_eq!(mine.state, "NONE");
    assert_eq!(mine.expires, 9, "10 s from the last connection at 100 ms");
    t.periodic(10_050);
    assert_eq!(t.template_listing(10_050).len(), 2);
    t.periodic(10_100);
    assert_eq!(t.template_listing(10_100).len(), 1);
    // Weight 0 does not break persistence (the template still names the server).
    ok(&mut t, Change::EditDestination(a, masq("10.1.0.1", 80, 0)));
    let y2 = pick(&t, &a, c("198.51.100.9", 1003), 10_200);
    assert_eq!(picked(&y2), "10.1.0.1:80");
    // A template controlling connections does not expire; 60 s later it is checked again.
    t.periodic(20_300);
    assert_eq!(t.template_listing(20_300).len(), 1);
    drop(y2);
    t.periodic(80_300);
    assert!(t.template_listing(80_300).is_empty());
}

#[test]
fn deleted_destination_invalidates_templates() {
    let mut t = table();
    let a = tcp("10.0.0.1", 21);
    let mut s = svc(a, "rr");
    s.flags = flags::PERSISTENT;
    s.timeout = 300;
    ok(&mut t, Change::AddService(s));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 21, 1)));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.2", 21, 1)));
    let first = pick(&t, &a, CLIENT, 0);
    assert_eq!(picked(&first), "10.1.0.2:21");
    // FTP: the template has no ports.
    let tl = t.template_listing(0);
    assert_eq!((tl[0].vport, tl[0].dport), (0, 0));
    drop(first);
    ok(
        &mut t,
        Change::DeleteDestination(a, masq("10.1.0.2", 21, 1)),
    );
    let again = pick(&t, &a, CLIENT, 1);
    assert_eq!(picked(&again), "10.1.0.1:21");
    let tl = t.template_listing(1);
    assert_eq!(tl.len(), 2);
    assert!(tl.iter().any(|x| x.vport == 0xffff && x.dport == 0xffff));
}

#[test]
fn trash_keeps_counters_of_a_re_added_destination() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    ok(&mut t, Change::AddService(svc(a, "rr")));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 1)));
    let held = pick(&t, &a, CLIENT, 0);
    ok(
        &mut t,
        Change::DeleteDestination(a, masq("10.1.0.1", 80, 1)),
    );
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 2)));
    let l = t.find(&a).unwrap().dest_listing(true);
    assert_eq!((l[0].inact_conns, l[0].weight, l[0].stats.conns), (1, 2, 1));
    // A new instance of the service: the destination's stats start from zero.
    drop(held);
    ok(&mut t, Change::DeleteService(a));
    ok(&mut t, Change::AddService(svc(a, "rr")));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 1)));
    let l = t.find(&a).unwrap().dest_listing(true);
    assert_eq!(l[0].stats.conns, 0);
    // Nothing holds a deleted destination: it leaves the trash after 120 s.
    ok(&mut t, Change::Flush);
    t.periodic(1_000);
    assert_eq!(t.trash.len(), 1);
    t.periodic(121_001);
    assert!(t.trash.is_empty());
}

#[test]
fn scheduler_change_reinitialises() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    ok(&mut t, Change::AddService(svc(a, "rr")));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 1)));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.2", 80, 3)));
    assert_eq!(picked(&pick(&t, &a, CLIENT, 0)), "10.1.0.2:80");
    assert_eq!(picked(&pick(&t, &a, CLIENT, 0)), "10.1.0.1:80");
    // Same scheduler: the cursor stays.
    ok(&mut t, Change::EditService(svc(a, "rr")));
    assert_eq!(picked(&pick(&t, &a, CLIENT, 0)), "10.1.0.2:80");
    ok(&mut t, Change::EditService(svc(a, "wrr")));
    let seq: Vec<String> = (0..4).map(|_| picked(&pick(&t, &a, CLIENT, 0))).collect();
    assert_eq!(
        seq,
        vec!["10.1.0.2:80", "10.1.0.2:80", "10.1.0.2:80", "10.1.0.1:80"]
    );
}

#[test]
fn timeouts_zero_and_daemons() {
    let mut t = table();
    ok(
        &mut t,
        Change::SetTimeouts(Timeouts {
            tcp: 10,
            tcp_fin: 0,
            udp: 30,
        }),
    );
    assert_eq!(
        t.timeouts(),
        Timeouts {
            tcp: 10,
            tcp_fin: 120,
            udp: 30
        }
    );
    assert_eq!(
        errno(t.apply(&Change::SetTimeouts(Timeouts {
            tcp: u32::MAX,
            tcp_fin: 0,
            udp: 0
        }))),
        EINVAL
    );
    let d = Daemon {
        state: DaemonState::Master,
        mcast_ifn: "nosuch0".into(),
        sync_id: 0,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    assert_eq!(errno(t.apply(&Change::StartDaemon(d.clone()))), ENODEV);
    let d = Daemon {
        mcast_ifn: "dummy0".into(),
        ..d
    };
    ok(&mut t, Change::StartDaemon(d.clone()));
    assert_eq!(errno(t.apply(&Change::StartDaemon(d.clone()))), EEXIST);
    let l = t.daemons();
    assert_eq!(l[0].sync_maxlen, 1472);
    assert_eq!(l[0].mcast_group, Some("224.0.0.81".parse().unwrap()));
    assert_eq!((l[0].mcast_port, l[0].mcast_ttl), (8848, 1));
    assert_eq!(
        errno(t.apply(&Change::StopDaemon(DaemonState::Backup))),
        ESRCH
    );
    ok(&mut t, Change::StopDaemon(DaemonState::Master));
    assert!(t.daemons().is_empty());
}

#[test]
fn zero_counters() {
    let mut t = table();
    let a = tcp("10.0.0.1", 80);
    ok(&mut t, Change::AddService(svc(a, "rr")));
    ok(&mut t, Change::AddDestination(a, masq("10.1.0.1", 80, 1)));
    drop(pick(&t, &a, CLIENT, 0));
    assert_eq!(t.table(true)[0].service.stats.conns, 1);
    ok(&mut t, Change::Zero(Some(a)));
    let e = &t.table(true)[0];
    assert_eq!(
        (e.service.stats.conns, e.destinations[0].stats.conns),
        (0, 0)
    );
    drop(pick(&t, &a, CLIENT, 0));
    ok(&mut t, Change::Zero(None));
    assert_eq!(t.table(true)[0].service.stats.conns, 0);
}

#[test]
fn ipv6_persistence_prefix() {
    assert_eq!(
        mask_addr(&"2001:db8:1:2::5".parse().unwrap(), 48),
        "2001:db8:1::".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        mask_addr(&"192.0.2.77".parse().unwrap(), 0xffff_ff00),
        "192.0.2.0".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn forwardable_services() {
    let mut t = table();
    let f = ServiceId::Fwmark {
        family: Family::Inet,
        mark: 1,
    };
    ok(&mut t, Change::AddService(svc(f, "rr")));
    let z = tcp("10.0.0.1", 0);
    let mut zs = svc(z, "rr");
    zs.flags = flags::PERSISTENT;
    ok(&mut t, Change::AddService(zs));
    let u = ServiceId::Address {
        protocol: Protocol::Udp,
        addr: "10.0.0.1".parse().unwrap(),
        port: 53,
    };
    ok(&mut t, Change::AddService(svc(u, "rr")));
    let fw: Vec<bool> = t.services().iter().map(|s| s.forwardable()).collect();
    assert_eq!(fw, vec![false, false, true]);
}
