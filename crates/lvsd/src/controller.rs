//! The daemon: start-up, the main loop, nanny reports and deaths, reload, drift repair, shutdown.
//!
//! One thread. The loop `poll`s the signal pipe and every nanny's report pipe, with a timeout set
//! by the nearest deadline (a server settling, a nanny restart, a drift repair; at most 5 s, as
//! Piranha's `alarm(5)`). Each wake it handles, in order: SIGTERM/SIGINT (shut down), reports
//! (health changes mark their service dirty), ended nannies, deadlines, SIGHUP (reload),
//! SIGUSR1 (status to the log), and then either a full drift repair (every `repair_interval`,
//! or at once on SIGUSR2) or a reconcile of the dirty services only.
//!
//! Kernel work is always "read what the kernel has for the services concerned, compute the
//! minimal changes ([`crate::reconcile`]), send them in one batch". Only owned services are ever
//! read in detail or changed: those of the active virtual servers, plus those just removed from
//! the config until their deletion is done.

use crate::health::{settle_time, sorry_next, ServerHealth, SETTLE_MARGIN};
use crate::kernel::{Counters, Table};
use crate::monitor::{monitor_specs, planned_monitors, ArgvOptions, MonitorSpec, ARGV_GLOBALS};
use crate::plan::{desired_service, desired_table, service_id, DesiredTable, Health, MonitorKey};
use crate::poller::Poller;
use crate::priority::Boost;
use crate::reconcile::{change_service, describe, reconcile_service, service_arg};
use crate::reload::{changed_services, describe_diff, plan_monitors};
use crate::signals::Signals;
use crate::supervisor::{self, Backoff, Child, Exit};
use ipvs::{Change, ServiceId, Timeouts};
use log::{debug, error, info, warn};
use lvs_config::{Config, Diagnostic, Layout, LoadError, Previous, Resolver, Severity, SourceMap};
use nanny::report::{Report, ReportError};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_path: PathBuf,
    /// `-v`: debug logging, and `-v` for every nanny.
    pub verbose: bool,
    /// Running as a daemon (no `-n`); decides nanny's `--nodaemon`.
    pub daemon: bool,
    /// `-t`: log what would be done, change nothing, start no nanny.
    pub test_start: bool,
    /// Full drift repair period; `None`: only on SIGUSR2.
    pub repair_interval: Option<Duration>,
    /// Time a nanny gets beyond its `timeout` for its first report.
    pub settle_margin: Duration,
    /// Time nannies get to exit after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// Nanny restart delays (`hard_shutdown = 0`).
    pub backoff: Backoff,
    /// When the process started (for the start-up timing line).
    pub started_at: Instant,
    /// Publish the status file for piranha-gui (`status`; the daemon does, an embedded
    /// controller does not).
    pub publish_status: bool,
    /// `SCHED_FIFO` priority of the bursts of kernel work (start, reload, repair, stop); 0: none
    /// ([`crate::priority::Boost`]).
    pub boost: u8,
}

impl Options {
    pub fn new(config_path: impl Into<PathBuf>) -> Options {
        Options {
            config_path: config_path.into(),
            verbose: false,
            daemon: false,
            test_start: false,
            repair_interval: Some(Duration::from_secs(5)),
            settle_margin: SETTLE_MARGIN,
            stop_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            started_at: Instant::now(),
            publish_status: false,
            boost: 0,
        }
    }

    fn argv_options(&self) -> ArgvOptions {
        ArgvOptions {
            verbose: self.verbose,
            daemon: self.daemon,
        }
    }
}

/// Why the main loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// SIGTERM or SIGINT.
    Signal(i32),
    /// A nanny died with `hard_shutdown = 1`.
    NannyDied,
    /// lvsd could not go on (the reason was logged).
    Failed,
}

/// A reload at least this long logs the time of each of its steps.
const SLOW_RELOAD: Duration = Duration::from_millis(50);

/// The longest the loop sleeps (Piranha woke every 5 s).
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Bad report lines logged per nanny before going quiet.
const BAD_LINES_LOGGED: u64 = 10;
/// The same failure text is logged at most once per this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(300);
/// Every nanny is checked for an exit this often even without SIGCHLD (insurance only: SIGCHLD
/// and the end of a report pipe are what normally tell).
const REAP_SWEEP: Duration = Duration::from_secs(60);
/// How soon to look again for a nanny whose pipe closed (or that was told to stop) but that
/// could not be collected yet.
const UNREAPED_RECHECK: Duration = Duration::from_millis(50);
/// Nannies started per pass of the loop, so that thousands of them do not keep signals and
/// reports waiting.
const SPAWN_BATCH: usize = 64;

struct Monitor {
    spec: MonitorSpec,
    health: ServerHealth,
    child: Option<Child>,
    restart_at: Option<Instant>,
    backoff: Backoff,
    silence_warned: bool,
}

/// A nanny being stopped (reload, restart): reaped when it ends, killed if it takes too long.
struct Retiring {
    pid: i32,
    label: String,
    kill_at: Instant,
    killed: bool,
    /// Kept (unread) until the nanny is reaped, so that its last report does not meet a closed
    /// pipe (which a nanny takes for lvsd's death).
    _child: Child,
}

/// Why the kernel is being changed (for log lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Start,
    Event,
    Reload,
    Repair,
    Shutdown,
}

/// Loads and validates a config file. `Err` holds the lines to report (the config must not be
/// used); `Ok` holds the config and its warnings.
pub fn load_config(
    path: &Path,
    resolver: &dyn Resolver,
) -> Result<(Config, Vec<Diagnostic>), Vec<String>> {
    read_config(path, resolver, None).map(|r| (r.config, r.warnings))
}

/// A config file read and validated, with what the next reload needs to copy its unchanged
/// blocks instead of parsing them again.
pub struct ConfigFile {
    pub config: Config,
    /// How long reading the file took (the rest of the load is parsing and checking).
    pub read_time: Duration,
    pub warnings: Vec<Diagnostic>,
    pub layout: FileLayout,
}

/// Where each block of the running config's file lies ([`lvs_config::Layout`]) and its source
/// map: the running config is the one parsed from them.
pub struct FileLayout {
    source: SourceMap,
    layout: Layout,
}

/// [`load_config`], copying the blocks unchanged since `previous` (the running config and its
/// layout) from it.
pub fn read_config(
    path: &Path,
    resolver: &dyn Resolver,
    previous: Option<(&Config, &FileLayout)>,
) -> Result<ConfigFile, Vec<String>> {
    read_config_into(path, resolver, previous, Vec::new())
}

/// [`read_config`], reading the file into `buffer`'s memory.
pub fn read_config_into(
    path: &Path,
    resolver: &dyn Resolver,
    previous: Option<(&Config, &FileLayout)>,
    buffer: Vec<u8>,
) -> Result<ConfigFile, Vec<String>> {
    let file = path.display();
    let previous = previous.map(|(config, f)| Previous {
        config,
        source: &f.source,
        layout: &f.layout,
    });
    let t = Instant::now();
    let bytes = lvs_config::read_into(path, buffer);
    let read_time = t.elapsed();
    let (loaded, layout) = match bytes.and_then(|b| {
        lvs_config::load_bytes_reusing(b, resolver, previous).map_err(LoadError::Syntax)
    }) {
        Ok(l) => l,
        Err(LoadError::Open(e)) => {
            return Err(vec![format!(
                "failed to open {file}: {}",
                os_error_text(&e)
            )])
        }
        Err(LoadError::Syntax(e)) => {
            return Err(vec![format!(
                "error parsing {file} at line {}: {}",
                e.line,
                e.code.text()
            )])
        }
    };
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| diagnostic_line(path, d))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ConfigFile {
        config: loaded.config,
        read_time,
        warnings: loaded.diagnostics,
        layout: FileLayout {
            source: loaded.source,
            layout,
        },
    })
}

/// One diagnostic as lvsd prints it (`--config-test` style).
pub fn diagnostic_line(file: &Path, d: &Diagnostic) -> String {
    match d.location.line {
        Some(line) => format!(
            "{} in {} at line {line}: {}",
            d.severity,
            file.display(),
            d.message
        ),
        None => format!("{} in {}: {}", d.severity, file.display(), d.message),
    }
}

/// An OS error as C's strerror() says it, without Rust's " (os error N)".
pub fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// How long each step of a reload took (logged when it was slow, or with -v).
struct Phases {
    last: Instant,
    /// Time of steps pushed since the last mark (part of the time up to the next mark).
    pushed: Duration,
    steps: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new(start: Instant) -> Phases {
        Phases {
            last: start,
            pushed: Duration::ZERO,
            steps: Vec::new(),
        }
    }

    /// The step that ended now (less the steps pushed meanwhile).
    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        let took = (now - self.last).saturating_sub(self.pushed);
        self.steps.push((step, took));
        self.pushed = Duration::ZERO;
        self.last = now;
    }

    /// A step timed elsewhere, inside the time the next `mark` ends.
    fn push(&mut self, step: &'static str, took: Duration) {
        self.steps.push((step, took));
        self.pushed += took;
    }

    fn report(&self) -> String {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|(step, d)| format!("{step} {}", ms(*d)))
            .collect();
        parts.join(", ")
    }
}

fn timeouts_of(c: &Config) -> Timeouts {
    Timeouts {
        tcp: c.tcp_timeout,
        tcp_fin: c.tcpfin_timeout,
        udp: c.udp_timeout,
    }
}

pub struct Controller {
    opts: Options,
    config: Config,
    /// Where the blocks of `config`'s file lie, for the next reload ([`read_config`]).
    layout: Option<FileLayout>,
    resolver: Box<dyn Resolver>,
    table: Table,
    monitors: BTreeMap<MonitorKey, Monitor>,
    retiring: Vec<Retiring>,
    /// Active virtual servers by service id (index into `config.virtual_servers`).
    vs_index: HashMap<ServiceId, usize>,
    /// Sorry-server switch per service.
    sorry: HashMap<ServiceId, bool>,
    /// Services removed from the config whose deletion is not done yet.
    retired: HashSet<ServiceId>,
    /// Services whose desired state may have changed since the last reconcile.
    dirty: HashSet<ServiceId>,
    next_repair: Option<Instant>,
    exit: Option<ExitReason>,
    failures_logged: HashMap<String, Instant>,
    reap_sweep_at: Instant,
    /// Nannies to start, a batch per pass of the loop.
    spawn_queue: VecDeque<MonitorKey>,
    /// Bumped whenever something the status file shows changes (a health, a nanny's pid, the
    /// sorry-server switch, the config): the publisher compares numbers, not 4,000 entries.
    status_generation: u64,
    /// What the loop waits on: the signal pipe and the nannies' report pipes.
    poller: Option<Poller>,
    /// The signal pipe registered in `poller`.
    signals_fd: Option<RawFd>,
    /// Report pipe token -> its monitor (checked against the child's token: a stale one is
    /// ignored); the next token to give.
    tokens: HashMap<u64, MonitorKey>,
    next_token: u64,
    /// Monitors whose report pipe reached end of file and whose nanny is not collected yet.
    closed: Vec<MonitorKey>,
    /// Scratch for the ready tokens of a pass.
    ready: Vec<u64>,
    /// During a reload for SIGHUP: when the signal arrived.
    hup_at: Option<Instant>,
    /// The memory of the file before last, for the next reload to read into.
    spare_buffer: Vec<u8>,
}

impl Controller {
    pub fn new(
        opts: Options,
        config: Config,
        table: Table,
        resolver: Box<dyn Resolver>,
    ) -> Controller {
        let mut c = Controller {
            opts,
            config,
            layout: None,
            resolver,
            table,
            monitors: BTreeMap::new(),
            retiring: Vec::new(),
            vs_index: HashMap::default(),
            sorry: HashMap::default(),
            retired: HashSet::default(),
            dirty: HashSet::default(),
            next_repair: None,
            exit: None,
            failures_logged: HashMap::default(),
            reap_sweep_at: Instant::now() + REAP_SWEEP,
            spawn_queue: VecDeque::new(),
            status_generation: 0,
            poller: Poller::new().ok(),
            signals_fd: None,
            tokens: HashMap::default(),
            next_token: 1,
            closed: Vec::new(),
            ready: Vec::new(),
            hup_at: None,
            spare_buffer: Vec::new(),
        };
        c.index_config();
        c
    }

    fn index_config(&mut self) {
        self.vs_index.clear();
        for (i, vs) in self.config.virtual_servers.iter().enumerate() {
            if !vs.active {
                continue;
            }
            if let Some(k) = vs.key() {
                self.vs_index.entry(service_id(k)).or_insert(i);
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Gives the layout of the file the config came from ([`read_config`]), so that the first
    /// reload already copies the unchanged blocks.
    pub fn set_layout(&mut self, layout: FileLayout) {
        self.layout = Some(layout);
    }

    pub fn counters(&self) -> Counters {
        self.table.counters
    }

    /// The IPVS table, for the status publisher's counter reads ([`crate::status`]).
    pub(crate) fn table_mut(&mut self) -> &mut Table {
        &mut self.table
    }

    pub fn exit_reason(&self) -> Option<&ExitReason> {
        self.exit.as_ref()
    }

    /// The health of every monitored server.
    pub fn health(&self) -> BTreeMap<MonitorKey, Health> {
        self.monitors
            .iter()
            .map(|(k, m)| (*k, m.health.state))
            .collect()
    }

    /// Changes whenever the health, nanny pid or sorry-server switch of a server, or the config,
    /// changes (see the status publisher).
    pub fn status_generation(&self) -> u64 {
        self.status_generation
    }

    /// The pids of the running nannies.
    pub fn nanny_pids(&self) -> BTreeMap<MonitorKey, i32> {
        self.monitors
            .iter()
            .filter_map(|(k, m)| m.child.as_ref().map(|c| (*k, c.pid)))
            .collect()
    }

    /// The health (when monitored) and nanny pid (when running) of one real server.
    pub fn monitor_state(&self, key: &MonitorKey) -> (Option<Health>, Option<i32>) {
        match self.monitors.get(key) {
            Some(m) => (Some(m.health.state), m.child.as_ref().map(|c| c.pid)),
            None => (None, None),
        }
    }

    /// Whether the sorry server of a service is switched on.
    pub fn sorry_on(&self, id: &ServiceId) -> bool {
        self.sorry.get(id).copied().unwrap_or(false)
    }

    fn vs_name(&self, id: &ServiceId) -> String {
        self.vs_index
            .get(id)
            .map(|&i| self.config.virtual_servers[i].name.clone())
            .unwrap_or_else(|| service_arg(id))
    }

    fn health_of(&self, key: &MonitorKey) -> Health {
        self.monitors
            .get(key)
            .map(|m| m.health.state)
            .unwrap_or(Health::Down)
    }

    fn desired_for(&self, id: &ServiceId) -> Option<crate::plan::DesiredService> {
        let &i = self.vs_index.get(id)?;
        let vs = &self.config.virtual_servers[i];
        desired_service(&self.config, vs, &|k| self.health_of(k), self.sorry_on(id))
    }

    fn desired_all(&self) -> DesiredTable {
        desired_table(&self.config, &|k| self.health_of(k), &|id| {
            self.sorry_on(id)
        })
    }

    fn owned(&self) -> HashSet<ServiceId> {
        self.vs_index
            .keys()
            .chain(self.retired.iter())
            .copied()
            .collect()
    }

    // ---------------------------------------------------------------- start

    /// Programs the kernel for the config (timeouts, every active virtual service, adopting those
    /// already there), then starts one nanny per active real server.
    pub fn start(&mut self) {
        let _boost = Boost::enter(self.opts.boost);
        let summary = self.config.summary();
        info!(
            "starting: {} ({}){}",
            summary,
            self.opts.config_path.display(),
            if self.opts.test_start {
                "; test start: nothing is changed and no nanny is run"
            } else {
                ""
            }
        );
        let t = timeouts_of(&self.config);
        if t != Timeouts::default() {
            self.apply(vec![Change::SetTimeouts(t)], Cause::Start);
        }
        // Every real server is unknown until its nanny reports, so an adopted service keeps its
        // configured destinations meanwhile.
        let desired = desired_table(&self.config, &|_| Health::Unknown, &|_| false);
        let owned: HashSet<ServiceId> = desired.ids().collect();
        let actual = match self.table.read_owned(&owned) {
            Ok(a) => a,
            Err(e) => {
                error!("cannot list the IPVS table: {e}; adding every virtual service");
                HashMap::default()
            }
        };
        let mut changes = Vec::new();
        for s in &desired.services {
            changes.extend(reconcile_service(Some(s), actual.get(&s.id())));
        }
        let n = changes.len();
        // The kernel first, the log after: with thousands of services the log lines take longer
        // than the kernel requests.
        let t_kernel = Instant::now();
        self.apply(changes, Cause::Start);
        let kernel_time = t_kernel.elapsed();
        let elapsed = self.opts.started_at.elapsed();
        let (mut added, mut adopted) = (0, 0);
        for s in &desired.services {
            if actual.contains_key(&s.id()) {
                adopted += 1;
                info!(
                    "virtual service {} ({}) is already in the kernel: adopting it",
                    s.name,
                    service_arg(&s.id())
                );
            } else {
                added += 1;
                info!("starting virtual service {}", s.name);
            }
        }
        info!(
            "{} virtual services in the kernel ({added} added, {adopted} adopted, {n} changes in {}) {} after start",
            desired.len(),
            ms(kernel_time),
            ms(elapsed)
        );
        // The nannies (after the kernel: building thousands of argument vectors takes a while).
        for spec in monitor_specs(&self.config, self.opts.argv_options()) {
            self.monitors.insert(
                spec.key,
                Monitor {
                    spec,
                    // Settling starts when the nanny does.
                    health: ServerHealth::waiting(),
                    child: None,
                    restart_at: None,
                    backoff: self.opts.backoff,
                    silence_warned: false,
                },
            );
        }
        let keys: Vec<MonitorKey> = self.monitors.keys().copied().collect();
        self.spawn_queue.extend(keys);
        self.spawn_some();
        for id in desired.ids() {
            self.refresh_sorry(&id);
        }
        self.flush_dirty();
        self.next_repair = self.opts.repair_interval.map(|d| Instant::now() + d);
    }

    // ---------------------------------------------------------------- nannies

    /// Starts the next batch of queued nannies.
    fn spawn_some(&mut self) {
        for _ in 0..SPAWN_BATCH {
            let Some(key) = self.spawn_queue.pop_front() else {
                break;
            };
            self.spawn_monitor(key);
            if self.exit.is_some() {
                break;
            }
        }
    }

    fn spawn_monitor(&mut self, key: MonitorKey) {
        let now = Instant::now();
        let test_start = self.opts.test_start;
        let margin = self.opts.settle_margin;
        let Some(m) = self.monitors.get_mut(&key) else {
            return;
        };
        if m.child.is_some() {
            return;
        }
        m.restart_at = None;
        m.silence_warned = false;
        let settle = settle_time(m.spec.timeout, margin);
        m.health.restart(now, settle);
        self.status_generation += 1;
        if test_start {
            info!(
                "test start: would run for {}: {}",
                m.spec.label(),
                m.spec.argv.join(" ")
            );
            return;
        }
        match supervisor::spawn(&m.spec.argv) {
            Ok(mut child) => {
                info!(
                    "create_monitor for {} running as pid {}",
                    m.spec.label(),
                    child.pid
                );
                child.token = self.next_token;
                self.next_token += 1;
                let watched = match (&self.poller, &child.reader) {
                    (Some(p), Some(r)) => p.add(r.as_raw_fd(), child.token),
                    _ => Err(std::io::Error::other("no event poller")),
                };
                match watched {
                    Ok(()) => {
                        self.tokens.insert(child.token, key);
                    }
                    // Its reports cannot be read: collected as if its pipe had closed.
                    Err(e) => {
                        error!("cannot watch the report pipe of {}: {e}", m.spec.label());
                        child.reader = None;
                        self.closed.push(key);
                    }
                }
                m.child = Some(child);
            }
            Err(e) => {
                error!(
                    "cannot start client monitor {} for {}: {}",
                    m.spec.argv[0],
                    m.spec.label(),
                    os_error_text(&e)
                );
                self.nanny_ended(key, None, Duration::ZERO);
            }
        }
    }

    /// A nanny ended (or could not start): shut down (hard_shutdown) or schedule a restart.
    fn nanny_ended(&mut self, key: MonitorKey, exit: Option<Exit>, ran: Duration) {
        let hard = self.config.hard_shutdown;
        let margin = self.opts.settle_margin;
        let Some(m) = self.monitors.get_mut(&key) else {
            return;
        };
        if let Some(c) = m.child.take() {
            self.tokens.remove(&c.token);
        }
        self.status_generation += 1;
        let how = exit.map(|e| format!(" ({e})")).unwrap_or_default();
        if hard {
            error!(
                "nanny for child {} died{how}! shutting down lvs",
                m.spec.label()
            );
            if self.exit.is_none() {
                self.exit = Some(ExitReason::NannyDied);
            }
            return;
        }
        let delay = m.backoff.delay(ran);
        let at = Instant::now() + delay;
        error!(
            "nanny for child {} died{how}! restarting it in {} s (hard_shutdown = 0)",
            m.spec.label(),
            delay.as_secs_f64()
        );
        m.restart_at = Some(at);
        // Unknown until the new nanny reports: the kernel's entry stays as it is meanwhile.
        let settle = settle_time(m.spec.timeout, margin);
        m.health.restart(at, settle);
    }

    fn retire(&mut self, child: Child, label: String) {
        // Its pipe stays open until it is collected, unwatched: what it says now is not read.
        self.tokens.remove(&child.token);
        if let (Some(p), Some(r)) = (&self.poller, &child.reader) {
            p.delete(r.as_raw_fd());
        }
        supervisor::signal(child.pid, libc::SIGTERM);
        self.retiring.push(Retiring {
            pid: child.pid,
            label,
            kill_at: Instant::now() + self.opts.stop_timeout,
            killed: false,
            _child: child,
        });
    }

    fn handle_line(&mut self, key: MonitorKey, line: Result<Report, ReportError>) {
        let Some(m) = self.monitors.get_mut(&key) else {
            return;
        };
        let label = m.spec.label();
        let report = match line {
            Ok(r) => r,
            Err(e) => {
                if let Some(c) = m.child.as_mut() {
                    c.bad_lines += 1;
                    if c.bad_lines <= BAD_LINES_LOGGED {
                        warn!(
                            "nanny for {label} (pid {}): {e}{}",
                            c.pid,
                            if c.bad_lines == BAD_LINES_LOGGED {
                                " (further bad lines are not logged)"
                            } else {
                                ""
                            }
                        );
                    }
                }
                return;
            }
        };
        if let Report::Hello { pid, server, .. } = &report {
            let want = SocketAddr::new(IpAddr::V4(key.rip), key.rport);
            if *server != want {
                warn!("nanny for {label} (pid {pid}) says it watches {server}, not {want}");
            }
            if let Some(c) = m.child.as_mut() {
                c.hello = true;
            }
            debug!("nanny for {label} is pid {pid}, report protocol 1");
            return;
        }
        if let Some(c) = m.child.as_ref() {
            if !c.hello {
                debug!("nanny for {label} reported before its hello line");
            }
        }
        crate::status::note(&key, &report);
        let Some(before) = m.health.report(&report) else {
            return;
        };
        self.status_generation += 1;
        let after = m.health.state;
        let why = match &report {
            Report::Up { why, .. }
            | Report::Weight { why, .. }
            | Report::Quiesce { why }
            | Report::Down { why } => why.clone(),
            Report::Hello { .. } => String::new(),
        };
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        match (before, after) {
            (Health::Up(_), Health::Up(w)) => debug!("{label}: weight {w}{why}"),
            (_, Health::Up(w)) => info!("{label}: up, weight {w}{why}"),
            (_, Health::Quiesced) => info!("{label}: quiesced (weight 0){why}"),
            (_, Health::Down) => info!("{label}: down{why}"),
            (_, Health::Unknown) => {}
        }
        let service = m.spec.service;
        self.dirty.insert(service);
        self.refresh_sorry(&service);
    }

    /// Reads every readable pipe (one that reaches end of file is closed).
    fn read_pipes(&mut self, ready: &[MonitorKey]) {
        for key in ready {
            let Some(child) = self.monitors.get_mut(key).and_then(|m| m.child.as_mut()) else {
                continue;
            };
            let out = supervisor::read_reports(child);
            if out.eof {
                self.tokens.remove(&child.token);
                self.closed.push(*key);
            }
            for line in out.lines {
                self.handle_line(*key, line);
            }
        }
    }

    /// Collects ended nannies: every running one (`all`), or those whose pipe is closed.
    fn reap(&mut self, all: bool) {
        let keys: Vec<(MonitorKey, i32)> = if all {
            self.monitors
                .iter()
                .filter_map(|(k, m)| Some((*k, m.child.as_ref()?.pid)))
                .collect()
        } else {
            // Those whose pipe closed (the nannies still running stay listed until collected).
            let monitors = &self.monitors;
            self.closed.sort_unstable();
            self.closed.dedup();
            self.closed.retain(|k| {
                monitors
                    .get(k)
                    .and_then(|m| m.child.as_ref())
                    .is_some_and(|c| c.reader.is_none())
            });
            self.closed
                .iter()
                .filter_map(|k| Some((*k, monitors.get(k)?.child.as_ref()?.pid)))
                .collect()
        };
        for (key, pid) in keys {
            let exit = match supervisor::try_reap(pid) {
                Ok(Some(e)) => Some(e),
                Ok(None) => continue,
                // Not our child any more (cannot happen unless something else reaped it).
                Err(_) => None,
            };
            // Its last words count: a nanny may say "down" before it exits.
            let (lines, ran) = match self.monitors.get_mut(&key).and_then(|m| m.child.as_mut()) {
                Some(c) => (supervisor::read_reports(c).lines, c.started.elapsed()),
                None => (Vec::new(), Duration::ZERO),
            };
            for line in lines {
                self.handle_line(key, line);
            }
            self.nanny_ended(key, exit, ran);
        }
        self.retiring.retain(|r| match supervisor::try_reap(r.pid) {
            Ok(None) => true,
            Ok(Some(e)) => {
                debug!("nanny for {} (pid {}) {e}", r.label, r.pid);
                false
            }
            Err(_) => false,
        });
    }

    // ---------------------------------------------------------------- timers

    fn tick(&mut self, now: Instant) {
        let mut settled = Vec::new();
        let mut restart = Vec::new();
        for (k, m) in self.monitors.iter_mut() {
            if m.health.tick(now) {
                self.status_generation += 1;
                settled.push((*k, m.spec.service));
                debug!(
                    "{}: no report within {} s: down",
                    m.spec.label(),
                    settle_time(m.spec.timeout, self.opts.settle_margin).as_secs_f64()
                );
            }
            if m.restart_at.is_some_and(|t| now >= t) {
                restart.push(*k);
            }
            if let Some(c) = &m.child {
                let settle = settle_time(m.spec.timeout, self.opts.settle_margin);
                if !c.hello && !m.silence_warned && now >= c.started + settle {
                    m.silence_warned = true;
                    warn!(
                        "nanny for {} (pid {}) has sent no report in {} s: does {} speak the \
                         nanny report protocol ({})?",
                        m.spec.label(),
                        c.pid,
                        settle.as_secs_f64(),
                        m.spec.argv[0],
                        nanny::report::REPORT_FD_ENV
                    );
                }
            }
        }
        for (_, service) in &settled {
            self.dirty.insert(*service);
        }
        let services: HashSet<ServiceId> = settled.iter().map(|(_, s)| *s).collect();
        for s in services {
            self.refresh_sorry(&s);
        }
        for k in restart {
            self.spawn_monitor(k);
        }
        for r in self.retiring.iter_mut() {
            if !r.killed && now >= r.kill_at {
                warn!(
                    "nanny for {} (pid {}) did not stop on SIGTERM: killing it",
                    r.label, r.pid
                );
                supervisor::signal(r.pid, libc::SIGKILL);
                r.killed = true;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = self.next_repair;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        };
        for m in self.monitors.values() {
            consider(m.health.deadline());
            consider(m.restart_at);
            if let Some(c) = &m.child {
                if !c.hello && !m.silence_warned {
                    consider(Some(
                        c.started + settle_time(m.spec.timeout, self.opts.settle_margin),
                    ));
                }
            }
        }
        for r in &self.retiring {
            if !r.killed {
                consider(Some(r.kill_at));
            }
        }
        // Ended nannies not collected yet: look again soon (SIGCHLD normally comes first).
        let unreaped = !self.retiring.is_empty() || !self.closed.is_empty();
        if unreaped {
            consider(Some(Instant::now() + UNREAPED_RECHECK));
        }
        d
    }

    // ---------------------------------------------------------------- sorry server

    /// Re-evaluates the sorry-server switch of a service; marks it dirty when it flips.
    fn refresh_sorry(&mut self, id: &ServiceId) {
        let Some(&i) = self.vs_index.get(id) else {
            return;
        };
        let vs = &self.config.virtual_servers[i];
        let Some(sorry) = vs.sorry_server else {
            self.sorry.remove(id);
            return;
        };
        let states: Vec<Health> = crate::plan::monitored_servers(vs)
            .map(|(_, k)| self.health_of(&k))
            .collect();
        let current = self.sorry_on(id);
        let next = sorry_next(current, &states);
        if next == current {
            return;
        }
        if next {
            info!(
                "Virtual Server {}: No real servers; activate sorry_server {sorry}",
                vs.name
            );
        } else {
            let up = states.iter().filter(|h| h.is_up()).count();
            info!(
                "Virtual Server {}: {up} real servers; deactivate sorry_server {sorry}",
                vs.name
            );
        }
        self.sorry.insert(*id, next);
        self.dirty.insert(*id);
        self.status_generation += 1;
    }

    // ---------------------------------------------------------------- kernel

    fn log_failure(&mut self, text: String) {
        let now = Instant::now();
        match self.failures_logged.get(&text) {
            Some(t) if now.duration_since(*t) < FAILURE_LOG_PERIOD => debug!("{text}"),
            _ => {
                error!("{text}");
                self.failures_logged.insert(text, now);
            }
        }
    }

    /// Sends changes in one batch, then logs them (by cause) and the failures.
    fn apply(&mut self, changes: Vec<Change>, cause: Cause) {
        if changes.is_empty() {
            return;
        }
        let dry = self.table.is_dry_run();
        let results = self.table.apply(&changes);
        for (c, r) in changes.iter().zip(results) {
            let text = describe(c);
            let name = change_service(c).map(|id| self.vs_name(&id));
            let on = name
                .as_ref()
                .map(|n| format!(" (virtual service {n})"))
                .unwrap_or_default();
            if dry {
                info!("test start: would apply{on}: ipvsadm {text}");
            } else if cause == Cause::Repair {
                warn!("repairing drift{on}: {text}");
            } else if matches!(cause, Cause::Event | Cause::Start) {
                debug!("kernel{on}: {text}");
            } else {
                info!("kernel{on}: {text}");
            }
            match r {
                Ok(()) => {
                    if let Change::DeleteService(id) = c {
                        self.retired.remove(id);
                    }
                }
                Err(e) => {
                    // Removing what is already gone is what was wanted.
                    let gone =
                        matches!(c, Change::DeleteService(_) | Change::DeleteDestination(..))
                            && (e.errno == ipvs::error::ESRCH || e.errno == ipvs::error::ENOENT);
                    if gone {
                        if let Change::DeleteService(id) = c {
                            self.retired.remove(id);
                        }
                        continue;
                    }
                    self.log_failure(format!(
                        "ipvs failed for virtual server {}: {text}: {e}",
                        name.unwrap_or_else(|| "-".into())
                    ));
                }
            }
        }
    }

    /// Reconciles the dirty services: read each, compute, send in one batch.
    fn flush_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let mut ids: Vec<ServiceId> = self.dirty.drain().collect();
        ids.sort_by_key(|id| self.vs_index.get(id).copied().unwrap_or(usize::MAX));
        self.reconcile_services(&ids, Cause::Event);
    }

    fn reconcile_services(&mut self, ids: &[ServiceId], cause: Cause) {
        let mut changes = Vec::new();
        for id in ids {
            let desired = self.desired_for(id);
            if desired.is_none() && !self.retired.contains(id) {
                continue;
            }
            let actual = match self.table.read_one(id) {
                Ok(a) => a,
                Err(e) => {
                    self.log_failure(format!(
                        "cannot read virtual service {} from the kernel: {e}",
                        self.vs_name(id)
                    ));
                    continue;
                }
            };
            if desired.is_none() && actual.is_none() {
                self.retired.remove(id);
            }
            changes.extend(reconcile_service(desired.as_ref(), actual.as_ref()));
        }
        self.apply(changes, cause);
    }

    /// Compares every owned service with the kernel and repairs what differs.
    pub fn repair(&mut self) {
        self.repair_logged(false);
    }

    /// [`repair`](Self::repair); `loud`: log the summary line even when nothing was repaired.
    fn repair_logged(&mut self, loud: bool) {
        let _boost = Boost::enter(self.opts.boost);
        let t0 = Instant::now();
        let before = self.table.counters;
        self.dirty.clear();
        let owned = self.owned();
        let actual = match self.table.read_owned(&owned) {
            Ok(a) => a,
            Err(e) => {
                self.log_failure(format!("cannot list the IPVS table: {e}"));
                return;
            }
        };
        let desired = self.desired_all();
        let mut changes = Vec::new();
        for s in &desired.services {
            changes.extend(reconcile_service(Some(s), actual.get(&s.id())));
        }
        let retired: Vec<ServiceId> = self.retired.iter().copied().collect();
        for id in retired {
            match actual.get(&id) {
                Some(a) if !desired.contains(&id) => {
                    changes.extend(reconcile_service(None, Some(a)))
                }
                _ => {
                    self.retired.remove(&id);
                }
            }
        }
        let n = changes.len();
        self.apply(changes, Cause::Repair);
        let after = self.table.counters;
        let line = format!(
            "drift check: {} owned services compared with the kernel in {} ({} reads), {n} repairs",
            owned.len(),
            ms(t0.elapsed()),
            after.reads - before.reads
        );
        if n > 0 || loud {
            info!("{line}");
        } else {
            debug!("{line}");
        }
    }

    // ---------------------------------------------------------------- reload

    /// Re-reads the config and applies the difference. A config with errors is refused and the
    /// running state kept.
    ///
    /// The work is proportional to what changed: the config diff says which blocks changed;
    /// nanny arguments are rebuilt and compared only for those (and for all if a global keyword
    /// nanny's arguments contain changed); the desired state is computed before and after only
    /// for the services of changed blocks and of nannies started, restarted or stopped; only the
    /// services whose desired state differs are read from the kernel and reconciled.
    pub fn reload(&mut self) {
        let _boost = Boost::enter(self.opts.boost);
        info!("rereading configuration file");
        let t0 = Instant::now();
        let before = self.table.counters;
        let path = self.opts.config_path.clone();
        let previous = self.layout.as_ref().map(|l| (&self.config, l));
        let mut phases = Phases::new(t0);
        let buffer = std::mem::take(&mut self.spare_buffer);
        let (new, layout) = match read_config_into(&path, self.resolver.as_ref(), previous, buffer)
        {
            Ok(f) => {
                phases.push("read", f.read_time);
                phases.mark("parse and check");
                for w in &f.warnings {
                    warn!("{}", diagnostic_line(&path, w));
                }
                if !self.opts.test_start {
                    netconf::prereq::log_missing(&f.config);
                }
                (f.config, f.layout)
            }
            Err(lines) => {
                for l in &lines {
                    error!("{l}");
                }
                error!(
                    "configuration not reloaded: {} has errors; the running configuration is kept",
                    path.display()
                );
                return;
            }
        };
        let load_time = t0.elapsed();
        phases.mark("warnings");
        let copied = layout.layout.copied_blocks();
        let d = lvs_config::diff(&self.config, &new);
        phases.mark("diff");
        if d.is_empty() {
            // The running config (and its layout) stay: the new file may order the same blocks
            // differently, and the layout goes with the config it was parsed with.
            info!("configuration unchanged");
            self.spare_buffer = layout.layout.into_bytes();
            return;
        }
        for line in describe_diff(&self.config, &new, &d) {
            info!("reload: {line}");
        }

        // Nannies: rebuild and compare the arguments of changed blocks only.
        let argv_globals = d.global_changed(ARGV_GLOBALS);
        let same_blocks: HashSet<usize> = if argv_globals {
            HashSet::default()
        } else {
            d.virtual_servers.unchanged.iter().map(|p| p.1).collect()
        };
        let planned = planned_monitors(&new, self.opts.argv_options(), &|i| {
            same_blocks.contains(&i)
        });

        // Services whose nannies or desired state may change.
        let mut candidates: Vec<ServiceId> = Vec::new();
        let mut seen = HashSet::default();
        let mut candidate = |id: ServiceId, out: &mut Vec<ServiceId>| {
            if seen.insert(id) {
                out.push(id);
            }
        };
        let key_of = |c: &Config, i: usize| c.virtual_servers[i].key().map(service_id);
        if argv_globals || d.global_changed(&["network"]) {
            for id in self.vs_index.keys() {
                candidate(*id, &mut candidates);
            }
            for i in 0..new.virtual_servers.len() {
                if let Some(id) = key_of(&new, i) {
                    candidate(id, &mut candidates);
                }
            }
        }
        let vd = &d.virtual_servers;
        for &i in &vd.removed {
            if let Some(id) = key_of(&self.config, i) {
                candidate(id, &mut candidates);
            }
        }
        for c in &vd.changed {
            for id in [key_of(&self.config, c.old), key_of(&new, c.new)]
                .into_iter()
                .flatten()
            {
                candidate(id, &mut candidates);
            }
        }
        for &i in &vd.added {
            if let Some(id) = key_of(&new, i) {
                candidate(id, &mut candidates);
            }
        }
        for s in &planned {
            candidate(s.service, &mut candidates);
        }
        let plan = {
            let touched: HashSet<ServiceId> = candidates.iter().copied().collect();
            // Only the nannies of touched services can stop.
            let running: Vec<(MonitorKey, ServiceId)> = candidates
                .iter()
                .filter_map(crate::plan::service_key)
                .flat_map(|key| self.monitors.range(MonitorKey::all_of(key)))
                .map(|(k, m)| (*k, m.spec.service))
                .collect();
            let monitors = &self.monitors;
            plan_monitors(
                &running,
                &|k| monitors.get(k).map(|m| m.spec.argv.as_slice()),
                &planned,
                &touched,
            )
        };
        phases.mark("nanny plan");
        let old_desired: HashMap<ServiceId, crate::plan::DesiredService> = candidates
            .iter()
            .filter_map(|id| self.desired_for(id).map(|s| (*id, s)))
            .collect();

        let timeouts_changed = timeouts_of(&self.config) != timeouts_of(&new);
        // The service index stays as it is when every block kept its place, its key and whether
        // it is active.
        let index_kept = vd.added.is_empty()
            && vd.removed.is_empty()
            && vd.unchanged.iter().all(|&(o, n)| o == n)
            && vd.changed.iter().all(|c| {
                let (a, b) = (
                    &self.config.virtual_servers[c.old],
                    &new.virtual_servers[c.new],
                );
                c.old == c.new && a.active == b.active && a.key() == b.key()
            });
        self.config = new;
        if let Some(old) = self.layout.replace(layout) {
            self.spare_buffer = old.layout.into_bytes();
        }
        if index_kept {
            #[cfg(debug_assertions)]
            {
                let kept = std::mem::take(&mut self.vs_index);
                self.index_config();
                debug_assert_eq!(kept, self.vs_index, "service index kept by a reload");
            }
        } else {
            self.index_config();
        }
        self.status_generation += 1;

        // Apply the nanny plan.
        for key in &plan.stop {
            if let Some(m) = self.monitors.remove(key) {
                info!("stopping nanny for {}", m.spec.label());
                if let Some(c) = m.child {
                    self.retire(c, m.spec.label());
                }
            }
        }
        let restart: HashSet<MonitorKey> = plan.restart.iter().copied().collect();
        let start: HashSet<MonitorKey> = plan.start.iter().copied().collect();
        let mut to_spawn = Vec::new();
        for spec in planned {
            let key = spec.key;
            if restart.contains(&key) {
                let Some(m) = self.monitors.get_mut(&key) else {
                    continue;
                };
                info!(
                    "restarting nanny for {}: its parameters changed",
                    spec.label()
                );
                m.spec = spec;
                m.backoff = self.opts.backoff;
                m.restart_at = None;
                let old = m.child.take();
                let label = m.spec.label();
                if let Some(c) = old {
                    self.retire(c, label);
                }
                to_spawn.push(key);
            } else if start.contains(&key) {
                self.monitors.insert(
                    key,
                    Monitor {
                        spec,
                        health: ServerHealth::waiting(),
                        child: None,
                        restart_at: None,
                        backoff: self.opts.backoff,
                        silence_warned: false,
                    },
                );
                to_spawn.push(key);
            } else if let Some(m) = self.monitors.get_mut(&key) {
                // Kept: its names may have changed.
                m.spec = spec;
            }
        }
        // Started after the kernel work (by the loop): spawning is the slow part.
        self.spawn_queue.extend(to_spawn);
        phases.mark("config switched");

        self.sorry.retain(|id, _| self.vs_index.contains_key(id));
        for id in &candidates {
            self.refresh_sorry(id);
        }
        let new_desired: HashMap<ServiceId, crate::plan::DesiredService> = candidates
            .iter()
            .filter_map(|id| self.desired_for(id).map(|s| (*id, s)))
            .collect();
        for id in &candidates {
            if new_desired.contains_key(id) {
                self.retired.remove(id);
            } else if old_desired.contains_key(id) {
                self.retired.insert(*id);
            }
        }
        if timeouts_changed {
            let t = timeouts_of(&self.config);
            // 0 means "leave as is" to the kernel: a value set back to 0 keeps the last one.
            if t != Timeouts::default() {
                self.apply(vec![Change::SetTimeouts(t)], Cause::Reload);
            }
        }
        let affected = changed_services(&candidates, &|id| old_desired.get(id), &|id| {
            new_desired.get(id)
        });
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for id in &affected {
            match (old_desired.get(id), new_desired.get(id)) {
                (None, Some(s)) => {
                    added += 1;
                    info!("starting virtual service {}", s.name);
                }
                (Some(s), None) => {
                    removed += 1;
                    info!("shutting down virtual service {}", s.name);
                }
                _ => changed += 1,
            }
        }
        phases.mark("desired state");
        self.reconcile_services(&affected, Cause::Reload);
        self.dirty.retain(|id| !affected.contains(id));
        phases.mark("kernel");
        // Where the time went, when there was much of it.
        if t0.elapsed() >= SLOW_RELOAD {
            info!("reload took {}: {}", ms(t0.elapsed()), phases.report());
        } else {
            debug!("reload phases: {}", phases.report());
        }
        let after = self.table.counters;
        info!(
            "configuration reloaded in {}{} (file read and checked in {}, {copied} of {} blocks \
             unchanged and copied): virtual services {added} added, {removed} removed, {changed} \
             changed, {} untouched; nannies {} started, {} restarted, {} stopped, {} kept; {} \
             kernel requests ({} reads, {} changes)",
            ms(t0.elapsed()),
            self.hup_at
                .map(|at| format!(", {} after SIGHUP", ms(at.elapsed())))
                .unwrap_or_default(),
            ms(load_time),
            self.layout.as_ref().map_or(0, |l| l.layout.blocks()),
            self.vs_index.len().saturating_sub(added + changed),
            plan.start.len(),
            plan.restart.len(),
            plan.stop.len(),
            self.monitors.len() - plan.start.len() - plan.restart.len(),
            (after.reads - before.reads) + (after.changes - before.changes),
            after.reads - before.reads,
            after.changes - before.changes,
        );
    }

    // ---------------------------------------------------------------- status

    /// Logs the state of every virtual service and real server (SIGUSR1).
    pub fn log_status(&self) {
        let desired = self.desired_all();
        info!(
            "status: {} virtual services, {} nannies running",
            desired.len(),
            self.monitors.values().filter(|m| m.child.is_some()).count()
        );
        for s in &desired.services {
            info!(
                "status: virtual service {} ({}): sorry server {}",
                s.name,
                service_arg(&s.id()),
                if self.sorry_on(&s.id()) { "on" } else { "off" }
            );
        }
        for (k, m) in &self.monitors {
            let state = match m.health.state {
                Health::Unknown => "unknown".to_string(),
                Health::Up(w) => format!("up, weight {w}"),
                Health::Quiesced => "quiesced".to_string(),
                Health::Down => "down".to_string(),
            };
            let nanny = match (&m.child, m.restart_at) {
                (Some(c), _) => format!("nanny pid {}", c.pid),
                (None, Some(_)) => "nanny waiting to restart".to_string(),
                (None, None) => "no nanny".to_string(),
            };
            info!("status: {} ({k}): {state}; {nanny}", m.spec.label());
        }
    }

    // ---------------------------------------------------------------- loop

    /// One pass of the main loop: waits at most `max_wait` (less if a deadline is nearer) for a
    /// signal or a report, then handles whatever is pending.
    pub fn step(&mut self, signals: &Signals, max_wait: Duration) {
        let now = Instant::now();
        let mut wait = max_wait.min(MAX_SLEEP);
        if let Some(d) = self.next_deadline() {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if !self.spawn_queue.is_empty() {
            wait = Duration::ZERO;
        }
        let timeout_ms = i32::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        if self.poller.is_none() {
            match Poller::new() {
                Ok(p) => self.poller = Some(p),
                Err(e) => {
                    error!("cannot create the event poller: {e}");
                    self.exit = Some(ExitReason::Failed);
                    return;
                }
            }
        }
        let Some(poller) = self.poller.as_mut() else {
            return;
        };
        if self.signals_fd != Some(signals.fd()) {
            if let Some(old) = self.signals_fd.take() {
                poller.delete(old);
            }
            match poller.add(signals.fd(), crate::poller::SIGNALS) {
                Ok(()) => self.signals_fd = Some(signals.fd()),
                Err(e) => {
                    error!("cannot watch the signal pipe: {e}");
                    self.exit = Some(ExitReason::Failed);
                    return;
                }
            }
        }
        let mut tokens = std::mem::take(&mut self.ready);
        if let Err(e) = poller.wait(&mut tokens, timeout_ms) {
            error!("epoll_wait: {e}");
        }
        let pending = signals.take();
        let taken = Instant::now();
        if let Some(sig) = pending.term {
            info!("shutting down due to signal {sig}");
            self.exit = Some(ExitReason::Signal(sig));
            self.ready = tokens;
            return;
        }
        // The monitors whose current nanny's pipe is ready (a stale token is dropped).
        let mut ready: Vec<MonitorKey> = Vec::with_capacity(tokens.len());
        for t in tokens.drain(..) {
            if t == crate::poller::SIGNALS {
                continue;
            }
            let current = self.tokens.get(&t).filter(|k| {
                self.monitors
                    .get(k)
                    .and_then(|m| m.child.as_ref())
                    .is_some_and(|c| c.token == t && c.reader.is_some())
            });
            match current {
                Some(k) => ready.push(*k),
                None => {
                    self.tokens.remove(&t);
                }
            }
        }
        self.ready = tokens;
        self.read_pipes(&ready);
        let now = Instant::now();
        let sweep = now >= self.reap_sweep_at;
        // Every pass collects the nannies whose pipe is closed and those being stopped (a pipe
        // can close a moment before its process can be reaped); SIGCHLD collects them all.
        self.reap(pending.chld || sweep);
        if sweep {
            self.reap_sweep_at = now + REAP_SWEEP;
        }
        if self.exit.is_some() {
            return;
        }
        self.tick(Instant::now());
        if self.exit.is_some() {
            return;
        }
        if pending.hup {
            self.hup_at = pending.hup_age.and_then(|age| taken.checked_sub(age));
            self.reload();
            self.hup_at = None;
        }
        if pending.usr1 {
            self.log_status();
        }
        self.spawn_some();
        if self.exit.is_some() {
            return;
        }
        let repair_due = self.next_repair.is_some_and(|t| Instant::now() >= t);
        if pending.usr2 || repair_due {
            if pending.usr2 {
                info!("repairing drift now (SIGUSR2)");
            }
            self.repair_logged(pending.usr2);
            self.next_repair = self.opts.repair_interval.map(|d| Instant::now() + d);
        } else {
            self.flush_dirty();
        }
    }

    /// Runs the main loop until a shutdown signal or (hard_shutdown) a nanny death.
    pub fn run(&mut self, signals: &Signals) -> ExitReason {
        let mut status = if self.opts.publish_status {
            crate::status::Publisher::from_env()
        } else {
            crate::status::Publisher::off()
        };
        while self.exit.is_none() {
            status.tick(self);
            self.step(signals, status.wait(MAX_SLEEP));
        }
        status.finish(self);
        self.exit.clone().unwrap_or(ExitReason::NannyDied)
    }

    // ---------------------------------------------------------------- shutdown

    /// Stops every nanny (SIGTERM, then SIGKILL after `stop_timeout`), then removes every owned
    /// service from the kernel. Foreign services are not touched.
    pub fn shutdown(&mut self) {
        self.spawn_queue.clear();
        // The pipes stay open until each nanny is reaped (see `Retiring`).
        let mut pids: Vec<(i32, String, Option<Child>)> = Vec::new();
        for m in self.monitors.values_mut() {
            m.restart_at = None;
            if let Some(c) = m.child.take() {
                supervisor::signal(c.pid, libc::SIGTERM);
                pids.push((c.pid, m.spec.label(), Some(c)));
            }
        }
        for r in self.retiring.drain(..) {
            supervisor::signal(r.pid, libc::SIGTERM);
            pids.push((r.pid, r.label, None));
        }
        let deadline = Instant::now() + self.opts.stop_timeout;
        let mut killed = false;
        while !pids.is_empty() {
            pids.retain(|(pid, _, _)| matches!(supervisor::try_reap(*pid), Ok(None)));
            if pids.is_empty() {
                break;
            }
            if Instant::now() >= deadline && !killed {
                for (pid, label, _) in &pids {
                    warn!("nanny for {label} (pid {pid}) did not stop on SIGTERM: killing it");
                    supervisor::signal(*pid, libc::SIGKILL);
                }
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut ids: Vec<ServiceId> = self.owned().into_iter().collect();
        ids.sort_by_key(|id| self.vs_index.get(id).copied().unwrap_or(usize::MAX));
        let mut changes = Vec::new();
        for id in ids {
            info!("shutting down virtual service {}", self.vs_name(&id));
            changes.push(Change::DeleteService(id));
        }
        self.apply(changes, Cause::Shutdown);
        self.retired.clear();
    }
}

#[cfg(test)]
mod tests;
