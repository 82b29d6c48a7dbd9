//! Gratuitous ARP: the frame of Piranha's `send_arp` (spec §5), byte for byte, and a send-only
//! `AF_PACKET` socket to put it on an interface.
//!
//! The frame is 60 bytes: Ethernet (destination = the target hardware address, source = the
//! source hardware address, type 0x0806), an ARP **reply** (opcode 2) whose sender and target are
//! both (source MAC, source IP), as RFC 2002 describes for gratuitous replies, and 18 zero bytes of
//! padding to the Ethernet minimum.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Length of the frame send_arp sends (14 Ethernet + 28 ARP + 18 padding).
pub const FRAME_LEN: usize = 60;
const ETH_P_ARP: u16 = 0x0806;

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Parses a hardware address as send_arp did: six pairs of hex digits (either case), each pair
    /// optionally followed by one `:`; anything after the sixth pair is ignored. None where
    /// send_arp said "Invalid hardware address".
    pub fn parse_send_arp(s: &str) -> Option<Mac> {
        let b = s.as_bytes();
        let mut out = [0u8; 6];
        let mut i = 0;
        for byte in out.iter_mut() {
            let hi = hex_digit(*b.get(i)?)?;
            let lo = hex_digit(*b.get(i + 1)?)?;
            *byte = hi << 4 | lo;
            i += 2;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
        }
        Some(Mac(out))
    }

    /// Twelve uppercase hex digits without separators: how pulse passed its MAC to send_arp.
    pub fn to_piranha_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect()
    }

    pub fn from_slice(s: &[u8]) -> Option<Mac> {
        Some(Mac(s.get(..6)?.try_into().ok()?))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c.to_ascii_lowercase() {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// send_arp's frame for `send_arp src_ip src_hw targ_ip targ_hw` (targ_ip is not used by
/// send_arp, so it is not a parameter).
pub fn send_arp_frame(src_ip: Ipv4Addr, src_hw: Mac, targ_hw: Mac) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&targ_hw.0);
    f[6..12].copy_from_slice(&src_hw.0);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&2u16.to_be_bytes()); // reply
    f[22..28].copy_from_slice(&src_hw.0);
    f[28..32].copy_from_slice(&src_ip.octets());
    f[32..38].copy_from_slice(&src_hw.0);
    f[38..42].copy_from_slice(&src_ip.octets());
    f
}

/// The gratuitous ARP pulse sends for a floating address: broadcast, sender = target = (mac, ip).
pub fn gratuitous_frame(ip: Ipv4Addr, mac: Mac) -> [u8; FRAME_LEN] {
    send_arp_frame(ip, mac, Mac::BROADCAST)
}

/// A send-only packet socket (protocol 0: the kernel delivers it no incoming frames).
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
}

impl ArpSocket {
    pub fn open() -> io::Result<ArpSocket> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(ArpSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sends one frame (with its Ethernet header) out of interface `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ETH_P_ARP.to_be();
        sa.sll_ifindex = ifindex;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing_as_send_arp() {
        let m = Mac([0x00, 0x1b, 0x21, 0xab, 0xcd, 0xef]);
        assert_eq!(Mac::parse_send_arp("001B21ABCDEF"), Some(m));
        assert_eq!(Mac::parse_send_arp("00:1b:21:ab:cd:ef"), Some(m));
        assert_eq!(Mac::parse_send_arp("00:1B21:ab:cdef"), Some(m));
        // Trailing text after the sixth pair is ignored, as send_arp ignored it.
        assert_eq!(Mac::parse_send_arp("001b21abcdefXYZ"), Some(m));
        assert_eq!(Mac::parse_send_arp("ffffffffffff"), Some(Mac::BROADCAST));
        for bad in [
            "",
            "001b21abcde",
            "00-1b-21-ab-cd-ef",
            "0g1b21abcdef",
            "00::1b21abcdef",
        ] {
            assert_eq!(Mac::parse_send_arp(bad), None, "{bad}");
        }
        assert_eq!(m.to_piranha_hex(), "001B21ABCDEF");
        assert_eq!(m.to_string(), "00:1b:21:ab:cd:ef");
    }

    #[test]
    fn frame_is_send_arps_byte_for_byte() {
        // send_arp -i eth0 10.0.0.100 00163e000001 10.0.0.255 ffffffffffff
        let mac = Mac([0x00, 0x16, 0x3e, 0x00, 0x00, 0x01]);
        let f = gratuitous_frame(Ipv4Addr::new(10, 0, 0, 100), mac);
        let mut want = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: targ_hw
            0x00, 0x16, 0x3e, 0x00, 0x00, 0x01, // Ethernet source: src_hw
            0x08, 0x06, // ARP
            0x00, 0x01, // hardware type Ethernet
            0x08, 0x00, // protocol IPv4
            6, 4, // address lengths
            0x00, 0x02, // opcode 2: reply
            0x00, 0x16, 0x3e, 0x00, 0x00, 0x01, // sender hardware
            10, 0, 0, 100, // sender IP
            0x00, 0x16, 0x3e, 0x00, 0x00, 0x01, // target hardware = sender's
            10, 0, 0, 100, // target IP = sender's
        ];
        want.resize(60, 0);
        assert_eq!(f.to_vec(), want);
        // A unicast target hardware address only changes the Ethernet destination.
        let t = Mac([2, 0, 0, 0, 0, 9]);
        let u = send_arp_frame(Ipv4Addr::new(10, 0, 0, 100), mac, t);
        assert_eq!(&u[0..6], &t.0);
        assert_eq!(&u[6..], &f[6..]);
    }
}
