//! Byte-exact checks against the outputs of Debian's ipvsadm 1.31 (spec ipvsadm.md §2 and
//! ipvsadm-kernel-notes.md). Names come from [`FakeNames`]; numeric cases use [`NoNames`], which
//! panics if asked.

use std::collections::HashMap;
use std::net::IpAddr;

use super::*;
use ipvs::tun_flags;

// ---------------------------------------------------------------------------------------------
// Builders

struct NoNames;

impl Resolver for NoNames {
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        panic!("host lookup of {addr} in numeric mode")
    }
    fn service_name(&self, port: u16, _: Protocol) -> Option<String> {
        panic!("service lookup of {port} in numeric mode")
    }
}

#[derive(Default)]
struct FakeNames {
    hosts: HashMap<IpAddr, &'static str>,
    services: HashMap<(u16, Protocol), &'static str>,
}

impl FakeNames {
    /// A few /etc/hosts and /etc/services entries of a Debian box.
    fn debian() -> FakeNames {
        let mut n = FakeNames::default();
        n.hosts.insert(ip("127.0.0.1"), "localhost");
        n.hosts.insert(ip("::1"), "localhost");
        for (port, name) in [
            (80, "http"),
            (8080, "http-alt"),
            (3306, "mysql"),
            (53, "domain"),
            (443, "https"),
        ] {
            n.services.insert((port, Protocol::Tcp), name);
        }
        n.services.insert((53, Protocol::Udp), "domain");
        n.services.insert((5060, Protocol::Udp), "sip");
        n
    }
}

impl Resolver for FakeNames {
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts.get(&addr).map(|s| s.to_string())
    }
    fn service_name(&self, port: u16, protocol: Protocol) -> Option<String> {
        self.services.get(&(port, protocol)).map(|s| s.to_string())
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addr_id(protocol: Protocol, addr: &str, port: u16) -> ServiceId {
    ServiceId::Address {
        protocol,
        addr: ip(addr),
        port,
    }
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    addr_id(Protocol::Tcp, addr, port)
}

fn udp(addr: &str, port: u16) -> ServiceId {
    addr_id(Protocol::Udp, addr, port)
}

fn fwm(mark: u32) -> ServiceId {
    ServiceId::Fwmark {
        family: Family::Inet,
        mark,
    }
}

fn fwm6(mark: u32) -> ServiceId {
    ServiceId::Fwmark {
        family: Family::Inet6,
        mark,
    }
}

fn svc(id: ServiceId, sched: &str) -> Service {
    let mut s = Service::new(id);
    s.scheduler = sched.into();
    s
}

fn persistent(mut s: Service, timeout: u32) -> Service {
    s.flags |= flags::PERSISTENT;
    s.timeout = timeout;
    s
}

fn dest(addr: &str, port: u16, forward: ForwardMethod, weight: i32) -> Destination {
    let mut d = Destination::new(ip(addr), port);
    d.forward = forward;
    d.weight = weight;
    d
}

fn entry(service: Service, destinations: Vec<Destination>) -> ServiceEntry {
    ServiceEntry {
        service,
        destinations,
    }
}

const INFO: Info = Info {
    version: 0x010201,
    conn_tab_size: 4096,
};

fn numeric() -> ListOptions {
    ListOptions {
        numeric: true,
        ..ListOptions::default()
    }
}

use ForwardMethod::{Local, Masq, Route, Tunnel};

/// The table of spec §2.1 / §2.8, in a scrambled backend order.
fn spec_table() -> Vec<ServiceEntry> {
    let mut tunnel = dest("192.168.1.11", 80, Tunnel, 0);
    tunnel.tun_type = TunnelType::Ipip;
    let mut sh = svc(udp("10.0.0.1", 53), "sh");
    sh.flags |= flags::SH_FALLBACK | flags::SH_PORT | flags::ONEPACKET;
    let mut wrr = persistent(svc(tcp("10.0.0.2", 0), "wrr"), 600);
    wrr.netmask = 0xffff_ff00;
    vec![
        entry(svc(fwm(5), "lc"), vec![dest("192.168.1.20", 0, Route, 1)]),
        entry(sh, vec![]),
        entry(
            svc(tcp("10.0.0.1", 80), "wlc"),
            vec![
                dest("192.168.1.12", 82, Masq, 2147483647),
                tunnel,
                dest("192.168.1.12", 81, Masq, 70000),
                dest("192.168.1.9", 80, Route, 1),
                dest("192.168.1.10", 8080, Masq, 3),
            ],
        ),
        entry(wrr, vec![]),
        entry(
            persistent(svc(tcp("10.0.0.1", 443), "rr"), 360),
            vec![dest("192.168.1.30", 443, Masq, 1)],
        ),
        entry(svc(fwm(4294967295), "lc"), vec![]),
    ]
}

// ---------------------------------------------------------------------------------------------
// §2.1 -L -n

#[test]
fn format_list_numeric_spec_2_1() {
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "FWM  -1 lc\n",
        "TCP  10.0.0.1:80 wlc\n",
        "  -> 192.168.1.9:80               Route   1      0          0         \n",
        "  -> 192.168.1.10:8080            Masq    3      0          0         \n",
        "  -> 192.168.1.11:80              Tunnel  0      0          0         \n",
        "  -> 192.168.1.12:81              Masq    70000  0          0         \n",
        "  -> 192.168.1.12:82              Masq    2147483647 0          0         \n",
        "TCP  10.0.0.1:443 rr persistent 360\n",
        "  -> 192.168.1.30:443             Masq    1      0          0         \n",
        "TCP  10.0.0.2:0 wrr persistent 600 mask 255.255.255.0\n",
        "UDP  10.0.0.1:53 sh (sh-fallback,sh-port) ops\n",
        "FWM  5 lc\n",
        "  -> 192.168.1.20:0               Route   1      0          0         \n",
    );
    assert_eq!(
        list_all_with(&INFO, &spec_table(), &numeric(), &NoNames),
        want
    );
}

#[test]
fn format_list_empty_table_and_header() {
    let info = Info {
        version: 0x010203,
        conn_tab_size: 1048576,
    };
    assert_eq!(
        list_all_with(&info, &[], &numeric(), &NoNames),
        concat!(
            "IP Virtual Server version 1.2.3 (size=1048576)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        )
    );
}

#[test]
fn format_list_counters_and_local_forwarding() {
    let mut d = dest("10.1.1.1", 80, Local, 5);
    d.active_conns = 4294967295;
    d.inact_conns = 12;
    let mut bypass = dest("10.1.1.2", 80, ForwardMethod::Bypass, 1);
    bypass.active_conns = 1;
    let table = [entry(svc(tcp("10.0.0.1", 80), "wlc"), vec![d, bypass])];
    let got = list_all_with(&INFO, &table, &numeric(), &NoNames);
    assert!(got.ends_with(concat!(
        "TCP  10.0.0.1:80 wlc\n",
        "  -> 10.1.1.1:80                  Local   5      4294967295 12        \n",
        "  -> 10.1.1.2:80                  (null)  1      1          0         \n",
    )));
}

#[test]
fn format_list_service_line_variants() {
    let mut mh = svc(tcp("10.0.0.1", 1), "mh");
    mh.flags |= flags::MH_PORT;
    let mut mh2 = svc(tcp("10.0.0.1", 2), "mh");
    mh2.flags |= flags::MH_FALLBACK | flags::MH_PORT;
    let mut other = svc(tcp("10.0.0.1", 3), "rr");
    other.flags |= flags::SCHED1 | flags::SCHED2 | flags::SCHED3;
    let mut sh3 = svc(tcp("10.0.0.1", 4), "sh");
    sh3.flags |= flags::SCHED3;
    let mut pe = persistent(svc(udp("10.0.0.1", 5060), "rr"), 360);
    pe.pe_name = Some("sip".into());
    pe.flags |= flags::ONEPACKET;
    let mut pe_not_persistent = svc(udp("10.0.0.1", 5061), "rr");
    pe_not_persistent.pe_name = Some("sip".into());
    let mut flags_persist = persistent(svc(tcp("10.0.0.1", 5), "sh"), 1);
    flags_persist.flags |= flags::SH_FALLBACK;
    flags_persist.netmask = 0xffff_0000;
    let mut v6 = persistent(svc(tcp("2001:db8::1", 80), "rr"), 360);
    v6.netmask = 64;
    let v6_default = persistent(svc(tcp("2001:db8::1", 81), "rr"), 360);
    let mut hashed = svc(tcp("10.0.0.1", 6), "wlc");
    hashed.flags |= flags::HASHED;
    let sctp = svc(addr_id(Protocol::Sctp, "10.0.0.1", 7), "wlc");
    let table: Vec<ServiceEntry> = [
        mh,
        mh2,
        other,
        sh3,
        pe,
        pe_not_persistent,
        flags_persist,
        v6,
        v6_default,
        hashed,
        sctp,
        svc(fwm6(5), "wlc"),
        svc(fwm(2147483648), "wlc"),
    ]
    .into_iter()
    .map(|s| entry(s, vec![]))
    .collect();
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  10.0.0.1:1 mh (mh-port)\n",
        "TCP  10.0.0.1:2 mh (mh-fallback,mh-port)\n",
        "TCP  10.0.0.1:3 rr (flag-1,flag-2,flag-3)\n",
        "TCP  10.0.0.1:4 sh ()\n",
        "TCP  10.0.0.1:5 sh (sh-fallback) persistent 1 mask 255.255.0.0\n",
        "TCP  10.0.0.1:6 wlc\n",
        "UDP  10.0.0.1:5060 rr persistent 360 pe sip ops\n",
        "UDP  10.0.0.1:5061 rr\n",
        "SCTP 10.0.0.1:7 wlc\n",
        "TCP  [2001:db8::1]:80 rr persistent 360 mask 64\n",
        "TCP  [2001:db8::1]:81 rr persistent 360\n",
        "FWM  5 IPv6 wlc\n",
        // 0 - 2147483648 and 2147483648 - 0 are both INT_MIN: where this one lands is up to
        // the merge order.
        "FWM  -2147483648 wlc\n",
    );
    assert_eq!(list_all_with(&INFO, &table, &numeric(), &NoNames), want);
}

// ---------------------------------------------------------------------------------------------
// Sorting

#[test]
fn format_sort_far_apart_ipv4_compares_wrapped() {
    let table = vec![
        entry(
            svc(tcp("1.0.0.1", 80), "wlc"),
            vec![
                dest("1.0.0.9", 80, Route, 1),
                dest("250.0.0.9", 80, Route, 1),
            ],
        ),
        entry(svc(tcp("250.0.0.1", 80), "wlc"), vec![]),
    ];
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  250.0.0.1:80 wlc\n",
        "TCP  1.0.0.1:80 wlc\n",
        "  -> 250.0.0.9:80                 Route   1      0          0         \n",
        "  -> 1.0.0.9:80                   Route   1      0          0         \n",
    );
    assert_eq!(list_all_with(&INFO, &table, &numeric(), &NoNames), want);
}

#[test]
fn format_sort_order_of_families_protocols_ports() {
    let table: Vec<ServiceEntry> = [
        svc(fwm6(1), "wlc"),
        svc(fwm(1), "wlc"),
        svc(addr_id(Protocol::Sctp, "10.0.0.1", 1), "wlc"),
        svc(udp("10.0.0.1", 1), "wlc"),
        svc(tcp("2001:db8::1", 1), "wlc"),
        svc(tcp("10.0.0.1", 2), "wlc"),
        svc(tcp("10.0.0.1", 1), "wlc"),
        svc(tcp("10.0.0.0", 65535), "wlc"),
        svc(tcp("::1", 80), "wlc"),
        svc(fwm(4294967295), "wlc"),
        svc(fwm(2), "wlc"),
    ]
    .into_iter()
    .map(|s| entry(s, vec![]))
    .collect();
    let got = list_all_with(&INFO, &table, &numeric(), &NoNames);
    let lines: Vec<&str> = got.lines().skip(3).collect();
    assert_eq!(
        lines,
        [
            "FWM  -1 wlc",
            "TCP  10.0.0.0:65535 wlc",
            "TCP  10.0.0.1:1 wlc",
            "TCP  10.0.0.1:2 wlc",
            "UDP  10.0.0.1:1 wlc",
            "SCTP 10.0.0.1:1 wlc",
            "TCP  [::1]:80 wlc",
            "TCP  [2001:db8::1]:1 wlc",
            "FWM  1 wlc",
            "FWM  1 IPv6 wlc",
            "FWM  2 wlc",
        ]
    );
}

#[test]
fn format_sort_ipv6_dests_and_mixed_families() {
    // Tunnel destinations of the other family: the first operand's family decides the width
    // of the comparison (IPv4: first word only).
    let table = vec![entry(
        svc(tcp("10.0.0.1", 80), "wlc"),
        vec![
            dest("2001:db8::2", 80, Tunnel, 1),
            dest("10.0.0.5", 80, Tunnel, 1),
            dest("2001:db8::1", 81, Tunnel, 1),
            dest("2001:db8::1", 80, Tunnel, 1),
            dest("10.0.0.4", 80, Tunnel, 1),
        ],
    )];
    let got = list_all_with(&INFO, &table, &numeric(), &NoNames);
    let names: Vec<&str> = got
        .lines()
        .skip(4)
        .map(|l| l[5..].split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "10.0.0.4:80",
            "10.0.0.5:80",
            "[2001:db8::1]:80",
            "[2001:db8::1]:81",
            "[2001:db8::2]:80",
        ]
    );
}

#[test]
fn format_sort_nosort_keeps_backend_order() {
    let opts = ListOptions {
        nosort: true,
        ..numeric()
    };
    let table = vec![
        entry(
            svc(tcp("10.0.0.2", 80), "wlc"),
            vec![
                dest("10.1.1.3", 80, Route, 1),
                dest("10.1.1.1", 80, Route, 1),
                dest("10.1.1.2", 80, Route, 1),
            ],
        ),
        entry(svc(fwm(1), "wlc"), vec![]),
        entry(svc(tcp("10.0.0.1", 80), "wlc"), vec![]),
    ];
    let got = list_all_with(&INFO, &table, &opts, &NoNames);
    let lines: Vec<&str> = got.lines().skip(3).map(|l| l.trim_end()).collect();
    assert_eq!(
        lines,
        [
            "TCP  10.0.0.2:80 wlc",
            "  -> 10.1.1.3:80                  Route   1      0          0",
            "  -> 10.1.1.1:80                  Route   1      0          0",
            "  -> 10.1.1.2:80                  Route   1      0          0",
            "FWM  1 wlc",
            "TCP  10.0.0.1:80 wlc",
        ]
    );
}

/// Orders produced by glibc 2.36's `qsort` (Debian 12) with ipvsadm's comparison on
/// ipvs_service_entry-sized elements, recorded with a small C program.
#[test]
fn format_sort_matches_glibc_qsort_on_non_transitive_input() {
    for (input, want) in [
        (
            vec!["1.0.0.0", "100.0.0.0", "200.0.0.0"],
            vec!["1.0.0.0", "100.0.0.0", "200.0.0.0"],
        ),
        (
            vec!["200.0.0.0", "100.0.0.0", "1.0.0.0"],
            vec!["200.0.0.0", "1.0.0.0", "100.0.0.0"],
        ),
        (
            vec![
                "206.31.37.71",
                "28.174.226.126",
                "75.101.144.99",
                "171.155.144.85",
                "208.7.102.5",
                "64.0.0.0",
                "42.10.137.252",
                "128.0.0.0",
            ],
            vec![
                "206.31.37.71",
                "208.7.102.5",
                "28.174.226.126",
                "42.10.137.252",
                "64.0.0.0",
                "75.101.144.99",
                "128.0.0.0",
                "171.155.144.85",
            ],
        ),
        (
            vec![
                "205.138.23.239",
                "149.189.86.192",
                "0.0.0.0",
                "145.220.93.176",
                "245.219.147.16",
                "188.105.5.80",
                "224.163.195.8",
            ],
            vec![
                "145.220.93.176",
                "149.189.86.192",
                "188.105.5.80",
                "205.138.23.239",
                "224.163.195.8",
                "245.219.147.16",
                "0.0.0.0",
            ],
        ),
    ] {
        let table: Vec<ServiceEntry> = input
            .iter()
            .map(|a| entry(svc(tcp(a, 80), "wlc"), vec![]))
            .collect();
        let got: Vec<String> = ordered_services(&table, true)
            .iter()
            .map(|e| match e.service.id {
                ServiceId::Address { addr, .. } => addr.to_string(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, want, "input {input:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// §2.2 names

#[test]
fn format_list_names_spec_2_2() {
    let mut sh = svc(udp("10.0.0.1", 53), "sh");
    sh.flags |= flags::SH_FALLBACK | flags::SH_PORT | flags::ONEPACKET;
    let table = vec![
        entry(sh, vec![]),
        entry(
            svc(tcp("127.0.0.1", 8080), "lblc"),
            vec![dest("127.0.0.1", 3306, Masq, 1)],
        ),
        entry(
            svc(tcp("10.0.0.1", 80), "wlc"),
            vec![dest("192.168.1.10", 8080, Masq, 3)],
        ),
    ];
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  10.0.0.1:http wlc\n",
        "  -> 192.168.1.10:http-alt        Masq    3      0          0         \n",
        "TCP  localhost:http-alt lblc\n",
        "  -> localhost:mysql              Masq    1      0          0         \n",
        "UDP  10.0.0.1:domain sh (sh-fallback,sh-port) ops\n",
    );
    let opts = ListOptions::default();
    assert_eq!(
        list_all_with(&INFO, &table, &opts, &FakeNames::debian()),
        want
    );
}

#[test]
fn format_names_truncation_and_fwmark_ports() {
    let mut names = FakeNames::debian();
    names
        .hosts
        .insert(ip("10.0.0.1"), "a-very-long-virtual-host-name.example.org");
    names
        .hosts
        .insert(ip("10.1.1.1"), "a-very-long-real-server-name.example.org");
    names
        .hosts
        .insert(ip("2001:db8::1"), "v6-host-with-a-long-name.example.org");
    names.services.insert((8081, Protocol::Udp), "udp-only");
    let table = vec![
        entry(
            svc(tcp("10.0.0.1", 80), "wlc"),
            vec![
                dest("10.1.1.1", 80, Masq, 1),
                dest("2001:db8::1", 80, Tunnel, 1),
            ],
        ),
        entry(
            svc(tcp("2001:db8::1", 8081), "wlc"),
            vec![dest("2001:db8::1", 8081, Masq, 1)],
        ),
        // fwmark services carry no protocol over netlink: ports stay numeric.
        entry(svc(fwm(7), "wlc"), vec![dest("127.0.0.1", 80, Route, 1)]),
    ];
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  a-very-long-virtual-host-nam wlc\n",
        "  -> a-very-long-real-server-name Masq    1      0          0         \n",
        "  -> [v6-host-with-a-long-name.example.org]:http Tunnel  1      0          0         \n",
        "TCP  [v6-host-with-a-long-name.example.org]:8081 wlc\n",
        "  -> [v6-host-with-a-long-name.example.org]:8081 Masq    1      0          0         \n",
        "FWM  7 wlc\n",
        "  -> localhost:80                 Route   1      0          0         \n",
    );
    let opts = ListOptions::default();
    assert_eq!(list_all_with(&INFO, &table, &opts, &names), want);
}

// ---------------------------------------------------------------------------------------------
// §2.3 --stats / --rate / --exact

fn stats(v: [u64; 10]) -> Stats {
    Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
        cps: v[5],
        inpps: v[6],
        outpps: v[7],
        inbps: v[8],
        outbps: v[9],
    }
}

fn stats_table() -> Vec<ServiceEntry> {
    let mut s = svc(tcp("250.0.0.1", 80), "wlc");
    s.stats = stats([
        12345,
        123456789,
        99999999,
        123456789012,
        1234567890123456,
        7,
        70,
        65,
        1234567890,
        5000,
    ]);
    let mut d = dest("250.0.0.9", 80, Masq, 1);
    d.stats = stats([
        24690,
        123456789,
        99999999,
        246913578024,
        1234567890123456,
        3,
        35,
        30,
        617283945,
        2500,
    ]);
    vec![entry(s, vec![d])]
}

#[test]
fn format_stats_spec_2_3() {
    let opts = ListOptions {
        stats: true,
        ..numeric()
    };
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
        "  -> RemoteAddress:Port\n",
        "TCP  250.0.0.1:80                    12345  123456K 99999999     123G    1234T\n",
        "  -> 250.0.0.9:80                    24690  123456K 99999999     246G    1234T\n",
    );
    assert_eq!(list_all_with(&INFO, &stats_table(), &opts, &NoNames), want);
    // --stats wins over every other layout option.
    let all = ListOptions {
        stats: true,
        rate: true,
        thresholds: true,
        persistent_conn: true,
        tun_info: true,
        ..numeric()
    };
    assert_eq!(list_all_with(&INFO, &stats_table(), &all, &NoNames), want);
}

#[test]
fn format_rate_spec_2_3() {
    let opts = ListOptions {
        rate: true,
        thresholds: true,
        ..numeric()
    };
    let want = concat!(
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
        "  -> RemoteAddress:Port\n",
        "TCP  250.0.0.1:80                        7       70       65    1234M     5000\n",
        "  -> 250.0.0.9:80                        3       35       30  617283K     2500\n",
    );
    assert_eq!(list_service_with(&stats_table()[0], &opts, &NoNames), want);
}

#[test]
fn format_rate_dest_pps_never_abbreviated() {
    let mut t = stats_table();
    t[0].destinations[0].stats = stats([0, 0, 0, 0, 0, 123456789, 4000000000, 7, 100000000, 0]);
    let opts = ListOptions {
        rate: true,
        ..numeric()
    };
    let got = list_service_with(&t[0], &opts, &NoNames);
    assert!(got.ends_with(
        "  -> 250.0.0.9:80                 123456789 4000000000        7  100000K        0\n"
    ));
}

#[test]
fn format_largenum_thresholds() {
    for (v, want) in [
        (0, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "     100T"),
        (u64::MAX, "18446744T"),
    ] {
        assert_eq!(largenum(v, false), want, "{v}");
    }
    for (v, want) in [
        (0, "        0"),
        (12_345_678, " 12345678"),
        (123_456_789, " 123456789"),
        (1_234_567_890_123, " 1234567890123"),
        (u64::MAX, " 18446744073709551615"),
    ] {
        assert_eq!(largenum(v, true), want, "{v}");
    }
}

#[test]
fn format_stats_exact() {
    let opts = ListOptions {
        stats: true,
        exact: true,
        ..numeric()
    };
    let want = concat!(
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
        "  -> RemoteAddress:Port\n",
        "TCP  250.0.0.1:80                    12345 123456789 99999999 123456789012 1234567890123456\n",
        "  -> 250.0.0.9:80                    24690 123456789 99999999 246913578024 1234567890123456\n",
    );
    assert_eq!(list_service_with(&stats_table()[0], &opts, &NoNames), want);
    let rate = ListOptions {
        rate: true,
        exact: true,
        ..numeric()
    };
    let want = concat!(
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
        "  -> RemoteAddress:Port\n",
        "TCP  250.0.0.1:80                        7       70       65 1234567890     5000\n",
        "  -> 250.0.0.9:80                        3       35       30 617283945     2500\n",
    );
    assert_eq!(list_service_with(&stats_table()[0], &rate, &NoNames), want);
}

#[test]
fn format_stats_dest_counters_keep_low_32_bits() {
    let mut t = stats_table();
    t[0].service.stats = stats([1 << 32; 10]);
    t[0].destinations[0].stats = stats([(1 << 32) + 5; 10]);
    let opts = ListOptions {
        stats: true,
        exact: true,
        ..numeric()
    };
    let got = list_service_with(&t[0], &opts, &NoNames);
    assert!(got.ends_with(concat!(
        "TCP  250.0.0.1:80                 4294967296 4294967296 4294967296 4294967296 4294967296\n",
        "  -> 250.0.0.9:80                        5        5        5 4294967301 4294967301\n",
    )));
}

#[test]
fn format_stats_ipv6_and_long_names_push_columns() {
    let mut s = svc(tcp("2001:db8:1234:5678:9abc:def0:1234:5678", 65535), "wlc");
    s.stats.conns = 1;
    let t = entry(
        s,
        vec![
            dest("2001:db8::2", 80, Masq, 1),
            dest("10.0.0.2", 80, Masq, 1),
        ],
    );
    let opts = ListOptions {
        stats: true,
        ..numeric()
    };
    let got = list_service_with(&t, &opts, &NoNames);
    assert_eq!(
        got.lines().skip(2).collect::<Vec<_>>(),
        [
            "TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535        1        0        0        0        0",
            "  -> 10.0.0.2:80                         0        0        0        0        0",
            "  -> [2001:db8::2]:80                    0        0        0        0        0",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// §2.4 --thresholds / --persistent-conn / --tun-info

fn threshold_entry() -> ServiceEntry {
    let mut d = dest("250.0.0.9", 80, Masq, 1);
    d.active_conns = 3;
    d.inact_conns = 10;
    d.persist_conns = 2;
    entry(svc(tcp("1.0.0.1", 80), "wlc"), vec![d])
}

#[test]
fn format_thresholds_spec_2_4() {
    let opts = ListOptions {
        thresholds: true,
        persistent_conn: true,
        tun_info: true,
        ..numeric()
    };
    let want = concat!(
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
        "  -> RemoteAddress:Port\n",
        "TCP  1.0.0.1:80 wlc\n",
        "  -> 250.0.0.9:80                 0          0          3          10        \n",
    );
    assert_eq!(list_service_with(&threshold_entry(), &opts, &NoNames), want);
    let mut e = threshold_entry();
    e.destinations[0].u_threshold = 2147483647;
    e.destinations[0].l_threshold = 100;
    let got = list_service_with(&e, &opts, &NoNames);
    assert!(got.ends_with(
        "  -> 250.0.0.9:80                 2147483647 100        3          10        \n"
    ));
}

#[test]
fn format_persistent_conn_spec_2_4() {
    let opts = ListOptions {
        persistent_conn: true,
        tun_info: true,
        ..numeric()
    };
    let want = concat!(
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
        "  -> RemoteAddress:Port\n",
        "TCP  1.0.0.1:80 wlc\n",
        "  -> 250.0.0.9:80                 1         2           3          10        \n",
    );
    assert_eq!(list_service_with(&threshold_entry(), &opts, &NoNames), want);
}

#[test]
fn format_tun_info_spec_2_4() {
    let opts = ListOptions {
        tun_info: true,
        nosort: true,
        ..numeric()
    };
    let e = entry(
        svc(tcp("10.0.0.1", 80), "wlc"),
        vec![
            dest("192.168.1.11", 80, Tunnel, 0),
            dest("192.168.1.9", 80, Route, 1),
        ],
    );
    let want = concat!(
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        "TCP  10.0.0.1:80 wlc\n",
        "  -> 192.168.1.11:80              Tunnel  ipip          0      0          0         \n",
        "  -> 192.168.1.9:80               Route   n/a           1      0          0         \n",
    );
    assert_eq!(list_service_with(&e, &opts, &NoNames), want);
}

fn tunnels() -> Vec<Destination> {
    let mut out = Vec::new();
    for (i, (ty, port, fl)) in [
        (TunnelType::Gue, 6080, tun_flags::NOCSUM),
        (TunnelType::Gue, 65535, tun_flags::CSUM),
        (TunnelType::Gue, 1, tun_flags::REMCSUM),
        (TunnelType::Gre, 0, tun_flags::NOCSUM),
        (TunnelType::Gre, 0, tun_flags::CSUM),
        (TunnelType::Ipip, 0, tun_flags::NOCSUM),
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = dest(&format!("10.2.0.{}", i + 1), 80, Tunnel, 1);
        d.tun_type = ty;
        d.tun_port = port;
        d.tun_flags = fl;
        out.push(d);
    }
    out.push(dest("10.2.0.7", 80, Masq, 1));
    out.push(dest("10.2.0.8", 80, Local, 1));
    out
}

#[test]
fn format_tun_info_gue_gre_columns() {
    let opts = ListOptions {
        tun_info: true,
        ..numeric()
    };
    let e = entry(svc(tcp("10.0.0.1", 80), "wlc"), tunnels());
    let got = list_service_with(&e, &opts, &NoNames);
    assert_eq!(
        got.lines().skip(3).collect::<Vec<_>>(),
        [
            "  -> 10.2.0.1:80                  Tunnel  gue:6080:-c   1      0          0         ",
            "  -> 10.2.0.2:80                  Tunnel  gue:65535:+c  1      0          0         ",
            "  -> 10.2.0.3:80                  Tunnel  gue:1:r+c     1      0          0         ",
            "  -> 10.2.0.4:80                  Tunnel  gre:-c        1      0          0         ",
            "  -> 10.2.0.5:80                  Tunnel  gre:+c        1      0          0         ",
            "  -> 10.2.0.6:80                  Tunnel  ipip          1      0          0         ",
            "  -> 10.2.0.7:80                  Masq    n/a           1      0          0         ",
            "  -> 10.2.0.8:80                  Local   n/a           1      0          0         ",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// §2.5 -L -t svc

#[test]
fn format_list_service_has_no_version_header() {
    let table = spec_table();
    let e = table
        .iter()
        .find(|e| e.service.id == tcp("10.0.0.1", 443))
        .unwrap();
    assert_eq!(
        list_service_with(e, &numeric(), &NoNames),
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.1:443 rr persistent 360\n",
            "  -> 192.168.1.30:443             Masq    1      0          0         \n",
        )
    );
}

// ---------------------------------------------------------------------------------------------
// §2.6 --timeout / --daemon

#[test]
fn format_timeouts() {
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(timeouts(&t), "Timeout (tcp tcpfin udp): 900 120 300\n");
    let t = Timeouts {
        tcp: 2678400,
        tcp_fin: 0,
        udp: 1,
    };
    assert_eq!(timeouts(&t), "Timeout (tcp tcpfin udp): 2678400 0 1\n");
}

#[test]
fn format_daemons() {
    assert_eq!(daemons(&[]), "");
    let backup = Daemon {
        state: DaemonState::Backup,
        mcast_ifn: "eth1".into(),
        sync_id: 7,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    let master = Daemon {
        state: DaemonState::Master,
        mcast_ifn: "dummy0".into(),
        sync_id: 0,
        sync_maxlen: 1472,
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: 8848,
        mcast_ttl: 1,
    };
    assert_eq!(
        daemons(&[backup.clone(), master.clone()]),
        concat!(
            "master sync daemon (mcast=dummy0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
            "backup sync daemon (mcast=eth1, syncid=7)\n",
        )
    );
    let v6 = Daemon {
        sync_maxlen: 1452,
        mcast_group: Some(ip("ff02::1:81")),
        mcast_ttl: 0,
        ..master
    };
    assert_eq!(
        daemons(&[v6]),
        "master sync daemon (mcast=dummy0, syncid=0, maxlen=1452, group=ff02::1:81, port=8848)\n"
    );
    let only_port = Daemon {
        mcast_port: 9000,
        ..backup
    };
    assert_eq!(
        daemons(&[only_port]),
        "backup sync daemon (mcast=eth1, syncid=7, port=9000)\n"
    );
}

// ---------------------------------------------------------------------------------------------
// §2.7 -c

const PROC_HEADER: &str =
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n";

fn proc_conns() -> String {
    [
        PROC_HEADER,
        "TCP 0A000002 D431 CFAF2C6E 1F90 AC100002 1F90 ESTABLISHED     899\n",
        "UDP 0A000002 0035 7F000001 0035 7F000001 0035 UDP             299\n",
        "TCP 2001:0db8:0000:0000:0000:0000:0000:0001 C350 2001:0db8:0000:0000:0000:0000:0000:0002 0050 2001:0db8:0000:0000:0000:0000:0000:0003 0050 FIN_WAIT         61\n",
    ]
    .concat()
}

#[test]
fn format_connections_spec_2_7() {
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination\n",
        "TCP 14:59  ESTABLISHED 10.0.0.2:54321     207.175.44.110:8080 172.16.0.2:8080\n",
        "UDP 04:59  UDP         10.0.0.2:53        127.0.0.1:53       127.0.0.1:53\n",
        "TCP 01:01  FIN_WAIT    [2001:db8::1]:50000 [2001:db8::2]:80   [2001:db8::3]:80\n",
    );
    assert_eq!(connections_with(&proc_conns(), true, false, &NoNames), want);
}

#[test]
fn format_connections_names() {
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination\n",
        "TCP 14:59  ESTABLISHED 10.0.0.2:54321     207.175.44.110:http-alt 172.16.0.2:http-alt\n",
        "UDP 04:59  UDP         10.0.0.2:domain    localhost:domain   localhost:domain\n",
        "TCP 01:01  FIN_WAIT    [2001:db8::1]:50000 [2001:db8::2]:http [2001:db8::3]:http\n",
    );
    assert_eq!(
        connections_with(&proc_conns(), false, false, &FakeNames::debian()),
        want
    );
}

#[test]
fn format_connections_expire_and_odd_rows() {
    let text = [
        PROC_HEADER,
        "TCP 0A000002 0001 0A000001 0050 0A000003 0050 SYN_RECV          0\n",
        "TCP 0A000002 0001 0A000001 0050 0A000003 0050 CLOSE_WAIT   359999\n",
        "SCTP 0A000002 0001 0A000001 0050 0A000003 0050 ESTABLISHED    61\n",
        "IP 0A000002 0000 0A000001 0000 0A000003 0000 NONE              5\n",
        "garbage\n",
        // mixed families (IPv4 client over an IPv6 tunnel destination)
        "TCP 0A000002 0001 0A000001 0050 2001:0db8:0000:0000:0000:0000:0000:0009 0050 ESTABLISHED   100",
    ]
    .concat();
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination\n",
        "TCP 00:00  SYN_RECV    10.0.0.2:1         10.0.0.1:80        10.0.0.3:80\n",
        "TCP 5999:59 CLOSE_WAIT  10.0.0.2:1         10.0.0.1:80        10.0.0.3:80\n",
        "SCTP 01:01  ESTABLISHED 10.0.0.2:1         10.0.0.1:80        10.0.0.3:80\n",
        "IP  00:05  NONE        10.0.0.2:0         10.0.0.1:0         10.0.0.3:0\n",
        "TCP 01:40  ESTABLISHED 10.0.0.2:1         10.0.0.1:80        [2001:db8::9]:80\n",
    );
    assert_eq!(connections_with(&text, true, false, &NoNames), want);
    // Names: unknown protocols never get service names.
    let got = connections_with(&text, false, false, &FakeNames::debian());
    assert!(
        got.contains("IP  00:05  NONE        10.0.0.2:0         10.0.0.1:0         10.0.0.3:0\n")
    );
}

#[test]
fn format_connections_persistent_conn() {
    let text = [
        PROC_HEADER,
        "UDP 0A000002 13C4 0A000001 13C4 0A000003 13C4 UDP             179 sip 3848AB@10.0.0.2\n",
        "TCP 0A000002 D431 CFAF2C6E 1F90 AC100002 1F90 ESTABLISHED     899\n",
    ]
    .concat();
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination        pe name          pe_data\n",
        "UDP 02:59  UDP         10.0.0.2:5060      10.0.0.1:5060      10.0.0.3:5060    sip                3848AB@10.0.0.2\n",
        "TCP 14:59  ESTABLISHED 10.0.0.2:54321     207.175.44.110:8080 172.16.0.2:8080\n",
    );
    assert_eq!(connections_with(&text, true, true, &NoNames), want);
    // Without --persistent-conn the pe columns are not shown.
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination\n",
        "UDP 02:59  UDP         10.0.0.2:5060      10.0.0.1:5060      10.0.0.3:5060\n",
        "TCP 14:59  ESTABLISHED 10.0.0.2:54321     207.175.44.110:8080 172.16.0.2:8080\n",
    );
    assert_eq!(connections_with(&text, true, false, &NoNames), want);
}

#[test]
fn format_connections_header_only_and_empty() {
    assert_eq!(
        connections_with(PROC_HEADER, true, false, &NoNames),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
    assert_eq!(connections_with("", true, false, &NoNames), "");
}

// ---------------------------------------------------------------------------------------------
// §2.8 -S

#[test]
fn format_save_numeric_spec_2_8() {
    let want = concat!(
        "-A -f -1 -s lc\n",
        "-A -t 10.0.0.1:80 -s wlc\n",
        "-a -t 10.0.0.1:80 -r 192.168.1.9:80 -g -w 1\n",
        "-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3\n",
        "-a -t 10.0.0.1:80 -r 192.168.1.11:80 -i -w 0 --tun-type ipip\n",
        "-a -t 10.0.0.1:80 -r 192.168.1.12:81 -m -w 70000\n",
        "-a -t 10.0.0.1:80 -r 192.168.1.12:82 -m -w 2147483647\n",
        "-A -t 10.0.0.1:443 -s rr -p 360\n",
        "-a -t 10.0.0.1:443 -r 192.168.1.30:443 -m -w 1\n",
        "-A -t 10.0.0.2:0 -s wrr -p 600 -M 255.255.255.0\n",
        "-A -u 10.0.0.1:53 -s sh -o -b sh-fallback,sh-port\n",
        "-A -f 5 -s lc\n",
        "-a -f 5 -r 192.168.1.20:0 -g -w 1\n",
    );
    assert_eq!(save_with(&spec_table(), true, &NoNames), want);
}

#[test]
fn format_save_names() {
    let table = vec![
        entry(
            svc(tcp("10.0.0.1", 80), "wlc"),
            vec![dest("192.168.1.10", 8080, Masq, 3)],
        ),
        entry(
            svc(tcp("127.0.0.1", 8080), "lblc"),
            vec![dest("127.0.0.1", 3306, Masq, 1)],
        ),
    ];
    assert_eq!(
        save_with(&table, false, &FakeNames::debian()),
        concat!(
            "-A -t 10.0.0.1:http -s wlc\n",
            "-a -t 10.0.0.1:http -r 192.168.1.10:http-alt -m -w 3\n",
            "-A -t localhost:http-alt -s lblc\n",
            "-a -t localhost:http-alt -r localhost:mysql -m -w 1\n",
        )
    );
}

#[test]
fn format_save_tunnels_ipv6_pe_flags() {
    let mut v6 = persistent(svc(tcp("2001:db8::1", 80), "rr"), 360);
    v6.netmask = 64;
    let mut sip = persistent(svc(udp("10.0.0.1", 5060), "rr"), 300);
    sip.pe_name = Some("sip".into());
    sip.flags |= flags::ONEPACKET;
    let mut mh = svc(addr_id(Protocol::Sctp, "10.0.0.1", 9), "mh");
    mh.flags |= flags::MH_FALLBACK;
    let mut other = svc(tcp("10.0.0.1", 10), "wlc");
    other.flags |= flags::SCHED2;
    let mut thresholds = dest("10.3.0.1", 10, Masq, 1);
    thresholds.u_threshold = 100;
    thresholds.l_threshold = 10;
    let table = vec![
        entry(svc(fwm6(5), "wlc"), vec![dest("2001:db8::1", 0, Route, 1)]),
        entry(v6, vec![dest("2001:db8::2", 80, Masq, 2)]),
        entry(sip, vec![]),
        entry(mh, vec![]),
        entry(other, vec![thresholds, dest("10.3.0.2", 10, Local, 1)]),
        entry(svc(tcp("10.0.0.1", 11), "wlc"), tunnels()),
    ];
    let want = concat!(
        "-A -t 10.0.0.1:10 -s wlc -b flag-2\n",
        "-a -t 10.0.0.1:10 -r 10.3.0.1:10 -m -w 1\n",
        "-a -t 10.0.0.1:10 -r 10.3.0.2:10 -g -w 1\n",
        "-A -t 10.0.0.1:11 -s wlc\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.1:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.2:80 -i -w 1 --tun-type gue --tun-port 65535 --tun-csum\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.3:80 -i -w 1 --tun-type gue --tun-port 1 --tun-remcsum\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.4:80 -i -w 1 --tun-type gre --tun-nocsum\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.5:80 -i -w 1 --tun-type gre --tun-csum\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.6:80 -i -w 1 --tun-type ipip\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.7:80 -m -w 1\n",
        "-a -t 10.0.0.1:11 -r 10.2.0.8:80 -g -w 1\n",
        "-A -u 10.0.0.1:5060 -s rr -p 300 --pe sip -o\n",
        "-A --sctp-service 10.0.0.1:9 -s mh -b mh-fallback\n",
        "-A -t [2001:db8::1]:80 -s rr -p 360 -M 64\n",
        "-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -m -w 2\n",
        "-A -f 5 -6 -s wlc\n",
        "-a -f 5 -6 -r [2001:db8::1]:0 -g -w 1\n",
    );
    assert_eq!(save_with(&table, true, &NoNames), want);
}

#[test]
fn format_save_long_names_not_truncated_below_59() {
    let mut names = FakeNames::debian();
    names
        .hosts
        .insert(ip("10.0.0.1"), "a-very-long-virtual-host-name.example.org");
    let table = vec![entry(
        svc(tcp("10.0.0.1", 80), "wlc"),
        vec![dest("10.0.0.1", 8080, Masq, 1)],
    )];
    assert_eq!(
        save_with(&table, false, &names),
        concat!(
            "-A -t a-very-long-virtual-host-name.example.org:http -s wlc\n",
            "-a -t a-very-long-virtual-host-name.example.org:http -r a-very-long-virtual-host-name.example.org:http-alt -m -w 1\n",
        )
    );
}

// ---------------------------------------------------------------------------------------------
// §2.9

#[test]
fn format_version_line() {
    assert_eq!(
        version_line(),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"
    );
}
