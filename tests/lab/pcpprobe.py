#!/usr/bin/env python3
"""Minimal RFC 6887 PCP MAP client for the namespace lab (stdlib only).

Debian has no PCP client package, so this proves the router's PCP side:
    pcpprobe.py GATEWAY CLIENT_IP INTERNAL_PORT [--lifetime S] [--proto udp|tcp]
Prints `result=N epoch=N external=IP:PORT lifetime=S nonce=HEX` and exits 0 when the
server answered with result 0 (SUCCESS); exit 1 on error result, 2 on timeout.
--lifetime 0 deletes the mapping; pass the --nonce printed when it was made
(PCP ties a mapping to its nonce).
"""
import argparse
import os
import select
import socket
import struct
import sys

PCP_PORT = 5351
OP_MAP = 1


def v4mapped(ip):
    return b"\x00" * 10 + b"\xff\xff" + socket.inet_aton(ip)


def build_map(client_ip, nonce, proto, iport, lifetime):
    header = struct.pack("!BBHI", 2, OP_MAP, 0, lifetime) + v4mapped(client_ip)
    body = nonce + struct.pack("!B3xHH", proto, iport, iport) + v4mapped("0.0.0.0")
    return header + body


def parse(data, nonce):
    if len(data) < 60 or data[0] != 2 or data[1] != (0x80 | OP_MAP):
        return None
    result = data[3]
    lifetime, epoch = struct.unpack("!II", data[4:12])
    if data[24:36] != nonce:
        return None
    eport = struct.unpack("!H", data[42:44])[0]
    eip = socket.inet_ntoa(data[56:60])
    return result, epoch, "%s:%d" % (eip, eport), lifetime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gateway")
    ap.add_argument("client_ip")
    ap.add_argument("internal_port", type=int)
    ap.add_argument("--lifetime", type=int, default=120)
    ap.add_argument("--proto", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--timeout", type=float, default=0.5, help="seconds per attempt")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--nonce", help="24 hex digits (default: random)")
    args = ap.parse_args()
    proto = 17 if args.proto == "udp" else 6
    nonce = bytes.fromhex(args.nonce) if args.nonce else os.urandom(12)
    if len(nonce) != 12:
        ap.error("--nonce must be 24 hex digits")
    req = build_map(args.client_ip, nonce, proto, args.internal_port, args.lifetime)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.client_ip, 0))
    try:
        for _ in range(max(1, min(args.retries, 10))):
            sock.sendto(req, (args.gateway, PCP_PORT))
            ready, _, _ = select.select([sock], [], [], min(args.timeout, 5))
            if not ready:
                continue
            data, _ = sock.recvfrom(1100)
            parsed = parse(data, nonce)
            if parsed is None:
                continue
            result, epoch, ext, lifetime = parsed
            print("result=%d epoch=%d external=%s lifetime=%d nonce=%s" % (
                result, epoch, ext, lifetime, nonce.hex()))
            return 0 if result == 0 else 1
    finally:
        sock.close()
    print("timeout")
    return 2


if __name__ == "__main__":
    sys.exit(main())
