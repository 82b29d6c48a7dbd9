//! A small HTTP/1.1 server: one thread per connection (bounded), one request per connection
//! (`Connection: close`), strict limits on the request head and body, read/write timeouts,
//! optional TLS (rustls). Request heads are parsed by `httparse`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers.
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
    /// Connections served at once; more get 503.
    pub max_connections: usize,
    /// Time allowed to receive the whole request, and to send the response.
    pub io_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            max_connections: 64,
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    pub query: String,
    /// Header names lower-cased; a repeated header keeps its values joined with ", ".
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub peer: IpAddr,
    pub tls: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The value of one cookie.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        let h = self.header("cookie")?;
        h.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }

    /// A query parameter (raw, not decoded: used for simple tokens only).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        })
    }

    /// A minimal request (tests).
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: String::new(),
            headers: HashMap::new(),
            body: Vec::new(),
            peer: IpAddr::from([127, 0, 0, 1]),
            tls: false,
        }
    }
}

/// One response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }

    pub fn html(status: u16, body: String) -> Response {
        Response::new(status, "text/html; charset=utf-8", body)
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn redirect(location: &str) -> Response {
        let mut r = Response::new(303, "text/plain; charset=utf-8", "See Other\n");
        r.headers.push(("Location".into(), location.into()));
        r
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Headers every response carries.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

pub fn write_response<W: Write>(w: &mut W, r: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        // Header values are ours; strip line breaks anyway.
        head.push_str(&format!("{k}: {}\r\n", v.replace(['\r', '\n'], " ")));
    }
    for (k, v) in SECURITY_HEADERS {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    w.write_all(head.as_bytes())?;
    if !head_only {
        w.write_all(&r.body)?;
    }
    w.flush()
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed or timed out before sending anything: no answer.
    Closed,
    /// Answer with this status and message.
    Reject(u16, &'static str),
    /// The body is larger than allowed: answer 413 (after reading and dropping a body of this
    /// many more bytes, if it is not huge, so the client sees the answer).
    TooLarge(usize),
}

/// Percent-decodes a path; `None` for a bad escape, a NUL or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Reads one request from `s`.
pub fn read_request<S: Read>(
    s: &mut S,
    limits: &Limits,
    peer: IpAddr,
    tls: bool,
    deadline: Instant,
) -> Result<Request, ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > limits.max_head {
            return Err(ReadError::Reject(431, "request head too large"));
        }
        if Instant::now() > deadline {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Reject(408, "request not received in time")
            });
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                return Err(if buf.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Reject(408, "request not received in time")
                })
            }
        }
    };
    if head_end > limits.max_head {
        return Err(ReadError::Reject(431, "request head too large"));
    }
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ReadError::Reject(400, "bad request")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Reject(431, "too many headers"))
        }
        Err(_) => return Err(ReadError::Reject(400, "malformed request")),
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err(ReadError::Reject(400, "bad request target"));
    }
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q.to_string()),
        None => (target, String::new()),
    };
    let path = percent_decode(raw_path).ok_or(ReadError::Reject(400, "bad path"))?;
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(ReadError::Reject(400, "bad path"));
    }
    let mut map: HashMap<String, String> = HashMap::new();
    let mut content_lengths = 0;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ReadError::Reject(400, "header value is not UTF-8"))?
            .trim()
            .to_string();
        if name == "content-length" {
            content_lengths += 1;
        }
        map.entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    if map.contains_key("transfer-encoding") {
        return Err(ReadError::Reject(
            501,
            "transfer encodings are not supported",
        ));
    }
    if content_lengths > 1 {
        return Err(ReadError::Reject(400, "repeated Content-Length"));
    }
    let len = match map.get("content-length") {
        None => 0,
        Some(v) => {
            if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReadError::Reject(400, "bad Content-Length"));
            }
            v.parse::<usize>()
                .map_err(|_| ReadError::Reject(400, "bad Content-Length"))?
        }
    };
    if len > limits.max_body {
        let already = buf.len() - head_end;
        return Err(ReadError::TooLarge(len.saturating_sub(already)));
    }
    let mut body = buf[head_end..].to_vec();
    if body.len() > len {
        return Err(ReadError::Reject(400, "more data than Content-Length"));
    }
    while body.len() < len {
        if Instant::now() > deadline {
            return Err(ReadError::Reject(408, "request body not received in time"));
        }
        let want = (len - body.len()).min(chunk.len());
        match s.read(&mut chunk[..want]) {
            Ok(0) => return Err(ReadError::Reject(400, "request body cut short")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Reject(408, "request body not received in time")),
        }
    }
    Ok(Request {
        method,
        path,
        query,
        headers: map,
        body,
        peer,
        tls,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The application: answers one request.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Serves one connection on a stream (plain or TLS).
fn serve_stream<S: Read + Write>(
    s: &mut S,
    limits: &Limits,
    peer: IpAddr,
    tls: bool,
    handler: &Handler,
) {
    let deadline = Instant::now() + limits.io_timeout;
    match read_request(s, limits, peer, tls, deadline) {
        Ok(req) => {
            let head_only = req.method == "HEAD";
            let resp = handler(&req);
            let _ = write_response(s, &resp, head_only);
        }
        Err(ReadError::Closed) => {}
        Err(ReadError::Reject(status, msg)) => {
            let _ = write_response(s, &Response::text(status, format!("{msg}\n")), false);
        }
        Err(ReadError::TooLarge(rest)) => {
            // Drop the body (up to a bound, within the time left) so the client reads the 413.
            if rest <= 16 * 1024 * 1024 {
                let mut left = rest;
                let mut chunk = [0u8; 16384];
                while left > 0 && Instant::now() < deadline {
                    match s.read(&mut chunk[..left.min(16384)]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left -= n,
                    }
                }
            }
            let _ = write_response(s, &Response::text(413, "request body too large\n"), false);
        }
    }
}

/// Accepts connections forever.
pub fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: Arc<Handler>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map(|a: SocketAddr| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let _ = stream.set_read_timeout(Some(limits.io_timeout));
        let _ = stream.set_write_timeout(Some(limits.io_timeout));
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            if tls.is_none() {
                let mut s = stream;
                let _ = write_response(&mut s, &Response::text(503, "busy\n"), false);
            }
            continue;
        }
        let handler = handler.clone();
        let tls = tls.clone();
        let active2 = active.clone();
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                connection(stream, peer, tls, &limits, &*handler);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn connection(
    mut stream: TcpStream,
    peer: IpAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    handler: &Handler,
) {
    match tls {
        None => serve_stream(&mut stream, limits, peer, false, handler),
        Some(cfg) => {
            let conn = match rustls::ServerConnection::new(cfg) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("TLS: {e}");
                    return;
                }
            };
            let mut tls_stream = rustls::StreamOwned::new(conn, stream);
            serve_stream(&mut tls_stream, limits, peer, true, handler);
            tls_stream.conn.send_close_notify();
            let _ = tls_stream.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8], limits: &Limits) -> Result<Request, ReadError> {
        let mut c = std::io::Cursor::new(raw.to_vec());
        read_request(
            &mut c,
            limits,
            IpAddr::from([127, 0, 0, 1]),
            false,
            Instant::now() + Duration::from_secs(5),
        )
    }

    #[test]
    fn parses_a_request_with_body_and_cookies() {
        let r = read(
            b"POST /api/x%20y?a=1 HTTP/1.1\r\nHost: h\r\nCookie: a=1; sid=abc\r\nContent-Length: 3\r\n\r\nxyz",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/x y");
        assert_eq!(r.query_param("a"), Some("1"));
        assert_eq!(r.cookie("sid"), Some("abc"));
        assert_eq!(r.cookie("none"), None);
        assert_eq!(r.body, b"xyz");
    }

    #[test]
    fn rejects_bad_requests() {
        let l = Limits {
            max_body: 10,
            ..Limits::default()
        };
        let status = |raw: &[u8]| match read(raw, &l) {
            Err(ReadError::Reject(s, _)) => s,
            Err(ReadError::TooLarge(_)) => 413,
            Err(ReadError::Closed) => 0,
            Ok(_) => 200,
        };
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET /a/../b HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET /%00 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET /%zz HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET http://x/ HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            400
        );
        assert_eq!(status(b""), 0);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 20_000));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&big), 431);
    }

    #[test]
    fn responses_carry_security_headers() {
        let mut out = Vec::new();
        write_response(&mut out, &Response::text(200, "hi"), false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("X-Frame-Options: DENY"));
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.ends_with("\r\n\r\nhi"));
    }
}
