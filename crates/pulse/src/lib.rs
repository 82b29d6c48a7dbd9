//! pulse: the heartbeat between the two LVS routers and the failover of the floating addresses,
//! compatible on the wire with Piranha 0.8.6's pulse (spec §2).
//!
//! - [`heartbeat`]: the wire format (Piranha's 4-byte magic, either byte order; the optional
//!   authenticated form).
//! - [`machine`]: the failover state machine, pure (events and time in, actions out).
//! - [`plan`]: what lvs.cf means for this router: role, heartbeat paths, floating addresses.
//! - [`args`]: the command line (Piranha's popt options).
//! - [`prereq`]: the kernel settings a NAT router needs (checked at start and on reload; it lives
//!   in `netconf`, shared with lvsd).
//! - [`driver`]: the I/O: one thread, one `ppoll`, sockets, signals, netlink, lvsd.

pub mod args;
pub mod driver;
pub mod heartbeat;
pub mod machine;
pub mod plan;
pub use netconf::prereq;
pub mod signals;
pub mod status;
