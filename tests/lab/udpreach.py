#!/usr/bin/env python3
"""UDP reachability for lab tests (stdlib only, bounded).

  udpreach.py listen PORT SECONDS        print "got SEQ T" per datagram
  udpreach.py listen6 PORT SECONDS       the same on a dual-stack [::]:PORT
                                         socket (as tailscaled listens)
  udpreach.py send HOST PORT COUNT GAP   send "SEQ" datagrams, each from a
                                         fresh source port (conntrack keeps
                                         flows alive across rule changes);
                                         HOST may be an IPv6 address
"""
import socket
import sys
import time


def listen(port, seconds, dual=False):
    if dual:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
    end = time.monotonic() + seconds
    print("ready", flush=True)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            return
        print("got %s %.3f" % (data.decode(errors="replace"), time.time()), flush=True)


def send(host, port, count, gap, first=0):
    for seq in range(first, first + count):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.sendto(str(seq).encode(), (host, port))
        s.close()
        print("sent %d %.3f" % (seq, time.time()), flush=True)
        time.sleep(gap)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "listen":
        listen(int(sys.argv[2]), float(sys.argv[3]))
    elif mode == "listen6":
        listen(int(sys.argv[2]), float(sys.argv[3]), dual=True)
    elif mode == "send":
        first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), first)
    else:
        sys.exit("usage: udpreach.py listen|listen6 PORT SECONDS | send HOST PORT COUNT GAP [FIRST_SEQ]")
