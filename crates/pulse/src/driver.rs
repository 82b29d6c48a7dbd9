//! The I/O around the [`Machine`]: one thread, one `ppoll` with a nanosecond timeout computed
//! from the machine's timers, the heartbeat sockets, a signalfd, a netlink link monitor, the
//! floating addresses (rtnetlink), gratuitous ARPs (AF_PACKET), lvsd and the commands.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lvs_config::{Diagnostic, LoadError, SystemResolver};
use netconf::rtnl::link_holding;
use netconf::{AddOutcome, ArpSocket, FloatingAddress, LinkMonitor, Rtnl, PULSE_ADDRESS_PROTOCOL};

use crate::heartbeat::{self, Key, Magic, ReplayWindow, Sequence};
use crate::machine::{Action, ChildEnd, Event, Machine, PeerState};
use crate::plan::{self, Plan};
use crate::signals::SignalFd;

/// Gratuitous ARPs per address on takeover, and their spacing (Piranha: 5, one second apart).
pub const ARP_COUNT: u32 = 5;
pub const ARP_INTERVAL: Duration = Duration::from_secs(1);
/// How long lvsd gets to stop after SIGTERM before SIGKILL (lvsd itself gives its nannies 5 s).
pub const LVSD_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one line per this period for each kind of bad packet.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the driver needs from the command line.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    pub config_path: PathBuf,
    pub lvsd: PathBuf,
    pub nodaemon: bool,
    pub verbose: bool,
    pub test_start: bool,
    pub force_active: bool,
}

struct Auth {
    key: Key,
    seq: Sequence,
    window: ReplayWindow,
}

struct ArpJob {
    address: Ipv4Addr,
    ifindex: u32,
    frame: [u8; netconf::arp::FRAME_LEN],
    left: u32,
    next: Instant,
}

enum LvsdProc {
    Idle,
    Running(i32),
    Stopping {
        pid: i32,
        kill_at: Option<Instant>,
        restart: bool,
    },
}

/// The config's diagnostics as `FILE: line N: MESSAGE` (as lvsd prints them).
pub fn diagnostic_line(file: &std::path::Path, d: &Diagnostic) -> String {
    let sev = if d.is_error() { "error" } else { "warning" };
    match d.location.line {
        Some(l) => format!("{}: line {l}: {sev}: {}", file.display(), d.message),
        None => format!("{}: {sev}: {}", file.display(), d.message),
    }
}

/// Reads and checks lvs.cf: Err holds the lines to print (Piranha's texts for syntax errors).
pub fn load_config(
    path: &std::path::Path,
) -> Result<(lvs_config::Config, Vec<Diagnostic>), Vec<String>> {
    match lvs_config::load(path, &SystemResolver::default()) {
        Err(LoadError::Open(_)) => Err(vec![format!("failed to open {}", path.display())]),
        Err(LoadError::Syntax(e)) => Err(vec![format!(
            "error parsing {} at line {}: {}",
            path.display(),
            e.line,
            e.code.text()
        )]),
        Ok(l) => {
            let (errors, warnings): (Vec<_>, Vec<_>) =
                l.diagnostics.into_iter().partition(|d| d.is_error());
            // Piranha's own refusal comes first and in its words.
            if !l.config.virtual_servers.iter().any(|v| v.active)
                && l.config.service == lvs_config::ServiceType::Lvs
            {
                return Err(vec![format!(
                    "no active lvs services defined in {}",
                    path.display()
                )]);
            }
            if errors.is_empty() {
                Ok((l.config, warnings))
            } else {
                Err(errors.iter().map(|d| diagnostic_line(path, d)).collect())
            }
        }
    }
}

/// Reads the heartbeat key file.
pub fn read_key(path: &str) -> Result<Key, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("heartbeat_key_file {path}: {e}"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!("heartbeat_key_file {path} can be read by other users: chmod 600 it");
    }
    let bytes = std::fs::read(path).map_err(|e| format!("heartbeat_key_file {path}: {e}"))?;
    Key::from_file_bytes(&bytes).map_err(|e| format!("heartbeat_key_file {path}: {e}"))
}

/// Binds the heartbeat sockets of a plan.
pub fn bind_sockets(plan: &Plan) -> io::Result<Vec<UdpSocket>> {
    let mut out = Vec::new();
    for a in &plan.paths.bind {
        let s = UdpSocket::bind(SocketAddrV4::new(*a, plan.paths.port))?;
        s.set_nonblocking(true)?;
        // DSCP CS6 (network control), so a busy link delays heartbeats last.
        let tos: libc::c_int = 0xc0;
        // SAFETY: setsockopt with a valid int option.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_TOS,
                (&tos as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        out.push(s);
    }
    Ok(out)
}

/// Every IPv4 address of the host.
pub fn local_addresses(rtnl: &mut Rtnl) -> io::Result<Vec<Ipv4Addr>> {
    Ok(rtnl.addresses()?.into_iter().map(|a| a.address).collect())
}

/// Removes floating addresses of the config that an earlier pulse left behind (it was killed):
/// an address is pulse's when it carries pulse's IFA_PROTO stamp, or the alias label lvs.cf
/// gives it. Anything else is left alone, with a warning.
pub fn remove_leftovers(rtnl: &mut Rtnl, floating: &[FloatingAddress]) {
    let entries = match rtnl.addresses() {
        Ok(e) => e,
        Err(e) => {
            log::error!("cannot list the addresses to remove leftovers: {e}");
            return;
        }
    };
    for fa in floating {
        for e in entries.iter().filter(|e| e.address == fa.address) {
            let ours = e.protocol == Some(PULSE_ADDRESS_PROTOCOL)
                || (fa.is_alias() && e.label == fa.label);
            if ours {
                match rtnl.del_address(e.index, e.address, e.prefix_len) {
                    Ok(_) => log::info!(
                        "removed leftover address {}/{} from {} (an earlier pulse did not release it)",
                        e.address,
                        e.prefix_len,
                        e.label
                    ),
                    Err(err) => log::error!(
                        "cannot remove leftover address {}/{} from {}: {err}",
                        e.address,
                        e.prefix_len,
                        e.label
                    ),
                }
            } else {
                log::warn!(
                    "{} is already configured on {} (label {}), not by pulse: left alone; this \
                     router answers for it whether active or not",
                    e.address,
                    fa.interface,
                    e.label
                );
            }
        }
    }
}

fn child_end(status: libc::c_int) -> ChildEnd {
    if libc::WIFSIGNALED(status) {
        ChildEnd::Signaled(libc::WTERMSIG(status))
    } else {
        ChildEnd::Exited(libc::WEXITSTATUS(status))
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Work that follows an activation or release once the batch's heartbeat is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Activate,
    Deactivate,
}

pub struct Driver {
    opts: DriverOptions,
    deferred: Vec<After>,
    depth: u32,
    plan: Plan,
    machine: Machine,
    sockets: Vec<UdpSocket>,
    auth: Option<Auth>,
    rtnl: Rtnl,
    arp: ArpSocket,
    arp_jobs: Vec<ArpJob>,
    owned: Vec<FloatingAddress>,
    lvsd: LvsdProc,
    children: HashMap<i32, &'static str>,
    signals: SignalFd,
    links: Option<LinkMonitor>,
    limits: HashMap<&'static str, Instant>,
    exit: Option<i32>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: DriverOptions,
        plan: Plan,
        machine: Machine,
        sockets: Vec<UdpSocket>,
        key: Option<Key>,
        rtnl: Rtnl,
        arp: ArpSocket,
        signals: SignalFd,
    ) -> Driver {
        let mut d = Driver {
            opts,
            deferred: Vec::new(),
            depth: 0,
            auth: key.map(|key| Auth {
                key,
                seq: Sequence::from_clock(),
                window: ReplayWindow::default(),
            }),
            plan,
            machine,
            sockets,
            rtnl,
            arp,
            arp_jobs: Vec::new(),
            owned: Vec::new(),
            lvsd: LvsdProc::Idle,
            children: HashMap::new(),
            signals,
            links: None,
            limits: HashMap::new(),
            exit: None,
        };
        d.set_link_monitor();
        d
    }

    fn set_link_monitor(&mut self) {
        if self.plan.monitor_links && self.links.is_none() {
            match LinkMonitor::open() {
                Ok(m) => self.links = Some(m),
                Err(e) => log::error!(
                    "monitor_links: cannot watch link changes ({e}); checking every second"
                ),
            }
        } else if !self.plan.monitor_links {
            self.links = None;
        }
    }

    /// Runs until the machine says exit; returns the exit status.
    pub fn run(&mut self) -> i32 {
        // A link already down at start blocks even a forced activation.
        if self.plan.monitor_links {
            self.check_links(Instant::now());
        }
        let now = Instant::now();
        let a = self.machine.handle(
            now,
            Event::Start {
                force_active: self.opts.force_active,
            },
        );
        self.execute(now, a);
        let mut last_link_check = Instant::now();
        let mut status = crate::status::Publisher::from_env();
        while self.exit.is_none() {
            let now = Instant::now();
            let a = self.machine.poll(now);
            self.execute(now, a);
            if self.exit.is_some() {
                break;
            }
            self.arp_tick(now);
            self.lvsd_tick(now);
            if self.plan.monitor_links
                && self.links.is_none()
                && now.duration_since(last_link_check) >= Duration::from_secs(1)
            {
                last_link_check = now;
                self.check_links(now);
            }
            status.update(self.status_snapshot());
            self.wait();
        }
        self.finish_lvsd();
        if self.plan.sync_daemon.is_some() {
            self.stop_sync_daemons();
        }
        status.finish();
        self.exit.unwrap_or(0)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t = self.machine.next_wakeup();
        let mut min = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for j in &self.arp_jobs {
            min(j.next);
        }
        if let LvsdProc::Stopping {
            kill_at: Some(k), ..
        } = self.lvsd
        {
            min(k);
        }
        if self.plan.monitor_links && self.links.is_none() {
            min(Instant::now() + Duration::from_secs(1));
        }
        t
    }

    /// One ppoll until the next deadline or an event, then handles what is ready.
    fn wait(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.sockets.len() + 2);
        fds.push(libc::pollfd {
            fd: self.signals.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if let Some(m) = &self.links {
            fds.push(libc::pollfd {
                fd: m.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let first_socket = fds.len();
        for s in &self.sockets {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ts = self.next_deadline().map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: a valid array of pollfds and an optional timespec; no signal mask change.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                tsp,
                std::ptr::null(),
            )
        };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                log::error!("ppoll() failed: {}", io::Error::last_os_error());
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        if fds[0].revents != 0 {
            self.handle_signals();
            if self.exit.is_some() {
                return;
            }
        }
        if self.links.is_some() && fds[1].revents != 0 {
            let changed = self.links.as_mut().is_some_and(|m| m.drain());
            if changed {
                self.check_links(Instant::now());
            }
        }
        for (i, p) in fds[first_socket..].iter().enumerate() {
            if p.revents != 0 {
                self.receive(i);
                if self.exit.is_some() {
                    return;
                }
            }
        }
    }

    fn limited(&mut self, what: &'static str) -> bool {
        let now = Instant::now();
        match self.limits.get(what) {
            Some(t) if now.duration_since(*t) < LOG_EVERY => false,
            _ => {
                self.limits.insert(what, now);
                true
            }
        }
    }

    fn receive(&mut self, i: usize) {
        let mut buf = [0u8; 128];
        loop {
            let r = match self.sockets.get(i) {
                Some(s) => s.recv_from(&mut buf),
                None => return,
            };
            let (n, from) = match r {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP port unreachable from an earlier send (the partner's pulse is down).
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
                Err(e) => {
                    if self.limited("recv") {
                        log::error!("recvfrom() failed: {e}");
                    }
                    return;
                }
            };
            let SocketAddr::V4(from) = from else { continue };
            if !self.plan.paths.accept.contains(from.ip()) {
                if self.limited("unexpected") {
                    log::debug!("DEBUG -- Unexpected heartbeat from {}", from.ip());
                }
                continue;
            }
            let data = &buf[..n.min(buf.len())];
            let magic = match &mut self.auth {
                Some(auth) => match heartbeat::open(&auth.key, data, self.plan.partner_role()) {
                    Ok((m, seq)) => {
                        if auth.window.accept(seq) {
                            Ok(m)
                        } else {
                            Err(heartbeat::DecodeError::Auth(heartbeat::AuthError::Replay(
                                seq,
                            )))
                        }
                    }
                    Err(e) => Err(heartbeat::DecodeError::Auth(e)),
                },
                None => heartbeat::decode(data).map(|(m, _)| m),
            };
            let now = Instant::now();
            let event = match magic {
                Ok(Magic::Running) => Event::Heartbeat(PeerState::Running),
                Ok(Magic::Stopped) => Event::Heartbeat(PeerState::Stopped),
                Ok(Magic::Hold | Magic::Held | Magic::FosStopMe) => Event::Alive,
                Ok(Magic::FosRunning | Magic::FosStopped)
                | Err(heartbeat::DecodeError::Unknown(_)) => {
                    if self.limited("incompatible") {
                        log::info!(
                            "Incompatible heartbeat received -- other system not using identical services"
                        );
                    }
                    continue;
                }
                Err(heartbeat::DecodeError::Length(_)) => {
                    if self.limited("length") {
                        log::info!("bad heartbeat packet");
                    }
                    continue;
                }
                Err(heartbeat::DecodeError::Auth(e)) => {
                    if self.limited("auth") {
                        log::warn!("heartbeat from {} refused: {e}", from.ip());
                    }
                    continue;
                }
            };
            if self.opts.verbose {
                log::debug!("DEBUG -- Received Heartbeat from partner");
            }
            let a = self.machine.handle(now, event);
            self.execute(now, a);
            if self.exit.is_some() {
                return;
            }
        }
    }

    fn send(&mut self, state: PeerState) {
        let magic = match state {
            PeerState::Running => Magic::Running,
            PeerState::Stopped => Magic::Stopped,
        };
        let role = self.plan.role();
        for k in 0..self.plan.paths.send.len() {
            let (idx, dest) = self.plan.paths.send[k];
            let payload: Vec<u8> = match &mut self.auth {
                Some(a) => heartbeat::seal(&a.key, magic, role, a.seq.next_number()).to_vec(),
                None => heartbeat::encode(magic).to_vec(),
            };
            if let Some(s) = self.sockets.get(idx) {
                if let Err(e) = s.send_to(&payload, dest) {
                    if self.opts.verbose {
                        log::debug!(
                            "Warning -- failed to send heartbeat ({} if): {e}",
                            if k == 0 { "public" } else { "private" }
                        );
                    }
                }
            }
        }
    }

    /// Carries out the machine's actions. The addresses (and the first gratuitous ARPs) come
    /// first, then the batch's heartbeat, and only then the slower rest of an activation or
    /// release (commands, lvsd, the sync daemon), so the partner hears at once.
    fn execute(&mut self, decided: Instant, actions: Vec<Action>) {
        self.depth += 1;
        for a in actions {
            match a {
                Action::Log(level, msg) => log::log!(level, "{msg}"),
                Action::Send(s) => self.send(s),
                Action::Standby => {
                    let cmd = self.plan.inactive_cmd.clone();
                    self.command("inactive_cmd", cmd);
                    self.sync_daemon(false);
                }
                Action::Activate => {
                    let list = self.plan.floating.clone();
                    let up = self.bring_up(&list);
                    log::info!(
                        "{up} of {} floating addresses up and gratuitous ARPs sent {} after the decision",
                        list.len(),
                        fmt_ms(decided.elapsed())
                    );
                    self.deferred.push(After::Activate);
                }
                Action::Rearp => {
                    let cmd = self.plan.active_cmd.clone();
                    self.command("active_cmd", cmd);
                    let list = self.plan.floating.clone();
                    self.bring_up(&list);
                }
                Action::Deactivate => {
                    self.release_addresses();
                    self.deferred.push(After::Deactivate);
                }
                Action::StartLvsd => self.spawn_lvsd(decided),
                Action::Exit(code) => self.exit = Some(code),
            }
        }
        self.depth -= 1;
        if self.depth == 0 {
            while !self.deferred.is_empty() {
                let after = self.deferred.remove(0);
                self.depth += 1;
                match after {
                    After::Activate => {
                        let cmd = self.plan.active_cmd.clone();
                        self.command("active_cmd", cmd);
                        if !self.opts.test_start && self.machine.is_active() {
                            self.spawn_lvsd(decided);
                        }
                        self.sync_daemon(true);
                    }
                    After::Deactivate => {
                        let cmd = self.plan.inactive_cmd.clone();
                        self.command("inactive_cmd", cmd);
                        // At exit the sync daemons stop with pulse (see run).
                        if self.exit.is_none() {
                            self.sync_daemon(false);
                        }
                        self.stop_lvsd();
                    }
                }
                self.depth -= 1;
            }
        }
    }

    /// Adds the addresses (those already there are kept) and sends the first gratuitous ARP of
    /// each at once; the others follow one second apart. Returns how many are up.
    fn bring_up(&mut self, list: &[FloatingAddress]) -> usize {
        let links = match self.rtnl.links() {
            Ok(l) => l,
            Err(e) => {
                log::error!("cannot list the interfaces: {e}");
                return 0;
            }
        };
        let now = Instant::now();
        let mut up = 0;
        for fa in list {
            let Some(link) = links.iter().find(|l| l.name == fa.interface) else {
                log::error!(
                    "cannot bring up {fa}: there is no interface {}",
                    fa.interface
                );
                continue;
            };
            match self
                .rtnl
                .add_address(link.index, fa, PULSE_ADDRESS_PROTOCOL)
            {
                Ok(AddOutcome::Added) => {
                    if !self.owned.contains(fa) {
                        self.owned.push(fa.clone());
                    }
                    if self.opts.verbose {
                        log::debug!("DEBUG -- brought up {fa}");
                    }
                }
                Ok(AddOutcome::AlreadyPresent) => {
                    if !self.owned.contains(fa) {
                        log::warn!(
                            "{} is already on {}: used as it is, and left there at release",
                            fa.address,
                            fa.interface
                        );
                    }
                }
                Err(e) => {
                    log::error!("cannot bring up {fa}: {e}");
                    continue;
                }
            }
            up += 1;
            let Some(mac) = link.mac.filter(|m| m.0 != [0; 6]) else {
                log::debug!(
                    "{} has no hardware address: no gratuitous ARP",
                    fa.interface
                );
                continue;
            };
            let frame = netconf::arp::gratuitous_frame(fa.address, mac);
            if let Err(e) = self.arp.send(link.index, &frame) {
                log::error!(
                    "cannot send a gratuitous ARP for {} on {}: {e}",
                    fa.address,
                    fa.interface
                );
            }
            if self.opts.verbose {
                log::debug!(
                    "DEBUG -- gratuitous ARP: send_arp -i {} {} {} {} ffffffffffff",
                    fa.interface,
                    fa.address,
                    mac.to_piranha_hex(),
                    fa.broadcast.unwrap_or(Ipv4Addr::BROADCAST)
                );
            }
            self.arp_jobs.retain(|j| j.address != fa.address);
            if ARP_COUNT > 1 {
                self.arp_jobs.push(ArpJob {
                    address: fa.address,
                    ifindex: link.index,
                    frame,
                    left: ARP_COUNT - 1,
                    next: now + ARP_INTERVAL,
                });
            }
        }
        up
    }

    fn arp_tick(&mut self, now: Instant) {
        if self.arp_jobs.is_empty() {
            return;
        }
        let mut failed = Vec::new();
        for j in self.arp_jobs.iter_mut().filter(|j| j.next <= now) {
            if let Err(e) = self.arp.send(j.ifindex, &j.frame) {
                failed.push((j.address, e));
            }
            j.left -= 1;
            j.next += ARP_INTERVAL;
        }
        for (a, e) in failed {
            if self.limited("arp") {
                log::error!("cannot send a gratuitous ARP for {a}: {e}");
            }
        }
        let before = self.arp_jobs.len();
        self.arp_jobs.retain(|j| j.left > 0);
        if before > 0 && self.arp_jobs.is_empty() {
            log::info!("gratuitous lvs arps finished");
        }
    }

    /// Removes exactly the addresses this pulse added; cancels pending ARPs.
    fn release_addresses(&mut self) {
        self.arp_jobs.clear();
        if self.owned.is_empty() {
            return;
        }
        let links = self.rtnl.links().unwrap_or_default();
        for fa in std::mem::take(&mut self.owned) {
            let Some(link) = links.iter().find(|l| l.name == fa.interface) else {
                log::info!("{fa}: the interface is gone, and the address with it");
                continue;
            };
            match self.rtnl.del_address(link.index, fa.address, fa.prefix_len) {
                Ok(true) => {
                    if self.opts.verbose {
                        log::debug!("DEBUG -- took down {fa}");
                    }
                }
                Ok(false) => log::info!("{fa} was already gone"),
                Err(e) => {
                    log::error!("cannot take down {fa}: {e}");
                }
            }
        }
    }

    fn command(&mut self, what: &'static str, cmd: Option<String>) {
        let Some(cmd) = cmd else { return };
        let argv = plan::command_argv(&cmd);
        let Some(prog) = argv.first() else { return };
        if self.opts.test_start {
            log::info!("test-start: not running {what} {cmd}");
            return;
        }
        if !prog.starts_with('/') {
            log::error!(
                "{what}: {prog} is not an absolute path (it is run without a shell or PATH)"
            );
            return;
        }
        if self.opts.verbose {
            log::debug!("DEBUG -- Executing '{cmd}'");
        }
        let mut c = Command::new(prog);
        c.args(&argv[1..]).stdin(Stdio::null());
        // SAFETY: only async-signal-safe calls: the child starts with no signal blocked (pulse's
        // mask is inherited across exec otherwise).
        unsafe {
            c.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        match c.spawn() {
            Ok(child) => {
                // Reaped by the SIGCHLD handling, like every child.
                self.children.insert(child.id() as i32, what);
            }
            Err(e) => log::error!("cannot run {what} {cmd}: {e}"),
        }
    }

    fn sync_daemon(&mut self, master: bool) {
        let Some((iface, id)) = self.plan.sync_daemon.clone() else {
            return;
        };
        let role = if master { "master" } else { "backup" };
        if self.opts.test_start {
            log::info!("test-start: not switching the IPVS sync daemon to {role}");
            return;
        }
        let mut ipvs = match ipvs::open() {
            Ok(b) => b,
            Err(e) => {
                log::error!("cannot switch the IPVS sync daemon to {role}: {e}");
                return;
            }
        };
        let _ = ipvs.apply(&ipvs::Change::StopDaemon(ipvs::DaemonState::Backup));
        let _ = ipvs.apply(&ipvs::Change::StopDaemon(ipvs::DaemonState::Master));
        let daemon = ipvs::Daemon {
            state: if master {
                ipvs::DaemonState::Master
            } else {
                ipvs::DaemonState::Backup
            },
            mcast_ifn: iface.clone(),
            sync_id: u32::from(id),
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        };
        match ipvs.apply(&ipvs::Change::StartDaemon(daemon)) {
            Ok(()) => log::info!("IPVS sync daemon: {role} on {iface}, syncid {id}"),
            Err(e) => log::error!("cannot start the IPVS sync daemon as {role} on {iface}: {e}"),
        }
    }

    /// Stops the kernel's IPVS sync daemons: at exit (an orderly stop leaves no sync daemon
    /// behind) and when a reload sets `syncdaemon = 0`.
    fn stop_sync_daemons(&mut self) {
        if self.opts.test_start {
            return;
        }
        match ipvs::open() {
            Ok(mut ipvs) => {
                let _ = ipvs.apply(&ipvs::Change::StopDaemon(ipvs::DaemonState::Backup));
                let _ = ipvs.apply(&ipvs::Change::StopDaemon(ipvs::DaemonState::Master));
                log::info!("IPVS sync daemon stopped");
            }
            Err(e) => log::error!("cannot stop the IPVS sync daemon: {e}"),
        }
    }

    fn lvsd_argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            if self.opts.nodaemon {
                "--nodaemon"
            } else {
                "--nofork"
            }
            .into(),
            "-c".into(),
            self.opts.config_path.clone().into(),
        ];
        if self.opts.verbose {
            v.push("-v".into());
        }
        v
    }

    fn spawn_lvsd(&mut self, now: Instant) {
        match &mut self.lvsd {
            LvsdProc::Running(_) => return,
            LvsdProc::Stopping { restart, .. } => {
                // Started when the old one is gone (it holds lvsd's pid file until then).
                *restart = true;
                return;
            }
            LvsdProc::Idle => {}
        }
        let argv = self.lvsd_argv();
        if self.opts.verbose {
            log::debug!(
                "DEBUG -- Executing '{} {}'",
                self.opts.lvsd.display(),
                argv.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let mut cmd = Command::new(&self.opts.lvsd);
        cmd.args(&argv).stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it makes lvsd stop (SIGTERM: it removes its IPVS
        // services) if pulse dies without releasing, e.g. by SIGKILL.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                // pulse blocks its signals (signalfd) and the mask is inherited across exec
                // (the standard library does not reset it): lvsd must get SIGTERM, SIGHUP...
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => {
                let pid = child.id() as i32;
                log::info!("lvsd started as pid {pid}");
                self.lvsd = LvsdProc::Running(pid);
            }
            Err(e) => {
                let a = self.machine.handle(
                    now,
                    Event::LvsdSpawnFailed(format!("{}: {e}", self.opts.lvsd.display())),
                );
                self.execute(now, a);
            }
        }
    }

    fn stop_lvsd(&mut self) {
        match self.lvsd {
            LvsdProc::Running(pid) => {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                self.lvsd = LvsdProc::Stopping {
                    pid,
                    kill_at: Some(Instant::now() + LVSD_STOP_TIMEOUT),
                    restart: false,
                };
            }
            LvsdProc::Stopping {
                ref mut restart, ..
            } => *restart = false,
            LvsdProc::Idle => {}
        }
    }

    fn lvsd_tick(&mut self, now: Instant) {
        if let LvsdProc::Stopping {
            pid,
            kill_at: Some(k),
            ..
        } = self.lvsd
        {
            if now >= k {
                log::warn!(
                    "lvsd (pid {pid}) did not stop within {} s of SIGTERM: killing it",
                    LVSD_STOP_TIMEOUT.as_secs()
                );
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                if let LvsdProc::Stopping { kill_at, .. } = &mut self.lvsd {
                    *kill_at = None;
                }
            }
        }
    }

    /// At exit: wait (bounded) for a stopping lvsd.
    fn finish_lvsd(&mut self) {
        let pid = match self.lvsd {
            LvsdProc::Running(pid) => {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                pid
            }
            LvsdProc::Stopping { pid, .. } => pid,
            LvsdProc::Idle => return,
        };
        let deadline = Instant::now() + LVSD_STOP_TIMEOUT;
        let mut killed = false;
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid || r < 0 {
                break;
            }
            if Instant::now() >= deadline {
                if killed {
                    break;
                }
                log::warn!("lvsd (pid {pid}) did not stop: killing it");
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.lvsd = LvsdProc::Idle;
    }

    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: reaping any child of ours.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let end = child_end(status);
            let now = Instant::now();
            match self.lvsd {
                LvsdProc::Running(p) if p == pid => {
                    self.lvsd = LvsdProc::Idle;
                    let a = self.machine.handle(
                        now,
                        Event::LvsdExited {
                            pid: pid as u32,
                            end,
                        },
                    );
                    self.execute(now, a);
                }
                LvsdProc::Stopping {
                    pid: p, restart, ..
                } if p == pid => {
                    log::info!("lvsd (pid {pid}) stopped");
                    self.lvsd = LvsdProc::Idle;
                    if restart {
                        self.spawn_lvsd(now);
                    }
                }
                _ => match self.children.remove(&pid) {
                    Some(what) => log::debug!("{what} (pid {pid}) ended: {end:?}"),
                    None => log::info!("Skipping death of unknown child {pid}"),
                },
            }
        }
    }

    fn handle_signals(&mut self) {
        for sig in self.signals.read() {
            let now = Instant::now();
            match sig {
                libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                    let a = self.machine.handle(now, Event::Terminate(sig));
                    self.execute(now, a);
                    return;
                }
                libc::SIGCHLD => self.reap(),
                libc::SIGHUP => self.reload(),
                libc::SIGUSR1 => self.status(),
                other => log::info!("ignoring signal {other}"),
            }
        }
    }

    /// What [`crate::status`] publishes.
    fn status_snapshot(&self) -> crate::status::Snapshot {
        crate::status::Snapshot {
            master: self.plan.master,
            active: self.machine.is_active(),
            partner_configured: self.plan.partner,
            partner: self.machine.partner_state(),
            link_failed: self.machine.link_failed(),
            lvsd_failed: self.machine.child_failed(),
            lvsd_pid: match self.lvsd {
                LvsdProc::Running(p) => Some(p),
                _ => None,
            },
            addresses: self.owned.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn status(&self) {
        let partner = match (self.plan.partner, self.machine.partner_state()) {
            (false, _) => "none (backup_active = 0)".to_string(),
            (true, Some(PeerState::Running)) => "active".to_string(),
            (true, Some(PeerState::Stopped)) => "standby".to_string(),
            (true, None) => "not heard from".to_string(),
        };
        let lvsd = match self.lvsd {
            LvsdProc::Running(p) => format!("pid {p}"),
            LvsdProc::Stopping { pid, .. } => format!("pid {pid}, stopping"),
            LvsdProc::Idle => "not running".to_string(),
        };
        let addrs: Vec<String> = self.owned.iter().map(|a| a.to_string()).collect();
        log::info!(
            "status: {} {}{}{}; partner {partner}; lvsd {lvsd}; addresses: {}",
            if self.plan.master { "master" } else { "backup" },
            if self.machine.is_active() {
                "active"
            } else {
                "standby"
            },
            if self.machine.link_failed() {
                ", local link failure"
            } else {
                ""
            },
            if self.machine.child_failed() {
                ", lvsd failed"
            } else {
                ""
            },
            if addrs.is_empty() {
                "none".to_string()
            } else {
                addrs.join(", ")
            }
        );
    }

    fn check_links(&mut self, now: Instant) {
        if !self.plan.monitor_links {
            return;
        }
        let (links, addrs) = match (self.rtnl.links(), self.rtnl.addresses()) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                if self.limited("links") {
                    log::error!("monitor_links: cannot read the link state: {e}");
                }
                return;
            }
        };
        let mut down = Vec::new();
        for (name, ip) in [
            ("Primary NIC", self.plan.own_public),
            ("Private NIC", self.plan.own_private),
        ] {
            if let Some(l) = link_holding(&links, &addrs, ip) {
                if !l.has_link() {
                    down.push(name);
                }
            }
        }
        let a = self.machine.handle(now, Event::Links(down));
        self.execute(now, a);
    }

    /// SIGHUP: lvsd reloads lvs.cf; pulse takes what it can change while running.
    fn reload(&mut self) {
        if let LvsdProc::Running(pid) = self.lvsd {
            // SAFETY: signalling our own child (never pid 0: Piranha's HUP to its group).
            unsafe { libc::kill(pid, libc::SIGHUP) };
        }
        log::info!("rereading configuration file");
        let (config, warnings) = match load_config(&self.opts.config_path) {
            Ok(c) => c,
            Err(lines) => {
                for l in lines {
                    log::error!("{l}");
                }
                log::error!("configuration not reloaded: pulse keeps its settings");
                return;
            }
        };
        for w in &warnings {
            log::warn!("{}", diagnostic_line(&self.opts.config_path, w));
        }
        crate::prereq::log_missing(&config);
        let local = match local_addresses(&mut self.rtnl) {
            Ok(l) => l,
            Err(e) => {
                log::error!("configuration not reloaded: cannot list the addresses: {e}");
                return;
            }
        };
        let mut new = match plan::plan(&config, &local) {
            Ok(p) => p,
            Err(e) => {
                log::error!(
                    "configuration not reloaded: {}",
                    e.message(&self.opts.config_path.display().to_string())
                );
                return;
            }
        };
        for what in plan::restart_only_changes(&self.plan, &new) {
            log::warn!("{what} changed: that needs a pulse restart; the running value is kept");
        }
        new.master = self.plan.master;
        new.partner = self.plan.partner;
        new.own_public = self.plan.own_public;
        new.own_private = self.plan.own_private;
        new.paths = self.plan.paths.clone();
        new.monitor_links = new.monitor_links && new.partner;
        let now = Instant::now();
        if new.timing != self.plan.timing {
            self.machine.set_timing(new.timing, now);
        }
        if new.key_file != self.plan.key_file && self.plan.partner {
            match &new.key_file {
                None => {
                    log::warn!("heartbeat_key_file removed: plain Piranha heartbeats from now on");
                    self.auth = None;
                }
                Some(path) => match read_key(path) {
                    Ok(key) => {
                        self.auth = Some(Auth {
                            key,
                            seq: Sequence::from_clock(),
                            window: ReplayWindow::default(),
                        })
                    }
                    Err(e) => {
                        log::error!("{e}: keeping the previous heartbeat settings");
                        new.key_file = self.plan.key_file.clone();
                    }
                },
            }
        } else if let (Some(path), Some(auth)) = (&new.key_file, &mut self.auth) {
            // Same file name: the key may have been rotated.
            match read_key(path) {
                Ok(key) => auth.key = key,
                Err(e) => log::error!("{e}: keeping the previous key"),
            }
        }
        if self.machine.is_active() {
            let gone: Vec<FloatingAddress> = self
                .owned
                .iter()
                .filter(|a| !new.floating.contains(a))
                .cloned()
                .collect();
            if !gone.is_empty() {
                let keep: Vec<FloatingAddress> = self
                    .owned
                    .iter()
                    .filter(|a| new.floating.contains(a))
                    .cloned()
                    .collect();
                self.owned = gone;
                self.release_addresses();
                self.owned = keep;
            }
            let added: Vec<FloatingAddress> = new
                .floating
                .iter()
                .filter(|a| !self.plan.floating.contains(a))
                .cloned()
                .collect();
            if !added.is_empty() {
                self.bring_up(&added);
            }
        }
        let monitor_changed = new.monitor_links != self.plan.monitor_links;
        let sync_changed = new.sync_daemon != self.plan.sync_daemon;
        self.plan = new;
        if sync_changed {
            // syncdaemon, syncd_iface or syncd_id changed: the daemons follow at once.
            if self.plan.sync_daemon.is_some() {
                self.sync_daemon(self.machine.is_active());
            } else {
                self.stop_sync_daemons();
            }
        }
        if monitor_changed {
            self.set_link_monitor();
            if self.plan.monitor_links {
                self.check_links(now);
            } else {
                let a = self.machine.handle(now, Event::Links(Vec::new()));
                self.execute(now, a);
            }
        }
        log::info!("configuration reloaded");
    }
}
