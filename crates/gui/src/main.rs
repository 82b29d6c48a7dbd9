//! piranha-gui: the daemon (see the library).

use clap::Parser;
use piranha_gui::app::App;
use piranha_gui::auth::{self, RateLimiter, RatePolicy, SessionPolicy, Sessions};
use piranha_gui::http::{self, Limits};
use piranha_gui::state::Paths;
use piranha_gui::store::Store;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "piranha-gui",
    about = "Web configuration and monitoring of the LVS cluster (lvs.cf, pulse, lvsd)",
    after_help = "Set the password first with piranha-passwd. The GUI refuses to start without one."
)]
struct Args {
    /// Address and port to listen on
    #[arg(
        short = 'l',
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:3636"
    )]
    listen: SocketAddr,

    /// Configuration file the GUI edits
    #[arg(short = 'c', long = "configfile", value_name = "FILE", default_value = lvs_config::DEFAULT_CONFIG_PATH)]
    configfile: PathBuf,

    /// Password file written by piranha-passwd
    #[arg(short = 'p', long = "password-file", value_name = "FILE", default_value = auth::DEFAULT_PASSWORD_FILE)]
    password_file: PathBuf,

    /// TLS certificate chain (PEM); with --tls-key serves HTTPS only
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM)
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Directory of the status files pulse and lvsd write [default: $PIRANHA_STATUS_DIR or /run/piranha]
    #[arg(long = "status-dir", value_name = "DIR")]
    status_dir: Option<PathBuf>,

    /// pulse's pid file (apply sends SIGHUP to pulse)
    #[arg(
        long = "pulse-pidfile",
        value_name = "FILE",
        default_value = "/var/run/pulse.pid"
    )]
    pulse_pidfile: PathBuf,

    /// lvsd's pid file (apply signals lvsd when pulse does not run)
    #[arg(
        long = "lvsd-pidfile",
        value_name = "FILE",
        default_value = "/var/run/lvs.pid"
    )]
    lvsd_pidfile: PathBuf,

    /// File holding a bearer token that may read /metrics without logging in
    #[arg(long = "metrics-token-file", value_name = "FILE")]
    metrics_token_file: Option<PathBuf>,

    /// Failed logins allowed per client address per minute
    #[arg(long = "login-limit", value_name = "N", default_value_t = 5)]
    login_limit: usize,

    /// Failed logins allowed from all clients together per minute
    #[arg(long = "login-limit-global", value_name = "N", default_value_t = 20)]
    login_limit_global: usize,

    /// Minutes of inactivity after which a session ends
    #[arg(long = "session-idle", value_name = "MINUTES", default_value_t = 30)]
    session_idle: u64,

    /// Largest request body accepted, in bytes
    #[arg(long = "max-body", value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_body: usize,

    /// Don't run as a daemon: stay in the foreground and log to stdout
    #[arg(short = 'n', long = "nodaemon")]
    nodaemon: bool,

    /// Pid file [default when running as a daemon: /var/run/piranha-gui.pid]
    #[arg(long = "pidfile", value_name = "FILE")]
    pidfile: Option<PathBuf>,

    /// /proc (tests)
    #[arg(
        long = "proc",
        value_name = "DIR",
        default_value = "/proc",
        hide = true
    )]
    proc_root: PathBuf,

    /// Verbose (debug) logging
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let prog = "piranha-gui";
    // Everything that can fail is checked before going to the background.
    let password_hash = match auth::read_password_file(&args.password_file) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{prog}: {e}");
            eprintln!(
                "{prog}: refusing to start without a password (there is no default password)"
            );
            return ExitCode::from(1);
        }
    };
    let metrics_token = match &args.metrics_token_file {
        None => None,
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) if t.trim().len() >= 16 => Some(t.trim().to_string()),
            Ok(_) => {
                eprintln!(
                    "{prog}: the metrics token in {} must be at least 16 characters",
                    f.display()
                );
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("{prog}: cannot read the metrics token {}: {e}", f.display());
                return ExitCode::from(1);
            }
        },
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => match piranha_gui::tls::server_config(c, k) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("{prog}: {e}");
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    if args.login_limit == 0 || args.login_limit_global == 0 || args.session_idle == 0 {
        eprintln!(
            "{prog}: --login-limit, --login-limit-global and --session-idle must be at least 1"
        );
        return ExitCode::from(1);
    }
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{prog}: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    if !args.nodaemon {
        if let Err(e) = daemon::daemonize(false) {
            eprintln!("{prog}: cannot run as a daemon: {e}");
            return ExitCode::from(1);
        }
        daemon::init_logging(prog, daemon::LogTarget::Syslog, args.verbose);
    } else {
        daemon::init_logging(prog, daemon::LogTarget::Stdout, args.verbose);
    }
    let pidfile = args
        .pidfile
        .clone()
        .or_else(|| (!args.nodaemon).then(|| PathBuf::from("/var/run/piranha-gui.pid")));
    let _pid = match pidfile.as_deref().map(daemon::PidFile::create) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            log::error!("cannot write the pid file: {e}");
            return ExitCode::from(1);
        }
    };
    let status_dir = args
        .status_dir
        .clone()
        .or_else(|| {
            std::env::var_os("PIRANHA_STATUS_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/run/piranha"));
    let app = App {
        store: Store::new(
            args.configfile.clone(),
            Box::new(lvs_config::SystemResolver::default()),
        ),
        paths: Paths {
            status_dir,
            proc_root: args.proc_root.clone(),
            pulse_pidfile: args.pulse_pidfile.clone(),
            lvsd_pidfile: args.lvsd_pidfile.clone(),
        },
        sessions: Sessions::new(SessionPolicy {
            idle: Duration::from_secs(args.session_idle * 60),
            ..SessionPolicy::default()
        }),
        limiter: RateLimiter::new(RatePolicy {
            window: Duration::from_secs(60),
            per_client: args.login_limit,
            global: args.login_limit_global,
        }),
        password_hash,
        metrics_token,
        tls: tls.is_some(),
    };
    if tls.is_none() && !args.listen.ip().is_loopback() {
        log::warn!(
            "listening on {} without TLS: passwords and session cookies cross the network in clear text (use --tls-cert/--tls-key or an ssh tunnel)",
            args.listen
        );
    }
    log::info!(
        "listening on {}://{} (lvs.cf: {}, status: {})",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr().unwrap_or(args.listen),
        args.configfile.display(),
        app.paths.status_dir.display()
    );
    let app = Arc::new(app);
    let handler: Arc<http::Handler> = Arc::new(move |req: &http::Request| app.handle(req));
    let limits = Limits {
        max_body: args.max_body,
        ..Limits::default()
    };
    http::serve(listener, tls, limits, handler);
    ExitCode::SUCCESS
}
