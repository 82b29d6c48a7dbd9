//! Legacy mode: nanny runs ipvsadm itself, with exactly Piranha's argument vectors
//! (`ipvs_exec.c`, spec §4.4), so older lvsd versions and scripts keep working.
//!
//! | Change | Command |
//! |---|---|
//! | add | `IPVSADM -a -t VIP:VPORT -r RIP:RPORT -m -w W` |
//! | restore a quiesced entry, weight | `IPVSADM -e -t VIP:VPORT -r RIP:RPORT -m -w W` |
//! | quiesce | `IPVSADM -e -t VIP:VPORT -r RIP:RPORT -m -w 0` |
//! | remove | `IPVSADM -d -t VIP:VPORT -r RIP:RPORT` |
//!
//! `-u` replaces `-t` for UDP, `-f MARK` replaces `-t VIP:VPORT` for a firewall mark, and the
//! method is `-m`, `-g` or `-i`. A command that does not exit 0 is logged as "IPVSADM command
//! failed!" and nanny exits (as Piranha did; lvsd then treats the nanny as dead).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use crate::args::{Method, Options};
use crate::machine::Change;

/// An ipvsadm command did not exit 0 (already logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandFailed;

/// Builds and runs the ipvsadm commands of one nanny.
#[derive(Debug, Clone)]
pub struct Ipvsadm {
    path: OsString,
    /// `-t VIP:PORT`, `-u VIP:PORT` or `-f MARK`.
    service: [String; 2],
    /// `RIP:RPORT`.
    real: String,
    method: Method,
    test_start: bool,
}

impl Ipvsadm {
    pub fn new(o: &Options) -> Ipvsadm {
        let service = if o.fwmark != 0 {
            ["-f".to_string(), o.fwmark.to_string()]
        } else {
            let vip = o
                .vip
                .as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "(null)".to_string());
            // An IPv6 literal needs brackets before ":PORT" (Piranha was IPv4 only).
            let vip = match vip.parse::<Ipv6Addr>() {
                Ok(_) => format!("[{vip}]"),
                Err(_) => vip,
            };
            let proto = if o.udp { "-u" } else { "-t" };
            [proto.to_string(), format!("{vip}:{}", o.port)]
        };
        let real = match o.server {
            IpAddr::V4(a) => format!("{a}:{}", o.rport),
            IpAddr::V6(a) => format!("[{a}]:{}", o.rport),
        };
        Ipvsadm {
            path: o.ipvsadm.clone(),
            service,
            real,
            method: o.method,
            test_start: o.test_start,
        }
    }

    /// The arguments (after argv[0]) for a change.
    pub fn argv(&self, change: &Change) -> Vec<String> {
        let (op, weight) = match change {
            Change::Add { weight, .. } => ("-a", Some(*weight)),
            Change::Restore { weight, .. } | Change::Weight { weight, .. } => ("-e", Some(*weight)),
            Change::Quiesce { .. } => ("-e", Some(0)),
            Change::Remove { .. } => ("-d", None),
        };
        let mut v = vec![op.to_string()];
        v.extend(self.service.iter().cloned());
        v.push("-r".to_string());
        v.push(self.real.clone());
        if let Some(w) = weight {
            v.push(self.method.flag().to_string());
            v.push("-w".to_string());
            v.push(w.to_string());
        }
        v
    }

    /// Runs the command for `change`. Err after logging "… command failed!".
    pub fn apply(&self, change: &Change) -> Result<(), CommandFailed> {
        let args = self.argv(change);
        let shown = format!("{} {}", self.path.to_string_lossy(), args.join(" "));
        if self.test_start {
            log::info!("test-start: not running {shown}");
            return Ok(());
        }
        log::debug!("running {shown}");
        // Signals stay blocked meanwhile (the child gets an empty mask from std); a SIGTERM is
        // handled once ipvsadm is done, as in Piranha.
        match Command::new(&self.path).args(&args).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(_) => {
                log::info!("{} command failed!", self.path.to_string_lossy());
                Err(CommandFailed)
            }
            Err(e) => {
                log::info!("{} command failed! ({e})", self.path.to_string_lossy());
                Err(CommandFailed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse_strs, Parsed};

    fn ipvsadm(line: &str) -> Ipvsadm {
        let mut v = vec!["nanny"];
        v.extend(line.split_whitespace());
        match parse_strs(&v).unwrap() {
            Parsed::Run(o) => Ipvsadm::new(&o),
            p => panic!("{p:?}"),
        }
    }

    fn all(i: &Ipvsadm) -> Vec<String> {
        [
            Change::Add {
                weight: 3,
                why: String::new(),
            },
            Change::Weight {
                weight: 6,
                why: String::new(),
            },
            Change::Restore {
                weight: 3,
                why: String::new(),
            },
            Change::Quiesce { why: String::new() },
            Change::Remove { why: String::new() },
        ]
        .iter()
        .map(|c| i.argv(c).join(" "))
        .collect()
    }

    #[test]
    fn piranha_vectors_tcp_nat() {
        let i = ipvsadm("-h 172.16.0.11 -p 80 -r 8080 -V 192.168.1.100 -M m -w 100 --lvs");
        assert_eq!(
            all(&i),
            [
                "-a -t 192.168.1.100:80 -r 172.16.0.11:8080 -m -w 3",
                "-e -t 192.168.1.100:80 -r 172.16.0.11:8080 -m -w 6",
                "-e -t 192.168.1.100:80 -r 172.16.0.11:8080 -m -w 3",
                "-e -t 192.168.1.100:80 -r 172.16.0.11:8080 -m -w 0",
                "-d -t 192.168.1.100:80 -r 172.16.0.11:8080",
            ]
        );
    }

    #[test]
    fn piranha_vectors_udp_fwmark_methods() {
        let i = ipvsadm("-h 10.0.0.2 -p 53 -u -V 10.0.0.1 -M g --lvs");
        assert_eq!(all(&i)[0], "-a -u 10.0.0.1:53 -r 10.0.0.2:53 -g -w 3");
        assert_eq!(all(&i)[4], "-d -u 10.0.0.1:53 -r 10.0.0.2:53");
        let i = ipvsadm("-h 10.0.0.2 -p 0 -r 443 -f 7 -V 10.0.0.1 -M i --lvs");
        assert_eq!(all(&i)[0], "-a -f 7 -r 10.0.0.2:443 -i -w 3");
        assert_eq!(all(&i)[3], "-e -f 7 -r 10.0.0.2:443 -i -w 0");
        assert_eq!(all(&i)[4], "-d -f 7 -r 10.0.0.2:443");
        // A VIP given as a name is passed on as it is.
        let i = ipvsadm("-h 10.0.0.2 -V www.example.com --lvs");
        assert_eq!(all(&i)[4], "-d -t www.example.com:80 -r 10.0.0.2:80");
        // IPv6 gets brackets.
        let i = ipvsadm("-h 2001:db8::2 -V 2001:db8::1 -p 80 --lvs");
        assert_eq!(all(&i)[4], "-d -t [2001:db8::1]:80 -r [2001:db8::2]:80");
        // inet_ntoa form of the real server.
        let i = ipvsadm("-h 10.1 -V 10.0.0.1 --lvs");
        assert_eq!(all(&i)[4], "-d -t 10.0.0.1:80 -r 10.0.0.1:80");
    }
}
