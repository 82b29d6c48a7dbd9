//! Host and service names for ipvsadm's non-numeric output (`-L` / `-S` / `-c` without `-n`).
//!
//! ipvsadm 1.31 turns an address into `gethostbyaddr()`'s name, falling back to the numeric form,
//! and a port into `getservbyport()`'s name for the service's protocol, falling back to the
//! number. IPv6 addresses are bracketed (`[name]:port`). The joined `addr:port` lives in a
//! 60-byte buffer, so it never exceeds 59 bytes. Lookups go through [`Resolver`] so tests can
//! inject fixed answers; [`addrport`] never calls the resolver in numeric mode.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use ipvs::Protocol;

/// Where names come from.
pub trait Resolver {
    /// The host name of an address (reverse lookup), `None` when it has none.
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// The service name of a port for a protocol (`/etc/services`), `None` when unknown.
    fn service_name(&self, port: u16, protocol: Protocol) -> Option<String>;
}

/// The system's resolver: `getnameinfo(NI_NAMEREQD)` and `getservbyport()`, each answer cached
/// for the life of the value (ipvsadm asks again for every line; the answers are the same).
#[derive(Default)]
pub struct SystemResolver {
    hosts: RefCell<HashMap<IpAddr, Option<String>>>,
    services: RefCell<HashMap<(u16, Protocol), Option<String>>>,
}

impl SystemResolver {
    pub fn new() -> SystemResolver {
        SystemResolver::default()
    }
}

impl Resolver for SystemResolver {
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .borrow_mut()
            .entry(addr)
            .or_insert_with(|| reverse_lookup(addr))
            .clone()
    }

    fn service_name(&self, port: u16, protocol: Protocol) -> Option<String> {
        self.services
            .borrow_mut()
            .entry((port, protocol))
            .or_insert_with(|| service_lookup(port, protocol))
            .clone()
    }
}

/// Reverse lookup with the semantics of `gethostbyaddr()`: the canonical name, or nothing.
fn reverse_lookup(addr: IpAddr) -> Option<String> {
    let mut host: [libc::c_char; 1025] = [0; 1025];
    let rc = match addr {
        IpAddr::V4(a) => {
            // SAFETY: an all-zero sockaddr_in is a valid value.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.octets()),
            };
            // SAFETY: `sin` is a valid sockaddr_in of the given length and `host` a writable
            // buffer of the given length; no service buffer is requested.
            unsafe {
                libc::getnameinfo(
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
        IpAddr::V6(a) => {
            // SAFETY: an all-zero sockaddr_in6 is a valid value.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.octets(),
            };
            // SAFETY: as above, with a sockaddr_in6.
            unsafe {
                libc::getnameinfo(
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo stored a NUL-terminated string in `host`.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `getservbyport()` returns a pointer into static storage: one caller at a time.
static SERVICES_LOCK: Mutex<()> = Mutex::new(());

/// The first `/etc/services` (NSS "services") name of `port/protocol`.
fn service_lookup(port: u16, protocol: Protocol) -> Option<String> {
    let proto: &CStr = match protocol {
        Protocol::Tcp => c"tcp",
        Protocol::Udp => c"udp",
        Protocol::Sctp => c"sctp",
    };
    let _guard = SERVICES_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: `proto` is NUL-terminated; the port is passed in network byte order as
    // getservbyport expects.
    let ent = unsafe { libc::getservbyport(libc::c_int::from(port.to_be()), proto.as_ptr()) };
    if ent.is_null() {
        return None;
    }
    // SAFETY: a non-null servent from getservbyport has a NUL-terminated s_name; it is copied
    // out before the lock is released.
    let name = unsafe { (*ent).s_name };
    if name.is_null() {
        return None;
    }
    // SAFETY: checked non-null just above.
    Some(
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// `addr:port` as ipvsadm's `addrport_to_anyname` writes it: IPv6 in brackets; with `numeric`
/// the numeric address and decimal port (the resolver is not asked); otherwise the host name
/// (or numeric address) and the service name for `protocol` (or the decimal port; `None` = a
/// protocol ipvsadm cannot look up). At most 59 bytes, like the C buffer.
pub fn addrport(
    addr: IpAddr,
    port: u16,
    protocol: Option<Protocol>,
    numeric: bool,
    names: &dyn Resolver,
) -> String {
    let (host, service) = if numeric {
        (inet_ntop(addr), port.to_string())
    } else {
        (
            names.host_name(addr).unwrap_or_else(|| inet_ntop(addr)),
            protocol
                .and_then(|p| names.service_name(port, p))
                .unwrap_or_else(|| port.to_string()),
        )
    };
    let mut s = match addr {
        IpAddr::V4(_) => format!("{host}:{service}"),
        IpAddr::V6(_) => format!("[{host}]:{service}"),
    };
    truncate_bytes(&mut s, 59);
    s
}

/// Cuts `s` to at most `max` bytes (C's `buf[max] = '\0'`), backing off to a character
/// boundary for non-ASCII names.
pub fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The text of an address exactly as glibc's `inet_ntop` writes it (IPv6: longest run of two
/// or more zero groups compressed, first on ties; `::a.b.c.d` and `::ffff:a.b.c.d` forms).
pub fn inet_ntop(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => inet_ntop6(&a),
    }
}

fn inet_ntop6(a: &Ipv6Addr) -> String {
    let words = a.segments();
    // Longest run of zero words (length >= 2), the first one on ties.
    let (mut best_base, mut best_len) = (None::<usize>, 0usize);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            let len = i - start;
            if len >= 2 && len > best_len {
                best_base = Some(start);
                best_len = len;
            }
        } else {
            i += 1;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some(base) = best_base {
            if i >= base && i < base + best_len {
                if i == base {
                    out.push(':');
                }
                i += 1;
                continue;
            }
        }
        if i != 0 {
            out.push(':');
        }
        // Embedded IPv4: IPv4-compatible (::a.b.c.d) or IPv4-mapped (::ffff:a.b.c.d).
        if i == 6
            && best_base == Some(0)
            && (best_len == 6 || (best_len == 5 && words[5] == 0xffff))
        {
            let o = a.octets();
            out.push_str(&Ipv4Addr::new(o[12], o[13], o[14], o[15]).to_string());
            return out;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    if best_base.is_some_and(|b| b + best_len == 8) {
        out.push(':');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoNames;
    impl Resolver for NoNames {
        fn host_name(&self, _: IpAddr) -> Option<String> {
            panic!("resolver called in numeric mode")
        }
        fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
            panic!("resolver called in numeric mode")
        }
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    #[test]
    fn format_names_inet_ntop6_matches_glibc() {
        for (input, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
            ("1:2:3:4:5:6::", "1:2:3:4:5:6::"),
            ("fe80::", "fe80::"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:0:0", "::ffff:0.0.0.0"),
            ("::0.0.1.0", "::100"),
            ("0:0:1::", "0:0:1::"),
            ("ABCD:EF01::", "abcd:ef01::"),
        ] {
            assert_eq!(inet_ntop(v6(input)), want, "{input}");
        }
    }

    #[test]
    fn format_names_numeric_never_resolves() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            addrport(a, 80, Some(Protocol::Tcp), true, &NoNames),
            "10.0.0.1:80"
        );
        assert_eq!(
            addrport(v6("2001:db8::1"), 0, None, true, &NoNames),
            "[2001:db8::1]:0"
        );
    }

    #[test]
    fn format_names_truncates_to_59_bytes() {
        struct Long;
        impl Resolver for Long {
            fn host_name(&self, _: IpAddr) -> Option<String> {
                Some("h".repeat(80))
            }
            fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
                None
            }
        }
        let s = addrport(v6("2001:db8::1"), 80, Some(Protocol::Tcp), false, &Long);
        assert_eq!(s, format!("[{}", "h".repeat(58)));
    }
}
