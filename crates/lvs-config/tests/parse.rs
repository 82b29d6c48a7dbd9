//! Parser behaviour, keyword by keyword, against Piranha 0.8.6's lvsconfig.c.

use lvs_config::*;
use std::net::Ipv4Addr;
use std::time::Duration;

fn resolver() -> StaticResolver {
    let mut r = StaticResolver::standard();
    r.hosts
        .insert("router1".into(), Ipv4Addr::new(192, 0, 2, 10));
    r.hosts
        .insert("web1.example.com".into(), Ipv4Addr::new(198, 51, 100, 11));
    r
}

fn parse_ok(text: &str) -> Parsed {
    parse(text.as_bytes(), &resolver()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn parse_err(text: &str) -> SyntaxError {
    match parse(text.as_bytes(), &resolver()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn global_defaults_are_piranhas() {
    let c = parse_ok("# nothing but a comment\n").config;
    assert_eq!(c, Config::default());
    assert_eq!(c.heartbeat_port, 539);
    assert_eq!(c.keepalive, Duration::from_secs(2));
    assert_eq!(c.deadtime, Duration::from_secs(5));
    assert_eq!(c.network, Network::Nat);
    assert!(c.hard_shutdown);
    assert_eq!(c.rsh_command, "rsh");
    assert_eq!(c.debug_level, "NONE");
    assert_eq!(c.ipvsadm, "/sbin/ipvsadm");
    assert_eq!(c.syncd_iface, "eth0");
    assert_eq!(c.service, ServiceType::Lvs);
    assert!(!c.backup_active && !c.heartbeat && !c.sync && !c.syncdaemon);
    assert_eq!((c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout), (0, 0, 0));
}

#[test]
fn every_global_keyword() {
    let c = parse_ok(
        "serial_no = 42
primary = router1
primary_private = 10.0.0.1
primary_shared = /dev/sdb
service = fos
backup_active = 1
backup = 192.0.2.11
backup_private = 10.0.0.2
backup_shared = /dev/sdc
heartbeat = 1
heartbeat_port = 1539
keepalive = 6
deadtime = 18
network = tunnel
nat_router = 172.16.0.254 eth1:1
nat_nmask = 255.255.255.0
reservation_conflict_action = preempt
debug_level = ALL
rsh_command = ssh
sync = 1
ipvsadm = /usr/sbin/ipvsadm
active_cmd = /usr/local/sbin/up
inactive_cmd = \"/usr/local/sbin/down now\"
monitor_links = 1
syncdaemon = 1
syncd_iface = eth1
syncd_id = 7
tcp_timeout = 900
tcpfin_timeout = 120
udp_timeout = 300
hard_shutdown = 0
",
    )
    .config;
    assert_eq!(c.serial_no, 42);
    assert_eq!(
        c.primary,
        Some(Host {
            name: "router1".into(),
            address: ip("192.0.2.10")
        })
    );
    assert_eq!(c.primary_private, Some(Host::from(ip("10.0.0.1"))));
    assert_eq!(c.primary_shared.as_deref(), Some("/dev/sdb"));
    assert_eq!(c.service, ServiceType::Fos);
    assert!(c.backup_active);
    assert_eq!(c.backup, Some(Host::from(ip("192.0.2.11"))));
    assert_eq!(c.backup_private, Some(Host::from(ip("10.0.0.2"))));
    assert_eq!(c.backup_shared.as_deref(), Some("/dev/sdc"));
    assert!(c.heartbeat);
    assert_eq!(c.heartbeat_port, 1539);
    assert_eq!(c.keepalive, Duration::from_secs(6));
    assert_eq!(c.deadtime, Duration::from_secs(18));
    assert_eq!(c.network, Network::Tunnel);
    let nr = c.nat_router.unwrap();
    assert_eq!(
        (nr.address.address, nr.device.as_str()),
        (ip("172.16.0.254"), "eth1:1")
    );
    assert_eq!(c.nat_nmask, Some(ip("255.255.255.0")));
    assert_eq!(
        c.reservation_conflict_action,
        Some(ReservationConflictAction::Preempt)
    );
    assert_eq!(c.debug_level, "ALL");
    assert_eq!(c.rsh_command, "ssh");
    assert!(c.sync);
    assert_eq!(c.ipvsadm, "/usr/sbin/ipvsadm");
    assert_eq!(c.active_cmd.as_deref(), Some("/usr/local/sbin/up"));
    assert_eq!(c.inactive_cmd.as_deref(), Some("/usr/local/sbin/down now"));
    assert_eq!(c.monitor_links, 1);
    assert!(c.syncdaemon);
    assert_eq!(c.syncd_iface, "eth1");
    assert_eq!(c.syncd_id, 7);
    assert_eq!(
        (c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout),
        (900, 120, 300)
    );
    assert!(!c.hard_shutdown);
}

#[test]
fn virtual_and_server_defaults() {
    let c = parse_ok("virtual v {\n server s {\n }\n}\n").config;
    let v = &c.virtual_servers[0];
    assert_eq!(&**v, &{
        let mut d = VirtualServer::new("v");
        d.servers.push(RealServer::new("s", 80));
        d
    });
    assert!(!v.active);
    assert_eq!(v.port, 80);
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.scheduler, Scheduler::Wlc);
    assert_eq!((v.timeout, v.reentry, v.persistent), (10, 180, 0));
    assert_eq!(v.client_monitor, "/usr/sbin/nanny");
    assert_eq!(v.load_monitor, None);
    let s = &v.servers[0];
    assert!(!s.active);
    assert_eq!((s.weight, s.port), (1, 80));
}

#[test]
fn every_virtual_and_server_keyword() {
    let c = parse_ok(
        "virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     vip_nmask = 255.255.255.0
     fwmark = 0x10
     port = https
     protocol = udp
     scheduler = lblcr
     persistent = 300
     pmask = 255.255.255.0
     send = \"GET / HTTP/1.0\\r\\n\\r\\n\"
     expect = 'HTTP/1.[01] 200'
     use_regex = 1
     send_program = \"/usr/local/bin/check %h %p\"
     load_monitor = ruptime
     timeout = 6
     reentry = 15
     quiesce_server = 1
     sorry_server = 198.51.100.50
     client_monitor = /opt/nanny
     start_cmd = \"/etc/init.d/httpd start\"
     stop_cmd = \"/etc/init.d/httpd stop\"
     master = 192.0.2.10
     dirs = [ /var/www /etc/httpd ]
     server web1 {
         address = web1.example.com
         active = 1
         weight = 100
         port = 8443
     }
}
",
    )
    .config;
    let v = &c.virtual_servers[0];
    assert!(v.active);
    let a = v.address.as_ref().unwrap();
    assert_eq!(
        (a.address.address, a.device.as_str()),
        (ip("192.0.2.100"), "eth0:1")
    );
    assert_eq!(v.vip_nmask, Some(ip("255.255.255.0")));
    assert_eq!(v.fwmark, Some(16));
    assert_eq!(v.port, 443);
    assert_eq!(v.protocol, Protocol::Udp);
    assert_eq!(v.scheduler, Scheduler::Lblcr);
    assert_eq!(v.persistent, 300);
    assert_eq!(v.pmask, Some(ip("255.255.255.0")));
    // Quotes are removed; backslash escapes are left for nanny.
    assert_eq!(v.send.as_deref(), Some("GET / HTTP/1.0\\r\\n\\r\\n"));
    assert_eq!(v.expect.as_deref(), Some("HTTP/1.[01] 200"));
    assert!(v.use_regex);
    assert_eq!(
        v.send_program.as_deref(),
        Some("/usr/local/bin/check %h %p")
    );
    assert_eq!(v.load_monitor.as_deref(), Some("ruptime"));
    assert_eq!((v.timeout, v.reentry), (6, 15));
    assert!(v.quiesce_server);
    assert_eq!(v.sorry_server, Some(ip("198.51.100.50")));
    assert_eq!(v.client_monitor, "/opt/nanny");
    assert_eq!(v.start_cmd.as_deref(), Some("/etc/init.d/httpd start"));
    assert_eq!(v.stop_cmd.as_deref(), Some("/etc/init.d/httpd stop"));
    assert_eq!(v.master, Some(Host::from(ip("192.0.2.10"))));
    assert_eq!(
        v.dirs.as_deref(),
        Some(&["/var/www".to_string(), "/etc/httpd".to_string()][..])
    );
    let s = &v.servers[0];
    assert_eq!(s.name, "web1");
    assert_eq!(
        s.address,
        Some(Host {
            name: "web1.example.com".into(),
            address: ip("198.51.100.11")
        })
    );
    assert!(s.active);
    assert_eq!((s.weight, s.port), (100, 8443));
}

#[test]
fn every_scheduler_name() {
    for s in Scheduler::ALL {
        let c = parse_ok(&format!("virtual v {{\n scheduler = {}\n}}\n", s.name())).config;
        assert_eq!(c.virtual_servers[0].scheduler, s);
    }
    assert_eq!(
        parse_err("virtual v {\n scheduler = WLC\n}\n").code,
        ErrorCode::BadArgument
    );
    // The name used by releases before 9/2000.
    let p = parse_ok("virtual v {\n scheduler = pcc\n}\n");
    assert_eq!(p.config.virtual_servers[0].scheduler, Scheduler::Lc);
    assert_eq!(p.diagnostics.len(), 1);
    assert_eq!(p.diagnostics[0].severity, Severity::Warning);
}

#[test]
fn server_port_is_the_virtual_port_in_force_when_the_block_starts() {
    let c = parse_ok(
        "virtual v {\n server early {\n }\n port = 8080\n server late {\n }\n port = 9090\n}\n",
    )
    .config;
    let v = &c.virtual_servers[0];
    assert_eq!(v.port, 9090);
    assert_eq!(v.servers[0].port, 80);
    assert_eq!(v.servers[1].port, 8080);
}

#[test]
fn numbers_as_strtol() {
    let c = parse_ok(
        "virtual v {\n port = 0x1F90\n timeout = 010\n reentry = +30\n server s {\n weight = 0X20\n }\n}\n",
    )
    .config;
    let v = &c.virtual_servers[0];
    assert_eq!((v.port, v.timeout, v.reentry), (8080, 8, 30));
    assert_eq!(v.servers[0].weight, 32);
    // Booleans go through the integer parser first.
    let c = parse_ok("virtual v {\n active = 0x1\n quiesce_server = 00\n}\n").config;
    assert!(c.virtual_servers[0].active);
    assert_eq!(
        parse_err("virtual v {\n active = yes\n}\n"),
        SyntaxError {
            code: ErrorCode::IntExpected,
            line: 2
        }
    );
    assert_eq!(
        parse_err("virtual v {\n active = -1\n}\n").code,
        ErrorCode::BoolExpected
    );
}

#[test]
fn zero_and_all_ones_mean_unset_as_in_piranha() {
    let c = parse_ok(
        "virtual v {\n fwmark = 0\n pmask = 255.255.255.255\n sorry_server = 0.0.0.0\n vip_nmask = 0.0.0.0\n}\nnat_nmask = 0.0.0.0\n",
    )
    .config;
    let v = &c.virtual_servers[0];
    assert_eq!(
        (v.fwmark, v.pmask, v.sorry_server, v.vip_nmask),
        (None, None, None, None)
    );
    assert_eq!(c.nat_nmask, None);
}

#[test]
fn host_fields_accept_names_quads_and_inet_aton_forms() {
    let c = parse_ok("primary = localhost\nbackup = 0.0.0.0\nbackup_private = 10.1\n").config;
    assert_eq!(c.primary.unwrap().address, Ipv4Addr::LOCALHOST);
    // Piranha only refused 0.0.0.0 for primary, primary_private and backup_private.
    assert_eq!(c.backup.unwrap().address, Ipv4Addr::UNSPECIFIED);
    let bp = c.backup_private.unwrap();
    assert_eq!((bp.name.as_str(), bp.address), ("10.1", ip("10.0.0.1")));
    assert_eq!(
        parse_err("primary = nosuchhost\n").code,
        ErrorCode::BadArgument
    );
    assert_eq!(
        parse_err("primary_private = 0.0.0.0\n").code,
        ErrorCode::BadHostname
    );
    // sorry_server wants a dotted quad, not a name.
    assert_eq!(
        parse_err("virtual v {\n sorry_server = localhost\n}\n"),
        SyntaxError {
            code: ErrorCode::BadHostname,
            line: 2
        }
    );
}

#[test]
fn ports_accept_service_names_where_piranha_did() {
    let c = parse_ok("heartbeat_port = ssh\nvirtual v {\n port = ftp\n}\n").config;
    assert_eq!(c.heartbeat_port, 22);
    assert_eq!(c.virtual_servers[0].port, 21);
    // The real-server port is a plain integer.
    assert_eq!(
        parse_err("virtual v {\n server s {\n port = http\n }\n}\n"),
        SyntaxError {
            code: ErrorCode::IntExpected,
            line: 3
        }
    );
    assert_eq!(
        parse_err("virtual v {\n port = gopher-plus\n}\n").code,
        ErrorCode::BadArgument
    );
}

#[test]
fn line_ends_lf_crlf_and_cr_give_the_same_config_and_lines() {
    let lf =
        "primary = 192.0.2.1\n\nvirtual v {\n     active = 1\n     address = 192.0.2.2 eth0:1\n}\n";
    let crlf = lf.replace('\n', "\r\n");
    let cr = lf.replace('\n', "\r");
    let a = parse_ok(lf);
    for other in [crlf, cr] {
        let b = parse_ok(&other);
        assert_eq!(a.config, b.config);
        assert_eq!(a.source, b.source);
    }
    assert_eq!(a.source.virtual_servers[0].line, 3);
    assert_eq!(a.source.virtual_servers[0].keyword("address"), Some(5));
    // Errors in CRLF files report the same line as in LF files.
    let bad = "primary = 192.0.2.1\r\n\r\nbogus = 1\r\n";
    assert_eq!(parse_err(bad).line, 3);
}

#[test]
fn comments_only_at_line_start_and_tokens_split_on_blanks() {
    let c = parse_ok("  \t# indented comment\nprimary\t=\t192.0.2.1\n").config;
    assert!(c.primary.is_some());
    assert_eq!(
        parse_err("primary = 192.0.2.1 # trailing\n").code,
        ErrorCode::ExtraArgs
    );
    assert_eq!(
        parse_err("primary=192.0.2.1\n").code,
        ErrorCode::EqualExpected
    );
    assert_eq!(
        parse_err("primary =192.0.2.1\n").code,
        ErrorCode::EqualExpected
    );
    assert_eq!(
        parse_err("primary 192.0.2.1\n").code,
        ErrorCode::EqualExpected
    );
    assert_eq!(parse_err("primary\n").code, ErrorCode::EqualExpected);
    assert_eq!(parse_err("primary =\n").code, ErrorCode::MissingArgs);
    assert_eq!(parse_err("nonsense=1\n").code, ErrorCode::BadCommand);
}

#[test]
fn quoted_tokens_and_names() {
    let c = parse_ok(
        "primary = \"192.0.2.1\"\nvirtual \"my web\" {\n send = 'say \"hi\"'\n expect = \"\"\n}\n",
    )
    .config;
    assert!(c.primary.is_some());
    // A quoted word that closes its own quote must be the last token of its line (C tokenizer).
    assert_eq!(
        parse_err("\"primary\" = 192.0.2.1\n").code,
        ErrorCode::BadQuoting
    );
    assert_eq!(
        parse_err("virtual \"www\" {\n}\n").code,
        ErrorCode::BadQuoting
    );
    let v = &c.virtual_servers[0];
    assert_eq!(v.name, "my web");
    assert_eq!(v.send.as_deref(), Some("say \"hi\""));
    assert_eq!(v.expect.as_deref(), Some(""));
}

#[test]
fn block_structure_errors() {
    let e = |t: &str| parse_err(t);
    assert_eq!(
        e("virtual\n"),
        SyntaxError {
            code: ErrorCode::MissingArgs,
            line: 1
        }
    );
    assert_eq!(e("virtual v\n").code, ErrorCode::MissingArgs);
    assert_eq!(e("virtual v [\n").code, ErrorCode::MissingArgs);
    assert_eq!(e("virtual v { x\n").code, ErrorCode::ExtraArgs);
    assert_eq!(
        e("virtual v {\n server\n}\n"),
        SyntaxError {
            code: ErrorCode::MissingArgs,
            line: 2
        }
    );
    assert_eq!(
        e("virtual v {\n} x\n"),
        SyntaxError {
            code: ErrorCode::ExtraArgs,
            line: 2
        }
    );
    assert_eq!(e("server s {\n}\n").code, ErrorCode::BadCommand);
    assert_eq!(e("}\n").code, ErrorCode::BadCommand);
    assert_eq!(
        e("virtual v {\n virtual w {\n}\n}\n"),
        SyntaxError {
            code: ErrorCode::BadCommand,
            line: 2
        }
    );
    assert_eq!(
        e("virtual v {\n server s {\n server t {\n").code,
        ErrorCode::BadCommand
    );
    // Unclosed blocks: "unexpected end of file" at the last line.
    assert_eq!(
        e("virtual v {\n active = 1\n\n"),
        SyntaxError {
            code: ErrorCode::Eof,
            line: 3
        }
    );
    assert_eq!(e("virtual v {\n server s {\n }").code, ErrorCode::Eof);
    assert_eq!(e("").code, ErrorCode::Empty);
    // Keywords of one level are unknown at another.
    assert_eq!(e("weight = 1\n").code, ErrorCode::BadCommand);
    assert_eq!(
        e("virtual v {\n weight = 1\n}\n").code,
        ErrorCode::BadCommand
    );
    assert_eq!(
        e("virtual v {\n server s {\n scheduler = rr\n }\n}\n").code,
        ErrorCode::BadCommand
    );
}

#[test]
fn the_first_syntax_error_in_file_order_wins() {
    // A quoting error further down does not hide an earlier error.
    let e = parse_err("bogus = 1\nvirtual v {\n send = \"x\n}\n");
    assert_eq!(
        e,
        SyntaxError {
            code: ErrorCode::BadCommand,
            line: 1
        }
    );
}

#[test]
fn failover_blocks_are_kept_apart() {
    let c = parse_ok(
        "service = fos\nfailover ftp {\n active = 1\n address = 192.0.2.5 eth0:1\n port = 21\n start_cmd = \"/etc/init.d/vsftpd start\"\n stop_cmd = \"/etc/init.d/vsftpd stop\"\n}\nvirtual v {\n}\n",
    )
    .config;
    assert_eq!(c.failover_services.len(), 1);
    assert_eq!(c.virtual_servers.len(), 1);
    assert_eq!(c.failover_services[0].port, 21);
    assert_eq!(c.running_blocks().len(), 1);
    assert_eq!(c.running_blocks()[0].name, "ftp");
}

#[test]
fn fractional_seconds_extension() {
    let c = parse_ok("keepalive = 0.2\ndeadtime = 1.25\n").config;
    assert_eq!(c.keepalive, Duration::from_millis(200));
    assert_eq!(c.deadtime, Duration::from_millis(1250));
    let c = parse_ok("keepalive = .5\ndeadtime = 3.\n").config;
    assert_eq!(c.keepalive, Duration::from_millis(500));
    assert_eq!(c.deadtime, Duration::from_secs(3));
    for bad in [
        "keepalive = 1.2.3\n",
        "keepalive = .\n",
        "keepalive = -0.5\n",
        "keepalive = 0x1.8\n",
    ] {
        assert_eq!(parse_err(bad).code, ErrorCode::IntExpected, "{bad}");
    }
}

#[test]
fn out_of_range_values_are_reported_with_their_line_and_parsing_goes_on() {
    let p = parse_ok(
        "syncd_id = 256\nvirtual v {\n port = 65536\n timeout = -1\n server s {\n weight = -1\n port = 99999\n }\n}\n",
    );
    let lines: Vec<(u32, &str)> = p
        .diagnostics
        .iter()
        .map(|d| (d.location.line.unwrap(), d.location.keyword.unwrap()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (1, "syncd_id"),
            (3, "port"),
            (4, "timeout"),
            (6, "weight"),
            (7, "port")
        ]
    );
    assert!(p.diagnostics.iter().all(|d| d.is_error()));
    // The defaults are kept, so one mistake gives one message.
    let v = &p.config.virtual_servers[0];
    assert_eq!((v.port, v.timeout, v.servers[0].weight), (80, 10, 1));
}

#[test]
fn repeated_keywords_warn_and_the_last_wins() {
    let p = parse_ok("keepalive = 2\nkeepalive = 6\n");
    assert_eq!(p.config.keepalive, Duration::from_secs(6));
    assert_eq!(p.diagnostics.len(), 1);
    assert_eq!(p.diagnostics[0].severity, Severity::Warning);
    assert_eq!(p.diagnostics[0].location.line, Some(2));
}

#[test]
fn dirs_lists() {
    assert_eq!(
        parse_err("virtual v {\n dirs = a b\n}\n").code,
        ErrorCode::ListExpected
    );
    assert_eq!(
        parse_err("virtual v {\n dirs = [ a b\n}\n").code,
        ErrorCode::ListExpected
    );
    assert_eq!(
        parse_err("virtual v {\n dirs = [ a ] b\n}\n").code,
        ErrorCode::ExtraArgs
    );
    assert_eq!(
        parse_err("virtual v {\n dirs [ a ]\n}\n").code,
        ErrorCode::EqualExpected
    );
    let c = parse_ok("virtual v {\n dirs = [ ]\n}\n").config;
    assert_eq!(c.virtual_servers[0].dirs, Some(vec![]));
}

#[test]
fn non_utf8_values_are_refused_but_comments_may_hold_anything() {
    assert!(parse(b"# caf\xe9\nprimary = 192.0.2.1\n", &resolver()).is_ok());
    assert_eq!(
        parse(b"virtual v {\n send = caf\xe9\n}\n", &resolver())
            .unwrap_err()
            .code,
        ErrorCode::BadArgument
    );
}

#[test]
fn summary_counts() {
    let c = parse_ok(
        "virtual a {\n active = 1\n server x {\n active = 1\n }\n server y {\n }\n}\nvirtual b {\n server z {\n active = 1\n }\n}\n",
    )
    .config;
    let s = c.summary();
    assert_eq!((s.active_virtual, s.inactive_virtual), (1, 1));
    assert_eq!((s.active_real, s.inactive_real), (1, 2));
    assert_eq!(
        s.to_string(),
        "2 virtual servers (1 active, 1 inactive), 3 real servers (1 active, 2 inactive)"
    );
    let one =
        parse_ok("virtual a {\n active = 1\n server x {\n active = 1\n }\n}\nfailover f {\n}\n");
    assert_eq!(
        one.config.summary().to_string(),
        "1 virtual server (1 active, 0 inactive), 1 real server (1 active, 0 inactive), 1 failover service (0 active, 1 inactive)"
    );
}

#[test]
fn json_form_round_trips() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../integration-tests/lvs.cf/valid"
    );
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let c = parse(&bytes, &StaticResolver::standard()).unwrap().config;
        let json = serde_json::to_string(&c).unwrap();
        let back: Config = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c, "{}", path.display());
        n += 1;
    }
    assert!(n >= 5);
    let c = Config {
        keepalive: Duration::from_millis(100),
        deadtime: Duration::new(1, 5),
        ..Config::default()
    };
    let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn heartbeat_key_file_extension() {
    let c = parse_ok("heartbeat_key_file = /etc/sysconfig/ha/heartbeat.key\n").config;
    assert_eq!(
        c.heartbeat_key_file.as_deref(),
        Some("/etc/sysconfig/ha/heartbeat.key")
    );
    assert_eq!(Config::default().heartbeat_key_file, None);
    let text =
        "primary = 10.0.0.1\nbackup = 10.0.0.2\nbackup_active = 1\nheartbeat_key_file = key\n";
    let d = validate(&parse_ok(text).config, None);
    assert!(d
        .iter()
        .any(|d| d.is_error() && d.message.contains("heartbeat_key_file")));
}
