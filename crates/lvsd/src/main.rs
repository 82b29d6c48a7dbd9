//! lvsd (also installed as `lvs`): reads lvs.cf, builds the IPVS table, runs one nanny per real
//! server and keeps the table true (see the library's modules). Besides the daemon it offers
//! `--config-test` and `--dump-config`.

use clap::Parser;
use lvs_config::{Diagnostic, LoadError, Severity, SystemResolver};
use lvsd::controller::{self, Controller, ExitReason, Options};
use lvsd::kernel::Table;
use lvsd::signals::Signals;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Piranha's pid file for lvsd (named "lvs", as Piranha named it).
const DEFAULT_PIDFILE: &str = "/var/run/lvs.pid";

#[derive(Parser, Debug)]
#[command(
    about = "Builds and keeps the IPVS table from lvs.cf (Piranha-compatible)",
    disable_version_flag = true,
    after_help = "Signals: SIGHUP re-reads the configuration (a file with errors is refused and the \
running state kept); SIGTERM or SIGINT stops the nannies, removes the services lvsd created and \
exits; SIGUSR1 logs the state of every virtual and real server; SIGUSR2 compares the services \
lvsd owns with the kernel and repairs any difference now."
)]
struct Args {
    /// Configuration file [default: /etc/sysconfig/ha/lvs.cf, or /etc/lvs.cf if only that exists]
    #[arg(short = 'c', long = "configfile", value_name = "FILE")]
    configfile: Option<PathBuf>,

    /// Verbose (debug) output; also passed to every nanny
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,

    /// Don't run as a daemon: stay in the foreground and log to stdout
    #[arg(short = 'n', long = "nodaemon")]
    nodaemon: bool,

    /// Display what would be done on startup (and on reload), but don't change anything and
    /// don't run any nanny
    #[arg(short = 't', long = "test-start")]
    test_start: bool,

    /// Don't fork, but do disassociate (as pulse runs lvsd)
    #[arg(long = "nofork")]
    nofork: bool,

    /// Pid file, written when running as a daemon (or whenever this option is given)
    #[arg(long = "pidfile", value_name = "FILE")]
    pidfile: Option<PathBuf>,

    /// Seconds between two comparisons of the whole owned table with the kernel (drift repair);
    /// 0: only on SIGUSR2
    #[arg(
        long = "repair-interval",
        value_name = "SECONDS",
        default_value_t = 5.0
    )]
    repair_interval: f64,

    /// Run the nannies N nice levels below lvsd (0: at lvsd's priority, as Piranha did), so
    /// that thousands of health checks never keep lvsd waiting for a CPU
    #[arg(
        long = "nanny-nice",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(i32).range(0..=39)
    )]
    nanny_nice: i32,

    /// Real-time (SCHED_FIFO) priority lvsd takes while it programs the kernel at start, reads
    /// a new configuration or repairs drift: short, bounded work that then never waits behind
    /// the nannies (0: never; needs CAP_SYS_NICE)
    #[arg(
        long = "burst-priority",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(0..=99)
    )]
    burst_priority: u8,

    /// Do not lock lvsd's memory in RAM (by default it is locked when lvsd has CAP_IPC_LOCK, so
    /// a reload never waits for its code to be read back from disk or swap)
    #[arg(long = "no-memory-lock")]
    no_memory_lock: bool,

    /// Parse and validate the configuration, print every problem and a one-line summary, exit 1
    /// if there is any error
    #[arg(long = "config-test", conflicts_with = "dump_config")]
    config_test: bool,

    /// Print the configuration, defaults filled in, as JSON
    #[arg(long = "dump-config")]
    dump_config: bool,

    /// Print the version and exit
    #[arg(long = "version")]
    version: bool,
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "lvsd".into())
}

fn config_path(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    let default = Path::new(lvs_config::DEFAULT_CONFIG_PATH);
    let legacy = Path::new(lvs_config::LEGACY_CONFIG_PATH);
    if !default.exists() && legacy.exists() {
        legacy.to_path_buf()
    } else {
        default.to_path_buf()
    }
}

fn print_diagnostic(prog: &str, file: &Path, d: &Diagnostic) {
    eprintln!("{prog}: {}", controller::diagnostic_line(file, d));
}

/// `--config-test` and `--dump-config`.
fn check_config(prog: &str, file: &Path, dump: bool) -> ExitCode {
    let loaded = match lvs_config::load(file, &SystemResolver::default()) {
        Ok(l) => l,
        Err(LoadError::Open(e)) => {
            eprintln!(
                "{prog}: failed to open {}: {}",
                file.display(),
                controller::os_error_text(&e)
            );
            return ExitCode::from(1);
        }
        Err(LoadError::Syntax(e)) => {
            eprintln!(
                "{prog}: error parsing {} at line {}: {}",
                file.display(),
                e.line,
                e.code.text()
            );
            return ExitCode::from(1);
        }
    };
    for d in &loaded.diagnostics {
        print_diagnostic(prog, file, d);
    }
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = loaded.diagnostics.len() - errors;
    if errors > 0 {
        eprintln!(
            "{prog}: {}: {errors} error{}, {warnings} warning{}",
            file.display(),
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
        return ExitCode::from(1);
    }
    if dump {
        match serde_json::to_string_pretty(&loaded.config) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("{prog}: cannot encode the configuration as JSON: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    let summary = loaded.config.summary();
    if warnings > 0 {
        println!(
            "{}: OK: {summary}; {warnings} warning{}",
            file.display(),
            if warnings == 1 { "" } else { "s" }
        );
    } else {
        println!("{}: OK: {summary}", file.display());
    }
    ExitCode::SUCCESS
}

/// The daemon.
fn run_daemon(prog: &str, args: Args, started_at: Instant) -> ExitCode {
    let file = config_path(args.configfile.clone());
    let resolver = SystemResolver::default();
    // Everything that can be refused is checked before detaching, so the caller sees it.
    let controller::ConfigFile {
        config,
        warnings,
        layout,
        ..
    } = match controller::read_config(&file, &resolver, None) {
        Ok(c) => c,
        Err(lines) => {
            for l in lines {
                eprintln!("{prog}: {l}");
            }
            eprintln!("{prog}: not starting");
            return ExitCode::from(1);
        }
    };
    if !args.nodaemon {
        // In the foreground the log (stdout) says them once the logger is up.
        for w in &warnings {
            print_diagnostic(prog, &file, w);
        }
    }
    if !(args.repair_interval.is_finite() && args.repair_interval >= 0.0) {
        eprintln!(
            "{prog}: --repair-interval: not a number of seconds: {}",
            args.repair_interval
        );
        return ExitCode::from(1);
    }
    let table = if args.test_start {
        Table::dry_run()
    } else {
        match ipvs::open() {
            Ok(b) => Table::kernel(b),
            Err(e) => {
                eprintln!("{prog}: cannot open the kernel's IPVS: {e}");
                eprintln!(
                    "{prog}: is IP Virtual Server built into the kernel or loaded (modprobe ip_vs)?"
                );
                return ExitCode::from(1);
            }
        }
    };
    let daemon = !args.nodaemon;
    let pidfile = match (&args.pidfile, daemon) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(PathBuf::from(DEFAULT_PIDFILE)),
        (None, false) => None,
    };
    if let Some(p) = &pidfile {
        if let Some(pid) = daemon::process::read_pid(p) {
            if pid != std::process::id() && daemon::process::process_alive(pid) {
                eprintln!(
                    "{prog}: {} names running process {pid}: is lvsd already running?",
                    p.display()
                );
                return ExitCode::from(1);
            }
        }
    }
    if daemon {
        if let Err(e) = daemon::daemonize(args.nofork) {
            eprintln!("{prog}: cannot become a daemon: {e}");
            return ExitCode::from(1);
        }
        daemon::init_logging_as("lvsd", "lvs", daemon::LogTarget::Syslog, args.verbose);
    } else {
        daemon::init_logging_as("lvsd", "lvs", daemon::LogTarget::Stdout, args.verbose);
    }
    for w in &warnings {
        log::warn!("{}", controller::diagnostic_line(&file, w));
    }
    // A NAT router's kernel settings (ip_forward, ...): each one missing is logged with its fix.
    netconf::prereq::log_missing(&config);
    let _pid = match pidfile.as_deref().map(daemon::PidFile::create) {
        Some(Err(e)) => {
            log::error!(
                "cannot write the pid file {}: {e}",
                pidfile.as_deref().unwrap_or(Path::new("")).display()
            );
            return ExitCode::from(1);
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    // One pipe per nanny: make room for thousands.
    let nannies = config.summary().active_real;
    let wanted = (nannies as u64) * 2 + 256;
    match lvsd::supervisor::raise_fd_limit(wanted) {
        Ok(limit) if limit < wanted => log::warn!(
            "the open-file limit ({limit}) is too low for {nannies} nannies: raise the hard \
             limit (ulimit -Hn)"
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }
    let nice = lvsd::priority::set_nanny_nice(args.nanny_nice);
    if args.nanny_nice != 0 {
        log::debug!("nannies run at nice {nice}");
    }
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut opts = Options::new(&file);
    opts.verbose = args.verbose;
    opts.daemon = daemon;
    opts.test_start = args.test_start;
    opts.repair_interval =
        (args.repair_interval > 0.0).then(|| Duration::from_secs_f64(args.repair_interval));
    opts.started_at = started_at;
    opts.publish_status = !args.test_start;
    opts.boost = args.burst_priority;
    let mut ctl = Controller::new(opts, config, table, Box::new(resolver));
    ctl.set_layout(layout);
    ctl.start();
    // After the start, which the lock would slow down by reading all of lvsd in at once.
    if !args.no_memory_lock {
        match lvsd::priority::lock_memory() {
            Ok(lvsd::priority::MemoryLock::Locked) => log::debug!("memory locked"),
            Ok(lvsd::priority::MemoryLock::NotPermitted) => {
                log::debug!("memory not locked: no CAP_IPC_LOCK")
            }
            Err(e) => log::warn!("cannot lock memory: {e}"),
        }
    }
    let reason = ctl.run(&signals);
    ctl.shutdown();
    match reason {
        ExitReason::Signal(_) => {
            log::info!("lvsd stopped");
            ExitCode::SUCCESS
        }
        ExitReason::NannyDied => {
            log::error!("lvsd stopped because a nanny died (hard_shutdown = 1)");
            ExitCode::from(1)
        }
        ExitReason::Failed => {
            log::error!("lvsd stopped after an error");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let started_at = Instant::now();
    let prog = program_name();
    let args = Args::parse();
    if args.version {
        println!(
            "{prog} {} (piranha-rs; Piranha lvs 1.38 compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    if args.config_test || args.dump_config {
        let file = config_path(args.configfile);
        return check_config(&prog, &file, args.dump_config);
    }
    run_daemon(&prog, args, started_at)
}
