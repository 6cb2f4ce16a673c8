#!/usr/bin/env python3
"""Stands in for systemd's NOTIFY_SOCKET in the relay test: binds a datagram socket (a path, or "@name" for the
abstract namespace), writes every message it receives to OUT (one per line, newlines as '|'), until killed."""
import socket
import sys

addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
with open(out, "a", buffering=1) as f:
    print("listening", flush=True, file=f)
    while True:
        data = s.recv(65536)
        print(data.decode().replace("\n", "|"), file=f)
