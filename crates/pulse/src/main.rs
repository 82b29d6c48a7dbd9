//! pulse: heartbeat between the two LVS routers; takes over the floating addresses and runs lvsd
//! on the active one (Piranha-compatible; see the library's modules).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use pulse::args::{self, Command, DEFAULT_PIDFILE};
use pulse::driver::{self, Driver, DriverOptions};
use pulse::machine::{Machine, RestartPolicy, Settings};
use pulse::plan;
use pulse::signals::SignalFd;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("pulse: {msg}");
    ExitCode::from(1)
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

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().skip(1).collect();
    let opts = match args::parse(&argv) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Version) => {
            print!("{}", args::version_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            print!("{}", args::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Usage) => {
            print!("{}", args::usage_text());
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(e.message()),
    };
    // Absolute, because the daemon works from / (and lvsd gets the same path).
    let file = config_path(opts.config.clone());
    let file = std::path::absolute(&file).unwrap_or(file);
    let lvsd = std::path::absolute(&opts.lvsd).unwrap_or_else(|_| opts.lvsd.clone());
    let file_text = file.display().to_string();

    // Everything that can be refused is checked before detaching, so the caller sees it.
    let (config, warnings) = match driver::load_config(&file) {
        Ok(c) => c,
        Err(lines) => {
            for l in lines {
                eprintln!("pulse: {l}");
            }
            return ExitCode::from(1);
        }
    };
    let mut rtnl = match netconf::Rtnl::open() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot open rtnetlink: {e}")),
    };
    let local = match driver::local_addresses(&mut rtnl) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot list this host's addresses: {e}")),
    };
    let plan = match plan::plan(&config, &local) {
        Ok(p) => p,
        Err(e) => return fail(e.message(&file_text)),
    };
    let key = match (&plan.key_file, plan.partner) {
        (Some(path), true) => match driver::read_key(path) {
            Ok(k) => Some(k),
            Err(e) => return fail(e),
        },
        _ => None,
    };
    let sockets = match driver::bind_sockets(&plan) {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "cannot create heartbeat socket. running as root? ({} port {}: {e})",
                plan.paths
                    .bind
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.paths.port
            ))
        }
    };
    let arp = match netconf::ArpSocket::open() {
        Ok(a) => a,
        Err(e) => {
            return fail(format!(
                "cannot open a packet socket for gratuitous ARPs: {e}. running as root?"
            ))
        }
    };
    let daemon = !opts.nodaemon;
    let pidfile = match (&opts.pidfile, daemon) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(PathBuf::from(DEFAULT_PIDFILE)),
        (None, false) => None,
    };
    if let Some(p) = &pidfile {
        if let Some(pid) = daemon::process::read_pid(p) {
            if pid != std::process::id() && daemon::process::process_alive(pid) {
                return fail(format!(
                    "{} names running process {pid}: is pulse already running?",
                    p.display()
                ));
            }
        }
    }
    if daemon {
        for w in &warnings {
            eprintln!("pulse: {}", driver::diagnostic_line(&file, w));
        }
        if let Err(e) = daemon::daemonize(false) {
            return fail(format!("cannot become a daemon: {e}"));
        }
        daemon::init_logging("pulse", daemon::LogTarget::Syslog, opts.verbose);
    } else {
        daemon::init_logging("pulse", daemon::LogTarget::Stdout, opts.verbose);
        for w in &warnings {
            log::warn!("{}", driver::diagnostic_line(&file, w));
        }
    }
    // NAT needs IP forwarding etc. on both routers: say what is missing and how to fix it.
    pulse::prereq::log_missing(&config);
    let _pid = match pidfile.as_deref().map(daemon::PidFile::create) {
        Some(Err(e)) => {
            log::error!("cannot write the pid file: {e}");
            return ExitCode::from(1);
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let signals = match SignalFd::install() {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot take over the signals: {e}");
            return ExitCode::from(1);
        }
    };
    if plan.master || plan.partner {
        driver::remove_leftovers(&mut rtnl, &plan.floating);
    }
    let settings = Settings {
        timing: plan.timing,
        master: plan.master,
        partner: plan.partner,
        supervise: !opts.test_start,
        restart: RestartPolicy::default(),
    };
    let machine = Machine::new(settings, Instant::now());
    let dopts = DriverOptions {
        config_path: file,
        lvsd,
        nodaemon: opts.nodaemon,
        verbose: opts.verbose,
        test_start: opts.test_start,
        force_active: opts.force_active,
    };
    let mut driver = Driver::new(dopts, plan, machine, sockets, key, rtnl, arp, signals);
    let code = driver.run();
    ExitCode::from(code.clamp(0, 255) as u8)
}
