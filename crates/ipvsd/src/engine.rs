//! The forwarding engine: worker threads, each with its own epoll loop, its own listening socket
//! per virtual service (a `SO_REUSEPORT` group: the kernel spreads new connections over the
//! workers) and the connections it accepted.
//!
//! TCP (masquerading = proxying): a client connection is accepted, scheduled
//! ([`Service::schedule`]), and a connection to the real server is opened; bytes are relayed
//! both ways with `splice(2)` through pipes taken from a per-thread pool (zero copy: pages move
//! from one socket to the other; an idle connection holds no pipe). Half-closes are passed on
//! (`shutdown(SHUT_WR)`), resets are passed on as resets. The connection's IPVS state follows
//! the kernel's TCP state table ([`crate::tcpstate`]); after both sides closed it stays listed
//! (and counted as inactive) for the state's timeout, as the kernel's connection entry does.
//!
//! UDP: datagrams from a client go through a connected socket to the scheduled real server;
//! its replies go back from the virtual address. A flow lives for the UDP timeout after its
//! last datagram. With one-packet scheduling (`-o`) every datagram is scheduled on its own.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipvs::{flags, Connection, ServiceId, Timeouts};

use crate::dest::{Binding, Dest};
use crate::sys::{self, Epoll, EventFd, Pipe, TcpCounts};
use crate::table::{Controlled, Service, SharedTimeouts};
use crate::tcpstate::{segments, Event, State};

/// Milliseconds since the daemon started (monotonic).
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Engine settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Worker threads.
    pub threads: usize,
    /// Size of each splice pipe.
    pub pipe_size: usize,
}

/// A request to a worker.
pub enum Cmd {
    /// Serve this listening (TCP) or bound (UDP) socket of a service.
    Listen {
        svc: Arc<Service>,
        fd: OwnedFd,
        udp: bool,
    },
    /// Stop accepting for the service with this uid (its connections go on).
    Unlisten {
        uid: u64,
    },
    /// The worker's connections as `ipvsadm -c` lists them.
    Snapshot(Sender<Vec<Connection>>),
    /// A connection another worker accepted and scheduled, for this one to serve (balance).
    Adopt(Box<Adopt>),
    Stop,
}

/// An accepted, scheduled client connection handed to a less busy worker.
pub struct Adopt {
    svc: Arc<Service>,
    vaddr: IpAddr,
    vport: u16,
    client: SocketAddr,
    fd: OwnedFd,
    nc: crate::table::NewConn,
}

/// How to reach a worker.
struct Peer {
    tx: Sender<Cmd>,
    wake: Arc<EventFd>,
}

struct WorkerHandle {
    tx: Sender<Cmd>,
    wake: Arc<EventFd>,
    join: Option<JoinHandle<()>>,
}

/// The running workers.
pub struct Engine {
    workers: Vec<WorkerHandle>,
}

impl Engine {
    pub fn start(cfg: Config, timeouts: Arc<SharedTimeouts>, clock: Clock) -> io::Result<Engine> {
        let n = cfg.threads.max(1);
        let mut parts = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..n {
            let (tx, rx) = mpsc::channel();
            let wake = Arc::new(EventFd::new()?);
            let epoll = Epoll::new()?;
            epoll.add(wake.raw(), EV_IN, token(K_WAKE, 0, 0))?;
            peers.push(Peer {
                tx,
                wake: wake.clone(),
            });
            parts.push((rx, wake, epoll));
        }
        let peers = Arc::new(peers);
        let loads: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
        let mut workers = Vec::new();
        for (i, (rx, wake, epoll)) in parts.into_iter().enumerate() {
            let (w_wake, w_timeouts) = (wake.clone(), timeouts.clone());
            let (w_peers, w_loads) = (peers.clone(), loads.clone());
            let join = std::thread::Builder::new()
                .name(format!("ipvsd-w{i}"))
                .spawn(move || {
                    let mut w = Worker::new(epoll, rx, w_wake, cfg, w_timeouts, clock);
                    w.id = i;
                    w.peers = w_peers;
                    w.loads = w_loads;
                    w.run()
                })?;
            workers.push(WorkerHandle {
                tx: peers[i].tx.clone(),
                wake,
                join: Some(join),
            });
        }
        Ok(Engine { workers })
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Sends a command to worker `i`.
    pub fn send(&self, i: usize, cmd: Cmd) {
        let w = &self.workers[i];
        if w.tx.send(cmd).is_ok() {
            w.wake.wake();
        }
    }

    pub fn unlisten(&self, uid: u64) {
        for i in 0..self.workers.len() {
            self.send(i, Cmd::Unlisten { uid });
        }
    }

    /// Every worker's connections.
    pub fn snapshot(&self) -> Vec<Connection> {
        let mut out = Vec::new();
        let mut rxs = Vec::new();
        for i in 0..self.workers.len() {
            let (tx, rx) = mpsc::channel();
            self.send(i, Cmd::Snapshot(tx));
            rxs.push(rx);
        }
        for rx in rxs {
            if let Ok(v) = rx.recv_timeout(Duration::from_secs(5)) {
                out.extend(v);
            }
        }
        out
    }

    pub fn stop(&mut self) {
        for i in 0..self.workers.len() {
            self.send(i, Cmd::Stop);
        }
        for w in &mut self.workers {
            if let Some(j) = w.join.take() {
                let _ = j.join();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------- slab

struct Slab<T> {
    items: Vec<(u32, Option<T>)>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    fn insert(&mut self, v: T) -> (usize, u32) {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                let e = &mut self.items[i];
                e.0 = e.0.wrapping_add(1) & 0x0fff_ffff;
                e.1 = Some(v);
                (i, e.0)
            }
            None => {
                self.items.push((0, Some(v)));
                (self.items.len() - 1, 0)
            }
        }
    }

    fn get_mut(&mut self, i: usize, gen: u32) -> Option<&mut T> {
        match self.items.get_mut(i) {
            Some((g, Some(v))) if *g == gen => Some(v),
            _ => None,
        }
    }

    fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.items.get_mut(i)?.1.take();
        if v.is_some() {
            self.free.push(i);
            self.len -= 1;
        }
        v
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.as_ref().map(|v| (i, v)))
    }

    fn indexes(&self) -> Vec<usize> {
        self.iter().map(|(i, _)| i).collect()
    }
}

// ---------------------------------------------------------------------------------- tokens

const K_WAKE: u64 = 1;
const K_TLISTEN: u64 = 2;
const K_ULISTEN: u64 = 3;
const K_CLIENT: u64 = 4;
const K_SERVER: u64 = 5;
const K_UPSTREAM: u64 = 6;

fn token(kind: u64, idx: usize, gen: u32) -> u64 {
    kind << 60 | (gen as u64 & 0x0fff_ffff) << 32 | idx as u64
}

fn untoken(t: u64) -> (u64, usize, u32) {
    (
        t >> 60,
        (t & 0xffff_ffff) as usize,
        ((t >> 32) & 0x0fff_ffff) as u32,
    )
}

const EV_IN: u32 = libc::EPOLLIN as u32;
const EV_OUT: u32 = libc::EPOLLOUT as u32;
const EV_ERR: u32 = libc::EPOLLERR as u32;
const EV_HUP: u32 = libc::EPOLLHUP as u32;
const EV_RDHUP: u32 = libc::EPOLLRDHUP as u32;
const EV_ET: u32 = libc::EPOLLET as u32;

// ---------------------------------------------------------------------------------- pipes

struct PipePool {
    free: Vec<Pipe>,
    size: usize,
}

impl PipePool {
    fn get(&mut self) -> io::Result<Pipe> {
        match self.free.pop() {
            Some(p) => Ok(p),
            None => Pipe::new(self.size),
        }
    }

    fn put(&mut self, p: Pipe) {
        if self.free.len() < 4096 {
            self.free.push(p);
        }
    }
}

/// The size of the copy buffer, and the read that switches a direction to splice: a read that
/// fills it means bulk data (HAProxy's `splice-auto` rule, with its default buffer size).
const COPY_BUF: usize = 16 * 1024;
/// What one splice from a socket asks for: a pipe holds 16 page references, each up to a
/// socket fragment's size, so its byte capacity is not the nominal pipe size.
const SPLICE_READ: usize = 4 << 20;

/// The per-thread relaying resources: the pipe pool and the copy buffer.
struct Io {
    pool: PipePool,
    scratch: Vec<u8>,
}

/// One direction of a TCP relay. Small transfers are copied (`recv`/`send` through the
/// thread's buffer: for a request or response of a few hundred bytes that is cheaper than two
/// splices); once a read fills the buffer, the direction moves to zero-copy `splice(2)`
/// through a pipe from the pool. An idle direction holds neither a buffer nor a pipe.
#[derive(Default)]
struct Half {
    /// Bytes read but not yet written in copy mode (only when the destination was full).
    buf: Vec<u8>,
    splice: bool,
    pipe: Option<Pipe>,
    /// Bytes in the pipe, not yet written.
    pending: usize,
    /// The source sent FIN.
    eof: bool,
    /// FIN passed on to the destination.
    shut: bool,
}

impl Half {
    fn done(&self) -> bool {
        self.eof && self.shut && self.pending == 0 && self.buf.is_empty()
    }
}

/// What went wrong while relaying.
enum PumpErr {
    /// Reading the source failed (it reset).
    Src,
    /// Writing the destination failed (it reset or went away).
    Dst,
}

fn eagain(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

/// Moves what can be moved from `src` to `dst`. Returns the bytes read, the bytes written and
/// whether the source's end of file was seen now.
///
/// `src_hup`: epoll reported the source's FIN (EPOLLRDHUP) or hang-up. A copy that reads less
/// than it asked for emptied the socket (new data would raise a new edge), so it does not ask
/// again for an EAGAIN; and after a FIN, such a read reached it (HAProxy's rules for `recv`).
/// A splice may stop early with its pipe full, so it reads until EAGAIN. `other_done`: the
/// other direction has finished, so both sockets close as soon as this one is done, and
/// closing sends the FIN (no `shutdown` call).
fn pump(
    src: RawFd,
    dst: RawFd,
    h: &mut Half,
    (src_rd, dst_wr, src_hup): (&mut bool, &mut bool, bool),
    other_done: bool,
    io: &mut Io,
) -> Result<(u64, u64, bool), PumpErr> {
    let (mut read, mut moved, mut new_eof) = (0u64, 0u64, false);
    loop {
        // What is waiting goes first, in order: the copy buffer, then the pipe.
        if !h.buf.is_empty() {
            if !*dst_wr {
                break;
            }
            match sys::send(dst, &h.buf) {
                Ok(n) => {
                    h.buf.drain(..n);
                    moved += n as u64;
                    if h.buf.is_empty() {
                        h.buf = Vec::new();
                    }
                }
                Err(e) if eagain(&e) => {
                    *dst_wr = false;
                    break;
                }
                Err(_) => return Err(PumpErr::Dst),
            }
            continue;
        }
        if h.pending > 0 {
            if !*dst_wr {
                break;
            }
            let p = h.pipe.as_ref().expect("pending bytes are in a pipe");
            match sys::splice(p.r.as_raw_fd(), dst, h.pending) {
                Ok(n) => {
                    h.pending -= n;
                    moved += n as u64;
                }
                Err(e) if eagain(&e) => {
                    *dst_wr = false;
                    break;
                }
                Err(_) => return Err(PumpErr::Dst),
            }
            continue;
        }
        if let Some(p) = h.pipe.take() {
            io.pool.put(p);
        }
        if h.eof {
            if !h.shut && (other_done || *dst_wr) {
                if !other_done {
                    sys::shutdown_write(dst);
                }
                h.shut = true;
            }
            break;
        }
        if !*src_rd {
            break;
        }
        if h.splice {
            let p = match h.pipe.take() {
                Some(p) => p,
                None => io.pool.get().map_err(|_| PumpErr::Src)?,
            };
            let r = sys::splice(src, p.w.as_raw_fd(), SPLICE_READ);
            h.pipe = Some(p);
            match r {
                Ok(0) => {
                    h.eof = true;
                    new_eof = true;
                }
                Ok(n) => {
                    h.pending += n;
                    read += n as u64;
                }
                Err(e) if eagain(&e) => {
                    *src_rd = false;
                    break;
                }
                Err(_) => return Err(PumpErr::Src),
            }
            continue;
        }
        let n = match sys::recv(src, &mut io.scratch) {
            Ok(0) => {
                h.eof = true;
                new_eof = true;
                continue;
            }
            Ok(n) => n,
            Err(e) if eagain(&e) => {
                *src_rd = false;
                break;
            }
            Err(_) => return Err(PumpErr::Src),
        };
        read += n as u64;
        let mut sent = 0;
        if *dst_wr {
            match sys::send(dst, &io.scratch[..n]) {
                Ok(m) => sent = m,
                Err(e) if eagain(&e) => *dst_wr = false,
                Err(_) => return Err(PumpErr::Dst),
            }
        }
        moved += sent as u64;
        if sent < n {
            h.buf.extend_from_slice(&io.scratch[sent..n]);
        }
        if n == io.scratch.len() {
            h.splice = true;
        } else if src_hup {
            h.eof = true;
            new_eof = true;
        } else {
            *src_rd = false;
        }
    }
    if h.pending == 0 {
        if let Some(p) = h.pipe.take() {
            io.pool.put(p);
        }
    }
    Ok((read, moved, new_eof))
}

// ---------------------------------------------------------------------------------- connections

struct Listener {
    fd: Rc<OwnedFd>,
    svc: Arc<Service>,
    vaddr: IpAddr,
    vport: u16,
    /// Out of epoll until the next sweep (accept ran out of descriptors or memory).
    paused: bool,
    token: u64,
}

struct TcpConn {
    cfd: Option<OwnedFd>,
    sfd: Option<OwnedFd>,
    svc: Arc<Service>,
    client: SocketAddr,
    vaddr: IpAddr,
    vport: u16,
    dport: u16,
    binding: Binding,
    template: Option<Controlled>,
    state: State,
    last_ms: u64,
    connecting: bool,
    c_rd: bool,
    c_wr: bool,
    s_rd: bool,
    s_wr: bool,
    /// FIN or hang-up reported by epoll, client and server side.
    c_hup: bool,
    s_hup: bool,
    /// The client's FIN came while connecting to the real server.
    fin_early: bool,
    up: Half,
    down: Half,
    reported: TcpCounts,
    /// Payload read from the client and written to it.
    from_client: u64,
    to_client: u64,
    /// What of them is in the stats already.
    reported_in: u64,
    reported_out: u64,
    dirty: bool,
}

impl TcpConn {
    fn event(&mut self, e: Event) {
        for &(dir, seg) in segments(e) {
            let ns = self.state.next(dir, seg);
            if ns != self.state {
                if ns.active() != self.state.active() {
                    self.binding.set_active(ns.active());
                }
                if ns == State::Established {
                    if let Some(t) = &self.template {
                        t.assure();
                    }
                }
                self.state = ns;
            }
        }
    }

    /// Adds the traffic since the last time to the stats: the payload relayed, and the
    /// client side's segments (TCP_INFO; at the end, with those still to be sent) each with
    /// its IP and TCP headers, as the kernel counts whole packets.
    fn flush_stats(&mut self, closing: bool) {
        let Some(cfd) = &self.cfd else { return };
        let Some(now) = sys::tcp_counts(cfd.as_raw_fd()) else {
            return;
        };
        let r = self.reported;
        let hdr = header_bytes(self.client.is_ipv6(), now.timestamps);
        let d_in = now.segs_in.saturating_sub(r.segs_in);
        let mut d_out = now.segs_out.saturating_sub(r.segs_out);
        if closing && now.notsent > 0 {
            d_out += now.notsent.div_ceil(now.snd_mss.max(536));
        }
        let b_in = self.from_client - self.reported_in + d_in * hdr;
        let b_out = self.to_client - self.reported_out + d_out * hdr;
        let dest = &self.binding.dest;
        dest.stats.add_in(d_in, b_in);
        dest.stats.add_out(d_out, b_out);
        self.svc.stats.add_in(d_in, b_in);
        self.svc.stats.add_out(d_out, b_out);
        self.reported = now;
        self.reported.segs_out += d_out - now.segs_out.saturating_sub(r.segs_out);
        self.reported_in = self.from_client;
        self.reported_out = self.to_client;
        self.dirty = false;
    }

    fn listing(&self, now_ms: u64, t: &Timeouts) -> Connection {
        let expires = (self.state.timeout(t) as u64 * 1000)
            .saturating_sub(now_ms.saturating_sub(self.last_ms))
            / 1000;
        Connection {
            protocol: 6,
            caddr: self.client.ip(),
            cport: self.client.port(),
            vaddr: self.vaddr,
            vport: self.vport,
            daddr: self.binding.dest.addr,
            dport: self.dport,
            state: self.state.name().into(),
            expires: expires as u32,
            pe_name: None,
            pe_data: None,
        }
    }
}

/// Bytes of IP and TCP headers per segment (the kernel counts whole packets).
fn header_bytes(v6: bool, timestamps: bool) -> u64 {
    (if v6 { 60 } else { 40 }) + if timestamps { 12 } else { 0 }
}

/// A closed TCP connection still in the table until its state's timeout (TIME_WAIT, CLOSE ...),
/// as the kernel keeps its entry: counted in InActConn, listed by `ipvsadm -c`. Small (about
/// 100 bytes; the kernel's entry is larger): at 20,000 connections a second, TIME_WAIT's 120 s
/// keep 2.4 million of them.
struct Ghost {
    binding: Binding,
    _template: Option<Controlled>,
    svc: Arc<Service>,
    client: SocketAddr,
    dport: u16,
    state: State,
    expires_ms: u64,
}

impl Ghost {
    fn listing(&self, now_ms: u64) -> Option<Connection> {
        let ServiceId::Address { addr, port, .. } = self.svc.id else {
            return None;
        };
        Some(Connection {
            protocol: 6,
            caddr: self.client.ip(),
            cport: self.client.port(),
            vaddr: addr,
            vport: port,
            daddr: self.binding.dest.addr,
            dport: self.dport,
            state: self.state.name().into(),
            expires: (self.expires_ms.saturating_sub(now_ms) / 1000) as u32,
            pe_name: None,
            pe_data: None,
        })
    }
}

/// A FIFO in chunks of fixed capacity: growing it never copies (or pauses on) a large array.
struct Chunked<T> {
    chunks: VecDeque<VecDeque<T>>,
}

const CHUNK: usize = 4096;

impl<T> Chunked<T> {
    fn new() -> Self {
        Chunked {
            chunks: VecDeque::new(),
        }
    }

    fn push(&mut self, v: T) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < CHUNK => c.push_back(v),
            _ => {
                let mut c = VecDeque::with_capacity(CHUNK);
                c.push_back(v);
                self.chunks.push_back(c);
            }
        }
    }

    fn front(&self) -> Option<&T> {
        self.chunks.front().and_then(|c| c.front())
    }

    fn pop_front(&mut self) -> Option<T> {
        let c = self.chunks.front_mut()?;
        let v = c.pop_front();
        if c.is_empty() {
            self.chunks.pop_front();
        }
        v
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

struct UdpFlow {
    ufd: OwnedFd,
    /// The service's socket, to answer from the virtual address.
    lfd: Rc<OwnedFd>,
    key: (usize, SocketAddr, u64),
    client: SocketAddr,
    vaddr: IpAddr,
    vport: u16,
    dport: u16,
    dest: Arc<Dest>,
    svc: Arc<Service>,
    binding: Option<Binding>,
    _template: Option<Controlled>,
    last_ms: u64,
    /// Counters not yet added to the stats.
    inp: u64,
    inb: u64,
    outp: u64,
    outb: u64,
}

impl UdpFlow {
    fn flush_stats(&mut self) {
        if self.inp | self.outp == 0 {
            return;
        }
        for s in [&self.dest.stats, &self.svc.stats] {
            s.add_in(self.inp, self.inb);
            s.add_out(self.outp, self.outb);
        }
        self.inp = 0;
        self.inb = 0;
        self.outp = 0;
        self.outb = 0;
    }
}

fn udp_header(v6: bool) -> u64 {
    if v6 {
        48
    } else {
        28
    }
}

// ---------------------------------------------------------------------------------- worker

struct Worker {
    rx: Receiver<Cmd>,
    wake: Arc<EventFd>,
    epoll: Epoll,
    listeners: Slab<Listener>,
    conns: Slab<TcpConn>,
    flows: Slab<UdpFlow>,
    flow_keys: HashMap<(usize, SocketAddr, u64), usize>,
    ghosts: HashMap<u32, Chunked<Ghost>>,
    io: Io,
    timeouts: Arc<SharedTimeouts>,
    clock: Clock,
    now: u64,
    buf: Vec<u8>,
    stop: bool,
    warned_accept: bool,
    /// This worker's index, every worker's channel, and their busy TCP connections.
    id: usize,
    peers: Arc<Vec<Peer>>,
    loads: Arc<Vec<AtomicUsize>>,
    /// Connections idle for a second or more at the last sweep (they are no load).
    idle: usize,
}

impl Worker {
    fn new(
        epoll: Epoll,
        rx: Receiver<Cmd>,
        wake: Arc<EventFd>,
        cfg: Config,
        timeouts: Arc<SharedTimeouts>,
        clock: Clock,
    ) -> Worker {
        Worker {
            rx,
            wake,
            epoll,
            listeners: Slab::new(),
            conns: Slab::new(),
            flows: Slab::new(),
            flow_keys: HashMap::new(),
            ghosts: HashMap::new(),
            io: Io {
                pool: PipePool {
                    free: Vec::new(),
                    size: cfg.pipe_size,
                },
                scratch: vec![0u8; COPY_BUF],
            },
            timeouts,
            clock,
            now: clock.now_ms(),
            buf: vec![0u8; 65536],
            stop: false,
            warned_accept: false,
            id: 0,
            peers: Arc::new(Vec::new()),
            loads: Arc::new(Vec::new()),
            idle: 0,
        }
    }

    fn run(&mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut next_sweep = self.clock.now_ms() + 1000;
        while !self.stop {
            let wait = next_sweep.saturating_sub(self.clock.now_ms()).min(1000) as i32;
            let n = self.epoll.wait(&mut events, wait);
            self.now = self.clock.now_ms();
            for ev in &events[..n] {
                let (bits, t) = (ev.events, ev.u64);
                let (kind, idx, gen) = untoken(t);
                match kind {
                    K_WAKE => self.commands(),
                    K_TLISTEN => self.accept_tcp(idx),
                    K_ULISTEN => self.udp_in(idx),
                    K_CLIENT | K_SERVER => self.tcp_event(idx, gen, kind == K_CLIENT, bits),
                    K_UPSTREAM => self.udp_out(idx, gen),
                    _ => {}
                }
            }
            if self.now >= next_sweep {
                self.sweep();
                next_sweep = self.now + 1000;
            }
            if let Some(l) = self.loads.get(self.id) {
                l.store(self.busy(), Relaxed);
            }
        }
    }

    fn commands(&mut self) {
        self.wake.drain();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Listen { svc, fd, udp } => {
                    let ServiceId::Address { addr, port, .. } = svc.id else {
                        continue;
                    };
                    let raw = fd.as_raw_fd();
                    let (i, g) = self.listeners.insert(Listener {
                        fd: Rc::new(fd),
                        svc,
                        vaddr: addr,
                        vport: port,
                        paused: false,
                        token: 0,
                    });
                    let kind = if udp { K_ULISTEN } else { K_TLISTEN };
                    let t = token(kind, i, g);
                    if let Some(l) = self.listeners.get_mut(i, g) {
                        l.token = t;
                    }
                    if self.epoll.add(raw, EV_IN, t).is_err() {
                        self.listeners.remove(i);
                    }
                }
                Cmd::Unlisten { uid } => {
                    for i in self.listeners.indexes() {
                        let hit = self.listeners.items[i]
                            .1
                            .as_ref()
                            .is_some_and(|l| l.svc.uid == uid);
                        if hit {
                            if let Some(l) = self.listeners.remove(i) {
                                if !l.paused {
                                    self.epoll.delete(l.fd.as_raw_fd());
                                }
                            }
                            // UDP flows answer from the service's socket: they end with it,
                            // so that the socket closes (a new service on the same address
                            // and port must not share its SO_REUSEPORT group with a socket
                            // nobody reads). TCP connections go on.
                            for fi in self.flows.indexes() {
                                let mine = self.flows.items[fi]
                                    .1
                                    .as_ref()
                                    .is_some_and(|f| f.key.0 == i);
                                if mine {
                                    if let Some(mut f) = self.flows.remove(fi) {
                                        f.flush_stats();
                                        self.flow_keys.remove(&f.key);
                                    }
                                }
                            }
                        }
                    }
                }
                Cmd::Snapshot(tx) => {
                    let _ = tx.send(self.snapshot());
                }
                Cmd::Adopt(a) => {
                    let a = *a;
                    self.start_tcp(a.svc, a.vaddr, a.vport, a.fd, a.client, a.nc);
                }
                Cmd::Stop => self.stop = true,
            }
        }
    }

    fn snapshot(&self) -> Vec<Connection> {
        let t = self.timeouts.get();
        let now = self.clock.now_ms();
        let mut out: Vec<Connection> = self.conns.iter().map(|(_, c)| c.listing(now, &t)).collect();
        for q in self.ghosts.values() {
            out.extend(q.iter().filter_map(|g| g.listing(now)));
        }
        for (_, f) in self.flows.iter() {
            if f.binding.is_none() {
                continue; // one-packet flows are not connections any more
            }
            let expires =
                (t.udp as u64 * 1000).saturating_sub(now.saturating_sub(f.last_ms)) / 1000;
            out.push(Connection {
                protocol: 17,
                caddr: f.client.ip(),
                cport: f.client.port(),
                vaddr: f.vaddr,
                vport: f.vport,
                daddr: f.dest.addr,
                dport: f.dport,
                state: "UDP".into(),
                expires: expires as u32,
                pe_name: None,
                pe_data: None,
            });
        }
        out
    }

    // ------------------------------------------------------------------------------ TCP

    fn accept_tcp(&mut self, li: usize) {
        for _ in 0..16 {
            let Some(l) = self.listeners.items.get(li).and_then(|x| x.1.as_ref()) else {
                return;
            };
            match sys::accept(l.fd.as_raw_fd()) {
                Ok(Some((fd, client))) => self.new_tcp(li, fd, client),
                Ok(None) => return,
                Err(e) => {
                    if !self.warned_accept {
                        eprintln!("ipvsd: accept: {e}; pausing that listener for a second");
                        self.warned_accept = true;
                    }
                    // Out of descriptors or memory: the pending connection stays in the
                    // backlog and the level-triggered listener would wake us at once, again
                    // and again. Leave it out of epoll until the next sweep.
                    if let Some(l) = self.listeners.items.get_mut(li).and_then(|x| x.1.as_mut()) {
                        self.epoll.delete(l.fd.as_raw_fd());
                        l.paused = true;
                    }
                    return;
                }
            }
        }
    }

    /// Open TCP connections that are not idle (idle: nothing for a second, at the last sweep).
    fn busy(&self) -> usize {
        self.conns.len.saturating_sub(self.idle)
    }

    /// The least busy other worker, if this one is busier enough to hand it a connection: by
    /// two connections or more, or when the other has none (a new bulk transfer goes to an
    /// idle thread). SO_REUSEPORT spreads connections by a hash of their addresses, which
    /// knows nothing of load.
    fn less_busy(&self) -> Option<usize> {
        if self.peers.len() < 2 {
            return None;
        }
        let mine = self.busy();
        let (m, ml) = (0..self.peers.len())
            .filter(|&j| j != self.id)
            .map(|j| (j, self.loads[j].load(Relaxed)))
            .min_by_key(|x| x.1)?;
        (ml + 2 <= mine || (ml == 0 && mine >= 1)).then_some(m)
    }

    fn new_tcp(&mut self, li: usize, cfd: OwnedFd, client: SocketAddr) {
        let l = self.listeners.items[li].1.as_ref().expect("live listener");
        let (svc, vaddr, vport) = (l.svc.clone(), l.vaddr, l.vport);
        let Some(nc) = svc.schedule(6, (client.ip(), client.port()), vaddr, vport, self.now) else {
            // No destination available: the kernel drops the SYN and answers ICMP
            // unreachable; the closest a proxy can do is a reset.
            sys::close_reset(cfd);
            return;
        };
        if let Some(m) = self.less_busy() {
            self.loads[m].fetch_add(1, Relaxed);
            let p = &self.peers[m];
            let a = Adopt {
                svc,
                vaddr,
                vport,
                client,
                fd: cfd,
                nc,
            };
            if p.tx.send(Cmd::Adopt(Box::new(a))).is_ok() {
                p.wake.wake();
            }
            return;
        }
        self.start_tcp(svc, vaddr, vport, cfd, client, nc);
    }

    /// Connects to the scheduled real server and starts relaying.
    fn start_tcp(
        &mut self,
        svc: Arc<Service>,
        vaddr: IpAddr,
        vport: u16,
        cfd: OwnedFd,
        client: SocketAddr,
        nc: crate::table::NewConn,
    ) {
        let daddr = SocketAddr::new(nc.binding.dest.addr, nc.dport);
        let mut c = TcpConn {
            cfd: Some(cfd),
            sfd: None,
            svc,
            client,
            vaddr,
            vport,
            dport: nc.dport,
            binding: nc.binding,
            template: nc.template,
            state: State::None,
            last_ms: self.now,
            connecting: true,
            c_rd: false,
            c_wr: false,
            s_rd: false,
            s_wr: false,
            c_hup: false,
            s_hup: false,
            fin_early: false,
            up: Half::default(),
            down: Half::default(),
            reported: TcpCounts::default(),
            from_client: 0,
            to_client: 0,
            reported_in: 0,
            reported_out: 0,
            dirty: true,
        };
        c.event(Event::Accepted);
        let sfd = match sys::socket(&daddr, libc::SOCK_STREAM) {
            Ok(s) => s,
            Err(_) => return self.refused(c),
        };
        let _ = sys::setsockopt_int(sfd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        match sys::connect(sfd.as_raw_fd(), &daddr) {
            Ok(done) => {
                if done {
                    c.connecting = false;
                    c.event(Event::Connected);
                }
            }
            Err(_) => return self.refused(c),
        }
        // Speculative I/O: the request is often there already, and on a fast network (or
        // loopback) the connection to the real server is often up as soon as connect()
        // returns; a send then succeeds (EAGAIN otherwise: wait for EPOLLOUT), which saves a
        // trip through epoll.
        c.c_rd = true;
        c.s_wr = true;
        let (craw, sraw) = (c.cfd.as_ref().map(|f| f.as_raw_fd()), sfd.as_raw_fd());
        c.sfd = Some(sfd);
        let (i, g) = self.conns.insert(c);
        let ev = EV_IN | EV_OUT | EV_RDHUP | EV_ET;
        let ok = craw.is_some_and(|fd| self.epoll.add(fd, ev, token(K_CLIENT, i, g)).is_ok())
            && self.epoll.add(sraw, ev, token(K_SERVER, i, g)).is_ok();
        if !ok {
            if let Some(c) = self.conns.remove(i) {
                self.abort(c, Event::ServerRst, true);
            }
            return;
        }
        self.relay(i);
    }

    /// The real server could not be reached: reset the client, keep the entry in CLOSE.
    fn refused(&mut self, mut c: TcpConn) {
        c.event(Event::ServerRst);
        c.flush_stats(true);
        if let Some(fd) = c.cfd.take() {
            sys::close_reset(fd);
        }
        self.ghost(c);
    }

    fn tcp_event(&mut self, i: usize, gen: u32, client_side: bool, bits: u32) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(i, gen) else {
            return;
        };
        let readable = bits & (EV_IN | EV_RDHUP | EV_HUP | EV_ERR) != 0;
        let writable = bits & (EV_OUT | EV_HUP | EV_ERR) != 0;
        let hup = bits & (EV_RDHUP | EV_HUP) != 0;
        if client_side {
            c.c_rd |= readable;
            c.c_wr |= writable;
            c.c_hup |= hup;
        } else {
            c.s_rd |= readable;
            c.s_wr |= writable;
            c.s_hup |= hup;
            if c.connecting && (writable || readable) {
                // Writable without error: connected (no SO_ERROR call on the fast path).
                let err = if bits & (EV_ERR | EV_HUP) == 0 && writable {
                    0
                } else {
                    c.sfd
                        .as_ref()
                        .map_or(libc::EBADF, |f| sys::socket_error(f.as_raw_fd()))
                };
                if err != 0 {
                    let c = self.conns.remove(i).expect("present");
                    return self.refused_live(c);
                }
                c.connecting = false;
                c.event(Event::Connected);
                if c.fin_early {
                    c.event(Event::ClientFin);
                }
            }
        }
        c.last_ms = now;
        c.dirty = true;
        self.relay(i);
    }

    fn refused_live(&mut self, mut c: TcpConn) {
        if let Some(s) = c.sfd.take() {
            drop(s);
        }
        self.refused(c);
    }

    /// Relays both directions of connection `i` and ends it when both are done or one reset.
    /// (Closing a socket takes it out of epoll: no EPOLL_CTL_DEL.)
    fn relay(&mut self, i: usize) {
        let items = &mut self.conns.items;
        let Some(c) = items.get_mut(i).and_then(|x| x.1.as_mut()) else {
            return;
        };
        if c.connecting {
            // Read what the client sent already; nothing can be written to the server yet.
            let (Some(cf), Some(sf)) = (&c.cfd, &c.sfd) else {
                return;
            };
            let (cfd, sfd) = (cf.as_raw_fd(), sf.as_raw_fd());
            let hup = c.c_hup;
            // A send to a socket still connecting answers EAGAIN (and the relay waits for
            // EPOLLOUT); one that succeeds proves the connection up.
            match pump(
                cfd,
                sfd,
                &mut c.up,
                (&mut c.c_rd, &mut c.s_wr, hup),
                false,
                &mut self.io,
            ) {
                Ok((read, written, eof)) => {
                    c.from_client += read;
                    // The kernel cannot see the client's FIN before the real server's
                    // SYN-ACK (the client's handshake is with the real server): it counts
                    // once the connection is up.
                    c.fin_early |= eof;
                    if written == 0 {
                        return;
                    }
                    c.connecting = false;
                    c.event(Event::Connected);
                    if c.fin_early {
                        c.event(Event::ClientFin);
                    }
                }
                Err(PumpErr::Src) => {
                    let c = self.conns.remove(i).expect("present");
                    return self.abort(c, Event::ClientRst, false);
                }
                Err(PumpErr::Dst) => {
                    // Refused (or unreachable) while connecting.
                    let mut c = self.conns.remove(i).expect("present");
                    c.sfd = None;
                    return self.refused(c);
                }
            }
        }
        let (Some(cf), Some(sf)) = (&c.cfd, &c.sfd) else {
            return;
        };
        let (cfd, sfd) = (cf.as_raw_fd(), sf.as_raw_fd());
        let down_done = c.down.done();
        let up = pump(
            cfd,
            sfd,
            &mut c.up,
            (&mut c.c_rd, &mut c.s_wr, c.c_hup),
            down_done,
            &mut self.io,
        );
        let failure = match up {
            Ok((read, _, eof)) => {
                c.from_client += read;
                if eof {
                    c.event(Event::ClientFin);
                }
                None
            }
            Err(PumpErr::Src) => Some(Event::ClientRst),
            Err(PumpErr::Dst) => Some(Event::ServerRst),
        };
        let failure = failure.or_else(|| {
            let up_done = c.up.done();
            match pump(
                sfd,
                cfd,
                &mut c.down,
                (&mut c.s_rd, &mut c.c_wr, c.s_hup),
                up_done,
                &mut self.io,
            ) {
                Ok((_, written, eof)) => {
                    c.to_client += written;
                    if eof {
                        c.event(Event::ServerFin);
                    }
                    None
                }
                Err(PumpErr::Src) => Some(Event::ServerRst),
                Err(PumpErr::Dst) => Some(Event::ClientRst),
            }
        });
        if let Some(e) = failure {
            let c = self.conns.remove(i).expect("present");
            return self.abort(c, e, false);
        }
        if c.up.done() && c.down.done() {
            let mut c = self.conns.remove(i).expect("present");
            c.flush_stats(true);
            c.cfd = None;
            c.sfd = None;
            self.release_pipes(&mut c);
            self.ghost(c);
        }
    }

    fn release_pipes(&mut self, c: &mut TcpConn) {
        // Pipes still holding bytes are dropped (closed), empty ones reused.
        for h in [&mut c.up, &mut c.down] {
            if let Some(p) = h.pipe.take() {
                if h.pending == 0 {
                    self.io.pool.put(p);
                }
            }
        }
    }

    /// A reset on one side: reset the other, keep the entry in CLOSE. `expired`: the idle
    /// timeout ran out (the kernel drops such an entry at once).
    fn abort(&mut self, mut c: TcpConn, e: Event, expired: bool) {
        c.event(e);
        c.flush_stats(true);
        if let Some(f) = c.cfd.take() {
            sys::close_reset(f);
        }
        if let Some(f) = c.sfd.take() {
            sys::close_reset(f);
        }
        self.release_pipes(&mut c);
        if !expired {
            self.ghost(c);
        }
    }

    fn ghost(&mut self, c: TcpConn) {
        let t = self.timeouts.get();
        let secs = c.state.timeout(&t);
        let g = Ghost {
            binding: c.binding,
            _template: c.template,
            svc: c.svc,
            client: c.client,
            dport: c.dport,
            state: c.state,
            expires_ms: self.now + secs as u64 * 1000,
        };
        self.ghosts.entry(secs).or_insert_with(Chunked::new).push(g);
    }

    // ------------------------------------------------------------------------------ UDP

    fn udp_in(&mut self, li: usize) {
        for _ in 0..256 {
            let Some(l) = self.listeners.items.get(li).and_then(|x| x.1.as_ref()) else {
                return;
            };
            let lfd = l.fd.clone();
            let (n, client) = match sys::recv_from(lfd.as_raw_fd(), &mut self.buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            let (svc, vaddr, vport) = (l.svc.clone(), l.vaddr, l.vport);
            let ops = svc.lock().flags & flags::ONEPACKET != 0;
            let fi = if ops {
                let Some(nc) =
                    svc.schedule(17, (client.ip(), client.port()), vaddr, vport, self.now)
                else {
                    continue;
                };
                let key = (li, client, nc.binding.dest.id);
                match self.flow_keys.get(&key) {
                    Some(&fi) => {
                        // one packet, one connection: counted, then gone at once
                        drop(nc);
                        Some(fi)
                    }
                    None => self.new_flow(key, lfd, client, vaddr, vport, svc, nc, false),
                }
            } else {
                let key = (li, client, 0);
                match self.flow_keys.get(&key) {
                    Some(&fi) => Some(fi),
                    None => {
                        let Some(nc) =
                            svc.schedule(17, (client.ip(), client.port()), vaddr, vport, self.now)
                        else {
                            continue;
                        };
                        self.new_flow(key, lfd, client, vaddr, vport, svc, nc, true)
                    }
                }
            };
            let Some(fi) = fi else { continue };
            let now = self.now;
            let f = self.flows.items[fi].1.as_mut().expect("live flow");
            f.last_ms = now;
            if sys::send(f.ufd.as_raw_fd(), &self.buf[..n]).is_ok() {
                f.inp += 1;
                f.inb += n as u64 + udp_header(client.is_ipv6());
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        key: (usize, SocketAddr, u64),
        lfd: Rc<OwnedFd>,
        client: SocketAddr,
        vaddr: IpAddr,
        vport: u16,
        svc: Arc<Service>,
        nc: crate::table::NewConn,
        keep: bool,
    ) -> Option<usize> {
        let dest = nc.binding.dest.clone();
        let daddr = SocketAddr::new(dest.addr, nc.dport);
        let ufd = sys::socket(&daddr, libc::SOCK_DGRAM).ok()?;
        sys::connect(ufd.as_raw_fd(), &daddr).ok()?;
        let raw = ufd.as_raw_fd();
        let (binding, template) = if keep {
            (Some(nc.binding), nc.template)
        } else {
            (None, None)
        };
        let (i, g) = self.flows.insert(UdpFlow {
            ufd,
            lfd,
            key,
            client,
            vaddr,
            vport,
            dport: nc.dport,
            dest,
            svc,
            binding,
            _template: template,
            last_ms: self.now,
            inp: 0,
            inb: 0,
            outp: 0,
            outb: 0,
        });
        if self
            .epoll
            .add(raw, EV_IN | EV_ET, token(K_UPSTREAM, i, g))
            .is_err()
        {
            self.flows.remove(i);
            return None;
        }
        self.flow_keys.insert(key, i);
        Some(i)
    }

    fn udp_out(&mut self, i: usize, gen: u32) {
        let now = self.now;
        let Some(f) = self.flows.get_mut(i, gen) else {
            return;
        };
        loop {
            match sys::recv(f.ufd.as_raw_fd(), &mut self.buf) {
                Ok(n) => {
                    if sys::send_to(f.lfd.as_raw_fd(), &self.buf[..n], &f.client).is_ok() {
                        f.outp += 1;
                        f.outb += n as u64 + udp_header(f.client.is_ipv6());
                    }
                    f.last_ms = now;
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
                Err(_) => continue, // ICMP errors (ECONNREFUSED): ignore, as the kernel forwards them
            }
        }
    }

    // ------------------------------------------------------------------------------ sweep

    /// Once a second: stats of busy connections, idle timeouts, expired entries.
    fn sweep(&mut self) {
        let t = self.timeouts.get();
        let now = self.now;
        for i in self.listeners.indexes() {
            let l = self.listeners.items[i].1.as_mut().expect("listed");
            if l.paused && self.epoll.add(l.fd.as_raw_fd(), EV_IN, l.token).is_ok() {
                l.paused = false;
            }
        }
        let mut idle = 0;
        for i in self.conns.indexes() {
            let c = self.conns.items[i].1.as_mut().expect("listed");
            if c.dirty {
                c.flush_stats(false);
            }
            let limit = c.state.timeout(&t) as u64 * 1000;
            let quiet = now.saturating_sub(c.last_ms);
            if quiet >= limit {
                let c = self.conns.remove(i).expect("present");
                self.abort(c, Event::ServerRst, true);
            } else if quiet >= 1000 {
                idle += 1;
            }
        }
        self.idle = idle;
        for q in self.ghosts.values_mut() {
            while q.front().is_some_and(|g| g.expires_ms <= now) {
                q.pop_front();
            }
        }
        self.ghosts.retain(|_, q| !q.is_empty());
        let udp_ms = t.udp as u64 * 1000;
        for i in self.flows.indexes() {
            let f = self.flows.items[i].1.as_mut().expect("listed");
            f.flush_stats();
            if now.saturating_sub(f.last_ms) >= udp_ms {
                let f = self.flows.remove(i).expect("present");
                self.flow_keys.remove(&f.key);
                self.epoll.delete(f.ufd.as_raw_fd());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_small() {
        // What a closed connection costs while it stays listed (TIME_WAIT: 120 s), and an open
        // one (docs/performance.md).
        let ghost = std::mem::size_of::<Ghost>();
        let conn = std::mem::size_of::<(u32, Option<TcpConn>)>();
        println!("ghost {ghost} B, open connection {conn} B");
        assert!(ghost <= 96, "{ghost}");
        assert!(conn <= 320, "{conn}");
    }
}
