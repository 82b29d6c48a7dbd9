//! `demo-httpd`: the real servers of `scripts/demo`. A tiny HTTP/1.0 server that answers every
//! request with its own name (`rs1`, ...), so `curl http://VIP/` shows which real server the
//! director picked. Only the standard library: it runs on a fresh machine with nothing else.
//!
//!     demo-httpd NAME [ADDRESS:PORT]     (default 0.0.0.0:80)
//!
//! One thread per connection, each bounded by a 5 s read timeout and a 4 KiB request; the
//! response closes the connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: demo-httpd NAME [ADDRESS:PORT]";

fn serve(mut s: TcpStream, name: &str) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    // Read the request head (up to its blank line, 4 KiB, or the client's FIN).
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while req.len() < 4096 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let head = req.starts_with(b"HEAD ");
    let body = format!("{name}\n");
    let mut resp = format!(
        "HTTP/1.0 200 OK\r\nServer: demo-httpd\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        resp.push_str(&body);
    }
    let _ = s.write_all(resp.as_bytes());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, addr) = match args.as_slice() {
        [n] => (n.clone(), "0.0.0.0:80".to_string()),
        [n, a] => (n.clone(), a.clone()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if name.is_empty() || name.starts_with('-') {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("demo-httpd: {addr}: expected ADDRESS:PORT");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-httpd: {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("demo-httpd: {name} listening on {addr}");
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                let name = name.clone();
                if let Err(e) = std::thread::Builder::new().spawn(move || serve(s, &name)) {
                    eprintln!("demo-httpd: cannot start a thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("demo-httpd: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    ExitCode::SUCCESS
}
