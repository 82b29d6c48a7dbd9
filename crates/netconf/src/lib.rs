//! The host network work of the suite's failover: floating IPv4 addresses with alias labels
//! (`eth0:1`) added and removed through rtnetlink, gratuitous ARP frames sent on an `AF_PACKET`
//! socket, and link state for `monitor_links`.
//!
//! - [`addr`]: a floating address as lvs.cf names it (address, device or alias, netmask), with
//!   the prefix and broadcast Piranha's `ifconfig` gave it. Pure.
//! - [`arp`]: the send_arp frame (Piranha's, byte for byte), MAC parsing and the raw socket.
//! - [`rtnl`]: a synchronous rtnetlink socket: links, IPv4 addresses, add and delete.
//! - [`monitor`]: a socket subscribed to link and address changes, for a poll loop.
//! - [`prereq`]: the kernel settings a NAT router needs, read from /proc (used by pulse and lvsd).
//!
//! Nothing here spawns a thread or needs an async runtime: every call is one or two system calls
//! on a socket the caller owns, so a single-threaded daemon can use it between two `poll`s.

pub mod addr;
pub mod arp;
pub mod monitor;
pub mod prereq;
pub mod rtnl;

pub use addr::{classful_prefix, netmask_prefix, AddrError, FloatingAddress};
pub use arp::{ArpSocket, Mac};
pub use monitor::LinkMonitor;
pub use rtnl::{AddOutcome, AddressEntry, Link, Rtnl};

/// The `IFA_PROTO` value (Linux 6.1 and later; ignored by older kernels) stamped on every address
/// pulse adds, so that a later pulse can tell its own leftovers from an administrator's addresses.
pub const PULSE_ADDRESS_PROTOCOL: u8 = 112;
