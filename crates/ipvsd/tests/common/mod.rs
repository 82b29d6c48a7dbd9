//! Helpers of the end-to-end tests: an `ipvsd` on a temporary control socket, our `ipvsadm`
//! pointed at it, real servers and clients on loopback addresses.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Our ipvsadm: `$IPVSADM`, else built (incrementally) with cargo for this test run.
pub fn ipvsadm_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("IPVSADM") {
            return PathBuf::from(p);
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "ipvsadm", "--bin", "ipvsadm"])
            .current_dir(manifest)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building ipvsadm failed");
        // target/debug/deps/e2e-xxxx -> target/debug/ipvsadm
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap();
        let bin = dir.join("ipvsadm");
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
    .clone()
}

pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// A running ipvsd; killed when dropped.
pub struct Ipvsd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Ipvsd {
    pub fn start() -> Ipvsd {
        Self::start_with(&["--threads", "2"])
    }

    pub fn start_with(args: &[&str]) -> Ipvsd {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ipvsd.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_ipvsd"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ipvsd starts");
        let d = Ipvsd { dir, socket, child };
        assert!(
            wait_until(Duration::from_secs(10), || d.socket.exists()),
            "ipvsd did not create its socket"
        );
        d
    }

    pub fn ipvsadm(&self, line: &str) -> Out {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.ipvsadm_args(&args, "")
    }

    pub fn ipvsadm_args(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = Command::new(ipvsadm_bin())
            .args(args)
            .env("IPVS_BACKEND", "userspace")
            .env("IPVSD_SOCKET", &self.socket)
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ipvsadm runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        Out {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code().unwrap_or(-1),
        }
    }

    /// Runs an ipvsadm command that must succeed.
    pub fn ok(&self, line: &str) -> String {
        let o = self.ipvsadm(line);
        assert_eq!(o.code, 0, "ipvsadm {line}: {}", o.stderr);
        o.stdout
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `(ActiveConn, InActConn)` of a destination in `-Ln`.
    pub fn counts(&self, service: &str, dest: &str) -> (u32, u32) {
        let out = self.ok(&format!("-Ln {service}"));
        for line in out.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() >= 6 && w[0] == "->" && w[1] == dest {
                return (w[4].parse().unwrap(), w[5].parse().unwrap());
            }
        }
        panic!("{dest} not in {out}");
    }
}

impl Drop for Ipvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A port free on `ip` right now.
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port for both TCP and UDP.
pub fn free_udp_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a real server treats a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads a line, answers its name, closes.
    Name,
    /// Answers its name at once and keeps the connection until the client closes.
    Hold,
    /// Echoes everything until the client's end of file, then closes.
    Echo,
}

/// A TCP real server in a thread.
pub struct RealServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub accepted: Arc<Mutex<Vec<SocketAddr>>>,
}

impl RealServer {
    pub fn start(ip: &str, name: &str, mode: Mode) -> RealServer {
        let l = TcpListener::bind((ip, 0)).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (st, acc, name) = (stop.clone(), accepted.clone(), name.to_string());
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        acc.lock().unwrap().push(peer);
                        s.set_nonblocking(false).unwrap();
                        let name = name.clone();
                        thread::spawn(move || serve(&mut s, &name, mode));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RealServer {
            addr,
            stop,
            accepted,
        }
    }

    pub fn dest(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(s: &mut TcpStream, name: &str, mode: Mode) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    match mode {
        Mode::Name => {
            let mut b = [0u8; 256];
            let _ = s.read(&mut b);
            let _ = s.write_all(format!("{name}\n").as_bytes());
        }
        Mode::Hold => {
            let _ = s.write_all(format!("{name}\n").as_bytes());
            let mut b = [0u8; 256];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        }
        Mode::Echo => {
            let mut b = vec![0u8; 65536];
            loop {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// A UDP real server answering `NAME:payload`.
pub fn udp_server(ip: &str, name: &str) -> SocketAddr {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    let addr = s.local_addr().unwrap();
    let name = name.to_string();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, peer)) = s.recv_from(&mut b) {
            let mut r = format!("{name}:").into_bytes();
            r.extend_from_slice(&b[..n]);
            let _ = s.send_to(&r, peer);
        }
    });
    addr
}

/// A TCP connection from `src` (an address of this machine, port chosen by the kernel).
pub fn connect_from(src: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let src: Ipv4Addr = src.parse().unwrap();
    let IpAddr::V4(dst) = to.ip() else {
        unreachable!()
    };
    // SAFETY: plain socket calls on a descriptor owned by the TcpStream at the end.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let stream = TcpStream::from_raw_fd(fd);
        let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let a = sin(src, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let b = sin(dst, to.port());
        if libc::connect(fd, &b as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// One request through the virtual service: the real server's name.
pub fn ask(vip: SocketAddr) -> String {
    ask_from("127.0.0.1", vip)
}

pub fn ask_from(src: &str, vip: SocketAddr) -> String {
    let mut s = connect_from(src, vip).expect("connect to the virtual service");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A reset (no destination, a refusing real server) reads as an empty answer.
    if s.write_all(b"GET\n").is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.trim().to_string()
}

/// A connection held open: the name of its real server and the stream.
pub fn hold(vip: SocketAddr) -> (String, TcpStream) {
    let mut s = TcpStream::connect(vip).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        let n = s.read(&mut b).expect("a name");
        assert!(n > 0, "closed before the name");
        got.extend_from_slice(&b[..n]);
    }
    (String::from_utf8_lossy(&got).trim().to_string(), s)
}
