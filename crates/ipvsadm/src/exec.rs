//! Runs a parsed command against an IPVS [`Backend`], printing what ipvsadm prints and
//! returning what its process would do next.

use std::io::{Read, Write};
use std::path::Path;

use ipvs::{Backend, Change, Error, Operation, ServiceEntry};

use crate::args::{self, Command, List, ListFlags, ListWhat, Lookup, Stop};
use crate::{format, help, restore};

/// Where ipvsadm reads the connection table for `-c`.
pub const CONN_PROC_FILE: &str = "/proc/net/ip_vs_conn";

/// What happens after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The command returned (`process_options`' result: 0, or -1 after a kernel or popt
    /// error); a restore goes on with the next line.
    Done(i32),
    /// ipvsadm called `exit(code)`.
    Exit(i32),
}

impl Flow {
    /// The process exit status.
    pub fn code(self) -> i32 {
        match self {
            Flow::Done(r) => r & 0xff,
            Flow::Exit(c) => c,
        }
    }
}

/// Output streams and the few outside things a command touches.
pub struct Ctx<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// `/proc/net/ip_vs_conn` (a parameter for tests).
    pub conn_path: &'a Path,
}

impl Ctx<'_> {
    pub fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }

    /// stderr is unbuffered, as in C; `out` carries stdio's buffering (line-buffered on a
    /// terminal, block-buffered otherwise), chosen by the caller.
    pub fn eprint(&mut self, s: &str) {
        let _ = self.err.write_all(s.as_bytes());
    }
}

/// The operation a change is, for errors made up locally.
pub fn operation_of(change: &Change) -> Operation {
    match change {
        Change::AddService(_) => Operation::AddService,
        Change::EditService(_) => Operation::EditService,
        Change::DeleteService(_) => Operation::DeleteService,
        Change::AddDestination(..) => Operation::AddDestination,
        Change::EditDestination(..) => Operation::EditDestination,
        Change::DeleteDestination(..) => Operation::DeleteDestination,
        Change::Flush => Operation::Flush,
        Change::Zero(Some(_)) => Operation::ZeroService,
        Change::Zero(None) => Operation::Zero,
        Change::SetTimeouts(_) => Operation::SetTimeouts,
        Change::StartDaemon(_) => Operation::StartDaemon,
        Change::StopDaemon(_) => Operation::StopDaemon,
    }
}

fn list_options(f: &ListFlags) -> format::ListOptions {
    format::ListOptions {
        numeric: f.numeric,
        stats: f.stats,
        rate: f.rate,
        thresholds: f.thresholds,
        persistent_conn: f.persistent_conn,
        tun_info: f.tun_info,
        exact: f.exact,
        nosort: f.nosort,
    }
}

/// A failed read of the table: ipvsadm prints the error and exits 1.
fn list_failure(ctx: &mut Ctx, e: &Error) -> Flow {
    ctx.eprint(&format!("{}\n", e.message()));
    Flow::Exit(1)
}

/// `-c`: `list_conn`.
pub fn connections(flags: &ListFlags, ctx: &mut Ctx) -> Flow {
    let path = ctx.conn_path;
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => {
            let msg = format!("cannot open file {}\n", path.display());
            ctx.eprint(&msg);
            return Flow::Exit(1);
        }
    };
    if text.is_empty() {
        let msg = format!("unexpected input from {}\n", path.display());
        ctx.eprint(&msg);
        return Flow::Exit(1);
    }
    let out = format::connections(&text, flags.numeric, flags.persistent_conn);
    ctx.print(&out);
    Flow::Done(0)
}

/// `-c` on a backend that keeps its own connection table (the userspace daemon): its entries,
/// rendered as `/proc/net/ip_vs_conn` and listed exactly as from the file. `None` when the
/// backend is the kernel's: then ipvsadm reads the file ([`connections`]).
fn backend_connections(
    flags: &ListFlags,
    backend: &mut dyn Backend,
    ctx: &mut Ctx,
) -> Option<Flow> {
    match backend.connections()? {
        Ok(conns) => {
            let text = ipvs::proc_conn_text(&conns);
            ctx.print(&format::connections(
                &text,
                flags.numeric,
                flags.persistent_conn,
            ));
            Some(Flow::Done(0))
        }
        Err(e) => Some(list_failure(ctx, &e)),
    }
}

fn list(l: &List, backend: &mut dyn Backend, ctx: &mut Ctx) -> Flow {
    let opts = list_options(&l.flags);
    match &l.what {
        ListWhat::Connections => match backend_connections(&l.flags, backend, ctx) {
            Some(flow) => flow,
            None => connections(&l.flags, ctx),
        },
        ListWhat::All => {
            let info = match backend.info() {
                Ok(i) => i,
                Err(e) => return list_failure(ctx, &e),
            };
            // Destination statistics are printed only with --stats and --rate.
            let table = if opts.stats || opts.rate {
                backend.table()
            } else {
                backend.table_brief()
            };
            let table = match table {
                Ok(t) => t,
                Err(e) => return list_failure(ctx, &e),
            };
            ctx.print(&format::list_all(&info, &table, &opts));
            Flow::Done(0)
        }
        ListWhat::Service(id) => {
            let service = match backend.service(id) {
                Ok(s) => s,
                Err(e) => return list_failure(ctx, &e),
            };
            let destinations = match backend.destinations(&service.id) {
                Ok(d) => d,
                Err(e) => return list_failure(ctx, &e),
            };
            let entry = ServiceEntry {
                service,
                destinations,
            };
            ctx.print(&format::list_service(&entry, &opts));
            Flow::Done(0)
        }
        // ipvsadm exits 1 without a message when these reads fail.
        ListWhat::Timeouts => match backend.timeouts() {
            Ok(t) => {
                ctx.print(&format::timeouts(&t));
                Flow::Done(0)
            }
            Err(_) => Flow::Exit(1),
        },
        ListWhat::Daemons => match backend.daemons() {
            Ok(d) => {
                ctx.print(&format::daemons(&d));
                Flow::Done(0)
            }
            Err(_) => Flow::Exit(1),
        },
    }
}

/// Prints the result of one applied change as ipvsadm does; returns the command's result.
pub fn report(result: &ipvs::Result<()>, ctx: &mut Ctx) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            ctx.eprint(&format!("{}\n", e.message()));
            -1
        }
    }
}

/// Runs any command but `-R` (see [`restore::run`]).
pub fn execute(cmd: &Command, backend: &mut dyn Backend, ctx: &mut Ctx) -> Flow {
    match cmd {
        Command::List(l) => list(l, backend, ctx),
        Command::Save { numeric } => match backend.table_brief() {
            Ok(t) => {
                ctx.print(&format::save(&t, *numeric));
                Flow::Done(0)
            }
            Err(e) => list_failure(ctx, &e),
        },
        Command::Apply(change) => {
            let r = backend.apply(change);
            Flow::Done(report(&r, ctx))
        }
        // A restore inside a restore (callers handle the top-level one).
        Command::Restore => Flow::Exit(255),
    }
}

/// The outside world of one ipvsadm run.
pub struct Env<'a> {
    pub lookup: &'a dyn Lookup,
    pub open: &'a mut dyn FnMut() -> ipvs::Result<Box<dyn Backend>>,
    pub stdin: &'a mut dyn Read,
    pub ctx: Ctx<'a>,
}

/// Prints the outcome of a parse that produced no command; the process exit status.
pub fn stop(prog: &str, s: Stop, ctx: &mut Ctx) -> Flow {
    match s {
        Stop::Usage => {
            ctx.print(&help::usage(prog));
            Flow::Exit(0)
        }
        Stop::Version => {
            ctx.print(&help::version());
            Flow::Exit(0)
        }
        Stop::Exit { message, code } => {
            ctx.eprint(&message);
            Flow::Exit(code)
        }
        Stop::Fail { message } => {
            ctx.eprint(&message);
            Flow::Done(-1)
        }
    }
}

/// The whole program: parse `argv`, open IPVS when the command needs it, run; the exit status.
///
/// Unlike ipvsadm, which opens IPVS before looking at its arguments, `-h`, `-v`, parse errors
/// and `-c` work without IPVS. With IPVS present the output is the same.
pub fn run(argv: &[String], env: &mut Env) -> i32 {
    let prog = argv.first().map_or("ipvsadm", String::as_str);
    let cmd = match args::parse(argv, env.lookup) {
        Ok(cmd) => cmd,
        Err(Stop::Version) => {
            let flow = stop(prog, Stop::Version, &mut env.ctx);
            // The version line stays ipvsadm's; a backend other than the kernel's IPVS adds a
            // line naming itself.
            if let Ok(mut backend) = (env.open)() {
                if let Some(d) = backend.description() {
                    env.ctx.print(&format!("{d}\n"));
                }
            }
            return flow.code();
        }
        Err(s) => return stop(prog, s, &mut env.ctx).code(),
    };
    if let Command::List(List {
        what: ListWhat::Connections,
        flags,
    }) = &cmd
    {
        // The userspace daemon lists its own connections; with the kernel's IPVS, or none,
        // ipvsadm reads /proc/net/ip_vs_conn as always.
        if let Ok(mut backend) = (env.open)() {
            if let Some(flow) = backend_connections(flags, backend.as_mut(), &mut env.ctx) {
                let _ = env.ctx.out.flush();
                return flow.code();
            }
        }
        return connections(flags, &mut env.ctx).code();
    }
    let mut backend = match (env.open)() {
        Ok(b) => b,
        Err(e) => {
            env.ctx.eprint(&format!(
                "Can't initialize ipvs: {}\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
                e.message()
            ));
            return 2;
        }
    };
    let flow = match cmd {
        Command::Restore => {
            restore::run(prog, env.stdin, backend.as_mut(), env.lookup, &mut env.ctx)
        }
        other => execute(&other, backend.as_mut(), &mut env.ctx),
    };
    let _ = env.ctx.out.flush();
    flow.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ok, run_with, tcp, Session};
    use ipvs::DaemonState;

    fn err_of(s: &mut Session, line: &str) -> (String, i32) {
        let o = s.run(line);
        assert_eq!(o.stdout, "", "{line}");
        (o.stderr, o.code)
    }

    #[test]
    fn kernel_errors_exit_255() {
        let mut s = Session::default();
        ok(&s.run("-A -t 10.0.0.1:80"));
        let e = |m: &str| (format!("{m}\n"), 255);
        assert_eq!(
            err_of(&mut s, "-A -t 10.0.0.1:80 -s rr"),
            e("Service already exists")
        );
        assert_eq!(err_of(&mut s, "-E -t 10.0.0.2:80"), e("No such service"));
        assert_eq!(err_of(&mut s, "-D -t 10.0.0.2:80"), e("No such service"));
        assert_eq!(err_of(&mut s, "-Z -t 10.0.0.2:80"), e("No such service"));
        assert_eq!(
            err_of(&mut s, "-a -t 10.0.0.2:80 -r 10.0.0.5"),
            e("Service not defined")
        );
        assert_eq!(
            err_of(&mut s, "-e -t 10.0.0.2:80 -r 10.0.0.5"),
            e("Service not defined")
        );
        assert_eq!(
            err_of(&mut s, "-d -t 10.0.0.2:80 -r 10.0.0.5"),
            e("Service not defined")
        );
        ok(&s.run("-a -t 10.0.0.1:80 -r 10.0.0.5"));
        assert_eq!(
            err_of(&mut s, "-a -t 10.0.0.1:80 -r 10.0.0.5 -w 3"),
            e("Destination already exists")
        );
        assert_eq!(
            err_of(&mut s, "-e -t 10.0.0.1:80 -r 10.0.0.6"),
            e("No such destination")
        );
        assert_eq!(
            err_of(&mut s, "-d -t 10.0.0.1:80 -r 10.0.0.6"),
            e("No such destination")
        );
        assert_eq!(
            err_of(&mut s, "-A -t 10.0.0.3:80 -s RR"),
            e("Scheduler or persistence engine not found")
        );
        assert_eq!(
            err_of(&mut s, "-E -t 10.0.0.1:80 -s bogus"),
            e("Scheduler or persistence engine not found")
        );
        assert_eq!(
            err_of(&mut s, "-A -t 10.0.0.3:80 -p --pe bogus"),
            e("Scheduler or persistence engine not found")
        );
        assert_eq!(
            err_of(&mut s, "-a -t 10.0.0.1:80 -r 10.0.0.7 -x 10 -y 20"),
            e("Numerical result out of range")
        );
        assert_eq!(
            err_of(&mut s, "-e -t 10.0.0.1:80 -r 10.0.0.5 -y 1"),
            e("Numerical result out of range")
        );
        assert_eq!(
            err_of(&mut s, "--start-daemon master --mcast-interface nosuch0"),
            e("No such device")
        );
        ok(&s.run("--start-daemon master"));
        assert_eq!(
            err_of(&mut s, "--start-daemon master"),
            e("Daemon has already run")
        );
        assert_eq!(
            err_of(&mut s, "--stop-daemon backup"),
            e("No daemon is running")
        );
        ok(&s.run("--stop-daemon master"));
    }

    #[test]
    fn changes_reach_the_table() {
        let mut s = Session::default();
        ok(&s.run("-A -t 10.0.0.1:80 -s rr -p 600"));
        ok(&s.run("-a -t 10.0.0.1:80 -r 10.0.0.5:8080 -m -w 3"));
        ok(&s.run("-a -t 10.0.0.1:80 -r 10.0.0.6:8080 -g"));
        let d = s.dests(&tcp("10.0.0.1", 80));
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].port, d[0].forward), (80, ipvs::ForwardMethod::Route));
        assert_eq!((d[1].port, d[1].weight), (8080, 3));
        // -E sends the whole service: no -p clears persistence, no -s means wlc.
        ok(&s.run("-E -t 10.0.0.1:80"));
        let svc = &s.kernel.services[0].0;
        assert_eq!(
            (svc.scheduler.as_str(), svc.flags, svc.timeout),
            ("wlc", 0, 0)
        );
        // -e without -w resets the weight to 1.
        ok(&s.run("-e -t 10.0.0.1:80 -r 10.0.0.5:8080 -m"));
        assert_eq!(s.dests(&tcp("10.0.0.1", 80))[1].weight, 1);
        ok(&s.run("-d -t 10.0.0.1:80 -r 10.0.0.6"));
        assert_eq!(s.dests(&tcp("10.0.0.1", 80)).len(), 1);
        ok(&s.run("--set 10 0 30"));
        assert_eq!(
            (
                s.kernel.timeouts.tcp,
                s.kernel.timeouts.tcp_fin,
                s.kernel.timeouts.udp
            ),
            (10, 120, 30)
        );
        ok(&s.run("-Z"));
        ok(&s.run("-Z -t 10.0.0.1:80"));
        ok(&s.run("-D -t 10.0.0.1:80"));
        assert!(s.kernel.services.is_empty());
        ok(&s.run("-A -f 1"));
        ok(&s.run("-C"));
        assert!(s.kernel.services.is_empty());
        ok(&s.run("--start-daemon backup --mcast-interface dummy0 --syncid 7"));
        assert_eq!(s.kernel.daemons[0].state, DaemonState::Backup);
        assert_eq!(s.kernel.daemons[0].sync_id, 7);
    }

    #[test]
    fn listings() {
        let mut s = Session::default();
        let o = s.run("-L --timeout");
        assert_eq!(
            (o.stdout.as_str(), o.code),
            ("Timeout (tcp tcpfin udp): 900 120 300\n", 0)
        );
        let o = s.run("-L --daemon");
        assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
        ok(&s.run("--start-daemon master --mcast-interface dummy0"));
        let o = s.run("-L --daemon");
        assert!(
            o.stdout
                .starts_with("master sync daemon (mcast=dummy0, syncid=0"),
            "{o:?}"
        );
        let o = s.run("-Ln");
        assert!(
            o.stdout
                .starts_with("IP Virtual Server version 1.2.1 (size=4096)\n"),
            "{o:?}"
        );
        let no_args = s.run("");
        assert_eq!(no_args.code, 0);
        assert!(no_args
            .stdout
            .starts_with("IP Virtual Server version 1.2.1 (size=4096)\n"));
        ok(&s.run("-A -t 10.0.0.1:80"));
        ok(&s.run("-a -t 10.0.0.1:80 -r 10.0.0.5 -m"));
        let o = s.run("-Ln");
        assert!(o.stdout.contains("TCP  10.0.0.1:80 wlc\n"), "{o:?}");
        let o = s.run("-Ln -t 10.0.0.1:80");
        assert_eq!(o.code, 0);
        assert!(!o.stdout.contains("IP Virtual Server version"), "{o:?}");
        assert!(o.stdout.contains("TCP  10.0.0.1:80 wlc\n"), "{o:?}");
        let o = s.run("-L -t 10.0.0.2:80");
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str(), o.code),
            ("", "No such service\n", 1)
        );
        let o = s.run("-S -n");
        assert_eq!(o.code, 0);
        assert!(o.stdout.contains("-A -t 10.0.0.1:80 -s wlc\n"), "{o:?}");
        assert!(
            o.stdout
                .contains("-a -t 10.0.0.1:80 -r 10.0.0.5:80 -m -w 1\n"),
            "{o:?}"
        );
    }

    #[test]
    fn failed_reads_exit_1() {
        let mut s = Session::default();
        s.kernel.fail_reads = Some(ipvs::error::EPERM);
        let o = s.run("-L");
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str(), o.code),
            ("", "Permission denied (you must be root)\n", 1)
        );
        let o = s.run("-S");
        assert_eq!(
            (o.stderr.as_str(), o.code),
            ("Permission denied (you must be root)\n", 1)
        );
        // ipvsadm says nothing when it cannot read timeouts or daemons.
        for line in ["-L --timeout", "-L --daemon"] {
            let o = s.run(line);
            assert_eq!(
                (o.stdout.as_str(), o.stderr.as_str(), o.code),
                ("", "", 1),
                "{line}"
            );
        }
    }

    #[test]
    fn connections_file() {
        let mut s = Session::default();
        let o = s.run("-Lnc");
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str(), o.code),
            ("", "cannot open file /nonexistent/ip_vs_conn\n", 1)
        );
        let dir = std::env::temp_dir().join(format!("ipvsadm-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "").unwrap();
        s.conn_path = empty.clone();
        let o = s.run("-Lnc");
        assert_eq!(
            (o.stderr.clone(), o.code),
            (format!("unexpected input from {}\n", empty.display()), 1)
        );
        let full = dir.join("full");
        std::fs::write(
            &full,
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
             TCP 0A000002 D431 CFAF2C6E 1F90 AC100002 1F90 ESTABLISHED     899\n",
        )
        .unwrap();
        s.conn_path = full;
        let o = s.run("-Lnc");
        assert_eq!(o.code, 0);
        assert!(
            o.stdout
                .starts_with("IPVS connection entries\npro expire state"),
            "{o:?}"
        );
        assert!(
            o.stdout.contains("TCP 14:59  ESTABLISHED 10.0.0.2:54321"),
            "{o:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_ipvs() {
        let nowhere = Path::new("/nonexistent/ip_vs_conn");
        let init = "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n";
        for args in [
            &[][..],
            &["-L"],
            &["-A", "-t", "10.0.0.1:80"],
            &["-R"],
            &["-S"],
        ] {
            let o = run_with(None, args, "", nowhere);
            assert_eq!(
                (o.stdout.as_str(), o.stderr.as_str(), o.code),
                ("", init, 2),
                "{args:?}"
            );
        }
        // Deliberate differences: these work without IPVS.
        let o = run_with(None, &["-h"], "", nowhere);
        assert_eq!(o.code, 0);
        assert!(o.stdout.starts_with("ipvsadm v1.31 2019/12/24"));
        let o = run_with(None, &["-v"], "", nowhere);
        assert_eq!(
            (o.stdout.as_str(), o.code),
            (
                "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
                0
            )
        );
        let o = run_with(None, &["-A", "-t", "10.0.0.1"], "", nowhere);
        assert_eq!(
            (o.stderr.as_str(), o.code),
            ("Zero port specified for non-persistent service\n", 2)
        );
        let o = run_with(None, &["-Lc"], "", nowhere);
        assert_eq!(o.code, 1);
    }

    #[test]
    fn exit_statuses_of_parse_outcomes() {
        let mut s = Session::default();
        let o = s.run("-A -t");
        assert_eq!((o.stderr.as_str(), o.code), ("-t: missing argument\n", 255));
        let o = s.run("-Q");
        assert_eq!(
            (o.stderr.as_str(), o.code),
            (
                "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
                255
            )
        );
        let o = s.run("-A -6 -f 1");
        assert_eq!((o.stderr.as_str(), o.code), ("-6 used before -f\n\n", 2));
        let o = s.run("-A -L");
        assert_eq!((o.stderr.as_str(), o.code), ("invalid option `-L'\n", 2));
        assert!(s.kernel.applied.is_empty());
    }

    #[test]
    fn flow_codes() {
        assert_eq!(Flow::Done(0).code(), 0);
        assert_eq!(Flow::Done(-1).code(), 255);
        assert_eq!(Flow::Exit(2).code(), 2);
        assert_eq!(Flow::Exit(1).code(), 1);
    }
}
