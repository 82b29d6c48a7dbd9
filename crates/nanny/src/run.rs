//! The process around the state machine: runs the checks and load readings it asks for, waits
//! for the time or a signal, and carries out its changes through a [`Sink`] (ipvsadm in legacy
//! mode, report lines in report mode).
//!
//! One thread, no allocation in the steady state of a passing socket check: per check the
//! system calls are `socket`, `connect`, `send`, `ppoll`, `recv`, `close` and one `ppoll` to
//! sleep until the next check.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::external::{self, Want};
use crate::legacy::Ipvsadm;
use crate::machine::{Change, Effect, Glasses, Level, Machine, Next};
use crate::probe::{Failure, ProbeError, Prober};
use crate::report::Report;
use crate::sys::{self, Mask, Polled, Signals};

/// How a check is made.
#[derive(Debug)]
pub enum Checker {
    Socket(Prober),
    Program {
        argv: Vec<OsString>,
        want: Want,
        timeout: Duration,
        server: String,
    },
}

/// Why a check or reading did not produce a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl Checker {
    /// Runs one check: Ok(Ok) passed, Ok(Err(why)) failed, Err: SIGTERM/SIGINT arrived.
    pub fn check(&mut self, signals: &Signals) -> Result<Result<(), String>, Interrupted> {
        match self {
            Checker::Socket(p) => match p.probe(signals) {
                Ok(()) => Ok(Ok(())),
                Err(ProbeError::Interrupted) => Err(Interrupted),
                Err(ProbeError::Failed(f)) => Ok(Err(logged(f))),
            },
            Checker::Program {
                argv,
                want,
                timeout,
                server,
            } => {
                let c = external::run_capture(argv, *timeout, signals);
                if matches!(c.outcome, external::Outcome::Interrupted) {
                    log::info!("Killing child running {}", external::describe(argv));
                    return Err(Interrupted);
                }
                log::debug!(
                    "Got result ({}) from command sent to ({server})",
                    String::from_utf8_lossy(external::chop(&c.output))
                );
                match external::judge(&c, want, server, argv) {
                    Ok(()) => Ok(Ok(())),
                    Err(f) => Ok(Err(logged(f))),
                }
            }
        }
    }
}

fn logged(f: Failure) -> String {
    match f.level {
        Level::Info => log::info!("{}", f.text),
        Level::Debug => log::debug!("{}", f.text),
    }
    f.text
}

/// Reads the load with the `-U` command.
#[derive(Debug)]
pub struct LoadReader {
    pub argv: Vec<OsString>,
    pub timeout: Duration,
    pub host: String,
}

impl LoadReader {
    pub fn read(&self, signals: &Signals) -> Result<Option<f32>, Interrupted> {
        log::debug!("reading load: {}", external::describe(&self.argv));
        let c = external::run_capture(&self.argv, self.timeout, signals);
        match c.outcome {
            external::Outcome::Interrupted => Err(Interrupted),
            external::Outcome::Exited(0) => match crate::load::parse_load(&c.output) {
                Some(l) => {
                    log::debug!("Loadavg of {} is {l:.6}", self.host);
                    Ok(Some(l))
                }
                None => {
                    log::info!(
                        "bad load average returned: {}",
                        String::from_utf8_lossy(external::chop(&c.output))
                    );
                    Ok(None)
                }
            },
            _ => {
                log::info!("failed to read remote load");
                Ok(None)
            }
        }
    }
}

/// Where the machine's changes go.
#[derive(Debug)]
pub enum Sink {
    /// Legacy mode: run ipvsadm.
    Ipvsadm(Ipvsadm),
    /// Report mode: lines on lvsd's pipe.
    Report(Reporter),
}

/// The write end of lvsd's report pipe.
#[derive(Debug)]
pub struct Reporter {
    fd: OwnedFd,
}

impl Reporter {
    pub fn new(fd: OwnedFd) -> Reporter {
        Reporter { fd }
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Writes one report line (whole: a line is at most PIPE_BUF bytes, so it is atomic).
    pub fn send(&mut self, r: &Report) -> io::Result<()> {
        let line = r.encode();
        let mut b = line.as_bytes();
        while !b.is_empty() {
            // SAFETY: write from a valid slice to our descriptor.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), b.as_ptr().cast(), b.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        let mut fds = [sys::pollfd(self.fd.as_raw_fd(), libc::POLLOUT)];
                        // SAFETY: poll on a valid one-element array.
                        unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) };
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            b = &b[n as usize..];
        }
        Ok(())
    }
}

/// The report line for a change.
pub fn report_for(change: &Change) -> Report {
    match change {
        Change::Add { weight, why } | Change::Restore { weight, why } => Report::Up {
            weight: *weight,
            why: why.clone(),
        },
        Change::Weight { weight, why } => Report::Weight {
            weight: *weight,
            why: why.clone(),
        },
        Change::Quiesce { why } => Report::Quiesce { why: why.clone() },
        Change::Remove { why } => Report::Down { why: why.clone() },
    }
}

impl Sink {
    /// Carries out a change; Err(exit status) when nanny must stop.
    fn apply(&mut self, change: &Change) -> Result<(), i32> {
        match self {
            Sink::Ipvsadm(i) => i.apply(change).map_err(|_| 1),
            Sink::Report(r) => r.send(&report_for(change)).map_err(|e| {
                log::info!("cannot write to the report pipe ({e}): lvsd is gone, exiting");
                1
            }),
        }
    }

    fn report_fd(&self) -> Option<i32> {
        match self {
            Sink::Report(r) => Some(r.fd()),
            Sink::Ipvsadm(_) => None,
        }
    }
}

/// What woke a wait.
enum Woke {
    Time,
    Term(i32),
    Glasses(Glasses),
    /// The report pipe's reader is gone.
    PipeGone,
}

/// Runs the machine to the end; returns the exit status.
pub fn run(
    mut machine: Machine,
    mut checker: Checker,
    load: Option<LoadReader>,
    mut sink: Sink,
    signals: &Signals,
) -> i32 {
    let origin = Instant::now();
    let now = || origin.elapsed().as_millis() as u64;
    let mut fx: Vec<Effect> = Vec::with_capacity(8);
    let mut next = machine.start(now(), &mut fx);
    loop {
        for e in fx.drain(..) {
            match e {
                Effect::Log(Level::Info, t) => log::info!("{t}"),
                Effect::Log(Level::Debug, t) => log::debug!("{t}"),
                Effect::Change(c) => {
                    if let Err(code) = sink.apply(&c) {
                        // Piranha exited 1 when the removal at termination failed, and -1
                        // (255) otherwise; one status is enough: 1.
                        return code;
                    }
                }
            }
        }
        next = match next {
            Next::Exit(code) => return code,
            Next::Check => match checker.check(signals) {
                Ok(result) => machine.check_done(now(), result, &mut fx),
                Err(Interrupted) => terminate(&mut machine, &mut fx),
            },
            Next::ReadLoad => match &load {
                Some(l) => match l.read(signals) {
                    Ok(v) => machine.load_done(now(), v, &mut fx),
                    Err(Interrupted) => terminate(&mut machine, &mut fx),
                },
                None => machine.load_done(now(), None, &mut fx),
            },
            Next::SleepUntil(t) => {
                match wait(Some(origin + Duration::from_millis(t)), &sink, signals) {
                    Woke::Time => machine.tick(now(), &mut fx),
                    Woke::Term(s) => machine.terminate(s, &mut fx),
                    Woke::Glasses(g) => machine.signal(now(), g, &mut fx),
                    Woke::PipeGone => return pipe_gone(),
                }
            }
            Next::WaitSignal => match wait(None, &sink, signals) {
                Woke::Time => machine.resume(),
                Woke::Term(s) => machine.terminate(s, &mut fx),
                Woke::Glasses(g) => machine.signal(now(), g, &mut fx),
                Woke::PipeGone => return pipe_gone(),
            },
        };
    }
}

fn terminate(machine: &mut Machine, fx: &mut Vec<Effect>) -> Next {
    let s = sys::term_signal().unwrap_or(libc::SIGTERM);
    machine.terminate(s, fx)
}

fn pipe_gone() -> i32 {
    log::info!("the report pipe was closed: lvsd is gone, exiting");
    1
}

/// Sleeps until `until` (None: for ever), returning early for a signal or a closed pipe.
fn wait(until: Option<Instant>, sink: &Sink, signals: &Signals) -> Woke {
    loop {
        if let Some(s) = sys::term_signal() {
            return Woke::Term(s);
        }
        if let Some(g) = sys::take_glasses() {
            return Woke::Glasses(g);
        }
        let left = match until {
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Woke::Time;
                }
                Some(left)
            }
            None => None,
        };
        // The report pipe's write end reports POLLERR once lvsd has closed the read end.
        let mut fds = [sys::pollfd(sink.report_fd().unwrap_or(-1), 0)];
        match sys::ppoll(&mut fds, left, signals, Mask::Sleep) {
            Ok(Polled::Ready) => {
                if fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    return Woke::PipeGone;
                }
            }
            Ok(Polled::Timeout) | Ok(Polled::Interrupted) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        // Children of external checks are reaped by their runner; nothing to do here.
        sys::take_child();
    }
}
