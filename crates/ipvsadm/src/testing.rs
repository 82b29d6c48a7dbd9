//! Unit-test seams: an in-memory IPVS table with the kernel's errno semantics, a fixed name
//! lookup, and helpers to run ipvsadm against them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipvs::error::{EEXIST, EINVAL, ENODEV, ENOENT, ERANGE, ESRCH};
use ipvs::{
    Backend, Change, Daemon, Destination, Error, Family, Info, Operation, Protocol, Result,
    Service, ServiceId, Stats, Timeouts,
};

use crate::args::Lookup;
use crate::exec::{self, Ctx, Env};

pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "none",
];

/// An in-memory kernel table.
pub struct FakeKernel {
    /// Services in creation order, each with destinations most recent first (kernel list_add).
    pub services: Vec<(Service, Vec<Destination>)>,
    pub timeouts: Timeouts,
    pub daemons: Vec<Daemon>,
    pub interfaces: Vec<String>,
    /// Sizes of the `apply_all` calls received.
    pub batches: Vec<usize>,
    /// Every change applied (successfully or not), in order.
    pub applied: Vec<Change>,
    /// Make every read fail with this errno.
    pub fail_reads: Option<i32>,
}

impl Default for FakeKernel {
    fn default() -> Self {
        FakeKernel {
            services: Vec::new(),
            timeouts: Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            },
            daemons: Vec::new(),
            interfaces: vec!["lo".into(), "eth0".into(), "dummy0".into()],
            batches: Vec::new(),
            applied: Vec::new(),
            fail_reads: None,
        }
    }
}

fn err(op: Operation, errno: i32) -> Error {
    Error::new(op, errno)
}

impl FakeKernel {
    fn find(&self, id: &ServiceId) -> Option<usize> {
        self.services.iter().position(|(s, _)| s.id == *id)
    }

    fn check_service(s: &Service, op: Operation) -> Result<()> {
        if !SCHEDULERS.contains(&s.scheduler.as_str()) {
            return Err(err(op, ENOENT));
        }
        if let Some(pe) = &s.pe_name {
            if pe != "sip" {
                return Err(err(op, ENOENT));
            }
        }
        if s.id.family() == Family::Inet6 && !(1..=128).contains(&s.netmask) {
            return Err(err(op, EINVAL));
        }
        Ok(())
    }

    fn check_dest(d: &Destination, op: Operation) -> Result<()> {
        if d.weight < 0 || d.l_threshold > d.u_threshold {
            return Err(err(op, ERANGE));
        }
        Ok(())
    }

    fn read_check(&self, op: Operation) -> Result<()> {
        match self.fail_reads {
            Some(e) => Err(err(op, e)),
            None => Ok(()),
        }
    }
}

impl Backend for FakeKernel {
    fn info(&mut self) -> Result<Info> {
        self.read_check(Operation::GetInfo)?;
        Ok(Info {
            version: 0x010201,
            conn_tab_size: 4096,
        })
    }

    fn services(&mut self) -> Result<Vec<Service>> {
        self.read_check(Operation::GetServices)?;
        Ok(self.services.iter().map(|(s, _)| s.clone()).collect())
    }

    fn service(&mut self, id: &ServiceId) -> Result<Service> {
        self.read_check(Operation::GetService)?;
        self.find(id)
            .map(|i| self.services[i].0.clone())
            .ok_or_else(|| err(Operation::GetService, ESRCH))
    }

    fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>> {
        self.read_check(Operation::GetDestinations)?;
        self.find(id)
            .map(|i| self.services[i].1.clone())
            .ok_or_else(|| err(Operation::GetDestinations, ESRCH))
    }

    fn timeouts(&mut self) -> Result<Timeouts> {
        self.read_check(Operation::GetTimeouts)?;
        Ok(self.timeouts)
    }

    fn daemons(&mut self) -> Result<Vec<Daemon>> {
        self.read_check(Operation::GetDaemons)?;
        Ok(self.daemons.clone())
    }

    fn apply(&mut self, change: &Change) -> Result<()> {
        self.applied.push(change.clone());
        let op = exec::operation_of(change);
        match change {
            Change::AddService(s) => {
                if self.find(&s.id).is_some() {
                    return Err(err(op, EEXIST));
                }
                Self::check_service(s, op)?;
                self.services.push((s.clone(), Vec::new()));
            }
            Change::EditService(s) => {
                let i = self.find(&s.id).ok_or_else(|| err(op, ESRCH))?;
                Self::check_service(s, op)?;
                let stats = self.services[i].0.stats;
                self.services[i].0 = Service { stats, ..s.clone() };
            }
            Change::DeleteService(id) => {
                let i = self.find(id).ok_or_else(|| err(op, ESRCH))?;
                self.services.remove(i);
            }
            Change::AddDestination(id, d) => {
                let i = self.find(id).ok_or_else(|| err(op, ESRCH))?;
                Self::check_dest(d, op)?;
                let dests = &mut self.services[i].1;
                if dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                    return Err(err(op, EEXIST));
                }
                dests.insert(0, d.clone());
            }
            Change::EditDestination(id, d) => {
                let i = self.find(id).ok_or_else(|| err(op, ESRCH))?;
                Self::check_dest(d, op)?;
                let dests = &mut self.services[i].1;
                let x = dests
                    .iter_mut()
                    .find(|x| x.addr == d.addr && x.port == d.port)
                    .ok_or_else(|| err(op, ENOENT))?;
                let (a, b, c, st) = (x.active_conns, x.inact_conns, x.persist_conns, x.stats);
                *x = d.clone();
                x.active_conns = a;
                x.inact_conns = b;
                x.persist_conns = c;
                x.stats = st;
            }
            Change::DeleteDestination(id, d) => {
                let i = self.find(id).ok_or_else(|| err(op, ESRCH))?;
                let dests = &mut self.services[i].1;
                let k = dests
                    .iter()
                    .position(|x| x.addr == d.addr && x.port == d.port)
                    .ok_or_else(|| err(op, ENOENT))?;
                dests.remove(k);
            }
            Change::Flush => self.services.clear(),
            Change::Zero(None) => {
                for (s, ds) in &mut self.services {
                    s.stats = Stats::default();
                    for d in ds {
                        d.stats = Stats::default();
                    }
                }
            }
            Change::Zero(Some(id)) => {
                let i = self.find(id).ok_or_else(|| err(op, ESRCH))?;
                self.services[i].0.stats = Stats::default();
            }
            Change::SetTimeouts(t) => {
                if t.tcp != 0 {
                    self.timeouts.tcp = t.tcp;
                }
                if t.tcp_fin != 0 {
                    self.timeouts.tcp_fin = t.tcp_fin;
                }
                if t.udp != 0 {
                    self.timeouts.udp = t.udp;
                }
            }
            Change::StartDaemon(d) => {
                if self.daemons.iter().any(|x| x.state == d.state) {
                    return Err(err(op, EEXIST));
                }
                if !self.interfaces.contains(&d.mcast_ifn) {
                    return Err(err(op, ENODEV));
                }
                self.daemons.push(d.clone());
                self.daemons.sort_by_key(|d| d.state.number());
            }
            Change::StopDaemon(state) => {
                let k = self
                    .daemons
                    .iter()
                    .position(|x| x.state == *state)
                    .ok_or_else(|| err(op, ESRCH))?;
                self.daemons.remove(k);
            }
        }
        Ok(())
    }

    fn apply_all(&mut self, changes: &[Change]) -> Vec<Result<()>> {
        self.batches.push(changes.len());
        changes.iter().map(|c| self.apply(c)).collect()
    }
}

/// Fixed answers for host and service names.
#[derive(Default)]
pub struct FakeLookup {
    pub hosts: HashMap<String, Ipv4Addr>,
    pub services: HashMap<(String, Protocol), u16>,
}

impl FakeLookup {
    pub fn standard() -> FakeLookup {
        let mut l = FakeLookup::default();
        l.hosts.insert("localhost".into(), Ipv4Addr::LOCALHOST);
        l.hosts
            .insert("web.example".into(), Ipv4Addr::new(192, 0, 2, 10));
        l.hosts
            .insert("mask.example".into(), Ipv4Addr::new(255, 255, 0, 0));
        for (name, port) in [
            ("http", 80),
            ("https", 443),
            ("domain", 53),
            ("http-alt", 8080),
        ] {
            for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                l.services.insert((name.into(), p), port);
            }
        }
        l.services.insert(("ssh".into(), Protocol::Tcp), 22);
        l.services.insert(("ntp".into(), Protocol::Udp), 123);
        l
    }
}

impl Lookup for FakeLookup {
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.get(name).copied()
    }

    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.services.get(&(name.to_string(), protocol)).copied()
    }
}

/// What one run printed and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs ipvsadm's `main` with `args` (without argv[0]) against `kernel` (None = IPVS missing).
pub fn run_with(
    kernel: Option<&mut FakeKernel>,
    args: &[&str],
    stdin: &str,
    conn_path: &Path,
) -> Outcome {
    let argv: Vec<String> = std::iter::once("ipvsadm")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let lookup = FakeLookup::standard();
    let mut out: Vec<u8> = Vec::new();
    let mut errb: Vec<u8> = Vec::new();
    let mut input = stdin.as_bytes();
    let mut kref = kernel.map(std::mem::take);
    let code = {
        let mut open = || -> Result<Box<dyn Backend>> {
            match kref.take() {
                Some(k) => Ok(Box::new(FakeKernelHandle::new(k))),
                None => Err(Error::new(Operation::Init, ipvs::error::ENOPROTOOPT)),
            }
        };
        let mut env = Env {
            lookup: &lookup,
            open: &mut open,
            stdin: &mut input,
            ctx: Ctx {
                out: &mut out,
                err: &mut errb,
                conn_path,
            },
        };
        exec::run(&argv, &mut env)
    };
    if let Some(k) = kref {
        // Never opened: hand the kernel back untouched.
        LAST_KERNEL.with(|l| *l.borrow_mut() = Some(k));
    }
    Outcome {
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(errb).unwrap(),
        code,
    }
}

thread_local! {
    /// The state of the last fake kernel a run closed (handles hand it back on drop).
    pub static LAST_KERNEL: std::cell::RefCell<Option<FakeKernel>> = const { std::cell::RefCell::new(None) };
}

/// A boxed backend that gives its kernel back (to [`LAST_KERNEL`]) when dropped.
pub struct FakeKernelHandle {
    k: Option<FakeKernel>,
}

impl FakeKernelHandle {
    fn new(k: FakeKernel) -> Self {
        FakeKernelHandle { k: Some(k) }
    }
    fn k(&mut self) -> &mut FakeKernel {
        self.k.as_mut().unwrap()
    }
}

impl Drop for FakeKernelHandle {
    fn drop(&mut self) {
        let k = self.k.take();
        LAST_KERNEL.with(|l| *l.borrow_mut() = k);
    }
}

impl Backend for FakeKernelHandle {
    fn info(&mut self) -> Result<Info> {
        self.k().info()
    }
    fn services(&mut self) -> Result<Vec<Service>> {
        self.k().services()
    }
    fn service(&mut self, id: &ServiceId) -> Result<Service> {
        self.k().service(id)
    }
    fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>> {
        self.k().destinations(id)
    }
    fn timeouts(&mut self) -> Result<Timeouts> {
        self.k().timeouts()
    }
    fn daemons(&mut self) -> Result<Vec<Daemon>> {
        self.k().daemons()
    }
    fn apply(&mut self, change: &Change) -> Result<()> {
        self.k().apply(change)
    }
    fn apply_all(&mut self, changes: &[Change]) -> Vec<Result<()>> {
        self.k().apply_all(changes)
    }
}

/// A test session: a fake kernel that persists across ipvsadm runs.
pub struct Session {
    pub kernel: FakeKernel,
    pub conn_path: PathBuf,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            kernel: FakeKernel::default(),
            conn_path: PathBuf::from("/nonexistent/ip_vs_conn"),
        }
    }
}

impl Session {
    /// Runs `ipvsadm <line>` (split on white space).
    pub fn run(&mut self, line: &str) -> Outcome {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.run_args(&args, "")
    }

    pub fn run_args(&mut self, args: &[&str], stdin: &str) -> Outcome {
        let out = run_with(Some(&mut self.kernel), args, stdin, &self.conn_path.clone());
        if let Some(k) = LAST_KERNEL.with(|l| l.borrow_mut().take()) {
            self.kernel = k;
        }
        out
    }

    /// `ipvsadm -R` with `input` on stdin.
    pub fn restore(&mut self, input: &str) -> Outcome {
        self.run_args(&["-R"], input)
    }

    pub fn dests(&self, id: &ServiceId) -> Vec<Destination> {
        self.kernel
            .services
            .iter()
            .find(|(s, _)| s.id == *id)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    }
}

pub fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Address {
        protocol: Protocol::Tcp,
        addr: addr.parse::<IpAddr>().unwrap(),
        port,
    }
}

pub fn udp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Address {
        protocol: Protocol::Udp,
        addr: addr.parse::<IpAddr>().unwrap(),
        port,
    }
}

pub fn fwm(mark: u32) -> ServiceId {
    ServiceId::Fwmark {
        family: Family::Inet,
        mark,
    }
}

pub fn ok(o: &Outcome) {
    assert_eq!((o.stderr.as_str(), o.code), ("", 0), "{o:?}");
}
