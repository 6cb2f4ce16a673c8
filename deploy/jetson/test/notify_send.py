#!/usr/bin/env python3
"""What the daemon does inside the container: waits for NOTIFY_SOCKET to exist, then sends each argument as one
datagram (sd_notify protocol)."""
import os
import socket
import sys
import time

path = os.environ["NOTIFY_SOCKET"]
deadline = time.time() + 5
while not os.path.exists(path) and time.time() < deadline:
    time.sleep(0.02)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for message in sys.argv[1:]:
    s.sendto(message.encode(), path)
