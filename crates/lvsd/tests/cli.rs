//! Runs the real `lvsd` binary over the lvs.cf corpus in integration-tests/lvs.cf:
//! - `invalid/NAME.cf`: Piranha syntax errors; `NAME.stderr` is the exact expected stderr;
//! - `semantic/NAME.cf`: semantic problems, all reported in one run; `NAME.stderr` likewise;
//! - `valid/*.cf` and the shipped etc/lvs.cf.sample: accepted.
//!
//! In expected output the word FILE stands for the path given with -c.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lvsd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lvsd"));
    // No status file for piranha-gui from tests (the default is /run/piranha).
    c.env("PIRANHA_STATUS_DIR", "");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = repo().join("integration-tests/lvs.cf").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .cf files in {}", dir.display());
    files
}

fn run(args: &[&str], file: &Path) -> Output {
    lvsd()
        .args(args)
        .arg("-c")
        .arg(file)
        .output()
        .expect("run lvsd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file whose expected stderr is given must produce exactly it, nothing on stdout, exit 1,
/// for both --config-test and --dump-config.
fn check_expected(dir: &str) -> usize {
    let mut checked = 0;
    for file in corpus(dir) {
        let expected_path = file.with_extension("stderr");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .replace("FILE", &file.display().to_string());
        for mode in ["--config-test", "--dump-config"] {
            let out = run(&[mode], &file);
            assert_eq!(
                text(&out.stderr),
                expected,
                "{mode} {}: stderr differs",
                file.display()
            );
            assert_eq!(text(&out.stdout), "", "{mode} {}: stdout", file.display());
            assert_eq!(out.status.code(), Some(1), "{mode} {}", file.display());
        }
        checked += 1;
    }
    checked
}

#[test]
fn syntax_errors_have_piranhas_text_and_line() {
    let n = check_expected("invalid");
    assert!(n >= 30, "only {n} syntax-error cases");
}

/// Each Piranha error code that a file can trigger has at least one case in the corpus.
#[test]
fn every_reachable_error_code_is_covered() {
    let all: String = corpus("invalid")
        .iter()
        .map(|f| std::fs::read_to_string(f.with_extension("stderr")).unwrap())
        .collect();
    use lvs_config::ErrorCode::*;
    for code in [
        Empty,
        BadQuoting,
        Eof,
        ExtraArgs,
        EqualExpected,
        MissingArgs,
        BadHostname,
        BadArgument,
        IntExpected,
        BoolExpected,
        BadCommand,
        ListExpected,
        BadNetmask,
    ] {
        assert!(
            all.contains(&format!(": {}\n", code.text())),
            "no test for error {} ({})",
            code.number(),
            code.text()
        );
    }
}

#[test]
fn semantic_problems_are_all_reported_with_lines() {
    check_expected("semantic");
}

#[test]
fn valid_files_pass_with_a_summary_line() {
    let mut files = corpus("valid");
    files.push(repo().join("etc/lvs.cf.sample"));
    for file in files {
        let out = run(&["--config-test"], &file);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains(" error "),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "{}: {stdout}", file.display());
        assert!(
            stdout.starts_with(&format!("{}: OK: ", file.display())),
            "{stdout}"
        );
        assert!(stdout.contains(" virtual server"), "{stdout}");
        let dump = run(&["--dump-config"], &file);
        assert_eq!(dump.status.code(), Some(0));
        let json: serde_json::Value =
            serde_json::from_slice(&dump.stdout).expect("--dump-config prints JSON");
        assert!(json["virtual_servers"].is_array());
    }
}

#[test]
fn dump_config_fills_in_piranhas_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lvs.cf");
    std::fs::write(
        &file,
        "primary = 192.0.2.1\nvirtual v {\n active = 1\n address = 192.0.2.100 eth0:1\n server s {\n address = 198.51.100.1\n active = 1\n }\n}\n",
    )
    .unwrap();
    let out = run(&["--dump-config"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["heartbeat_port"], 539);
    assert_eq!(j["keepalive"], 2);
    assert_eq!(j["deadtime"], 5);
    assert_eq!(j["network"], "nat");
    assert_eq!(j["hard_shutdown"], true);
    assert_eq!(j["rsh_command"], "rsh");
    assert_eq!(j["ipvsadm"], "/sbin/ipvsadm");
    assert_eq!(j["syncd_iface"], "eth0");
    let v = &j["virtual_servers"][0];
    assert_eq!(v["port"], 80);
    assert_eq!(v["protocol"], "tcp");
    assert_eq!(v["scheduler"], "wlc");
    assert_eq!(v["timeout"], 10);
    assert_eq!(v["reentry"], 180);
    assert_eq!(v["client_monitor"], "/usr/sbin/nanny");
    assert_eq!(v["load_monitor"], serde_json::Value::Null);
    let s = &v["servers"][0];
    assert_eq!(s["weight"], 1);
    assert_eq!(s["port"], 80);
}

#[test]
fn fractional_heartbeat_times_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lvs.cf");
    std::fs::write(
        &file,
        "primary = 192.0.2.1\nbackup = 192.0.2.2\nbackup_active = 1\nkeepalive = 0.1\ndeadtime = 0.35\nvirtual v {\n active = 1\n address = 192.0.2.100 eth0:1\n}\n",
    )
    .unwrap();
    let out = run(&["--dump-config"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["keepalive"], 0.1);
    assert_eq!(j["deadtime"], 0.35);
}

#[test]
fn unreadable_config_is_an_io_error_and_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--config-test"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "lvsd: error parsing {} at line 0: I/O error while reading configuration\n",
            dir.path().display()
        )
    );
    let missing = dir.path().join("nope.cf");
    let out = run(&["--config-test"], &missing);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "lvsd: failed to open {}: No such file or directory\n",
            missing.display()
        )
    );
}

#[test]
fn program_name_comes_from_argv0() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("lvs");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lvsd"), &link).unwrap();
    let file = dir.path().join("lvs.cf");
    std::fs::write(&file, "primary = 192.0.2.1\nbogus = 1\n").unwrap();
    let out = Command::new(&link)
        .arg("--config-test")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stderr),
        format!(
            "lvs: error parsing {} at line 2: unknown command\n",
            file.display()
        )
    );
}

#[test]
fn bad_command_lines_are_refused_clearly() {
    // Without a command option lvsd runs the daemon: a config that cannot be read stops it
    // before anything else, with its reason.
    let out = lvsd()
        .args(["-n", "-c", "/nonexistent/lvs.cf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "lvsd: failed to open /nonexistent/lvs.cf: No such file or directory\nlvsd: not starting\n"
    );
    let out = lvsd().arg("--no-such-option").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--no-such-option"));
    let out = lvsd().args(["--config-test", "-c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--configfile"));
    let out = lvsd().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("lvsd "));
}
