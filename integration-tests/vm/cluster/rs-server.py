#!/usr/bin/env python3
"""A real server of cluster.py: a small HTTP server that names itself, and an echo endpoint.

    rs-server.py NAME ADDRESS PORT

Runs in a real server's network namespace. One thread per connection:
- `GET ...` (HTTP/1.0, headers up to the blank line): answers `200 OK` with the body `NAME\\n`
  and closes (what the clients and nanny's check `send = "GET / HTTP/1.0\\r\\n\\r\\n"`,
  `expect = "HTTP"` see);
- `ECHO\\n`: a long-lived connection: answers `NAME\\n`, then every line L it receives as
  `NAME L\\n`, until the client closes.
Standard library only; SIGTERM stops it (the listener and every connection close).
"""
import signal
import socket
import socketserver
import sys


class Handler(socketserver.StreamRequestHandler):
    timeout = 600

    def handle(self):
        name = self.server.name
        first = self.rfile.readline(1024)
        if first.startswith(b"ECHO"):
            self.wfile.write(f"{name}\n".encode())
            self.wfile.flush()
            for line in self.rfile:
                self.wfile.write(f"{name} ".encode() + line)
                self.wfile.flush()
            return
        # HTTP: skip the headers (a request without them ends at EOF or the blank line).
        while True:
            line = self.rfile.readline(1024)
            if not line or line in (b"\r\n", b"\n"):
                break
        body = f"{name}\n".encode()
        self.wfile.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


def main():
    if len(sys.argv) != 4:
        print("usage: rs-server.py NAME ADDRESS PORT", file=sys.stderr)
        return 2
    name, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    srv = Server((addr, port), Handler)
    srv.name = name

    def stop(_sig, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"{name} listening on {addr}:{port}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
