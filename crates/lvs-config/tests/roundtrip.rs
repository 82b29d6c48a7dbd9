//! Round trips between the model and lvs.cf text: `parse(to_string(c)) == c` for arbitrary
//! configs, a deterministic and idempotent writer, the shipped example files, atomic saves with a
//! backup, and the GUI's layout.

use lvs_config::parser::keywords;
use lvs_config::writer::{self, unrepresentable};
use lvs_config::*;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Characters that lvs.cf's tokenizer treats specially, plus some non-ASCII letters.
const SPECIAL: &[char] = &[
    ' ', '\t', '"', '\'', '#', '=', '{', '}', '[', ']', '\\', '/', '.', ':', '-', '%', 'é', 'ß',
    'Ж', 'λ', '中', 'ø',
];
/// Ordinary characters, drawn more often so that values also look like real ones.
const PLAIN: &[char] = &[
    'a', 'b', 'c', 'e', 'h', 'k', 'n', 'r', 's', 't', 'x', 'z', 'A', 'Q', '0', '1', '5', '9', '_',
];

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(PLAIN),
        2 => prop::sample::select(SPECIAL),
    ]
}

fn string_of(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), len)
        .prop_map(String::from_iter)
        .prop_filter("not representable in lvs.cf", |s| {
            unrepresentable(s).is_none()
        })
}

/// Any representable string value (possibly empty).
fn text() -> impl Strategy<Value = String> {
    string_of(0..10)
}

/// A device (the last value of `address` / `nat_router`) or `syncd_iface`: representable and
/// non-empty.
fn device() -> impl Strategy<Value = String> {
    string_of(1..10)
}

/// Whether Piranha's tokenizer can read `s` as a token that is NOT the last one on its line (a
/// block name before `{`, a `dirs` entry before `]`). Its closing-quote search starts at the first
/// blank after the token's start, so a quoted token must contain a blank to be followed by
/// another token; an unquoted token cannot start with a quote character nor be empty. Such
/// values cannot be written in those places at all (see
/// `unwritable_names_and_dirs_entries_are_refused_or_flagged`).
fn fits_before_another_token(s: &str) -> bool {
    !s.is_empty() && (!s.starts_with(['"', '\'']) || s.contains([' ', '\t']))
}

/// A block or server name: representable, non-empty, and readable before ` {`. Names starting
/// with `#` are included (the comment rule applies only to a line's first non-blank character).
fn name() -> impl Strategy<Value = String> {
    string_of(1..10).prop_filter("not readable before `{`", |s| fits_before_another_token(s))
}

/// A `dirs` entry: as a name, and not `]` (which ends the list).
fn dirs_entry() -> impl Strategy<Value = String> {
    name().prop_filter("`]` ends the list", |s| s != "]")
}

/// A string that is sometimes its default (which the writer leaves out).
fn text_or(default: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![1 => Just(default.to_string()), 3 => text()]
}

fn device_or(default: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![1 => Just(default.to_string()), 3 => device()]
}

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

/// An address that is not 0.0.0.0.
fn nonzero_addr() -> impl Strategy<Value = Ipv4Addr> {
    (1..=u32::MAX).prop_map(Ipv4Addr::from)
}

fn host() -> impl Strategy<Value = Host> {
    addr().prop_map(Host::from)
}

/// `primary`, `primary_private`, `backup_private`: Piranha refuses 0.0.0.0 there (see
/// `zero_router_addresses_are_refused_or_flagged`).
fn nonzero_host() -> impl Strategy<Value = Host> {
    nonzero_addr().prop_map(Host::from)
}

/// A contiguous netmask with `bits` one bits (`bits` in 1..=32).
fn mask(bits: impl Strategy<Value = u32>) -> impl Strategy<Value = Ipv4Addr> {
    bits.prop_map(|n| Ipv4Addr::from(u32::MAX << (32 - n)))
}

fn interface_address() -> impl Strategy<Value = InterfaceAddress> {
    (host(), device()).prop_map(|(address, device)| InterfaceAddress { address, device })
}

/// Whole seconds, or seconds with a fraction down to the nanosecond; at most `u32::MAX` whole
/// seconds, the parser's range (see `durations_beyond_u32_seconds_are_refused_or_flagged`).
fn seconds() -> impl Strategy<Value = Duration> {
    let max = u64::from(u32::MAX);
    prop_oneof![
        (0..=max).prop_map(Duration::from_secs),
        (0u64..100).prop_map(Duration::from_secs),
        (0..=max, 1..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..100, 1..1000u32).prop_map(|(s, ms)| Duration::new(s, ms * 1_000_000)),
    ]
}

/// A `u32` that is often 0 (the "unset" value several keywords have).
fn u32_or_zero() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), any::<u32>()]
}

fn real_server(virtual_port: u16) -> impl Strategy<Value = RealServer> {
    (
        name(),
        prop::option::of(host()),
        any::<bool>(),
        // Piranha's weight is a C int: the parser's range (see
        // `weight_beyond_i32_is_refused_or_flagged`).
        0..=i32::MAX as u32,
        prop_oneof![Just(virtual_port), any::<u16>()],
    )
        .prop_map(|(name, address, active, weight, port)| RealServer {
            name,
            address,
            active,
            weight,
            port,
        })
}

fn virtual_server() -> impl Strategy<Value = VirtualServer> {
    any::<u16>().prop_flat_map(|port| {
        let head = (
            name(),
            any::<bool>(),
            prop::option::of(interface_address()),
            prop::option::of(mask(1..=32u32)),
            prop::option::of(1..=u32::MAX),
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
            prop::sample::select(&Scheduler::ALL[..]),
            u32_or_zero(),
            // 255.255.255.255 means "no pmask" to the parser.
            prop::option::of(mask(1..=31u32)),
        );
        let checks = (
            prop::option::of(text()),
            prop::option::of(text()),
            any::<bool>(),
            prop::option::of(text()),
            prop::option::of(text()),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            prop::option::of(nonzero_addr()),
            text_or(DEFAULT_CLIENT_MONITOR),
        );
        let fos = (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(host()),
            prop::option::of(prop::collection::vec(dirs_entry(), 0..4)),
            prop::collection::vec(real_server(port), 0..4),
        );
        (head, checks, fos).prop_map(
            move |(
                (name, active, address, vip_nmask, fwmark, protocol, scheduler, persistent, pmask),
                (
                    send,
                    expect,
                    use_regex,
                    send_program,
                    load_monitor,
                    timeout,
                    reentry,
                    quiesce_server,
                    sorry_server,
                    client_monitor,
                ),
                (start_cmd, stop_cmd, master, dirs, servers),
            )| VirtualServer {
                name,
                active,
                address,
                vip_nmask,
                fwmark,
                port,
                protocol,
                scheduler,
                persistent,
                pmask,
                send,
                expect,
                use_regex,
                send_program,
                load_monitor,
                timeout,
                reentry,
                quiesce_server,
                sorry_server,
                client_monitor,
                start_cmd,
                stop_cmd,
                master,
                dirs,
                servers,
            },
        )
    })
}

fn service_type() -> impl Strategy<Value = ServiceType> {
    prop_oneof![Just(ServiceType::Lvs), Just(ServiceType::Fos)]
}

fn network() -> impl Strategy<Value = Network> {
    prop_oneof![
        Just(Network::Nat),
        Just(Network::Direct),
        Just(Network::Tunnel)
    ]
}

fn conflict_action() -> impl Strategy<Value = ReservationConflictAction> {
    prop_oneof![
        Just(ReservationConflictAction::Nothing),
        Just(ReservationConflictAction::Preempt)
    ]
}

/// IPVS timeouts: all three 0 (not written) or anything.
fn ipvs_timeouts() -> impl Strategy<Value = (u32, u32, u32)> {
    prop_oneof![
        Just((0, 0, 0)),
        (u32_or_zero(), u32_or_zero(), u32_or_zero()),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    let routers = (
        any::<i64>(),
        service_type(),
        prop::option::of(nonzero_host()),
        prop::option::of(nonzero_host()),
        prop::option::of(text()),
        prop::option::of(host()),
        any::<bool>(),
        prop::option::of(nonzero_host()),
        prop::option::of(text()),
    );
    let heartbeat = (
        any::<bool>(),
        any::<u16>(),
        seconds(),
        seconds(),
        network(),
        prop::option::of(interface_address()),
        prop::option::of(mask(1..=32u32)),
        prop::option::of(conflict_action()),
        prop::option::of(text()),
    );
    let misc = (
        text_or("NONE"),
        text_or("rsh"),
        any::<bool>(),
        text_or(DEFAULT_IPVSADM),
        prop::option::of(text()),
        prop::option::of(text()),
        prop_oneof![Just(0i64), Just(1), any::<i64>()],
        any::<bool>(),
        device_or("eth0"),
        any::<u8>(),
        ipvs_timeouts(),
        any::<bool>(),
    );
    let blocks = (
        prop::collection::vec(virtual_server(), 0..4),
        prop::collection::vec(virtual_server(), 0..4),
    );
    (routers, heartbeat, misc, blocks).prop_map(
        |(
            (
                serial_no,
                service,
                primary,
                primary_private,
                primary_shared,
                backup,
                backup_active,
                backup_private,
                backup_shared,
            ),
            (
                heartbeat,
                heartbeat_port,
                keepalive,
                deadtime,
                network,
                nat_router,
                nat_nmask,
                rca,
                heartbeat_key_file,
            ),
            (
                debug_level,
                rsh_command,
                sync,
                ipvsadm,
                active_cmd,
                inactive_cmd,
                monitor_links,
                syncdaemon,
                syncd_iface,
                syncd_id,
                (tcp_timeout, tcpfin_timeout, udp_timeout),
                hard_shutdown,
            ),
            (virtual_servers, failover_services),
        )| Config {
            serial_no,
            service,
            primary,
            primary_private,
            primary_shared,
            backup,
            backup_active,
            backup_private,
            backup_shared,
            heartbeat,
            heartbeat_port,
            keepalive,
            deadtime,
            heartbeat_key_file,
            network,
            nat_router,
            nat_nmask,
            reservation_conflict_action: rca,
            debug_level,
            rsh_command,
            sync,
            ipvsadm,
            active_cmd,
            inactive_cmd,
            monitor_links,
            syncdaemon,
            syncd_iface,
            syncd_id,
            tcp_timeout,
            tcpfin_timeout,
            udp_timeout,
            hard_shutdown,
            virtual_servers: virtual_servers.into_iter().map(Arc::new).collect(),
            failover_services: failover_services.into_iter().map(Arc::new).collect(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn resolver() -> StaticResolver {
    StaticResolver::standard()
}

fn try_write(c: &Config) -> Result<String, String> {
    to_string(c).map_err(|e| format!("to_string refused a representable config: {e}"))
}

fn write(c: &Config) -> String {
    try_write(c).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses text the writer produced: it must parse without a syntax error and without any
/// diagnostic (no keyword given twice, no value out of range).
fn reparse(text: &str) -> Result<Config, String> {
    let parsed = parse(text.as_bytes(), &resolver())
        .map_err(|e| format!("written text does not parse: {e}\n---\n{text}---"))?;
    if !parsed.diagnostics.is_empty() {
        return Err(format!(
            "written text parses with diagnostics {:?}\n---\n{text}---",
            parsed.diagnostics
        ));
    }
    Ok(parsed.config)
}

/// Checks the GUI's layout: global keywords at column 0, block keywords indented by exactly 5
/// spaces, server keywords by 9, and each `}` alone on its line (at column 0 for a block, 5 for
/// a server).
fn check_gui_style(text: &str) -> Result<(), String> {
    let (global, block, server) = keywords();
    let mut depth = 0;
    if !text.ends_with('\n') {
        return Err("text does not end with a line end".into());
    }
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = &line[indent..];
        let fail = |what: &str| Err(format!("line {n} {what}: {line:?}"));
        if body.is_empty() || body.starts_with('\t') {
            return fail("is blank or indented with a tab");
        }
        if body.starts_with('}') {
            if body != "}" {
                return fail("has `}` with something else");
            }
            let expected = match depth {
                1 => 0,
                2 => 5,
                _ => return fail("closes a block that is not open"),
            };
            if indent != expected {
                return fail(&format!("has `}}` indented by {indent}, not {expected}"));
            }
            depth -= 1;
            continue;
        }
        let expected = [0, 5, 9][depth];
        if indent != expected {
            return fail(&format!("is indented by {indent}, not {expected}"));
        }
        let keyword = body.split([' ', '\t']).next().unwrap_or("");
        let known = [global, block, server][depth];
        if !known.contains(&keyword) {
            return fail(&format!(
                "starts with `{keyword}`, not a keyword of its level"
            ));
        }
        let opens = matches!(
            (depth, keyword),
            (0, "virtual" | "failover") | (1, "server")
        );
        if opens {
            if !body.ends_with(" {") {
                return fail("opens a block without ` {` at its end");
            }
            depth += 1;
        } else if !body[keyword.len()..].starts_with(" = ") {
            return fail("has no ` = ` after its keyword");
        }
    }
    if depth != 0 {
        return Err(format!("{depth} block(s) left open at the end"));
    }
    Ok(())
}

/// 256 cases, or `PROPTEST_CASES` when set (for longer runs).
fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // Do not write proptest-regressions/ files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(proptest_config())]

    /// Every representable config survives writing and re-parsing, every value kept (including
    /// real-server ports, which the parser defaults to the virtual port and the writer leaves out
    /// when equal).
    #[test]
    fn parse_inverts_to_string(c in config()) {
        let text = try_write(&c).map_err(TestCaseError::fail)?;
        let back = reparse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&back, &c, "text was:\n{}", text);
    }

    /// Writing is deterministic and idempotent.
    #[test]
    fn writing_is_deterministic_and_idempotent(c in config()) {
        let once = try_write(&c).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&try_write(&c).map_err(TestCaseError::fail)?, &once);
        let back = reparse(&once).map_err(TestCaseError::fail)?;
        let twice = try_write(&back).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&twice, &once);
    }

    /// The written text has the GUI's layout.
    #[test]
    fn written_text_has_gui_style(c in config()) {
        let text = try_write(&c).map_err(TestCaseError::fail)?;
        if let Err(e) = check_gui_style(&text) {
            return Err(TestCaseError::fail(format!("{e}\n---\n{text}---")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Example files
// ---------------------------------------------------------------------------------------------

fn valid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integration-tests/lvs.cf/valid")
}

fn valid_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(valid_dir())
        .expect("integration-tests/lvs.cf/valid is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", valid_dir().display());
    files
}

#[test]
fn valid_files_round_trip() {
    for path in valid_files() {
        let bytes = std::fs::read(&path).unwrap();
        let original = parse(&bytes, &resolver())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .config;
        let text = write(&original);
        let back = reparse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(back, original, "{}: written as\n{text}", path.display());
        assert_eq!(write(&back), text, "{}: not idempotent", path.display());
        check_gui_style(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

// ---------------------------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sample_config(serial_no: i64) -> Config {
    let mut vs = VirtualServer::new("www");
    vs.active = true;
    vs.address = Some(InterfaceAddress {
        address: Host::from(Ipv4Addr::new(192, 168, 1, 100)),
        device: "eth0:1".into(),
    });
    vs.send = Some("GET / HTTP/1.0\\r\\n\\r\\n".into());
    vs.expect = Some("say \"hi\"".into());
    let mut rs = RealServer::new("web 1", vs.port);
    rs.address = Some(Host::from(Ipv4Addr::new(10, 0, 0, 11)));
    rs.active = true;
    vs.servers.push(rs);
    let mut rs = RealServer::new("web2", 8080);
    rs.address = Some(Host::from(Ipv4Addr::new(10, 0, 0, 12)));
    vs.servers.push(rs);
    Config {
        serial_no,
        primary: Some(Host::from(Ipv4Addr::new(192, 168, 1, 10))),
        keepalive: Duration::from_millis(1500),
        virtual_servers: vec![Arc::new(vs)],
        ..Config::default()
    }
}

#[test]
fn save_keeps_backup_mode_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lvs.cf");
    let bak = writer::backup_path(&path);
    assert_eq!(bak, dir.path().join("lvs.cf.bak"));

    // First save: a new file, no backup.
    let c1 = sample_config(1);
    save(&path, &c1).unwrap();
    assert_eq!(dir_entries(dir.path()), ["lvs.cf"]);
    assert_eq!(mode(&path), 0o644, "a new file is rw-r--r--");
    let text1 = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text1, write(&c1));
    assert_eq!(reparse(&text1).unwrap(), c1);

    // Second save over a file made 0640: the mode is kept, the previous text is the backup.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c2 = sample_config(2);
    save(&path, &c2).unwrap();
    assert_eq!(dir_entries(dir.path()), ["lvs.cf", "lvs.cf.bak"]);
    assert_eq!(mode(&path), 0o640);
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), text1);
    assert_eq!(
        mode(&bak),
        0o640,
        "the backup is not more readable than the file was"
    );
    let text2 = std::fs::read_to_string(&path).unwrap();
    assert_eq!(reparse(&text2).unwrap(), c2);

    // Third save, with save_text: the backup is now the second version.
    let mut c3 = sample_config(3);
    Arc::make_mut(&mut c3.virtual_servers[0]).servers.clear();
    let text3 = write(&c3);
    writer::save_text(&path, &text3).unwrap();
    assert_eq!(dir_entries(dir.path()), ["lvs.cf", "lvs.cf.bak"]);
    assert_eq!(mode(&path), 0o640);
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), text2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text3);
    assert_eq!(reparse(&text3).unwrap(), c3);

    // An unrepresentable config is refused and touches nothing.
    let mut bad = sample_config(4);
    Arc::make_mut(&mut bad.virtual_servers[0]).send = Some("a \"b\" 'c'".into());
    match save(&path, &bad) {
        Err(writer::SaveError::Unrepresentable(e)) => {
            assert!(e.field.contains("send"), "{e}")
        }
        other => panic!("expected Unrepresentable, got {other:?}"),
    }
    assert_eq!(dir_entries(dir.path()), ["lvs.cf", "lvs.cf.bak"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text3);
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), text2);

    // A save into a directory that does not exist fails and creates nothing.
    let missing = dir.path().join("missing").join("lvs.cf");
    assert!(writer::save_text(&missing, &text3).is_err());
    assert_eq!(dir_entries(dir.path()), ["lvs.cf", "lvs.cf.bak"]);
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

#[test]
fn gui_style_of_a_sample() {
    let text = write(&sample_config(7));
    check_gui_style(&text).unwrap();
    // Spot checks of the exact layout.
    assert!(
        text.contains("\nvirtual www {\n     active = 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\n     server \"web 1\" {\n         address = 10.0.0.11\n"),
        "{text}"
    );
    assert!(text.contains("\n         port = 8080\n"), "{text}");
    assert!(text.contains("\n     }\n}\n"), "{text}");
    assert!(text.contains("\nkeepalive = 1.5\n"), "{text}");
    assert!(text.contains("\n     expect = 'say \"hi\"'\n"), "{text}");
}

#[test]
fn gui_style_checker_rejects_bad_layouts() {
    let good = "serial_no = 1\nvirtual a {\n     active = 1\n     server b {\n         active = 1\n     }\n}\n";
    check_gui_style(good).unwrap();
    for bad in [
        "  serial_no = 1\n",
        "virtual a {\n    active = 1\n}\n",
        "virtual a {\n     active = 1\n} \n",
        "virtual a {\n     active = 1\n     }\n",
        "virtual a {\n     server b {\n        active = 1\n     }\n}\n",
        "virtual a {\n     server b {\n         active = 1\n     } x\n}\n",
        "virtual a {\n     active = 1\n",
        "virtual a {\n\tactive = 1\n}\n",
        "serial_no=1\n",
    ] {
        assert!(check_gui_style(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Values at the edges of what lvs.cf can hold (minimal inputs for bugs these tests found)
// ---------------------------------------------------------------------------------------------

/// `to_string`'s contract: a config that `validate` accepts (no error) and that the writer
/// writes parses back to itself. The writer may refuse a value, or `validate` flag it; writing a
/// file that does not read back (or reads back as something else) is a bug.
fn refused_flagged_or_round_trips(c: &Config) -> Result<(), String> {
    let Ok(text) = to_string(c) else {
        return Ok(());
    };
    if validate(c, None).iter().any(Diagnostic::is_error) {
        return Ok(());
    }
    match reparse(&text) {
        Ok(back) if back == *c => Ok(()),
        Ok(back) => Err(format!(
            "validate accepts it, the writer writes it, and it reads back as {back:?}\n---\n{text}---"
        )),
        Err(e) => Err(format!("validate accepts it, the writer writes it: {e}")),
    }
}

/// One change to a config.
type Change = fn(&mut Config);
/// Sets one host field of a config.
type SetHost = fn(&mut Config, Option<Host>);

/// A valid base config to put one odd value in.
fn valid_base() -> Config {
    let c = sample_config(1);
    let errors: Vec<Diagnostic> = validate(&c, None)
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    c
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A name or `dirs` entry starting with `#` is representable (the comment rule applies only to
/// a line's first non-blank character: `virtual #a {` parses), so it must round-trip. Quoting it
/// (`virtual "#a" {`) would be a "quotation mismatch": a quoted token without a blank cannot be
/// followed by another token.
#[test]
fn names_starting_with_hash_round_trip() {
    let mut failures = Vec::new();
    let cases: [(&str, Change); 4] = [
        ("virtual name", |c| {
            Arc::make_mut(&mut c.virtual_servers[0]).name = "#a".into()
        }),
        ("server name", |c| {
            Arc::make_mut(&mut c.virtual_servers[0]).servers[0].name = "#a".into()
        }),
        ("failover name", |c| {
            c.failover_services.push(Arc::new(VirtualServer::new("#a")))
        }),
        ("dirs entry", |c| {
            Arc::make_mut(&mut c.virtual_servers[0]).dirs = Some(vec!["#a".into(), "b".into()])
        }),
    ];
    for (what, change) in cases {
        let mut c = valid_base();
        change(&mut c);
        let result = to_string(&c)
            .map_err(|e| format!("refused: {e}"))
            .and_then(|text| match reparse(&text)? {
                back if back == c => Ok(()),
                _ => Err(format!("reads back differently\n---\n{text}---")),
            });
        if let Err(e) = result {
            failures.push(format!("{what} `#a`: {e}"));
        }
    }
    report(failures);
}

/// Names and `dirs` entries that no lvs.cf line can hold (a quoted token before another token
/// must contain a blank; `]` ends a list) must be refused by the writer or flagged by
/// `validate`, not written as a file that does not parse (`dirs = [ "" ]`, `dirs = [ ] ]`).
#[test]
fn unwritable_names_and_dirs_entries_are_refused_or_flagged() {
    let mut failures = Vec::new();
    for bad in ["'a", "\"a", ""] {
        let mut c = valid_base();
        Arc::make_mut(&mut c.virtual_servers[0]).name = bad.into();
        if let Err(e) = refused_flagged_or_round_trips(&c) {
            failures.push(format!("virtual name {bad:?}: {e}"));
        }
        let mut c = valid_base();
        Arc::make_mut(&mut c.virtual_servers[0]).servers[0].name = bad.into();
        if let Err(e) = refused_flagged_or_round_trips(&c) {
            failures.push(format!("server name {bad:?}: {e}"));
        }
    }
    for bad in ["'a", "\"a", "", "]"] {
        let mut c = valid_base();
        Arc::make_mut(&mut c.virtual_servers[0]).dirs = Some(vec![bad.into()]);
        if let Err(e) = refused_flagged_or_round_trips(&c) {
            failures.push(format!("dirs entry {bad:?}: {e}"));
        }
    }
    report(failures);
}

/// `RealServer::weight` is a `u32`, but the parser takes weights only up to `i32::MAX`
/// (Piranha's int): a larger weight must be refused or flagged, not written as a file that reads
/// back with an "out of range" error.
#[test]
fn weight_beyond_i32_is_refused_or_flagged() {
    let mut c = valid_base();
    Arc::make_mut(&mut c.virtual_servers[0]).servers[0].weight = i32::MAX as u32 + 1;
    refused_flagged_or_round_trips(&c).unwrap();
}

/// The parser takes `keepalive` / `deadtime` up to `u32::MAX` seconds: beyond, they must be
/// refused or flagged (`keepalive = 4294967296` is out of range, `4294967296.5` a syntax error).
#[test]
fn durations_beyond_u32_seconds_are_refused_or_flagged() {
    let mut failures = Vec::new();
    let big = u64::from(u32::MAX) + 1;
    for d in [Duration::from_secs(big), Duration::new(big, 500_000_000)] {
        let mut c = valid_base();
        c.keepalive = d;
        if let Err(e) = refused_flagged_or_round_trips(&c) {
            failures.push(format!("keepalive {d:?}: {e}"));
        }
        let mut c = valid_base();
        c.deadtime = d;
        if let Err(e) = refused_flagged_or_round_trips(&c) {
            failures.push(format!("deadtime {d:?}: {e}"));
        }
    }
    report(failures);
}

/// `primary`, `primary_private` and `backup_private` of 0.0.0.0 are refused by the parser (as
/// by Piranha: "invalid host name or ip address"), so the writer must refuse them or `validate`
/// flag them.
#[test]
fn zero_router_addresses_are_refused_or_flagged() {
    let mut failures = Vec::new();
    let cases: [(&str, SetHost); 3] = [
        ("primary", |c, h| c.primary = h),
        ("primary_private", |c, h| c.primary_private = h),
        ("backup_private", |c, h| c.backup_private = h),
    ];
    for (what, set) in cases {
        let mut c = valid_base();
        set(&mut c, Some(Host::from(Ipv4Addr::UNSPECIFIED)));
        if let Err(e) = refused_flagged_or_round_trips(&c) {
            failures.push(format!("{what} 0.0.0.0: {e}"));
        }
    }
    report(failures);
}
