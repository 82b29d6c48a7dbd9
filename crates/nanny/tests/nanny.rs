//! The real nanny binary against real TCP and UDP servers on 127.0.0.1, in report mode (lines on
//! a pipe, as lvsd reads them) and legacy mode (a recording stand-in for ipvsadm).
//!
//! Every wait polls for the expected outcome with a deadline; nothing relies on a fixed sleep
//! except the few checks that something does *not* happen.

mod common;

use std::time::Duration;

use common::*;

fn p(port: u16) -> String {
    port.to_string()
}

const OK: &str = "HTTP/1.0 200 OK\r\n\r\n";

/// `-t 1 -a A -p VPORT -r RPORT --lvs` plus extra arguments.
fn base(port: u16, reentry: u32, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        "8080",
        "-r",
        &p(port),
        "-t",
        "1",
        "-a",
        &reentry.to_string(),
        "-V",
        "10.0.0.1",
        "--lvs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn report_mode_up_down_up_with_hello_and_markers() {
    let mut srv = TcpServer::start(Reply::text(OK));
    let args = base(
        srv.port,
        2,
        &["-s", "GET / HTTP/1.0\\r\\n\\r\\n", "-x", "HTTP", "-w", "64"],
    );
    let n = report_nanny(&strs(&args));
    // The hello is the first line: version, pid, server.
    assert_eq!(
        n.reports.nth(1),
        format!("nanny 1 {} 127.0.0.1:{}", n.pid(), srv.port)
    );
    assert_eq!(n.reports.nth(2), "up 2 check passed");
    // The escapes were converted: the server saw CR LF CR LF.
    assert!(srv
        .requests()
        .iter()
        .any(|r| r == b"GET / HTTP/1.0\r\n\r\n"));
    n.log.find_from(
        0,
        &format!("[ active ] making 127.0.0.1:{} available", srv.port),
    );
    n.log.find_from(
        0,
        &format!(
            "starting LVS client monitor for 10.0.0.1:8080 -> 127.0.0.1:{}",
            srv.port
        ),
    );

    srv.stop();
    assert_eq!(
        n.reports.nth(3),
        format!(
            "down CONNECT to 127.0.0.1:{} failed: Connection refused",
            srv.port
        )
    );
    n.log.find_from(
        0,
        &format!(
            "[inactive] shutting down 127.0.0.1:{} due to connection failure",
            srv.port
        ),
    );

    srv.restart();
    assert_eq!(n.reports.nth(4), "up 2 check passed");
    assert_eq!(n.reports.all().len(), 4);
}

#[test]
fn hello_through_the_environment_variable() {
    let srv = TcpServer::start(Reply::Close);
    let args = base(srv.port, 1, &[]);
    let n = report_nanny_env(&strs(&args));
    assert_eq!(
        n.reports.nth(1),
        format!("nanny 1 {} 127.0.0.1:{}", n.pid(), srv.port)
    );
    // No send/expect on a port other than 80: connecting is the check.
    assert_eq!(n.reports.nth(2), "up 1 check passed");
}

#[test]
fn reentry_needs_consecutive_successes() {
    let mut srv = TcpServer::start(Reply::Close);
    let args = base(srv.port, 3, &[]);
    let n = report_nanny(&strs(&args));
    n.reports.nth(2);
    srv.stop();
    n.reports.nth(3);
    let down_at = std::time::Instant::now();
    srv.restart();
    n.reports
        .wait_for("second up", |l| l.len() >= 4 && l[3].starts_with("up 1"));
    // -a 3 -t 1: three passing checks, about two seconds after the first one.
    assert!(
        down_at.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        down_at.elapsed()
    );
}

#[test]
fn wrong_reply_then_right_reply() {
    let srv = TcpServer::start(Reply::text("SSH-2.0-OpenSSH_9.2\r\n"));
    let args = base(
        srv.port,
        1,
        &["-s", "GET / HTTP/1.0\\r\\n\\r\\n", "-x", "HTTP/1.0 200"],
    );
    let n = report_nanny(&strs(&args));
    n.log.find_from(
        0,
        "did not match the expected reply (got \"SSH-2.0-OpenSSH_9.2\\r\\n\")",
    );
    // The hello line is read by another thread than the log: wait for it, then check that
    // nothing followed it.
    n.reports.nth(1);
    assert_eq!(n.reports.all().len(), 1, "no up for a wrong reply");
    srv.set_reply(Reply::text(OK));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    srv.set_reply(Reply::text("HTTP/1.0 503 Busy\r\n\r\n"));
    assert!(n.reports.nth(3).starts_with("down READ from 127.0.0.1:"));
}

#[test]
fn short_reply_is_too_short() {
    let srv = TcpServer::start(Reply::text("HT"));
    let args = base(srv.port, 1, &["-s", "x", "-x", "HTTP"]);
    let n = report_nanny(&strs(&args));
    n.log.find_from(
        0,
        &format!("READ from 127.0.0.1:{} was too short[2>=4]", srv.port),
    );
}

#[test]
fn split_reply_is_read_to_the_end() {
    // Piranha judged one read(): "HT" alone failed.
    let srv = TcpServer::start(Reply::Chunks(vec![
        (Duration::ZERO, b"HT".to_vec()),
        (Duration::from_millis(150), b"TP/1.0 ".to_vec()),
        (Duration::from_millis(150), b"200 OK\r\n\r\n".to_vec()),
    ]));
    let args = base(srv.port, 1, &["-s", "GET /", "-x", "HTTP/1.0 200 OK"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
}

#[test]
fn slow_reply_within_and_beyond_the_timeout() {
    let srv = TcpServer::start(Reply::delayed(Duration::from_millis(400), OK));
    let args = base(srv.port, 1, &["-s", "GET /", "-x", "HTTP"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    srv.set_reply(Reply::delayed(Duration::from_millis(2500), OK));
    assert_eq!(
        n.reports.nth(3),
        format!("down READ to 127.0.0.1:{} timed out", srv.port)
    );
    srv.set_reply(Reply::text(OK));
    assert_eq!(n.reports.nth(4), "up 1 check passed");
}

#[test]
fn regex_expect() {
    let srv = TcpServer::start(Reply::text("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"));
    let args = base(
        srv.port,
        1,
        &[
            "--regex",
            "-s",
            "GET / HTTP/1.1\\r\\n\\r\\n",
            "-x",
            "^HTTP/1\\.[01] 200 ",
        ],
    );
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    srv.set_reply(Reply::text("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
    assert!(
        n.reports.nth(3).starts_with("down READ from"),
        "{:?}",
        n.reports.all()
    );
    // A match split over two segments.
    srv.set_reply(Reply::Chunks(vec![
        (Duration::ZERO, b"HTTP/1.".to_vec()),
        (Duration::from_millis(100), b"0 200 OK\r\n".to_vec()),
    ]));
    assert_eq!(n.reports.nth(4), "up 1 check passed");
}

#[test]
fn regex_is_posix_ere_on_the_whole_reply() {
    // A binary greeting: the text to match comes after NUL bytes (Piranha's regexec saw nothing).
    let srv = TcpServer::start(Reply::Chunks(vec![(
        Duration::ZERO,
        b"\0\x01\0+OK [[ready]] 42\r\n".to_vec(),
    )]));
    let args = base(
        srv.port,
        1,
        &[
            "--regex",
            "-x",
            "(\\+OK|READY) \\[\\[[[:lower:]]+]] [0-9]{1,3}\r\n$",
        ],
    );
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    // `\d` is not a digit class in POSIX ERE but an escaped `d`.
    srv.set_reply(Reply::text("dd 42\n"));
    let args = base(srv.port, 1, &["--regex", "-x", "^\\d\\d [0-9]+"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
}

#[test]
fn default_http_probe_on_port_80() {
    let srv = TcpServer::start(Reply::text(OK));
    let n = report_nanny(&[
        "-h",
        "127.0.0.1",
        "-p",
        "80",
        "-r",
        &p(srv.port),
        "-t",
        "1",
        "-a",
        "1",
        "--lvs",
    ]);
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    n.log.find_from(
        0,
        "nanny: no monitor configured, assuming web service on port 80",
    );
    assert!(srv
        .requests()
        .iter()
        .any(|r| r == b"GET / HTTP/1.0\r\n\r\n"));
}

#[test]
fn flapping_server_alternates_up_and_down() {
    let mut srv = TcpServer::start(Reply::Close);
    let args = base(srv.port, 1, &[]);
    let n = report_nanny(&strs(&args));
    n.reports.nth(2);
    for i in 0..3 {
        srv.stop();
        n.reports.wait_for("down", |l| l.len() >= 3 + 2 * i);
        srv.restart();
        n.reports.wait_for("up", |l| l.len() >= 4 + 2 * i);
    }
    let r = n.reports.all();
    for (k, line) in r.iter().enumerate().skip(1) {
        let want = if k % 2 == 1 { "up 1 " } else { "down " };
        assert!(line.starts_with(want), "{r:#?}");
    }
}

#[test]
fn udp_send_expect_and_icmp_unreachable() {
    let mut srv = UdpServer::start(Some(b"pong"));
    let args = base(srv.port, 1, &["-u", "-s", "ping", "-x", "pong"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    assert!(srv.requests().iter().any(|r| r == b"ping"));
    // The port closes: ICMP port unreachable arrives as ECONNREFUSED.
    srv.stop();
    assert_eq!(
        n.reports.nth(3),
        format!(
            "down READ returned error 111:Connection refused (127.0.0.1:{})",
            srv.port
        )
    );
    srv.restart();
    assert_eq!(n.reports.nth(4), "up 1 check passed");
}

#[test]
fn udp_without_expect_any_datagram_and_silence() {
    // Piranha crashed here (NULL expect string).
    let srv = UdpServer::start(Some(b"whatever"));
    let args = base(srv.port, 1, &["-u", "-s", "hello"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    // No answer at all: a timeout.
    let quiet = UdpServer::start(None);
    let args = base(quiet.port, 1, &["-u"]);
    let m = report_nanny(&strs(&args));
    m.log
        .find_from(0, &format!("READ to 127.0.0.1:{} timed out", quiet.port));
    m.log.find_from(0, "UDP check without a send string");
    // Without a send string an empty datagram goes out.
    assert!(quiet.requests().iter().any(Vec::is_empty));
    m.reports.nth(1);
    assert_eq!(m.reports.all().len(), 1);
}

#[test]
fn external_program_with_substitution_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // Prints OK unless the file "fail" exists; records its arguments and whether it saw the
    // report descriptor variable (it must not).
    let prog = script(
        dir.path(),
        "check",
        &format!(
            "echo \"$@\" > {d}/args\n\
             [ -n \"$NANNY_REPORT_FD\" ] && echo leaked > {d}/leak\n\
             [ -e {d}/fail ] && exit 3\n\
             echo OK"
        ),
    );
    let cmd = format!("{prog} %h %p --host=%h");
    let args = base(8081, 1, &["-e", &cmd, "-x", "OK", "-s", "ignored"]);
    let n = report_nanny_env(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args")).unwrap(),
        "127.0.0.1 8081 --host=%h\n"
    );
    assert!(!dir.path().join("leak").exists());
    n.log.find_from(0, "IGNORING send string option (ignored)");
    std::fs::write(dir.path().join("fail"), "").unwrap();
    assert_eq!(
        n.reports.nth(3),
        format!(
            "down The following exited abnormally: {prog} 127.0.0.1 8081 --host=%h (exit status 3)"
        )
    );
    std::fs::remove_file(dir.path().join("fail")).unwrap();
    assert_eq!(n.reports.nth(4), "up 1 check passed");
}

#[test]
fn external_program_output_rules() {
    let dir = tempfile::tempdir().unwrap();
    // Exit 0 without an expect string: success, whatever the output (Piranha: failure).
    let chatty = script(dir.path(), "chatty", "echo some output");
    let args = base(8082, 1, &["-e", &chatty]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    // Wrong output with an expect string: failure.
    let wrong = script(dir.path(), "wrong", "echo NOT OK");
    let args = base(8083, 1, &["-e", &wrong, "-x", "OK"]);
    let m = report_nanny(&strs(&args));
    m.log.find_from(
        0,
        "Trouble. Received results are not what we expected from (127.0.0.1:8083): got \"NOT OK\"",
    );
    // A program that cannot be found: failure, logged.
    let args = base(8084, 1, &["-e", "/nonexistent/check %h"]);
    let k = report_nanny(&strs(&args));
    k.log
        .find_from(0, "could not run /nonexistent/check 127.0.0.1");
    m.reports.nth(1);
    k.reports.nth(1);
    assert_eq!(m.reports.all().len(), 1);
    assert_eq!(k.reports.all().len(), 1);
    // A bare name is looked up in PATH (execvp), and stdin is /dev/null (cat ends at once).
    let args = base(8087, 1, &["-e", "cat"]);
    let c = report_nanny(&strs(&args));
    assert_eq!(c.reports.nth(2), "up 1 check passed");
}

#[test]
fn external_program_timeout_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // Hangs (after recording its pid) once the file "hang" exists.
    let prog = script(
        dir.path(),
        "check",
        &format!("if [ -e {d}/hang ]; then echo $$ > {d}/pid; exec sleep 30; fi\necho OK"),
    );
    let args = base(8085, 1, &["-e", &prog, "-x", "OK"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 1 check passed");
    std::fs::write(dir.path().join("hang"), "").unwrap();
    assert_eq!(
        n.reports.nth(3),
        format!("down timeout running the following: {prog}")
    );
    let pid: i32 = eventually("pid file", || {
        std::fs::read_to_string(dir.path().join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    eventually("the hung check to be killed", || {
        (!alive(pid)).then_some(())
    });
}

#[test]
fn sigterm_during_external_check_kills_it_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let prog = script(
        dir.path(),
        "check",
        &format!("echo $$ > {d}/pid.tmp; mv {d}/pid.tmp {d}/pid; exec sleep 60"),
    );
    let args = base(8086, 1, &["-e", &prog, "-x", "OK", "-t", "30"]);
    let mut n = report_nanny(&strs(&args));
    let pid: i32 = eventually("pid file", || {
        std::fs::read_to_string(dir.path().join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    assert!(alive(pid));
    n.signal(libc::SIGTERM);
    let status = n.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(!alive(pid), "the check program survived");
    n.log.find_from(0, "Terminating due to signal 15");
    // It was never up: no down line.
    n.reports.nth(1);
    assert_eq!(n.reports.all().len(), 1);
}

#[test]
fn quiesce_keeps_the_entry() {
    let mut srv = TcpServer::start(Reply::Close);
    let args = base(srv.port, 1, &["-q", "-w", "64"]);
    let n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 2 check passed");
    srv.stop();
    assert!(
        n.reports.nth(3).starts_with("quiesce CONNECT to"),
        "{:?}",
        n.reports.all()
    );
    srv.restart();
    assert_eq!(n.reports.nth(4), "up 2 check passed");
}

#[test]
fn signals_force_down_force_up_resume_and_terminate() {
    let srv = TcpServer::start(Reply::Close);
    let args = base(srv.port, 1, &["-w", "64"]);
    let mut n = report_nanny(&strs(&args));
    assert_eq!(n.reports.nth(2), "up 2 check passed");
    n.signal(libc::SIGUSR1);
    assert_eq!(n.reports.nth(3), "down forced down (SIGUSR1)");
    n.log.find_from(0, "opaque glasses on");
    // Monitoring is suspended: the healthy server is not re-added.
    n.reports.quiet_for(Duration::from_millis(2500));
    n.signal(libc::SIGUSR2);
    assert_eq!(n.reports.nth(4), "up 64 forced up (SIGUSR2)");
    n.log.find_from(0, "rose-colored glasses on");
    n.signal(libc::SIGHUP);
    n.log.find_from(0, "DEBUG -- removing glasses");
    n.signal(libc::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0));
    assert_eq!(n.reports.nth(5), "down terminating on signal 15");
    n.log.find_from(0, "Terminating due to signal 15");
    assert_eq!(n.reports.all().len(), 5);
}

#[test]
fn sigint_when_inactive_just_exits() {
    let srv = TcpServer::start(Reply::text("nope"));
    let args = base(srv.port, 1, &["-s", "x", "-x", "HTTP"]);
    let mut n = report_nanny(&strs(&args));
    n.log.find_from(0, "did not match");
    n.signal(libc::SIGINT);
    assert_eq!(n.wait_exit().code(), Some(0));
    n.log.find_from(0, "Terminating due to signal 2");
    n.reports.nth(1);
    assert_eq!(n.reports.all().len(), 1);
}

#[test]
fn closed_report_pipe_makes_nanny_exit() {
    let srv = TcpServer::start(Reply::Close);
    let args = base(srv.port, 1, &[]);
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(nanny_bin());
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors (close-on-exec, so other tests' children do not
    // inherit them and keep the read end open).
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let wfd = fds[1];
    cmd.args(["-n", "-c", "--report-fd", &wfd.to_string()])
        .args(&args)
        .stdout(std::process::Stdio::null());
    // SAFETY: fcntl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(wfd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // SAFETY: closing our copies; the child keeps its write end.
    unsafe {
        libc::close(fds[1]);
        libc::close(fds[0]);
    }
    let status = eventually("nanny to exit", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(1));
}

#[test]
fn load_monitor_adjusts_the_weight() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let uptime = script(
        dir.path(),
        "getload",
        &format!("echo \"$@\" > {d}/args\necho ' 10:01:02 up 3 days,  2:03,  2 users,  load average: 0.00, 0.01, 0.05'"),
    );
    let mut srv = TcpServer::start(Reply::Close);
    srv.stop();
    // -a 19 -t 1: the check after SIGHUP makes the count 20, when the weight is adjusted.
    let args = base(srv.port, 19, &["-w", "8", "-U", &uptime]);
    let n = report_nanny(&strs(&args));
    n.log.find_from(0, "starting LVS client monitor");
    n.signal(libc::SIGUSR2);
    assert_eq!(n.reports.nth(2), "up 8 forced up (SIGUSR2)");
    srv.restart();
    n.signal(libc::SIGHUP);
    // 8 + (8/2)·∛1 = 12.
    assert_eq!(n.reports.nth(3), "weight 12 load 0.00");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args")).unwrap(),
        "127.0.0.1\n"
    );
}

// ---- legacy mode ---------------------------------------------------------------------------

fn recorder(dir: &std::path::Path, exit: i32) -> (String, std::path::PathBuf) {
    let log = dir.join("calls");
    let prog = script(
        dir,
        "ipvsadm",
        &format!("echo \"$0 $*\" >> {}\nexit {exit}", log.display()),
    );
    (prog, log)
}

fn calls(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_calls(log: &std::path::Path, n: usize) -> Vec<String> {
    eventually(&format!("{n} ipvsadm calls"), || {
        let c = calls(log);
        (c.len() >= n).then_some(c)
    })
}

#[test]
fn legacy_mode_runs_piranhas_ipvsadm_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let (ipvsadm, log) = recorder(dir.path(), 0);
    let mut srv = TcpServer::start(Reply::text(OK));
    let n = legacy_nanny(&[
        "-h",
        "127.0.0.1",
        "-p",
        "80",
        "-r",
        &p(srv.port),
        "-t",
        "1",
        "-a",
        "19",
        "-I",
        &ipvsadm,
        "-V",
        "10.0.0.1",
        "-M",
        "g",
        "-w",
        "64",
        "-s",
        "GET / HTTP/1.0\\r\\n\\r\\n",
        "-x",
        "HTTP",
        "--lvs",
    ]);
    let rs = format!("127.0.0.1:{}", srv.port);
    // Admitted at 64 >> 5 = 2; count 20 at once, so the first slow-start step follows.
    let c = wait_calls(&log, 2);
    assert_eq!(
        c,
        [
            format!("{ipvsadm} -a -t 10.0.0.1:80 -r {rs} -g -w 2"),
            format!("{ipvsadm} -e -t 10.0.0.1:80 -r {rs} -g -w 4"),
        ]
    );
    srv.stop();
    let c = wait_calls(&log, 3);
    assert_eq!(c[2], format!("{ipvsadm} -d -t 10.0.0.1:80 -r {rs}"));
    n.log.find_from(0, "[inactive] shutting down");
}

#[test]
fn legacy_mode_udp_quiesce_and_terminate() {
    let dir = tempfile::tempdir().unwrap();
    let (ipvsadm, log) = recorder(dir.path(), 0);
    let mut srv = UdpServer::start(Some(b"ok"));
    let mut n = legacy_nanny(&[
        "-h",
        "127.0.0.1",
        "-p",
        "53",
        "-r",
        &p(srv.port),
        "-u",
        "-q",
        "-t",
        "1",
        "-a",
        "1",
        "-I",
        &ipvsadm,
        "-V",
        "10.0.0.1",
        "-s",
        "q",
        "--lvs",
    ]);
    let rs = format!("127.0.0.1:{}", srv.port);
    wait_calls(&log, 1);
    srv.stop();
    wait_calls(&log, 2);
    srv.restart();
    wait_calls(&log, 3);
    n.signal(libc::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0));
    assert_eq!(
        calls(&log),
        [
            format!("{ipvsadm} -a -u 10.0.0.1:53 -r {rs} -m -w 1"),
            format!("{ipvsadm} -e -u 10.0.0.1:53 -r {rs} -m -w 0"),
            format!("{ipvsadm} -e -u 10.0.0.1:53 -r {rs} -m -w 1"),
            format!("{ipvsadm} -d -u 10.0.0.1:53 -r {rs}"),
        ]
    );
}

#[test]
fn legacy_mode_fwmark_and_forced_states() {
    let dir = tempfile::tempdir().unwrap();
    let (ipvsadm, log) = recorder(dir.path(), 0);
    let srv = TcpServer::start(Reply::Close);
    let n = legacy_nanny(&[
        "-h",
        "127.0.0.1",
        "-p",
        "0",
        "-r",
        &p(srv.port),
        "-f",
        "7",
        "-M",
        "i",
        "-t",
        "1",
        "-a",
        "1",
        "-I",
        &ipvsadm,
        "-w",
        "100",
        "--lvs",
    ]);
    let rs = format!("127.0.0.1:{}", srv.port);
    wait_calls(&log, 1);
    n.signal(libc::SIGUSR1);
    wait_calls(&log, 2);
    n.signal(libc::SIGUSR2);
    let c = wait_calls(&log, 3);
    assert_eq!(
        c,
        [
            format!("{ipvsadm} -a -f 7 -r {rs} -i -w 3"),
            format!("{ipvsadm} -d -f 7 -r {rs}"),
            format!("{ipvsadm} -a -f 7 -r {rs} -i -w 100"),
        ]
    );
}

#[test]
fn legacy_mode_exits_when_ipvsadm_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (ipvsadm, _log) = recorder(dir.path(), 2);
    let srv = TcpServer::start(Reply::Close);
    let mut n = legacy_nanny(&[
        "-h",
        "127.0.0.1",
        "-p",
        "25",
        "-r",
        &p(srv.port),
        "-t",
        "1",
        "-a",
        "1",
        "-I",
        &ipvsadm,
        "-V",
        "10.0.0.1",
        "--lvs",
    ]);
    assert_eq!(n.wait_exit().code(), Some(1));
    n.log.find_from(0, &format!("{ipvsadm} command failed!"));
}

#[test]
fn legacy_mode_test_start_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ipvsadm, log) = recorder(dir.path(), 0);
    let srv = TcpServer::start(Reply::Close);
    let n = legacy_nanny(&[
        "-h",
        "127.0.0.1",
        "-p",
        "25",
        "-r",
        &p(srv.port),
        "-t",
        "1",
        "-a",
        "1",
        "-I",
        &ipvsadm,
        "-V",
        "10.0.0.1",
        "--test-start",
        "--lvs",
    ]);
    n.log.find_from(
        0,
        &format!("test-start: not running {ipvsadm} -a -t 10.0.0.1:25"),
    );
    assert!(calls(&log).is_empty());
}

// ---- command line --------------------------------------------------------------------------

#[test]
fn bad_command_lines_exit_1_with_a_message() {
    for (args, msg) in [
        (
            &["--lvs"][..],
            "nanny: No address supplied. Use '--help' for help. \n",
        ),
        (&["-h", "1.2.3.4"][..], "nanny: unknown service type\n"),
        (
            &["-h", "1.2.3.999", "--lvs"][..],
            "nanny: bad IP address -- 1.2.3.999\n",
        ),
        (
            &["-h", "1.2.3.4", "--lvs", "--frobnicate"][..],
            "nanny: bad argument --frobnicate: unknown option\n",
        ),
        (
            &["-h", "1.2.3.4", "--lvs", "-w", "x"][..],
            "nanny: bad argument x: invalid numeric value\n",
        ),
    ] {
        let (code, out, err) = run_to_end(args);
        assert_eq!((code, out.as_str(), err.as_str()), (1, "", msg), "{args:?}");
    }
    let (code, _, err) = run_to_end(&["-h", "1.2.3.4", "--lvs", "-t", "0"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("nanny: --interval (-t) must be at least 1 second"),
        "{err}"
    );
    let (code, _, err) = run_to_end(&["-h", "1.2.3.4", "--lvs", "--regex", "-x", "(", "-n"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "nanny: bad regular expression in --expect_string (-x): Unmatched ( or \\(\n"
        )
    );
    let (code, _, err) = run_to_end(&[
        "-h",
        "1.2.3.4",
        "--lvs",
        "--regex",
        "-x",
        "a{1,32767}",
        "-e",
        "true",
        "-n",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "nanny: bad regular expression in --expect_string (-x): too big: its repetitions \
             expand to more than 1000 elements\n"
        )
    );
    let (code, _, err) = run_to_end(&["-h", "1.2.3.4", "--lvs", "-n"]);
    assert_eq!(code, 1);
    assert!(err.contains("--virtaddress (-V)"), "{err}");
    let (code, _, err) = run_to_end(&["-h", "1.2.3.4", "--lvs", "-n", "--report-fd", "99"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "nanny: report descriptor 99 is not open\n")
    );
}

#[test]
fn version_and_help() {
    let (code, out, _) = run_to_end(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Program Version:\tnanny 1.46\n"), "{out}");
    let (code, out, _) = run_to_end(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--quiesce_server"), "{out}");
}
