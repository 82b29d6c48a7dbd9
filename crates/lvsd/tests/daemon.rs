//! The real `lvsd` binary as a daemon, on a host without IPVS: `-t` (test start) mode, which
//! changes nothing and runs no nanny but logs what it would do, in the foreground and detached.
//! The kernel side is covered by the real-kernel VM scenarios (integration-tests/vm/lvsd-scenarios).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const CONFIG: &str = "tcp_timeout = 900
virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     port = 80
     scheduler = wlc
     timeout = 1
     sorry_server = 198.51.100.99
     server web1 {
         address = 198.51.100.11
         active = 1
         weight = 10
     }
}
virtual dns {
     active = 1
     address = 192.0.2.101 eth0:2
     port = 53
     protocol = udp
     server ns1 {
         address = 198.51.100.21
         active = 1
     }
}
";

fn lvsd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lvsd"));
    // No status file for piranha-gui from tests (the default is /run/piranha).
    c.env("PIRANHA_STATUS_DIR", "");
    c
}

struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], cfg: &Path) -> Running {
        let mut child = lvsd()
            .args(args)
            .arg("-c")
            .arg(cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `text`; returns it.
    fn expect(&mut self, text: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let t0 = Instant::now();
        loop {
            let left = Duration::from_secs(10).saturating_sub(t0.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {text:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait(mut self) -> (i32, Vec<String>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), self.seen)
    }
}

#[test]
fn test_start_in_the_foreground_logs_the_plan_reloads_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lvs.cf");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut r = Running::start(&["-n", "-t", "--repair-interval", "0"], &cfg);
    r.expect("test start: would apply: ipvsadm --set 900 0 0");
    r.expect("test start: would apply (virtual service www): ipvsadm -A -t 192.0.2.100:80 -s wlc");
    r.expect("test start: would apply (virtual service dns): ipvsadm -A -u 192.0.2.101:53 -s wlc");
    let line = r.expect("2 virtual services in the kernel (2 added, 0 adopted");
    assert!(line.ends_with(" ms after start"), "{line}");
    // Piranha's exact nanny argument vector, --nodaemon because of -n.
    r.expect(
        "test start: would run for www/web1: /usr/sbin/nanny -c -h 198.51.100.11 -p 80 -r 80 \
         -a 180 -I /sbin/ipvsadm -t 1 -w 10 -V 192.0.2.100 -M m --nodaemon --lvs",
    );
    r.expect(
        "test start: would run for dns/ns1: /usr/sbin/nanny -c -h 198.51.100.21 -p 53 -r 53 -u",
    );
    // No nanny ever reports: once web1 has settled (timeout 1 s + 2 s), the sorry server.
    r.expect("Virtual Server www: No real servers; activate sorry_server 198.51.100.99");
    r.expect("ipvsadm -a -t 192.0.2.100:80 -r 198.51.100.99:80 -m -w 1");

    // Reload: a scheduler change is an edit in place; dns is untouched.
    std::fs::write(&cfg, CONFIG.replace("scheduler = wlc", "scheduler = rr")).unwrap();
    r.signal(libc::SIGHUP);
    r.expect("reload: virtual server www: scheduler changed");
    r.expect("ipvsadm -E -t 192.0.2.100:80 -s rr");
    let done = r.expect("configuration reloaded in ");
    assert!(
        done.contains("virtual services 0 added, 0 removed, 1 changed, 1 untouched"),
        "{done}"
    );
    // The time from the signal (taken in its handler), at least the reload's own.
    let figure = |after: &str| -> f64 {
        let rest = &done[done.find(after).expect(after) + after.len()..];
        rest[..rest.find(" ms").expect("ms")]
            .parse()
            .expect("a number")
    };
    let own = figure("reloaded in ");
    let since = figure(" ms, ");
    assert!(done.contains(" ms after SIGHUP (file read"), "{done}");
    assert!(since >= own, "{done}");
    assert!(
        done.contains("nannies 0 started, 0 restarted, 0 stopped, 2 kept"),
        "{done}"
    );

    // A broken config is refused.
    std::fs::write(&cfg, CONFIG.replace("scheduler = wlc", "scheduler = nope")).unwrap();
    r.signal(libc::SIGHUP);
    r.expect("configuration not reloaded");

    r.signal(libc::SIGUSR1);
    r.expect("status: virtual service www (-t 192.0.2.100:80): sorry server on");
    r.expect("status: www/web1 (tcp 192.0.2.100:80 -> 198.51.100.11:80): down; no nanny");

    r.signal(libc::SIGTERM);
    let (code, lines) = r.wait();
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let tail = lines.join("\n");
    assert!(tail.contains("shutting down due to signal 15"));
    assert!(tail.contains("ipvsadm -D -t 192.0.2.100:80"));
    assert!(tail.contains("ipvsadm -D -u 192.0.2.101:53"));
}

#[test]
fn detached_it_writes_its_pid_file_refuses_a_second_instance_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lvs.cf");
    std::fs::write(&cfg, CONFIG).unwrap();
    let pidfile = dir.path().join("lvs.pid");
    let out = lvsd()
        .args(["-t", "--pidfile"])
        .arg(&pidfile)
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    // The parent returns at once; the daemon goes on.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    let pid = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signal 0 checks existence.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0);
    let second = lvsd()
        .args(["-t", "--pidfile"])
        .arg(&pidfile)
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("is lvsd already running?"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // SAFETY: SIGTERM to the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t0 = Instant::now();
    while pidfile.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pid file left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_config_with_errors_is_refused_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lvs.cf");
    std::fs::write(
        &cfg,
        CONFIG.replace(
            "     timeout = 1\n     sorry",
            "     timeout = 0\n     sorry",
        ),
    )
    .unwrap();
    let out = lvsd().args(["-n", "-t", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("lvsd: error in {} at line 7:", cfg.display())),
        "{err}"
    );
    assert!(err.ends_with("lvsd: not starting\n"), "{err}");
    assert!(out.stdout.is_empty());
    std::fs::write(&cfg, "virtual v {\n").unwrap();
    let out = lvsd().args(["-n", "-t", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "lvsd: error parsing {} at line 1: unexpected end of file\nlvsd: not starting\n",
            cfg.display()
        )
    );
}
