//! The daemon end to end against the in-crate fake kernel, with real nanny processes: small bash
//! scripts that speak the report protocol and take orders from files.

use super::*;
use crate::testing::{FakeKernel, Shared};
use ipvs::{Destination, Service};
use lvs_config::StaticResolver;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

/// A test nanny. It reports the hello line, then, every 50 ms, the state written in
/// `DIR/RIP:RPORT` (`up`, `down`, `quiesce`, `silent`, `weight N`, `exit N`); without a file,
/// `default`.
fn nanny_script(dir: &Path, default: &str) -> String {
    let path = dir.join(format!("nanny-{default}"));
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"#!/bin/bash
while [ $# -gt 0 ]; do
  case "$1" in -h) h=$2; shift;; -r) r=$2; shift;; -w) w=$2; shift;; esac; shift
done
fd=$NANNY_REPORT_FD
echo "nanny 1 $$ $h:$r" >&$fd
echo "$$" > "{dir}/pid-$h:$r"
exec {{sfd}}<> <(:)
state=
while true; do
  want={default}
  [ -f "{dir}/$h:$r" ] && read -r want < "{dir}/$h:$r"
  if [ "$want" != "$state" ]; then
    case "$want" in
      up) echo "up $w test says up" >&$fd;;
      down) echo "down test says down" >&$fd;;
      quiesce) echo "quiesce test says quiesce" >&$fd;;
      weight*) echo "weight ${{want#weight }} test" >&$fd;;
      exit*) exit ${{want#exit }};;
    esac
    state=$want
  fi
  read -t 0.05 -u $sfd
done
"#,
        dir = dir.display()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

struct Harness {
    dir: tempfile::TempDir,
    cfg_path: PathBuf,
    fake: Shared,
    ctl: Controller,
    signals: Signals,
}

fn config_text(monitor: &str, body: &str) -> String {
    body.replace("MONITOR", monitor)
}

/// Three services: www (tcp, two real servers, sorry server), dns (udp), mark (fwmark).
const BASE: &str = "network = nat
hard_shutdown = 1
virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     port = 80
     scheduler = wlc
     timeout = 1
     reentry = 1
     client_monitor = MONITOR
     server web1 {
         address = 198.51.100.11
         active = 1
         weight = 10
     }
     server web2 {
         address = 198.51.100.12
         active = 1
         weight = 20
     }
}
virtual dns {
     active = 1
     address = 192.0.2.101 eth0:2
     port = 53
     protocol = udp
     scheduler = rr
     timeout = 1
     reentry = 1
     client_monitor = MONITOR
     server ns1 {
         address = 198.51.100.21
         active = 1
         weight = 5
     }
}
virtual mark {
     active = 1
     address = 192.0.2.102 eth0:3
     fwmark = 7
     port = 443
     timeout = 1
     reentry = 1
     client_monitor = MONITOR
     server m1 {
         address = 198.51.100.31
         active = 1
         port = 8443
     }
}
";

fn www() -> ServiceId {
    ServiceId::Address {
        protocol: ipvs::Protocol::Tcp,
        addr: "192.0.2.100".parse().unwrap(),
        port: 80,
    }
}

fn dns() -> ServiceId {
    ServiceId::Address {
        protocol: ipvs::Protocol::Udp,
        addr: "192.0.2.101".parse().unwrap(),
        port: 53,
    }
}

fn foreign() -> Service {
    let mut s = Service::new(ServiceId::Address {
        protocol: ipvs::Protocol::Tcp,
        addr: "203.0.113.1".parse().unwrap(),
        port: 25,
    });
    s.scheduler = "rr".into();
    s
}

impl Harness {
    fn new(body: &str, default: &str, prepare: impl FnOnce(&Shared)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let monitor = nanny_script(dir.path(), default);
        let cfg_path = dir.path().join("lvs.cf");
        std::fs::write(&cfg_path, config_text(&monitor, body)).unwrap();
        let (config, _) = load_config(&cfg_path, &StaticResolver::standard()).unwrap();
        let fake = FakeKernel::shared();
        prepare(&fake);
        let mut opts = Options::new(&cfg_path);
        opts.settle_margin = Duration::from_millis(300);
        opts.stop_timeout = Duration::from_secs(3);
        opts.repair_interval = None;
        opts.backoff = Backoff::with(Duration::from_millis(100), Duration::from_millis(400));
        let ctl = Controller::new(
            opts,
            config,
            Table::kernel(Box::new(fake.clone())),
            Box::new(StaticResolver::standard()),
        );
        Harness {
            dir,
            cfg_path,
            fake,
            ctl,
            signals: Signals::new().unwrap(),
        }
    }

    fn monitor_path(&self, default: &str) -> String {
        self.dir
            .path()
            .join(format!("nanny-{default}"))
            .display()
            .to_string()
    }

    /// Steps the loop until `cond` holds (panics after 10 s).
    fn until(&mut self, what: &str, cond: impl Fn(&Harness) -> bool) {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "timed out waiting for: {what}\ntable: {:#?}\nhealth: {:?}",
                self.fake.borrow().listing(),
                self.ctl.health()
            );
            self.ctl.step(&self.signals, Duration::from_millis(20));
        }
    }

    /// Steps the loop for a while.
    fn run_for(&mut self, d: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            self.ctl.step(&self.signals, Duration::from_millis(20));
        }
    }

    fn set(&self, server: &str, state: &str) {
        let tmp = self.dir.path().join(format!(".{server}"));
        std::fs::write(&tmp, format!("{state}\n")).unwrap();
        std::fs::rename(tmp, self.dir.path().join(server)).unwrap();
    }

    fn listing(&self) -> Vec<String> {
        self.fake.borrow().listing()
    }

    fn has(&self, line: &str) -> bool {
        self.listing().iter().any(|l| l == line)
    }

    fn write_config(&self, body: &str, default: &str) {
        let text = config_text(&self.monitor_path(default), body);
        let tmp = self.cfg_path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, &self.cfg_path).unwrap();
    }

    fn all_up(&self) -> bool {
        self.has("-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10")
            && self.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 20")
            && self.has("-a -u 192.0.2.101:53 -r 198.51.100.21:53 -m -w 5")
            && self.has("-a -f 7 -r 198.51.100.31:8443 -m -w 1")
    }

    fn shutdown(mut self) -> Shared {
        let pids: Vec<i32> = self.ctl.nanny_pids().values().copied().collect();
        self.ctl.shutdown();
        for pid in pids {
            assert!(
                supervisor::try_reap(pid).is_err(),
                "nanny {pid} still ours after shutdown"
            );
        }
        self.fake
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

const EXPECTED_UP: [&str; 7] = [
    "-A -f 7 -s wlc",
    "-A -t 192.0.2.100:80 -s wlc",
    "-A -u 192.0.2.101:53 -s rr",
    "-a -f 7 -r 198.51.100.31:8443 -m -w 1",
    "-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10",
    "-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 20",
    "-a -u 192.0.2.101:53 -r 198.51.100.21:53 -m -w 5",
];

#[test]
fn start_builds_services_then_adds_servers_as_their_nannies_report() {
    let mut h = Harness::new(BASE, "silent", |k| {
        k.borrow_mut().services.push((foreign(), vec![]));
    });
    h.ctl.start();
    // Services at once, empty: real servers only after their first successful check.
    assert_eq!(
        h.listing(),
        [
            "-A -f 7 -s wlc",
            "-A -t 192.0.2.100:80 -s wlc",
            "-A -t 203.0.113.1:25 -s rr",
            "-A -u 192.0.2.101:53 -s rr",
        ]
    );
    assert_eq!(h.ctl.nanny_pids().len(), 4);
    // The status publisher's change counter moves with the healths.
    let generation = h.ctl.status_generation();
    for s in [
        "198.51.100.11:80",
        "198.51.100.12:80",
        "198.51.100.21:53",
        "198.51.100.31:8443",
    ] {
        h.set(s, "up");
    }
    h.until("all up", |h| h.all_up());
    assert!(h.ctl.status_generation() > generation);
    let mut want: Vec<String> = EXPECTED_UP.iter().map(|s| s.to_string()).collect();
    want.push("-A -t 203.0.113.1:25 -s rr".into());
    want.sort();
    assert_eq!(h.listing(), want);
    // Down, quiesce, weight, up again.
    h.set("198.51.100.11:80", "down");
    h.until("web1 removed", |h| {
        !h.listing().iter().any(|l| l.contains("198.51.100.11"))
    });
    h.set("198.51.100.12:80", "quiesce");
    h.until("web2 quiesced", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 0")
    });
    // A weight report for a quiesced server changes nothing; up brings it back.
    h.set("198.51.100.12:80", "weight 7");
    h.run_for(Duration::from_millis(200));
    assert!(h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 0"));
    h.set("198.51.100.12:80", "up");
    h.until("web2 back", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 20")
    });
    h.set("198.51.100.12:80", "weight 33");
    h.until("web2 weight", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 33")
    });
    h.set("198.51.100.11:80", "up");
    h.until("web1 back", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10")
    });
    // Shutdown: nannies gone, owned services removed, the foreign one kept.
    let fake = h.shutdown();
    assert_eq!(fake.borrow().listing(), ["-A -t 203.0.113.1:25 -s rr"]);
}

#[test]
fn foreign_services_are_never_read_in_detail_or_changed() {
    let mut h = Harness::new(BASE, "up", |k| {
        let mut d = Destination::new("203.0.113.9".parse().unwrap(), 25);
        d.weight = 3;
        k.borrow_mut().services.push((foreign(), vec![d]));
    });
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    h.ctl.repair();
    h.signals.raise(libc::SIGUSR2);
    h.run_for(Duration::from_millis(100));
    let fake = h.shutdown();
    let k = fake.borrow();
    assert_eq!(
        k.listing(),
        [
            "-A -t 203.0.113.1:25 -s rr",
            "-a -t 203.0.113.1:25 -r 203.0.113.9:25 -g -w 3"
        ]
    );
    assert!(k
        .applied
        .iter()
        .all(|c| change_service(c) != Some(foreign().id)));
}

#[test]
fn an_owned_service_found_at_start_is_adopted_and_fixed_up_without_dropping_servers() {
    let mut h = Harness::new(BASE, "silent", |k| {
        let mut s = Service::new(www());
        s.scheduler = "rr".into();
        let mut web1 = Destination::new("198.51.100.11".parse().unwrap(), 80);
        web1.forward = ipvs::ForwardMethod::Masq;
        web1.weight = 10;
        let stray = Destination::new("198.51.100.99".parse().unwrap(), 80);
        k.borrow_mut().services.push((s, vec![web1, stray]));
    });
    h.ctl.start();
    let l = h.listing();
    // Scheduler fixed in place, the stray destination removed, web1 kept while its nanny has
    // not reported.
    assert!(
        l.contains(&"-A -t 192.0.2.100:80 -s wlc".to_string()),
        "{l:?}"
    );
    assert!(l.contains(&"-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10".to_string()));
    assert!(!l.iter().any(|x| x.contains("198.51.100.99")));
    assert!(h
        .fake
        .borrow()
        .applied
        .iter()
        .all(|c| !matches!(c, Change::DeleteService(id) if *id == www())
            && !matches!(c, Change::AddService(s) if s.id == www())));
    // Its nanny stays silent: once settled, web1 goes.
    h.until("web1 removed after settling", |h| {
        !h.listing().iter().any(|l| l.contains("198.51.100.11"))
    });
    h.shutdown();
}

#[test]
fn drift_is_repaired_and_only_drift() {
    let mut h = Harness::new(BASE, "up", |_| {});
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    let before = h.listing();
    {
        let mut k = h.fake.borrow_mut();
        k.reset_counters();
        // Delete a service, a destination; edit a weight and a scheduler; add a stray server.
        k.services.retain(|(s, _)| s.id != dns());
        let www_entry = k.services.iter_mut().find(|(s, _)| s.id == www()).unwrap();
        www_entry.0.scheduler = "sh".into();
        www_entry
            .1
            .retain(|d| d.addr.to_string() != "198.51.100.11");
        www_entry.1[0].weight = 99;
        www_entry
            .1
            .push(Destination::new("198.51.100.200".parse().unwrap(), 80));
        k.services.push((foreign(), vec![]));
    }
    h.signals.raise(libc::SIGUSR2);
    h.run_for(Duration::from_millis(60));
    let mut want = before.clone();
    want.push("-A -t 203.0.113.1:25 -s rr".into());
    want.sort();
    assert_eq!(h.listing(), want);
    let applied: Vec<String> = h.fake.borrow().applied.iter().map(describe).collect();
    assert_eq!(applied.len(), 6, "{applied:?}");
    // A second repair finds nothing to do.
    h.fake.borrow_mut().reset_counters();
    h.ctl.repair();
    assert!(h.fake.borrow().applied.is_empty());
    h.shutdown();
}

#[test]
fn reload_scheduler_change_touches_only_that_service() {
    let mut h = Harness::new(BASE, "up", |k| {
        k.borrow_mut().services.push((foreign(), vec![]));
    });
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    let pids = h.ctl.nanny_pids();
    h.fake.borrow_mut().reset_counters();
    h.write_config(
        &BASE.replace("scheduler = wlc", "scheduler = wrr\n     persistent = 30"),
        "up",
    );
    h.signals.raise(libc::SIGHUP);
    h.run_for(Duration::from_millis(60));
    let k = h.fake.borrow();
    assert_eq!(
        k.applied.iter().map(describe).collect::<Vec<_>>(),
        ["-E -t 192.0.2.100:80 -s wrr -p 30"]
    );
    // Reads: that one service and its destinations, nothing else.
    assert_eq!(
        (k.service_list_reads, k.service_reads, k.dest_reads),
        (0, 1, 1)
    );
    drop(k);
    assert_eq!(h.ctl.nanny_pids(), pids, "no nanny restarted");
    h.shutdown();
}

#[test]
fn reload_real_server_changes_one_by_one_and_keeps_the_others_health() {
    let mut h = Harness::new(BASE, "up", |_| {});
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    // web2 runs at a reported weight different from its configured one: must survive reloads.
    h.set("198.51.100.12:80", "weight 17");
    h.until("web2 at 17", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 17")
    });
    let pids = h.ctl.nanny_pids();
    let key = |rip: &str| *pids.keys().find(|k| k.rip.to_string() == rip).unwrap();

    // 1. web1 removed from the config: only its destination goes, only its nanny stops.
    let without_web1 = BASE.replace(
        "     server web1 {\n         address = 198.51.100.11\n         active = 1\n         weight = 10\n     }\n",
        "",
    );
    h.fake.borrow_mut().reset_counters();
    h.write_config(&without_web1, "up");
    h.signals.raise(libc::SIGHUP);
    h.run_for(Duration::from_millis(60));
    assert_eq!(
        h.fake
            .borrow()
            .applied
            .iter()
            .map(describe)
            .collect::<Vec<_>>(),
        ["-d -t 192.0.2.100:80 -r 198.51.100.11:80"]
    );
    let now = h.ctl.nanny_pids();
    assert!(!now.contains_key(&key("198.51.100.11")));
    assert_eq!(now[&key("198.51.100.12")], pids[&key("198.51.100.12")]);
    assert!(h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 17"));
    h.until("web1's nanny reaped", |_| {
        !alive(pids[&key("198.51.100.11")])
    });

    // 2. web1 back: a new nanny, added after its first check.
    h.fake.borrow_mut().reset_counters();
    h.write_config(BASE, "up");
    h.signals.raise(libc::SIGHUP);
    h.until("web1 back", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10")
    });
    assert_eq!(
        h.fake
            .borrow()
            .applied
            .iter()
            .map(describe)
            .collect::<Vec<_>>(),
        ["-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10"]
    );
    assert!(h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 17"));

    // 3. web2's configured weight changes: its nanny restarts (new argv) and the kernel entry
    //    stays until the new nanny reports.
    let before = h.ctl.nanny_pids();
    h.fake.borrow_mut().reset_counters();
    h.write_config(&BASE.replace("weight = 20", "weight = 40"), "up");
    h.signals.raise(libc::SIGHUP);
    h.run_for(Duration::from_millis(30));
    let after = h.ctl.nanny_pids();
    assert_ne!(after[&key("198.51.100.12")], before[&key("198.51.100.12")]);
    assert_eq!(after[&key("198.51.100.11")], before[&key("198.51.100.11")]);
    assert_eq!(after[&key("198.51.100.21")], before[&key("198.51.100.21")]);
    // The file still says weight 17 for web2, so the new nanny reports "weight 17" first, then
    // nothing: remove the file so it reports up with its new weight.
    std::fs::remove_file(h.dir.path().join("198.51.100.12:80")).unwrap();
    h.until("web2 at 40", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 40")
    });
    assert!(h
        .fake
        .borrow()
        .applied
        .iter()
        .all(|c| !matches!(c, Change::DeleteDestination(..))));
    h.shutdown();
}

#[test]
fn reload_adds_removes_and_replaces_virtual_services() {
    let mut h = Harness::new(BASE, "up", |k| {
        k.borrow_mut().services.push((foreign(), vec![]));
    });
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    // dns removed, mark's port change does nothing (fwmark services have no port), a new
    // service added, www deactivated.
    let text = BASE
        .replace("virtual dns {", "virtual dns2 {")
        .replace(
            "192.0.2.101 eth0:2\n     port = 53",
            "192.0.2.104 eth0:2\n     port = 5353",
        )
        .replacen(
            "     active = 1\n     address = 192.0.2.100",
            "     active = 0\n     address = 192.0.2.100",
            1,
        );
    h.write_config(&text, "up");
    h.fake.borrow_mut().reset_counters();
    h.signals.raise(libc::SIGHUP);
    h.until("dns2 up", |h| {
        h.has("-a -u 192.0.2.104:5353 -r 198.51.100.21:5353 -m -w 5")
    });
    assert_eq!(
        h.listing(),
        [
            "-A -f 7 -s wlc",
            "-A -t 203.0.113.1:25 -s rr",
            "-A -u 192.0.2.104:5353 -s rr",
            "-a -f 7 -r 198.51.100.31:8443 -m -w 1",
            "-a -u 192.0.2.104:5353 -r 198.51.100.21:5353 -m -w 5",
        ]
    );
    let applied: Vec<String> = h.fake.borrow().applied.iter().map(describe).collect();
    assert!(applied.contains(&"-D -t 192.0.2.100:80".to_string()));
    assert!(applied.contains(&"-D -u 192.0.2.101:53".to_string()));
    assert!(applied.iter().all(|c| !c.contains("-f 7")), "{applied:?}");
    assert_eq!(h.ctl.nanny_pids().len(), 2);
    h.shutdown();
}

#[test]
fn a_config_with_errors_is_refused_and_the_running_state_kept() {
    let mut h = Harness::new(BASE, "up", |_| {});
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    let pids = h.ctl.nanny_pids();
    h.fake.borrow_mut().reset_counters();
    for bad in [
        BASE.replace("scheduler = rr", "scheduler = bogus"),
        BASE.replace(
            "timeout = 1\n     reentry = 1\n     client_monitor = MONITOR\n     server ns1",
            "timeout = 0\n     client_monitor = MONITOR\n     server ns1",
        ),
        String::new(),
    ] {
        h.write_config(&bad, "up");
        h.signals.raise(libc::SIGHUP);
        h.run_for(Duration::from_millis(30));
    }
    assert!(h.fake.borrow().applied.is_empty());
    assert_eq!(h.ctl.nanny_pids(), pids);
    assert_eq!(h.ctl.config().virtual_servers[0].scheduler.name(), "wlc");
    h.shutdown();
}

/// The nice value of a process, from /proc/PID/stat (field 19).
fn nice_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(16).unwrap().parse().unwrap()
}

#[test]
fn nannies_run_below_lvsd_priority() {
    // Set before any nanny of this test starts (other tests never set it).
    let nice = crate::priority::set_nanny_nice(5);
    let own = nice_of(std::process::id() as i32);
    assert_eq!(nice, (own + 5).min(19));
    let mut h = Harness::new(BASE, "up", |_| {});
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    let pids: Vec<i32> = h.ctl.nanny_pids().values().copied().collect();
    assert_eq!(pids.len(), 4);
    for pid in pids {
        assert_eq!(nice_of(pid), nice, "nanny {pid}");
    }
    h.shutdown();
}

#[test]
fn hard_shutdown_one_a_dead_nanny_shuts_lvsd_down() {
    let mut h = Harness::new(BASE, "up", |k| {
        k.borrow_mut().services.push((foreign(), vec![]));
    });
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    h.set("198.51.100.21:53", "exit 3");
    h.until("exit", |h| h.ctl.exit_reason().is_some());
    assert_eq!(h.ctl.exit_reason(), Some(&ExitReason::NannyDied));
    let fake = h.shutdown();
    assert_eq!(fake.borrow().listing(), ["-A -t 203.0.113.1:25 -s rr"]);
}

#[test]
fn hard_shutdown_zero_restarts_the_nanny_with_backoff() {
    let text = BASE.replace("hard_shutdown = 1", "hard_shutdown = 0");
    let mut h = Harness::new(&text, "up", |_| {});
    h.ctl.start();
    h.until("all up", |h| h.all_up());
    let key = *h
        .ctl
        .nanny_pids()
        .keys()
        .find(|k| k.rip.to_string() == "198.51.100.21")
        .unwrap();
    let first = h.ctl.nanny_pids()[&key];
    supervisor::signal(first, libc::SIGKILL);
    h.signals.raise(libc::SIGCHLD);
    h.until("nanny restarted", |h| {
        h.ctl.nanny_pids().get(&key).is_some_and(|p| *p != first)
    });
    assert!(h.ctl.exit_reason().is_none());
    // The server stayed in the table the whole time.
    assert!(h.has("-a -u 192.0.2.101:53 -r 198.51.100.21:53 -m -w 5"));
    assert!(h
        .fake
        .borrow()
        .applied
        .iter()
        .all(|c| !matches!(c, Change::DeleteDestination(..))));
    // A nanny that keeps dying is restarted with growing delays, never shuts lvsd down.
    h.set("198.51.100.21:53", "exit 1");
    h.run_for(Duration::from_millis(1500));
    assert!(h.ctl.exit_reason().is_none());
    // Its server settles down (nothing reports it up) and leaves the table.
    h.until("ns1 removed", |h| {
        !h.listing().iter().any(|l| l.contains("198.51.100.21"))
    });
    // Each nanny that ended left the event poller's list: only running ones are watched.
    assert!(
        h.ctl.tokens.len() <= h.ctl.nanny_pids().len(),
        "{} watched, {} running",
        h.ctl.tokens.len(),
        h.ctl.nanny_pids().len()
    );
    h.shutdown();
}

#[test]
fn missing_client_monitor_is_a_nanny_death() {
    let text = BASE.replace(
        "     client_monitor = MONITOR\n     server ns1",
        "     client_monitor = /nonexistent/nanny\n     server ns1",
    );
    let mut h = Harness::new(&text, "up", |_| {});
    h.ctl.start();
    assert_eq!(h.ctl.exit_reason(), Some(&ExitReason::NannyDied));
    let fake = h.shutdown();
    assert!(fake.borrow().listing().is_empty());
}

const SORRY: &str = "virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     port = 80
     timeout = 1
     reentry = 1
     sorry_server = 198.51.100.99
     client_monitor = MONITOR
     server web1 {
         address = 198.51.100.11
         active = 1
         weight = 10
     }
     server web2 {
         address = 198.51.100.12
         active = 1
         weight = 20
     }
}
";

#[test]
fn sorry_server_never_flaps_at_start_when_servers_come_up() {
    let mut h = Harness::new(SORRY, "up", |_| {});
    h.ctl.start();
    h.until("both up", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w 10")
            && h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 20")
    });
    h.run_for(Duration::from_millis(1500));
    assert!(h
        .fake
        .borrow()
        .applied
        .iter()
        .all(|c| !describe(c).contains("198.51.100.99")));
    h.shutdown();
}

#[test]
fn sorry_server_comes_when_all_are_down_and_goes_when_one_is_back() {
    let mut h = Harness::new(SORRY, "silent", |_| {});
    h.ctl.start();
    // Not before every server has settled (timeout 1 s + 0.3 s margin).
    let t0 = Instant::now();
    h.until("sorry on", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.99:80 -m -w 1")
    });
    assert!(
        t0.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        t0.elapsed()
    );
    assert!(h.ctl.sorry_on(&www()));
    h.set("198.51.100.12:80", "up");
    h.until("web2 up and sorry off", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 20")
            && !h.listing().iter().any(|l| l.contains("198.51.100.99"))
    });
    h.set("198.51.100.12:80", "quiesce");
    h.until("sorry back beside the quiesced server", |h| {
        h.has("-a -t 192.0.2.100:80 -r 198.51.100.99:80 -m -w 1")
            && h.has("-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 0")
    });
    // Repair keeps it (it is desired).
    h.fake.borrow_mut().reset_counters();
    h.ctl.repair();
    assert!(h.fake.borrow().applied.is_empty());
    let fake = h.shutdown();
    assert!(fake.borrow().listing().is_empty());
}

#[test]
fn test_start_changes_nothing_and_runs_no_nanny() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("lvs.cf");
    std::fs::write(&cfg_path, config_text("/nonexistent/nanny", BASE)).unwrap();
    let (config, _) = load_config(&cfg_path, &StaticResolver::standard()).unwrap();
    let mut opts = Options::new(&cfg_path);
    opts.test_start = true;
    opts.settle_margin = Duration::from_millis(10);
    let mut ctl = Controller::new(
        opts,
        config,
        Table::dry_run(),
        Box::new(StaticResolver::standard()),
    );
    ctl.start();
    assert!(ctl.exit_reason().is_none());
    assert!(ctl.nanny_pids().is_empty());
    let signals = Signals::new().unwrap();
    signals.raise(libc::SIGHUP);
    ctl.step(&signals, Duration::from_millis(10));
    signals.raise(libc::SIGTERM);
    ctl.step(&signals, Duration::from_millis(10));
    assert_eq!(ctl.exit_reason(), Some(&ExitReason::Signal(libc::SIGTERM)));
    ctl.shutdown();
    assert_eq!(ctl.counters().reads, 0);
}

#[test]
fn term_signal_ends_the_loop() {
    let mut h = Harness::new(BASE, "up", |_| {});
    h.ctl.start();
    h.signals.raise(libc::SIGINT);
    let r = h.ctl.run(&h.signals);
    assert_eq!(r, ExitReason::Signal(libc::SIGINT));
    let fake = h.shutdown();
    assert!(fake.borrow().listing().is_empty());
}

#[test]
fn bad_report_lines_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("chatty");
    std::fs::write(
        &script,
        "#!/bin/bash\nfd=$NANNY_REPORT_FD\necho 'nanny 1 1 10.9.9.9:1' >&$fd\necho 'bogus line' >&$fd\necho 'up x' >&$fd\necho 'up 4 fine' >&$fd\nexec sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = "virtual v {\n     active = 1\n     address = 192.0.2.1 eth0:1\n     timeout = 1\n     client_monitor = SCRIPT\n     server s {\n         address = 198.51.100.1\n         active = 1\n     }\n}\n"
        .replace("SCRIPT", &script.display().to_string());
    let cfg_path = dir.path().join("lvs.cf");
    std::fs::write(&cfg_path, text).unwrap();
    let (config, _) = load_config(&cfg_path, &StaticResolver::standard()).unwrap();
    let fake = FakeKernel::shared();
    let mut ctl = Controller::new(
        Options::new(&cfg_path),
        config,
        Table::kernel(Box::new(fake.clone())),
        Box::new(StaticResolver::standard()),
    );
    ctl.start();
    let signals = Signals::new().unwrap();
    let t0 = Instant::now();
    while !fake
        .borrow()
        .listing()
        .contains(&"-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 4".to_string())
    {
        assert!(t0.elapsed() < Duration::from_secs(10));
        ctl.step(&signals, Duration::from_millis(20));
    }
    ctl.shutdown();
    assert!(fake.borrow().listing().is_empty());
}
