//! What a reload (SIGHUP) changes. Pure.
//!
//! Piranha's reload (spec §3.5) matched virtual servers by VIP/protocol/port only, ignored
//! scheduler and persistence changes, shut a whole service down when one real server left it,
//! and never restarted a nanny whose parameters changed. Here:
//!
//! - **Nannies** are matched by their key (virtual service, real address, real port). Same key and
//!   same argument vector: kept, with its health and weight. Same key, other arguments (weight,
//!   send/expect, timeout, reentry, `client_monitor`, …): restarted. Key gone: stopped. New key:
//!   started.
//! - **Services** are matched by IPVS identity. The desired table before and after is compared
//!   service by service; only services whose desired state differs are read from the kernel and
//!   reconciled (an edit in place for scheduler/persistence, destinations one by one). Unchanged
//!   services get no kernel request at all.

use crate::monitor::MonitorSpec;
use crate::plan::{DesiredDest, DesiredService, DesiredTable, MonitorKey, Role};
use ipvs::ServiceId;
use lvs_config::diff::ConfigDiff;
use lvs_config::Config;
use rustc_hash::FxHashSet as HashSet;

/// What happens to each nanny.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorPlan {
    pub keep: Vec<MonitorKey>,
    pub restart: Vec<MonitorKey>,
    pub stop: Vec<MonitorKey>,
    pub start: Vec<MonitorKey>,
}

/// Compares the running nannies with the new config's. `new` holds the nannies of the blocks
/// that may have changed; `touched` the services (old and new) of those blocks: a running nanny
/// of an untouched service is kept without a look, one of a touched service that `new` does not
/// have is stopped.
pub fn plan_monitors<'a>(
    running: &[(MonitorKey, ServiceId)],
    running_argv: &dyn Fn(&MonitorKey) -> Option<&'a [String]>,
    new: &[MonitorSpec],
    touched: &HashSet<ServiceId>,
) -> MonitorPlan {
    let mut plan = MonitorPlan::default();
    let mut wanted = HashSet::default();
    for spec in new {
        wanted.insert(spec.key);
        match running_argv(&spec.key) {
            Some(argv) if argv == spec.argv.as_slice() => plan.keep.push(spec.key),
            Some(_) => plan.restart.push(spec.key),
            None => plan.start.push(spec.key),
        }
    }
    plan.stop = running
        .iter()
        .filter(|(k, service)| touched.contains(service) && !wanted.contains(k))
        .map(|(k, _)| *k)
        .collect();
    plan
}

/// Among `ids`, the services whose desired kernel state differs between `old` and `new`
/// (present in one only, or different), in the order of `ids`.
pub fn changed_services<'a>(
    ids: &[ServiceId],
    old: &dyn Fn(&ServiceId) -> Option<&'a DesiredService>,
    new: &dyn Fn(&ServiceId) -> Option<&'a DesiredService>,
) -> Vec<ServiceId> {
    ids.iter()
        .filter(|id| match (old(id), new(id)) {
            (None, None) => false,
            (Some(a), Some(b)) => !same_kernel_state(a, b),
            _ => true,
        })
        .copied()
        .collect()
}

/// Services whose desired kernel state differs between two tables, in order: removed (old
/// order), then added or changed (new order). Names (of virtual or real servers) do not count:
/// a rename changes nothing in the kernel.
pub fn affected_services(old: &DesiredTable, new: &DesiredTable) -> Vec<ServiceId> {
    let mut ids: Vec<ServiceId> = old.ids().filter(|id| !new.contains(id)).collect();
    ids.extend(new.ids());
    changed_services(&ids, &|id| old.get(id), &|id| new.get(id))
}

/// Same service settings and the same destinations, whatever the names.
pub fn same_kernel_state(a: &DesiredService, b: &DesiredService) -> bool {
    let key = |d: &DesiredDest| (d.addr, d.port, d.forward, d.want, d.role == Role::Sorry);
    a.service == b.service
        && a.dests.len() == b.dests.len()
        && a.dests.iter().map(key).eq(b.dests.iter().map(key))
}

/// One log line per change a reload makes to the config, from [`lvs_config::diff`].
pub fn describe_diff(old: &Config, new: &Config, d: &ConfigDiff) -> Vec<String> {
    let mut out = Vec::new();
    let globals: Vec<&str> = d
        .global
        .iter()
        .copied()
        .filter(|k| *k != "serial_no")
        .collect();
    if !globals.is_empty() {
        out.push(format!("global settings changed: {}", globals.join(", ")));
    }
    let vd = &d.virtual_servers;
    for &i in &vd.removed {
        out.push(format!(
            "virtual server {} removed",
            old.virtual_servers[i].name
        ));
    }
    for &i in &vd.added {
        out.push(format!(
            "virtual server {} added",
            new.virtual_servers[i].name
        ));
    }
    for c in &vd.changed {
        let (o, n) = (&old.virtual_servers[c.old], &new.virtual_servers[c.new]);
        let mut parts = Vec::new();
        if o.name != n.name {
            parts.push(format!("renamed from {}", o.name));
        }
        let fields: Vec<&str> = c.fields.iter().copied().filter(|f| *f != "name").collect();
        if !fields.is_empty() {
            parts.push(format!("{} changed", fields.join(", ")));
        }
        for &i in &c.servers_added {
            parts.push(format!("real server {} added", n.servers[i].name));
        }
        for &i in &c.servers_removed {
            parts.push(format!("real server {} removed", o.servers[i].name));
        }
        for sc in &c.servers_changed {
            parts.push(format!(
                "real server {}: {} changed",
                n.servers[sc.new].name,
                sc.fields.join(", ")
            ));
        }
        if parts.is_empty() {
            continue;
        }
        out.push(format!("virtual server {}: {}", n.name, parts.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{monitor_specs, planned_monitors, ArgvOptions};
    use crate::plan::{desired_table, Health};
    use lvs_config::{diff, parse, StaticResolver};

    fn cfg(text: &str) -> Config {
        parse(text.as_bytes(), &StaticResolver::standard())
            .unwrap()
            .config
    }

    const BASE: &str = "virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     scheduler = wlc
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

    fn plan(old: &str, new: &str) -> (MonitorPlan, Vec<String>) {
        let (o, n) = (cfg(old), cfg(new));
        let opts = ArgvOptions::default();
        let specs = monitor_specs(&o, opts);
        let running: Vec<(MonitorKey, ServiceId)> =
            specs.iter().map(|s| (s.key, s.service)).collect();
        let argv = |k: &MonitorKey| {
            specs
                .iter()
                .find(|s| s.key == *k)
                .map(|s| s.argv.as_slice())
        };
        let d = diff(&o, &n);
        let argv_globals = d.global_changed(crate::monitor::ARGV_GLOBALS);
        let same: HashSet<usize> = if argv_globals {
            HashSet::default()
        } else {
            d.virtual_servers.unchanged.iter().map(|p| p.1).collect()
        };
        let key = |c: &Config, i: usize| c.virtual_servers[i].key().map(crate::plan::service_id);
        let mut touched: HashSet<ServiceId> = HashSet::default();
        if argv_globals {
            touched.extend(running.iter().map(|r| r.1));
        }
        touched.extend(d.virtual_servers.removed.iter().filter_map(|&i| key(&o, i)));
        for c in &d.virtual_servers.changed {
            touched.extend(key(&o, c.old));
        }
        let planned = planned_monitors(&n, opts, &|i| same.contains(&i));
        touched.extend(planned.iter().map(|s| s.service));
        let mut p = plan_monitors(&running, &argv, &planned, &touched);
        // Planning from the diff gives the same answer as comparing every nanny.
        let all_services: HashSet<ServiceId> = running
            .iter()
            .map(|r| r.1)
            .chain(monitor_specs(&n, opts).iter().map(|s| s.service))
            .collect();
        let full = plan_monitors(&running, &argv, &monitor_specs(&n, opts), &all_services);
        assert_eq!(
            (&full.restart, &full.stop, &full.start),
            (&p.restart, &p.stop, &p.start)
        );
        // Kept: those compared plus those not looked at.
        p.keep = full.keep;
        let health = |_: &MonitorKey| Health::Up(1);
        let a = affected_services(
            &desired_table(&o, &health, &|_| false),
            &desired_table(&n, &health, &|_| false),
        );
        let names = a.iter().map(crate::reconcile::service_arg).collect();
        (p, names)
    }

    fn rips(keys: &[MonitorKey]) -> Vec<String> {
        keys.iter().map(|k| k.rip.to_string()).collect()
    }

    #[test]
    fn nothing_changed() {
        let (p, a) = plan(BASE, BASE);
        assert_eq!(p.keep.len(), 3);
        assert!(p.restart.is_empty() && p.stop.is_empty() && p.start.is_empty());
        assert!(a.is_empty());
        // A new serial number or a renamed real server changes nothing either.
        let (p, a) = plan(
            BASE,
            &format!("serial_no = 9\n{}", BASE.replace("web1", "alpha")),
        );
        assert_eq!(p.keep.len(), 3);
        assert!(a.is_empty());
    }

    #[test]
    fn scheduler_change_edits_one_service_and_keeps_every_nanny() {
        let (p, a) = plan(BASE, &BASE.replace("scheduler = wlc", "scheduler = rr"));
        assert_eq!(p.keep.len(), 3);
        assert!(p.restart.is_empty());
        assert_eq!(a, ["-t 192.0.2.100:80"]);
        let (p, a) = plan(
            BASE,
            &BASE.replace(
                "scheduler = wlc",
                "persistent = 60\n     pmask = 255.255.255.0",
            ),
        );
        assert_eq!(p.keep.len(), 3);
        assert_eq!(a, ["-t 192.0.2.100:80"]);
    }

    #[test]
    fn weight_change_restarts_only_that_nanny() {
        let (p, a) = plan(BASE, &BASE.replace("weight = 20", "weight = 25"));
        assert_eq!(rips(&p.restart), ["198.51.100.12"]);
        assert_eq!(p.keep.len(), 2);
        // The desired table is computed with the same health here, so no service differs; the
        // controller re-plans with the restarted server's health reset.
        assert!(a.is_empty());
    }

    #[test]
    fn check_parameter_change_restarts_the_blocks_nannies() {
        let (p, _) = plan(BASE, &BASE.replace("scheduler = wlc", "timeout = 3"));
        assert_eq!(rips(&p.restart), ["198.51.100.11", "198.51.100.12"]);
        assert_eq!(rips(&p.keep), ["198.51.100.21"]);
    }

    #[test]
    fn real_servers_come_and_go_one_by_one() {
        let removed = BASE.replace(
            "     server web2 {\n         address = 198.51.100.12\n         active = 1\n         weight = 20\n     }\n",
            "",
        );
        let (p, a) = plan(BASE, &removed);
        assert_eq!(rips(&p.stop), ["198.51.100.12"]);
        assert_eq!(p.keep.len(), 2);
        assert_eq!(a, ["-t 192.0.2.100:80"]);
        let (p, a) = plan(&removed, BASE);
        assert_eq!(rips(&p.start), ["198.51.100.12"]);
        assert_eq!(a, ["-t 192.0.2.100:80"]);
        // Deactivating a real server stops its nanny.
        let (p, _) = plan(
            BASE,
            &BASE.replacen(
                "active = 1\n         weight = 20",
                "active = 0\n         weight = 20",
                1,
            ),
        );
        assert_eq!(rips(&p.stop), ["198.51.100.12"]);
        // A real port change is a new destination: the old nanny stops, a new one starts.
        let (p, _) = plan(
            BASE,
            &BASE.replace("weight = 20", "weight = 20\n         port = 8080"),
        );
        assert_eq!(rips(&p.stop), ["198.51.100.12"]);
        assert_eq!(rips(&p.start), ["198.51.100.12"]);
    }

    #[test]
    fn virtual_servers_come_and_go() {
        let without_dns = &BASE[..BASE.find("virtual dns").unwrap()];
        let (p, a) = plan(BASE, without_dns);
        assert_eq!(rips(&p.stop), ["198.51.100.21"]);
        assert_eq!(a, ["-u 192.0.2.101:53"]);
        let (p, a) = plan(without_dns, BASE);
        assert_eq!(rips(&p.start), ["198.51.100.21"]);
        assert_eq!(a, ["-u 192.0.2.101:53"]);
        // Deactivated: same as removed.
        let off = BASE.replace(
            "     active = 1\n     address = 192.0.2.101",
            "     active = 0\n     address = 192.0.2.101",
        );
        let (p, a) = plan(BASE, &off);
        assert_eq!(rips(&p.stop), ["198.51.100.21"]);
        assert_eq!(a, ["-u 192.0.2.101:53"]);
        // A port change replaces the service: old one removed, new one added, nannies restarted
        // under their new key.
        let moved = BASE.replace("port = 53", "port = 5353");
        let (p, a) = plan(BASE, &moved);
        assert_eq!(rips(&p.stop), ["198.51.100.21"]);
        assert_eq!(rips(&p.start), ["198.51.100.21"]);
        assert_eq!(a, ["-u 192.0.2.101:53", "-u 192.0.2.101:5353"]);
    }

    #[test]
    fn network_change_touches_every_service_and_nanny() {
        let (p, a) = plan(BASE, &format!("network = direct\n{BASE}"));
        assert_eq!(p.restart.len(), 3);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn diff_lines_name_every_change() {
        let old = cfg(BASE);
        let new_text = format!(
            "tcp_timeout = 900\n{}",
            BASE.replace("scheduler = wlc", "scheduler = rr")
                .replace("weight = 20", "weight = 25")
                .replace("virtual dns", "virtual named")
        );
        let new = cfg(&new_text);
        let lines = describe_diff(&old, &new, &diff(&old, &new));
        assert_eq!(
            lines,
            [
                "global settings changed: tcp_timeout",
                "virtual server www: scheduler changed; real server web2: weight changed",
                "virtual server named: renamed from dns",
            ]
        );
    }
}
