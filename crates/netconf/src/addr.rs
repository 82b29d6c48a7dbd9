//! Floating addresses as lvs.cf names them: `address = 10.0.0.100 eth0:1` (plus `vip_nmask`), and
//! `nat_router = 192.168.10.100 eth1:1` (plus `nat_nmask`).
//!
//! Piranha brought them up with `ifconfig DEV IP up`, or `ifconfig DEV IP netmask M broadcast B
//! up` when a mask was given. Without a mask the kernel's `SIOCSIFADDR` gave the address its
//! classful prefix (10.x → /8, 172.16.x → /16, 192.168.x → /24) and the matching broadcast; the
//! same prefix and broadcast are computed here so `ip addr` shows what it showed with Piranha.

use std::fmt;
use std::net::Ipv4Addr;

/// The longest interface name (or label) the kernel accepts: IFNAMSIZ - 1.
pub const MAX_NAME: usize = 15;

/// An IPv4 address to bring up on an interface, with the alias label it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FloatingAddress {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// None for /31 and /32 (no broadcast, as the kernel's ioctl did).
    pub broadcast: Option<Ipv4Addr>,
    /// The device as configured: `eth0:1` (an alias label) or `eth0`.
    pub label: String,
    /// The interface the address lives on: the label up to its `:`.
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    EmptyDevice,
    /// Longer than 15 bytes, or with a `/` or blank: the kernel refuses it.
    BadDevice(String),
    /// The netmask's one bits are not contiguous.
    BadNetmask(Ipv4Addr),
    /// 0.0.0.0, 255.255.255.255, multicast: not an address to float.
    BadAddress(Ipv4Addr),
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::EmptyDevice => write!(f, "no device given"),
            AddrError::BadDevice(d) => write!(f, "`{d}` is not a usable interface or alias name"),
            AddrError::BadNetmask(m) => write!(f, "{m} is not a netmask"),
            AddrError::BadAddress(a) => write!(f, "{a} cannot be a floating address"),
        }
    }
}

impl std::error::Error for AddrError {}

/// The prefix length the kernel gives an address set without a mask (`inet_abc_len`): class A /8,
/// B /16, C /24; anything else (class D/E) /32 here (ifconfig refused those).
pub fn classful_prefix(a: Ipv4Addr) -> u8 {
    let first = a.octets()[0];
    match first {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        _ => 32,
    }
}

/// The prefix length of a contiguous netmask; None if its one bits have a hole.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The mask of a prefix length.
pub fn prefix_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - p),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'%')
}

impl FloatingAddress {
    /// `address` on `device` (`eth0:1` or `eth0`), with `netmask` if lvs.cf gives one
    /// (`vip_nmask`, `nat_nmask`), else the classful prefix.
    pub fn new(
        address: Ipv4Addr,
        device: &str,
        netmask: Option<Ipv4Addr>,
    ) -> Result<FloatingAddress, AddrError> {
        if device.is_empty() {
            return Err(AddrError::EmptyDevice);
        }
        let interface = device.split(':').next().unwrap_or("");
        if !valid_name(device) || !valid_name(interface) {
            return Err(AddrError::BadDevice(device.to_string()));
        }
        if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
            return Err(AddrError::BadAddress(address));
        }
        let prefix_len = match netmask {
            Some(m) => netmask_prefix(m).ok_or(AddrError::BadNetmask(m))?,
            None => classful_prefix(address),
        };
        let mask = prefix_mask(prefix_len);
        let broadcast =
            (prefix_len < 31).then(|| Ipv4Addr::from((u32::from(address) & mask) | !mask));
        Ok(FloatingAddress {
            address,
            prefix_len,
            broadcast,
            label: device.to_string(),
            interface: interface.to_string(),
        })
    }

    /// True when the label is an alias (`eth0:1`) rather than the interface itself.
    pub fn is_alias(&self) -> bool {
        self.label != self.interface
    }
}

impl fmt::Display for FloatingAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.address, self.prefix_len, self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn classful_prefixes_as_the_kernel_ioctl() {
        assert_eq!(classful_prefix(ip("10.1.2.3")), 8);
        assert_eq!(classful_prefix(ip("127.0.0.1")), 8);
        assert_eq!(classful_prefix(ip("172.16.0.1")), 16);
        assert_eq!(classful_prefix(ip("191.255.0.1")), 16);
        assert_eq!(classful_prefix(ip("192.168.1.1")), 24);
        assert_eq!(classful_prefix(ip("223.0.0.1")), 24);
        assert_eq!(classful_prefix(ip("224.0.0.1")), 32);
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix(ip("255.255.255.0")), Some(24));
        assert_eq!(netmask_prefix(ip("255.255.255.255")), Some(32));
        assert_eq!(netmask_prefix(ip("0.0.0.0")), Some(0));
        assert_eq!(netmask_prefix(ip("255.255.254.0")), Some(23));
        assert_eq!(netmask_prefix(ip("255.0.255.0")), None);
        assert_eq!(netmask_prefix(ip("0.255.255.255")), None);
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(24), 0xffff_ff00);
        assert_eq!(prefix_mask(32), u32::MAX);
    }

    #[test]
    fn address_with_and_without_mask() {
        let a = FloatingAddress::new(ip("192.168.1.100"), "eth0:1", None).unwrap();
        assert_eq!(a.prefix_len, 24);
        assert_eq!(a.broadcast, Some(ip("192.168.1.255")));
        assert_eq!(a.interface, "eth0");
        assert_eq!(a.label, "eth0:1");
        assert!(a.is_alias());
        assert_eq!(a.to_string(), "192.168.1.100/24 on eth0:1");

        let a =
            FloatingAddress::new(ip("10.20.30.40"), "eth1:7", Some(ip("255.255.255.128"))).unwrap();
        assert_eq!(a.prefix_len, 25);
        assert_eq!(a.broadcast, Some(ip("10.20.30.127")));

        let a = FloatingAddress::new(ip("10.0.0.1"), "eth0", Some(ip("255.255.255.255"))).unwrap();
        assert_eq!(a.prefix_len, 32);
        assert_eq!(a.broadcast, None);
        assert!(!a.is_alias());
        let a = FloatingAddress::new(ip("10.0.0.1"), "eth0", Some(ip("255.255.255.254"))).unwrap();
        assert_eq!(a.broadcast, None);
    }

    #[test]
    fn refused_inputs() {
        let v = ip("10.0.0.1");
        assert_eq!(
            FloatingAddress::new(v, "", None),
            Err(AddrError::EmptyDevice)
        );
        assert!(matches!(
            FloatingAddress::new(v, "averyveryverylongname:1", None),
            Err(AddrError::BadDevice(_))
        ));
        assert!(matches!(
            FloatingAddress::new(v, ":1", None),
            Err(AddrError::BadDevice(_))
        ));
        assert!(matches!(
            FloatingAddress::new(v, "eth 0", None),
            Err(AddrError::BadDevice(_))
        ));
        assert_eq!(
            FloatingAddress::new(v, "eth0:1", Some(ip("255.0.255.0"))),
            Err(AddrError::BadNetmask(ip("255.0.255.0")))
        );
        for bad in ["0.0.0.0", "255.255.255.255", "224.1.1.1"] {
            assert_eq!(
                FloatingAddress::new(ip(bad), "eth0:1", None),
                Err(AddrError::BadAddress(ip(bad)))
            );
        }
    }
}
