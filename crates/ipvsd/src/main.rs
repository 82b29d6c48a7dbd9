//! `ipvsd`: the userspace IPVS daemon. Holds an IPVS table (programmed with ipvsadm, lvsd, ...
//! through its control socket) and forwards the TCP and UDP traffic of each virtual service to
//! its real servers.

use std::path::PathBuf;
use std::process::ExitCode;

use ipvsd::control::{self, Daemon, Options};
use ipvsd::engine::Config;
use ipvsd::table::SystemHost;

const USAGE: &str = "\
Usage: ipvsd [OPTIONS]

The userspace IPVS backend: keeps an IPVS table with the kernel's schedulers, counters and
timeouts, and forwards TCP and UDP for each virtual service to its real servers by proxying
(the masquerading method). Program it with ipvsadm, lvsd or pulse as usual; they use it when the
kernel has no IPVS, or with IPVS_BACKEND=userspace.

Options:
  --socket PATH      control socket (default: $IPVSD_SOCKET, else /run/ipvsd.sock)
  --threads N        forwarding threads (default: one per CPU)
  --pipe-size BYTES  size of each splice pipe (default 65536)
  -h, --help         this text
  -V, --version      the version
";

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut opts = Options {
        socket: ipvs::userspace::socket_path(),
        engine: Config {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pipe_size: 65536,
        },
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{what} needs a value"))
        };
        match name {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("{}", control::daemon_name());
                return Ok(None);
            }
            "--socket" => opts.socket = PathBuf::from(value("--socket")?),
            "--threads" => {
                let v = value("--threads")?;
                opts.engine.threads = match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(format!("--threads {v}: expected 1..1024")),
                };
            }
            "--pipe-size" => {
                let v = value("--pipe-size")?;
                opts.engine.pipe_size = match v.parse::<usize>() {
                    Ok(n) if (4096..=(1 << 20)).contains(&n) => n,
                    _ => return Err(format!("--pipe-size {v}: expected 4096..1048576")),
                };
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvsd: {e}\nTry 'ipvsd --help'.");
            return ExitCode::from(2);
        }
    };
    // Signals go to the control loop (a signalfd); blocked before any thread starts.
    let signals = match ipvsd::sys::signal_fd() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipvsd: signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    ipvsd::sys::raise_nofile();
    let listener = match control::bind_control(&opts.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ipvsd: {}: {e}", opts.socket.display());
            return ExitCode::FAILURE;
        }
    };
    let daemon = match Daemon::new(opts.engine, Box::new(SystemHost)) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ipvsd: cannot start: {e}");
            let _ = std::fs::remove_file(&opts.socket);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "ipvsd: {} listening on {} ({} forwarding threads)",
        control::daemon_name(),
        opts.socket.display(),
        opts.engine.threads
    );
    match control::serve(daemon, listener, &opts.socket, Some(signals)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvsd: {e}");
            ExitCode::FAILURE
        }
    }
}
