//! ipvsadm 1.31's command line: a hand-written emulation of the popt parser it uses
//! (`poptGetNextOpt` with its option table), followed by ipvsadm's own `parse_options` /
//! `process_options` checks, in the same order, with the same messages and exit statuses.
//!
//! Parsing is pure apart from name lookups (host names, `/etc/services`), which go through
//! [`Lookup`] so tests can answer them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use ipvs::{
    flags, tun_flags, Change, Daemon, DaemonState, Destination, Family, ForwardMethod, Protocol,
    Service, ServiceId, Timeouts, TunnelType,
};

/// Name lookups the parser needs.
pub trait Lookup {
    /// `gethostbyname()` restricted to IPv4: the first address of a host name.
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr>;
    /// `getservbyname(name, proto)`: the port of a service name for a protocol.
    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16>;
}

/// The system's resolver (getaddrinfo, IPv4 answers only) and services database.
pub struct SystemLookup;

static SERVICES_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lookup for SystemLookup {
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr> {
        if name.is_empty() {
            return None;
        }
        (name, 0u16)
            .to_socket_addrs()
            .ok()?
            .find_map(|a| match a.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
    }

    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let cname = std::ffi::CString::new(name).ok()?;
        let proto: &std::ffi::CStr = match protocol {
            Protocol::Tcp => c"tcp",
            Protocol::Udp => c"udp",
            Protocol::Sctp => c"sctp",
        };
        let _guard = SERVICES_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: both arguments are NUL-terminated strings that outlive the call; the result
        // points into libc's static storage and is read before the lock is released.
        let ent = unsafe { libc::getservbyname(cname.as_ptr(), proto.as_ptr()) };
        if ent.is_null() {
            return None;
        }
        // SAFETY: non-null servent returned just above.
        let port = unsafe { (*ent).s_port };
        Some(u16::from_be(port as u16))
    }
}

/// What to list (`-L` and its variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListWhat {
    All,
    Service(ServiceId),
    Connections,
    Timeouts,
    Daemons,
}

/// Display flags of `-L` (ipvsadm's `FMT_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFlags {
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    pub what: ListWhat,
    pub flags: ListFlags,
}

/// A parsed, validated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    List(List),
    Save {
        numeric: bool,
    },
    Restore,
    /// Every command that changes the table: -A -E -D -C -Z -a -e -d --set --start/stop-daemon.
    Apply(Change),
}

/// Why parsing did not produce a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `-h`: the usage text on stdout, exit 0.
    Usage,
    /// `-v`: the version line on stdout, exit 0.
    Version,
    /// The message (newline included) on stderr, then the whole process exits with `code`
    /// (ipvsadm's `fail()` = 2, `tryhelp_exit()` = 255).
    Exit { message: String, code: i32 },
    /// A popt error after the command option: the message on stderr and the command fails
    /// (exit 255; `-R` goes on with the next line).
    Fail { message: String },
}

pub const MAX_TIMEOUT: i64 = 86400 * 31;
const PERSISTENT_TIMEOUT: u32 = 6 * 60;

pub fn tryhelp(prog: &str) -> Stop {
    Stop::Exit {
        message: format!("Try `{prog} -h' or '{prog} --help' for more information.\n"),
        code: 255,
    }
}

fn fail(msg: impl Into<String>) -> Stop {
    let mut message = msg.into();
    message.push('\n');
    Stop::Exit { message, code: 2 }
}

// ---------------------------------------------------------------------------------------------
// popt emulation

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    None,
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

struct OptDef {
    long: &'static str,
    short: Option<u8>,
    kind: ArgKind,
    tag: Tag,
}

const fn o(long: &'static str, short: Option<u8>, kind: ArgKind, tag: Tag) -> OptDef {
    OptDef {
        long,
        short,
        kind,
        tag,
    }
}

/// ipvsadm's popt table, in its order (the first match wins).
const OPTIONS: &[OptDef] = &[
    o("add-service", Some(b'A'), ArgKind::None, Tag::AddService),
    o("edit-service", Some(b'E'), ArgKind::None, Tag::EditService),
    o(
        "delete-service",
        Some(b'D'),
        ArgKind::None,
        Tag::DeleteService,
    ),
    o("clear", Some(b'C'), ArgKind::None, Tag::Clear),
    o("list", Some(b'L'), ArgKind::None, Tag::List),
    o("list", Some(b'l'), ArgKind::None, Tag::List),
    o("zero", Some(b'Z'), ArgKind::None, Tag::Zero),
    o("add-server", Some(b'a'), ArgKind::None, Tag::AddServer),
    o("edit-server", Some(b'e'), ArgKind::None, Tag::EditServer),
    o(
        "delete-server",
        Some(b'd'),
        ArgKind::None,
        Tag::DeleteServer,
    ),
    o("set", None, ArgKind::None, Tag::Set),
    o("help", Some(b'h'), ArgKind::None, Tag::Help),
    o("version", Some(b'v'), ArgKind::None, Tag::Version),
    o("restore", Some(b'R'), ArgKind::None, Tag::Restore),
    o("save", Some(b'S'), ArgKind::None, Tag::Save),
    o("start-daemon", None, ArgKind::Required, Tag::StartDaemon),
    o("stop-daemon", None, ArgKind::Required, Tag::StopDaemon),
    o("tcp-service", Some(b't'), ArgKind::Required, Tag::Tcp),
    o("udp-service", Some(b'u'), ArgKind::Required, Tag::Udp),
    o("sctp-service", None, ArgKind::Required, Tag::Sctp),
    o("fwmark-service", Some(b'f'), ArgKind::Required, Tag::Fwmark),
    o("scheduler", Some(b's'), ArgKind::Required, Tag::Scheduler),
    o("persistent", Some(b'p'), ArgKind::Optional, Tag::Persistent),
    o("netmask", Some(b'M'), ArgKind::Required, Tag::Netmask),
    o(
        "real-server",
        Some(b'r'),
        ArgKind::Required,
        Tag::RealServer,
    ),
    o("masquerading", Some(b'm'), ArgKind::None, Tag::Masq),
    o("ipip", Some(b'i'), ArgKind::None, Tag::Ipip),
    o("gatewaying", Some(b'g'), ArgKind::None, Tag::Gate),
    o("weight", Some(b'w'), ArgKind::Required, Tag::Weight),
    o(
        "u-threshold",
        Some(b'x'),
        ArgKind::Required,
        Tag::UThreshold,
    ),
    o(
        "l-threshold",
        Some(b'y'),
        ArgKind::Required,
        Tag::LThreshold,
    ),
    o("numeric", Some(b'n'), ArgKind::None, Tag::Numeric),
    o("connection", Some(b'c'), ArgKind::None, Tag::Connection),
    o(
        "mcast-interface",
        None,
        ArgKind::Required,
        Tag::McastInterface,
    ),
    o("syncid", None, ArgKind::Required, Tag::SyncId),
    o("timeout", None, ArgKind::None, Tag::Timeout),
    o("daemon", None, ArgKind::None, Tag::Daemon),
    o("stats", None, ArgKind::None, Tag::Stats),
    o("rate", None, ArgKind::None, Tag::Rate),
    o("thresholds", None, ArgKind::None, Tag::Thresholds),
    o("persistent-conn", None, ArgKind::None, Tag::PersistentConn),
    o("nosort", None, ArgKind::None, Tag::NoSort),
    o("sort", None, ArgKind::None, Tag::Sort),
    o("exact", Some(b'X'), ArgKind::None, Tag::Exact),
    o("ipv6", Some(b'6'), ArgKind::None, Tag::Ipv6),
    o("ops", Some(b'o'), ArgKind::None, Tag::Ops),
    o("pe", None, ArgKind::Required, Tag::Pe),
    o(
        "sched-flags",
        Some(b'b'),
        ArgKind::Required,
        Tag::SchedFlags,
    ),
    o("mcast-group", None, ArgKind::Required, Tag::McastGroup),
    o("mcast-port", None, ArgKind::Required, Tag::McastPort),
    o("mcast-ttl", None, ArgKind::Required, Tag::McastTtl),
    o("sync-maxlen", None, ArgKind::Required, Tag::SyncMaxlen),
    o("tun-info", None, ArgKind::None, Tag::TunInfo),
    o("tun-type", None, ArgKind::Required, Tag::TunType),
    o("tun-port", None, ArgKind::Required, Tag::TunPort),
    o("tun-nocsum", None, ArgKind::None, Tag::TunNocsum),
    o("tun-csum", None, ArgKind::None, Tag::TunCsum),
    o("tun-remcsum", None, ArgKind::None, Tag::TunRemcsum),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoptError {
    NoArg,
    BadOpt,
    UnwantedArg,
}

impl PoptError {
    fn text(self) -> &'static str {
        match self {
            PoptError::NoArg => "missing argument",
            PoptError::BadOpt => "unknown option",
            PoptError::UnwantedArg => "option does not take an argument",
        }
    }
}

/// `poptGetNextOpt` over argv (argv[0] skipped), no aliases, no POSIXLY_CORRECT.
struct Popt<'a> {
    argv: &'a [String],
    next: usize,
    /// Pending bundled short options: (argv index, byte offset). An offset at the end of the
    /// string is popt's "non-NULL but empty" state.
    chars: Option<(usize, usize)>,
    rest_leftover: bool,
    leftovers: Vec<&'a str>,
    next_leftover: usize,
}

impl<'a> Popt<'a> {
    fn new(argv: &'a [String]) -> Popt<'a> {
        Popt {
            argv,
            next: 1,
            chars: None,
            rest_leftover: false,
            leftovers: Vec::new(),
            next_leftover: 0,
        }
    }

    /// `poptBadOption(con, POPT_BADOPTION_NOALIAS)`: the last argv element consumed.
    fn bad_option(&self) -> &'a str {
        if self.next > 0 {
            self.argv[self.next - 1].as_str()
        } else {
            ""
        }
    }

    /// `poptGetArg`.
    fn get_arg(&mut self) -> Option<&'a str> {
        let a = self.leftovers.get(self.next_leftover).copied();
        if a.is_some() {
            self.next_leftover += 1;
        }
        a
    }

    fn next_opt(&mut self) -> Result<Option<(Tag, Option<&'a str>)>, PoptError> {
        let argv = self.argv;
        loop {
            let mut long_arg: Option<&'a str> = None;
            let opt: &OptDef;
            match self.chars.take() {
                None => {
                    if self.next >= argv.len() {
                        return Ok(None);
                    }
                    let idx = self.next;
                    let s = argv[idx].as_str();
                    self.next += 1;
                    if self.rest_leftover || !s.starts_with('-') || s == "-" {
                        self.leftovers.push(s);
                        continue;
                    }
                    if s == "--" {
                        self.rest_leftover = true;
                        continue;
                    }
                    if let Some(body) = s.strip_prefix("--") {
                        let (name, arg) = match body.find('=') {
                            Some(k) => (&body[..k], Some(&body[k + 1..])),
                            None => (body, None),
                        };
                        match OPTIONS.iter().find(|o| o.long == name) {
                            Some(o) => {
                                opt = o;
                                long_arg = arg;
                            }
                            None => return Err(PoptError::BadOpt),
                        }
                    } else {
                        // One dash: no option of ipvsadm is POPT_ARGFLAG_ONEDASH, so these are
                        // bundled short options.
                        self.chars = Some((idx, 1));
                        continue;
                    }
                }
                Some((idx, off)) => {
                    let b = argv[idx].as_bytes();
                    if off >= b.len() {
                        return Err(PoptError::BadOpt);
                    }
                    let c = b[off];
                    opt = OPTIONS
                        .iter()
                        .find(|o| o.short == Some(c))
                        .ok_or(PoptError::BadOpt)?;
                    let rest = off + 1;
                    if rest < b.len() {
                        self.chars = Some((idx, rest + usize::from(b[rest] == b'=')));
                    }
                }
            }

            if opt.kind == ArgKind::None {
                let eq_follows = self
                    .chars
                    .is_some_and(|(i, o)| argv[i].as_bytes().get(o) == Some(&b'='));
                if long_arg.is_some() || eq_follows {
                    return Err(PoptError::UnwantedArg);
                }
                return Ok(Some((opt.tag, None)));
            }
            let arg = if let Some(a) = long_arg {
                Some(a)
            } else if let Some((i, o)) = self.chars.take() {
                let r = &argv[i][o..];
                Some(r.strip_prefix('=').unwrap_or(r))
            } else if self.next >= argv.len() {
                if opt.kind == ArgKind::Required {
                    return Err(PoptError::NoArg);
                }
                None
            } else {
                let n = argv[self.next].as_str();
                if opt.kind == ArgKind::Optional && n.starts_with('-') {
                    None
                } else {
                    self.next += 1;
                    Some(n)
                }
            };
            return Ok(Some((opt.tag, arg)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ipvsadm's commands and options tables

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

// OPTC_* indices.
const OPT_NUMERIC: usize = 0;
const OPT_CONNECTION: usize = 1;
const OPT_SERVICE: usize = 2;
const OPT_SCHEDULER: usize = 3;
const OPT_PERSISTENT: usize = 4;
const OPT_NETMASK: usize = 5;
const OPT_SERVER: usize = 6;
const OPT_FORWARD: usize = 7;
const OPT_WEIGHT: usize = 8;
const OPT_UTHRESHOLD: usize = 9;
const OPT_LTHRESHOLD: usize = 10;
const OPT_MCAST: usize = 11;
const OPT_TIMEOUT: usize = 12;
const OPT_DAEMON: usize = 13;
const OPT_STATS: usize = 14;
const OPT_RATE: usize = 15;
const OPT_THRESHOLDS: usize = 16;
const OPT_PERSISTENTCONN: usize = 17;
const OPT_NOSORT: usize = 18;
const OPT_SYNCID: usize = 19;
const OPT_EXACT: usize = 20;
const OPT_ONEPACKET: usize = 21;
const OPT_PE: usize = 22;
const OPT_SCHED_FLAGS: usize = 23;
const OPT_MCAST_GROUP: usize = 24;
const OPT_MCAST_PORT: usize = 25;
const OPT_MCAST_TTL: usize = 26;
const OPT_SYNC_MAXLEN: usize = 27;
const OPT_TUN_INFO: usize = 28;
const OPT_TUN_TYPE: usize = 29;
const OPT_TUN_PORT: usize = 30;
const OPT_TUN_NOCSUM: usize = 31;
const OPT_TUN_CSUM: usize = 32;
const OPT_TUN_REMCSUM: usize = 33;
const NUMBER_OF_OPT: usize = 34;

const OPT_NAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// `commands_v_options[cmd][opt]`: '+' required, 'x' illegal, '1' exclusive, ' ' optional.
fn legality(cmd: Cmd, opt: usize) -> u8 {
    let allowed: &[(usize, u8)] = match cmd {
        Cmd::Add | Cmd::Edit => &[
            (OPT_SERVICE, b'+'),
            (OPT_SCHEDULER, b' '),
            (OPT_PERSISTENT, b' '),
            (OPT_NETMASK, b' '),
            (OPT_ONEPACKET, b' '),
            (OPT_PE, b' '),
            (OPT_SCHED_FLAGS, b' '),
        ],
        Cmd::Del => &[(OPT_SERVICE, b'+')],
        Cmd::Flush | Cmd::Timeout | Cmd::Restore => &[],
        Cmd::List => &[
            (OPT_NUMERIC, b' '),
            (OPT_CONNECTION, b'1'),
            (OPT_SERVICE, b'1'),
            (OPT_TIMEOUT, b'1'),
            (OPT_DAEMON, b'1'),
            (OPT_STATS, b' '),
            (OPT_RATE, b' '),
            (OPT_THRESHOLDS, b' '),
            (OPT_PERSISTENTCONN, b' '),
            (OPT_NOSORT, b' '),
            (OPT_SYNCID, b' '),
            (OPT_EXACT, b' '),
            (OPT_TUN_INFO, b' '),
        ],
        Cmd::AddDest | Cmd::EditDest => &[
            (OPT_SERVICE, b'+'),
            (OPT_SERVER, b'+'),
            (OPT_FORWARD, b' '),
            (OPT_WEIGHT, b' '),
            (OPT_UTHRESHOLD, b' '),
            (OPT_LTHRESHOLD, b' '),
            (OPT_TUN_TYPE, b' '),
            (OPT_TUN_PORT, b' '),
            (OPT_TUN_NOCSUM, b' '),
            (OPT_TUN_CSUM, b' '),
            (OPT_TUN_REMCSUM, b' '),
        ],
        Cmd::DelDest => &[(OPT_SERVICE, b'+'), (OPT_SERVER, b'+')],
        Cmd::StartDaemon => &[
            (OPT_MCAST, b' '),
            (OPT_SYNCID, b' '),
            (OPT_MCAST_GROUP, b' '),
            (OPT_MCAST_PORT, b' '),
            (OPT_MCAST_TTL, b' '),
            (OPT_SYNC_MAXLEN, b' '),
        ],
        Cmd::StopDaemon => &[(OPT_SYNCID, b' ')],
        Cmd::Save => &[(OPT_NUMERIC, b' ')],
        Cmd::Zero => &[(OPT_SERVICE, b' ')],
    };
    allowed
        .iter()
        .find(|(o, _)| *o == opt)
        .map_or(b'x', |(_, m)| *m)
}

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), Stop> {
    let mut last = 0;
    let mut count = 0;
    for (j, name) in OPT_NAMES.iter().enumerate() {
        let mark = legality(cmd, j);
        if options & (1 << j) == 0 {
            if mark == b'+' {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    name,
                    cmd.name()
                )));
            }
        } else {
            if mark == b'x' {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    name,
                    cmd.name()
                )));
            }
            if mark == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    name,
                    OPT_NAMES[last],
                    cmd.name()
                )));
            }
        }
    }
    Ok(())
}

fn tunnel_name(t: TunnelType) -> &'static str {
    match t {
        TunnelType::Ipip => "ipip",
        TunnelType::Gue => "gue",
        TunnelType::Gre => "gre",
    }
}

/// `tunnel_types_v_options` over tun-port, tun-nocsum, tun-csum, tun-remcsum.
fn tunnel_opt_check(t: TunnelType, options: u64) -> Result<(), Stop> {
    const TUNOPTS: [usize; 4] = [OPT_TUN_PORT, OPT_TUN_NOCSUM, OPT_TUN_CSUM, OPT_TUN_REMCSUM];
    let row: [u8; 4] = match t {
        TunnelType::Ipip => *b"xxxx",
        TunnelType::Gue => *b"+111",
        TunnelType::Gre => *b"x11x",
    };
    let mut last = 0;
    let mut count = 0;
    for (j, &k) in TUNOPTS.iter().enumerate() {
        if options & (1 << k) == 0 {
            if row[j] == b'+' {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPT_NAMES[k],
                    tunnel_name(t)
                )));
            }
        } else {
            if row[j] == b'x' {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPT_NAMES[k],
                    tunnel_name(t)
                )));
            }
            if row[j] == b'1' {
                count += 1;
                if count == 1 {
                    last = k;
                    continue;
                }
                return Err(fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                    OPT_NAMES[k],
                    OPT_NAMES[last],
                    tunnel_name(t)
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// C library number and address parsing, as ipvsadm relies on it

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `strtol(s, &end, 10)` accepted only when it consumed the whole string, parsed at least one
/// digit and did not overflow.
pub(crate) fn c_strtol(s: &str) -> Option<i64> {
    let (v, end, overflow) = strtol_prefix(s.as_bytes());
    if end == 0 || end != s.len() || overflow {
        return None;
    }
    Some(v)
}

/// strtol base 10: (saturated value, end offset (0 when no digits), overflow).
fn strtol_prefix(b: &[u8]) -> (i64, usize, bool) {
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: i128 = 0;
    let mut overflow = false;
    while i < b.len() && b[i].is_ascii_digit() {
        if !overflow {
            v = v * 10 + i128::from(b[i] - b'0');
            if v > i128::from(i64::MAX) + 1 {
                overflow = true;
            }
        }
        i += 1;
    }
    if i == start {
        return (0, 0, false);
    }
    if neg {
        v = -v;
    }
    if overflow || v > i128::from(i64::MAX) || v < i128::from(i64::MIN) {
        let sat = if neg { i64::MIN } else { i64::MAX };
        return (sat, i, true);
    }
    (v as i64, i, false)
}

/// `atoi()`: (int) strtol(s, NULL, 10), no error detection.
fn c_atoi(s: &str) -> i32 {
    strtol_prefix(s.as_bytes()).0 as i32
}

/// ipvsadm's `string_to_number`.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    c_strtol(s).filter(|n| (min..=max).contains(n))
}

fn str_is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// glibc `inet_aton` (the suite has one implementation, in the lvs.cf lexer).
pub(crate) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    lvs_config::lexer::inet_aton(s.as_bytes())
}

/// A parsed `host[:port]` (`parse_service`'s SERVICE_ADDR, with SERVICE_PORT when `port` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddrPort {
    addr: IpAddr,
    port: Option<u16>,
}

/// ipvsadm's `parse_service`: None = SERVICE_NONE.
fn parse_service(buf: &str, protocol: Option<Protocol>, lk: &dyn Lookup) -> Option<AddrPort> {
    if str_is_digit(buf) {
        return None;
    }
    let mut host = buf;
    let mut port: Option<&str> = None;
    if let Some(inner) = buf.strip_prefix('[') {
        let close = inner.find(']')?;
        let after = &inner[close + 1..];
        port = Some(after.strip_prefix(':')?);
        host = &inner[..close];
    }
    let addr = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else {
        let h = match host.rfind(':') {
            Some(k) => {
                port = Some(&host[k + 1..]);
                &host[..k]
            }
            None => {
                port = None;
                host
            }
        };
        IpAddr::V4(inet_aton(h).or_else(|| lk.host_v4(h))?)
    };
    let port = match port {
        None => None,
        Some(p) => match string_to_number(p, 0, 65535) {
            Some(n) => Some(n as u16),
            None => Some(protocol.and_then(|proto| lk.service_port(p, proto))?),
        },
    };
    Some(AddrPort { addr, port })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn parse_timeout(arg: Option<&str>, min: i64, max: i64) -> Result<u32, Stop> {
    match arg {
        None => Ok(PERSISTENT_TIMEOUT),
        Some(a) => string_to_number(a, min, max)
            .map(|n| n as u32)
            .ok_or_else(|| fail(format!("invalid timeout value `{a}' specified"))),
    }
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, Stop> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut out = 0;
    let mut any = false;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let (bit, needs) = match flag {
            "flag-1" => (flags::SCHED1, None),
            "flag-2" => (flags::SCHED2, None),
            "flag-3" => (flags::SCHED3, None),
            "sh-fallback" => (flags::SH_FALLBACK, Some("sh")),
            "sh-port" => (flags::SH_PORT, Some("sh")),
            "mh-fallback" => (flags::MH_FALLBACK, Some("mh")),
            "mh-port" => (flags::MH_PORT, Some("mh")),
            _ => return Err(fail(format!("invalid scheduler flag `{flag}'"))),
        };
        out |= bit;
        if needs.is_some_and(|n| n != sched) {
            return Err(fail(format!("incompatible scheduler flag `{flag}'")));
        }
    }
    if !any {
        // ipvsadm crashes here (strcmp on strtok's NULL); report the empty flag instead.
        return Err(fail("invalid scheduler flag `'"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// process_options

/// ipvsadm's `struct ipvs_command_entry` plus the option bits and format flags.
struct Entry {
    cmd: Cmd,
    options: u64,
    list: ListFlags,
    // service
    af: Option<Family>,
    protocol: Option<Protocol>,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    sched: String,
    svc_flags: u32,
    timeout: u32,
    netmask: u32,
    pe: String,
    sched_flags_arg: String,
    // destination
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    forward: ForwardMethod,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
    tun_port: u16,
    tun_flags: u16,
    // timeouts
    timeouts: Timeouts,
    // daemon
    state: DaemonState,
    mcast_ifn: String,
    syncid: u32,
    sync_maxlen: u16,
    mcast_group: Option<IpAddr>,
    mcast_port: u16,
    mcast_ttl: u8,
}

impl Entry {
    fn new(cmd: Cmd) -> Entry {
        Entry {
            cmd,
            options: 0,
            list: ListFlags::default(),
            af: None,
            protocol: None,
            addr: None,
            port: 0,
            fwmark: 0,
            sched: String::new(),
            svc_flags: 0,
            timeout: 0,
            netmask: 0xffff_ffff,
            pe: String::new(),
            sched_flags_arg: String::new(),
            dest_addr: None,
            dest_port: 0,
            forward: ForwardMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: tun_flags::NOCSUM,
            timeouts: Timeouts::default(),
            state: DaemonState::Master,
            mcast_ifn: String::new(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    }

    fn set_option(&mut self, opt: usize) -> Result<(), Stop> {
        let bit = 1u64 << opt;
        if self.options & bit != 0 {
            return Err(fail(format!(
                "multiple '{}' options specified",
                OPT_NAMES[opt]
            )));
        }
        self.options |= bit;
        Ok(())
    }

    fn has(&self, opt: usize) -> bool {
        self.options & (1 << opt) != 0
    }

    fn service_id(&self) -> ServiceId {
        if self.fwmark != 0 {
            ServiceId::Fwmark {
                family: self.af.unwrap_or(Family::Inet),
                mark: self.fwmark,
            }
        } else {
            let addr = self
                .addr
                .unwrap_or_else(|| self.af.unwrap_or(Family::Inet).unspecified());
            ServiceId::Address {
                protocol: self.protocol.unwrap_or(Protocol::Tcp),
                addr,
                port: self.port,
            }
        }
    }

    fn service(&self) -> Service {
        let mut s = Service::new(self.service_id());
        s.scheduler = self.sched.clone();
        s.flags = self.svc_flags;
        s.timeout = self.timeout;
        s.netmask = self.netmask;
        s.pe_name = if self.pe.is_empty() {
            None
        } else {
            Some(self.pe.clone())
        };
        s
    }

    fn destination(&self) -> Destination {
        let addr = self.dest_addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut d = Destination::new(addr, self.dest_port);
        d.forward = self.forward;
        d.weight = self.weight;
        d.u_threshold = self.u_threshold;
        d.l_threshold = self.l_threshold;
        d.tun_type = self.tun_type;
        d.tun_port = self.tun_port;
        d.tun_flags = self.tun_flags;
        d
    }

    /// One option after the command (the body of parse_options' second switch).
    fn option(
        &mut self,
        tag: Tag,
        arg: Option<&str>,
        bad: &str,
        lk: &dyn Lookup,
    ) -> Result<(), Stop> {
        let a = arg.unwrap_or("");
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                self.set_option(OPT_SERVICE)?;
                let proto = match tag {
                    Tag::Tcp => Protocol::Tcp,
                    Tag::Udp => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                self.protocol = Some(proto);
                let p = parse_service(a, Some(proto), lk)
                    .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
                self.addr = Some(p.addr);
                self.af = Some(Family::of(&p.addr));
                if p.addr.is_ipv6() {
                    self.netmask = 128;
                }
                if let Some(port) = p.port {
                    self.port = port;
                }
            }
            Tag::Fwmark => {
                self.set_option(OPT_SERVICE)?;
                self.af = Some(Family::Inet);
                self.protocol = Some(Protocol::Tcp);
                let mark = c_strtol(a)
                    .filter(|&l| l > 0 && l <= i64::from(u32::MAX))
                    .ok_or_else(|| fail(format!("invalid fwmark value `{a}' specified")))?;
                self.fwmark = mark as u32;
            }
            Tag::Scheduler => {
                self.set_option(OPT_SCHEDULER)?;
                self.sched = truncate(a, 15);
            }
            Tag::Persistent => {
                self.set_option(OPT_PERSISTENT)?;
                self.svc_flags |= flags::PERSISTENT;
                self.timeout = parse_timeout(arg, 1, MAX_TIMEOUT)?;
            }
            Tag::Netmask => {
                self.set_option(OPT_NETMASK)?;
                if self.af != Some(Family::Inet6) {
                    let m = inet_aton(a)
                        .or_else(|| lk.host_v4(a))
                        .ok_or_else(|| fail("illegal virtual server persistent mask specified"))?;
                    self.netmask = u32::from(m);
                } else {
                    let m = c_atoi(a);
                    if !(1..=128).contains(&m) {
                        return Err(fail("illegal ipv6 netmask specified"));
                    }
                    self.netmask = m as u32;
                }
            }
            Tag::RealServer => {
                self.set_option(OPT_SERVER)?;
                let p = parse_service(a, self.protocol, lk)
                    .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
                self.dest_addr = Some(p.addr);
                self.dest_port = p.port.unwrap_or(self.port);
            }
            Tag::Ipip | Tag::Gate | Tag::Masq => {
                self.set_option(OPT_FORWARD)?;
                self.forward = match tag {
                    Tag::Ipip => ForwardMethod::Tunnel,
                    Tag::Gate => ForwardMethod::Route,
                    _ => ForwardMethod::Masq,
                };
            }
            Tag::Weight => {
                self.set_option(OPT_WEIGHT)?;
                self.weight = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal weight specified"))?
                    as i32;
            }
            Tag::UThreshold => {
                self.set_option(OPT_UTHRESHOLD)?;
                self.u_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal u_threshold specified"))?
                    as u32;
            }
            Tag::LThreshold => {
                self.set_option(OPT_LTHRESHOLD)?;
                self.l_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal l_threshold specified"))?
                    as u32;
            }
            Tag::Connection => self.set_option(OPT_CONNECTION)?,
            Tag::Numeric => {
                self.set_option(OPT_NUMERIC)?;
                self.list.numeric = true;
            }
            Tag::McastInterface => {
                self.set_option(OPT_MCAST)?;
                self.mcast_ifn = truncate(a, 15);
            }
            Tag::SyncId => {
                self.set_option(OPT_SYNCID)?;
                self.syncid = string_to_number(a, 0, 255)
                    .ok_or_else(|| fail("illegal syncid specified"))?
                    as u32;
            }
            Tag::Timeout => self.set_option(OPT_TIMEOUT)?,
            Tag::Daemon => self.set_option(OPT_DAEMON)?,
            Tag::Stats => {
                self.set_option(OPT_STATS)?;
                self.list.stats = true;
            }
            Tag::Rate => {
                self.set_option(OPT_RATE)?;
                self.list.rate = true;
            }
            Tag::Thresholds => {
                self.set_option(OPT_THRESHOLDS)?;
                self.list.thresholds = true;
            }
            Tag::PersistentConn => {
                self.set_option(OPT_PERSISTENTCONN)?;
                self.list.persistent_conn = true;
            }
            Tag::NoSort => {
                self.set_option(OPT_NOSORT)?;
                self.list.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                self.set_option(OPT_EXACT)?;
                self.list.exact = true;
            }
            Tag::Ipv6 => {
                if self.fwmark != 0 {
                    self.af = Some(Family::Inet6);
                    self.netmask = 128;
                } else {
                    return Err(fail("-6 used before -f\n"));
                }
            }
            Tag::Ops => {
                self.set_option(OPT_ONEPACKET)?;
                self.svc_flags |= flags::ONEPACKET;
            }
            Tag::Pe => {
                self.set_option(OPT_PE)?;
                self.pe = truncate(a, 16);
            }
            Tag::SchedFlags => {
                self.set_option(OPT_SCHED_FLAGS)?;
                self.sched_flags_arg = truncate(a, 127);
            }
            Tag::McastGroup => {
                self.set_option(OPT_MCAST_GROUP)?;
                if a.contains(':') {
                    match a.parse::<Ipv6Addr>() {
                        Ok(g) if g.is_multicast() => self.mcast_group = Some(IpAddr::V6(g)),
                        _ => return Err(fail(format!("invalid IPv6 mcast-group `{a}'"))),
                    }
                } else {
                    match a.parse::<Ipv4Addr>() {
                        Ok(g) if g.is_multicast() => self.mcast_group = Some(IpAddr::V4(g)),
                        _ => return Err(fail(format!("invalid IPv4 mcast-group `{a}'"))),
                    }
                }
            }
            Tag::McastPort => {
                self.set_option(OPT_MCAST_PORT)?;
                self.mcast_port = string_to_number(a, 1, 65535)
                    .ok_or_else(|| fail("illegal mcast-port specified"))?
                    as u16;
            }
            Tag::McastTtl => {
                self.set_option(OPT_MCAST_TTL)?;
                self.mcast_ttl = string_to_number(a, 1, 255)
                    .ok_or_else(|| fail("illegal mcast-ttl specified"))?
                    as u8;
            }
            Tag::SyncMaxlen => {
                self.set_option(OPT_SYNC_MAXLEN)?;
                self.sync_maxlen = string_to_number(a, 1, 65535 - 20 - 8)
                    .ok_or_else(|| fail("illegal sync-maxlen specified"))?
                    as u16;
            }
            Tag::TunInfo => {
                self.set_option(OPT_TUN_INFO)?;
                self.list.tun_info = true;
            }
            Tag::TunType => {
                self.set_option(OPT_TUN_TYPE)?;
                self.tun_type = match a {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(fail("illegal tunnel type specified")),
                };
            }
            Tag::TunPort => {
                self.set_option(OPT_TUN_PORT)?;
                self.tun_port = string_to_number(a, 1, 65535)
                    .ok_or_else(|| fail("illegal tunnel port specified"))?
                    as u16;
            }
            Tag::TunNocsum => {
                self.set_option(OPT_TUN_NOCSUM)?;
                self.tun_flags |= tun_flags::NOCSUM;
            }
            Tag::TunCsum => {
                self.set_option(OPT_TUN_CSUM)?;
                self.tun_flags |= tun_flags::CSUM;
            }
            Tag::TunRemcsum => {
                self.set_option(OPT_TUN_REMCSUM)?;
                self.tun_flags |= tun_flags::REMCSUM;
            }
            Tag::AddService
            | Tag::EditService
            | Tag::DeleteService
            | Tag::Clear
            | Tag::List
            | Tag::Zero
            | Tag::AddServer
            | Tag::EditServer
            | Tag::DeleteServer
            | Tag::Set
            | Tag::Help
            | Tag::Version
            | Tag::Restore
            | Tag::Save
            | Tag::StartDaemon
            | Tag::StopDaemon => return Err(fail(format!("invalid option `{bad}'"))),
        }
        Ok(())
    }
}

/// Parses a whole command line (`argv[0]` is the program name, used in the "Try" text) the
/// way ipvsadm 1.31 does, including its post-parse checks.
pub fn parse(argv: &[String], lk: &dyn Lookup) -> Result<Command, Stop> {
    let prog = argv.first().map_or("ipvsadm", String::as_str);
    if argv.len() <= 1 {
        return Ok(Command::List(List {
            what: ListWhat::All,
            flags: ListFlags::default(),
        }));
    }
    let mut popt = Popt::new(argv);
    let (tag, arg) = match popt.next_opt() {
        Ok(Some(first)) => first,
        _ => return Err(tryhelp(prog)),
    };
    let daemon_state = |arg: Option<&str>| match arg {
        Some("master") => Some(DaemonState::Master),
        Some("backup") => Some(DaemonState::Backup),
        _ => None,
    };
    let mut e = match tag {
        Tag::AddService => Entry::new(Cmd::Add),
        Tag::EditService => Entry::new(Cmd::Edit),
        Tag::DeleteService => Entry::new(Cmd::Del),
        Tag::AddServer => Entry::new(Cmd::AddDest),
        Tag::EditServer => Entry::new(Cmd::EditDest),
        Tag::DeleteServer => Entry::new(Cmd::DelDest),
        Tag::Clear => Entry::new(Cmd::Flush),
        Tag::List => Entry::new(Cmd::List),
        Tag::Zero => Entry::new(Cmd::Zero),
        Tag::Set => Entry::new(Cmd::Timeout),
        Tag::Restore => Entry::new(Cmd::Restore),
        Tag::Save => Entry::new(Cmd::Save),
        Tag::StartDaemon => {
            let mut e = Entry::new(Cmd::StartDaemon);
            e.state = daemon_state(arg)
                .ok_or_else(|| fail("illegal start-daemon parameter specified"))?;
            e
        }
        Tag::StopDaemon => {
            let mut e = Entry::new(Cmd::StopDaemon);
            e.state = daemon_state(arg).ok_or_else(|| fail("illegal start_daemon specified"))?;
            e
        }
        Tag::Help => return Err(Stop::Usage),
        Tag::Version => return Err(Stop::Version),
        _ => return Err(tryhelp(prog)),
    };

    loop {
        match popt.next_opt() {
            Ok(None) => break,
            Ok(Some((tag, arg))) => e.option(tag, arg, popt.bad_option(), lk)?,
            Err(err) => {
                return Err(Stop::Fail {
                    message: format!("{}: {}\n", popt.bad_option(), err.text()),
                })
            }
        }
    }

    if e.cmd == Cmd::Timeout {
        let values = (popt.get_arg(), popt.get_arg(), popt.get_arg());
        match values {
            (Some(tcp), Some(fin), Some(udp)) => {
                e.timeouts = Timeouts {
                    tcp: parse_timeout(Some(tcp), 0, MAX_TIMEOUT)?,
                    tcp_fin: parse_timeout(Some(fin), 0, MAX_TIMEOUT)?,
                    udp: parse_timeout(Some(udp), 0, MAX_TIMEOUT)?,
                }
            }
            _ => return Err(fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = popt.get_arg() {
        return Err(fail(format!("unexpected argument {extra}")));
    }
    if !e.sched_flags_arg.is_empty() {
        e.svc_flags &= !(flags::SCHED1 | flags::SCHED2 | flags::SCHED3);
        e.svc_flags |= parse_sched_flags(&e.sched, &e.sched_flags_arg)?;
    }

    generic_opt_check(e.cmd, e.options)?;

    if matches!(e.cmd, Cmd::Add | Cmd::Edit) {
        if e.fwmark == 0 && e.port == 0 && e.svc_flags & flags::PERSISTENT == 0 {
            return Err(fail("Zero port specified for non-persistent service"));
        }
        if e.svc_flags & flags::ONEPACKET != 0 && e.fwmark == 0 && e.protocol != Some(Protocol::Udp)
        {
            return Err(fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if e.sched.is_empty() {
            e.sched = "wlc".to_string();
        }
    }
    if e.cmd == Cmd::StartDaemon && e.mcast_ifn.is_empty() {
        e.mcast_ifn = "eth0".to_string();
    }
    if matches!(e.cmd, Cmd::AddDest | Cmd::EditDest) {
        let tunnel = e.forward == ForwardMethod::Tunnel;
        if e.fwmark == 0 && (tunnel || e.forward == ForwardMethod::Route) {
            e.dest_port = e.port;
        }
        let dest_af = e.dest_addr.map(|a| Family::of(&a));
        if dest_af != e.af && !tunnel {
            return Err(fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_opts = [
            OPT_TUN_TYPE,
            OPT_TUN_PORT,
            OPT_TUN_NOCSUM,
            OPT_TUN_CSUM,
            OPT_TUN_REMCSUM,
        ];
        if tun_opts.iter().any(|&o| e.has(o)) && !tunnel {
            return Err(fail("Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(e.tun_type, e.options)?;
    }

    let cmd = match e.cmd {
        Cmd::List => {
            let any = |opts: &[usize]| opts.iter().any(|&o| e.has(o));
            if (any(&[OPT_CONNECTION, OPT_TIMEOUT, OPT_DAEMON])
                && any(&[OPT_STATS, OPT_RATE, OPT_THRESHOLDS]))
                || (any(&[OPT_TIMEOUT, OPT_DAEMON]) && e.has(OPT_PERSISTENTCONN))
            {
                return Err(fail("options conflicts in the list command"));
            }
            let what = if e.has(OPT_CONNECTION) {
                ListWhat::Connections
            } else if e.has(OPT_SERVICE) {
                ListWhat::Service(e.service_id())
            } else if e.has(OPT_TIMEOUT) {
                ListWhat::Timeouts
            } else if e.has(OPT_DAEMON) {
                ListWhat::Daemons
            } else {
                ListWhat::All
            };
            Command::List(List {
                what,
                flags: e.list,
            })
        }
        Cmd::Restore => Command::Restore,
        Cmd::Save => Command::Save {
            numeric: e.list.numeric,
        },
        Cmd::Flush => Command::Apply(Change::Flush),
        Cmd::Add => Command::Apply(Change::AddService(e.service())),
        Cmd::Edit => Command::Apply(Change::EditService(e.service())),
        Cmd::Del => Command::Apply(Change::DeleteService(e.service_id())),
        Cmd::Zero => {
            // libipvs sends no service (= zero everything) for fwmark 0, address :: / 0.0.0.0
            // and port 0.
            let unspecified = e.addr.map_or(true, |a| a.is_unspecified());
            if e.has(OPT_SERVICE) && (e.fwmark != 0 || !unspecified || e.port != 0) {
                Command::Apply(Change::Zero(Some(e.service_id())))
            } else {
                Command::Apply(Change::Zero(None))
            }
        }
        Cmd::AddDest => Command::Apply(Change::AddDestination(e.service_id(), e.destination())),
        Cmd::EditDest => Command::Apply(Change::EditDestination(e.service_id(), e.destination())),
        Cmd::DelDest => Command::Apply(Change::DeleteDestination(e.service_id(), e.destination())),
        Cmd::Timeout => Command::Apply(Change::SetTimeouts(e.timeouts)),
        Cmd::StartDaemon => Command::Apply(Change::StartDaemon(Daemon {
            state: e.state,
            mcast_ifn: e.mcast_ifn.clone(),
            sync_id: e.syncid,
            sync_maxlen: e.sync_maxlen,
            mcast_group: e.mcast_group,
            mcast_port: e.mcast_port,
            mcast_ttl: e.mcast_ttl,
        })),
        Cmd::StopDaemon => Command::Apply(Change::StopDaemon(e.state)),
    };
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fwm, tcp, udp, FakeLookup};

    fn pv(args: &[&str]) -> Result<Command, Stop> {
        let argv: Vec<String> = std::iter::once("ipvsadm")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        parse(&argv, &FakeLookup::standard())
    }

    fn p(line: &str) -> Result<Command, Stop> {
        let args: Vec<&str> = line.split_whitespace().collect();
        pv(&args)
    }

    /// A `fail(2, …)` message (without its newline).
    fn e2(line: &str) -> String {
        match p(line) {
            Err(Stop::Exit { message, code: 2 }) => message.strip_suffix('\n').unwrap().to_string(),
            other => panic!("{line}: expected exit 2, got {other:?}"),
        }
    }

    /// A popt error after the command.
    fn popt(line: &str) -> String {
        match p(line) {
            Err(Stop::Fail { message }) => message,
            other => panic!("{line}: expected popt failure, got {other:?}"),
        }
    }

    fn tryhelp_of(args: &[&str]) {
        assert_eq!(
            pv(args),
            Err(Stop::Exit {
                message: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n".into(),
                code: 255
            }),
            "{args:?}"
        );
    }

    fn change(line: &str) -> Change {
        match p(line) {
            Ok(Command::Apply(c)) => c,
            other => panic!("{line}: expected a change, got {other:?}"),
        }
    }

    fn svc(line: &str) -> Service {
        match change(line) {
            Change::AddService(s) | Change::EditService(s) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn dest(line: &str) -> (ServiceId, Destination) {
        match change(line) {
            Change::AddDestination(i, d)
            | Change::EditDestination(i, d)
            | Change::DeleteDestination(i, d) => (i, d),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn list(line: &str) -> List {
        match p(line) {
            Ok(Command::List(l)) => l,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_arguments_lists() {
        assert_eq!(
            pv(&[]),
            Ok(Command::List(List {
                what: ListWhat::All,
                flags: ListFlags::default()
            }))
        );
    }

    #[test]
    fn first_option_must_be_a_command() {
        for args in [
            &["-Q"][..],
            &["--bogus"],
            &["-n"],
            &["-t", "1.2.3.4:80"],
            &["--daemon"],
            &["--timeout"],
            &["--persistent-conn"],
            &["-X"],
            &["-"],
            &["--"],
            &["foo"],
            &["--start-daemon"],
            &["--stop-daemon"],
            &["-6"],
            &["--list=1"],
            &["--lis"],
            &["", "-L"][..1],
        ] {
            tryhelp_of(args);
        }
        // A single dash long option is a bundle of short ones.
        // -l, -i, then -s taking "t" as its argument.
        assert_eq!(
            e2("-list"),
            "Illegal 'scheduler' option with the 'list' command"
        );
        assert_eq!(e2("-add-service"), "invalid option `-add-service'");
    }

    #[test]
    fn tryhelp_embeds_argv0() {
        let argv: Vec<String> = vec!["/usr/sbin/ipvsadm".into(), "-Q".into()];
        assert_eq!(
            parse(&argv, &FakeLookup::standard()),
            Err(Stop::Exit {
                message: "Try `/usr/sbin/ipvsadm -h' or '/usr/sbin/ipvsadm --help' for more information.\n".into(),
                code: 255
            })
        );
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p("-h"), Err(Stop::Usage));
        assert_eq!(p("--help"), Err(Stop::Usage));
        assert_eq!(p("-h -L"), Err(Stop::Usage));
        assert_eq!(p("-hL"), Err(Stop::Usage));
        assert_eq!(p("-v"), Err(Stop::Version));
        assert_eq!(p("--version"), Err(Stop::Version));
        assert_eq!(p("-v -L"), Err(Stop::Version));
        assert_eq!(e2("-L -h"), "invalid option `-h'");
        assert_eq!(e2("-L -v"), "invalid option `-v'");
    }

    #[test]
    fn second_command_is_an_invalid_option() {
        assert_eq!(e2("-A -L"), "invalid option `-L'");
        assert_eq!(e2("-L -D"), "invalid option `-D'");
        assert_eq!(e2("-LA"), "invalid option `-LA'");
        assert_eq!(e2("-C --set"), "invalid option `--set'");
        assert_eq!(e2("-L -R"), "invalid option `-R'");
        // poptBadOption names the last argv element consumed: here the daemon state.
        assert_eq!(e2("-L --stop-daemon master"), "invalid option `master'");
        assert_eq!(
            e2("-L --start-daemon=master"),
            "invalid option `--start-daemon=master'"
        );
        // Options before the failure are processed first.
        assert_eq!(
            e2("-A -s rr -s wlc -L"),
            "multiple 'scheduler' options specified"
        );
    }

    #[test]
    fn popt_errors_after_the_command() {
        assert_eq!(popt("-A -t"), "-t: missing argument\n");
        assert_eq!(popt("-A -t 1.2.3.4:80 -s"), "-s: missing argument\n");
        assert_eq!(popt("-At"), "-At: missing argument\n");
        assert_eq!(
            popt("-A --tcp-service"),
            "--tcp-service: missing argument\n"
        );
        assert_eq!(
            popt("-A -t 1.2.3.4:80 --bogus"),
            "--bogus: unknown option\n"
        );
        assert_eq!(popt("-L -Q"), "-Q: unknown option\n");
        assert_eq!(popt("-LQ"), "-LQ: unknown option\n");
        assert_eq!(popt("-L --bogus=3"), "--bogus=3: unknown option\n");
        assert_eq!(
            popt("-L --numeric=1"),
            "--numeric=1: option does not take an argument\n"
        );
        assert_eq!(
            popt("-L --stats="),
            "--stats=: option does not take an argument\n"
        );
        assert_eq!(popt("-L -n=="), "-n==: option does not take an argument\n");
        assert_eq!(popt("-L="), "-L=: unknown option\n");
        assert_eq!(popt("--set -1 2 3"), "-1: unknown option\n");
        assert_eq!(
            popt("-L --sort=x"),
            "--sort=x: option does not take an argument\n"
        );
        // popt errors come before the post-parse checks, after earlier options' checks.
        assert_eq!(popt("-A -t 1.2.3.4 -s"), "-s: missing argument\n");
        assert_eq!(
            e2("-A -t 999.1.1.1:80 -s"),
            "illegal virtual server address[:port] specified"
        );
    }

    #[test]
    fn bundles_and_argument_forms() {
        assert!(list("-Ln").flags.numeric);
        let l = list("-Lnc");
        assert_eq!(l.what, ListWhat::Connections);
        assert!(l.flags.numeric);
        let expect = Service::new(tcp("1.2.3.4", 80));
        assert_eq!(svc("-At 1.2.3.4:80"), expect);
        assert_eq!(svc("-A -t1.2.3.4:80"), expect);
        assert_eq!(svc("-A -t=1.2.3.4:80"), expect);
        assert_eq!(svc("-A --tcp-service=1.2.3.4:80"), expect);
        assert_eq!(svc("-A --tcp-service 1.2.3.4:80"), expect);
        assert_eq!(svc("--add-service --tcp-service 1.2.3.4:80"), expect);
        assert_eq!(svc("-A -t 1.2.3.4:80 -srr").scheduler, "rr");
        assert_eq!(svc("-A -t 1.2.3.4:80 -s=rr").scheduler, "rr");
        assert_eq!(svc("-A -t 1.2.3.4:80 -s==rr").scheduler, "rr");
        assert_eq!(svc("-A -t 1.2.3.4:80 --scheduler=rr").scheduler, "rr");
        assert_eq!(svc("-A -t 1.2.3.4:80 --scheduler=").scheduler, "wlc");
        // A required argument is taken even when it looks like an option.
        let s = svc("-A -t 1.2.3.4:80 -s -p");
        assert_eq!((s.scheduler.as_str(), s.flags), ("-p", 0));
        // Bundled after a command.
        let s = svc("-Aou 1.2.3.4:53");
        assert_eq!(s.flags, flags::ONEPACKET);
        assert_eq!(s.id, udp("1.2.3.4", 53));
    }

    #[test]
    fn persistent_optional_argument() {
        let s = svc("-A -t 1.2.3.4:80 -p");
        assert_eq!((s.flags, s.timeout), (flags::PERSISTENT, 360));
        assert_eq!(svc("-A -t 1.2.3.4:80 -p 600").timeout, 600);
        assert_eq!(svc("-A -t 1.2.3.4:80 -p600").timeout, 600);
        assert_eq!(svc("-A -t 1.2.3.4:80 -p=600").timeout, 600);
        assert_eq!(svc("-A -t 1.2.3.4:80 --persistent=600").timeout, 600);
        assert_eq!(svc("-A -t 1.2.3.4:80 --persistent 600").timeout, 600);
        assert_eq!(svc("-A -p -t 1.2.3.4:80").timeout, 360);
        let s = svc("-A -t 1.2.3.4:80 -p -s rr");
        assert_eq!((s.timeout, s.scheduler.as_str()), (360, "rr"));
        assert_eq!(svc("-A -t 1.2.3.4:80 -p 2678400").timeout, 2678400);
        assert_eq!(svc("-A -t 1.2.3.4:0 -p 1").timeout, 1);
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -p 0"),
            "invalid timeout value `0' specified"
        );
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -p 2678401"),
            "invalid timeout value `2678401' specified"
        );
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -p abc"),
            "invalid timeout value `abc' specified"
        );
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -pn"),
            "invalid timeout value `n' specified"
        );
        match pv(&["-A", "-t", "1.2.3.4:80", "-p", ""]) {
            Err(Stop::Exit { message, code: 2 }) => {
                assert_eq!(message, "invalid timeout value `' specified\n")
            }
            other => panic!("{other:?}"),
        }
        // A following non-option is the timeout, even for the wrong command.
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -p 10.0.0.1"),
            "invalid timeout value `10.0.0.1' specified"
        );
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -p 5 -p"),
            "multiple 'persistent' options specified"
        );
    }

    #[test]
    fn leftover_arguments() {
        assert_eq!(e2("-L foo"), "unexpected argument foo");
        assert_eq!(e2("foo -L"), "unexpected argument foo");
        assert_eq!(e2("-C -- -L"), "unexpected argument -L");
        assert_eq!(e2("-L - -n"), "unexpected argument -");
        assert_eq!(e2("-A -t 1.2.3.4:80 # comment"), "unexpected argument #");
        // Leftovers are checked before the option table.
        assert_eq!(e2("-L -s rr extra"), "unexpected argument extra");
        assert_eq!(list("-L --sort").what, ListWhat::All);
        assert_eq!(list("-L --sort --sort").what, ListWhat::All);
    }

    #[test]
    fn legality_table() {
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -r 1.1.1.1"),
            "Illegal 'real-server' option with the 'add-service' command"
        );
        assert_eq!(
            e2("-A"),
            "You need to supply the 'service-address' option for the 'add-service' command"
        );
        assert_eq!(
            e2("-E -s rr"),
            "You need to supply the 'service-address' option for the 'edit-service' command"
        );
        assert_eq!(
            e2("-a -t 1.2.3.4:80"),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(
            e2("-d -r 1.1.1.1"),
            "You need to supply the 'service-address' option for the 'delete-server' command"
        );
        assert_eq!(
            e2("-L --timeout --daemon"),
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
        );
        assert_eq!(
            e2("-L --daemon --timeout"),
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
        );
        assert_eq!(
            e2("-Lc -t 1.2.3.4:80"),
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            e2("-Lc --timeout"),
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            e2("-S --nosort"),
            "Illegal 'nosort' option with the 'save' command"
        );
        assert_eq!(
            e2("-S --stats"),
            "Illegal 'stats' option with the 'save' command"
        );
        assert_eq!(
            e2("-S -t 1.2.3.4:80"),
            "Illegal 'service-address' option with the 'save' command"
        );
        assert_eq!(
            e2("-R -n"),
            "Illegal 'numeric' option with the 'restore' command"
        );
        assert_eq!(
            e2("-C -n"),
            "Illegal 'numeric' option with the 'flush' command"
        );
        assert_eq!(
            e2("-C -t 1.2.3.4:80"),
            "Illegal 'service-address' option with the 'flush' command"
        );
        assert_eq!(
            e2("-D -t 1.2.3.4:80 -s rr"),
            "Illegal 'scheduler' option with the 'delete-service' command"
        );
        assert_eq!(
            e2("-d -t 1.2.3.4:80 -r 1.1.1.1 -w 5"),
            "Illegal 'weight' option with the 'delete-server' command"
        );
        assert_eq!(
            e2("-a -t 1.2.3.4:80 -r 1.1.1.1 -M 24"),
            "Illegal 'netmask' option with the 'add-server' command"
        );
        assert_eq!(
            e2("-Z -n"),
            "Illegal 'numeric' option with the 'zero' command"
        );
        assert_eq!(
            e2("-L -s rr"),
            "Illegal 'scheduler' option with the 'list' command"
        );
        assert_eq!(e2("-L -o"), "Illegal 'ops' option with the 'list' command");
        assert_eq!(
            e2("--set 1 2 3 -n"),
            "Illegal 'numeric' option with the 'set' command"
        );
        assert_eq!(
            e2("--start-daemon master -n"),
            "Illegal 'numeric' option with the 'start-daemon' command"
        );
        assert_eq!(
            e2("--start-daemon master --exact"),
            "Illegal 'exact' option with the 'start-daemon' command"
        );
        assert_eq!(
            e2("--stop-daemon backup --mcast-interface eth0"),
            "Illegal 'mcast-interface' option with the 'stop-daemon' command"
        );
        // The first offending option in table order wins, not in command-line order.
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -w 3 -r 1.1.1.1"),
            "Illegal 'real-server' option with the 'add-service' command"
        );
        assert_eq!(
            e2("-L --tun-type ipip"),
            "Illegal 'tun-type' option with the 'list' command"
        );
    }

    #[test]
    fn multiple_options() {
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -s rr -s wlc"),
            "multiple 'scheduler' options specified"
        );
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -f 1"),
            "multiple 'service-address' options specified"
        );
        assert_eq!(
            e2("-a -t 1.2.3.4:80 -r 1.1.1.1 -g -m"),
            "multiple 'forwarding-method' options specified"
        );
        assert_eq!(e2("-Ln -n"), "multiple 'numeric' options specified");
        assert_eq!(
            e2("-L --stats --stats"),
            "multiple 'stats' options specified"
        );
        assert_eq!(
            e2("-a -t 1.2.3.4:80 -r 1.1.1.1 -r 1.1.1.2"),
            "multiple 'real-server' options specified"
        );
        assert_eq!(
            e2("-A -t 1.2.3.4:80 -s rr --scheduler=bogus!"),
            "multiple 'scheduler' options specified"
        );
        // Multiple is detected before the value is checked.
        assert_eq!(
            e2("-a -t 1.2.3.4:80 -r 1.1.1.1 -w 1 -w x"),
            "multiple 'weight' options specified"
        );
        // -6 is no counted option.
        assert_eq!(svc("-A -f 1 -6 -6").id.family(), Family::Inet6);
    }

    #[test]
    fn service_addresses() {
        assert_eq!(svc("-A -t 10.0.0.1:80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t 10.0.1:80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t 10.1:80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t 167772161:80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t 0x0a000001:80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t 012.0.0.1:80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t web.example:http").id, tcp("192.0.2.10", 80));
        assert_eq!(svc("-A -t localhost:https").id, tcp("127.0.0.1", 443));
        assert_eq!(svc("-A -u 10.0.0.1:ntp").id, udp("10.0.0.1", 123));
        assert_eq!(svc("-A -t 10.0.0.1:65535").id, tcp("10.0.0.1", 65535));
        assert_eq!(svc("-A -t 10.0.0.1:+80").id, tcp("10.0.0.1", 80));
        assert_eq!(svc("-A -t 10.0.0.1:080").id, tcp("10.0.0.1", 80));
        assert_eq!(
            svc("--add-service --sctp-service 10.0.0.1:80").id,
            ServiceId::Address {
                protocol: Protocol::Sctp,
                addr: v4("10.0.0.1"),
                port: 80
            }
        );
        let s = svc("-A -t [2001:db8::1]:80");
        assert_eq!(s.id, tcp("2001:db8::1", 80));
        assert_eq!(s.netmask, 128);
        assert_eq!(svc("-A -t [2001:db8::1]:http").id, tcp("2001:db8::1", 80));
        for bad in [
            "-A -t 80",
            "-A -t 256.0.0.1:80",
            "-A -t 10.0.0.1:bogus",
            "-A -t 10.0.0.1:ntp",
            "-A -t 10.0.0.1:65536",
            "-A -t 10.0.0.1:-1",
            "-A -t 10.0.0.1:",
            "-A -t nosuchhost:80",
            "-A -t [2001:db8::1]",
            "-A -t [2001:db8::1]x80",
            "-A -t [2001:db8::1:80",
            "-A -t [2001:db8::1]:",
            "-A -t 1.2.3.4.5:80",
            "-A -t 0x:80",
            "-A -t 09.1.1.1:80",
            "-A -t :80",
        ] {
            assert_eq!(
                e2(bad),
                "illegal virtual server address[:port] specified",
                "{bad}"
            );
        }
        match pv(&["-A", "-t", ""]) {
            Err(Stop::Exit { message, code: 2 }) => {
                assert_eq!(message, "illegal virtual server address[:port] specified\n")
            }
            other => panic!("{other:?}"),
        }
        // No port (or port 0) needs persistence.
        for zero in [
            "-A -t 10.0.0.1",
            "-A -t 10.0.0.1:0",
            "-A -t 10.0.0.1:-0",
            "-A -t 2001:db8::1:80",
            "-A -t [1.2.3.4]:80",
            "-E -t 10.0.0.1",
        ] {
            assert_eq!(
                e2(zero),
                "Zero port specified for non-persistent service",
                "{zero}"
            );
        }
        assert_eq!(svc("-A -t 2001:db8::1 -p").id, tcp("2001:db8::1", 0));
        assert_eq!(svc("-A -t [1.2.3.4]:80 -p").id, tcp("1.2.3.4", 0));
        assert_eq!(svc("-A -t 10.0.0.1 -p").id, tcp("10.0.0.1", 0));
    }

    #[test]
    fn one_packet_scheduling() {
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -o"),
            "One-Packet Scheduling is only for UDP virtual services"
        );
        assert_eq!(
            e2("-A --sctp-service 10.0.0.1:80 -o"),
            "One-Packet Scheduling is only for UDP virtual services"
        );
        assert_eq!(svc("-A -u 10.0.0.1:53 -o").flags, flags::ONEPACKET);
        assert_eq!(svc("-A -f 1 -o").flags, flags::ONEPACKET);
        assert_eq!(svc("-E -u 10.0.0.1:53 --ops").flags, flags::ONEPACKET);
    }

    #[test]
    fn fwmarks() {
        let s = svc("-A -f 1");
        assert_eq!(s.id, fwm(1));
        assert_eq!(s.netmask, 0xffff_ffff);
        assert_eq!(svc("-A -f 4294967295").id, fwm(u32::MAX));
        assert_eq!(svc("-A --fwmark-service 007").id, fwm(7));
        for bad in [
            "0",
            "0x10",
            "-5",
            "4294967296",
            "abc",
            "1x",
            "99999999999999999999",
        ] {
            assert_eq!(
                e2(&format!("-A -f {bad}")),
                format!("invalid fwmark value `{bad}' specified")
            );
        }
        let s = svc("-A -f 1 -6");
        assert_eq!(
            s.id,
            ServiceId::Fwmark {
                family: Family::Inet6,
                mark: 1
            }
        );
        assert_eq!(s.netmask, 128);
        assert_eq!(e2("-A -6 -f 1"), "-6 used before -f\n");
        assert_eq!(e2("-A -t 1.2.3.4:80 -6"), "-6 used before -f\n");
        assert_eq!(e2("-L -6"), "-6 used before -f\n");
        assert_eq!(
            list("-L -f 5 -6").what,
            ListWhat::Service(ServiceId::Fwmark {
                family: Family::Inet6,
                mark: 5
            })
        );
    }

    #[test]
    fn netmasks() {
        let s = svc("-A -t 10.0.0.1:80 -p -M 255.255.255.0");
        assert_eq!(s.netmask, 0xffff_ff00);
        assert_eq!(svc("-A -t 10.0.0.1:80 -p -M 24").netmask, 24);
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -p -M mask.example").netmask,
            0xffff_0000
        );
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -p -M 255.255.255.255").netmask,
            0xffff_ffff
        );
        // Without -p ipvsadm sends the mask anyway (nothing shows it).
        let s = svc("-A -t 10.0.0.1:80 -M 255.255.255.0");
        assert_eq!((s.flags, s.netmask), (0, 0xffff_ff00));
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -p -M bogus"),
            "illegal virtual server persistent mask specified"
        );
        assert_eq!(svc("-A -t [2001:db8::1]:80 -p -M 64").netmask, 64);
        assert_eq!(svc("-A -t [2001:db8::1]:80 -p -M 64abc").netmask, 64);
        assert_eq!(svc("-A -t [2001:db8::1]:80 -p -M 128").netmask, 128);
        assert_eq!(svc("-A -t [2001:db8::1]:80 -p -M 1").netmask, 1);
        for bad in ["0", "129", "-1", "abc", "255.255.255.0"] {
            assert_eq!(
                e2(&format!("-A -t [2001:db8::1]:80 -p -M {bad}")),
                "illegal ipv6 netmask specified"
            );
        }
        // The mask is parsed for the family known when -M is seen.
        assert_eq!(svc("-A -M 64 -t [2001:db8::1]:80 -p").netmask, 128);
        assert_eq!(svc("-A -f 1 -6 -M 64 -p").netmask, 64);
        assert_eq!(svc("-A -f 1 -M 64 -6 -p").netmask, 128);
        assert_eq!(
            svc("-A -M 255.255.0.0 -t 10.0.0.1:80 -p").netmask,
            0xffff_0000
        );
    }

    #[test]
    fn schedulers_and_flags() {
        assert_eq!(svc("-A -t 10.0.0.1:80").scheduler, "wlc");
        assert_eq!(svc("-A -t 10.0.0.1:80 -s RR").scheduler, "RR");
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -s abcdefghijklmnopqrs").scheduler,
            "abcdefghijklmno"
        );
        match pv(&["-A", "-t", "10.0.0.1:80", "-s", ""]) {
            Ok(Command::Apply(Change::AddService(s))) => assert_eq!(s.scheduler, "wlc"),
            other => panic!("{other:?}"),
        }
        let s = svc("-A -u 10.0.0.1:53 -s sh -b sh-fallback,sh-port");
        assert_eq!(s.flags, flags::SH_FALLBACK | flags::SH_PORT);
        assert_eq!(
            svc("-A -u 10.0.0.1:53 -s sh -b sh-port,").flags,
            flags::SH_PORT
        );
        assert_eq!(
            svc("-A -u 10.0.0.1:53 -s sh -b ,,sh-port").flags,
            flags::SH_PORT
        );
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -s mh -b mh-fallback,mh-port").flags,
            flags::MH_FALLBACK | flags::MH_PORT
        );
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -b flag-1,flag-2,flag-3").flags,
            flags::SCHED1 | flags::SCHED2 | flags::SCHED3
        );
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -s sh -b flag-1").flags,
            flags::SCHED1
        );
        assert_eq!(
            svc("-A -t 10.0.0.1:80 -p -s sh -b flag-2").flags,
            flags::PERSISTENT | flags::SCHED2
        );
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -s rr -b sh-port"),
            "incompatible scheduler flag `sh-port'"
        );
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -b sh-fallback"),
            "incompatible scheduler flag `sh-fallback'"
        );
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -s sh -b mh-port"),
            "incompatible scheduler flag `mh-port'"
        );
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -s sh -b sh-port,bogus"),
            "invalid scheduler flag `bogus'"
        );
        assert_eq!(
            e2("-A -t 10.0.0.1:80 -s sh -b bogus,sh-port"),
            "invalid scheduler flag `bogus'"
        );
        // Flags are parsed before the option table is checked.
        assert_eq!(e2("-L -b bogus"), "invalid scheduler flag `bogus'");
        assert_eq!(
            e2("-L -b flag-1"),
            "Illegal 'sched-flags' option with the 'list' command"
        );
        // ... and after the zero port check is not reached.
        assert_eq!(
            e2("-A -t 10.0.0.1 -b bogus"),
            "invalid scheduler flag `bogus'"
        );
        // An empty -b is ignored.
        match pv(&["-A", "-t", "10.0.0.1:80", "-b", ""]) {
            Ok(Command::Apply(Change::AddService(s))) => assert_eq!(s.flags, 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn persistence_engine() {
        assert_eq!(
            svc("-A -u 10.0.0.1:5060 -p --pe sip").pe_name.as_deref(),
            Some("sip")
        );
        assert_eq!(
            svc("-A -t 10.0.0.1:80 --pe sip").pe_name.as_deref(),
            Some("sip")
        );
        match pv(&["-A", "-t", "10.0.0.1:80", "--pe", ""]) {
            Ok(Command::Apply(Change::AddService(s))) => assert_eq!(s.pe_name, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e2("-D -t 10.0.0.1:80 --pe sip"),
            "Illegal 'pe' option with the 'delete-service' command"
        );
    }

    #[test]
    fn service_commands() {
        assert_eq!(
            change("-E -t 10.0.0.1:80"),
            Change::EditService(Service::new(tcp("10.0.0.1", 80)))
        );
        assert_eq!(
            change("-D -t 10.0.0.1:80"),
            Change::DeleteService(tcp("10.0.0.1", 80))
        );
        assert_eq!(change("-D -f 3"), Change::DeleteService(fwm(3)));
        assert_eq!(change("-C"), Change::Flush);
        assert_eq!(change("--clear"), Change::Flush);
        assert_eq!(change("-Z"), Change::Zero(None));
        assert_eq!(change("--zero"), Change::Zero(None));
        assert_eq!(
            change("-Z -t 10.0.0.1:80"),
            Change::Zero(Some(tcp("10.0.0.1", 80)))
        );
        assert_eq!(
            change("-Z -t 10.0.0.1:0"),
            Change::Zero(Some(tcp("10.0.0.1", 0)))
        );
        assert_eq!(
            change("-Z -t 0.0.0.0:80"),
            Change::Zero(Some(tcp("0.0.0.0", 80)))
        );
        assert_eq!(change("-Z -t 0.0.0.0:0"), Change::Zero(None));
        assert_eq!(change("-Z -t [::]:0"), Change::Zero(None));
        assert_eq!(change("-Z -f 1"), Change::Zero(Some(fwm(1))));
        assert_eq!(p("-R"), Ok(Command::Restore));
        assert_eq!(p("--restore"), Ok(Command::Restore));
        assert_eq!(p("-S"), Ok(Command::Save { numeric: false }));
        assert_eq!(p("-S -n"), Ok(Command::Save { numeric: true }));
        assert_eq!(p("--save --numeric"), Ok(Command::Save { numeric: true }));
        let mut s = Service::new(tcp("10.0.0.1", 443));
        s.scheduler = "rr".into();
        s.flags = flags::PERSISTENT;
        s.timeout = 600;
        s.netmask = 0xffff_ff00;
        assert_eq!(
            change("-A -t 10.0.0.1:443 -s rr -p 600 -M 255.255.255.0"),
            Change::AddService(s)
        );
    }

    #[test]
    fn destinations() {
        let (id, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10");
        assert_eq!(id, tcp("10.0.0.1", 80));
        assert_eq!(d, Destination::new(v4("192.168.1.10"), 80));
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3");
        assert_eq!(
            (d.port, d.forward, d.weight),
            (8080, ForwardMethod::Masq, 3)
        );
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -g");
        assert_eq!((d.port, d.forward), (80, ForwardMethod::Route));
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10:8080");
        assert_eq!(d.port, 80);
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -i");
        assert_eq!((d.port, d.forward), (80, ForwardMethod::Tunnel));
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10:http-alt --masquerading");
        assert_eq!(d.port, 8080);
        let (_, d) = dest("-a -t 10.0.0.1:80 -r web.example:8080 -m");
        assert_eq!(d.addr, v4("192.0.2.10"));
        let (id, d) = dest("-a -f 5 -r 192.168.1.20");
        assert_eq!((id, d.port), (fwm(5), 0));
        let (_, d) = dest("-a -f 5 -r 192.168.1.20:8080 -g");
        assert_eq!(d.port, 8080);
        // The real server's default port is the service port known at that point.
        let (_, d) = dest("-a -r 192.168.1.10 -t 10.0.0.1:80 -m");
        assert_eq!(d.port, 0);
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 192.168.1.10 -m");
        assert_eq!(d.port, 80);
        // Service names of the real server need the service protocol first.
        assert_eq!(
            e2("-a -r 192.168.1.10:http -t 10.0.0.1:80"),
            "illegal real server address[:port] specified"
        );
        let (_, d) = dest("-e -t 10.0.0.1:80 -r 192.168.1.10");
        assert_eq!(d, Destination::new(v4("192.168.1.10"), 80));
        assert!(matches!(
            change("-e -t 10.0.0.1:80 -r 1.1.1.1"),
            Change::EditDestination(..)
        ));
        assert!(matches!(
            change("-d -t 10.0.0.1:80 -r 1.1.1.1"),
            Change::DeleteDestination(..)
        ));
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 1.1.1.1 -w 0 -x 100 -y 50");
        assert_eq!((d.weight, d.u_threshold, d.l_threshold), (0, 100, 50));
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 1.1.1.1 -w 2147483647 -x 2147483647 -y 2147483647");
        assert_eq!(d.weight, i32::MAX);
        assert_eq!(d.u_threshold, 2147483647);
        let (_, d) =
            dest("-a -t 10.0.0.1:80 -r 1.1.1.1 --weight 65536 --u-threshold 7 --l-threshold 8");
        assert_eq!((d.weight, d.u_threshold, d.l_threshold), (65536, 7, 8));
        for (opt, what) in [
            ("-w", "weight"),
            ("-x", "u_threshold"),
            ("-y", "l_threshold"),
        ] {
            for bad in ["2147483648", "-1", "abc", "1.5", "99999999999999999999"] {
                assert_eq!(
                    e2(&format!("-a -t 10.0.0.1:80 -r 1.1.1.1 {opt} {bad}")),
                    format!("illegal {what} specified")
                );
            }
        }
        for bad in [
            "[2001:db8:1::1]",
            "999.1.1.1",
            "1.1.1.1:x",
            "80",
            "[::1]:99999",
        ] {
            assert_eq!(
                e2(&format!("-a -t 10.0.0.1:80 -r {bad}")),
                "illegal real server address[:port] specified"
            );
        }
    }

    #[test]
    fn address_families_and_tunnels() {
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r [2001:db8::1]:80"),
            "Different address family is allowed only for tunneling servers"
        );
        assert_eq!(
            e2("-a -t [2001:db8::1]:80 -r 10.0.0.2 -m"),
            "Different address family is allowed only for tunneling servers"
        );
        assert_eq!(
            e2("-a -f 1 -6 -r 10.0.0.2"),
            "Different address family is allowed only for tunneling servers"
        );
        let (_, d) = dest("-a -t 10.0.0.1:80 -r [2001:db8::1]:8080 -i");
        assert_eq!((d.addr, d.port), ("2001:db8::1".parse().unwrap(), 80));
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 2001:db8::1 -i");
        assert_eq!(d.port, 80);
        let (_, d) = dest("-a -t [2001:db8::1]:80 -r [2001:db8::2]:8080 -m");
        assert_eq!(d.port, 8080);
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -m --tun-type gue"),
            "Tunnel options conflict with forward method"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 --tun-csum"),
            "Tunnel options conflict with forward method"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gue"),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gue --tun-port 6080");
        assert_eq!(
            (d.tun_type, d.tun_port, d.tun_flags),
            (TunnelType::Gue, 6080, 0)
        );
        let (_, d) =
            dest("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gue --tun-port 6080 --tun-remcsum");
        assert_eq!(d.tun_flags, tun_flags::REMCSUM);
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gue --tun-port 6080 --tun-csum --tun-remcsum"),
            "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-remcsum --tun-nocsum --tun-type gue --tun-port 1"),
            "The option 'tun-remcsum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-port 5"),
            "Illegal 'tun-port' option with the 'ipip' tunnel type"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type ipip --tun-nocsum"),
            "Illegal 'tun-nocsum' option with the 'ipip' tunnel type"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gre --tun-remcsum"),
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type"
        );
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gre --tun-port 5"),
            "Illegal 'tun-port' option with the 'gre' tunnel type"
        );
        let (_, d) = dest("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gre --tun-csum");
        assert_eq!(
            (d.tun_type, d.tun_flags),
            (TunnelType::Gre, tun_flags::CSUM)
        );
        let (_, d) = dest("-e -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type ipip");
        assert_eq!(d.tun_type, TunnelType::Ipip);
        assert_eq!(
            e2("-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type foo"),
            "illegal tunnel type specified"
        );
        for bad in ["0", "65536", "x"] {
            assert_eq!(
                e2(&format!(
                    "-a -t 10.0.0.1:80 -r 1.1.1.1 -i --tun-type gue --tun-port {bad}"
                )),
                "illegal tunnel port specified"
            );
        }
        assert_eq!(
            e2("-d -t 10.0.0.1:80 -r 1.1.1.1 --tun-type gue"),
            "Illegal 'tun-type' option with the 'delete-server' command"
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            change("--set 1 2 3"),
            Change::SetTimeouts(Timeouts {
                tcp: 1,
                tcp_fin: 2,
                udp: 3
            })
        );
        assert_eq!(
            change("--set 0 0 0"),
            Change::SetTimeouts(Timeouts::default())
        );
        assert_eq!(
            change("--set 2678400 0 0"),
            Change::SetTimeouts(Timeouts {
                tcp: 2678400,
                tcp_fin: 0,
                udp: 0
            })
        );
        assert_eq!(e2("--set 1 2"), "--set option requires 3 timeout values");
        assert_eq!(e2("--set"), "--set option requires 3 timeout values");
        assert_eq!(e2("--set 1 2 3 4"), "unexpected argument 4");
        assert_eq!(
            e2("--set 2147483647 1 1"),
            "invalid timeout value `2147483647' specified"
        );
        assert_eq!(e2("--set 1 x 1"), "invalid timeout value `x' specified");
        assert_eq!(
            e2("--set 1 1 2678401"),
            "invalid timeout value `2678401' specified"
        );
    }

    #[test]
    fn daemons() {
        assert_eq!(
            change("--start-daemon master"),
            Change::StartDaemon(Daemon {
                state: DaemonState::Master,
                mcast_ifn: "eth0".into(),
                sync_id: 0,
                sync_maxlen: 0,
                mcast_group: None,
                mcast_port: 0,
                mcast_ttl: 0,
            })
        );
        assert_eq!(
            change("--start-daemon=backup --mcast-interface dummy0 --syncid 5 --mcast-group 224.0.0.81 --mcast-port 8848 --mcast-ttl 2 --sync-maxlen 1400"),
            Change::StartDaemon(Daemon {
                state: DaemonState::Backup,
                mcast_ifn: "dummy0".into(),
                sync_id: 5,
                sync_maxlen: 1400,
                mcast_group: Some(v4("224.0.0.81")),
                mcast_port: 8848,
                mcast_ttl: 2,
            })
        );
        match change("--start-daemon master --mcast-group ff02::1 --sync-maxlen 65507 --syncid 255 --mcast-ttl 255 --mcast-port 65535") {
            Change::StartDaemon(d) => {
                assert_eq!(d.mcast_group, Some("ff02::1".parse().unwrap()));
                assert_eq!((d.sync_maxlen, d.sync_id, d.mcast_ttl, d.mcast_port), (65507, 255, 255, 65535));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            change("--stop-daemon master"),
            Change::StopDaemon(DaemonState::Master)
        );
        assert_eq!(
            change("--stop-daemon backup --syncid 3"),
            Change::StopDaemon(DaemonState::Backup)
        );
        assert_eq!(
            e2("--start-daemon foo"),
            "illegal start-daemon parameter specified"
        );
        assert_eq!(
            e2("--start-daemon Master"),
            "illegal start-daemon parameter specified"
        );
        assert_eq!(e2("--stop-daemon foo"), "illegal start_daemon specified");
        assert_eq!(
            e2("--start-daemon master --syncid 256"),
            "illegal syncid specified"
        );
        assert_eq!(
            e2("--start-daemon master --syncid -1"),
            "illegal syncid specified"
        );
        assert_eq!(
            e2("--start-daemon master --mcast-group 10.0.0.1"),
            "invalid IPv4 mcast-group `10.0.0.1'"
        );
        assert_eq!(
            e2("--start-daemon master --mcast-group 224.0.0"),
            "invalid IPv4 mcast-group `224.0.0'"
        );
        assert_eq!(
            e2("--start-daemon master --mcast-group 2001:db8::1"),
            "invalid IPv6 mcast-group `2001:db8::1'"
        );
        assert_eq!(
            e2("--start-daemon master --mcast-group ff02::zz"),
            "invalid IPv6 mcast-group `ff02::zz'"
        );
        for (opt, msg, bads) in [
            (
                "--mcast-port",
                "illegal mcast-port specified",
                &["0", "65536", "x"][..],
            ),
            ("--mcast-ttl", "illegal mcast-ttl specified", &["0", "256"]),
            (
                "--sync-maxlen",
                "illegal sync-maxlen specified",
                &["0", "65508"],
            ),
        ] {
            for bad in bads {
                assert_eq!(e2(&format!("--start-daemon master {opt} {bad}")), msg);
            }
        }
        match change("--start-daemon master --mcast-interface averyveryverylonginterfacename") {
            Change::StartDaemon(d) => assert_eq!(d.mcast_ifn, "averyveryverylo"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_variants() {
        assert_eq!(
            list("-L"),
            List {
                what: ListWhat::All,
                flags: ListFlags::default()
            }
        );
        assert_eq!(list("-l").what, ListWhat::All);
        assert_eq!(list("--list").what, ListWhat::All);
        assert_eq!(
            list("-L -t 10.0.0.1:80").what,
            ListWhat::Service(tcp("10.0.0.1", 80))
        );
        assert_eq!(
            list("-L -u 10.0.0.1:53").what,
            ListWhat::Service(udp("10.0.0.1", 53))
        );
        assert_eq!(list("-L -f 5").what, ListWhat::Service(fwm(5)));
        // A listed service may have port 0.
        assert_eq!(
            list("-L -t 10.0.0.1").what,
            ListWhat::Service(tcp("10.0.0.1", 0))
        );
        assert_eq!(list("-L --timeout").what, ListWhat::Timeouts);
        assert_eq!(list("-L --daemon").what, ListWhat::Daemons);
        assert_eq!(list("-L --daemon --syncid 3").what, ListWhat::Daemons);
        assert_eq!(list("-Lc").what, ListWhat::Connections);
        let l = list("-Lc --persistent-conn");
        assert!(l.flags.persistent_conn);
        let l =
            list("-L --stats --rate --exact --nosort --tun-info --thresholds --persistent-conn -n");
        assert_eq!(
            l.flags,
            ListFlags {
                numeric: true,
                stats: true,
                rate: true,
                thresholds: true,
                persistent_conn: true,
                nosort: true,
                exact: true,
                tun_info: true
            }
        );
        assert!(list("-L -X").flags.exact);
        for bad in [
            "-L --timeout --stats",
            "-L --timeout --rate",
            "-L --daemon --thresholds",
            "-Lc --stats",
            "-L --timeout --persistent-conn",
            "-L --daemon --persistent-conn",
        ] {
            assert_eq!(e2(bad), "options conflicts in the list command", "{bad}");
        }
        assert_eq!(list("-L --timeout -n").what, ListWhat::Timeouts);
    }

    #[test]
    fn c_number_parsing() {
        assert_eq!(c_strtol("42"), Some(42));
        assert_eq!(c_strtol(" 42"), Some(42));
        assert_eq!(c_strtol("+42"), Some(42));
        assert_eq!(c_strtol("-42"), Some(-42));
        assert_eq!(c_strtol("42 "), None);
        assert_eq!(c_strtol(""), None);
        assert_eq!(c_strtol("-"), None);
        assert_eq!(c_strtol("0x10"), None);
        assert_eq!(c_strtol("9223372036854775807"), Some(i64::MAX));
        assert_eq!(c_strtol("9223372036854775808"), None);
        assert_eq!(c_strtol("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(c_atoi("64abc"), 64);
        assert_eq!(c_atoi("abc"), 0);
        assert_eq!(c_atoi("4294967360"), 64);
    }

    #[test]
    fn inet_aton_forms() {
        let a = |s: &str| inet_aton(s).map(|x| x.to_string());
        assert_eq!(a("1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(a("10.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.65535").as_deref(), Some("10.0.255.255"));
        assert_eq!(a("24").as_deref(), Some("0.0.0.24"));
        assert_eq!(a("0x7f.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(a("0177.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(a("4294967295").as_deref(), Some("255.255.255.255"));
        assert_eq!(a("1.2.3.4 trailing").as_deref(), Some("1.2.3.4"));
        assert_eq!(a("0").as_deref(), Some("0.0.0.0"));
        for bad in [
            "",
            "4294967296",
            "1.2.3.256",
            "256.1.1.1",
            "1.2.3.4.5",
            "1..2",
            "1.",
            "a",
            "1.2.3.4x",
            "08",
            "0x",
            "1.0x",
            "-1",
            " 1.2.3.4",
            "1.16777216",
        ] {
            assert_eq!(inet_aton(bad), None, "{bad}");
        }
    }

    #[test]
    fn popt_leftovers_and_double_dash() {
        // After "--" everything is an argument.
        assert_eq!(e2("-L -- -n"), "unexpected argument -n");
        // --set collects its values from anywhere on the line.
        assert_eq!(
            change("--set 5 -- 6 7"),
            Change::SetTimeouts(Timeouts {
                tcp: 5,
                tcp_fin: 6,
                udp: 7
            })
        );
    }
}
