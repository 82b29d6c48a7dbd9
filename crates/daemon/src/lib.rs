//! Process plumbing shared by the suite's daemons (pulse, lvsd, nanny), as Piranha's daemons did
//! it: log through syslog (ident, LOG_DAEMON) when daemonised and to stdout in the foreground;
//! daemonize with or without the second fork (`--nofork`: disassociate only); pid files.

pub mod logging;
pub mod process;
pub mod status_file;

pub use logging::{init_logging, init_logging_as, LogTarget};
pub use process::{daemonize, PidFile};
