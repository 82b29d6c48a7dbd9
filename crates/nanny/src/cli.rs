//! From the command line to a running monitor: options, mode (report or legacy), daemonizing,
//! logging, signals, then [`crate::run::run`].

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use crate::args::{self, Options, Parsed};
use crate::external::{self, Want};
use crate::legacy::Ipvsadm;
use crate::load;
use crate::machine::{self, Machine, Service};
use crate::probe::{Expect, Prober};
use crate::report::{Report, REPORT_FD_ENV, VERSION};
use crate::run::{self, Checker, LoadReader, Reporter, Sink};
use crate::sys;

/// Piranha's default probe for a web service with nothing configured.
pub const HTTP_SEND: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
pub const HTTP_EXPECT: &[u8] = b"HTTP";

/// Runs nanny with `argv` (argv[0] included); returns the exit status.
pub fn main(argv: Vec<OsString>) -> i32 {
    let opts = match args::parse(&argv) {
        Ok(Parsed::Run(o)) => *o,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Err(e) => {
            eprint!("{e}");
            return 1;
        }
    };
    match setup(opts) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("nanny: {msg}");
            1
        }
    }
}

/// The report descriptor from `--report-fd` or `NANNY_REPORT_FD`.
fn report_fd(opts: &Options) -> Result<Option<i32>, String> {
    let from_env = match std::env::var_os(REPORT_FD_ENV) {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => {
            let s = v.to_string_lossy();
            match s.parse::<i32>() {
                Ok(fd) if fd >= 0 && s.bytes().all(|b| b.is_ascii_digit()) => Some(fd),
                _ => {
                    return Err(format!(
                        "{REPORT_FD_ENV}=\"{s}\" is not a file descriptor number"
                    ))
                }
            }
        }
    };
    // Children (checks, load commands) must not see it.
    std::env::remove_var(REPORT_FD_ENV);
    Ok(opts.report_fd.or(from_env))
}

/// The probe strings after Piranha's defaults and escape conversion, and the startup notes to
/// log once logging is up.
struct Probe {
    send: Option<Vec<u8>>,
    expect: Option<Vec<u8>>,
    notes: Vec<String>,
}

fn probe_strings(o: &Options) -> Probe {
    let mut notes = Vec::new();
    let mut send = o.send.clone();
    let mut expect = o.expect.clone();
    if let (Some(p), Some(s)) = (&o.send_program, &send) {
        notes.push(format!(
            "External program use requested: ({}), IGNORING send string option ({})",
            String::from_utf8_lossy(p),
            String::from_utf8_lossy(s)
        ));
        send = None;
    }
    if o.port == 80 && send.is_none() && expect.is_none() && o.send_program.is_none() {
        notes.push("nanny: no monitor configured, assuming web service on port 80".to_string());
        send = Some(HTTP_SEND.to_vec());
        expect = Some(HTTP_EXPECT.to_vec());
    }
    if !o.suppress {
        send = send.map(|s| args::convert_escapes(&s));
        expect = expect.map(|s| args::convert_escapes(&s));
    }
    if o.udp && o.send_program.is_none() && send.as_deref().map_or(true, <[u8]>::is_empty) {
        notes.push(
            "UDP check without a send string: an empty datagram is sent and the server must answer it"
                .to_string(),
        );
    }
    Probe {
        send,
        expect,
        notes,
    }
}

fn setup(opts: Options) -> Result<i32, String> {
    // First, so that an early SIGUSR1/SIGUSR2/SIGHUP from lvsd does not kill nanny (their default
    // action); they stay blocked until the first wait. Inherited across daemonize's fork.
    let signals = sys::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let report = report_fd(&opts)?;
    let rip = match opts.server {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a.to_string(),
    };
    let server_addr = SocketAddr::new(opts.server, opts.rport);
    let server_name = crate::format_addr(&server_addr);
    let timeout = Duration::from_secs(u64::from(opts.interval));
    let strings = probe_strings(&opts);

    // Everything that can be refused is checked before daemonizing, so lvsd sees the error.
    let checker = match &opts.send_program {
        Some(p) => Checker::Program {
            argv: external::split_command(p, &rip, opts.rport),
            want: Want::new(strings.expect.as_deref(), opts.regex)
                .map_err(|e| format!("bad regular expression in --expect_string (-x): {e}"))?,
            timeout,
            server: server_name.clone(),
        },
        None => Checker::Socket(Prober::new(
            server_addr,
            opts.udp,
            strings.send.clone(),
            Expect::new(strings.expect.as_deref(), opts.regex)
                .map_err(|e| format!("bad regular expression in --expect_string (-x): {e}"))?,
            timeout,
        )),
    };
    let load_reader = match (opts.service, load::load_argv(&opts.load_cmd, &rip)) {
        (Service::Lvs, Some(argv)) => Some(LoadReader {
            argv,
            timeout,
            host: rip.clone(),
        }),
        _ => None,
    };
    let sink = match report {
        Some(fd) => {
            if !sys::fd_is_open(fd) {
                return Err(format!("report descriptor {fd} is not open"));
            }
            let fd = if fd <= 2 {
                sys::move_above_stdio(fd).map_err(|e| format!("report descriptor {fd}: {e}"))?
            } else {
                sys::set_cloexec(fd).map_err(|e| format!("report descriptor {fd}: {e}"))?;
                fd
            };
            let _ = sys::set_blocking(fd);
            // SAFETY: the descriptor was handed to us by lvsd and is used by nothing else here.
            Sink::Report(Reporter::new(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
        None => {
            if opts.service == Service::Lvs && opts.fwmark == 0 && opts.vip.is_none() {
                return Err(
                    "no virtual service: give --virtaddress (-V) or --fwmark (-f) for ipvsadm"
                        .to_string(),
                );
            }
            Sink::Ipvsadm(Ipvsadm::new(&opts))
        }
    };

    if !opts.nodaemon {
        daemon::daemonize(opts.nofork).map_err(|e| format!("cannot daemonize: {e}"))?;
    }
    daemon::init_logging(
        "nanny",
        if opts.nodaemon {
            daemon::LogTarget::Both
        } else {
            daemon::LogTarget::Syslog
        },
        opts.verbose,
    );

    for n in &strings.notes {
        log::info!("{n}");
    }
    let vip = opts
        .vip
        .as_ref()
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| "(null)".to_string());
    match opts.service {
        Service::Lvs => log::info!(
            "starting LVS client monitor for {vip}:{} -> {server_name}",
            opts.port
        ),
        Service::Fos => log::info!("Failover service monitor for {vip}:{} started", opts.port),
    }
    if opts.verbose {
        log_strings(&opts, &strings);
    }

    let mut sink = sink;
    if let Sink::Report(r) = &mut sink {
        let hello = Report::Hello {
            version: VERSION,
            pid: std::process::id(),
            server: server_addr,
        };
        if let Err(e) = r.send(&hello) {
            log::info!("cannot write to the report pipe ({e}): exiting");
            return Ok(1);
        }
    }

    let machine = Machine::new(machine::Config {
        service: opts.service,
        weight: opts.weight,
        scale: opts.scale,
        interval: opts.interval,
        count_thresh: opts.count_thresh(),
        quiesce: opts.quiesce,
        load_monitor: load_reader.is_some(),
        verbose: opts.verbose,
        server: server_name,
    });
    Ok(run::run(machine, checker, load_reader, sink, &signals))
}

fn log_strings(o: &Options, p: &Probe) {
    fn show(label: &str, v: Option<&[u8]>) {
        match v {
            Some(s) => log::debug!(
                "{label} len={}, text=\"{}\"",
                s.len(),
                String::from_utf8_lossy(s).escape_debug()
            ),
            None => log::debug!("{label} is NULL"),
        }
    }
    show("Send_program", o.send_program.as_deref());
    show("Send_string", p.send.as_deref());
    show("Expect_string", p.expect.as_deref());
}
