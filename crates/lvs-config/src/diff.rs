//! The difference between two configs, at the granularity lvsd's reload and pulse need.
//!
//! Blocks are paired by name first, then (for renamed blocks) by what they are: a virtual server
//! by its IPVS service (fwmark, or protocol + VIP + port), a real server by address and port. A
//! paired block that differs is "changed", with the list of lvs.cf keywords that changed; the
//! classification methods tell which action each change needs, so unchanged services (and their
//! connections) and unchanged real servers (and their health state) can be left alone.

use crate::model::*;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::Arc;

/// What changed between `old` and `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Global keywords whose value changed.
    pub global: Vec<&'static str>,
    pub virtual_servers: BlockDiff,
    pub failover_services: BlockDiff,
}

/// Changes to one list of blocks (`virtual` or `failover`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlockDiff {
    /// Indices into the new config.
    pub added: Vec<usize>,
    /// Indices into the old config.
    pub removed: Vec<usize>,
    pub changed: Vec<VirtualServerChange>,
    /// Pairs (old index, new index) that are identical.
    pub unchanged: Vec<(usize, usize)>,
}

/// One virtual server present in both configs that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualServerChange {
    pub old: usize,
    pub new: usize,
    /// Keywords of the block itself that changed (not its real servers).
    pub fields: Vec<&'static str>,
    /// Real servers: indices into the new block.
    pub servers_added: Vec<usize>,
    /// Real servers: indices into the old block.
    pub servers_removed: Vec<usize>,
    pub servers_changed: Vec<RealServerChange>,
    pub servers_unchanged: Vec<(usize, usize)>,
}

/// One real server present in both blocks that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealServerChange {
    pub old: usize,
    pub new: usize,
    /// `name`, `address`, `active`, `weight`, `port`.
    pub fields: Vec<&'static str>,
}

/// Keywords that identify the IPVS service: a change means delete + add.
pub const SERVICE_IDENTITY: &[&str] = &["address", "fwmark", "protocol", "port"];
/// Keywords applied to a live service in place (ipvsadm -E).
pub const SERVICE_SETTINGS: &[&str] = &["scheduler", "persistent", "pmask"];
/// Keywords that are nanny parameters: a change restarts the block's nannies.
pub const CHECK_PARAMETERS: &[&str] = &[
    "send",
    "expect",
    "use_regex",
    "send_program",
    "load_monitor",
    "timeout",
    "reentry",
    "quiesce_server",
    "client_monitor",
    "port",
    "protocol",
    "fwmark",
    "address",
];
/// Keywords pulse acts on (floating addresses).
pub const FLOATING_ADDRESS: &[&str] = &["address", "vip_nmask", "active"];
/// Global keywords that change the heartbeat.
pub const HEARTBEAT: &[&str] = &[
    "primary",
    "primary_private",
    "backup",
    "backup_active",
    "backup_private",
    "heartbeat_port",
    "keepalive",
    "deadtime",
];
/// Global keywords for the IPVS timeouts (ipvsadm --set).
pub const IPVS_TIMEOUTS: &[&str] = &["tcp_timeout", "tcpfin_timeout", "udp_timeout"];

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
            && self.virtual_servers.is_empty()
            && self.failover_services.is_empty()
    }

    pub fn global_changed(&self, keywords: &[&str]) -> bool {
        self.global.iter().any(|k| keywords.contains(k))
    }

    /// The IPVS timeouts must be set again.
    pub fn timeouts_changed(&self) -> bool {
        self.global_changed(IPVS_TIMEOUTS)
    }

    /// The heartbeat (addresses, port, timing) changed.
    pub fn heartbeat_changed(&self) -> bool {
        self.global_changed(HEARTBEAT)
    }

    /// The forwarding method of every real server changed.
    pub fn network_changed(&self) -> bool {
        self.global_changed(&["network"])
    }
}

impl BlockDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl VirtualServerChange {
    pub fn changed(&self, keywords: &[&str]) -> bool {
        self.fields.iter().any(|k| keywords.contains(k))
    }

    /// The IPVS service must be deleted and added again (its identity changed).
    pub fn service_replaced(&self) -> bool {
        self.changed(SERVICE_IDENTITY)
    }

    /// The IPVS service can be edited in place (scheduler, persistence, netmask).
    pub fn service_edited(&self) -> bool {
        !self.service_replaced() && self.changed(SERVICE_SETTINGS)
    }

    /// The health checks of every real server of the block must restart.
    pub fn checks_changed(&self) -> bool {
        self.changed(CHECK_PARAMETERS)
    }

    /// `active` went from 1 to 0 or back.
    pub fn activity_changed(&self) -> bool {
        self.changed(&["active"])
    }
}

impl RealServerChange {
    pub fn changed(&self, keywords: &[&str]) -> bool {
        self.fields.iter().any(|k| keywords.contains(k))
    }

    /// The destination's identity (address or port) changed: remove the old, add the new.
    pub fn destination_replaced(&self) -> bool {
        self.changed(&["address", "port"])
    }
}

/// Computes the changes from `old` to `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    ConfigDiff {
        global: global_changes(old, new),
        virtual_servers: diff_blocks(&old.virtual_servers, &new.virtual_servers),
        failover_services: diff_blocks(&old.failover_services, &new.failover_services),
    }
}

/// The names of the fields that differ between `$a` and `$b`. The destructuring pattern makes the
/// compiler refuse a new model field that is neither compared nor explicitly ignored.
macro_rules! changed_fields {
    ($a:expr, $b:expr, $T:ident { $($f:ident),* $(,)? } ignoring { $($i:ident),* $(,)? }) => {{
        let $T { $($f: _,)* $($i: _,)* } = $a;
        let mut out: Vec<&'static str> = Vec::new();
        $( if $a.$f != $b.$f { out.push(stringify!($f)); } )*
        out
    }};
}

fn global_changes(a: &Config, b: &Config) -> Vec<&'static str> {
    changed_fields!(a, b, Config {
        serial_no, service, primary, primary_private, primary_shared, backup, backup_active,
        backup_private, backup_shared, heartbeat, heartbeat_port, keepalive, deadtime,
        heartbeat_key_file, network,
        nat_router, nat_nmask, reservation_conflict_action, debug_level, rsh_command, sync,
        ipvsadm, active_cmd, inactive_cmd, monitor_links, syncdaemon, syncd_iface, syncd_id,
        tcp_timeout, tcpfin_timeout, udp_timeout, hard_shutdown,
    } ignoring { virtual_servers, failover_services })
}

/// Pairs items of `old` and `new`: first the items `same` says are one (a block a reload copied
/// from the old config), found by walking both lists in order, then by equal names, then by
/// equal keys, each at most once (duplicates pair in order). Returns the pairs (sorted by new
/// index) and the unpaired indices of each side. Linear in the number of items; only the items
/// not paired by `same` are hashed.
fn pair<T, K: Hash + Eq>(
    old: &[T],
    new: &[T],
    same: impl Fn(&T, &T) -> bool,
    name: impl Fn(&T) -> &str,
    key: impl Fn(&T) -> Option<K>,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut old_used = vec![false; old.len()];
    let mut new_used = vec![false; new.len()];
    let mut pairs = Vec::new();
    // One walk along both sides, stepping over one item added or removed at a time.
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        if same(&old[i], &new[j]) {
            old_used[i] = true;
            new_used[j] = true;
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if i + 1 < old.len() && same(&old[i + 1], &new[j]) {
            i += 1;
        } else if j + 1 < new.len() && same(&old[i], &new[j + 1]) {
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    let mut by_name: FxHashMap<&str, VecDeque<usize>> = FxHashMap::default();
    for (oi, o) in old.iter().enumerate() {
        if !old_used[oi] {
            by_name.entry(name(o)).or_default().push_back(oi);
        }
    }
    for (ni, n) in new.iter().enumerate() {
        if new_used[ni] {
            continue;
        }
        if let Some(oi) = by_name.get_mut(name(n)).and_then(|q| q.pop_front()) {
            old_used[oi] = true;
            new_used[ni] = true;
            pairs.push((oi, ni));
        }
    }
    let mut by_key: FxHashMap<K, VecDeque<usize>> = FxHashMap::default();
    for (oi, o) in old.iter().enumerate() {
        if !old_used[oi] {
            if let Some(k) = key(o) {
                by_key.entry(k).or_default().push_back(oi);
            }
        }
    }
    for (ni, n) in new.iter().enumerate() {
        if new_used[ni] {
            continue;
        }
        let Some(k) = key(n) else { continue };
        if let Some(oi) = by_key.get_mut(&k).and_then(|q| q.pop_front()) {
            old_used[oi] = true;
            new_used[ni] = true;
            pairs.push((oi, ni));
        }
    }
    pairs.sort_by_key(|p| p.1);
    let removed = (0..old.len()).filter(|&i| !old_used[i]).collect();
    let added = (0..new.len()).filter(|&i| !new_used[i]).collect();
    (pairs, removed, added)
}

fn diff_blocks(old: &[Arc<VirtualServer>], new: &[Arc<VirtualServer>]) -> BlockDiff {
    let (pairs, removed, added) = pair(old, new, Arc::ptr_eq, |v| v.name.as_str(), |v| v.key());
    let mut out = BlockDiff {
        added,
        removed,
        ..Default::default()
    };
    for (oi, ni) in pairs {
        let (a, b) = (&old[oi], &new[ni]);
        // A block copied from the old config by a reload is the same allocation.
        if Arc::ptr_eq(a, b) || a == b {
            out.unchanged.push((oi, ni));
            continue;
        }
        let (spairs, servers_removed, servers_added) = pair(
            &a.servers,
            &b.servers,
            |_, _| false,
            |s| s.name.as_str(),
            |s| s.address.as_ref().map(|h| (h.address, s.port)),
        );
        let mut change = VirtualServerChange {
            old: oi,
            new: ni,
            fields: virtual_fields(a, b),
            servers_added,
            servers_removed,
            servers_changed: Vec::new(),
            servers_unchanged: Vec::new(),
        };
        for (so, sn) in spairs {
            let fields = server_fields(&a.servers[so], &b.servers[sn]);
            if fields.is_empty() {
                change.servers_unchanged.push((so, sn));
            } else {
                change.servers_changed.push(RealServerChange {
                    old: so,
                    new: sn,
                    fields,
                });
            }
        }
        out.changed.push(change);
    }
    out
}

fn virtual_fields(a: &VirtualServer, b: &VirtualServer) -> Vec<&'static str> {
    changed_fields!(a, b, VirtualServer {
        name, active, address, vip_nmask, fwmark, port, protocol, scheduler, persistent, pmask,
        send, expect, use_regex, send_program, load_monitor, timeout, reentry, quiesce_server,
        sorry_server, client_monitor, start_cmd, stop_cmd, master, dirs,
    } ignoring { servers })
}

fn server_fields(a: &RealServer, b: &RealServer) -> Vec<&'static str> {
    changed_fields!(a, b, RealServer { name, address, active, weight, port } ignoring {})
}
