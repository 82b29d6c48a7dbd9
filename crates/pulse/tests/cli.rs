//! pulse's command line and start-up refusals: messages on stderr and exit status 1, before it
//! detaches (no root needed: nothing is bound).

use std::process::Command;

const PULSE: &str = env!("CARGO_BIN_EXE_pulse");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PULSE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("lvs.cf");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn informational_options() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Program Version:\tpulse 1.56\nA component of:\t\tpiranha-rs-"));
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--forceactive") && out.contains("--lvsd"));
    let (code, out, _) = run(&["-?"]);
    assert_eq!(code, 0);
    assert!(out.contains("--test-start"));
    let (code, out, _) = run(&["--usage"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: pulse"));
}

#[test]
fn bad_command_lines() {
    assert_eq!(
        run(&["--bogus"]),
        (
            1,
            String::new(),
            "pulse: bad argument --bogus: unknown option\n".into()
        )
    );
    assert_eq!(
        run(&["-c"]),
        (
            1,
            String::new(),
            "pulse: bad argument -c: missing argument\n".into()
        )
    );
    assert_eq!(
        run(&["-n", "extra"]),
        (1, String::new(), "pulse: unexpected arguments\n".into())
    );
}

#[test]
fn bad_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.cf");
    let (code, _, err) = run(&["-n", "-c", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("pulse: failed to open {}\n", missing.display())
    );

    let f = write(&dir, "primary = 10.0.0.1\nkeepalive = soon\n");
    let (code, _, err) = run(&["-n", "-c", &f]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("pulse: error parsing {f} at line 2: integer expected\n")
    );

    let f = write(
        &dir,
        "primary = 10.0.0.1\nvirtual a {\n     active = 0\n     address = 10.0.0.9 eth0:1\n}\n",
    );
    let (code, _, err) = run(&["-n", "-c", &f]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("pulse: no active lvs services defined in {f}\n")
    );

    // Semantic errors: all of them, with their lines.
    let f = write(
        &dir,
        "primary = 10.0.0.1\nbackup = 10.0.0.1\nbackup_active = 1\nkeepalive = 5\ndeadtime = 2\n\
         virtual a {\n     active = 1\n     address = 10.0.0.9 eth0:1\n}\n",
    );
    let (code, _, err) = run(&["-n", "-c", &f]);
    assert_eq!(code, 1);
    assert!(err.contains("line 2: error"), "{err}");
    assert!(err.contains("line 5: error"), "{err}");

    // Addresses of another host (documentation range): neither router.
    let f = write(
        &dir,
        "primary = 203.0.113.1\nbackup = 203.0.113.2\nbackup_active = 1\n\
         virtual a {\n     active = 1\n     address = 203.0.113.9 eth0:1\n}\n",
    );
    let (code, _, err) = run(&["-n", "-c", &f]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "pulse: this host has neither the primary address 203.0.113.1 nor the backup \
             address 203.0.113.2 of {f}\n"
        )
    );

    let f = write(
        &dir,
        "service = fos\nprimary = 127.0.0.1\nfailover f {\n     active = 1\n     address = 10.0.0.9 eth0:1\n     port = 80\n     start_cmd = \"/bin/true\"\n     stop_cmd = \"/bin/true\"\n}\n",
    );
    let (code, _, err) = run(&["-n", "-c", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("failover services (fos) are not supported"),
        "{err}"
    );

    // A bad device name for a VIP.
    let f = write(
        &dir,
        "primary = 127.0.0.1\nvirtual a {\n     active = 1\n     address = 10.0.0.9 averyveryverylongname:1\n}\n",
    );
    let (code, _, err) = run(&["-n", "-c", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not a usable interface or alias name"),
        "{err}"
    );
}
