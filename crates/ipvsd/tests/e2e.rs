//! ipvsd end to end on loopback: started on a temporary control socket, programmed with our
//! ipvsadm (IPVS_BACKEND=userspace, IPVSD_SOCKET), real servers on 127.0.0.x, clients through
//! the virtual service on 127.0.1.x.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

fn vip(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), free_port(ip))
}

#[test]
fn rr_distribution_listings_and_connections() {
    let d = Ipvsd::start();
    let rs: Vec<RealServer> = (1..=3)
        .map(|i| RealServer::start("127.0.0.2", &format!("rs{i}"), Mode::Name))
        .collect();
    let v = vip("127.0.1.1");
    d.ok(&format!("-A -t {v} -s rr"));
    for r in &rs {
        d.ok(&format!("-a -t {v} -r {} -m", r.dest()));
    }
    let names: Vec<String> = (0..9).map(|_| ask(v)).collect();
    // The kernel's list is newest first: rs3, rs2, rs1, ...
    assert_eq!(
        names,
        ["rs3", "rs2", "rs1", "rs3", "rs2", "rs1", "rs3", "rs2", "rs1"]
    );
    // Closed connections stay as inactive entries (TIME_WAIT), as in the kernel.
    for r in &rs {
        let dest = r.dest();
        assert!(
            wait_until(Duration::from_secs(5), || d
                .counts(&format!("-t {v}"), &dest)
                == (0, 3)),
            "{:?}",
            d.counts(&format!("-t {v}"), &dest)
        );
    }
    let out = d.ok("-Ln");
    assert!(out.starts_with(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    ));
    assert!(out.contains(&format!("TCP  {v} rr\n")), "{out}");
    assert!(
        out.contains(&format!(
            "  -> {:<28} Masq    1      0          3         \n",
            rs[0].dest()
        )),
        "{out}"
    );
    let stats = d.ok("-Ln --stats");
    let svc_line = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(svc_line[2], "9", "{stats}");
    let inpkts: u64 = svc_line[3].parse().unwrap();
    let inbytes: u64 = svc_line[5].parse().unwrap();
    assert!(inpkts >= 9 * 3, "{stats}");
    assert!(inbytes >= 9 * (4 + 3 * 40), "{stats}");
    let conns = d.ok("-Lnc");
    assert!(conns.starts_with(
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    ));
    let tw: Vec<&str> = conns.lines().filter(|l| l.contains("TIME_WAIT")).collect();
    assert_eq!(tw.len(), 9, "{conns}");
    assert!(tw[0].starts_with("TCP 01:5"), "{conns}");
    assert!(tw.iter().all(|l| l.contains(&v.to_string())));
    // Each real server saw the connections from the director, not from the client.
    assert_eq!(rs[0].accepted.lock().unwrap().len(), 3);
}

#[test]
fn wrr_weights_quiesce_and_edit() {
    let d = Ipvsd::start();
    let a = RealServer::start("127.0.0.3", "a", Mode::Name);
    let b = RealServer::start("127.0.0.3", "b", Mode::Name);
    let v = vip("127.0.1.2");
    d.ok(&format!("-A -t {v} -s wrr"));
    d.ok(&format!("-a -t {v} -r {} -m -w 3", a.dest()));
    d.ok(&format!("-a -t {v} -r {} -m -w 1", b.dest()));
    let seq: Vec<String> = (0..8).map(|_| ask(v)).collect();
    // The kernel's wrr, with its state carried over from the first destination's addition:
    // the current weight is still 1 when b arrives, so b comes first.
    assert_eq!(seq, ["b", "a", "a", "a", "b", "a", "a", "a"]);
    // Weight 0: no new connections.
    d.ok(&format!("-e -t {v} -r {} -m -w 0", a.dest()));
    let seq: Vec<String> = (0..4).map(|_| ask(v)).collect();
    assert_eq!(seq, ["b", "b", "b", "b"]);
    // Every real server quiesced: connections are refused (reset).
    d.ok(&format!("-e -t {v} -r {} -m -w 0", b.dest()));
    assert_eq!(ask(v), "");
    d.ok(&format!("-e -t {v} -r {} -m -w 1", b.dest()));
    assert_eq!(ask(v), "b");
    // Changing the scheduler keeps the table.
    d.ok(&format!("-E -t {v} -s rr"));
    assert!(d.ok("-Ln").contains(&format!("TCP  {v} rr\n")));
    assert_eq!(ask(v), "b");
}

#[test]
fn thresholds_overload_and_recover() {
    let d = Ipvsd::start();
    let a = RealServer::start("127.0.0.4", "a", Mode::Hold);
    let b = RealServer::start("127.0.0.4", "b", Mode::Hold);
    let v = vip("127.0.1.3");
    d.ok(&format!("-A -t {v} -s fo"));
    d.ok(&format!("-a -t {v} -r {} -m -w 10 -x 2 -y 1", a.dest()));
    d.ok(&format!("-a -t {v} -r {} -m -w 1", b.dest()));
    let (n1, c1) = hold(v);
    let (n2, c2) = hold(v);
    assert_eq!((n1.as_str(), n2.as_str()), ("a", "a"));
    // a reached its upper threshold: failover to b.
    let (n3, c3) = hold(v);
    assert_eq!(n3, "b");
    let listing = d.ok(&format!("-Ln --thresholds -t {v}"));
    assert!(
        listing.contains(&format!(
            "  -> {:<28} 2          1          2          0         \n",
            a.dest()
        )),
        "{listing}"
    );
    // One closed: 1 is not below the lower threshold 1, still overloaded.
    drop(c1);
    assert!(wait_until(Duration::from_secs(5), || {
        d.counts(&format!("-t {v}"), &a.dest()).0 == 1
    }));
    let (n4, _c4) = hold(v);
    assert_eq!(n4, "b");
    // Both closed and the entries gone (CLOSE_WAIT/TIME_WAIT still count as connections):
    // the upper threshold counts active + inactive.
    drop(c2);
    drop(c3);
    d.ok("--set 0 0 0");
    assert!(wait_until(Duration::from_secs(5), || {
        d.counts(&format!("-t {v}"), &a.dest()) == (0, 2)
    }));
    let (n5, _c5) = hold(v);
    assert_eq!(n5, "b", "2 inactive entries keep a overloaded");
}

#[test]
fn least_connection_with_held_connections() {
    let d = Ipvsd::start();
    let rs: Vec<RealServer> = ["x", "y", "z"]
        .iter()
        .map(|n| RealServer::start("127.0.0.5", n, Mode::Hold))
        .collect();
    let v = vip("127.0.1.4");
    d.ok(&format!("-A -t {v} -s wlc"));
    // weights z=3, y=2, x=1 (list order: z, y, x)
    for (r, w) in rs.iter().zip([1, 2, 3]) {
        d.ok(&format!("-a -t {v} -r {} -m -w {w}", r.dest()));
    }
    let mut held = vec![];
    let mut seq = vec![];
    for _ in 0..6 {
        let (n, s) = hold(v);
        seq.push(n);
        held.push(s);
    }
    // The kernel's wlc (overhead = 256 per active connection, compared overhead/weight,
    // strictly lower wins, list order z y x).
    assert_eq!(seq, ["z", "y", "x", "z", "y", "z"]);
    assert_eq!(d.counts(&format!("-t {v}"), &rs[2].dest()), (3, 0));
    // lc ignores weights: x has 1, y 2, z 3 active -> x.
    d.ok(&format!("-E -t {v} -s lc"));
    let (n, _s) = hold(v);
    assert_eq!(n, "x");
}

#[test]
fn persistence_pins_clients_by_netmask() {
    let d = Ipvsd::start();
    let a = RealServer::start("127.0.0.6", "a", Mode::Name);
    let b = RealServer::start("127.0.0.6", "b", Mode::Name);
    let v = vip("127.0.1.5");
    d.ok(&format!("-A -t {v} -s rr -p 30"));
    d.ok(&format!("-a -t {v} -r {} -m", a.dest()));
    d.ok(&format!("-a -t {v} -r {} -m", b.dest()));
    let first = ask_from("127.0.0.1", v);
    for _ in 0..4 {
        assert_eq!(ask_from("127.0.0.1", v), first);
    }
    let other = ask_from("127.0.0.7", v);
    assert_ne!(other, first, "another client, the next server");
    assert_eq!(ask_from("127.0.0.7", v), other);
    let out = d.ok(&format!("-Ln --persistent-conn -t {v}"));
    assert!(
        out.contains(&format!("TCP  {v} rr persistent 30\n")),
        "{out}"
    );
    let conns = d.ok("-Lnc");
    // Templates: client network, port 0; ASSURED once a connection was established.
    let templates: Vec<&str> = conns.lines().filter(|l| l.contains(" ASSURED ")).collect();
    assert_eq!(templates.len(), 2, "{conns}");
    assert!(
        templates.iter().any(|l| l.contains("127.0.0.1:0 ")),
        "{conns}"
    );
    // With a /8 mask both clients are one network: one template.
    d.ok(&format!("-E -t {v} -s rr -p 30 -M 255.0.0.0"));
    let x = ask_from("127.0.0.9", v);
    assert_eq!(ask_from("127.0.0.10", v), x);
    assert_eq!(ask_from("127.0.0.11", v), x);
    let out = d.ok(&format!("-Ln -t {v}"));
    assert!(out.contains("persistent 30 mask 255.0.0.0"), "{out}");
}

#[test]
fn udp_forwarding_and_timeout() {
    let d = Ipvsd::start();
    let a = udp_server("127.0.0.8", "a");
    let b = udp_server("127.0.0.8", "b");
    let ip = "127.0.1.6";
    let v = SocketAddr::new(ip.parse().unwrap(), free_udp_port(ip));
    d.ok(&format!("-A -u {v} -s rr"));
    d.ok(&format!("-a -u {v} -r {a} -m"));
    d.ok(&format!("-a -u {v} -r {b} -m"));
    let c1 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let c2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    for c in [&c1, &c2] {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let mut buf = [0u8; 100];
    let mut round = |c: &UdpSocket, msg: &str| {
        c.send_to(msg.as_bytes(), v).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from, v, "replies come from the virtual address");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(round(&c1, "hello"), "b:hello");
    assert_eq!(round(&c2, "hi"), "a:hi");
    // a flow stays with its server
    assert_eq!(round(&c1, "again"), "b:again");
    assert_eq!(d.counts(&format!("-u {v}"), &b.to_string()), (0, 1));
    let conns = d.ok("-Lnc");
    assert_eq!(
        conns.lines().filter(|l| l.starts_with("UDP")).count(),
        2,
        "{conns}"
    );
    assert!(conns.contains("UDP 04:5"), "{conns}");
    // The UDP timeout ends flows.
    d.ok("--set 0 0 1");
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 1\n"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        d.counts(&format!("-u {v}"), &b.to_string()) == (0, 0)
    }));
    let stats = d.ok("-Ln --stats --exact");
    assert!(stats.contains(&format!("UDP  {:<28}", v)), "{stats}");
    let l: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("UDP"))
        .unwrap()
        .split_whitespace()
        .collect();
    // 2 flows, 3 datagrams each way, payload + 28 bytes of headers.
    assert_eq!(
        &l[2..],
        [
            "2",
            "3",
            "3",
            &(12 + 3 * 28).to_string(),
            &(18 + 3 * 28).to_string()
        ]
    );
    // A flow open while its service is deleted and added again: the new service answers.
    d.ok("--set 0 0 300");
    let x = round(&c1, "x");
    assert!(x == "a:x" || x == "b:x", "{x}");
    d.ok(&format!("-D -u {v}"));
    d.ok(&format!("-A -u {v} -s rr"));
    d.ok(&format!("-a -u {v} -r {b} -m"));
    assert!(wait_until(Duration::from_secs(5), || {
        c2.send_to(b"y", v).unwrap();
        let mut b2 = [0u8; 16];
        matches!(c2.recv_from(&mut b2), Ok((n, _)) if &b2[..n] == b"b:y")
    }));
}

#[test]
fn tcp_timeouts_end_idle_connections() {
    let d = Ipvsd::start();
    let a = RealServer::start("127.0.0.9", "a", Mode::Hold);
    let v = vip("127.0.1.7");
    d.ok(&format!("-A -t {v} -s rr"));
    d.ok(&format!("-a -t {v} -r {} -m", a.dest()));
    d.ok("--set 2 1 0");
    let (_, mut s) = hold(v);
    assert_eq!(d.counts(&format!("-t {v}"), &a.dest()), (1, 0));
    let conns = d.ok("-Lnc");
    assert!(
        conns.contains("TCP 00:0") && conns.contains("ESTABLISHED"),
        "{conns}"
    );
    // Idle longer than the tcp timeout: the entry expires and the connection is reset.
    assert!(wait_until(Duration::from_secs(6), || {
        d.counts(&format!("-t {v}"), &a.dest()) == (0, 0)
    }));
    let mut b = [0u8; 8];
    let r = s.read(&mut b);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}

#[test]
fn half_close_and_bulk_transfer() {
    let d = Ipvsd::start_with(&["--threads", "1", "--pipe-size", "16384"]);
    let e = RealServer::start("127.0.0.10", "echo", Mode::Echo);
    let v = vip("127.0.1.8");
    d.ok(&format!("-A -t {v} -s rr"));
    d.ok(&format!("-a -t {v} -r {} -m", e.dest()));
    let mut s = TcpStream::connect(v).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        // half-close: the server still answers
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    assert!(wait_until(Duration::from_secs(5), || {
        d.counts(&format!("-t {v}"), &e.dest()) == (0, 1)
    }));
    let stats = d.ok("-Ln --stats --exact");
    let l: Vec<u64> = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap()
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(l[3] >= 4_000_000 && l[4] >= 4_000_000, "{stats}");
}

#[test]
fn refused_methods_and_unreachable_servers() {
    let d = Ipvsd::start();
    let v = vip("127.0.1.9");
    d.ok(&format!("-A -t {v} -s rr"));
    let o = d.ipvsadm(&format!("-a -t {v} -r 127.0.0.11:80"));
    assert_eq!(o.code, 255);
    assert_eq!(
        o.stderr,
        "ipvsd (userspace IPVS) cannot forward by direct routing (-g): only masquerading (-m) \
         is possible without the kernel's IPVS\n"
    );
    let o = d.ipvsadm(&format!("-a -t {v} -r 127.0.0.11:80 -i"));
    assert!(o.stderr.contains("tunnelling (-i)"), "{}", o.stderr);
    assert!(!d.ok("-Ln").contains("127.0.0.11"));
    // A real server that refuses: the client is reset, the entry stays 10 s in CLOSE.
    let closed = free_port("127.0.0.11");
    d.ok(&format!("-a -t {v} -r 127.0.0.11:{closed} -m"));
    assert_eq!(ask(v), "");
    let conns = d.ok("-Lnc");
    assert!(conns.contains("CLOSE "), "{conns}");
    assert_eq!(
        d.counts(&format!("-t {v}"), &format!("127.0.0.11:{closed}")),
        (0, 1)
    );
    // Kernel errors keep their texts.
    let o = d.ipvsadm(&format!("-A -t {v} -s rr"));
    assert_eq!(
        (o.stderr.as_str(), o.code),
        ("Service already exists\n", 255)
    );
    let o = d.ipvsadm("-D -t 127.0.1.9:1");
    assert_eq!((o.stderr.as_str(), o.code), ("No such service\n", 255));
    let o = d.ipvsadm(&format!("-a -t {v} -r 127.0.0.12:80 -m -x 1 -y 2"));
    assert_eq!(o.stderr, "Numerical result out of range\n");
    let o = d.ipvsadm("-L -t 127.0.1.9:2");
    assert_eq!((o.stderr.as_str(), o.code), ("No such service\n", 1));
}

#[test]
fn zero_flush_info_daemons_and_restore() {
    let d = Ipvsd::start();
    let a = RealServer::start("127.0.0.12", "a", Mode::Name);
    let v = vip("127.0.1.10");
    let o = d.ipvsadm_args(
        &["-R"],
        &format!(
            "-A -t {v} -s sh -b sh-fallback,sh-port\n-a -t {v} -r {} -m -w 2\n",
            a.dest()
        ),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        d.ok("-Sn"),
        format!(
            "-A -t {v} -s sh -b sh-fallback,sh-port\n-a -t {v} -r {} -m -w 2\n",
            a.dest()
        )
    );
    assert_eq!(ask(v), "a");
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("TCP"))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string()
    };
    assert_eq!(line(&d.ok("-Ln --stats")), "1");
    d.ok("-Z");
    assert_eq!(line(&d.ok("-Ln --stats")), "0");
    let version = d.ok("-v");
    assert!(version.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"));
    assert!(
        version.contains("userspace IPVS backend: ipvsd"),
        "{version}"
    );
    // Sync daemons are kept (and listed) but do nothing.
    d.ok("--start-daemon master --mcast-interface lo");
    assert!(d
        .ok("-L --daemon")
        .starts_with("master sync daemon (mcast=lo, syncid=0"));
    let o = d.ipvsadm("--start-daemon backup --mcast-interface nosuch0");
    assert_eq!(o.stderr, "No such device\n");
    d.ok("--stop-daemon master");
    assert_eq!(d.ok("-L --daemon"), "");
    // Flush: the service and its listener go.
    d.ok("-C");
    assert_eq!(d.ok("-Ln").lines().count(), 3);
    assert!(wait_until(Duration::from_secs(3), || TcpStream::connect(v).is_err()));
}

#[test]
fn control_socket_is_private_and_robust() {
    let mut d = Ipvsd::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut ask = |line: &[u8]| {
        s.write_all(line).unwrap();
        let mut out = String::new();
        std::io::BufRead::read_line(&mut r, &mut out).unwrap();
        out
    };
    for bad in [
        &b"\n"[..],
        b"garbage\n",
        b"{\"v\":1,\"req\":{\"op\":\"apply\",\"changes\":[{\"AddService\":7}]}}\n",
        b"{\"v\":1,\"req\":{\"op\":\"service\",\"id\":{\"Address\":{\"protocol\":\"Tcp\",\"addr\":\"x\",\"port\":1}}}}\n",
        b"\xff\xfe\x00\n",
        b"[1,2,3]\n",
    ] {
        let a = ask(bad);
        assert!(a.contains("\"r\":\"error\"") && a.contains("\"errno\":22"), "{a}");
    }
    let a = ask(b"{\"v\":7,\"req\":{\"op\":\"info\"}}\n");
    assert!(a.contains("\"errno\":71"), "{a}");
    let a = ask(b"{\"v\":1,\"req\":{\"op\":\"info\"}}\n");
    assert!(a.contains("\"version\":66049"), "{a}");
    // A service whose changes fail one by one still answers each.
    let a = ask(b"{\"v\":1,\"req\":{\"op\":\"apply\",\"changes\":[\"Flush\",{\"DeleteService\":{\"Fwmark\":{\"family\":\"Inet\",\"mark\":9}}}]}}\n");
    assert!(a.contains("\"results\":[null,{\"errno\":3"), "{a}");
    // An endless line: an error, then the connection closes; the daemon lives on.
    let mut big = UnixStream::connect(&d.socket).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut wrote = 0usize;
    while wrote <= 70 << 20 {
        if big.write_all(&chunk).is_err() {
            break;
        }
        wrote += chunk.len();
    }
    drop(big);
    assert!(d.alive());
    assert_eq!(d.ok("-Ln").lines().count(), 3);
    assert!(d.alive());
}

#[test]
fn second_daemon_refuses_a_live_socket() {
    let d = Ipvsd::start();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ipvsd"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another ipvsd"));
    assert!(d.socket.exists());
}

#[test]
fn no_daemon_is_an_init_failure() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(ipvsadm_bin())
        .arg("-Ln")
        .env("IPVS_BACKEND", "userspace")
        .env("IPVSD_SOCKET", dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "Can't initialize ipvs: userspace IPVS (ipvsd, {}): No such file or directory\n\
             Are you sure that IP Virtual Server is built in the kernel or as module?\n",
            dir.path().join("none.sock").display()
        )
    );
    let o = std::process::Command::new(ipvsadm_bin())
        .arg("-Ln")
        .env("IPVS_BACKEND", "bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with(
        "Can't initialize ipvs: IPVS_BACKEND=bogus: must be kernel, userspace or auto\n"
    ));
}

#[test]
fn ipv6_virtual_service() {
    let d = Ipvsd::start();
    let l = std::net::TcpListener::bind("[::1]:0").unwrap();
    let rs = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = s.write_all(b"six\n");
        }
    });
    let port = std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.ok(&format!("-A -t [::1]:{port} -s rr"));
    d.ok(&format!("-a -t [::1]:{port} -r {rs} -m"));
    let mut s = TcpStream::connect(("::1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert_eq!(out, "six\n");
    let l = d.ok("-Ln");
    assert!(l.contains(&format!("TCP  [::1]:{port} rr\n")), "{l}");
    let c = d.ok("-Lnc");
    assert!(c.contains(&format!("[::1]:{port}")), "{c}");
}

#[test]
fn ping_pong_small_messages() {
    let d = Ipvsd::start_with(&["--threads", "1"]);
    let e = RealServer::start("127.0.0.13", "echo", Mode::Echo);
    let v = vip("127.0.1.11");
    d.ok(&format!("-A -t {v} -s rr"));
    d.ok(&format!("-a -t {v} -r {} -m", e.dest()));
    let mut s = TcpStream::connect(v).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    for i in 0..300 {
        let msg = format!("message {i}\n");
        s.write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.as_bytes());
        if i % 50 == 0 {
            // now and then in two pieces, the second a little later
            s.write_all(b"ab").unwrap();
            std::thread::sleep(Duration::from_millis(5));
            s.write_all(b"cd\n").unwrap();
            let mut got = [0u8; 5];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"abcd\n");
        }
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}
