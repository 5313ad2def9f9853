#!/usr/bin/env python3
"""A vidrd client that stops reading: handshake, OPEN_SESSION with many credits, then never reads.

Used to measure the daemon's memory with a stalled client (docs/DAEMON.md, "Measurements").
Usage: stalled_client.py PORT SECONDS [WIDTH HEIGHT FRAMES STEPS]
"""
import socket, struct, sys, time

def field(tag, value):
    return struct.pack(">HI", tag, len(value)) + value

def frame(ftype, stream, payload=b""):
    return struct.pack(">IBBHI", len(payload), ftype, 0, 0, stream) + payload

port, seconds = int(sys.argv[1]), float(sys.argv[2])
w, h, frames, steps = (int(x) for x in (sys.argv[3:7] if len(sys.argv) > 6 else (16, 16, 16, 25)))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
s.connect(("127.0.0.1", port))
s.sendall(b"VIDRDP\r\n" + frame(0x01, 0, field(1, struct.pack(">H", 1)) + field(2, struct.pack(">H", 1))
                             + field(4, b"stalled-client")))
s.sendall(frame(0x10, 1, field(1, b"a red ball bouncing on grass") + field(4, struct.pack(">I", steps))
                + field(6, struct.pack(">I", frames)) + field(7, struct.pack(">I", w)) + field(8, struct.pack(">I", h))
                + field(12, b"\x01") + field(13, struct.pack(">I", 64))))
time.sleep(seconds)  # never read; keep the socket open
s.close()
