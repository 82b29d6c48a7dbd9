//! A `log` backend writing to syslog, stdout, or both.
//!
//! Stdout lines are the message alone (Piranha's `-n` output), flushed per line so a pipe reader
//! (lvsd reading a nanny, a test) sees each line at once. Syslog messages go through libc's
//! `syslog(3)` with the ident given to [`init_logging`] and facility LOG_DAEMON.

use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Syslog,
    /// Both (Piranha 0.8.6 nanny with `--nodaemon`).
    Both,
}

struct Logger {
    target: LogTarget,
    level: LevelFilter,
}

/// The ident must outlive every syslog call: openlog keeps the pointer.
static IDENT: OnceLock<CString> = OnceLock::new();
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger once per process. `verbose` lets debug records through.
/// A second call is ignored (the first target stays).
pub fn init_logging(ident: &str, target: LogTarget, verbose: bool) {
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    if target != LogTarget::Stdout {
        let ident = IDENT.get_or_init(|| {
            CString::new(ident.replace('\0', "")).unwrap_or_else(|_| CString::default())
        });
        // SAFETY: `ident` lives in a static for the rest of the process.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    }
    let logger = LOGGER.get_or_init(|| Logger { target, level });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

fn syslog_priority(level: Level) -> libc::c_int {
    match level {
        Level::Error => libc::LOG_ERR,
        Level::Warn => libc::LOG_WARNING,
        Level::Info => libc::LOG_INFO,
        Level::Debug | Level::Trace => libc::LOG_DEBUG,
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        if self.target != LogTarget::Syslog {
            let mut out = std::io::stdout().lock();
            // A closed stdout must not kill a daemon: drop the line.
            let _ = writeln!(out, "{msg}");
            let _ = out.flush();
        }
        if self.target != LogTarget::Stdout {
            let c = CString::new(msg.replace('\0', "")).unwrap_or_default();
            // SAFETY: "%s" with a valid NUL-terminated string.
            unsafe { libc::syslog(syslog_priority(record.level()), c"%s".as_ptr(), c.as_ptr()) };
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}
