//! The kernel backend: one generic netlink socket, the IPVS family resolved once, requests
//! batched into as few `send`s as the kernel allows.

use crate::backend::{Backend, Change, ServiceEntry};
use crate::error::{self, Error, Operation, Result};
use crate::model::*;
use crate::netlink::{self, attr, cmd, IpvsMessage};
use crate::sockopt;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Requests are packed into sends of at most this many bytes, so that the acknowledgements of
/// one send always fit the socket's receive buffer.
const BATCH_BYTES: usize = 32 * 1024;
const RECV_BUFFER: usize = 1 << 20;
/// An upper estimate of one change request's size, to cut batches.
const MESSAGE_ESTIMATE: usize = 200;

/// Replies to a set of requests: data messages and final status (0 or errno), by sequence number.
type Collected = (Vec<(u32, IpvsMessage)>, Vec<(u32, i32)>);

pub struct KernelBackend {
    socket: Socket,
    family_id: u16,
    seq: u32,
    buf: Vec<u8>,
    /// The raw socket for the old `getsockopt` interface: `None` until first needed,
    /// `Some(None)` if it cannot be had (then everything goes through netlink).
    legacy: Option<Option<OwnedFd>>,
}

fn os_errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(error::EIO)
}

impl KernelBackend {
    /// Opens the IPVS family; if the kernel does not know it, loads `ip_vs` once (as ipvsadm
    /// does) and tries again.
    pub fn open() -> Result<KernelBackend> {
        match Self::open_once() {
            Ok(b) => Ok(b),
            Err(_) => {
                let _ = std::process::Command::new("/sbin/modprobe")
                    .args(["-q", "--", "ip_vs"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                Self::open_once()
            }
        }
    }

    fn open_once() -> Result<KernelBackend> {
        let init = |e: std::io::Error| Error::new(Operation::Init, os_errno(&e));
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(init)?;
        socket.bind_auto().map_err(init)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(init)?;
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_rx_buf_sz(RECV_BUFFER);
        let mut backend = KernelBackend {
            socket,
            family_id: 0,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
            legacy: None,
        };
        backend.family_id = backend.resolve_family()?;
        Ok(backend)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn resolve_family(&mut self) -> Result<u16> {
        let mut genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(netlink::FAMILY_NAME.to_string())],
        });
        genl.finalize();
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        msg.header.sequence_number = self.next_seq();
        msg.finalize();
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut bytes);
        let fail = |errno| Error::new(Operation::Init, errno);
        self.socket
            .send(&bytes, 0)
            .map_err(|e| fail(os_errno(&e)))?;
        let mut family = None;
        loop {
            self.buf.clear();
            self.socket
                .recv(&mut self.buf, 0)
                .map_err(|e| fail(os_errno(&e)))?;
            let mut off = 0;
            while off < self.buf.len() {
                let m = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&self.buf[off..])
                    .map_err(|_| fail(error::EIO))?;
                let len = (m.header.length as usize).max(16);
                off += (len + 3) & !3;
                match m.payload {
                    NetlinkPayload::InnerMessage(g) => {
                        for nla in g.payload.nlas {
                            if let GenlCtrlAttrs::FamilyId(id) = nla {
                                family = Some(id);
                            }
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            // The family is unknown: IPVS is not in this kernel.
                            Some(_) => Err(fail(error::ENOPROTOOPT)),
                            None => family.ok_or_else(|| fail(error::ENOPROTOOPT)),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    fn encode(&mut self, msg: IpvsMessage, flags: u16) -> (u32, Vec<u8>) {
        let mut genl = GenlMessage::from_payload(msg);
        genl.set_resolved_family_id(self.family_id);
        let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(genl));
        let seq = self.next_seq();
        nl.header.flags = flags;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut bytes = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut bytes);
        (seq, bytes)
    }

    /// Reads replies until every sequence number in `pending` has its final message (an ack, an
    /// error or the end of a dump). Returns the data messages per sequence number and the status
    /// per sequence number (0 or a positive errno).
    fn collect(&mut self, pending: &[u32], op: Operation) -> Result<Collected> {
        self.collect_inner(pending, None, op)
    }

    /// Like [`collect`](Self::collect), but done as soon as `last` has its final message (the
    /// other requests asked for no acknowledgement and are answered only if they failed).
    fn collect_until(&mut self, pending: &[u32], last: u32, op: Operation) -> Result<Collected> {
        self.collect_inner(pending, Some(last), op)
    }

    fn collect_inner(
        &mut self,
        pending: &[u32],
        last: Option<u32>,
        op: Operation,
    ) -> Result<Collected> {
        let mut data = Vec::new();
        let mut status: Vec<(u32, i32)> = Vec::new();
        let done = |status: &Vec<(u32, i32)>| match last {
            Some(l) => status.iter().any(|(s, _)| *s == l),
            None => status.len() >= pending.len(),
        };
        while !done(&status) {
            self.buf.clear();
            self.socket
                .recv(&mut self.buf, 0)
                .map_err(|e| Error::new(op, os_errno(&e)))?;
            let mut off = 0;
            while off + 16 <= self.buf.len() {
                let m = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&self.buf[off..])
                    .map_err(|e| Error::decode(op, e.to_string()))?;
                let len = (m.header.length as usize).max(16);
                off += (len + 3) & !3;
                let seq = m.header.sequence_number;
                if !pending.contains(&seq) {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(g) => data.push((seq, g.payload)),
                    NetlinkPayload::Error(e) => {
                        status.push((seq, e.code.map(|c| -c.get()).unwrap_or(0)));
                    }
                    NetlinkPayload::Done(_) => status.push((seq, 0)),
                    _ => {}
                }
            }
        }
        Ok((data, status))
    }

    /// One request that expects an ack (and possibly a reply message).
    fn request(&mut self, msg: IpvsMessage, op: Operation) -> Result<Vec<IpvsMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK, op)
    }

    /// A dump: every reply message until NLMSG_DONE.
    fn dump(&mut self, msg: IpvsMessage, op: Operation) -> Result<Vec<IpvsMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, op)
    }

    fn exchange(
        &mut self,
        msg: IpvsMessage,
        flags: u16,
        op: Operation,
    ) -> Result<Vec<IpvsMessage>> {
        let (seq, bytes) = self.encode(msg, flags);
        self.socket
            .send(&bytes, 0)
            .map_err(|e| Error::new(op, os_errno(&e)))?;
        let (data, status) = self.collect(&[seq], op)?;
        match status.first() {
            Some((_, 0)) | None => Ok(data.into_iter().map(|(_, m)| m).collect()),
            Some((_, errno)) => Err(Error::new(op, *errno)),
        }
    }
}

impl KernelBackend {
    fn legacy_fd(&mut self) -> Option<i32> {
        let fd = self.legacy.get_or_insert_with(|| {
            // SAFETY: plain socket(2); the descriptor is owned from here on.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_RAW,
                )
            };
            // SAFETY: a fresh descriptor nobody else owns.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        });
        fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// `getsockopt(IPPROTO_IP, opt)` with `buf` as both request and reply.
    fn legacy_get(&mut self, opt: i32, buf: &mut [u8]) -> Option<()> {
        let fd = self.legacy_fd()?;
        let mut len = libc::socklen_t::try_from(buf.len()).ok()?;
        // SAFETY: `buf` is valid for `len` bytes; the kernel writes at most that many.
        let r = unsafe {
            libc::getsockopt(fd, libc::IPPROTO_IP, opt, buf.as_mut_ptr().cast(), &mut len)
        };
        (r == 0).then_some(())
    }

    /// The destination count of every IPv4 service, in two system calls; `None` if the old
    /// interface is not available.
    fn legacy_counts(&mut self) -> Option<HashMap<sockopt::Key, u32>> {
        let mut info = [0u8; sockopt::INFO_LEN];
        self.legacy_get(sockopt::GET_INFO, &mut info)?;
        let n = sockopt::info_num_services(&info)?;
        let mut buf = sockopt::services_request(n);
        self.legacy_get(sockopt::GET_SERVICES, &mut buf)?;
        Some(sockopt::services_reply(&buf).into_iter().collect())
    }

    /// A service's destinations in one system call, if the old interface gives exactly what
    /// netlink would: all `count` of them, none a tunnel (whose type and port only netlink has).
    fn legacy_dests(&mut self, key: &sockopt::Key, count: u32) -> Option<Vec<Destination>> {
        if count == 0 {
            return Some(Vec::new());
        }
        let mut buf = sockopt::dests_request(key, count);
        self.legacy_get(sockopt::GET_DESTS, &mut buf)?;
        let dests = sockopt::dests_reply(&buf)?;
        let complete = dests.len() == count as usize
            && dests.iter().all(|d| d.forward != ForwardMethod::Tunnel);
        complete.then_some(dests)
    }
}

fn legacy_key(id: &ServiceId) -> Option<sockopt::Key> {
    match id {
        ServiceId::Address {
            protocol,
            addr: IpAddr::V4(a),
            port,
        } => Some(sockopt::Key::address(*protocol, *a, *port)),
        ServiceId::Fwmark {
            family: Family::Inet,
            mark,
        } => Some(sockopt::Key::Fwmark(*mark)),
        _ => None,
    }
}

fn decode_err(op: Operation) -> impl Fn(netlink_packet_core::DecodeError) -> Error {
    move |e| Error::decode(op, e.to_string())
}

impl Backend for KernelBackend {
    fn info(&mut self) -> Result<Info> {
        let op = Operation::GetInfo;
        let replies = self.request(IpvsMessage::new(cmd::GET_INFO, vec![]), op)?;
        let m = replies
            .first()
            .ok_or_else(|| Error::decode(op, "no reply to GET_INFO"))?;
        netlink::info_from_message(m).map_err(decode_err(op))
    }

    fn services(&mut self) -> Result<Vec<Service>> {
        let op = Operation::GetServices;
        let replies = self.dump(IpvsMessage::new(cmd::GET_SERVICE, vec![]), op)?;
        replies
            .iter()
            .map(|m| netlink::service_from_message(m).map_err(decode_err(op)))
            .collect()
    }

    fn service(&mut self, id: &ServiceId) -> Result<Service> {
        let op = Operation::GetService;
        let req = IpvsMessage::new(
            cmd::GET_SERVICE,
            vec![netlink::Attr::nest(
                attr::SERVICE,
                &netlink::service_id_attrs(id),
            )],
        );
        let replies = self.request(req, op)?;
        let m = replies
            .first()
            .ok_or_else(|| Error::new(op, error::ESRCH))?;
        netlink::service_from_message(m).map_err(decode_err(op))
    }

    fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>> {
        let op = Operation::GetDestinations;
        let req = IpvsMessage::new(
            cmd::GET_DEST,
            vec![netlink::Attr::nest(
                attr::SERVICE,
                &netlink::service_id_attrs(id),
            )],
        );
        let family = id.family();
        self.dump(req, op)?
            .iter()
            .map(|m| netlink::dest_from_message(m, family).map_err(decode_err(op)))
            .collect()
    }

    /// Services from one netlink dump; the destinations of IPv4 services from the old
    /// `getsockopt` interface (one system call per service instead of a dump's three), checked
    /// against each service's destination count; anything it cannot give exactly (IPv6, tunnel
    /// destinations, a table changing under us) comes from netlink as in [`Backend::table`].
    fn table_brief(&mut self) -> Result<Vec<ServiceEntry>> {
        let services = self.services()?;
        let counts = if services.iter().any(|s| legacy_key(&s.id).is_some()) {
            self.legacy_counts()
        } else {
            None
        };
        let mut out = Vec::with_capacity(services.len());
        for service in services {
            let quick = match (&counts, legacy_key(&service.id)) {
                (Some(counts), Some(key)) => counts
                    .get(&key)
                    .copied()
                    .and_then(|n| self.legacy_dests(&key, n)),
                _ => None,
            };
            let destinations = match quick {
                Some(d) => d,
                None => self.destinations(&service.id)?,
            };
            out.push(ServiceEntry {
                service,
                destinations,
            });
        }
        Ok(out)
    }

    fn timeouts(&mut self) -> Result<Timeouts> {
        let op = Operation::GetTimeouts;
        let replies = self.request(IpvsMessage::new(cmd::GET_CONFIG, vec![]), op)?;
        let m = replies
            .first()
            .ok_or_else(|| Error::decode(op, "no reply to GET_CONFIG"))?;
        netlink::timeouts_from_message(m).map_err(decode_err(op))
    }

    fn daemons(&mut self) -> Result<Vec<Daemon>> {
        let op = Operation::GetDaemons;
        self.dump(IpvsMessage::new(cmd::GET_DAEMON, vec![]), op)?
            .iter()
            .map(|m| netlink::daemon_from_message(m).map_err(decode_err(op)))
            .collect()
    }

    fn apply(&mut self, change: &Change) -> Result<()> {
        let op = netlink::change_operation(change);
        self.request(netlink::change_message(change), op)
            .map(|_| ())
    }

    /// Many requests per `send`: the kernel processes the messages of one send in order and
    /// answers each with its own acknowledgement.
    fn apply_all(&mut self, changes: &[Change]) -> Vec<Result<()>> {
        let mut results: Vec<Result<()>> = Vec::with_capacity(changes.len());
        let mut start = 0;
        while start < changes.len() {
            let mut batch = Vec::new();
            let mut seqs = Vec::new();
            let mut end = start;
            while end < changes.len()
                && (end == start || (end - start) * MESSAGE_ESTIMATE < BATCH_BYTES)
            {
                end += 1;
            }
            // Only the last request of a send asks for an acknowledgement: the kernel answers
            // every failed request anyway (with its sequence number), and processes the requests
            // of one send in order, so the last ack means every earlier answer has been sent.
            // This saves one receive per request.
            for (i, change) in changes.iter().enumerate().take(end).skip(start) {
                let flags = if i + 1 == end {
                    NLM_F_REQUEST | NLM_F_ACK
                } else {
                    NLM_F_REQUEST
                };
                let (seq, bytes) = self.encode(netlink::change_message(change), flags);
                batch.extend_from_slice(&bytes);
                seqs.push(seq);
            }
            let outcome = self
                .socket
                .send(&batch, 0)
                .map_err(|e| os_errno(&e))
                .and_then(|_| {
                    let last = seqs[seqs.len() - 1];
                    self.collect_until(&seqs, last, Operation::Flush)
                        .map_err(|e| e.errno)
                });
            match outcome {
                Ok((_, status)) => {
                    for (i, seq) in seqs.iter().enumerate() {
                        let op = netlink::change_operation(&changes[start + i]);
                        let errno = status
                            .iter()
                            .find(|(s, _)| s == seq)
                            .map(|(_, e)| *e)
                            // No answer to a request that asked for none means success.
                            .unwrap_or(0);
                        results.push(if errno == 0 {
                            Ok(())
                        } else {
                            Err(Error::new(op, errno))
                        });
                    }
                }
                Err(errno) => {
                    for c in &changes[start..end] {
                        results.push(Err(Error::new(netlink::change_operation(c), errno)));
                    }
                }
            }
            start = end;
        }
        results
    }
}
