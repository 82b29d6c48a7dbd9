//! Link and address change notifications for a poll loop: a netlink socket joined to the
//! `RTNLGRP_LINK` and `RTNLGRP_IPV4_IFADDR` groups. The caller polls [`LinkMonitor::fd`]; when it
//! is readable, [`LinkMonitor::drain`] empties it and the caller re-reads the state it cares about
//! (events can be lost when the socket overflows, so the state, not the events, is the truth).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;

pub struct LinkMonitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl LinkMonitor {
    pub fn open() -> io::Result<LinkMonitor> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        socket.add_membership(RTNLGRP_LINK)?;
        socket.add_membership(RTNLGRP_IPV4_IFADDR)?;
        socket.set_non_blocking(true)?;
        Ok(LinkMonitor {
            socket,
            buf: Vec::with_capacity(32 * 1024),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Reads everything queued. True if anything arrived (or the socket overflowed, which also
    /// means the state may have changed).
    pub fn drain(&mut self) -> bool {
        let mut any = false;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => return any,
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return any,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ENOBUFS: events were lost; the caller re-reads the state anyway.
                Err(_) => return true,
            }
        }
    }
}
