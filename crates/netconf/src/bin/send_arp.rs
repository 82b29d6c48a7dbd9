//! send_arp: sends one ARP packet built from the command line, as Piranha's send_arp (spec §5).
//!
//!     send_arp [-i DEV] src_ip src_hw targ_ip targ_hw
//!
//! The frame: Ethernet destination targ_hw, source src_hw, an ARP reply whose sender and target
//! are both (src_hw, src_ip). targ_ip is accepted and not used, as in Piranha. DEV defaults to
//! eth0; an alias (`eth0:1`) is sent on its interface. Exit 0 on success, 1 on any error.

use std::ffi::CString;
use std::net::{Ipv4Addr, ToSocketAddrs};
use std::process::ExitCode;

use netconf::arp::{send_arp_frame, ArpSocket, Mac};

const USAGE: &str = "send_arp: sends out custom ARP packet.\n\
\tusage: send_arp [-i dev] src_ip_addr src_hw_addr targ_ip_addr tar_hw_addr\n";

fn die(msg: &str) -> ExitCode {
    eprintln!("{msg}");
    ExitCode::from(1)
}

fn perror(what: &str, e: &std::io::Error) -> ExitCode {
    let text = e.to_string();
    // "No such device (os error 19)" -> "No such device", as perror(3) prints it.
    let text = text.split(" (os error").next().unwrap_or(&text);
    eprintln!("{what}: {text}");
    ExitCode::from(1)
}

extern "C" {
    // glibc's inet_aton(3): every form inet_addr accepts (10.1, 0x0a000001, octal parts).
    fn inet_aton(cp: *const libc::c_char, inp: *mut libc::in_addr) -> libc::c_int;
}

/// `inet_addr`, then a host-name look-up, as send_arp's get_ip_addr.
fn ip_address(s: &str) -> Option<Ipv4Addr> {
    if let Ok(c) = CString::new(s) {
        // SAFETY: in_addr is plain data; inet_aton reads a NUL-terminated string.
        let mut a: libc::in_addr = unsafe { std::mem::zeroed() };
        if unsafe { inet_aton(c.as_ptr(), &mut a) } != 0 {
            return Some(Ipv4Addr::from(u32::from_be(a.s_addr)));
        }
    }
    (s, 0u16)
        .to_socket_addrs()
        .ok()?
        .find_map(|sa| match sa.ip() {
            std::net::IpAddr::V4(v) => Some(v),
            _ => None,
        })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (device, rest) = match args.len() {
        4 if args[0] != "-i" => ("eth0".to_string(), &args[..]),
        6 if args[0] == "-i" => (args[1].clone(), &args[2..]),
        _ => return die(USAGE),
    };
    let socket = match ArpSocket::open() {
        Ok(s) => s,
        Err(e) => return perror("socket", &e),
    };
    let Some(targ_hw) = Mac::parse_send_arp(&rest[3]) else {
        return die("Invalid hardware address");
    };
    let Some(src_hw) = Mac::parse_send_arp(&rest[1]) else {
        return die("Invalid hardware address");
    };
    let Some(src_ip) = ip_address(&rest[0]) else {
        return die(&format!("send_arp: unknown host {}", rest[0]));
    };
    let interface = device.split(':').next().unwrap_or("");
    let index = CString::new(interface)
        .map(|c| {
            // SAFETY: a NUL-terminated name.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        })
        .unwrap_or(0);
    if index == 0 {
        return perror("sendto", &std::io::Error::from_raw_os_error(libc::ENODEV));
    }
    let frame = send_arp_frame(src_ip, src_hw, targ_hw);
    match socket.send(index, &frame) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => perror("sendto", &e),
    }
}
