//! A `log` backend writing to syslog, stdout, or both.
//!
//! Stdout lines are `NAME: message`, as Piranha's daemons printed them in the foreground (`pulse:`,
//! `nanny:`, and `lvs:` for lvsd: Piranha's lvsd called itself "lvs"), flushed per line so a pipe
//! reader (a test, an operator's `| grep`) sees each line at once. Syslog messages go through
//! libc's `syslog(3)` with the ident given to [`init_logging`] and facility LOG_DAEMON (syslog
//! adds the ident itself).

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
    /// Prefix of stdout lines (without the `: `).
    stdout_name: String,
}

/// The ident must outlive every syslog call: openlog keeps the pointer.
static IDENT: OnceLock<CString> = OnceLock::new();
static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger once per process. `verbose` lets debug records through.
/// A second call is ignored (the first target stays). Stdout lines are prefixed with `ident: `.
pub fn init_logging(ident: &str, target: LogTarget, verbose: bool) {
    init_logging_as(ident, ident, target, verbose)
}

/// Like [`init_logging`], with a different name on stdout than in syslog (lvsd: syslog ident
/// `lvsd`, stdout lines `lvs: ...` as Piranha's).
pub fn init_logging_as(ident: &str, stdout_name: &str, target: LogTarget, verbose: bool) {
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
    let logger = LOGGER.get_or_init(|| Logger {
        target,
        level,
        stdout_name: stdout_name.to_string(),
    });
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
            let _ = writeln!(out, "{}: {msg}", self.stdout_name);
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
