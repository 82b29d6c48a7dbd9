//! nanny: health and weight monitor for one real server (Piranha's nanny, spec §4).
//!
//! - [`args`]: the popt-compatible command line.
//! - [`machine`]: the pure check/weight state machine (no I/O; tested exhaustively).
//! - [`probe`]: the TCP/UDP health check; [`external`]: `send_program` and load commands;
//!   [`load`]: load-average parsing; [`posix_regex`]: `--regex` through the C library's POSIX
//!   `regcomp`/`regexec`, as in Piranha.
//! - [`legacy`]: ipvsadm argument vectors (legacy mode); [`report`]: the nanny -> lvsd line
//!   protocol (report mode, docs/nanny-protocol.md).
//! - [`run`]: the process around the machine; [`cli`]: start-up; [`sys`]: signals and `ppoll`.

pub mod args;
pub mod cli;
pub mod external;
pub mod legacy;
pub mod load;
pub mod machine;
pub use lvs_config::posix_regex;
pub mod probe;
pub mod report;
pub mod run;
pub mod sys;

use std::net::SocketAddr;

/// `RIP:PORT` as Piranha printed it (`inet_ntoa`), with brackets for IPv6.
pub fn format_addr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
