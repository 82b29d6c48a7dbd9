//! nanny benchmark (issue 4): N nanny processes checking N loopback HTTP servers every second.
//!
//! Built as the `nanny-bench` example of the nanny crate; run it through
//! `integration-tests/bench/nanny-bench.sh`, which also builds Piranha's C nanny to compare.
//!
//! One process of this program is every HTTP server (N listening sockets on 127.0.0.1, epoll,
//! each connection answered `HTTP/1.0 200 OK` once the request arrives) and the lvsd side of the
//! report pipes. For each implementation it:
//! 1. starts N nannies with lvsd's argument vector (`-c -h 127.0.0.1 -p 80 -r PORT -s "GET /
//!    HTTP/1.0\r\n\r\n" -x HTTP -a 15 -I … -t 1 -w 1 -V … -M m --lvs`): ours in report mode
//!    (`NANNY_REPORT_FD`, what lvsd uses), Piranha's in legacy mode with `--test-start` (it never
//!    runs ipvsadm) and `--nodaemon` (its log on a pipe, for the `[ active ]`/`[inactive]`
//!    markers);
//! 2. waits until every server is reported up, then lets things settle;
//! 3. measures the CPU time of all nannies over the window from /proc/PID/schedstat (first
//!    field, ns), and the connections served;
//! 4. reads each nanny's Pss from /proc/PID/smaps_rollup;
//! 5. stops K servers one at a time, at varied moments, and times how long each nanny takes to
//!    report its server down (target: within the timeout + 100 ms);
//! 6. terminates the nannies.
//!
//! Everything is bounded: each phase has a deadline, and the nannies die with this process
//! (PR_SET_PDEATHSIG).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nanny::report::{LineDecoder, Report};

const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
const KIND_LISTEN: u64 = 1;
const KIND_CONN: u64 = 2;
const KIND_PIPE: u64 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    /// This nanny, report mode.
    Ours,
    /// Piranha's C nanny, legacy mode with --test-start.
    Piranha,
}

struct Opts {
    nannies: usize,
    seconds: u64,
    kills: usize,
    ours: OsString,
    piranha: Option<OsString>,
    ipvsadm: OsString,
}

fn usage() -> ! {
    eprintln!(
        "usage: nanny-bench [--nannies N] [--seconds S] [--kills K] [--nanny PATH] \
         [--piranha-nanny PATH] [--ipvsadm PATH]"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        nannies: 1000,
        seconds: 60,
        kills: 8,
        ours: "target/release/nanny".into(),
        piranha: None,
        ipvsadm: "/bin/true".into(),
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        let num = |v: OsString| -> u64 {
            v.to_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.to_str().unwrap_or("") {
            "--nannies" => o.nannies = num(val()) as usize,
            "--seconds" => o.seconds = num(val()),
            "--kills" => o.kills = num(val()) as usize,
            "--nanny" => o.ours = val(),
            "--piranha-nanny" => o.piranha = Some(val()),
            "--ipvsadm" => o.ipvsadm = val(),
            _ => usage(),
        }
    }
    if o.nannies == 0 || o.kills > o.nannies {
        usage();
    }
    o
}

fn raise_nofile() {
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

fn cvt(r: i32) -> io::Result<i32> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A listening TCP socket on 127.0.0.1, ephemeral port.
fn listener() -> io::Result<(OwnedFd, u16)> {
    // SAFETY: plain socket calls on a fresh descriptor and local structs.
    unsafe {
        let fd = cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            4,
        );
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        cvt(libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        ))?;
        cvt(libc::listen(fd.as_raw_fd(), 1024))?;
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        cvt(libc::getsockname(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_in).cast(),
            &mut len,
        ))?;
        Ok((fd, u16::from_be(sa.sin_port)))
    }
}

struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> Epoll {
        // SAFETY: a fresh descriptor.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(fd >= 0, "epoll_create1");
        Epoll(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn add(&self, fd: RawFd, kind: u64, idx: u64) {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: kind << 32 | idx,
        };
        // SAFETY: epoll_ctl with a valid event struct.
        unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    }

    fn del(&self, fd: RawFd) {
        // SAFETY: as above (the event is ignored for DEL).
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }
}

/// One nanny and what it has said.
struct Watched {
    child: Child,
    pipe: Option<OwnedFd>,
    decoder: LineDecoder,
    up: bool,
    down_at: Option<Instant>,
}

struct Bench {
    ep: Epoll,
    listeners: Vec<Option<OwnedFd>>,
    ports: Vec<u16>,
    served: Vec<u64>,
    nannies: Vec<Watched>,
    imp: Impl,
}

impl Bench {
    /// Serves connections and reads pipes until `until`, or until `stop` says so.
    fn serve(&mut self, until: Instant, mut stop: impl FnMut(&Bench) -> bool) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
        let mut buf = [0u8; 4096];
        loop {
            if stop(self) {
                return;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            let ms = (until - now).as_millis().min(100) as i32;
            // SAFETY: epoll_wait into our events buffer.
            let n = unsafe {
                libc::epoll_wait(
                    self.ep.0.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    ms.max(1),
                )
            };
            for ev in events.iter().take(n.max(0) as usize) {
                let kind = ev.u64 >> 32;
                let idx = (ev.u64 & 0xffff_ffff) as usize;
                match kind {
                    KIND_LISTEN => self.accept_all(idx),
                    KIND_CONN => {
                        let fd = idx as RawFd;
                        // SAFETY: read/write/close on a connection descriptor we own.
                        unsafe {
                            let r = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                            if r > 0 {
                                libc::write(fd, RESPONSE.as_ptr().cast(), RESPONSE.len());
                            }
                            // Answered, closed by the peer, or failed: done with it.
                            if r >= 0
                                || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
                            {
                                libc::close(fd);
                            }
                        }
                    }
                    KIND_PIPE => self.read_pipe(idx, &mut buf),
                    _ => {}
                }
            }
        }
    }

    fn accept_all(&mut self, idx: usize) {
        let Some(l) = self.listeners.get(idx).and_then(|l| l.as_ref()) else {
            return;
        };
        loop {
            // SAFETY: accept4 on our listener.
            let fd = unsafe {
                libc::accept4(
                    l.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            self.served[idx] += 1;
            self.ep.add(fd, KIND_CONN, fd as u64);
        }
    }

    fn read_pipe(&mut self, idx: usize, buf: &mut [u8]) {
        let imp = self.imp;
        let w = &mut self.nannies[idx];
        let Some(p) = &w.pipe else { return };
        // SAFETY: read from our pipe end.
        let r = unsafe { libc::read(p.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            if r == 0 {
                self.ep.del(p.as_raw_fd());
                w.pipe = None;
            }
            return;
        }
        let data = &buf[..r as usize];
        match imp {
            Impl::Ours => {
                for rep in w.decoder.push(data) {
                    match rep {
                        Ok(Report::Up { .. }) => w.up = true,
                        Ok(Report::Down { .. }) => {
                            w.up = false;
                            w.down_at.get_or_insert_with(Instant::now);
                        }
                        _ => {}
                    }
                }
            }
            Impl::Piranha => {
                // Log lines: "nanny: [ active ] making …", "nanny: [inactive] shutting down …".
                let text = String::from_utf8_lossy(data);
                if text.contains("[ active ]") {
                    w.up = true;
                }
                if text.contains("[inactive]") {
                    w.up = false;
                    w.down_at.get_or_insert_with(Instant::now);
                }
            }
        }
    }
}

fn spawn(o: &Opts, imp: Impl, port: u16) -> io::Result<(Child, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we own.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = w.as_raw_fd();
    let bin = match imp {
        Impl::Ours => &o.ours,
        Impl::Piranha => o.piranha.as_ref().expect("no Piranha nanny"),
    };
    let mut cmd = Command::new(bin);
    cmd.args(["-c", "-h", "127.0.0.1", "-p", "80", "-r"])
        .arg(port.to_string())
        .args([
            "-s",
            "GET / HTTP/1.0\\r\\n\\r\\n",
            "-x",
            "HTTP",
            "-a",
            "15",
            "-I",
        ])
        .arg(&o.ipvsadm)
        .args(["-t", "1", "-w", "1", "-V", "10.255.0.1", "-M", "m"]);
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    match imp {
        Impl::Ours => {
            cmd.arg("--lvs")
                .env("NANNY_REPORT_FD", wfd.to_string())
                .stdout(Stdio::null());
            // SAFETY: async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::fcntl(wfd, libc::F_SETFD, 0);
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        Impl::Piranha => {
            cmd.args(["--test-start", "--nodaemon", "--lvs"])
                .env_remove("NANNY_REPORT_FD")
                .stdout(Stdio::from(w.try_clone()?));
            // SAFETY: as above.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
    }
    let child = cmd.spawn()?;
    drop(w);
    // SAFETY: our read end.
    unsafe {
        let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok((child, r))
}

fn schedstat_ns(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn pss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Figures {
    started: usize,
    cpu_pct: f64,
    window_s: f64,
    checks_per_s: f64,
    pss_mean: f64,
    pss_max: u64,
    pss_min: u64,
    down_ms: Vec<u64>,
    missed_downs: usize,
}

/// A small deterministic generator for the kill moments.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn run(o: &Opts, imp: Impl) -> Figures {
    let ep = Epoll::new();
    let mut listeners = Vec::with_capacity(o.nannies);
    let mut ports = Vec::with_capacity(o.nannies);
    for i in 0..o.nannies {
        let (fd, port) = listener().expect("listen on 127.0.0.1");
        ep.add(fd.as_raw_fd(), KIND_LISTEN, i as u64);
        listeners.push(Some(fd));
        ports.push(port);
    }
    let mut b = Bench {
        ep,
        listeners,
        served: vec![0; o.nannies],
        ports,
        nannies: Vec::with_capacity(o.nannies),
        imp,
    };
    eprintln!("[{imp:?}] starting {} nannies", o.nannies);
    for i in 0..o.nannies {
        let (child, pipe) = spawn(o, imp, b.ports[i]).expect("spawn nanny");
        b.ep.add(pipe.as_raw_fd(), KIND_PIPE, i as u64);
        b.nannies.push(Watched {
            child,
            pipe: Some(pipe),
            decoder: LineDecoder::new(),
            up: false,
            down_at: None,
        });
        if i % 50 == 49 {
            // Keep serving while spawning so early nannies are not failed by a backlog.
            b.serve(Instant::now() + Duration::from_millis(1), |_| false);
        }
    }
    let t_up = Instant::now();
    b.serve(Instant::now() + Duration::from_secs(120), |b| {
        b.nannies.iter().all(|w| w.up)
    });
    let up = b.nannies.iter().filter(|w| w.up).count();
    eprintln!(
        "[{imp:?}] {up}/{} up after {:.1} s; settling",
        o.nannies,
        t_up.elapsed().as_secs_f64()
    );
    b.serve(Instant::now() + Duration::from_secs(3), |_| false);

    // CPU window.
    let pids: Vec<u32> = b.nannies.iter().map(|w| w.child.id()).collect();
    let before: Vec<Option<u64>> = pids.iter().map(|&p| schedstat_ns(p)).collect();
    let served0: u64 = b.served.iter().sum();
    let t0 = Instant::now();
    eprintln!("[{imp:?}] measuring for {} s", o.seconds);
    b.serve(t0 + Duration::from_secs(o.seconds), |_| false);
    let after: Vec<Option<u64>> = pids.iter().map(|&p| schedstat_ns(p)).collect();
    let window = t0.elapsed().as_secs_f64();
    let served1: u64 = b.served.iter().sum();
    let cpu_ns: u64 = before
        .iter()
        .zip(&after)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(*a),
            _ => 0,
        })
        .sum();
    let cpu_pct = cpu_ns as f64 / 1e9 / window * 100.0;

    let pss: Vec<u64> = pids.iter().filter_map(|&p| pss_kib(p)).collect();
    let pss_mean = pss.iter().sum::<u64>() as f64 / pss.len().max(1) as f64;
    let pss_max = pss.iter().copied().max().unwrap_or(0);
    let pss_min = pss.iter().copied().min().unwrap_or(0);

    // Down detection: stop servers one by one at varied moments.
    let mut rng = Lcg(42);
    let mut down_ms = Vec::new();
    let mut missed = 0;
    let mut stopped: HashMap<usize, Instant> = HashMap::new();
    for k in 0..o.kills {
        let idx = (k * o.nannies / o.kills.max(1) + 7) % o.nannies;
        let jitter = Duration::from_millis(rng.next() % 1000);
        b.serve(Instant::now() + jitter, |_| false);
        if let Some(l) = b.listeners[idx].take() {
            b.ep.del(l.as_raw_fd());
            drop(l);
        }
        let at = Instant::now();
        stopped.insert(idx, at);
        b.serve(at + Duration::from_secs(5), |b| {
            b.nannies[idx].down_at.is_some()
        });
        match b.nannies[idx].down_at {
            Some(d) if d >= at => down_ms.push((d - at).as_millis() as u64),
            _ => missed += 1,
        }
    }

    eprintln!("[{imp:?}] stopping the nannies");
    for w in &b.nannies {
        // SAFETY: signalling our children.
        unsafe { libc::kill(w.child.id() as i32, libc::SIGTERM) };
    }
    let end = Instant::now() + Duration::from_secs(20);
    for w in &mut b.nannies {
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= end => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
    Figures {
        started: up,
        cpu_pct,
        window_s: window,
        checks_per_s: (served1 - served0) as f64 / window,
        pss_mean,
        pss_max,
        pss_min,
        down_ms,
        missed_downs: missed,
    }
}

fn report(o: &Opts, imp: Impl, f: &Figures) {
    let mut d = f.down_ms.clone();
    d.sort_unstable();
    let name = match imp {
        Impl::Ours => "piranha-rs nanny (report mode)",
        Impl::Piranha => "Piranha 0.8.6 C nanny (legacy, --test-start)",
    };
    println!("{name}");
    println!("  nannies up:            {}/{}", f.started, o.nannies);
    println!(
        "  checks served:         {:.0}/s over {:.1} s",
        f.checks_per_s, f.window_s
    );
    println!(
        "  CPU, all nannies:      {:.2}% of one core ({:.1} us per check)",
        f.cpu_pct,
        f.cpu_pct / 100.0 * 1e6 / f.checks_per_s.max(1.0)
    );
    println!(
        "  Pss per nanny:         mean {:.0} KiB, min {} KiB, max {} KiB",
        f.pss_mean, f.pss_min, f.pss_max
    );
    println!(
        "  down reported after:   {} (ms; {} missed)",
        d.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        f.missed_downs
    );
}

fn main() {
    let o = parse_opts();
    raise_nofile();
    let host = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "nanny benchmark: {} nannies x 1 loopback HTTP server each, -t 1, send/expect, {} s window; \
         {} CPUs; loadavg before: {}",
        o.nannies,
        o.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        host.trim()
    );
    let ours = run(&o, Impl::Ours);
    report(&o, Impl::Ours, &ours);
    let mut ok = ours.started == o.nannies
        && ours.cpu_pct < 15.0
        && ours.pss_max <= 200
        && ours.missed_downs == 0
        && ours.down_ms.iter().all(|&d| d <= 1100);
    if o.piranha.is_some() {
        let c = run(&o, Impl::Piranha);
        report(&o, Impl::Piranha, &c);
        println!(
            "ratio Piranha/ours:      CPU {:.1}x, Pss {:.2}x",
            c.cpu_pct / ours.cpu_pct.max(1e-9),
            c.pss_mean / ours.pss_mean.max(1e-9)
        );
        ok &= c.started > 0;
    }
    println!(
        "targets (CPU < 15% of one core, Pss <= 200 KiB each, down within 1100 ms): {}",
        if ok { "met" } else { "NOT MET" }
    );
    std::process::exit(if ok { 0 } else { 1 });
}
