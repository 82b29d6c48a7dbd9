//! The userspace IPVS backend: the control protocol of the forwarding daemon `ipvsd` (the one
//! place that defines its wire format; the daemon uses these types too) and the client
//! [`UserspaceBackend`].
//!
//! # Protocol, version 1
//!
//! A UNIX stream socket, by default [`DEFAULT_SOCKET`] (`/run/ipvsd.sock`; the environment
//! variable [`SOCKET_ENV`] names another). The daemon creates it with mode 0600 and accepts only
//! peers with its own user id (root in production), checked with `SO_PEERCRED`.
//!
//! The client writes requests, each one line of JSON ending in `\n`:
//!
//! ```text
//! {"v":1,"req":{"op":"info"}}
//! {"v":1,"req":{"op":"apply","changes":[{"AddService":{...}}]}}
//! ```
//!
//! and the daemon answers every request, in order, with one line:
//!
//! ```text
//! {"v":1,"resp":{"r":"info","info":{"version":66049,"conn_tab_size":4096}}}
//! {"v":1,"resp":{"r":"error","errno":3,"detail":null}}
//! ```
//!
//! `v` is [`PROTOCOL_VERSION`]; a daemon answers a request of another version with an `error`
//! (errno `EPROTO`) and keeps the connection. Errors carry the errno the kernel would have
//! returned for the same operation, so that the client's [`Error`] prints ipvsadm's texts
//! ("No such service", ...); `detail` is a text for errors the kernel does not have (a
//! forwarding method the daemon cannot serve). A line longer than [`MAX_REQUEST`] bytes, or one
//! that is not valid UTF-8 JSON of a known request, is answered with an `error` (EINVAL, with
//! the reason in `detail`); an overlong line also closes the connection.
//!
//! Requests and their answers:
//!
//! | request | answer |
//! |---|---|
//! | `hello` | `hello` {protocol, daemon, threads} |
//! | `info` | `info` {info} |
//! | `services` | `services` {services} |
//! | `service` {id} | `service` {service} or error ESRCH |
//! | `destinations` {id} | `destinations` {destinations} or error ESRCH |
//! | `table` | `table` {entries} (every service with its destinations) |
//! | `timeouts` | `timeouts` {timeouts} |
//! | `daemons` | `daemons` {daemons} |
//! | `connections` | `connections` {connections} |
//! | `apply` {changes} | `applied` {results: one `null` (done) or {errno, detail} per change} |
//!
//! The JSON forms of services, destinations, changes etc. are serde's of [`crate::model`] and
//! [`Change`] (addresses as text).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Change, ServiceEntry};
use crate::error::{self, Error, Operation, Result};
use crate::model::*;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Where the daemon listens unless [`SOCKET_ENV`] says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ipvsd.sock";
/// The environment variable naming the control socket.
pub const SOCKET_ENV: &str = "IPVSD_SOCKET";
/// The longest request line a daemon accepts.
pub const MAX_REQUEST: usize = 64 << 20;
/// The longest answer line a client accepts.
pub const MAX_RESPONSE: usize = 1 << 30;
/// `EPROTO`: the answer to a request of another protocol version.
pub const EPROTO: i32 = 71;
/// `EPROTONOSUPPORT`: the answer to a forwarding method the daemon cannot serve.
pub const EPROTONOSUPPORT: i32 = 93;

/// The control socket: `$IPVSD_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Hello,
    Info,
    Services,
    Service { id: ServiceId },
    Destinations { id: ServiceId },
    Table,
    Timeouts,
    Daemons,
    Connections,
    Apply { changes: Vec<Change> },
}

/// A failed operation on the wire: the kernel's errno for it, and a text when the kernel has
/// none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub errno: i32,
    pub detail: Option<String>,
}

impl WireError {
    pub fn new(errno: i32) -> WireError {
        WireError {
            errno,
            detail: None,
        }
    }

    pub fn with_detail(errno: i32, detail: impl Into<String>) -> WireError {
        WireError {
            errno,
            detail: Some(detail.into()),
        }
    }

    /// The error as the client reports it for `operation`.
    pub fn into_error(self, operation: Operation) -> Error {
        Error {
            operation,
            errno: self.errno,
            detail: self.detail,
        }
    }
}

/// The daemon's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Response {
    Error {
        errno: i32,
        detail: Option<String>,
    },
    Hello {
        protocol: u32,
        daemon: String,
        threads: u32,
    },
    Info {
        info: Info,
    },
    Services {
        services: Vec<Service>,
    },
    Service {
        service: Service,
    },
    Destinations {
        destinations: Vec<Destination>,
    },
    Table {
        entries: Vec<ServiceEntry>,
    },
    Timeouts {
        timeouts: Timeouts,
    },
    Daemons {
        daemons: Vec<Daemon>,
    },
    Connections {
        connections: Vec<Connection>,
    },
    Applied {
        results: Vec<Option<WireError>>,
    },
}

impl Response {
    pub fn error(e: WireError) -> Response {
        Response::Error {
            errno: e.errno,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RequestLine {
    v: u32,
    req: Request,
}

#[derive(Serialize)]
struct RequestLineRef<'a> {
    v: u32,
    req: &'a Request,
}

#[derive(Serialize, Deserialize)]
struct ResponseLine {
    v: u32,
    resp: Response,
}

#[derive(Serialize)]
struct ResponseLineRef<'a> {
    v: u32,
    resp: &'a Response,
}

/// Only the version, to answer a request of another version in a way it can read.
#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// One request as a line (with its `\n`).
pub fn encode_request(req: &Request) -> String {
    let mut s = serde_json::to_string(&RequestLineRef {
        v: PROTOCOL_VERSION,
        req,
    })
    .expect("requests always serialise");
    s.push('\n');
    s
}

/// One answer as a line (with its `\n`).
pub fn encode_response(resp: &Response) -> String {
    let mut s = serde_json::to_string(&ResponseLineRef {
        v: PROTOCOL_VERSION,
        resp,
    })
    .expect("answers always serialise");
    s.push('\n');
    s
}

/// Reads one request line (without or with its `\n`); the error to answer otherwise.
pub fn decode_request(line: &[u8]) -> std::result::Result<Request, WireError> {
    let line = trim_newline(line);
    match serde_json::from_slice::<RequestLine>(line) {
        Ok(r) if r.v == PROTOCOL_VERSION => Ok(r.req),
        Ok(r) => Err(version_error(r.v)),
        Err(e) => match serde_json::from_slice::<VersionOnly>(line) {
            Ok(v) if v.v != PROTOCOL_VERSION => Err(version_error(v.v)),
            _ => Err(WireError::with_detail(
                error::EINVAL,
                format!("ipvsd: bad request: {e}"),
            )),
        },
    }
}

fn version_error(v: u32) -> WireError {
    WireError::with_detail(
        EPROTO,
        format!(
            "ipvsd: protocol version {v} not supported (this daemon speaks {PROTOCOL_VERSION})"
        ),
    )
}

/// Reads one answer line.
pub fn decode_response(line: &[u8]) -> std::result::Result<Response, String> {
    let r: ResponseLine =
        serde_json::from_slice(trim_newline(line)).map_err(|e| format!("bad answer: {e}"))?;
    if r.v != PROTOCOL_VERSION {
        return Err(format!(
            "answer of protocol version {} (expected {PROTOCOL_VERSION})",
            r.v
        ));
    }
    Ok(r.resp)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The operation a change is (for the texts of its errors).
pub fn change_operation(change: &Change) -> Operation {
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

/// The client: one connection to the daemon, one request at a time.
pub struct UserspaceBackend {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    daemon: String,
    buf: Vec<u8>,
}

fn io_error(op: Operation, path: &Path, e: &std::io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(error::EIO);
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    Error {
        operation: op,
        errno,
        detail: Some(format!(
            "userspace IPVS (ipvsd, {}): {text}",
            path.display()
        )),
    }
}

impl UserspaceBackend {
    /// Connects to the daemon at `path` and checks that it speaks this protocol.
    pub fn connect(path: &Path) -> Result<UserspaceBackend> {
        let op = Operation::Init;
        let stream = UnixStream::connect(path).map_err(|e| io_error(op, path, &e))?;
        let writer = stream.try_clone().map_err(|e| io_error(op, path, &e))?;
        let mut b = UserspaceBackend {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer,
            daemon: String::new(),
            buf: Vec::new(),
        };
        match b.call(&Request::Hello, op)? {
            Response::Hello {
                protocol, daemon, ..
            } if protocol == PROTOCOL_VERSION => {
                b.daemon = daemon;
                Ok(b)
            }
            other => Err(b.unexpected(op, &other)),
        }
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unexpected(&self, op: Operation, r: &Response) -> Error {
        Error::decode(
            op,
            format!(
                "userspace IPVS (ipvsd, {}): unexpected answer {r:?}",
                self.path.display()
            ),
        )
    }

    /// Sends one request and reads its answer; an `error` answer becomes `Err`.
    fn call(&mut self, req: &Request, op: Operation) -> Result<Response> {
        let line = encode_request(req);
        let path = self.path.clone();
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| io_error(op, &path, &e))?;
        self.buf.clear();
        let n = (&mut self.reader)
            .take(MAX_RESPONSE as u64)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| io_error(op, &path, &e))?;
        if n == 0 || self.buf.last() != Some(&b'\n') {
            return Err(Error {
                operation: op,
                errno: error::EIO,
                detail: Some(format!(
                    "userspace IPVS (ipvsd, {}): the daemon closed the connection",
                    path.display()
                )),
            });
        }
        match decode_response(&self.buf) {
            Ok(Response::Error { errno, detail }) => Err(Error {
                operation: op,
                errno,
                detail,
            }),
            Ok(r) => Ok(r),
            Err(e) => Err(Error::decode(
                op,
                format!("userspace IPVS (ipvsd, {}): {e}", path.display()),
            )),
        }
    }
}

impl Backend for UserspaceBackend {
    fn info(&mut self) -> Result<Info> {
        let op = Operation::GetInfo;
        match self.call(&Request::Info, op)? {
            Response::Info { info } => Ok(info),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn services(&mut self) -> Result<Vec<Service>> {
        let op = Operation::GetServices;
        match self.call(&Request::Services, op)? {
            Response::Services { services } => Ok(services),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn service(&mut self, id: &ServiceId) -> Result<Service> {
        let op = Operation::GetService;
        match self.call(&Request::Service { id: *id }, op)? {
            Response::Service { service } => Ok(service),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>> {
        let op = Operation::GetDestinations;
        match self.call(&Request::Destinations { id: *id }, op)? {
            Response::Destinations { destinations } => Ok(destinations),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn timeouts(&mut self) -> Result<Timeouts> {
        let op = Operation::GetTimeouts;
        match self.call(&Request::Timeouts, op)? {
            Response::Timeouts { timeouts } => Ok(timeouts),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn daemons(&mut self) -> Result<Vec<Daemon>> {
        let op = Operation::GetDaemons;
        match self.call(&Request::Daemons, op)? {
            Response::Daemons { daemons } => Ok(daemons),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn apply(&mut self, change: &Change) -> Result<()> {
        self.apply_all(std::slice::from_ref(change))
            .pop()
            .unwrap_or(Ok(()))
    }

    fn apply_all(&mut self, changes: &[Change]) -> Vec<Result<()>> {
        if changes.is_empty() {
            return Vec::new();
        }
        let op = change_operation(&changes[0]);
        let req = Request::Apply {
            changes: changes.to_vec(),
        };
        match self.call(&req, op) {
            Ok(Response::Applied { results }) if results.len() == changes.len() => results
                .into_iter()
                .zip(changes)
                .map(|(r, c)| match r {
                    None => Ok(()),
                    Some(e) => Err(e.into_error(change_operation(c))),
                })
                .collect(),
            Ok(r) => {
                let e = self.unexpected(op, &r);
                changes
                    .iter()
                    .map(|c| {
                        Err(Error {
                            operation: change_operation(c),
                            ..e.clone()
                        })
                    })
                    .collect()
            }
            Err(e) => changes
                .iter()
                .map(|c| {
                    Err(Error {
                        operation: change_operation(c),
                        ..e.clone()
                    })
                })
                .collect(),
        }
    }

    fn table(&mut self) -> Result<Vec<ServiceEntry>> {
        let op = Operation::GetServices;
        match self.call(&Request::Table, op)? {
            Response::Table { entries } => Ok(entries),
            r => Err(self.unexpected(op, &r)),
        }
    }

    fn connections(&mut self) -> Option<Result<Vec<Connection>>> {
        let op = Operation::GetServices;
        Some(match self.call(&Request::Connections, op) {
            Ok(Response::Connections { connections }) => Ok(connections),
            Ok(r) => Err(self.unexpected(op, &r)),
            Err(e) => Err(e),
        })
    }

    fn description(&mut self) -> Option<String> {
        Some(format!(
            "userspace IPVS backend: {} at {}",
            self.daemon,
            self.path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn tcp() -> ServiceId {
        ServiceId::Address {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        }
    }

    #[test]
    fn requests_round_trip() {
        let mut d = Destination::new("192.0.2.1".parse::<IpAddr>().unwrap(), 8080);
        d.forward = ForwardMethod::Masq;
        let reqs = vec![
            Request::Hello,
            Request::Info,
            Request::Service { id: tcp() },
            Request::Destinations {
                id: ServiceId::Fwmark {
                    family: Family::Inet6,
                    mark: 7,
                },
            },
            Request::Apply {
                changes: vec![
                    Change::AddService(Service::new(tcp())),
                    Change::AddDestination(tcp(), d),
                    Change::Zero(None),
                    Change::SetTimeouts(Timeouts {
                        tcp: 1,
                        tcp_fin: 2,
                        udp: 3,
                    }),
                ],
            },
        ];
        for r in reqs {
            let line = encode_request(&r);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(decode_request(line.as_bytes()).unwrap(), r);
        }
        assert_eq!(
            encode_request(&Request::Info),
            "{\"v\":1,\"req\":{\"op\":\"info\"}}\n"
        );
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::Applied {
            results: vec![None, Some(WireError::new(error::ESRCH))],
        };
        assert_eq!(decode_response(encode_response(&r).as_bytes()).unwrap(), r);
        let r = Response::Info {
            info: Info {
                version: 0x010201,
                conn_tab_size: 4096,
            },
        };
        assert_eq!(
            encode_response(&r),
            "{\"v\":1,\"resp\":{\"r\":\"info\",\"info\":{\"version\":66049,\"conn_tab_size\":4096}}}\n"
        );
    }

    #[test]
    fn bad_requests() {
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"{\"v\":1}",
            b"{\"v\":1,\"req\":{\"op\":\"nope\"}}",
            b"{\"v\":1,\"req\":{\"op\":\"service\",\"id\":{}}}",
            b"\xff\xfe",
        ] {
            let e = decode_request(bad).unwrap_err();
            assert_eq!(e.errno, error::EINVAL, "{bad:?}");
            assert!(e.detail.unwrap().starts_with("ipvsd: bad request"));
        }
        let e = decode_request(b"{\"v\":2,\"req\":{\"op\":\"info\"}}").unwrap_err();
        assert_eq!(e.errno, EPROTO);
        let e = decode_request(b"{\"v\":9,\"whatever\":true}").unwrap_err();
        assert_eq!(e.errno, EPROTO);
    }

    #[test]
    fn wire_errors_print_ipvsadm_texts() {
        let e = WireError::new(error::ESRCH).into_error(Operation::AddDestination);
        assert_eq!(e.message(), "Service not defined");
        let e = WireError::with_detail(EPROTONOSUPPORT, "no direct routing")
            .into_error(Operation::AddDestination);
        assert_eq!(e.message(), "no direct routing");
    }

    #[test]
    fn proc_text_as_the_kernel() {
        let c = Connection {
            protocol: 6,
            caddr: "10.0.0.2".parse().unwrap(),
            cport: 54321,
            vaddr: "207.175.44.110".parse().unwrap(),
            vport: 8080,
            daddr: "172.16.0.2".parse().unwrap(),
            dport: 8080,
            state: "ESTABLISHED".into(),
            expires: 899,
            pe_name: None,
            pe_data: None,
        };
        let t = proc_conn_text(&[c]);
        assert_eq!(
            t,
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
             TCP 0A000002 D431 CFAF2C6E 1F90 AC100002 1F90 ESTABLISHED     899\n"
        );
        let c6 = Connection {
            protocol: 17,
            caddr: "2001:db8::1".parse().unwrap(),
            cport: 53,
            vaddr: "2001:db8::2".parse().unwrap(),
            vport: 53,
            daddr: "2001:db8::3".parse().unwrap(),
            dport: 53,
            state: "UDP".into(),
            expires: 5,
            pe_name: None,
            pe_data: None,
        };
        let t = proc_conn_text(&[c6]);
        assert!(t.ends_with(
            "UDP 2001:0db8:0000:0000:0000:0000:0000:0001 0035 2001:0db8:0000:0000:0000:0000:0000:0002 0035 2001:0db8:0000:0000:0000:0000:0000:0003 0035 UDP               5\n"
        ), "{t}");
    }
}
