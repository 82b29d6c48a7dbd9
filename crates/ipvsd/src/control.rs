//! The daemon's control side: the UNIX control socket (protocol in [`ipvs::userspace`]), the
//! table it owns, the listeners it hands to the workers, and the clocks (the 1-second
//! housekeeping and the estimator's 2-second tick). One thread, one `poll`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipvs::error::{EINVAL, EPERM};
use ipvs::userspace::{
    decode_request, encode_response, Request, Response, WireError, MAX_REQUEST, PROTOCOL_VERSION,
};
use ipvs::{Protocol, ServiceId};

use crate::engine::{Clock, Cmd, Config, Engine};
use crate::sys;
use crate::table::{Effect, Host, Service, Table, INFO};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub engine: Config,
}

/// The name and version `hello` answers.
pub fn daemon_name() -> String {
    format!("ipvsd {}", env!("CARGO_PKG_VERSION"))
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// The table, the engine and what binds them.
pub struct Daemon {
    table: Table,
    engine: Engine,
    clock: Clock,
    /// Services whose sockets could not be bound yet (the address or port is taken): retried
    /// every second.
    pending: HashMap<u64, Arc<Service>>,
}

impl Daemon {
    pub fn new(cfg: Config, host: Box<dyn Host + Send>) -> io::Result<Daemon> {
        let table = Table::new(host);
        let clock = Clock::new();
        let engine = Engine::start(cfg, table.timeouts.clone(), clock)?;
        Ok(Daemon {
            table,
            engine,
            clock,
            pending: HashMap::new(),
        })
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        let missing = || Response::error(WireError::new(ipvs::error::ESRCH));
        match req {
            Request::Hello => Response::Hello {
                protocol: PROTOCOL_VERSION,
                daemon: daemon_name(),
                threads: self.engine.threads() as u32,
            },
            Request::Info => Response::Info { info: INFO },
            Request::Services => Response::Services {
                services: self.table.services().iter().map(|s| s.listing()).collect(),
            },
            Request::Service { id } => match self.table.find(&id) {
                Some(s) => Response::Service {
                    service: s.listing(),
                },
                None => missing(),
            },
            Request::Destinations { id } => match self.table.find(&id) {
                Some(s) => Response::Destinations {
                    destinations: s.dest_listing(true),
                },
                None => missing(),
            },
            Request::Table => Response::Table {
                entries: self.table.table(true),
            },
            Request::Timeouts => Response::Timeouts {
                timeouts: self.table.timeouts(),
            },
            Request::Daemons => Response::Daemons {
                daemons: self.table.daemons(),
            },
            Request::Connections => {
                let mut connections = self.engine.snapshot();
                connections.extend(self.table.template_listing(self.clock.now_ms()));
                Response::Connections { connections }
            }
            Request::Apply { changes } => {
                let mut results = Vec::with_capacity(changes.len());
                for c in &changes {
                    match self.table.apply(c) {
                        Ok(effect) => {
                            self.effect(effect);
                            results.push(None);
                        }
                        Err(e) => results.push(Some(e)),
                    }
                }
                Response::Applied { results }
            }
        }
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::None => {}
            Effect::Added(svc) => {
                if svc.forwardable() {
                    if let Err(err) = self.listen(&svc) {
                        eprintln!(
                            "ipvsd: {}: cannot listen yet ({err}); retrying every second",
                            describe(&svc.id)
                        );
                        self.pending.insert(svc.uid, svc);
                    }
                } else {
                    eprintln!(
                        "ipvsd: {}: kept in the table, but not forwarded (only TCP and UDP \
                         services with a port can be proxied)",
                        describe(&svc.id)
                    );
                }
            }
            Effect::Removed(svcs) => {
                for s in svcs {
                    self.pending.remove(&s.uid);
                    self.engine.unlisten(s.uid);
                }
            }
        }
    }

    /// One socket per worker, all bound to the virtual address and port (SO_REUSEPORT).
    fn listen(&mut self, svc: &Arc<Service>) -> io::Result<()> {
        let ServiceId::Address {
            protocol,
            addr,
            port,
        } = svc.id
        else {
            return Ok(());
        };
        let udp = protocol == Protocol::Udp;
        let sa = std::net::SocketAddr::new(addr, port);
        let fds: Vec<OwnedFd> = (0..self.engine.threads())
            .map(|_| sys::reuseport_socket(&sa, udp))
            .collect::<io::Result<_>>()?;
        for (i, fd) in fds.into_iter().enumerate() {
            self.engine.send(
                i,
                Cmd::Listen {
                    svc: svc.clone(),
                    fd,
                    udp,
                },
            );
        }
        Ok(())
    }

    /// The 1-second housekeeping.
    pub fn periodic(&mut self) {
        let now = self.clock.now_ms();
        self.table.periodic(now);
        let pending: Vec<Arc<Service>> = self.pending.values().cloned().collect();
        for svc in pending {
            if self.listen(&svc).is_ok() {
                eprintln!("ipvsd: {}: listening", describe(&svc.id));
                self.pending.remove(&svc.uid);
            }
        }
    }

    /// The estimator's 2-second tick.
    pub fn tick(&mut self) {
        self.table.tick();
    }

    pub fn stop(&mut self) {
        self.engine.stop();
    }
}

fn describe(id: &ServiceId) -> String {
    match id {
        ServiceId::Address {
            protocol,
            addr,
            port,
        } => match addr {
            std::net::IpAddr::V6(a) => format!("{} [{a}]:{port}", protocol.name()),
            a => format!("{} {a}:{port}", protocol.name()),
        },
        ServiceId::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// Binds the control socket: mode 0600, refusing to replace a live daemon's socket.
pub fn bind_control(path: &Path) -> io::Result<UnixListener> {
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another ipvsd is listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = l?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves the control socket until SIGTERM/SIGINT (from `signals`, a signalfd) or until
/// `should_stop` says so; removes the socket at the end.
pub fn serve(
    mut daemon: Daemon,
    listener: UnixListener,
    path: &Path,
    signals: Option<OwnedFd>,
) -> io::Result<()> {
    let my_uid = sys::geteuid();
    let mut clients: Vec<Client> = Vec::new();
    let clock = daemon.clock;
    let mut next_tick = clock.now_ms() + 1000;
    let mut next_est = clock.now_ms() + 2000;
    let mut buf = vec![0u8; 64 * 1024];
    'main: loop {
        let mut fds: Vec<RawFd> = Vec::with_capacity(clients.len() + 2);
        fds.push(listener.as_raw_fd());
        if let Some(s) = &signals {
            fds.push(s.as_raw_fd());
        }
        let first_client = fds.len();
        fds.extend(clients.iter().map(|c| c.stream.as_raw_fd()));
        let now = clock.now_ms();
        let wait = next_tick.min(next_est).saturating_sub(now).min(1000) as i32;
        let ready = sys::poll_readable(&fds, wait);
        let mut closed = Vec::new();
        for &i in &ready {
            if i == 0 {
                while let Ok((stream, _)) = listener.accept() {
                    let uid = sys::peer_uid(stream.as_raw_fd());
                    if uid != Some(0) && uid != Some(my_uid) {
                        let mut s = stream;
                        let _ = s.write_all(
                            encode_response(&Response::error(WireError::with_detail(
                                EPERM,
                                "ipvsd: only root may use the control socket",
                            )))
                            .as_bytes(),
                        );
                        continue;
                    }
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
                    if clients.len() >= 256 {
                        continue;
                    }
                    clients.push(Client {
                        stream,
                        buf: Vec::new(),
                    });
                }
            } else if i < first_client {
                if let Some(s) = &signals {
                    match sys::read_signal(s.as_raw_fd()) {
                        Some(libc::SIGHUP) | None => {}
                        Some(sig) => {
                            eprintln!("ipvsd: signal {sig}, stopping");
                            break 'main;
                        }
                    }
                }
            } else {
                let ci = i - first_client;
                if !serve_client(&mut daemon, &mut clients[ci], &mut buf) {
                    closed.push(ci);
                }
            }
        }
        for ci in closed.into_iter().rev() {
            clients.remove(ci);
        }
        let now = clock.now_ms();
        if now >= next_tick {
            daemon.periodic();
            next_tick = now + 1000;
        }
        if now >= next_est {
            daemon.tick();
            next_est += 2000;
            if next_est <= now {
                next_est = now + 2000;
            }
        }
    }
    daemon.stop();
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Reads what a client sent and answers its complete lines; `false` when it is gone.
fn serve_client(daemon: &mut Daemon, c: &mut Client, buf: &mut [u8]) -> bool {
    let n = match c.stream.read(buf) {
        Ok(0) | Err(_) => return false,
        Ok(n) => n,
    };
    let old_len = c.buf.len();
    c.buf.extend_from_slice(&buf[..n]);
    // Only the new bytes can hold the first newline.
    let mut from = old_len;
    while let Some(off) = c.buf[from..].iter().position(|&b| b == b'\n') {
        let pos = from + off;
        let line: Vec<u8> = c.buf.drain(..=pos).collect();
        from = 0;
        let resp = match decode_request(&line) {
            Ok(req) => daemon.handle(req),
            Err(e) => Response::error(e),
        };
        if c.stream
            .write_all(encode_response(&resp).as_bytes())
            .is_err()
        {
            return false;
        }
    }
    if c.buf.len() > MAX_REQUEST {
        let _ = c.stream.write_all(
            encode_response(&Response::error(WireError::with_detail(
                EINVAL,
                format!("ipvsd: bad request: longer than {MAX_REQUEST} bytes"),
            )))
            .as_bytes(),
        );
        return false;
    }
    true
}
