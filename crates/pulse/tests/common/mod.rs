//! A lab of network namespaces for pulse's tests: routers `a` (primary) and `b` (backup) and a
//! client `c`, each with an `eth0` on a bridge that lives in its own namespace `br`, optionally a
//! private heartbeat link `eth1` between `a` and `b`. Everything is created with unique names and
//! removed on drop (also when a test fails); processes started here are killed by pid.
//!
//! Addresses are documentation ranges, used only inside these namespaces: 192.0.2.0/24 on the
//! bridge (a .1, b .2, c .10, VIPs .100+), 198.51.100.0/24 on the private link.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The pulse binary: Cargo's for the tests; the benchmark sets `PULSE_BIN`.
pub fn pulse_bin() -> String {
    std::env::var("PULSE_BIN")
        .ok()
        .or(option_env!("CARGO_BIN_EXE_pulse").map(str::to_string))
        .unwrap_or_else(|| "pulse".to_string())
}

pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when namespaces can be made here (root, iproute2).
pub fn can_run() -> bool {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: needs iproute2 (ip)");
        return false;
    }
    true
}

/// Deletes namespaces of earlier test runs whose process is gone (a run killed mid-test).
fn sweep() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("prs") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 probes for existence.
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

pub struct Pulse {
    pub child: Child,
    pub log: PathBuf,
    pub ns: String,
    done: bool,
}

impl Pulse {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn count(&self, line: &str) -> usize {
        self.log_text().lines().filter(|l| l.contains(line)).count()
    }

    /// Waits until the log has `line` (a substring of a line), at most `within`.
    pub fn wait_for(&self, line: &str, within: Duration) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if self.log_text().lines().any(|l| l.contains(line)) {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "{}: no `{line}` within {within:?}; log:\n{}",
            self.ns,
            self.log_text()
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a process this test started.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        self.done = true;
    }

    /// SIGTERM and the exit status (bounded wait).
    pub fn terminate(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(15))
    }

    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                self.done = true;
                return st.code().unwrap_or(-1);
            }
            if t0.elapsed() > within {
                self.kill9();
                panic!("{} did not exit; log:\n{}", self.ns, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        if !self.done {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

pub struct Lab {
    pub prefix: String,
    created: Vec<String>,
    pub dir: tempfile::TempDir,
    /// One lab at a time per test binary: these tests time heartbeats of 0.1 s, and several labs
    /// of pulses at once on a loaded 2-core machine delayed heartbeats past deadtime (a test saw
    /// a restarted primary take over). Dropped last, after the namespaces are gone.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    pub fn new() -> Lab {
        // A test that panicked while holding the lock poisons it; the next lab still runs.
        let serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sweep();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Lab {
            prefix: format!("prs{}-{n}", std::process::id()),
            created: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            _serial: serial,
        }
    }

    pub fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    pub fn add_ns(&mut self, n: &str) -> String {
        let name = self.ns(n);
        ip(&["netns", "add", &name]);
        self.created.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Bridge namespace, routers a and b, client c; `private`: an a-b link for heartbeats.
    pub fn topology(&mut self, private: bool) {
        let br = self.add_ns("br");
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for (n, addr) in [
            ("a", "192.0.2.1/24"),
            ("b", "192.0.2.2/24"),
            ("c", "192.0.2.10/24"),
        ] {
            let ns = self.add_ns(n);
            let peer = format!("{n}0");
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &peer,
                "netns", &br,
            ]);
            ip(&["-n", &br, "link", "set", &peer, "master", "br0", "up"]);
            ip(&["-n", &ns, "addr", "add", addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        if private {
            let (a, b) = (self.ns("a"), self.ns("b"));
            ip(&[
                "link", "add", "eth1", "netns", &a, "type", "veth", "peer", "name", "eth1",
                "netns", &b,
            ]);
            ip(&["-n", &a, "addr", "add", "198.51.100.1/24", "dev", "eth1"]);
            ip(&["-n", &b, "addr", "add", "198.51.100.2/24", "dev", "eth1"]);
            ip(&["-n", &a, "link", "set", "eth1", "up"]);
            ip(&["-n", &b, "link", "set", "eth1", "up"]);
        }
        // Let IPv6 DAD and the bridge settle (the bridge forwards at once: no STP).
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Sets the bridge-side end of a router's cable up or down (a cable pulled).
    pub fn cable(&self, router: &str, up: bool) {
        ip(&[
            "-n",
            &self.ns("br"),
            "link",
            "set",
            &format!("{router}0"),
            if up { "up" } else { "down" },
        ]);
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    /// A stand-in lvsd: logs its arguments and signals to `NAME.log`, exits 0 on SIGTERM.
    pub fn fake_lvsd(&self, name: &str) -> PathBuf {
        let log = self.dir.path().join(format!("{name}.log"));
        let script = format!(
            "#!/bin/sh\necho \"start $$ $*\" >> {log}\ntrap 'echo \"TERM $$\" >> {log}; exit 0' TERM\n\
             trap 'echo \"HUP $$\" >> {log}' HUP\nwhile :; do sleep 0.05; done\n",
            log = log.display()
        );
        self.executable(name, &script)
    }

    pub fn executable(&self, name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(name);
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(script.as_bytes()).unwrap();
        drop(f);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Starts pulse in namespace `n` (foreground, log in `LOGNAME.log`).
    pub fn pulse(&self, n: &str, logname: &str, args: &[&str]) -> Pulse {
        let mut all = vec!["-n"];
        all.extend_from_slice(args);
        self.spawn(n, logname, &pulse_bin(), &all)
    }

    /// Starts `program ARGS` in namespace `n`, stdout and stderr in `LOGNAME.log`.
    pub fn spawn(&self, n: &str, logname: &str, program: &str, args: &[&str]) -> Pulse {
        let log = self.dir.path().join(format!("{logname}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let ns = self.ns(n);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, program])
            .args(args)
            // No status file for piranha-gui from tests (the default is /run/piranha).
            .env("PIRANHA_STATUS_DIR", "")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pulse");
        Pulse {
            child,
            log,
            ns,
            done: false,
        }
    }

    /// IPv4 addresses of `dev` in namespace `n`, as "ADDR/PREFIX LABEL".
    pub fn addrs(&self, n: &str, dev: &str) -> Vec<String> {
        let out = ip(&["-n", &self.ns(n), "-o", "-4", "addr", "show", "dev", dev]);
        out.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let i = w.iter().position(|x| *x == "inet")?;
                let label = w[i + 2..]
                    .iter()
                    .find(|x| x.starts_with(dev))
                    .map(|x| x.trim_end_matches('\\'))
                    .unwrap_or("");
                Some(format!("{} {}", w[i + 1], label))
            })
            .collect()
    }

    pub fn has_addr(&self, n: &str, addr: &str) -> bool {
        self.addrs(n, "eth0").iter().any(|a| a.starts_with(addr))
    }

    /// Waits until `pred` holds, at most `within`; panics with `what` otherwise.
    pub fn wait_until(&self, what: &str, within: Duration, mut pred: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if pred() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("not within {within:?}: {what}");
    }

    pub fn mac(&self, n: &str, dev: &str) -> [u8; 6] {
        let out = ip(&["-n", &self.ns(n), "-o", "link", "show", "dev", dev]);
        let w: Vec<&str> = out.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "link/ether").expect("ether");
        let mut m = [0u8; 6];
        for (k, part) in w[i + 1].split(':').enumerate() {
            m[k] = u8::from_str_radix(part, 16).unwrap();
        }
        m
    }

    /// The client's ARP entry for `addr`, as a MAC.
    pub fn neigh(&self, n: &str, addr: &str) -> Option<[u8; 6]> {
        let out = ip(&["-n", &self.ns(n), "neigh", "show", addr]);
        let w: Vec<&str> = out.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "lladdr")?;
        let mut m = [0u8; 6];
        for (k, part) in w[i + 1].split(':').enumerate() {
            m[k] = u8::from_str_radix(part, 16).ok()?;
        }
        Some(m)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread with a namespace descriptor.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

/// Starts capturing ARP frames on `dev` in `ns` for `secs`; join the handle for the frames.
pub fn capture_arp(ns: &str, dev: &str, for_: Duration) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    let path = format!("/var/run/netns/{ns}");
    let dev = dev.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let proto = (libc::ETH_P_ARP as u16).to_be() as i32;
        // SAFETY: socket/bind/recv with valid arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
        assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
        let name = CString::new(dev).unwrap();
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto as u16;
        sa.sll_ifindex = index as i32;
        unsafe {
            libc::bind(
                fd,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        ready_tx.send(()).unwrap();
        let t0 = Instant::now();
        let mut frames = Vec::new();
        let mut buf = [0u8; 2048];
        while t0.elapsed() < for_ {
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                frames.push(buf[..n as usize].to_vec());
            }
        }
        unsafe { libc::close(fd) };
        frames
    });
    ready_rx.recv().unwrap();
    h
}

/// lvs.cf for the lab. `extra` is appended to the global part.
pub fn config(keepalive: &str, deadtime: &str, extra: &str, vips: &[(&str, &str)]) -> String {
    let mut s = format!(
        "primary = 192.0.2.1\nbackup = 192.0.2.2\nbackup_active = 1\nkeepalive = {keepalive}\n\
         deadtime = {deadtime}\nnetwork = direct\n{extra}"
    );
    for (i, (vip, dev)) in vips.iter().enumerate() {
        s.push_str(&format!(
            "virtual vs{i} {{\n     active = 1\n     address = {vip} {dev}\n     vip_nmask = 255.255.255.0\n     port = 80\n     server r1 {{\n         address = 192.0.2.50\n         active = 1\n     }}\n}}\n"
        ));
    }
    s
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
