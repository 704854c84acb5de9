#!/usr/bin/env python3
"""A hostile fake UPnP IGD for lab tests: answers every SSDP M-SEARCH it sees
and multicasts ssdp:alive NOTIFYs, all pointing at itself.

  fakeigd.py OWN_IP SECONDS
"""
import socket
import struct
import sys
import time

own, seconds = sys.argv[1], float(sys.argv[2])
GROUP = ("239.255.255.250", 1900)
LOCATION = "http://%s:5000/rootDesc.xml" % own

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 1900))
mreq = struct.pack("4s4s", socket.inet_aton(GROUP[0]), socket.inet_aton(own))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(own))
s.settimeout(0.5)

notify = (
    "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=120\r\n"
    "LOCATION: %s\r\nNT: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    "NTS: ssdp:alive\r\nBOOTID.UPNP.ORG: %d\r\nUSN: uuid:fake::igd\r\n\r\n"
)
answer = (
    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: "
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:fake::igd\r\n"
    "LOCATION: %s\r\nBOOTID.UPNP.ORG: 1\r\n\r\n" % LOCATION
)
end = time.monotonic() + seconds
boot = 1
while time.monotonic() < end:
    boot += 1
    s.sendto((notify % (LOCATION, boot)).encode(), GROUP)
    try:
        data, peer = s.recvfrom(2048)
        if data.startswith(b"M-SEARCH"):
            s.sendto(answer.encode(), peer)
    except socket.timeout:
        pass
