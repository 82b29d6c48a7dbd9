//! Benchmark of the userspace IPVS backend (issue 7): ipvsd against HAProxy (`mode tcp`, the
//! same number of worker threads), on loopback, in the same run and on the same cores.
//!
//! Built as the `userspace-bench` example of the ipvsd crate; run it through
//! `integration-tests/bench/userspace-bench.sh`. Needs `haproxy` and `wrk` (Debian packages);
//! loopback addresses and ports above 1024 need no privilege.
//!
//! This process is every real server: HTTP servers on 127.0.0.2:19001-19004 answering each
//! request with a small response and closing (short connections), a bulk server on :19100
//! sending without end, and a holding server on :19200 that keeps every connection open. For
//! each thread count T it starts ipvsd (`--threads T`, programmed with our ipvsadm: rr, masq)
//! on 127.0.1.100 and HAProxy (`nbthread T`, `mode tcp`, roundrobin) on 127.0.1.101, twice:
//! as configured by default and with `option splice-auto` (its zero-copy relaying), then, in
//! alternating rounds:
//! 1. short HTTP connections: `wrk -t2 -cC -dS --latency -H 'Connection: close'`, req/s and
//!    p99 latency;
//! 2. bulk transfer: 2 connections reading (MSG_TRUNC, no copy) for S seconds, Gbit/s;
//!
//! and once: 3. memory per open connection: N idle connections through each proxy, the
//! growth of the proxy's resident memory (VmRSS) divided by N.
//!
//! Medians of the rounds are printed with the ratios ipvsd / HAProxy (the better HAProxy
//! configuration of the two for each figure).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const VIP_OURS: &str = "127.0.1.100";
const VIP_HAPROXY: &str = "127.0.1.101";
const RS_IP: &str = "127.0.0.2";
const HTTP_PORTS: [u16; 4] = [19001, 19002, 19003, 19004];
const BULK_PORT: u16 = 19100;
const HOLD_PORT: u16 = 19200;

struct Opts {
    threads: Vec<usize>,
    seconds: u64,
    rounds: usize,
    conns: usize,
    idle: usize,
    body: usize,
    ipvsd: PathBuf,
    ipvsd_args: Vec<String>,
    kinds: Vec<Kind>,
    /// Only the short-connection measurement (no bulk, no memory): for quick iterations.
    short_only: bool,
    ipvsadm: PathBuf,
    haproxy: PathBuf,
    wrk: PathBuf,
}

fn parse() -> Opts {
    let mut o = Opts {
        threads: vec![1, 2],
        seconds: 10,
        rounds: 3,
        conns: 64,
        idle: 4000,
        body: 100,
        ipvsd: "target/release/ipvsd".into(),
        ipvsd_args: vec![],
        kinds: vec![Kind::Ipvsd, Kind::Haproxy, Kind::HaproxySplice],
        short_only: false,
        ipvsadm: "target/release/ipvsadm".into(),
        haproxy: "/usr/sbin/haproxy".into(),
        wrk: "/usr/bin/wrk".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--short-only" {
            o.short_only = true;
            i += 1;
            continue;
        }
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--threads" => o.threads = v.split(',').map(|x| x.parse().expect("threads")).collect(),
            "--seconds" => o.seconds = v.parse().expect("seconds"),
            "--rounds" => o.rounds = v.parse().expect("rounds"),
            "--conns" => o.conns = v.parse().expect("conns"),
            "--idle" => o.idle = v.parse().expect("idle"),
            "--body" => o.body = v.parse().expect("body"),
            "--ipvsd" => o.ipvsd = v.into(),
            "--kinds" => {
                o.kinds = v
                    .split(',')
                    .map(|k| match k {
                        "ipvsd" => Kind::Ipvsd,
                        "haproxy" => Kind::Haproxy,
                        "haproxy+splice" => Kind::HaproxySplice,
                        other => panic!("unknown kind {other}"),
                    })
                    .collect()
            }
            "--ipvsd-args" => o.ipvsd_args = v.split_whitespace().map(String::from).collect(),
            "--ipvsadm" => o.ipvsadm = v.into(),
            "--haproxy" => o.haproxy = v.into(),
            "--wrk" => o.wrk = v.into(),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

// ---------------------------------------------------------------------------------- servers

fn raise_nofile() {
    // SAFETY: plain rlimit calls.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

fn reuseport_listener(addr: &str) -> TcpListener {
    let sa: SocketAddr = addr.parse().unwrap();
    // SAFETY: plain socket calls; the descriptor is owned by the listener at the end.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let one: libc::c_int = 1;
        let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as _,
            sz,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            &one as *const _ as _,
            sz,
        );
        let SocketAddr::V4(v4) = sa else {
            unreachable!()
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "bind {addr}: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(fd, 4096), 0);
        TcpListener::from_raw_fd(fd)
    }
}

/// Epoll HTTP servers: read a request, answer, close. `threads` threads, each with its own
/// SO_REUSEPORT listener on every port.
fn http_servers(threads: usize, body: usize) {
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\nConnection: close\r\n\r\n")
            .into_bytes();
    resp.extend(vec![b'x'; body]);
    let resp = Arc::new(resp);
    for _ in 0..threads {
        let listeners: Vec<TcpListener> = HTTP_PORTS
            .iter()
            .map(|p| reuseport_listener(&format!("{RS_IP}:{p}")))
            .collect();
        let resp = resp.clone();
        thread::spawn(move || http_loop(listeners, &resp));
    }
}

fn http_loop(listeners: Vec<TcpListener>, resp: &[u8]) {
    // SAFETY: epoll on descriptors this thread owns.
    unsafe {
        let ep = libc::epoll_create1(0);
        for (i, l) in listeners.iter().enumerate() {
            l.set_nonblocking(true).unwrap();
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: (1 << 40) | i as u64,
            };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, l.as_raw_fd(), &mut ev);
        }
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, -1);
            for ev in evs.iter().take(n.max(0) as usize) {
                let t = ev.u64;
                if t >> 40 == 1 {
                    let l = &listeners[(t & 0xff) as usize];
                    loop {
                        let fd = libc::accept4(
                            l.as_raw_fd(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK,
                        );
                        if fd < 0 {
                            break;
                        }
                        let mut ev = libc::epoll_event {
                            events: libc::EPOLLIN as u32,
                            u64: fd as u64,
                        };
                        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
                    }
                } else {
                    let fd = t as i32;
                    let r = libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len());
                    if r > 0 {
                        libc::write(fd, resp.as_ptr() as *const _, resp.len());
                    }
                    if r != -1 || *libc::__errno_location() != libc::EAGAIN {
                        libc::close(fd);
                    }
                }
            }
        }
    }
}

/// Sends without end on every connection (a thread each).
fn bulk_server() {
    let l = reuseport_listener(&format!("{RS_IP}:{BULK_PORT}"));
    thread::spawn(move || {
        let chunk = vec![0x5au8; 256 * 1024];
        for s in l.incoming().flatten() {
            let chunk = chunk.clone();
            thread::spawn(move || {
                let mut s = s;
                while s.write_all(&chunk).is_ok() {}
            });
        }
    });
}

/// Accepts and keeps every connection (until `kept` is emptied).
fn hold_server(count: Arc<AtomicU64>, kept: Arc<Mutex<Vec<TcpStream>>>) {
    let l = reuseport_listener(&format!("{RS_IP}:{HOLD_PORT}"));
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            kept.lock().unwrap().push(s);
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
}

// ---------------------------------------------------------------------------------- proxies

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipvsd,
    Haproxy,
    HaproxySplice,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ipvsd => "ipvsd",
            Kind::Haproxy => "haproxy",
            Kind::HaproxySplice => "haproxy+splice",
        }
    }
    fn vip(self) -> &'static str {
        match self {
            Kind::Ipvsd => VIP_OURS,
            _ => VIP_HAPROXY,
        }
    }
}

struct Proxy {
    kind: Kind,
    child: Child,
    _dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn run_ok(cmd: &mut Command) {
    let o = cmd.output().expect("command runs");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn wait_port(addr: &str) {
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{addr} never answered"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn start(kind: Kind, threads: usize, o: &Opts) -> Proxy {
    let dir = std::env::temp_dir().join(format!(
        "userspace-bench-{}-{}",
        std::process::id(),
        kind.name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let child = match kind {
        Kind::Ipvsd => {
            let sock = dir.join("ipvsd.sock");
            let child = Command::new(&o.ipvsd)
                .arg("--socket")
                .arg(&sock)
                .arg("--threads")
                .arg(threads.to_string())
                .args(&o.ipvsd_args)
                .stdout(Stdio::null())
                .stderr(if std::env::var_os("BENCH_IPVSD_STDERR").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .spawn()
                .expect("ipvsd");
            let t = Instant::now();
            while !sock.exists() {
                assert!(t.elapsed() < Duration::from_secs(10));
                thread::sleep(Duration::from_millis(10));
            }
            let mut rules = String::new();
            for (port, rs) in [
                (8080, HTTP_PORTS.to_vec()),
                (8100, vec![BULK_PORT]),
                (8200, vec![HOLD_PORT]),
            ] {
                rules += &format!("-A -t {VIP_OURS}:{port} -s rr\n");
                for p in rs {
                    rules += &format!("-a -t {VIP_OURS}:{port} -r {RS_IP}:{p} -m\n");
                }
            }
            let mut c = Command::new(&o.ipvsadm)
                .arg("-R")
                .env("IPVS_BACKEND", "userspace")
                .env("IPVSD_SOCKET", &sock)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
            assert!(c.wait().unwrap().success());
            child
        }
        Kind::Haproxy | Kind::HaproxySplice => {
            let splice = if kind == Kind::HaproxySplice {
                "    option splice-auto\n"
            } else {
                ""
            };
            let mut cfg = format!(
                "global\n    nbthread {threads}\n    maxconn 7000\n\
                 defaults\n    mode tcp\n    maxconn 7000\n    timeout connect 5s\n\
                 \x20   timeout client 120s\n    timeout server 120s\n{splice}"
            );
            for (port, rs) in [
                (8080, HTTP_PORTS.to_vec()),
                (8100, vec![BULK_PORT]),
                (8200, vec![HOLD_PORT]),
            ] {
                cfg += &format!(
                    "frontend f{port}\n    bind {VIP_HAPROXY}:{port}\n    default_backend b{port}\n\
                     backend b{port}\n    balance roundrobin\n"
                );
                for (i, p) in rs.iter().enumerate() {
                    cfg += &format!("    server s{i} {RS_IP}:{p}\n");
                }
            }
            let path = dir.join("haproxy.cfg");
            std::fs::write(&path, cfg).unwrap();
            run_ok(
                Command::new(&o.haproxy)
                    .arg("-c")
                    .arg("-q")
                    .arg("-f")
                    .arg(&path),
            );
            Command::new(&o.haproxy)
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy")
        }
    };
    for port in [8080, 8100, 8200] {
        wait_port(&format!("{}:{port}", kind.vip()));
    }
    Proxy {
        kind,
        child,
        _dir: dir,
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU ticks of each thread of a process.
fn thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            let p = e.path();
            let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let s = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            let t = f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            out.push((name.trim().to_string(), t));
        }
    }
    out.sort();
    out
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------- loads

struct Short {
    rps: f64,
    p99_ms: f64,
    errors: String,
    cpu: f64,
    sched: Sched,
}

/// How the proxy's threads were scheduled, summed over its threads (`/proc/PID/task/*`):
/// time waiting runnable for a CPU (schedstat), and voluntary (it slept) and involuntary (it
/// was preempted) context switches.
#[derive(Default, Clone, Copy)]
struct Sched {
    wait_ns: u64,
    voluntary: u64,
    involuntary: u64,
}

fn sched(pid: u32) -> Sched {
    let mut out = Sched::default();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let st = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        out.wait_ns += st
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0);
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        for l in status.lines() {
            let num = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if l.starts_with("voluntary_ctxt_switches:") {
                out.voluntary += num(l);
            } else if l.starts_with("nonvoluntary_ctxt_switches:") {
                out.involuntary += num(l);
            }
        }
    }
    out
}

impl Sched {
    fn since(self, before: Sched) -> Sched {
        Sched {
            wait_ns: self.wait_ns.saturating_sub(before.wait_ns),
            voluntary: self.voluntary.saturating_sub(before.voluntary),
            involuntary: self.involuntary.saturating_sub(before.involuntary),
        }
    }
}

fn parse_duration_ms(s: &str) -> f64 {
    let (num, mul) = if let Some(x) = s.strip_suffix("us") {
        (x, 0.001)
    } else if let Some(x) = s.strip_suffix("ms") {
        (x, 1.0)
    } else if let Some(x) = s.strip_suffix('s') {
        (x, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mul
}

fn short(p: &Proxy, o: &Opts) -> Short {
    let cpu0 = cpu_ticks(p.child.id());
    let sched0 = sched(p.child.id());
    let out = Command::new(&o.wrk)
        .args([
            "-t2",
            &format!("-c{}", o.conns),
            &format!("-d{}s", o.seconds),
            "--latency",
            "-H",
            "Connection: close",
            &format!("http://{}:8080/", p.kind.vip()),
        ])
        .output()
        .expect("wrk");
    let cpu = (cpu_ticks(p.child.id()) - cpu0) as f64 / 100.0 / o.seconds as f64;
    let sched = sched(p.child.id()).since(sched0);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = Short {
        rps: 0.0,
        p99_ms: f64::NAN,
        errors: String::new(),
        cpu,
        sched,
    };
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.first() == Some(&"Requests/sec:") {
            r.rps = w[1].parse().unwrap_or(0.0);
        } else if w.first() == Some(&"99%") {
            r.p99_ms = parse_duration_ms(w[1]);
        } else if line.contains("Socket errors") || line.contains("Non-2xx") {
            r.errors += line.trim();
            r.errors += "; ";
        }
    }
    r
}

/// Gbit/s read through the proxy by 2 connections in `seconds`.
fn bulk(p: &Proxy, o: &Opts) -> (f64, f64) {
    let addr = format!("{}:8100", p.kind.vip());
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let mut hs = vec![];
    let cpu0 = cpu_ticks(p.child.id());
    for _ in 0..2 {
        let (addr, stop, total) = (addr.clone(), stop.clone(), total.clone());
        hs.push(thread::spawn(move || {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let fd = s.as_raw_fd();
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: MSG_TRUNC on TCP discards the bytes in the kernel: no buffer needed.
                let n = unsafe { libc::recv(fd, std::ptr::null_mut(), 1 << 20, libc::MSG_TRUNC) };
                if n > 0 {
                    total.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    // warm-up, then measure
    thread::sleep(Duration::from_secs(1));
    let b0 = total.load(Ordering::Relaxed);
    let cpu1 = cpu_ticks(p.child.id());
    let th0 = thread_ticks(p.child.id());
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(o.seconds));
    let bytes = total.load(Ordering::Relaxed) - b0;
    let el = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(p.child.id()) - cpu1) as f64 / 100.0 / el;
    if std::env::var_os("BENCH_THREADS").is_some() {
        let th1 = thread_ticks(p.child.id());
        let busy: Vec<String> = th1
            .iter()
            .zip(&th0)
            .map(|((n, a), (_, b))| format!("{n}={:.2}", (a - b) as f64 / 100.0 / el))
            .collect();
        eprintln!("  threads: {}", busy.join(" "));
    }
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.join();
    }
    let _ = cpu0;
    (bytes as f64 * 8.0 / el / 1e9, cpu)
}

/// KiB of resident memory per idle connection through the proxy.
fn memory(p: &Proxy, o: &Opts, held: &Arc<AtomicU64>) -> (f64, u64) {
    let pid = p.child.id();
    // settle, then the baseline
    thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid);
    let base = held.load(Ordering::Relaxed);
    let addr: SocketAddr = format!("{}:8200", p.kind.vip()).parse().unwrap();
    let mut conns = Vec::with_capacity(o.idle);
    for _ in 0..o.idle {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => conns.push(s),
            Err(e) => {
                eprintln!("memory: connect: {e}");
                break;
            }
        }
    }
    let t = Instant::now();
    while held.load(Ordering::Relaxed) - base < conns.len() as u64
        && t.elapsed() < Duration::from_secs(20)
    {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    let n = conns.len().max(1) as f64;
    drop(conns);
    ((after.saturating_sub(before)) as f64 / n, after)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let o = parse();
    raise_nofile();
    for p in [&o.ipvsd, &o.ipvsadm, &o.haproxy, &o.wrk] {
        assert!(Path::new(p).exists(), "{} missing", p.display());
    }
    println!(
        "userspace-bench: {} CPUs, load average at start {}, {} s per measurement, {} rounds, wrk -t2 -c{}, body {} B, {} idle connections",
        thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        o.seconds,
        o.rounds,
        o.conns,
        o.body,
        o.idle
    );
    http_servers(2, o.body);
    bulk_server();
    let held = Arc::new(AtomicU64::new(0));
    let kept = Arc::new(Mutex::new(Vec::new()));
    hold_server(held.clone(), kept.clone());
    let kinds = o.kinds.clone();
    let full = kinds.len() == 3;
    for &t in &o.threads {
        println!("\n== {t} worker thread(s)");
        let mut shorts: Vec<Vec<Short>> = kinds.iter().map(|_| vec![]).collect();
        let mut bulks: Vec<Vec<(f64, f64)>> = kinds.iter().map(|_| vec![]).collect();
        for round in 0..o.rounds {
            // Each round in another order, so that drift in the machine's load favours no one.
            let order: Vec<usize> = (0..kinds.len())
                .map(|i| (i + round) % kinds.len())
                .collect();
            for ki in order {
                let k = kinds[ki];
                let p = start(k, t, &o);
                thread::sleep(Duration::from_millis(300));
                let s = short(&p, &o);
                let requests = (s.rps * o.seconds as f64).max(1.0);
                println!(
                    "round {} {:<15} short: {:>9.0} req/s  p99 {:>7.2} ms  cpu {:.2}  \
                     waiting for a CPU {:.0} ms/s, per 1,000 requests {:.0} sleeps \
                     {:.0} preemptions  {}",
                    round + 1,
                    k.name(),
                    s.rps,
                    s.p99_ms,
                    s.cpu,
                    s.sched.wait_ns as f64 / 1e6 / o.seconds as f64,
                    s.sched.voluntary as f64 * 1000.0 / requests,
                    s.sched.involuntary as f64 * 1000.0 / requests,
                    s.errors
                );
                shorts[ki].push(s);
                if o.short_only {
                    continue;
                }
                // let TIME_WAIT sockets of the short run not skew the bulk run
                thread::sleep(Duration::from_millis(500));
                let b = bulk(&p, &o);
                println!(
                    "round {} {:<15} bulk:  {:>6.2} Gbit/s  cpu {:.2}",
                    round + 1,
                    k.name(),
                    b.0,
                    b.1
                );
                bulks[ki].push(b);
            }
        }
        let mut mem = vec![];
        for &k in kinds.iter().filter(|_| !o.short_only) {
            let p = start(k, t, &o);
            let m = memory(&p, &o, &held);
            drop(p);
            kept.lock().unwrap().clear();
            println!(
                "{:<15} memory: {:.2} KiB per open connection (VmRSS {} KiB with them)",
                k.name(),
                m.0,
                m.1
            );
            mem.push(m.0);
        }
        if !full {
            continue;
        }
        let rps: Vec<f64> = shorts
            .iter()
            .map(|v| median(v.iter().map(|s| s.rps).collect()))
            .collect();
        let p99: Vec<f64> = shorts
            .iter()
            .map(|v| median(v.iter().map(|s| s.p99_ms).collect()))
            .collect();
        if o.short_only {
            println!("\nmedians, {t} thread(s), short connections:");
            println!(
                "| req/s | {:.0} | {:.0} | {:.0} | {:.2} |",
                rps[0],
                rps[1],
                rps[2],
                rps[0] / rps[1].max(rps[2])
            );
            println!(
                "| p99 (ms) | {:.2} | {:.2} | {:.2} | {:.2} |",
                p99[0],
                p99[1],
                p99[2],
                p99[0] / p99[1].min(p99[2])
            );
            continue;
        }
        let gbps: Vec<f64> = bulks
            .iter()
            .map(|v| median(v.iter().map(|b| b.0).collect()))
            .collect();
        println!("\nmedians, {t} thread(s):");
        println!("| | ipvsd | haproxy | haproxy+splice | ipvsd / best haproxy |");
        println!("|---|---|---|---|---|");
        let best_rps = rps[1].max(rps[2]);
        let best_p99 = p99[1].min(p99[2]);
        let best_gbps = gbps[1].max(gbps[2]);
        let best_mem = mem[1].min(mem[2]);
        println!(
            "| short connections, req/s | {:.0} | {:.0} | {:.0} | {:.2} |",
            rps[0],
            rps[1],
            rps[2],
            rps[0] / best_rps
        );
        println!(
            "| short connections, p99 latency (ms) | {:.2} | {:.2} | {:.2} | {:.2} |",
            p99[0],
            p99[1],
            p99[2],
            p99[0] / best_p99
        );
        println!(
            "| bulk transfer, Gbit/s | {:.2} | {:.2} | {:.2} | {:.2} |",
            gbps[0],
            gbps[1],
            gbps[2],
            gbps[0] / best_gbps
        );
        println!(
            "| memory per open connection (KiB of VmRSS) | {:.2} | {:.2} | {:.2} | {:.2} |",
            mem[0],
            mem[1],
            mem[2],
            mem[0] / best_mem
        );
    }
    println!("\nload average at the end {}", loadavg());
}
