//! Name look-ups the parser needs: host names for address fields (Piranha: `gethostbyname`) and
//! `/etc/services` names for ports (Piranha: `getservbyname(name, "tcp")`).
//!
//! A trait, so that tests and the fuzzer resolve from a fixed table and never touch the network.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

pub trait Resolver {
    /// IPv4 address of a host name, or `None`.
    fn host(&self, name: &str) -> Option<Ipv4Addr>;
    /// TCP port of a service name, or `None`.
    fn tcp_service(&self, name: &str) -> Option<u16>;
}

/// Whether `name` is a syntactically valid host name (RFC 1123 labels). Names that are not are
/// refused without asking the system resolver, so garbage never turns into DNS queries.
pub fn is_valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    // A top-level label is never all digits (RFC 3696 §2): `300.1.1.1` is a bad address, not a
    // name to look up.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The machine's resolver (NSS: /etc/hosts, DNS, ...) and its services file.
#[derive(Debug, Clone)]
pub struct SystemResolver {
    services_path: PathBuf,
}

impl Default for SystemResolver {
    fn default() -> Self {
        SystemResolver {
            services_path: PathBuf::from("/etc/services"),
        }
    }
}

impl SystemResolver {
    /// A resolver that reads service names from `path` instead of /etc/services.
    pub fn with_services_file(path: impl AsRef<Path>) -> Self {
        SystemResolver {
            services_path: path.as_ref().to_path_buf(),
        }
    }
}

impl Resolver for SystemResolver {
    fn host(&self, name: &str) -> Option<Ipv4Addr> {
        if !is_valid_hostname(name) {
            return None;
        }
        let addrs = (name, 0u16).to_socket_addrs().ok()?;
        addrs
            .filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(*v4.ip()),
                SocketAddr::V6(_) => None,
            })
            .next()
    }

    fn tcp_service(&self, name: &str) -> Option<u16> {
        let text = std::fs::read_to_string(&self.services_path).ok()?;
        services_lookup(&text, name, "tcp")
    }
}

/// Looks `name` (or an alias) up in the text of a services(5) file for `proto`.
pub fn services_lookup(text: &str, name: &str, proto: &str) -> Option<u16> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let (Some(official), Some(port_proto)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((port, p)) = port_proto.split_once('/') else {
            continue;
        };
        if p != proto {
            continue;
        }
        if official == name || fields.any(|alias| alias == name) {
            if let Ok(port) = port.parse::<u16>() {
                return Some(port);
            }
        }
    }
    None
}

/// A fixed table: for tests, the fuzzer and any caller that must not do look-ups.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    pub hosts: HashMap<String, Ipv4Addr>,
    pub services: HashMap<String, u16>,
}

impl StaticResolver {
    /// `localhost` and a few well-known services.
    pub fn standard() -> Self {
        let mut r = StaticResolver::default();
        r.hosts.insert("localhost".into(), Ipv4Addr::LOCALHOST);
        for (name, port) in [
            ("ftp", 21),
            ("ssh", 22),
            ("smtp", 25),
            ("domain", 53),
            ("http", 80),
            ("www", 80),
            ("pop3", 110),
            ("imap", 143),
            ("https", 443),
            ("mysql", 3306),
        ] {
            r.services.insert(name.into(), port);
        }
        r
    }
}

impl Resolver for StaticResolver {
    fn host(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.get(name).copied()
    }

    fn tcp_service(&self, name: &str) -> Option<u16> {
        self.services.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_file_lookup() {
        let text = "# comment\nhttp\t\t80/tcp\t\twww # WorldWideWeb\nhttp 80/udp\nntp 123/udp\n";
        assert_eq!(services_lookup(text, "http", "tcp"), Some(80));
        assert_eq!(services_lookup(text, "www", "tcp"), Some(80));
        assert_eq!(services_lookup(text, "ntp", "tcp"), None);
        assert_eq!(services_lookup(text, "WorldWideWeb", "tcp"), None);
    }

    #[test]
    fn hostname_syntax() {
        assert!(is_valid_hostname("localhost"));
        assert!(is_valid_hostname("web-1.example.com."));
        assert!(!is_valid_hostname("bad host"));
        assert!(!is_valid_hostname("-x"));
        assert!(!is_valid_hostname("a..b"));
        assert!(!is_valid_hostname("192.168.1.1:80"));
        assert!(!is_valid_hostname("300.1.1.1"));
        assert!(!is_valid_hostname("10.0.0.1.2"));
        assert!(is_valid_hostname("1and1.com"));
    }

    #[test]
    fn system_resolver_resolves_localhost_from_hosts_file() {
        assert_eq!(
            SystemResolver::default().host("localhost"),
            Some(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(SystemResolver::default().host("not a name"), None);
    }
}
