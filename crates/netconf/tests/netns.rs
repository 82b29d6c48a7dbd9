//! netconf against the kernel, in network namespaces made for each test (needs root; skipped
//! otherwise). Addresses are documentation ranges inside those namespaces only.

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use netconf::{AddOutcome, FloatingAddress, LinkMonitor, Mac, Rtnl, PULSE_ADDRESS_PROTOCOL};

static N: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Ns(Vec<String>);

impl Ns {
    fn new(names: &[&str]) -> Option<Ns> {
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return None;
        }
        let n = N.fetch_add(1, Ordering::SeqCst);
        let mut v = Vec::new();
        for name in names {
            let full = format!("nc{}-{n}-{name}", std::process::id());
            ip(&["netns", "add", &full]);
            v.push(full);
        }
        Some(Ns(v))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn addresses_with_labels_are_added_and_removed_alone() {
    let Some(ns) = Ns::new(&["x"]) else { return };
    let x = ns.0[0].clone();
    ip(&[
        "-n", &x, "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
    ]);
    ip(&["-n", &x, "link", "set", "dum1", "up"]);
    ip(&["-n", &x, "link", "set", "dum0", "up"]);
    ip(&["-n", &x, "addr", "add", "192.0.2.1/24", "dev", "dum0"]);
    in_ns(&x, || {
        let mut r = Rtnl::open().unwrap();
        let link = r.link("dum0").unwrap().expect("dum0");
        assert!(link.up && link.has_link());
        assert!(link.mac.is_some());
        let vip = FloatingAddress::new(ip4("192.0.2.100"), "dum0:1", None).unwrap();
        assert_eq!(
            r.add_address(link.index, &vip, PULSE_ADDRESS_PROTOCOL)
                .unwrap(),
            AddOutcome::Added
        );
        assert_eq!(
            r.add_address(link.index, &vip, PULSE_ADDRESS_PROTOCOL)
                .unwrap(),
            AddOutcome::AlreadyPresent
        );
        let other =
            FloatingAddress::new(ip4("10.1.2.3"), "dum0:22", Some(ip4("255.255.255.255"))).unwrap();
        r.add_address(link.index, &other, PULSE_ADDRESS_PROTOCOL)
            .unwrap();
        let addrs = r.addresses().unwrap();
        let e = addrs.iter().find(|a| a.address == vip.address).unwrap();
        assert_eq!(e.label, "dum0:1");
        assert_eq!(e.prefix_len, 24);
        assert_eq!(e.broadcast, Some(ip4("192.0.2.255")));
        assert_eq!(e.protocol, Some(PULSE_ADDRESS_PROTOCOL));
        let e = addrs.iter().find(|a| a.address == other.address).unwrap();
        assert_eq!((e.prefix_len, e.broadcast), (32, None));
        assert_eq!(
            netconf::rtnl::link_holding(&r.links().unwrap(), &addrs, vip.address)
                .map(|l| l.name.clone()),
            Some("dum0".into())
        );
        assert!(r
            .del_address(link.index, vip.address, vip.prefix_len)
            .unwrap());
        assert!(!r
            .del_address(link.index, vip.address, vip.prefix_len)
            .unwrap());
        // An unknown interface is an error, not a panic.
        assert!(r.add_address(9999, &vip, PULSE_ADDRESS_PROTOCOL).is_err());
    });
    // The interface and its own address are untouched.
    let out = ip(&["-n", &x, "-o", "-4", "addr", "show", "dev", "dum0"]);
    assert!(out.contains("192.0.2.1/24"), "{out}");
    assert!(!out.contains("192.0.2.100"), "{out}");
    assert!(out.contains("10.1.2.3/32"), "{out}");
    assert!(ip(&["-n", &x, "link", "show", "dum0"]).contains("UP"));
}

#[test]
fn link_state_and_change_notifications() {
    let Some(ns) = Ns::new(&["x", "y"]) else {
        return;
    };
    let (x, y) = (ns.0[0].clone(), ns.0[1].clone());
    ip(&[
        "link", "add", "v0", "netns", &x, "type", "veth", "peer", "name", "v1", "netns", &y,
    ]);
    ip(&["-n", &x, "link", "set", "v0", "up"]);
    ip(&["-n", &y, "link", "set", "v1", "up"]);
    let xs = x.clone();
    let ys = y.clone();
    in_ns(&x, move || {
        let mut r = Rtnl::open().unwrap();
        let mut m = LinkMonitor::open().unwrap();
        let wait = |r: &mut Rtnl, m: &mut LinkMonitor, want: bool| {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                let mut p = libc::pollfd {
                    fd: m.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd.
                unsafe { libc::poll(&mut p, 1, 100) };
                m.drain();
                if r.link("v0").unwrap().unwrap().has_link() == want {
                    return;
                }
            }
            panic!("link never became {want}");
        };
        wait(&mut r, &mut m, true);
        // The cable pulled at the far end: carrier lost, the interface still up.
        ip(&["-n", &ys, "link", "set", "v1", "down"]);
        wait(&mut r, &mut m, false);
        let l = r.link("v0").unwrap().unwrap();
        assert!(l.up && !l.lower_up);
        ip(&["-n", &ys, "link", "set", "v1", "up"]);
        wait(&mut r, &mut m, true);
        // Administratively down.
        ip(&["-n", &xs, "link", "set", "v0", "down"]);
        wait(&mut r, &mut m, false);
        assert!(!r.link("v0").unwrap().unwrap().up);
    });
}

/// send_arp's frame, captured on the other end of a veth pair.
#[test]
fn send_arp_binary_sends_piranhas_frame() {
    let Some(ns) = Ns::new(&["x", "y"]) else {
        return;
    };
    let (x, y) = (ns.0[0].clone(), ns.0[1].clone());
    ip(&[
        "link", "add", "v0", "netns", &x, "type", "veth", "peer", "name", "v1", "netns", &y,
    ]);
    ip(&["-n", &x, "link", "set", "v0", "up"]);
    ip(&["-n", &y, "link", "set", "v1", "up"]);
    let yc = y.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        in_ns(&yc, move || {
            let proto = (libc::ETH_P_ARP as u16).to_be() as i32;
            // SAFETY: socket, option and recv calls with valid arguments.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
            assert!(fd >= 0);
            let tv = libc::timeval {
                tv_sec: 3,
                tv_usec: 0,
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
            tx.send(()).unwrap();
            let mut out = Vec::new();
            let mut buf = [0u8; 256];
            for _ in 0..2 {
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    out.push(buf[..n as usize].to_vec());
                }
            }
            unsafe { libc::close(fd) };
            out
        })
    });
    rx.recv().unwrap();
    let bin = env!("CARGO_BIN_EXE_send_arp");
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &x, bin])
            .args(args)
            .output()
            .unwrap()
    };
    // pulse's call: send_arp -i DEV VIP OWNMAC BCAST ffffffffffff
    let out = run(&[
        "-i",
        "v0:1",
        "192.0.2.100",
        "02:00:00:00:00:01",
        "192.0.2.255",
        "ffffffffffff",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A unicast target, a host-name-free numeric form inet_aton accepts (10.2 = 10.0.0.2).
    let out = run(&[
        "-i",
        "v0",
        "10.2",
        "020000000001",
        "ignored",
        "0a:0b:0c:0d:0e:0f",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = cap.join().unwrap();
    assert_eq!(frames.len(), 2);
    let mac = Mac([2, 0, 0, 0, 0, 1]);
    assert_eq!(
        frames[0],
        netconf::arp::gratuitous_frame(ip4("192.0.2.100"), mac).to_vec()
    );
    assert_eq!(
        frames[1],
        netconf::arp::send_arp_frame(ip4("10.0.0.2"), mac, Mac([10, 11, 12, 13, 14, 15])).to_vec()
    );
    // Errors: exit 1 with send_arp's messages.
    let out = run(&["-i", "v0", "192.0.2.1", "zz0000000001", "x", "ffffffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Invalid hardware address\n"
    );
    let out = run(&[
        "-i",
        "nosuchdev",
        "192.0.2.1",
        "020000000001",
        "x",
        "ffffffffffff",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sendto: No such device\n"
    );
    let out = run(&["192.0.2.1", "020000000001", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: send_arp [-i dev]"));
    let out = run(&["-x", "v0", "192.0.2.1", "020000000001", "x", "ffffffffffff"]);
    assert_eq!(out.status.code(), Some(1));
}
