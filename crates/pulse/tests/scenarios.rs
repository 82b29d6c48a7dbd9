//! Longer scenario suites (ignored by `cargo test`; run by integration-tests/pulse/run.sh):
//! repeated simultaneous starts, a soak of random failures, and a rolling upgrade against
//! Piranha 0.8.6's own pulse (built from its sources by the script; `PIRANHA_PULSE`).
//!
//!     cargo test --release -p pulse --test scenarios -- --ignored --test-threads 1

mod common;

use common::*;
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);
const VIP: &str = "192.0.2.100";

fn holders(lab: &Lab) -> (bool, bool) {
    (lab.has_addr("a", VIP), lab.has_addr("b", VIP))
}

#[test]
#[ignore]
fn simultaneous_start_never_has_two_holders() {
    if !can_run() {
        return;
    }
    for round in 0..20 {
        let mut lab = Lab::new();
        lab.topology(false);
        let cf = lab.write("lvs.cf", &config("0.1", "0.3", "", &[(VIP, "eth0:1")]));
        let args = ["-c", path_str(&cf), "--test-start"];
        let mut a = lab.pulse("a", "a", &args);
        let mut b = lab.pulse("b", "b", &args);
        let t0 = Instant::now();
        let mut both = 0;
        while t0.elapsed() < 2 * S {
            if holders(&lab) == (true, true) {
                both += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(both, 0, "round {round}: both held the VIP");
        assert_eq!(holders(&lab), (true, false), "round {round}");
        assert_eq!(b.count("activating"), 0, "round {round}: {}", b.log_text());
        assert_eq!(a.terminate(), 0);
        assert_eq!(b.terminate(), 0);
    }
}

/// Random failures, then a check that exactly one router holds the addresses.
#[test]
#[ignore]
fn soak_random_failures_leave_one_holder() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.topology(true);
    let extra = "primary_private = 198.51.100.1\nbackup_private = 198.51.100.2\n";
    let cf = lab.write(
        "lvs.cf",
        &config(
            "0.1",
            "0.4",
            extra,
            &[(VIP, "eth0:1"), ("192.0.2.101", "eth0:2")],
        ),
    );
    let lvsd = lab.fake_lvsd("lvsd");
    let args = ["-c", path_str(&cf), "--lvsd", path_str(&lvsd)];
    let mut nodes = [
        Some(lab.pulse("a", "a0", &args)),
        Some(lab.pulse("b", "b0", &args)),
    ];
    let names = ["a", "b"];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    std::thread::sleep(2 * S);
    for cycle in 0..30 {
        let holder = match holders(&lab) {
            (true, false) => 0,
            (false, true) => 1,
            other => panic!("cycle {cycle}: holders {other:?}"),
        };
        let other = 1 - holder;
        let what = rnd(4);
        match what {
            0 => {
                // Crash of the holder with its cables pulled; back after a while.
                nodes[holder].as_mut().unwrap().kill9();
                lab.cable(names[holder], false);
                ip(&["-n", &lab.ns(names[holder]), "link", "set", "eth1", "down"]);
                std::thread::sleep(S);
                assert!(
                    lab.has_addr(names[other], VIP),
                    "cycle {cycle}: no takeover"
                );
                lab.cable(names[holder], true);
                ip(&["-n", &lab.ns(names[holder]), "link", "set", "eth1", "up"]);
                nodes[holder] =
                    Some(lab.pulse(names[holder], &format!("{}{cycle}", names[holder]), &args));
            }
            1 => {
                // Orderly stop of the holder, restart.
                assert_eq!(nodes[holder].as_mut().unwrap().terminate(), 0);
                std::thread::sleep(S / 5);
                assert!(
                    lab.has_addr(names[other], VIP),
                    "cycle {cycle}: no handover"
                );
                nodes[holder] =
                    Some(lab.pulse(names[holder], &format!("{}{cycle}", names[holder]), &args));
            }
            2 => {
                // Partition of both paths, then heal.
                lab.cable("a", false);
                ip(&["-n", &lab.ns("a"), "link", "set", "eth1", "down"]);
                std::thread::sleep(S);
                lab.cable("a", true);
                ip(&["-n", &lab.ns("a"), "link", "set", "eth1", "up"]);
            }
            _ => {
                // Restart of the standby.
                assert_eq!(nodes[other].as_mut().unwrap().terminate(), 0);
                nodes[other] =
                    Some(lab.pulse(names[other], &format!("{}{cycle}", names[other]), &args));
            }
        }
        std::thread::sleep(2 * S);
        let h = holders(&lab);
        assert!(
            h == (true, false) || h == (false, true),
            "cycle {cycle} ({what}): {h:?}"
        );
        let addrs_of = |n: &str| lab.addrs(n, "eth0").len();
        assert!(
            addrs_of("a") + addrs_of("b") == 4,
            "cycle {cycle}: {:?} {:?}",
            lab.addrs("a", "eth0"),
            lab.addrs("b", "eth0")
        );
    }
    for n in nodes.iter_mut().flatten() {
        assert_eq!(n.terminate(), 0);
    }
    assert_eq!(holders(&lab), (false, false));
    assert!(
        lab.read("lvsd.log")
            .lines()
            .filter(|l| l.starts_with("start"))
            .count()
            == lab
                .read("lvsd.log")
                .lines()
                .filter(|l| l.starts_with("TERM"))
                .count()
    );
}

fn wait_port_free(lab: &Lab, n: &str, addr: &'static str) {
    let ns = lab.ns(n);
    let t0 = Instant::now();
    while t0.elapsed() < 10 * S {
        if in_ns(&ns, move || std::net::UdpSocket::bind(addr).is_ok()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr} still bound in {n}");
}

fn piranha() -> Option<String> {
    match std::env::var("PIRANHA_PULSE") {
        Ok(p) if std::path::Path::new(&p).exists() => Some(p),
        _ => {
            eprintln!("skipped: PIRANHA_PULSE (Piranha 0.8.6's pulse binary) not given");
            None
        }
    }
}

/// Piranha's pulse brings no address up here (it runs /sbin/ifconfig and /usr/sbin/send_arp,
/// which this host need not have), so its state is read from its log; ours from the addresses.
#[test]
#[ignore]
fn rolling_upgrade_with_piranhas_pulse() {
    if !can_run() {
        return;
    }
    let Some(old) = piranha() else { return };
    let mut lab = Lab::new();
    lab.topology(false);
    // Whole seconds: Piranha's parser knows no fractions.
    let cf = lab.write("lvs.cf", &config("1", "3", "", &[(VIP, "eth0:1")]));
    let cfs = path_str(&cf).to_string();
    let theirs = |lab: &Lab, n: &str, log: &str| {
        lab.spawn(n, log, &old, &["-n", "-c", &cfs, "--test-start"])
    };
    let ours_args = ["-c", cfs.as_str(), "--test-start"];

    // 1. Piranha primary, our backup: they pair; the primary is active, ours stays standby.
    let mut pa = theirs(&lab, "a", "piranha-a1");
    pa.wait_for("STARTING PULSE AS MASTER", 5 * S);
    let mut b = lab.pulse("b", "b1", &ours_args);
    pa.wait_for("backup inactive: activating lvs", 5 * S);
    std::thread::sleep(5 * S);
    assert_eq!(
        b.count("activating"),
        0,
        "ours stayed standby: {}",
        b.log_text()
    );
    assert!(!lab.has_addr("b", VIP));
    // Piranha's primary dies: ours takes over after deadtime.
    pa.kill9();
    b.wait_for("partner dead: activating lvs", 6 * S);
    assert!(lab.has_addr("b", VIP));
    // Piranha's primary returns: no failback (it stays standby on our RUNNING).
    let mut pa = theirs(&lab, "a", "piranha-a2");
    pa.wait_for("STARTING PULSE AS MASTER", 5 * S);
    std::thread::sleep(5 * S);
    assert_eq!(pa.count("activating"), 0, "{}", pa.log_text());
    assert!(lab.has_addr("b", VIP));
    assert_eq!(b.count("deactivating"), 0);
    // Ours stops: its STOPPED makes Piranha's primary activate at once.
    let t0 = Instant::now();
    assert_eq!(b.terminate(), 0);
    pa.wait_for("backup inactive: activating lvs", 3 * S);
    assert!(
        t0.elapsed() < 2 * S,
        "graceful handover to Piranha took {:?}",
        t0.elapsed()
    );
    assert!(!lab.has_addr("b", VIP));
    pa.signal(libc::SIGTERM);
    pa.wait_exit(10 * S);
    // Piranha's detached ARP helper (forked, never exec'd) holds the heartbeat socket for the
    // five seconds of its send_arp loop.
    wait_port_free(&lab, "a", "192.0.2.1:539");

    // 2. Our primary, Piranha backup. Ours announces STOPPED at start; Piranha's backup takes
    // over on it at once (its rule), unless our primary activated first on its STOPPED. Either
    // way exactly one holds, and it stays so.
    let mut a = lab.pulse("a", "a3", &ours_args);
    a.wait_for("STARTING PULSE AS MASTER", 5 * S);
    let mut pb = theirs(&lab, "b", "piranha-b3");
    std::thread::sleep(6 * S);
    let ours_holds = lab.has_addr("a", VIP);
    if ours_holds {
        assert_eq!(
            pb.count("activating lvs"),
            pb.count("deactivating LVS"),
            "{}",
            pb.log_text()
        );
        // Ours dies: Piranha takes over.
        a.kill9();
        lab.cable("a", false);
        pb.wait_for("partner dead: activating lvs", 6 * S);
        lab.cable("a", true);
    } else {
        assert_eq!(a.count("activating"), 0, "{}", a.log_text());
        pb.wait_for("primary inactive: activating lvs", S);
        assert_eq!(pb.count("deactivating"), 0, "{}", pb.log_text());
        assert_eq!(a.terminate(), 0);
    }
    // Ours returns: removes its predecessor's address, stays standby.
    lab.cable("a", true);
    let mut a = lab.pulse("a", "a4", &ours_args);
    if ours_holds {
        a.wait_for("removed leftover address 192.0.2.100/24 from eth0:1", 5 * S);
    }
    std::thread::sleep(5 * S);
    assert_eq!(a.count("activating"), 0, "{}", a.log_text());
    assert!(!lab.has_addr("a", VIP));
    // Piranha stops (it sends nothing on the way out): ours takes over after deadtime.
    pb.signal(libc::SIGTERM);
    pb.wait_exit(10 * S);
    a.wait_for("partner dead: activating lvs", 6 * S);
    assert!(lab.has_addr("a", VIP));
    assert_eq!(a.terminate(), 0);
}
