//! The real binary, for what needs no IPVS: help, version, and every command line rejected
//! before IPVS is touched (so these tests never change a kernel table).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsadm");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run ipvsadm")
}

fn stderr_of(args: &[&str]) -> (String, i32) {
    let o = run(args);
    assert!(o.stdout.is_empty(), "{args:?}: stdout {:?}", o.stdout);
    (
        String::from_utf8(o.stderr).unwrap(),
        o.status.code().expect("exit status"),
    )
}

fn tryhelp() -> String {
    format!("Try `{BIN} -h' or '{BIN} --help' for more information.\n")
}

#[test]
fn help_on_stdout() {
    for flag in ["-h", "--help"] {
        let o = run(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        assert!(o.stderr.is_empty());
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.starts_with(
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n"
        ));
        assert!(text.contains(&format!("  {BIN} -A|E virtual-service [-s scheduler]")));
        assert!(text.contains(&format!(
            "  {BIN} --stop-daemon {{master|backup}}\n  {BIN} -h\n\n"
        )));
        assert!(text.ends_with("  --mcast-ttl ttl                     Multicast TTL (default=1)\n"));
        assert_eq!(text.lines().count(), 82);
    }
}

#[test]
fn version_on_stdout() {
    for args in [&["-v"][..], &["--version"], &["-v", "-L"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
        );
        assert!(o.stderr.is_empty());
    }
}

#[test]
fn not_a_command_first() {
    for args in [
        &["-Q"][..],
        &["--bogus"],
        &["-n"],
        &["--daemon"],
        &["--timeout"],
        &["-t", "10.0.0.1:80"],
        &["-"],
        &["--"],
        &["--start-daemon"],
    ] {
        assert_eq!(stderr_of(args), (tryhelp(), 255), "{args:?}");
    }
}

#[test]
fn popt_errors_exit_255() {
    let cases: &[(&[&str], &str)] = &[
        (&["-A", "-t"], "-t: missing argument\n"),
        (&["-A", "-t", "1.2.3.4:80", "-s"], "-s: missing argument\n"),
        (&["-L", "--bogus"], "--bogus: unknown option\n"),
        (
            &["-L", "--numeric=1"],
            "--numeric=1: option does not take an argument\n",
        ),
        (&["--set", "-1", "1", "1"], "-1: unknown option\n"),
    ];
    for (args, msg) in cases {
        assert_eq!(stderr_of(args), (msg.to_string(), 255), "{args:?}");
    }
}

#[test]
fn validation_errors_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["-A", "-L"], "invalid option `-L'\n"),
        (&["-L", "-h"], "invalid option `-h'\n"),
        (&["-A", "-6", "-f", "1"], "-6 used before -f\n\n"),
        (
            &["-A", "-t", "10.0.0.1"],
            "Zero port specified for non-persistent service\n",
        ),
        (
            &["-A", "-t", "80"],
            "illegal virtual server address[:port] specified\n",
        ),
        (&["-A", "-f", "0"], "invalid fwmark value `0' specified\n"),
        (
            &["-A", "-t", "10.0.0.1:80", "-s", "rr", "-s", "wlc"],
            "multiple 'scheduler' options specified\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-r", "10.0.0.2"],
            "Illegal 'real-server' option with the 'add-service' command\n",
        ),
        (
            &["-L", "--timeout", "--daemon"],
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command\n",
        ),
        (
            &["-L", "--timeout", "--stats"],
            "options conflicts in the list command\n",
        ),
        (
            &["--set", "1", "2"],
            "--set option requires 3 timeout values\n",
        ),
        (
            &["--set", "2147483647", "1", "1"],
            "invalid timeout value `2147483647' specified\n",
        ),
        (
            &["--start-daemon", "foo"],
            "illegal start-daemon parameter specified\n",
        ),
        (
            &["--stop-daemon", "foo"],
            "illegal start_daemon specified\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "[2001:db8::1]:80"],
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &[
                "-a",
                "-t",
                "10.0.0.1:80",
                "-r",
                "10.0.0.2",
                "-i",
                "--tun-type",
                "gue",
            ],
            "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "sh-port"],
            "incompatible scheduler flag `sh-port'\n",
        ),
        (&["-L", "extra"], "unexpected argument extra\n"),
        (
            &["-R", "-n"],
            "Illegal 'numeric' option with the 'restore' command\n",
        ),
    ];
    for (args, msg) in cases {
        assert_eq!(stderr_of(args), (msg.to_string(), 2), "{args:?}");
    }
}

#[test]
fn argv0_is_used_as_invoked() {
    let dir = std::env::temp_dir().join(format!("ipvsadm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("my-ipvsadm");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let o = Command::new(&link).arg("-Q").output().unwrap();
    let name = link.display().to_string();
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        format!("Try `{name} -h' or '{name} --help' for more information.\n")
    );
    assert_eq!(o.status.code(), Some(255));
    std::fs::remove_dir_all(&dir).unwrap();
}
