#!/usr/bin/env python3
"""Real servers for the lvsd VM scenarios: many listeners in one process, started and stopped on
command. Runs inside the real servers' network namespace; Python standard library only.

    lvsd-rs-server.py CONTROL_SOCKET

Commands, one per connection to the UNIX socket CONTROL_SOCKET, answered with "ok" or "error ...":

    start http IP PORT     a TCP server answering every request "HTTP/1.0 200 OK"
    start tcp IP PORT      a TCP server that accepts and closes
    start udp IP PORT      a UDP server answering every datagram "PONG"
    stop KIND IP PORT      close that listener (new connections are refused)
    quit
"""
import os
import socket
import sys
import threading

listeners = {}
lock = threading.Lock()


def serve_tcp(sock, http):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        try:
            conn.settimeout(2)
            if http:
                try:
                    conn.recv(4096)
                except OSError:
                    pass
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except OSError:
            pass
        finally:
            conn.close()


def serve_udp(sock):
    while True:
        try:
            _, peer = sock.recvfrom(4096)
            sock.sendto(b"PONG", peer)
        except OSError:
            return


def start(kind, ip, port):
    key = (kind, ip, port)
    with lock:
        if key in listeners:
            return "ok (already)"
        if kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        if kind == "udp":
            t = threading.Thread(target=serve_udp, args=(s,), daemon=True)
        else:
            s.listen(64)
            t = threading.Thread(target=serve_tcp, args=(s, kind == "http"), daemon=True)
        t.start()
        listeners[key] = s
    return "ok"


def stop(kind, ip, port):
    with lock:
        s = listeners.pop((kind, ip, port), None)
    if s is None:
        return "ok (not running)"
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
    return "ok"


def main():
    path = sys.argv[1]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(path)
    ctl.listen(16)
    while True:
        conn, _ = ctl.accept()
        with conn:
            words = conn.recv(1024).decode().split()
            try:
                if words[:1] == ["quit"]:
                    conn.sendall(b"ok\n")
                    return
                cmd, kind, ip, port = words
                if kind not in ("http", "tcp", "udp"):
                    raise ValueError("kind")
                answer = (start if cmd == "start" else stop)(kind, ip, int(port))
            except Exception as e:  # report anything to the driver
                answer = f"error {e!r}"
            conn.sendall((answer + "\n").encode())


if __name__ == "__main__":
    main()
