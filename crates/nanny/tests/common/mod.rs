//! Test rig: loopback TCP and UDP servers the tests start, stop and reprogram, and a running
//! nanny whose report lines and log lines are collected, with deadline-based waits (no fixed
//! sleeps for outcomes).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// What a TCP server does with a connection.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Read the request (until a blank line or 200 ms of silence), then write each chunk after
    /// its delay, then close.
    Chunks(Vec<(Duration, Vec<u8>)>),
    /// Accept and close at once.
    Close,
    /// Accept and say nothing until the peer goes away.
    Silent,
}

impl Reply {
    pub fn text(s: &str) -> Reply {
        Reply::Chunks(vec![(Duration::ZERO, s.as_bytes().to_vec())])
    }
    pub fn delayed(d: Duration, s: &str) -> Reply {
        Reply::Chunks(vec![(d, s.as_bytes().to_vec())])
    }
}

struct TcpShared {
    reply: Mutex<Reply>,
    requests: Mutex<Vec<Vec<u8>>>,
    stop: AtomicBool,
}

/// A TCP server on 127.0.0.1 that can be stopped (connections refused) and started again on the
/// same port.
pub struct TcpServer {
    pub port: u16,
    shared: Arc<TcpShared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TcpServer {
    pub fn start(reply: Reply) -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(TcpShared {
            reply: Mutex::new(reply),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let mut s = TcpServer {
            port,
            shared,
            thread: None,
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        self.shared.stop.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.thread = Some(thread::spawn(move || loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            match listener.accept() {
                Ok((conn, _)) => {
                    let shared = shared.clone();
                    thread::spawn(move || handle(conn, &shared));
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }));
    }

    pub fn set_reply(&self, r: Reply) {
        *self.shared.reply.lock().unwrap() = r;
    }

    /// Closes the listening socket: connections are refused from now on.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener);
    }

    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle(mut conn: TcpStream, shared: &TcpShared) {
    let _ = conn.set_nonblocking(false);
    let reply = shared.reply.lock().unwrap().clone();
    match reply {
        Reply::Close => {}
        Reply::Silent => {
            let mut b = [0u8; 256];
            let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
            while matches!(conn.read(&mut b), Ok(n) if n > 0) {}
        }
        Reply::Chunks(chunks) => {
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let mut req = Vec::new();
            let mut b = [0u8; 256];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut b) {
                    Ok(n) if n > 0 => req.extend_from_slice(&b[..n]),
                    _ => break,
                }
            }
            shared.requests.lock().unwrap().push(req);
            for (d, bytes) in chunks {
                thread::sleep(d);
                if conn.write_all(&bytes).is_err() {
                    return;
                }
                let _ = conn.flush();
            }
        }
    }
}

/// A UDP server on 127.0.0.1: answers each datagram with `reply` (None: stays silent).
pub struct UdpServer {
    pub port: u16,
    reply: Arc<Mutex<Option<Vec<u8>>>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl UdpServer {
    pub fn start(reply: Option<&[u8]>) -> UdpServer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut s = UdpServer {
            port,
            reply: Arc::new(Mutex::new(reply.map(<[u8]>::to_vec))),
            requests: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        s.serve(sock);
        s
    }

    fn serve(&mut self, sock: UdpSocket) {
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (reply, requests, stop) =
            (self.reply.clone(), self.requests.clone(), self.stop.clone());
        self.thread = Some(thread::spawn(move || {
            let mut b = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = sock.recv_from(&mut b) {
                    requests.lock().unwrap().push(b[..n].to_vec());
                    let r = reply.lock().unwrap().clone();
                    if let Some(r) = r {
                        let _ = sock.send_to(&r, from);
                    }
                }
            }
        }));
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn restart(&mut self) {
        let sock = UdpSocket::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(sock);
    }

    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lines collected from a pipe by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Collected>, Condvar)>);

/// The lines so far, and whether the pipe has closed.
type Collected = (Vec<String>, bool);

impl Lines {
    fn collect(&self, r: impl Read + Send + 'static) {
        let me = self.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&line)
                            .trim_end_matches('\n')
                            .to_string();
                        let (m, cv) = &*me.0;
                        m.lock().unwrap().0.push(s);
                        cv.notify_all();
                    }
                }
            }
            let (m, cv) = &*me.0;
            m.lock().unwrap().1 = true;
            cv.notify_all();
        });
    }

    pub fn all(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().0.clone()
    }

    pub fn closed(&self) -> bool {
        self.0 .0.lock().unwrap().1
    }

    /// Waits until `pred` holds for the lines so far; panics with them after `DEADLINE`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let (m, cv) = &*self.0;
        let end = Instant::now() + DEADLINE;
        let mut g = m.lock().unwrap();
        loop {
            if pred(&g.0) {
                return g.0.clone();
            }
            let now = Instant::now();
            if now >= end {
                panic!("timed out waiting for {what}; lines so far: {:#?}", g.0);
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
    }

    /// Waits for the `n`th line (1-based) and returns it.
    pub fn nth(&self, n: usize) -> String {
        self.wait_for(&format!("line {n}"), |l| l.len() >= n)[n - 1].clone()
    }

    /// Waits for a line containing `needle` at index >= `from`; returns its index.
    pub fn find_from(&self, from: usize, needle: &str) -> usize {
        let lines = self.wait_for(&format!("a line with {needle:?} after {from}"), |l| {
            l.iter().skip(from).any(|x| x.contains(needle))
        });
        from + lines
            .iter()
            .skip(from)
            .position(|x| x.contains(needle))
            .unwrap()
    }

    /// Asserts no new line arrives for `d` (used only where silence is the point).
    pub fn quiet_for(&self, d: Duration) -> usize {
        let n = self.all().len();
        thread::sleep(d);
        let now = self.all();
        assert_eq!(now.len(), n, "unexpected lines: {:?}", &now[n..]);
        n
    }
}

/// A running nanny.
pub struct Nanny {
    pub child: Child,
    pub reports: Lines,
    pub log: Lines,
}

pub fn nanny_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nanny")
}

/// Starts nanny in report mode (`--report-fd`) in the foreground (`-n -c`), with `args`.
pub fn report_nanny(args: &[&str]) -> Nanny {
    spawn(args, true, false)
}

/// Same, handing the descriptor through `NANNY_REPORT_FD` as lvsd does.
pub fn report_nanny_env(args: &[&str]) -> Nanny {
    spawn(args, true, true)
}

/// Starts nanny in legacy mode (no report channel), in the foreground.
pub fn legacy_nanny(args: &[&str]) -> Nanny {
    spawn(args, false, false)
}

fn spawn(args: &[&str], report: bool, via_env: bool) -> Nanny {
    let mut cmd = Command::new(nanny_bin());
    cmd.args(["-n", "-c"]).args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env_remove("NANNY_REPORT_FD");
    let reports = Lines::default();
    let mut read_end = None;
    if report {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wfd = w.as_raw_fd();
        if via_env {
            cmd.env("NANNY_REPORT_FD", wfd.to_string());
        } else {
            cmd.args(["--report-fd", &wfd.to_string()]);
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(wfd, libc::F_SETFD, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(w);
        read_end = Some((r, child));
    }
    let mut child = match read_end {
        Some((r, child)) => {
            reports.collect(std::fs::File::from(r));
            child
        }
        None => {
            // SAFETY: as above.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            cmd.spawn().unwrap()
        }
    };
    let log = Lines::default();
    log.collect(child.stdout.take().unwrap());
    // stderr joins the log (nanny writes nothing there once running).
    log.collect(child.stderr.take().unwrap());
    Nanny {
        child,
        reports,
        log,
    }
}

impl Nanny {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < end,
                "nanny did not exit; log: {:#?}",
                self.log.all()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Nanny {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs nanny to completion (for option errors and --version): (status, stdout, stderr).
pub fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(nanny_bin())
        .args(args)
        .env_remove("NANNY_REPORT_FD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes an executable shell script into `dir`.
pub fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

/// Polls `f` until it returns Some, or panics after `DEADLINE`.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// True while a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
