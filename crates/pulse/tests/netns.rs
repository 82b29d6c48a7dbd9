//! pulse in real network namespaces (needs root; skipped otherwise): two routers and a client on
//! a bridge, a stand-in lvsd, real heartbeats, real addresses, real gratuitous ARPs.

mod common;

use common::*;
use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);
const VIP: &str = "192.0.2.100";

fn garp_for(vip: &str, mac: [u8; 6]) -> Vec<u8> {
    netconf::arp::gratuitous_frame(ip4(vip), netconf::Mac(mac)).to_vec()
}

#[test]
fn failover_on_death_gratuitous_arp_no_failback_and_forceactive() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(false);
    // deadtime 1 s: a loaded test machine must not fake a death.
    let cf = lab.write("lvs.cf", &config("0.1", "1", "", &[(VIP, "eth0:1")]));
    let lvsd_a = lab.fake_lvsd("lvsd-a");
    let lvsd_b = lab.fake_lvsd("lvsd-b");
    let args_a = ["-c", path_str(&cf), "--lvsd", path_str(&lvsd_a)];
    let args_b = ["-c", path_str(&cf), "--lvsd", path_str(&lvsd_b)];
    let mut a = lab.pulse("a", "a", &args_a);
    let mut b = lab.pulse("b", "b", &args_b);
    a.wait_for("STARTING PULSE AS MASTER", 5 * S);
    b.wait_for("STARTING PULSE AS BACKUP", 5 * S);
    lab.wait_until("VIP on a", 5 * S, || lab.has_addr("a", VIP));
    assert!(lab.addrs("a", "eth0").contains(&format!("{VIP}/24 eth0:1")));
    std::thread::sleep(S / 2);
    assert!(!lab.has_addr("b", VIP), "one holder");
    assert_eq!(b.count("activating"), 0, "{}", b.log_text());
    lab.wait_until("lvsd started on a", 5 * S, || {
        lab.read("lvsd-a.log").contains("start")
    });
    assert!(lab
        .read("lvsd-a.log")
        .contains(&format!("--nodaemon -c {}", cf.display())));

    // The client's ARP cache points at a (and is older than the kernel's 1 s locktime).
    let mac_a = lab.mac("a", "eth0");
    let mac_b = lab.mac("b", "eth0");
    ip(&[
        "-n",
        &lab.ns("c"),
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &mac_a
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    std::thread::sleep(S + S / 5);
    let capture = capture_arp(&lab.ns("c"), "eth0", 4 * S);

    // Death of the active router: pulse killed, cable pulled.
    let t0 = Instant::now();
    a.kill9();
    lab.cable("a", false);
    b.wait_for("partner dead: activating lvs", 5 * S);
    lab.wait_until("VIP on b", 2 * S, || lab.has_addr("b", VIP));
    let took = t0.elapsed();
    assert!(took < 3 * S, "{took:?}");
    let frames = capture.join().unwrap();
    let want = garp_for(VIP, mac_b);
    let seen = frames
        .iter()
        .filter(|f| f.len() >= 42 && f[..42] == want[..42])
        .count();
    assert!(
        seen >= 2,
        "b's gratuitous ARPs seen by the client: {seen} of {} frames",
        frames.len()
    );
    assert!(
        frames.iter().any(|f| f == &want),
        "a 60-byte send_arp frame"
    );
    assert_eq!(
        lab.neigh("c", VIP),
        Some(mac_b),
        "the client's ARP cache follows"
    );
    // a's lvsd stopped when its pulse died (parent-death signal).
    lab.wait_until("a's lvsd stopped", 5 * S, || {
        lab.read("lvsd-a.log").contains("TERM")
    });

    // The primary comes back: it removes the address its killed predecessor left, and stays
    // backup.
    assert!(lab.has_addr("a", VIP), "kill -9 left the address");
    lab.cable("a", true);
    let mut a = lab.pulse("a", "a2", &args_a);
    a.wait_for("removed leftover address 192.0.2.100/24 from eth0:1", 5 * S);
    a.wait_for("STARTING PULSE AS MASTER", 5 * S);
    std::thread::sleep(2 * S);
    assert!(!lab.has_addr("a", VIP));
    assert!(lab.has_addr("b", VIP));
    assert_eq!(a.count("activating"), 0, "no failback: {}", a.log_text());

    // --forceactive fails back: b yields, a re-ARPs once.
    assert_eq!(a.terminate(), 0);
    let mut a = lab.pulse(
        "a",
        "a3",
        &["--forceactive", args_a[0], args_a[1], args_a[2], args_a[3]],
    );
    a.wait_for("Forced active on startup: activating lvs", 5 * S);
    b.wait_for("partner active: deactivating LVS", 5 * S);
    lab.wait_until("VIP only on a", 5 * S, || {
        lab.has_addr("a", VIP) && !lab.has_addr("b", VIP)
    });
    std::thread::sleep(S);
    assert_eq!(
        a.count("partner active: resending arps"),
        1,
        "{}",
        a.log_text()
    );
    assert!(lab.read("lvsd-b.log").contains("TERM"));

    assert_eq!(a.terminate(), 0);
    assert_eq!(b.terminate(), 0);
    assert!(!lab.has_addr("a", VIP) && !lab.has_addr("b", VIP));
}

#[test]
fn partition_then_heal_leaves_exactly_one_holder() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(false);
    let cf = lab.write(
        "lvs.cf",
        &config(
            "0.1",
            "1",
            "",
            &[(VIP, "eth0:1"), ("192.0.2.101", "eth0:2")],
        ),
    );
    let mut a = lab.pulse("a", "a", &["-c", path_str(&cf), "--test-start"]);
    let mut b = lab.pulse("b", "b", &["-c", path_str(&cf), "--test-start"]);
    lab.wait_until("a holds", 5 * S, || {
        lab.has_addr("a", VIP) && lab.has_addr("a", "192.0.2.101")
    });
    std::thread::sleep(S / 2);
    assert!(!lab.has_addr("b", VIP));
    // Partition: a's cable is pulled; b declares it dead. Both hold the addresses.
    lab.cable("a", false);
    b.wait_for("partner dead: activating lvs", 5 * S);
    assert!(lab.has_addr("a", VIP) && lab.has_addr("b", VIP));
    std::thread::sleep(S);
    // Heal: the backup yields, the master re-ARPs once.
    lab.cable("a", true);
    b.wait_for("partner active: deactivating LVS", 5 * S);
    lab.wait_until("one holder", 3 * S, || !lab.has_addr("b", VIP));
    std::thread::sleep(S);
    assert!(lab.has_addr("a", VIP) && lab.has_addr("a", "192.0.2.101"));
    assert!(!lab.has_addr("b", VIP) && !lab.has_addr("b", "192.0.2.101"));
    assert_eq!(
        a.count("partner active: resending arps"),
        1,
        "{}",
        a.log_text()
    );
    // --test-start: no lvsd, no commands.
    assert!(!a.log_text().contains("lvsd started"));
    assert_eq!(a.terminate(), 0);
    assert_eq!(b.terminate(), 0);
    assert!(!lab.has_addr("a", VIP));
}

#[test]
fn monitor_links_link_down_hands_over_on_the_private_path() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(true);
    let extra =
        "primary_private = 198.51.100.1\nbackup_private = 198.51.100.2\nmonitor_links = 1\n";
    // A long deadtime: the takeover must come from the STOPPED heartbeat, not the deadline.
    let cf = lab.write("lvs.cf", &config("0.2", "5", extra, &[(VIP, "eth0:1")]));
    let mut a = lab.pulse("a", "a", &["-c", path_str(&cf), "--test-start"]);
    let mut b = lab.pulse("b", "b", &["-c", path_str(&cf), "--test-start"]);
    lab.wait_until("a holds", 5 * S, || lab.has_addr("a", VIP));
    std::thread::sleep(S / 2);
    let t0 = Instant::now();
    lab.cable("a", false);
    a.wait_for("Primary NIC: link down", 5 * S);
    a.wait_for("Local NIC link failure: Pulse disabled", S);
    a.wait_for("local link failure: deactivating LVS", S);
    b.wait_for("primary inactive: activating lvs", 3 * S);
    let took = t0.elapsed();
    assert!(took < 2 * S, "handover over the private path took {took:?}");
    assert!(!lab.has_addr("a", VIP));
    assert!(lab.has_addr("b", VIP));
    lab.cable("a", true);
    a.wait_for("Local NIC link(s) restored: Pulse enabled", 5 * S);
    std::thread::sleep(S);
    assert!(!lab.has_addr("a", VIP) && lab.has_addr("b", VIP));
    assert_eq!(a.terminate(), 0);
    assert_eq!(b.terminate(), 0);
}

/// Our test socket plays the partner: checks the bytes pulse sends, and what it accepts.
#[test]
fn heartbeat_bytes_and_senders_that_are_not_the_partner() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(false);
    let cf = lab.write("lvs.cf", &config("0.2", "2", "", &[(VIP, "eth0:1")]));
    let mut a = lab.pulse("a", "a", &["-c", path_str(&cf), "--test-start"]);
    a.wait_for("STARTING PULSE AS MASTER", 5 * S);
    let b_ns = lab.ns("b");
    ip(&["-n", &b_ns, "addr", "add", "192.0.2.3/24", "dev", "eth0"]);
    // What a sends: Piranha's STOPPED, x86 order, from port 539 to port 539.
    let (stopped, from) = in_ns(&b_ns, || {
        let s = UdpSocket::bind("192.0.2.2:539").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!(stopped, [0xBD, 0xDA, 0xBD, 0xAD]);
    assert_eq!(from.to_string(), "192.0.2.1:539");

    let send_from = |ns: String, src: &'static str, bytes: [u8; 4], times: u32| {
        in_ns(&ns, move || {
            let s = UdpSocket::bind(SocketAddrV4::new(ip4(src), 539)).unwrap();
            for _ in 0..times {
                s.send_to(&bytes, "192.0.2.1:539").unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let stopped_le = [0xBD, 0xDA, 0xBD, 0xAD];
    // STOPPED from a third address (the client, another address of b): ignored. Accepted, it
    // would activate the master at once ("backup inactive").
    send_from(lab.ns("c"), "192.0.2.10", stopped_le, 5);
    send_from(b_ns.clone(), "192.0.2.3", stopped_le, 5);
    assert_eq!(a.count("activating"), 0, "{}", a.log_text());
    // RUNNING in big-endian order from the partner keeps it alive past deadtime (2 s).
    send_from(b_ns.clone(), "192.0.2.2", 0xBDADDBDAu32.to_be_bytes(), 30);
    assert_eq!(a.count("activating"), 0, "{}", a.log_text());
    // Garbage from the partner: logged, ignored.
    in_ns(&b_ns, || {
        let s = UdpSocket::bind("192.0.2.2:539").unwrap();
        s.send_to(&[1, 2, 3], "192.0.2.1:539").unwrap();
        s.send_to(&[1, 2, 3, 4], "192.0.2.1:539").unwrap();
    });
    a.wait_for("bad heartbeat packet", 2 * S);
    a.wait_for("Incompatible heartbeat received", 2 * S);
    // STOPPED from the partner: the master activates at once and says RUNNING.
    let t0 = Instant::now();
    let running = in_ns(&b_ns, move || {
        let s = UdpSocket::bind("192.0.2.2:539").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(&stopped_le, "192.0.2.1:539").unwrap();
        let mut buf = [0u8; 64];
        loop {
            let (n, _) = s.recv_from(&mut buf).unwrap();
            if buf[..n] != stopped_le {
                return buf[..n].to_vec();
            }
        }
    });
    assert!(t0.elapsed() < S / 2, "{:?}", t0.elapsed());
    assert_eq!(running, [0xDA, 0xDB, 0xAD, 0xBD]);
    a.wait_for("backup inactive: activating lvs", S);
    lab.wait_until("VIP", S, || lab.has_addr("a", VIP));
    // RUNNING from the partner, many times: re-ARP once.
    send_from(b_ns.clone(), "192.0.2.2", [0xDA, 0xDB, 0xAD, 0xBD], 5);
    assert_eq!(a.count("partner active: resending arps"), 1);
    // SIGTERM: addresses down, then STOPPED at once (graceful handover), exit 0.
    let pid = a.pid();
    let got = in_ns(&b_ns, move || {
        let s = UdpSocket::bind("192.0.2.2:539").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // SAFETY: our child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            let (n, _) = s.recv_from(&mut buf).unwrap();
            if buf[..n] == stopped_le {
                return t0.elapsed();
            }
        }
    });
    assert!(got < Duration::from_millis(150), "STOPPED after {got:?}");
    assert_eq!(a.wait_exit(5 * S), 0);
    a.wait_for("Terminating due to signal 15", S);
    assert!(!lab.has_addr("a", VIP));
}

#[test]
fn lvsd_is_restarted_then_given_up_and_leftovers_are_judged() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(false);
    let cf = lab.write(
        "lvs.cf",
        &config(
            "0.1",
            "0.3",
            "",
            &[(VIP, "eth0:1"), ("192.0.2.101", "eth0:2")],
        ),
    );
    // A leftover of a killed pulse (our label) and an administrator's address (another label).
    let a_ns = lab.ns("a");
    ip(&[
        "-n",
        &a_ns,
        "addr",
        "add",
        "192.0.2.100/24",
        "dev",
        "eth0",
        "label",
        "eth0:1",
    ]);
    ip(&[
        "-n",
        &a_ns,
        "addr",
        "add",
        "192.0.2.101/24",
        "dev",
        "eth0",
        "label",
        "eth0:9",
    ]);
    let log = lab.dir.path().join("dying.log");
    let dying = lab.executable(
        "dying-lvsd",
        &format!(
            "#!/bin/sh\necho \"start $$ $*\" >> {}\nexit 1\n",
            log.display()
        ),
    );
    let mut a = lab.pulse("a", "a", &["-c", path_str(&cf), "--lvsd", path_str(&dying)]);
    a.wait_for("removed leftover address 192.0.2.100/24 from eth0:1", 5 * S);
    a.wait_for(
        "192.0.2.101 is already configured on eth0 (label eth0:9), not by pulse",
        S,
    );
    // No backup runs: the primary activates after deadtime; lvsd dies at once, every time.
    a.wait_for("partner dead: activating lvs", 5 * S);
    a.wait_for("lvsd died: restarting it in 0.5 s", 5 * S);
    a.wait_for("lvsd died: restarting it in 1 s", 5 * S);
    a.wait_for("lvsd died: restarting it in 2 s", 5 * S);
    a.wait_for("giving up so that the partner takes over", 5 * S);
    a.wait_for("lvsd failure: deactivating LVS", S);
    assert_eq!(lab.read("dying.log").lines().count(), 4);
    assert!(a.log_text().contains("exited with status 1"));
    std::thread::sleep(S / 2);
    assert!(!lab.has_addr("a", VIP));
    // The administrator's address is still there.
    assert!(lab
        .addrs("a", "eth0")
        .contains(&"192.0.2.101/24 eth0:9".to_string()));
    assert_eq!(a.terminate(), 0);
}

#[test]
fn lone_primary_reload_signals_and_pid_file() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(false);
    let lone = |vips: &[(&str, &str)]| {
        config("1", "3", "", vips).replace("backup_active = 1", "backup_active = 0")
    };
    let cf = lab.write("lvs.cf", &lone(&[(VIP, "eth0:1")]));
    let lvsd = lab.fake_lvsd("lvsd");
    let pidfile = lab.dir.path().join("pulse.pid");
    let cmdlog = lab.dir.path().join("cmd.log");
    let active_cmd = lab.executable(
        "active.sh",
        &format!("#!/bin/sh\necho \"active $*\" >> {}\n", cmdlog.display()),
    );
    let inactive_cmd = lab.executable(
        "inactive.sh",
        &format!("#!/bin/sh\necho \"inactive $*\" >> {}\n", cmdlog.display()),
    );
    let cmds = format!(
        "active_cmd = \"{} one two\"\ninactive_cmd = {}\n",
        active_cmd.display(),
        inactive_cmd.display()
    );
    let text = lone(&[(VIP, "eth0:1")])
        .replace("network = direct\n", &format!("network = direct\n{cmds}"));
    std::fs::write(&cf, &text).unwrap();
    let mut a = lab.pulse(
        "a",
        "a",
        &[
            "-c",
            path_str(&cf),
            "--lvsd",
            path_str(&lvsd),
            "--pidfile",
            path_str(&pidfile),
            "-v",
        ],
    );
    let t = a.wait_for(
        "no backup router (backup_active = 0): activating lvs",
        5 * S,
    );
    assert!(t < S, "a lone primary does not wait for deadtime: {t:?}");
    lab.wait_until("VIP", 2 * S, || lab.has_addr("a", VIP));
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        a.pid().to_string()
    );
    lab.wait_until("commands ran", 2 * S, || {
        let l = std::fs::read_to_string(&cmdlog).unwrap_or_default();
        l.contains("inactive") && l.contains("active one two")
    });
    lab.wait_until("lvsd started", 2 * S, || {
        lab.read("lvsd.log").contains("start")
    });
    assert!(
        lab.read("lvsd.log").contains(" -v"),
        "pulse -v passes -v to lvsd"
    );
    // SIGHUP: forwarded to lvsd; a new VIP is brought up, a removed one taken down.
    let text2 = text.replace("192.0.2.100 eth0:1", "192.0.2.102 eth0:3");
    std::fs::write(&cf, &text2).unwrap();
    a.signal(libc::SIGHUP);
    a.wait_for("configuration reloaded", 3 * S);
    lab.wait_until("lvsd got HUP", 2 * S, || {
        lab.read("lvsd.log").contains("HUP")
    });
    lab.wait_until("VIPs swapped", 2 * S, || {
        lab.has_addr("a", "192.0.2.102") && !lab.has_addr("a", VIP)
    });
    // A config with an error: kept running with the old settings.
    std::fs::write(&cf, "primary = 192.0.2.1\nkeepalive = x\n").unwrap();
    a.signal(libc::SIGHUP);
    a.wait_for("configuration not reloaded", 3 * S);
    // Signals that would kill a daemon by default are ignored; USR1 logs the state.
    a.signal(libc::SIGUSR2);
    a.signal(libc::SIGALRM);
    a.signal(libc::SIGUSR1);
    a.wait_for("status: master active", 2 * S);
    a.wait_for(&format!("ignoring signal {}", libc::SIGUSR2), 2 * S);
    assert!(lab.has_addr("a", "192.0.2.102"));
    // SIGINT: release and exit 0.
    a.signal(libc::SIGINT);
    assert_eq!(a.wait_exit(10 * S), 0);
    assert!(a.log_text().contains("Terminating due to signal 2"));
    assert!(lab.read("lvsd.log").contains("TERM"));
    assert_eq!(lab.addrs("a", "eth0"), ["192.0.2.1/24 eth0"]);
    assert!(!pidfile.exists(), "pid file removed");
}

#[test]
fn authenticated_heartbeats_pair_and_refuse_plain_ones() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(false);
    let key = lab.write("hb.key", "a test key of more than sixteen bytes\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!("heartbeat_key_file = {}\n", key.display());
    let cf = lab.write("lvs.cf", &config("0.1", "1", &extra, &[(VIP, "eth0:1")]));
    let mut a = lab.pulse("a", "a", &["-c", path_str(&cf), "--test-start"]);
    let mut b = lab.pulse("b", "b", &["-c", path_str(&cf), "--test-start"]);
    lab.wait_until("a holds", 5 * S, || lab.has_addr("a", VIP));
    std::thread::sleep(S);
    assert!(!lab.has_addr("b", VIP), "the pair formed: {}", b.log_text());
    // What goes on the wire: 48 bytes. A plain (Piranha) heartbeat from the partner's address
    // is refused: the master stays active and b is not disturbed.
    let b_ns = lab.ns("b");
    assert_eq!(b.terminate(), 0);
    let len = in_ns(&b_ns, || {
        let s = UdpSocket::bind("192.0.2.2:539").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 128];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        // A forged RUNNING without the key.
        s.send_to(&[0xDA, 0xDB, 0xAD, 0xBD], "192.0.2.1:539")
            .unwrap();
        n
    });
    assert_eq!(len, 48);
    a.wait_for("refused: not an authenticated heartbeat", 2 * S);
    assert_eq!(a.terminate(), 0);
}
