//! The text ipvsadm 1.31 (Debian) prints: `-L` listings in all their layouts, `-S` rules, `-c`
//! connection entries, `--timeout`, `--daemon` and the version line. Pure formatting over the
//! [`ipvs`] model; names come from a [`Resolver`] (never asked in numeric mode).
//!
//! Quirks kept on purpose, as the real binary shows them:
//! - sorting uses ipvsadm's comparison by C `int` subtraction (far-apart IPv4 addresses and
//!   fwmarks above `INT_MAX` compare "wrong") and glibc's `qsort` (a stable top-down merge sort);
//! - fwmarks are printed with `%d` (4294967295 → `-1`);
//! - destination stats keep only the low 32 bits of every counter but the byte counts (libipvs
//!   parses the 64-bit destination stats with its 32-bit parser);
//! - IPv4 service names are cut to 33 bytes and destination names to 28 in listings;
//! - fixed-width columns with trailing spaces.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs::{
    flags, Daemon, DaemonState, Destination, Family, ForwardMethod, Info, Protocol, Service,
    ServiceEntry, ServiceId, Stats, Timeouts, TunnelType,
};

use crate::names::{self, Resolver, SystemResolver};

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;

/// The list options that change what `-L` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub tun_info: bool,
    pub exact: bool,
    pub nosort: bool,
}

/// `ipvsadm -L` (no service): the version header, the column titles and every service.
pub fn list_all(info: &Info, table: &[ServiceEntry], opts: &ListOptions) -> String {
    list_all_with(info, table, opts, &SystemResolver::new())
}

/// `ipvsadm -L -t|-u|--sctp-service|-f svc`: the column titles and that service.
pub fn list_service(entry: &ServiceEntry, opts: &ListOptions) -> String {
    list_service_with(entry, opts, &SystemResolver::new())
}

/// `ipvsadm -S [-n]`: one `-A` line per service followed by its `-a` lines.
pub fn save(table: &[ServiceEntry], numeric: bool) -> String {
    save_with(table, numeric, &SystemResolver::new())
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp as i32, t.tcp_fin as i32, t.udp as i32
    )
}

/// `ipvsadm -L --daemon`: one line per running daemon, master first; nothing when none runs.
pub fn daemons(d: &[Daemon]) -> String {
    let mut out = String::new();
    for state in [DaemonState::Master, DaemonState::Backup] {
        for daemon in d.iter().filter(|x| x.state == state) {
            let _ = write!(
                out,
                "{} sync daemon (mcast={}, syncid={}",
                state.name(),
                daemon.mcast_ifn,
                daemon.sync_id as i32
            );
            if daemon.sync_maxlen != 0 {
                let _ = write!(out, ", maxlen={}", daemon.sync_maxlen);
            }
            if let Some(group) = daemon.mcast_group {
                let _ = write!(out, ", group={}", names::inet_ntop(group));
            }
            if daemon.mcast_port != 0 {
                let _ = write!(out, ", port={}", daemon.mcast_port);
            }
            if daemon.mcast_ttl != 0 {
                let _ = write!(out, ", ttl={}", daemon.mcast_ttl);
            }
            out.push_str(")\n");
        }
    }
    out
}

/// `ipvsadm -L -c [-n] [--persistent-conn]` from the text of `/proc/net/ip_vs_conn`. Returns ""
/// when the text has no first line at all (ipvsadm then fails with "unexpected input").
pub fn connections(proc_text: &str, numeric: bool, persistent_conn: bool) -> String {
    connections_with(proc_text, numeric, persistent_conn, &SystemResolver::new())
}

/// `ipvsadm -v` (and the first line of `-h`), without the newline.
pub fn version_line() -> &'static str {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"
}

// ---------------------------------------------------------------------------------------------
// Listing

/// Which columns a listing shows; the first option set wins in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    Plain,
    /// `-S`.
    Rule,
}

impl Layout {
    fn of(opts: &ListOptions) -> Layout {
        if opts.stats {
            Layout::Stats
        } else if opts.rate {
            Layout::Rate
        } else if opts.thresholds {
            Layout::Thresholds
        } else if opts.persistent_conn {
            Layout::PersistentConn
        } else if opts.tun_info {
            Layout::TunInfo
        } else {
            Layout::Plain
        }
    }
}

struct Style<'a> {
    layout: Layout,
    numeric: bool,
    exact: bool,
    sort: bool,
    names: &'a dyn Resolver,
}

impl<'a> Style<'a> {
    fn list(opts: &ListOptions, names: &'a dyn Resolver) -> Style<'a> {
        Style {
            layout: Layout::of(opts),
            numeric: opts.numeric,
            exact: opts.exact,
            sort: !opts.nosort,
            names,
        }
    }
}

pub(crate) fn list_all_with(
    info: &Info,
    table: &[ServiceEntry],
    opts: &ListOptions,
    names: &dyn Resolver,
) -> String {
    let style = Style::list(opts, names);
    let (major, minor, patch) = info.version_triple();
    let mut out = format!(
        "IP Virtual Server version {major}.{minor}.{patch} (size={})\n",
        info.conn_tab_size as i32
    );
    out.push_str(title(style.layout));
    for entry in ordered_services(table, style.sort) {
        service_entry(&mut out, entry, &style);
    }
    out
}

pub(crate) fn list_service_with(
    entry: &ServiceEntry,
    opts: &ListOptions,
    names: &dyn Resolver,
) -> String {
    let style = Style::list(opts, names);
    let mut out = title(style.layout).to_string();
    service_entry(&mut out, entry, &style);
    out
}

pub(crate) fn save_with(table: &[ServiceEntry], numeric: bool, names: &dyn Resolver) -> String {
    let style = Style {
        layout: Layout::Rule,
        numeric,
        exact: false,
        sort: true,
        names,
    };
    let mut out = String::new();
    for entry in ordered_services(table, true) {
        service_entry(&mut out, entry, &style);
    }
    out
}

fn title(layout: Layout) -> &'static str {
    match layout {
        Layout::Stats => concat!(
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
            "  -> RemoteAddress:Port\n"
        ),
        Layout::Rate => concat!(
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
            "  -> RemoteAddress:Port\n"
        ),
        Layout::Thresholds => concat!(
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n"
        ),
        Layout::PersistentConn => concat!(
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n"
        ),
        Layout::TunInfo => concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        ),
        Layout::Plain => concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        ),
        Layout::Rule => "",
    }
}

/// The protocol ipvsadm looks ports up with. Over netlink libipvs leaves the protocol of a
/// fwmark service at 0, so its destination ports are never named.
fn lookup_protocol(id: &ServiceId) -> Option<Protocol> {
    match id {
        ServiceId::Address { protocol, .. } => Some(*protocol),
        ServiceId::Fwmark { .. } => None,
    }
}

fn service_entry(out: &mut String, entry: &ServiceEntry, style: &Style) {
    let svc = &entry.service;
    let rule = style.layout == Layout::Rule;
    let family = svc.id.family();
    let svc_name = match svc.id {
        ServiceId::Fwmark { family, mark } => {
            let mark = mark as i32;
            match (rule, family) {
                (true, Family::Inet) => format!("-f {mark}"),
                (true, Family::Inet6) => format!("-f {mark} -6"),
                (false, Family::Inet) => format!("FWM  {mark}"),
                (false, Family::Inet6) => format!("FWM  {mark} IPv6"),
            }
        }
        ServiceId::Address {
            protocol,
            addr,
            port,
        } => {
            let vname = names::addrport(addr, port, Some(protocol), style.numeric, style.names);
            if rule {
                format!("{} {vname}", protocol_option(protocol))
            } else {
                let mut s = format!("{:<4} {vname}", protocol.name());
                if family != Family::Inet6 {
                    names::truncate_bytes(&mut s, 33);
                }
                s
            }
        }
    };

    match style.layout {
        Layout::Rule => {
            let _ = write!(out, "-A {svc_name} -s {}", svc.scheduler);
            if svc.is_persistent() {
                let _ = write!(out, " -p {}", svc.timeout);
                if let Some(mask) = netmask_text(svc) {
                    let _ = write!(out, " -M {mask}");
                }
            }
            if let Some(pe) = pe_name(svc) {
                let _ = write!(out, " --pe {pe}");
            }
            if svc.flags & flags::ONEPACKET != 0 {
                out.push_str(" -o");
            }
            if has_sched_flags(svc) {
                let _ = write!(out, " -b {}", sched_flags(svc));
            }
        }
        Layout::Stats => {
            let s = &svc.stats;
            let _ = write!(out, "{svc_name:<33}");
            for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(v, style.exact));
            }
        }
        Layout::Rate => {
            let s = &svc.stats;
            let _ = write!(out, "{svc_name:<33}");
            for v in [s.cps, s.inpps, s.outpps, s.inbps, s.outbps] {
                out.push_str(&largenum(v, style.exact));
            }
        }
        _ => {
            let _ = write!(out, "{svc_name} {}", svc.scheduler);
            if has_sched_flags(svc) {
                let _ = write!(out, " ({})", sched_flags(svc));
            }
            if svc.is_persistent() {
                let _ = write!(out, " persistent {}", svc.timeout);
                if let Some(mask) = netmask_text(svc) {
                    let _ = write!(out, " mask {mask}");
                }
                if let Some(pe) = pe_name(svc) {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if svc.flags & flags::ONEPACKET != 0 {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');

    let proto = lookup_protocol(&svc.id);
    for dest in ordered_dests(&entry.destinations, style.sort) {
        let mut dname = names::addrport(dest.addr, dest.port, proto, style.numeric, style.names);
        if !rule && dest.addr.is_ipv4() {
            names::truncate_bytes(&mut dname, 28);
        }
        destination_line(out, &svc_name, &dname, dest, style);
    }
}

fn destination_line(out: &mut String, svc_name: &str, dname: &str, d: &Destination, st: &Style) {
    let _ = match st.layout {
        Layout::Rule => {
            let _ = write!(
                out,
                "-a {svc_name} -r {dname} {} -w {}",
                forward_switch(d.forward),
                d.weight
            );
            if d.forward == ForwardMethod::Tunnel {
                match d.tun_type {
                    TunnelType::Ipip => out.push_str(" --tun-type ipip"),
                    TunnelType::Gue => {
                        let _ = write!(
                            out,
                            " --tun-type gue --tun-port {} {}",
                            d.tun_port,
                            tun_flags_option(d.tun_flags)
                        );
                    }
                    TunnelType::Gre => {
                        let _ = write!(out, " --tun-type gre {}", tun_flags_option(d.tun_flags));
                    }
                }
            }
            writeln!(out)
        }
        Layout::Stats => {
            let s = dest_stats(&d.stats);
            let _ = write!(out, "  -> {dname:<28}");
            for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(v, st.exact));
            }
            writeln!(out)
        }
        Layout::Rate => {
            let s = dest_stats(&d.stats);
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                s.cps, s.inpps, s.outpps
            );
            for v in [s.inbps, s.outbps] {
                out.push_str(&largenum(v, st.exact));
            }
            writeln!(out)
        }
        Layout::Thresholds => writeln!(
            out,
            "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
            d.u_threshold, d.l_threshold, d.active_conns, d.inact_conns
        ),
        Layout::PersistentConn => writeln!(
            out,
            "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
            d.weight as u32, d.persist_conns, d.active_conns, d.inact_conns
        ),
        Layout::TunInfo => writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            forward_name(d.forward),
            tunnel_info(d),
            d.weight,
            d.active_conns,
            d.inact_conns
        ),
        Layout::Plain => writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
            forward_name(d.forward),
            d.weight,
            d.active_conns,
            d.inact_conns
        ),
    };
}

fn protocol_option(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
        Protocol::Sctp => "--sctp-service",
    }
}

/// The persistence mask when it is not the default (/32, /128).
fn netmask_text(svc: &Service) -> Option<String> {
    match svc.id.family() {
        Family::Inet => {
            (svc.netmask != 0xffff_ffff).then(|| Ipv4Addr::from(svc.netmask).to_string())
        }
        Family::Inet6 => (svc.netmask != 128).then(|| (svc.netmask as i32).to_string()),
    }
}

fn pe_name(svc: &Service) -> Option<&str> {
    svc.pe_name.as_deref().filter(|pe| !pe.is_empty())
}

fn has_sched_flags(svc: &Service) -> bool {
    svc.flags & (flags::SCHED1 | flags::SCHED2 | flags::SCHED3) != 0
}

/// Comma-joined scheduler flag names; the names depend on the scheduler.
fn sched_flags(svc: &Service) -> String {
    let table: &[(u32, &str)] = match svc.scheduler.as_str() {
        "sh" => &[
            (flags::SH_FALLBACK, "sh-fallback"),
            (flags::SH_PORT, "sh-port"),
        ],
        "mh" => &[
            (flags::MH_FALLBACK, "mh-fallback"),
            (flags::MH_PORT, "mh-port"),
        ],
        _ => &[
            (flags::SCHED1, "flag-1"),
            (flags::SCHED2, "flag-2"),
            (flags::SCHED3, "flag-3"),
        ],
    };
    table
        .iter()
        .filter(|(bit, _)| svc.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// The forwarding column; glibc prints a NULL string as `(null)`.
fn forward_name(f: ForwardMethod) -> &'static str {
    match f {
        ForwardMethod::Masq => "Masq",
        ForwardMethod::Local => "Local",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::Route => "Route",
        ForwardMethod::Bypass => "(null)",
    }
}

fn forward_switch(f: ForwardMethod) -> &'static str {
    match f {
        ForwardMethod::Masq => "-m",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::Local | ForwardMethod::Route => "-g",
        ForwardMethod::Bypass => "(null)",
    }
}

/// ipvsadm indexes its tables with the raw flags value (0 nocsum, 1 csum, 2 remcsum); other
/// values are out of its tables (undefined in C) and shown as `?` here.
fn tun_flags_short(flags: u16) -> &'static str {
    match flags {
        0 => "-c",
        1 => "+c",
        2 => "r+c",
        _ => "?",
    }
}

fn tun_flags_option(flags: u16) -> &'static str {
    match flags {
        0 => "--tun-nocsum",
        1 => "--tun-csum",
        2 => "--tun-remcsum",
        _ => "?",
    }
}

/// The TunnelInfo column: `ipip`, `gue:PORT:FLAGS`, `gre:FLAGS`, `n/a` for other methods.
fn tunnel_info(d: &Destination) -> String {
    if d.forward != ForwardMethod::Tunnel {
        return "n/a".into();
    }
    let mut s = match d.tun_type {
        TunnelType::Ipip => "ipip".to_string(),
        TunnelType::Gue => format!("gue:{}:{}", d.tun_port, tun_flags_short(d.tun_flags)),
        TunnelType::Gre => format!("gre:{}", tun_flags_short(d.tun_flags)),
    };
    names::truncate_bytes(&mut s, 15);
    s
}

/// libipvs reads a destination's 64-bit stats with its 32-bit parser: only the byte counters
/// keep all 64 bits, the others their low 32 bits.
fn dest_stats(s: &Stats) -> Stats {
    let low = |v: u64| v & 0xffff_ffff;
    Stats {
        conns: low(s.conns),
        inpkts: low(s.inpkts),
        outpkts: low(s.outpkts),
        inbytes: s.inbytes,
        outbytes: s.outbytes,
        cps: low(s.cps),
        inpps: low(s.inpps),
        outpps: low(s.outpps),
        inbps: low(s.inbps),
        outbps: low(s.outbps),
    }
}

/// ipvsadm's `print_largenum`: 9 columns (a leading space included); large values abbreviated
/// with K/M/G/T unless exact, where wide values just get one leading space.
fn largenum(v: u64, exact: bool) -> String {
    if exact {
        let digits = v.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    if v < 100_000_000 {
        format!("{v:>9}")
    } else if v < 1_000_000_000 {
        format!("{:>8}K", v / 1_000)
    } else if v < 100_000_000_000 {
        format!("{:>8}M", v / 1_000_000)
    } else if v < 100_000_000_000_000 {
        format!("{:>8}G", v / 1_000_000_000)
    } else {
        format!("{:>8}T", v / 1_000_000_000_000)
    }
}

// ---------------------------------------------------------------------------------------------
// Sorting

/// The four 32-bit words ipvsadm compares: an IPv4 address sits in the first word of the
/// 16-byte union, the rest zero.
fn addr_words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

/// Address comparison as libipvs does it: by the first operand's family, word by word, each
/// as a wrapping unsigned subtraction read as a C `int`.
fn cmp_addr(first_is_v6: bool, a: &[u32; 4], b: &[u32; 4]) -> i32 {
    let words = if first_is_v6 { 4 } else { 1 };
    let mut r = 0;
    for i in 0..words {
        r = a[i].wrapping_sub(b[i]) as i32;
        if r != 0 {
            break;
        }
    }
    r
}

struct ServiceKey {
    fwmark: u32,
    af: u16,
    protocol: u16,
    words: [u32; 4],
    port: u16,
}

fn service_key(id: &ServiceId) -> ServiceKey {
    match *id {
        ServiceId::Address {
            protocol,
            addr,
            port,
        } => ServiceKey {
            fwmark: 0,
            af: Family::of(&addr).number(),
            protocol: protocol.number(),
            words: addr_words(&addr),
            port,
        },
        // Over netlink libipvs fills only the mark of a fwmark service.
        ServiceId::Fwmark { family, mark } => ServiceKey {
            fwmark: mark,
            af: family.number(),
            protocol: 0,
            words: [0; 4],
            port: 0,
        },
    }
}

/// libipvs `ipvs_cmp_services`.
fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let r = a.fwmark.wrapping_sub(b.fwmark) as i32;
    if r != 0 {
        return r;
    }
    let r = i32::from(a.af) - i32::from(b.af);
    if r != 0 {
        return r;
    }
    let r = i32::from(a.protocol) - i32::from(b.protocol);
    if r != 0 {
        return r;
    }
    let r = cmp_addr(a.af == Family::AF_INET6, &a.words, &b.words);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// libipvs `ipvs_cmp_dests`.
fn cmp_dests(a: &Destination, b: &Destination) -> i32 {
    let r = cmp_addr(a.addr.is_ipv6(), &addr_words(&a.addr), &addr_words(&b.addr));
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

fn ordered_services(table: &[ServiceEntry], sort: bool) -> Vec<&ServiceEntry> {
    let mut keyed: Vec<(ServiceKey, &ServiceEntry)> = table
        .iter()
        .map(|e| (service_key(&e.service.id), e))
        .collect();
    if sort {
        glibc_qsort(&mut keyed, &|a, b| cmp_services(&a.0, &b.0));
    }
    keyed.into_iter().map(|(_, e)| e).collect()
}

fn ordered_dests(dests: &[Destination], sort: bool) -> Vec<&Destination> {
    let mut v: Vec<&Destination> = dests.iter().collect();
    if sort {
        glibc_qsort(&mut v, &|a, b| cmp_dests(a, b));
    }
    v
}

/// glibc's `qsort` (`msort_with_tmp`): a top-down merge sort taking the left element unless
/// the comparison is positive. Emulated step by step because ipvsadm's comparisons are not a
/// total order, so any other algorithm could order the same input differently.
fn glibc_qsort<T>(v: &mut Vec<T>, cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut tmp = Vec::with_capacity(n);
    msort(&mut idx, &mut tmp, &|a, b| cmp(&v[*a], &v[*b]));
    let mut slots: Vec<Option<T>> = v.drain(..).map(Some).collect();
    v.extend(
        idx.into_iter()
            .map(|i| slots[i].take().expect("permutation")),
    );
}

fn msort(b: &mut [usize], tmp: &mut Vec<usize>, cmp: &dyn Fn(&usize, &usize) -> i32) {
    let n = b.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = b.split_at_mut(n1);
        msort(left, tmp, cmp);
        msort(right, tmp, cmp);
    }
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&b[i], &b[j]) <= 0 {
            tmp.push(b[i]);
            i += 1;
        } else {
            tmp.push(b[j]);
            j += 1;
        }
    }
    tmp.extend_from_slice(&b[i..n1]);
    // What is left of the right half is already in place.
    b[..tmp.len()].copy_from_slice(tmp);
}

// ---------------------------------------------------------------------------------------------
// Connections (-c)

pub(crate) fn connections_with(
    proc_text: &str,
    numeric: bool,
    persistent_conn: bool,
    names: &dyn Resolver,
) -> String {
    let mut lines = fgets_lines(proc_text.as_bytes());
    // The kernel's column header.
    if lines.next().is_none() {
        return String::new();
    }
    let mut out = String::from("IPVS connection entries\n");
    out.push_str(if persistent_conn {
        "pro expire state       source             virtual            destination        pe name          pe_data\n"
    } else {
        "pro expire state       source             virtual            destination\n"
    });
    for line in lines {
        connection_line(&mut out, line, numeric, persistent_conn, names);
    }
    out
}

/// The pieces `fgets(buf, 256, f)` returns: lines (newline included), long lines cut every 255
/// bytes.
fn fgets_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .flat_map(|line| line.chunks(255))
}

/// One `/proc/net/ip_vs_conn` row, read like ipvsadm's
/// `sscanf("%s %s %hX %s %hX %s %hX %s %d %s %s")`. Rows with fewer than 9 fields (never
/// written by the kernel; undefined output in ipvsadm) are skipped.
fn connection_line(
    out: &mut String,
    line: &[u8],
    numeric: bool,
    persistent_conn: bool,
    names: &dyn Resolver,
) {
    let mut row = ConnRow::default();
    let fields = row.scan(&mut Scanner { s: line, pos: 0 });
    if fields < 9 {
        return;
    }
    let proto = match row.protocol.as_str() {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    };
    // The client address decides the family of client and virtual addresses: IPv6 text, IPv4
    // text, else the kernel's 8 hex digits. The destination is read on its own.
    let (c, v) = if let Ok(c6) = row.caddr.parse::<Ipv6Addr>() {
        let v6 = row.vaddr.parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        (IpAddr::V6(c6), IpAddr::V6(v6))
    } else if let Ok(c4) = row.caddr.parse::<Ipv4Addr>() {
        let v4 = row.vaddr.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        (IpAddr::V4(c4), IpAddr::V4(v4))
    } else {
        (
            IpAddr::V4(Ipv4Addr::from(strtoul_hex(&row.caddr))),
            IpAddr::V4(Ipv4Addr::from(strtoul_hex(&row.vaddr))),
        )
    };
    let d = if let Ok(d6) = row.daddr.parse::<Ipv6Addr>() {
        IpAddr::V6(d6)
    } else if let Ok(d4) = row.daddr.parse::<Ipv4Addr>() {
        IpAddr::V4(d4)
    } else {
        IpAddr::V4(Ipv4Addr::from(strtoul_hex(&row.daddr)))
    };
    let cname = names::addrport(c, row.cport, proto, numeric, names);
    let vname = names::addrport(v, row.vport, proto, numeric, names);
    let dname = names::addrport(d, row.dport, proto, numeric, names);
    let expire = format!(
        "{:02}:{:02}",
        (row.expires / 60) as i32,
        (row.expires % 60) as i32
    );
    let (protocol, state) = (&row.protocol, &row.state);
    if persistent_conn && fields == 11 {
        // ipvsadm pads the destination to 16 and the pe name to 18 here, unlike its header.
        let (pe_name, pe_data) = (&row.pe_name, &row.pe_data);
        let _ = writeln!(
            out,
            "{protocol:<3} {expire:<6} {state:<11} {cname:<18} {vname:<18} {dname:<16} \
             {pe_name:<18} {pe_data}"
        );
    } else {
        let _ = writeln!(
            out,
            "{protocol:<3} {expire:<6} {state:<11} {cname:<18} {vname:<18} {dname}"
        );
    }
}

#[derive(Default)]
struct ConnRow {
    protocol: String,
    caddr: String,
    cport: u16,
    vaddr: String,
    vport: u16,
    daddr: String,
    dport: u16,
    state: String,
    expires: u32,
    pe_name: String,
    pe_data: String,
}

impl ConnRow {
    /// Fills the fields in order; returns how many were read (sscanf's count).
    fn scan(&mut self, sc: &mut Scanner) -> usize {
        let Some(w) = sc.word() else { return 0 };
        self.protocol = w;
        let Some(w) = sc.word() else { return 1 };
        self.caddr = w;
        let Some(p) = sc.hex() else { return 2 };
        self.cport = p;
        let Some(w) = sc.word() else { return 3 };
        self.vaddr = w;
        let Some(p) = sc.hex() else { return 4 };
        self.vport = p;
        let Some(w) = sc.word() else { return 5 };
        self.daddr = w;
        let Some(p) = sc.hex() else { return 6 };
        self.dport = p;
        let Some(w) = sc.word() else { return 7 };
        self.state = w;
        let Some(e) = sc.dec() else { return 8 };
        self.expires = e as u32;
        let Some(w) = sc.word() else { return 9 };
        self.pe_name = w;
        let Some(w) = sc.word() else { return 10 };
        self.pe_data = w;
        11
    }
}

/// Just enough of `sscanf` for the connection rows.
struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// `%s`.
    fn word(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && !self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn sign(&mut self) -> bool {
        match self.s.get(self.pos) {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        }
    }

    /// An optionally signed number like `strtoul` reads it (saturating on overflow, a minus
    /// sign negating); `None` when there are no digits.
    fn number(&mut self, radix: u32) -> Option<u64> {
        self.skip_ws();
        let neg = self.sign();
        if radix == 16
            && self.s.get(self.pos) == Some(&b'0')
            && matches!(self.s.get(self.pos + 1), Some(b'x' | b'X'))
            && self.s.get(self.pos + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            self.pos += 2;
        }
        let start = self.pos;
        let mut v: u64 = 0;
        let mut overflow = false;
        while let Some(d) = self
            .s
            .get(self.pos)
            .and_then(|&b| (b as char).to_digit(radix))
        {
            match v
                .checked_mul(u64::from(radix))
                .and_then(|x| x.checked_add(u64::from(d)))
            {
                Some(x) => v = x,
                None => overflow = true,
            }
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        Some(if overflow {
            u64::MAX
        } else if neg {
            v.wrapping_neg()
        } else {
            v
        })
    }

    /// `%hX`.
    fn hex(&mut self) -> Option<u16> {
        self.number(16).map(|v| v as u16)
    }

    /// `%d`.
    fn dec(&mut self) -> Option<i32> {
        self.number(10).map(|v| v as i32)
    }
}

/// `(u32) strtoul(s, NULL, 16)`: the leading hex number, 0 when there is none.
fn strtoul_hex(s: &str) -> u32 {
    let mut sc = Scanner {
        s: s.as_bytes(),
        pos: 0,
    };
    sc.number(16).map_or(0, |v| v as u32)
}
