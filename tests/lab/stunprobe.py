#!/usr/bin/env python3
"""Minimal RFC 5389 STUN Binding prober for the namespace lab (stdlib only).

All requests leave ONE local UDP socket, so the mapped ports seen by the
different servers show the NAT's mapping behaviour: equal ports = endpoint-
independent mapping ("easy"), different ports = endpoint-dependent ("hard").

Output: one line per server, in argument order:
    SERVER MAPPED_IP:MAPPED_PORT      or      SERVER timeout
Exit status 0 only if every server answered.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

MAGIC = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
ATTR_MAPPED = 0x0001
ATTR_CHANGE_REQUEST = 0x0003
ATTR_XOR_MAPPED = 0x0020
ATTR_RESPONSE_ORIGIN = 0x802B
ATTR_OTHER_ADDRESS = 0x802C


def parse_server(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "3478"
    return (socket.gethostbyname(host), int(port))


def build_request(txid, change_ip=False, change_port=False):
    attrs = b""
    if change_ip or change_port:
        flags = (0x4 if change_ip else 0) | (0x2 if change_port else 0)
        attrs = struct.pack("!HHI", ATTR_CHANGE_REQUEST, 4, flags)
    return struct.pack("!HHI", BINDING_REQUEST, len(attrs), MAGIC) + txid + attrs


def decode_addr(value, xor, txid):
    """Decode a (XOR-)MAPPED-ADDRESS style value; IPv4 only (lab is IPv4)."""
    if len(value) < 8 or value[1] != 0x01:
        return None
    port = struct.unpack("!H", value[2:4])[0]
    raw = value[4:8]
    if xor:
        port ^= MAGIC >> 16
        raw = bytes(a ^ b for a, b in zip(raw, struct.pack("!I", MAGIC)))
    return "%s:%d" % (socket.inet_ntoa(raw), port)


def parse_response(data):
    """Return (txid, {attr_type: 'ip:port'}) for a Binding success, else None."""
    if len(data) < 20:
        return None
    mtype, mlen, magic = struct.unpack("!HHI", data[:8])
    if mtype != BINDING_SUCCESS or magic != MAGIC or len(data) < 20 + mlen:
        return None
    txid = data[8:20]
    attrs = {}
    pos, end = 20, 20 + mlen
    while pos + 4 <= end:
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        value = data[pos + 4:pos + 4 + alen]
        if atype in (ATTR_MAPPED, ATTR_RESPONSE_ORIGIN, ATTR_OTHER_ADDRESS):
            attrs[atype] = decode_addr(value, False, txid)
        elif atype == ATTR_XOR_MAPPED:
            attrs[atype] = decode_addr(value, True, txid)
        pos += 4 + alen + ((4 - alen % 4) % 4)
    return txid, attrs


def probe(servers, sock, timeout, retries, change_ip, change_port, verbose):
    """Send to every server; retransmit unanswered ones up to `retries` times."""
    pending = {}  # txid -> index
    results = [None] * len(servers)
    txids = [os.urandom(12) for _ in servers]
    for i, txid in enumerate(txids):
        pending[txid] = i
    for attempt in range(retries):
        for txid, i in list(pending.items()):
            sock.sendto(build_request(txid, change_ip, change_port), servers[i][1])
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data, src = sock.recvfrom(2048)
            parsed = parse_response(data)
            if parsed is None or parsed[0] not in pending:
                continue
            txid, attrs = parsed
            i = pending.pop(txid)
            results[i] = attrs.get(ATTR_XOR_MAPPED) or attrs.get(ATTR_MAPPED)
            if verbose:
                print("# %s from=%s:%d origin=%s other=%s attempt=%d" % (
                    servers[i][0], src[0], src[1], attrs.get(ATTR_RESPONSE_ORIGIN),
                    attrs.get(ATTR_OTHER_ADDRESS), attempt + 1), file=sys.stderr)
        if not pending:
            break
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("servers", nargs="+", help="HOST[:PORT] (default port 3478)")
    ap.add_argument("--port", type=int, default=0, help="local UDP port (default: any)")
    ap.add_argument("--bind", default="0.0.0.0", help="local address (default 0.0.0.0)")
    ap.add_argument("--timeout", type=float, default=0.5, help="seconds per attempt")
    ap.add_argument("--retries", type=int, default=4, help="attempts per server")
    ap.add_argument("--change-ip", action="store_true", help="RFC 5780 CHANGE-REQUEST ip")
    ap.add_argument("--change-port", action="store_true", help="RFC 5780 CHANGE-REQUEST port")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print RESPONSE-ORIGIN / OTHER-ADDRESS to stderr")
    args = ap.parse_args()
    if args.retries < 1 or args.retries > 20 or args.timeout <= 0 or args.timeout > 10:
        ap.error("retries must be 1..20 and timeout 0..10 s (keeps runs bounded)")

    servers = [(s, parse_server(s)) for s in args.servers]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    if args.verbose:
        print("# local %s:%d" % sock.getsockname(), file=sys.stderr)
    try:
        results = probe(servers, sock, args.timeout, args.retries,
                        args.change_ip, args.change_port, args.verbose)
    finally:
        sock.close()
    for (name, _), mapped in zip(servers, results):
        print("%s %s" % (name, mapped if mapped else "timeout"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
