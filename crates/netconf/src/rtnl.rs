//! A synchronous rtnetlink socket (netlink-packet-route messages over a netlink-sys socket):
//! interfaces, IPv4 addresses, and adding and deleting floating addresses with their labels.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressMessage, AddressProtocol, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::addr::FloatingAddress;
use crate::arp::Mac;

const RECV_BUFFER: usize = 64 * 1024;

/// An interface, as much of it as failover needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFF_UP: administratively up.
    pub up: bool,
    /// IFF_LOWER_UP: the driver reports carrier (what ethtool's "Link detected" shows).
    pub lower_up: bool,
    /// IFF_SLAVE: a bonding slave.
    pub slave: bool,
    pub mac: Option<Mac>,
}

impl Link {
    /// The link is usable: up and with carrier. (Piranha: not IFF_UP → down, else ethtool's
    /// link bit, else MII; netlink's IFF_LOWER_UP is the carrier those reported.)
    pub fn has_link(&self) -> bool {
        self.up && self.lower_up
    }
}

/// One IPv4 address of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEntry {
    pub index: u32,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The label (`eth0` or `eth0:1`).
    pub label: String,
    pub broadcast: Option<Ipv4Addr>,
    /// IFA_PROTO, where the kernel reports it.
    pub protocol: Option<u8>,
}

/// What adding an address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// The interface already had this address (EEXIST): nothing changed.
    AlreadyPresent,
}

/// A request/response rtnetlink socket.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let _ = socket.set_rx_buf_sz(RECV_BUFFER);
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Sends one request and collects its answers: every message of a dump, or nothing for an
    /// acknowledged change. A netlink error becomes the `io::Error` of its errno.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut bytes = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        let mut out = Vec::new();
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0)?;
            let mut off = 0;
            while off + 16 <= self.buf.len() {
                let len = u32::from_ne_bytes([
                    self.buf[off],
                    self.buf[off + 1],
                    self.buf[off + 2],
                    self.buf[off + 3],
                ]) as usize;
                if len < 16 || off + len > self.buf.len() {
                    break;
                }
                let msg_seq = u32::from_ne_bytes([
                    self.buf[off + 8],
                    self.buf[off + 9],
                    self.buf[off + 10],
                    self.buf[off + 11],
                ]);
                let parsed =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..off + len]);
                off += (len + 3) & !3;
                if msg_seq != seq {
                    continue;
                }
                match parsed {
                    Ok(m) => match m.payload {
                        NetlinkPayload::InnerMessage(inner) => out.push(inner),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out),
                                Some(_) => Err(e.to_io()),
                            };
                        }
                        NetlinkPayload::Done(_) => return Ok(out),
                        _ => {}
                    },
                    // A message this crate version cannot decode (an attribute of a newer
                    // kernel): skip it rather than fail the whole dump.
                    Err(e) => log::debug!("rtnetlink: undecodable message skipped: {e}"),
                }
            }
        }
    }

    /// Every interface.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let msg = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let answers = self.request(msg, NLM_F_DUMP)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
                _ => None,
            })
            .collect())
    }

    /// The interface called `name`, if there is one.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// Every IPv4 address of the host.
    pub fn addresses(&mut self) -> io::Result<Vec<AddressEntry>> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let answers = self.request(RouteNetlinkMessage::GetAddress(req), NLM_F_DUMP)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => address_of(a),
                _ => None,
            })
            .collect())
    }

    /// Adds `a` with its label, prefix and broadcast, stamped with `protocol` (IFA_PROTO).
    pub fn add_address(
        &mut self,
        ifindex: u32,
        a: &FloatingAddress,
        protocol: u8,
    ) -> io::Result<AddOutcome> {
        let msg = address_message(ifindex, a, Some(protocol));
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(AddOutcome::Added),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(AddOutcome::AlreadyPresent),
            Err(e) => Err(e),
        }
    }

    /// Deletes the address `address/prefix_len` from interface `ifindex` (only that address:
    /// the interface and its other addresses are untouched). Ok(false) if it was not there.
    pub fn del_address(
        &mut self,
        ifindex: u32,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> io::Result<bool> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix_len;
        msg.header.index = ifindex;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(address)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(address)));
        match self.request(RouteNetlinkMessage::DelAddress(msg), NLM_F_ACK) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn address_message(ifindex: u32, a: &FloatingAddress, protocol: Option<u8>) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = a.prefix_len;
    msg.header.scope = AddressScope::Universe;
    msg.header.index = ifindex;
    msg.attributes
        .push(AddressAttribute::Local(IpAddr::V4(a.address)));
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V4(a.address)));
    if let Some(b) = a.broadcast {
        msg.attributes.push(AddressAttribute::Broadcast(b));
    }
    msg.attributes
        .push(AddressAttribute::Label(a.label.clone()));
    if let Some(p) = protocol {
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(p)));
    }
    msg
}

fn link_of(l: LinkMessage) -> Link {
    let flags = l.header.flags;
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        up: flags.contains(LinkFlags::Up),
        lower_up: flags.contains(LinkFlags::LowerUp),
        slave: flags.contains(LinkFlags::Port),
        mac: None,
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(m) => link.mac = Mac::from_slice(&m),
            _ => {}
        }
    }
    link
}

fn address_of(a: AddressMessage) -> Option<AddressEntry> {
    let mut local = None;
    let mut address = None;
    let mut label = String::new();
    let mut broadcast = None;
    let mut protocol = None;
    for attr in a.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(v)) => local = Some(v),
            AddressAttribute::Address(IpAddr::V4(v)) => address = Some(v),
            AddressAttribute::Label(l) => label = l,
            AddressAttribute::Broadcast(b) => broadcast = Some(b),
            AddressAttribute::Protocol(p) => protocol = Some(u8::from(p)),
            _ => {}
        }
    }
    Some(AddressEntry {
        index: a.header.index,
        address: local.or(address)?,
        prefix_len: a.header.prefix_len,
        label,
        broadcast,
        protocol,
    })
}

/// The interface that holds `address`, if any (an alias label counts as its interface).
pub fn link_holding<'a>(
    links: &'a [Link],
    addresses: &[AddressEntry],
    address: Ipv4Addr,
) -> Option<&'a Link> {
    let entry = addresses.iter().find(|e| e.address == address)?;
    links.iter().find(|l| l.index == entry.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_message_carries_label_broadcast_and_protocol() {
        let a = FloatingAddress::new(Ipv4Addr::new(192, 168, 7, 9), "eth0:3", None).unwrap();
        let m = address_message(4, &a, Some(crate::PULSE_ADDRESS_PROTOCOL));
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.header.index, 4);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Label("eth0:3".into())));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(
                192, 168, 7, 255
            ))));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Protocol(AddressProtocol::Other(112))));
        let back = address_of(m).unwrap();
        assert_eq!(back.address, a.address);
        assert_eq!(back.label, "eth0:3");
        assert_eq!(back.protocol, Some(112));
    }
}
