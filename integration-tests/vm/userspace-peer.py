#!/usr/bin/env python3
"""Peers of the userspace-equivalence VM test: the real servers and the client agent, each run in
its own network namespace and driven over a UNIX socket. Python standard library only.

    userspace-peer.py servers IP...        real servers on every IP: port 8080 answers the
                                           server's IP and closes; port 8081 answers it and keeps
                                           the connection until the client closes
    userspace-peer.py client CONTROL_SOCKET
                                           the client agent; one command per line, one answer each:
        conn SRC SPORT VIP VPORT close|hold -> "ok NAME" or "ok NAME ID" (hold), "err TEXT"
                                              (SPORT 0: the kernel's choice)
        release ID                          -> "ok"  (closes a held connection)
        quit
"""
import os
import socket
import sys
import threading


def serve(ip, port, hold):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port))
    ls.listen(256)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=answer, args=(c, ip, hold), daemon=True).start()


def answer(c, ip, hold):
    try:
        c.sendall(f"{ip}\n".encode())
        if hold:
            c.settimeout(600)
            while c.recv(256):
                pass
    except OSError:
        pass
    finally:
        c.close()


def servers(ips):
    for ip in ips:
        for port, hold in ((8080, False), (8081, True)):
            threading.Thread(target=serve, args=(ip, port, hold), daemon=True).start()
    threading.Event().wait()


def read_name(s):
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(64)
        if not b:
            break
        got += b
    return got.decode(errors="replace").strip()


def client(path):
    held = {}
    next_id = 1
    if os.path.exists(path):
        os.unlink(path)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    conn, _ = ls.accept()
    f = conn.makefile("rw")
    for line in f:
        w = line.split()
        if not w:
            continue
        if w[0] == "quit":
            break
        try:
            if w[0] == "conn":
                src, sport, vip, vport, mode = w[1], int(w[2]), w[3], int(w[4]), w[5]
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.settimeout(20)
                s.bind((src, sport))
                s.connect((vip, vport))
                name = read_name(s)
                if mode == "hold":
                    held[next_id] = s
                    f.write(f"ok {name or '-'} {next_id}\n")
                    next_id += 1
                else:
                    while s.recv(256):
                        pass
                    s.close()
                    f.write(f"ok {name or '-'}\n")
            elif w[0] == "release":
                held.pop(int(w[1])).close()
                f.write("ok\n")
            else:
                f.write(f"err unknown command {w[0]}\n")
        except (OSError, KeyError, ValueError, IndexError) as e:
            f.write(f"err {e}\n")
        f.flush()
    for s in held.values():
        s.close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "servers":
        servers(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        sys.exit(__doc__)
