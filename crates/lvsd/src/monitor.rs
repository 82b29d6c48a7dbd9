//! Which nannies lvsd runs and with which arguments (Piranha's `startClientMonitor`, spec §3.3).
//! Pure.
//!
//! ```text
//! <client_monitor> -c -h RIP -p VPORT -r RPORT [-f FWMARK] [-u]
//!       [-e SEND_PROGRAM] [-s SEND] [-x EXPECT] [-q] [--regex] [-v]
//!       -a REENTRY -I IPVSADM -t TIMEOUT -w WEIGHT -V VIP -M m|g|i
//!       [-U LOADCMD] [--nodaemon] --lvs
//! ```
//!
//! The report channel is not on the command line: lvsd hands nanny the write end of a pipe and
//! names it in the environment (`NANNY_REPORT_FD`), so the argument vector stays Piranha's.

use crate::plan::{monitored_servers, service_id, MonitorKey};
use ipvs::ServiceId;
use lvs_config::{Config, RealServer, VirtualServer};

/// How lvsd itself runs, as far as nanny's arguments care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArgvOptions {
    /// lvsd `-v`: pass `-v`.
    pub verbose: bool,
    /// lvsd runs as a daemon (no `-n`): `--nodaemon` only for virtual servers with a sorry server.
    pub daemon: bool,
}

/// One nanny lvsd runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSpec {
    pub key: MonitorKey,
    /// The service the real server belongs to.
    pub service: ServiceId,
    pub vs_name: String,
    pub rs_name: String,
    /// The virtual server's `timeout` (seconds between checks and the check timeout).
    pub timeout: u32,
    /// The full argument vector, `argv[0]` = `client_monitor`.
    pub argv: Vec<String>,
}

impl MonitorSpec {
    /// `VS/SERVER`, as Piranha names a monitor in its messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.vs_name, self.rs_name)
    }
}

/// Piranha's argument vector for the nanny of `rs` in `vs`; `None` if either block lacks an
/// address.
pub fn nanny_argv(
    config: &Config,
    vs: &VirtualServer,
    rs: &RealServer,
    opts: ArgvOptions,
) -> Option<Vec<String>> {
    let vip = vs.vip()?;
    let rip = rs.address.as_ref()?.address;
    let mut a: Vec<String> = vec![
        vs.client_monitor.clone(),
        "-c".into(),
        "-h".into(),
        rip.to_string(),
        "-p".into(),
        vs.port.to_string(),
        "-r".into(),
        rs.port.to_string(),
    ];
    if let Some(mark) = vs.fwmark {
        a.push("-f".into());
        a.push(mark.to_string());
    }
    if vs.protocol == lvs_config::Protocol::Udp {
        a.push("-u".into());
    }
    for (flag, value) in [
        ("-e", &vs.send_program),
        ("-s", &vs.send),
        ("-x", &vs.expect),
    ] {
        if let Some(v) = value {
            a.push(flag.into());
            a.push(v.clone());
        }
    }
    if vs.quiesce_server {
        a.push("-q".into());
    }
    if vs.use_regex {
        a.push("--regex".into());
    }
    if opts.verbose {
        a.push("-v".into());
    }
    for (flag, value) in [
        ("-a", vs.reentry.to_string()),
        ("-I", config.ipvsadm.clone()),
        ("-t", vs.timeout.to_string()),
        ("-w", rs.weight.to_string()),
        ("-V", vip.to_string()),
        ("-M", config.network.method_letter().to_string()),
    ] {
        a.push(flag.into());
        a.push(value);
    }
    if let Some(lm) = &vs.load_monitor {
        a.push("-U".into());
        a.push(if lm == "uptime" {
            config.rsh_command.clone()
        } else {
            lm.clone()
        });
    }
    if !opts.daemon || vs.sorry_server.is_some() {
        a.push("--nodaemon".into());
    }
    a.push("--lvs".into());
    Some(a)
}

/// Global keywords that appear in nanny's arguments.
pub const ARGV_GLOBALS: &[&str] = &["network", "ipvsadm", "rsh_command"];

/// The nannies of a config: one per active real server of each active virtual server, in config
/// order, each key once (the first block wins). Blocks for which `skip(index)` holds are left
/// out (a reload skips the blocks it knows are unchanged).
pub fn planned_monitors(
    config: &Config,
    opts: ArgvOptions,
    skip: &dyn Fn(usize) -> bool,
) -> Vec<MonitorSpec> {
    let mut out = Vec::new();
    let mut services = rustc_hash::FxHashSet::default();
    for (i, vs) in config.virtual_servers.iter().enumerate() {
        if !vs.active {
            continue;
        }
        let Some(key) = vs.key() else { continue };
        // A second active block for the same service (a validation error) is not run.
        if !services.insert(key) || skip(i) {
            continue;
        }
        for (rs, mkey) in monitored_servers(vs) {
            let Some(argv) = nanny_argv(config, vs, rs, opts) else {
                continue;
            };
            out.push(MonitorSpec {
                key: mkey,
                service: service_id(key),
                vs_name: vs.name.clone(),
                rs_name: rs.name.clone(),
                timeout: vs.timeout,
                argv,
            });
        }
    }
    out
}

/// Every nanny of a config, with its arguments.
pub fn monitor_specs(config: &Config, opts: ArgvOptions) -> Vec<MonitorSpec> {
    planned_monitors(config, opts, &|_| false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_config::{parse, StaticResolver};

    fn cfg(text: &str) -> Config {
        parse(text.as_bytes(), &StaticResolver::standard())
            .unwrap()
            .config
    }

    const FULL: &str = "network = direct
rsh_command = ssh
ipvsadm = /usr/sbin/ipvsadm
virtual www {
     active = 1
     address = 192.0.2.100 eth0:1
     port = 80
     protocol = udp
     fwmark = 5
     send_program = \"/bin/check %h %p\"
     send = \"GET / HTTP/1.0\\r\\n\\r\\n\"
     expect = \"HTTP/1.[01] 200\"
     use_regex = 1
     quiesce_server = 1
     load_monitor = uptime
     timeout = 6
     reentry = 15
     sorry_server = 198.51.100.99
     client_monitor = /opt/bin/nanny
     server a {
         address = 198.51.100.1
         active = 1
         port = 8080
         weight = 100
     }
}
";

    const MINIMAL: &str = "virtual v {
     active = 1
     address = 192.0.2.1 eth0:1
     server s {
         address = 198.51.100.7
         active = 1
     }
}
";

    fn argv(text: &str, opts: ArgvOptions) -> String {
        let c = cfg(text);
        nanny_argv(
            &c,
            &c.virtual_servers[0],
            &c.virtual_servers[0].servers[0],
            opts,
        )
        .unwrap()
        .join("|")
    }

    #[test]
    fn every_optional_argument_in_piranhas_order() {
        assert_eq!(
            argv(
                FULL,
                ArgvOptions {
                    verbose: true,
                    daemon: true
                }
            ),
            "/opt/bin/nanny|-c|-h|198.51.100.1|-p|80|-r|8080|-f|5|-u\
             |-e|/bin/check %h %p|-s|GET / HTTP/1.0\\r\\n\\r\\n|-x|HTTP/1.[01] 200|-q|--regex|-v\
             |-a|15|-I|/usr/sbin/ipvsadm|-t|6|-w|100|-V|192.0.2.100|-M|g|-U|ssh|--nodaemon|--lvs"
        );
    }

    #[test]
    fn minimal_block_gets_the_defaults() {
        let daemon = ArgvOptions {
            verbose: false,
            daemon: true,
        };
        assert_eq!(
            argv(MINIMAL, daemon),
            "/usr/sbin/nanny|-c|-h|198.51.100.7|-p|80|-r|80|-a|180|-I|/sbin/ipvsadm|-t|10|-w|1\
             |-V|192.0.2.1|-M|m|--lvs"
        );
        // In the foreground (-n) nanny is told --nodaemon too.
        assert!(argv(MINIMAL, ArgvOptions::default()).ends_with("|-M|m|--nodaemon|--lvs"));
        // Tunnel; a load monitor other than uptime is passed as is.
        let t = MINIMAL.replace(
            "virtual v {",
            "network = tunnel\nvirtual v {\n     load_monitor = rup",
        );
        assert!(
            argv(&t, daemon).ends_with("|-M|i|-U|rup|--lvs"),
            "{}",
            argv(&t, daemon)
        );
    }

    #[test]
    fn skipped_blocks_are_left_out() {
        let text = format!(
            "{MINIMAL}{}",
            MINIMAL
                .replace("virtual v", "virtual w")
                .replace("192.0.2.1 ", "192.0.2.2 ")
        );
        let c = cfg(&text);
        let p = planned_monitors(&c, ArgvOptions::default(), &|i| i == 0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].label(), "w/s");
        assert_eq!(monitor_specs(&c, ArgvOptions::default()).len(), 2);
    }

    #[test]
    fn specs_cover_active_servers_of_active_blocks_once() {
        let text = format!(
            "{MINIMAL}virtual off {{\n     active = 0\n     address = 192.0.2.2 eth0:2\n     server s {{\n         address = 198.51.100.8\n         active = 1\n     }}\n}}\nvirtual dup {{\n     active = 1\n     address = 192.0.2.1 eth0:1\n     server t {{\n         address = 198.51.100.9\n         active = 1\n     }}\n}}\n"
        );
        let specs = monitor_specs(&cfg(&text), ArgvOptions::default());
        assert_eq!(specs.len(), 1);
        let s = &specs[0];
        assert_eq!(s.label(), "v/s");
        assert_eq!(s.timeout, 10);
        assert_eq!(s.key.to_string(), "tcp 192.0.2.1:80 -> 198.51.100.7:80");
        assert_eq!(s.argv[0], "/usr/sbin/nanny");
        let two = MINIMAL.replace(
            "     server s {",
            "     server r {\n         address = 198.51.100.6\n         active = 1\n     }\n     server s {",
        );
        let specs = monitor_specs(&cfg(&two), ArgvOptions::default());
        let names: Vec<String> = specs.iter().map(MonitorSpec::label).collect();
        assert_eq!(names, ["v/r", "v/s"]);
    }
}
