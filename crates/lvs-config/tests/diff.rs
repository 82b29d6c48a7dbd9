//! The reload diff: what lvsd must add, remove, edit in place or leave alone.

use lvs_config::diff::*;
use lvs_config::*;

const BASE: &str = "primary = 192.0.2.10
tcp_timeout = 900
virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     port = 80
     scheduler = wlc
     send = \"GET / HTTP/1.0\\r\\n\\r\\n\"
     expect = \"HTTP\"
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
     server ns1 {
         address = 198.51.100.21
         active = 1
     }
}
";

fn cfg(text: &str) -> Config {
    parse(text.as_bytes(), &StaticResolver::standard())
        .unwrap()
        .config
}

fn edit(from: &str, to: &str) -> Config {
    assert!(BASE.contains(from), "{from}");
    cfg(&BASE.replacen(from, to, 1))
}

#[test]
fn identical_configs_have_an_empty_diff() {
    let d = diff(&cfg(BASE), &cfg(BASE));
    assert!(d.is_empty());
    assert_eq!(d.virtual_servers.unchanged, vec![(0, 0), (1, 1)]);
}

#[test]
fn scheduler_change_is_an_in_place_edit_and_other_services_are_untouched() {
    let d = diff(&cfg(BASE), &edit("scheduler = wlc", "scheduler = rr"));
    assert!(d.global.is_empty());
    let v = &d.virtual_servers;
    assert!(v.added.is_empty() && v.removed.is_empty());
    assert_eq!(v.unchanged, vec![(1, 1)]);
    assert_eq!(v.changed.len(), 1);
    let c = &v.changed[0];
    assert_eq!(c.fields, vec!["scheduler"]);
    assert!(c.service_edited());
    assert!(!c.service_replaced());
    assert!(!c.checks_changed());
    assert_eq!(c.servers_unchanged, vec![(0, 0), (1, 1)]);
}

#[test]
fn persistence_is_an_in_place_edit() {
    let d = diff(
        &cfg(BASE),
        &edit(
            "scheduler = wlc",
            "scheduler = wlc\n     persistent = 300\n     pmask = 255.255.255.0",
        ),
    );
    let c = &d.virtual_servers.changed[0];
    assert_eq!(c.fields, vec!["persistent", "pmask"]);
    assert!(c.service_edited());
}

#[test]
fn weight_change_touches_one_real_server_only() {
    let d = diff(&cfg(BASE), &edit("weight = 20", "weight = 25"));
    let c = &d.virtual_servers.changed[0];
    assert!(c.fields.is_empty());
    assert_eq!(c.servers_unchanged, vec![(0, 0)]);
    assert_eq!(c.servers_changed.len(), 1);
    assert_eq!(c.servers_changed[0].fields, vec!["weight"]);
    assert!(!c.servers_changed[0].destination_replaced());
}

#[test]
fn real_server_port_change_replaces_the_destination() {
    let d = diff(
        &cfg(BASE),
        &edit("weight = 20", "weight = 20\n         port = 8080"),
    );
    let s = &d.virtual_servers.changed[0].servers_changed[0];
    assert_eq!(s.fields, vec!["port"]);
    assert!(s.destination_replaced());
}

#[test]
fn real_servers_added_and_removed_one_by_one() {
    let new = edit(
        "     server web2 {
         address = 198.51.100.12
         active = 1
         weight = 20
     }
",
        "     server web3 {
         address = 198.51.100.13
         active = 1
     }
",
    );
    let d = diff(&cfg(BASE), &new);
    let c = &d.virtual_servers.changed[0];
    assert_eq!(c.servers_removed, vec![1]);
    assert_eq!(c.servers_added, vec![1]);
    assert_eq!(c.servers_unchanged, vec![(0, 0)]);
    assert!(c.fields.is_empty(), "the service itself is untouched");
}

#[test]
fn check_parameters_restart_the_nannies() {
    for (from, to, field) in [
        ("expect = \"HTTP\"", "expect = \"HTTP/1.1 200\"", "expect"),
        (
            "expect = \"HTTP\"",
            "expect = \"HTTP\"\n     timeout = 5",
            "timeout",
        ),
        (
            "expect = \"HTTP\"",
            "expect = \"HTTP\"\n     quiesce_server = 1",
            "quiesce_server",
        ),
        (
            "expect = \"HTTP\"",
            "expect = \"HTTP\"\n     load_monitor = ruptime",
            "load_monitor",
        ),
    ] {
        let d = diff(&cfg(BASE), &edit(from, to));
        let c = &d.virtual_servers.changed[0];
        assert_eq!(c.fields, vec![field]);
        assert!(c.checks_changed(), "{field}");
        assert!(!c.service_edited() && !c.service_replaced(), "{field}");
    }
}

#[test]
fn port_change_replaces_the_service() {
    let d = diff(&cfg(BASE), &edit("port = 80", "port = 8000"));
    let c = &d.virtual_servers.changed[0];
    assert!(c.fields.contains(&"port"));
    assert!(c.service_replaced());
    assert!(!c.service_edited());
}

#[test]
fn renamed_block_pairs_by_service_identity() {
    let d = diff(&cfg(BASE), &edit("virtual www {", "virtual web {"));
    assert!(d.virtual_servers.added.is_empty() && d.virtual_servers.removed.is_empty());
    assert_eq!(d.virtual_servers.changed[0].fields, vec!["name"]);
    assert!(!d.virtual_servers.changed[0].service_replaced());
}

#[test]
fn renamed_real_server_pairs_by_address_and_port() {
    let d = diff(&cfg(BASE), &edit("server web2 {", "server www2 {"));
    let c = &d.virtual_servers.changed[0];
    assert!(c.servers_added.is_empty() && c.servers_removed.is_empty());
    assert_eq!(c.servers_changed[0].fields, vec!["name"]);
}

#[test]
fn virtual_servers_added_removed_and_deactivated() {
    let without_dns = cfg(&BASE[..BASE.find("virtual dns").unwrap()]);
    let d = diff(&cfg(BASE), &without_dns);
    assert_eq!(d.virtual_servers.removed, vec![1]);
    let d = diff(&without_dns, &cfg(BASE));
    assert_eq!(d.virtual_servers.added, vec![1]);
    let d = diff(
        &cfg(BASE),
        &edit(
            "     active = 1\n     address = 192.0.2.101",
            "     active = 0\n     address = 192.0.2.101",
        ),
    );
    let c = &d.virtual_servers.changed[0];
    assert_eq!((c.old, c.new), (1, 1));
    assert!(c.activity_changed());
}

#[test]
fn global_changes_are_named() {
    let d = diff(
        &cfg(BASE),
        &edit(
            "tcp_timeout = 900",
            "tcp_timeout = 600\nkeepalive = 1\nnetwork = direct",
        ),
    );
    assert_eq!(d.global, vec!["keepalive", "network", "tcp_timeout"]);
    assert!(d.timeouts_changed());
    assert!(d.heartbeat_changed());
    assert!(d.network_changed());
    assert!(d.virtual_servers.is_empty());
}
