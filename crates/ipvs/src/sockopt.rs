//! The kernel's older IPVS interface, `getsockopt(IPPROTO_IP, IP_VS_SO_GET_*)` on a raw socket:
//! the byte layout of the two requests used for fast listings, with no I/O.
//!
//! Generic netlink offers destinations only one dump per service (a request and two replies);
//! `IP_VS_SO_GET_DESTS` returns a service's destinations in one system call, and
//! `IP_VS_SO_GET_SERVICES` the destination count of every IPv4 service in one more. It covers
//! less than netlink (IPv4 only, 32-bit counters, no tunnel type/port/flags, destinations of the
//! service's own family only), so the kernel backend uses it only where it gives the same answer
//! and checks every reply against the service's destination count; see
//! `KernelBackend::table_brief`.
//!
//! Layouts (x86-64 and every other Linux ABI with 8-byte-aligned u64; `include/uapi/linux/ip_vs.h`):
//!
//! ```text
//! struct ip_vs_getinfo        { u32 version, size, num_services }                        12 bytes
//! struct ip_vs_get_services   { u32 num_services; [pad 4]; ip_vs_service_entry[] }      8 + n*104
//! struct ip_vs_service_entry  { u16 protocol; [2]; be32 addr; be16 port; [2]; u32 fwmark;
//!                               char sched[16]; u32 flags, timeout; be32 netmask;
//!                               u32 num_dests; ip_vs_stats_user stats }                   104 bytes
//! struct ip_vs_get_dests      { u16 protocol; [2]; be32 addr; be16 port; [2]; u32 fwmark;
//!                               u32 num_dests; [pad 4]; ip_vs_dest_entry[] }             24 + n*96
//! struct ip_vs_dest_entry     { be32 addr; be16 port; [2]; u32 conn_flags; i32 weight;
//!                               u32 u_threshold, l_threshold, activeconns, inactconns,
//!                               persistconns; [pad 4]; ip_vs_stats_user stats }           96 bytes
//! struct ip_vs_stats_user     { u32 conns, inpkts, outpkts; [4]; u64 inbytes, outbytes;
//!                               u32 cps, inpps, outpps, inbps, outbps; [4] }              56 bytes
//! ```

use crate::model::{Destination, ForwardMethod, Protocol};
use std::net::{IpAddr, Ipv4Addr};

const BASE: i32 = 64 + 1024 + 64;
pub const GET_INFO: i32 = BASE + 1;
pub const GET_SERVICES: i32 = BASE + 2;
pub const GET_DESTS: i32 = BASE + 4;

pub const INFO_LEN: usize = 12;
pub const SERVICES_HEADER: usize = 8;
pub const SERVICE_ENTRY: usize = 104;
pub const DESTS_HEADER: usize = 24;
pub const DEST_ENTRY: usize = 96;

/// `IP_VS_CONN_F_FWD_MASK`.
const FWD_MASK: u32 = 0x7;

/// The key by which the old interface finds an IPv4 service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Address {
        protocol: u16,
        addr: Ipv4Addr,
        port: u16,
    },
    Fwmark(u32),
}

impl Key {
    pub fn address(protocol: Protocol, addr: Ipv4Addr, port: u16) -> Key {
        Key::Address {
            protocol: protocol.number(),
            addr,
            port,
        }
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// `num_services` from an `ip_vs_getinfo` reply (it counts services of every family).
pub fn info_num_services(b: &[u8]) -> Option<u32> {
    (b.len() >= INFO_LEN).then(|| u32_at(b, 8))
}

/// An `ip_vs_get_services` request for `n` entries (exactly the length the kernel demands).
pub fn services_request(n: u32) -> Vec<u8> {
    let mut b = vec![0u8; SERVICES_HEADER + n as usize * SERVICE_ENTRY];
    b[0..4].copy_from_slice(&n.to_ne_bytes());
    b
}

/// The (key, destination count) of each IPv4 service in an `ip_vs_get_services` reply. The
/// kernel does not say how many entries it wrote: unwritten entries stay zero (protocol 0 and
/// fwmark 0, which no service has), and they end the list.
pub fn services_reply(b: &[u8]) -> Vec<(Key, u32)> {
    let mut out = Vec::new();
    let mut off = SERVICES_HEADER;
    while off + SERVICE_ENTRY <= b.len() {
        let e = &b[off..off + SERVICE_ENTRY];
        let protocol = u16_at(e, 0);
        let fwmark = u32_at(e, 12);
        let key = if fwmark != 0 {
            Key::Fwmark(fwmark)
        } else if protocol != 0 {
            Key::Address {
                protocol,
                addr: Ipv4Addr::new(e[4], e[5], e[6], e[7]),
                port: u16::from_be_bytes([e[8], e[9]]),
            }
        } else {
            break;
        };
        out.push((key, u32_at(e, 44)));
        off += SERVICE_ENTRY;
    }
    out
}

/// An `ip_vs_get_dests` request for the service `key` with room for `n` entries.
pub fn dests_request(key: &Key, n: u32) -> Vec<u8> {
    let mut b = vec![0u8; DESTS_HEADER + n as usize * DEST_ENTRY];
    match key {
        Key::Address {
            protocol,
            addr,
            port,
        } => {
            b[0..2].copy_from_slice(&protocol.to_ne_bytes());
            b[4..8].copy_from_slice(&addr.octets());
            b[8..10].copy_from_slice(&port.to_be_bytes());
        }
        Key::Fwmark(mark) => b[12..16].copy_from_slice(&mark.to_ne_bytes()),
    }
    b[16..20].copy_from_slice(&n.to_ne_bytes());
    b
}

/// The destinations in an `ip_vs_get_dests` reply, without statistics (they are 32-bit here)
/// and without tunnel details (the old interface has none). Unwritten entries stay zero
/// (address 0.0.0.0, which no destination can have) and end the list. `None` if an entry holds
/// a forwarding method this crate does not know.
pub fn dests_reply(b: &[u8]) -> Option<Vec<Destination>> {
    let mut out = Vec::new();
    let mut off = DESTS_HEADER;
    while off + DEST_ENTRY <= b.len() {
        let e = &b[off..off + DEST_ENTRY];
        let addr = Ipv4Addr::new(e[0], e[1], e[2], e[3]);
        if addr.is_unspecified() {
            break;
        }
        let mut d = Destination::new(IpAddr::V4(addr), u16::from_be_bytes([e[4], e[5]]));
        d.forward = ForwardMethod::from_number(u32_at(e, 8) & FWD_MASK)?;
        d.weight = u32_at(e, 12) as i32;
        d.u_threshold = u32_at(e, 16);
        d.l_threshold = u32_at(e, 20);
        d.active_conns = u32_at(e, 24);
        d.inact_conns = u32_at(e, 28);
        d.persist_conns = u32_at(e, 32);
        out.push(d);
        off += DEST_ENTRY;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest_entry(addr: [u8; 4], port: u16, flags: u32, vals: [u32; 6]) -> Vec<u8> {
        let mut e = vec![0u8; DEST_ENTRY];
        e[0..4].copy_from_slice(&addr);
        e[4..6].copy_from_slice(&port.to_be_bytes());
        e[8..12].copy_from_slice(&flags.to_ne_bytes());
        for (i, v) in vals.iter().enumerate() {
            e[12 + 4 * i..16 + 4 * i].copy_from_slice(&v.to_ne_bytes());
        }
        // Statistics must be ignored.
        e[40..96].fill(0xee);
        e
    }

    #[test]
    fn dests_request_layout() {
        let b = dests_request(
            &Key::address(Protocol::Udp, Ipv4Addr::new(10, 1, 2, 3), 53),
            2,
        );
        assert_eq!(b.len(), 24 + 2 * 96);
        assert_eq!(&b[0..2], &17u16.to_ne_bytes());
        assert_eq!(&b[4..8], &[10, 1, 2, 3]);
        assert_eq!(&b[8..10], &[0, 53]);
        assert_eq!(&b[12..16], &[0; 4]);
        assert_eq!(&b[16..20], &2u32.to_ne_bytes());
        let b = dests_request(&Key::Fwmark(0x1234), 0);
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..12], &[0; 12]);
        assert_eq!(&b[12..16], &0x1234u32.to_ne_bytes());
    }

    #[test]
    fn dests_reply_decodes_and_stops_at_unwritten_entries() {
        let mut b = dests_request(&Key::Fwmark(1), 3);
        // masq with an extra flag bit above the mask, tunnel, and one unwritten entry.
        b[24..120].copy_from_slice(&dest_entry(
            [192, 168, 1, 2],
            8080,
            0x0100,
            [(-5i32) as u32, 100, 10, 7, 8, 9],
        ));
        b[120..216].copy_from_slice(&dest_entry([10, 0, 0, 9], 80, 2, [3, 0, 0, 0, 0, 0]));
        let d = dests_reply(&b).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].addr, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(d[0].port, 8080);
        assert_eq!(d[0].forward, ForwardMethod::Masq);
        assert_eq!(d[0].weight, -5);
        assert_eq!((d[0].u_threshold, d[0].l_threshold), (100, 10));
        assert_eq!(
            (d[0].active_conns, d[0].inact_conns, d[0].persist_conns),
            (7, 8, 9)
        );
        assert_eq!(d[0].stats, Default::default());
        assert_eq!(d[1].forward, ForwardMethod::Tunnel);
        assert_eq!(d[1].weight, 3);
        // Forwarding method 5..7 is unknown.
        b[24 + 8..24 + 12].copy_from_slice(&6u32.to_ne_bytes());
        assert!(dests_reply(&b).is_none());
    }

    #[test]
    fn services_reply_keys_and_counts() {
        let mut b = services_request(4);
        assert_eq!(b.len(), 8 + 4 * 104);
        assert_eq!(&b[0..4], &4u32.to_ne_bytes());
        let e0 = 8;
        b[e0..e0 + 2].copy_from_slice(&6u16.to_ne_bytes());
        b[e0 + 4..e0 + 8].copy_from_slice(&[10, 0, 0, 1]);
        b[e0 + 8..e0 + 10].copy_from_slice(&80u16.to_be_bytes());
        b[e0 + 44..e0 + 48].copy_from_slice(&4u32.to_ne_bytes());
        let e1 = 8 + 104;
        b[e1..e1 + 2].copy_from_slice(&6u16.to_ne_bytes()); // fwmark services carry a protocol
        b[e1 + 12..e1 + 16].copy_from_slice(&77u32.to_ne_bytes());
        b[e1 + 44..e1 + 48].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(
            services_reply(&b),
            vec![
                (
                    Key::address(Protocol::Tcp, Ipv4Addr::new(10, 0, 0, 1), 80),
                    4
                ),
                (Key::Fwmark(77), 0)
            ]
        );
        assert_eq!(
            info_num_services(&[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]),
            Some(u32::from_ne_bytes([9, 0, 0, 0]))
        );
        assert_eq!(info_num_services(&[0; 11]), None);
    }
}
