#!/usr/bin/env python3
"""A minimal fake UPnP IGD (InternetGatewayDevice:1 / WANIPConnection:1) that
only accepts permanent leases, like some real routers: AddPortMapping and
AddAnyPortMapping with NewLeaseDuration != 0 fail with UPnP error 725
OnlyPermanentLeasesSupported (or another code, --lease-fault 402 for the older
IGDs that answer Invalid Args). miniupnpd never does this, hence the fake.

  fake725igd.py SECONDS [--lan 192.0.2.1] [--wan 203.0.113.2]
                [--lease-fault 725] [--conflict-first] [--no-add-any]
                [--preload PORT:IP ...]

Control plane only: it keeps a mapping table and answers SSDP (unicast and
multicast M-SEARCH on LAN:1900), HTTP descriptions and SOAP on LAN:5000; it
forwards no traffic and touches no firewall. Runs at most SECONDS, then exits.

stdout, one flushed line per event, for tests to read:
  ready lan=192.0.2.1 wan=203.0.113.2 bootid=N
  SSDP 192.0.2.10:40000 unicast st=... -> 1 answer(s)
  HTTP GET /rootDesc.xml from 192.0.2.10 -> 200
  ADD 41641 UDP 192.0.2.10:41641 lease=3600 -> 725
  ADD 41641 UDP 192.0.2.10:41641 lease=0 -> ok
  ADDANY 41641 UDP 192.0.2.10:41641 lease=0 -> ok port=41642
  DELETE 41641 UDP -> ok            (or -> 714)
  GETSPECIFIC 41641 UDP -> ok       (or -> 714)
  GETGENERIC 0 -> ok 41641 UDP      (or -> 713)
  GETEXTERNALIP -> 203.0.113.2
  AddPortMapping invalid args {...} -> 402   (malformed request)
  table: 41641/UDP->192.0.2.10:41641 ...   (after every change)
  exit after N s, M mapping(s) left
--preload PORT:IP puts a permanent UDP mapping for another client in the table
(to provoke 718 / AddAnyPortMapping); --conflict-first checks 718 before the
lease (725), as some routers do. --no-add-any makes AddAnyPortMapping unknown
(401 Invalid Action), as on a strict IGDv1.
"""
import argparse
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900
HTTP_PORT = 5000
MAX_BODY = 64 * 1024

IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
WAN_DEV = "urn:schemas-upnp-org:device:WANDevice:1"
WAN_CONN_DEV = "urn:schemas-upnp-org:device:WANConnectionDevice:1"
WANIP = "urn:schemas-upnp-org:service:WANIPConnection:1"
UUID_IGD = "uuid:fa7e0725-0000-4000-8000-000000000001"
UUID_WAN = "uuid:fa7e0725-0000-4000-8000-000000000002"
UUID_CONN = "uuid:fa7e0725-0000-4000-8000-000000000003"
CONTROL_PATH = "/ctl/IPConn"
SCPD_PATH = "/WANIPCn.xml"
ROOT_PATH = "/rootDesc.xml"

FAULTS = {
    401: "Invalid Action",
    402: "Invalid Args",
    501: "Action Failed",
    713: "SpecifiedArrayIndexInvalid",
    714: "NoSuchEntryInArray",
    716: "WildCardNotPermittedInExtPort",
    718: "ConflictInMappingEntry",
    725: "OnlyPermanentLeasesSupported",
    728: "NoPortMapsAvailable",
}

_out_lock = threading.Lock()


def log(line):
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# ---- descriptions --------------------------------------------------------

ROOT_DESC = """<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>{igd}</deviceType>
<friendlyName>fake725igd</friendlyName>
<manufacturer>edgereach lab</manufacturer>
<modelName>permanent-leases-only IGD</modelName>
<UDN>{uuid_igd}</UDN>
<deviceList>
<device>
<deviceType>{wan_dev}</deviceType>
<friendlyName>WANDevice</friendlyName>
<manufacturer>edgereach lab</manufacturer>
<modelName>WAN Device</modelName>
<UDN>{uuid_wan}</UDN>
<deviceList>
<device>
<deviceType>{wan_conn_dev}</deviceType>
<friendlyName>WANConnectionDevice</friendlyName>
<manufacturer>edgereach lab</manufacturer>
<modelName>WAN Connection Device</modelName>
<UDN>{uuid_conn}</UDN>
<serviceList>
<service>
<serviceType>{wanip}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>{control}</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>{scpd}</SCPDURL>
</service>
</serviceList>
</device>
</deviceList>
</device>
</deviceList>
<presentationURL>http://{lan}/</presentationURL>
</device>
</root>
"""

# action -> [(argument, direction, related state variable)]
ACTIONS = {
    "GetExternalIPAddress": [("NewExternalIPAddress", "out", "ExternalIPAddress")],
    "AddPortMapping": [
        ("NewRemoteHost", "in", "RemoteHost"),
        ("NewExternalPort", "in", "ExternalPort"),
        ("NewProtocol", "in", "PortMappingProtocol"),
        ("NewInternalPort", "in", "InternalPort"),
        ("NewInternalClient", "in", "InternalClient"),
        ("NewEnabled", "in", "PortMappingEnabled"),
        ("NewPortMappingDescription", "in", "PortMappingDescription"),
        ("NewLeaseDuration", "in", "PortMappingLeaseDuration"),
    ],
    "AddAnyPortMapping": [
        ("NewRemoteHost", "in", "RemoteHost"),
        ("NewExternalPort", "in", "ExternalPort"),
        ("NewProtocol", "in", "PortMappingProtocol"),
        ("NewInternalPort", "in", "InternalPort"),
        ("NewInternalClient", "in", "InternalClient"),
        ("NewEnabled", "in", "PortMappingEnabled"),
        ("NewPortMappingDescription", "in", "PortMappingDescription"),
        ("NewLeaseDuration", "in", "PortMappingLeaseDuration"),
        ("NewReservedPort", "out", "ExternalPort"),
    ],
    "DeletePortMapping": [
        ("NewRemoteHost", "in", "RemoteHost"),
        ("NewExternalPort", "in", "ExternalPort"),
        ("NewProtocol", "in", "PortMappingProtocol"),
    ],
    "GetSpecificPortMappingEntry": [
        ("NewRemoteHost", "in", "RemoteHost"),
        ("NewExternalPort", "in", "ExternalPort"),
        ("NewProtocol", "in", "PortMappingProtocol"),
        ("NewInternalPort", "out", "InternalPort"),
        ("NewInternalClient", "out", "InternalClient"),
        ("NewEnabled", "out", "PortMappingEnabled"),
        ("NewPortMappingDescription", "out", "PortMappingDescription"),
        ("NewLeaseDuration", "out", "PortMappingLeaseDuration"),
    ],
    "GetGenericPortMappingEntry": [
        ("NewPortMappingIndex", "in", "PortMappingNumberOfEntries"),
        ("NewRemoteHost", "out", "RemoteHost"),
        ("NewExternalPort", "out", "ExternalPort"),
        ("NewProtocol", "out", "PortMappingProtocol"),
        ("NewInternalPort", "out", "InternalPort"),
        ("NewInternalClient", "out", "InternalClient"),
        ("NewEnabled", "out", "PortMappingEnabled"),
        ("NewPortMappingDescription", "out", "PortMappingDescription"),
        ("NewLeaseDuration", "out", "PortMappingLeaseDuration"),
    ],
}

STATE_VARS = [
    ("ExternalIPAddress", "string", None),
    ("RemoteHost", "string", None),
    ("ExternalPort", "ui2", None),
    ("PortMappingProtocol", "string", ["TCP", "UDP"]),
    ("InternalPort", "ui2", None),
    ("InternalClient", "string", None),
    ("PortMappingEnabled", "boolean", None),
    ("PortMappingDescription", "string", None),
    ("PortMappingLeaseDuration", "ui4", None),
    ("PortMappingNumberOfEntries", "ui2", None),
]


def scpd_xml():
    parts = ['<?xml version="1.0"?>\n<scpd xmlns="urn:schemas-upnp-org:service-1-0">',
             "<specVersion><major>1</major><minor>0</minor></specVersion>", "<actionList>"]
    for name, args in ACTIONS.items():
        parts.append("<action><name>%s</name><argumentList>" % name)
        for arg, direction, var in args:
            parts.append(
                "<argument><name>%s</name><direction>%s</direction>"
                "<relatedStateVariable>%s</relatedStateVariable></argument>" % (arg, direction, var)
            )
        parts.append("</argumentList></action>")
    parts.append("</actionList><serviceStateTable>")
    for name, dtype, allowed in STATE_VARS:
        values = ""
        if allowed:
            values = "<allowedValueList>%s</allowedValueList>" % "".join(
                "<allowedValue>%s</allowedValue>" % v for v in allowed
            )
        parts.append('<stateVariable sendEvents="no"><name>%s</name><dataType>%s</dataType>%s'
                     "</stateVariable>" % (name, dtype, values))
    parts.append("</serviceStateTable></scpd>\n")
    return "\n".join(parts)


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


ENVELOPE = ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>%s</s:Body></s:Envelope>\r\n')


def soap_ok(action, fields):
    args = "".join("<%s>%s</%s>" % (k, xml_escape(str(v)), k) for k, v in fields)
    return 200, ENVELOPE % ('<u:%sResponse xmlns:u="%s">%s</u:%sResponse>' % (action, WANIP, args, action))


def soap_fault(code):
    # As miniupnpd sends it (HTTP 500).
    return 500, ENVELOPE % (
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode>'
        "<errorDescription>%s</errorDescription></UPnPError></detail></s:Fault>" % (code, FAULTS.get(code, "Error"))
    )


# ---- the mapping table ---------------------------------------------------

class Fault(Exception):
    def __init__(self, code, logged=False):
        super().__init__(code)
        self.code = code
        self.logged = logged  # already reported on stdout


class Igd:
    def __init__(self, wan, lease_fault, conflict_first):
        self.wan = wan
        self.lease_fault = lease_fault
        self.conflict_first = conflict_first
        self.lock = threading.Lock()
        # (external_port, "UDP"|"TCP") -> dict; insertion order = generic index
        self.table = {}

    def log_table(self):
        entries = " ".join(
            "%d/%s->%s:%d" % (p, proto, e["client"], e["port"]) for (p, proto), e in self.table.items()
        )
        log("table: %s" % (entries or "(empty)"))

    @staticmethod
    def port(args, name, allow_zero=False):
        try:
            v = int(args.get(name, "").strip())
        except ValueError:
            raise Fault(402)
        if not (0 <= v <= 65535) or (v == 0 and not allow_zero):
            raise Fault(402)
        return v

    @staticmethod
    def proto(args):
        p = args.get("NewProtocol", "").strip().upper()
        if p not in ("UDP", "TCP"):
            raise Fault(402)
        return p

    def mapping_args(self, args):
        ext = self.port(args, "NewExternalPort", allow_zero=True)
        proto = self.proto(args)
        internal = self.port(args, "NewInternalPort")
        client = args.get("NewInternalClient", "").strip()
        try:
            socket.inet_aton(client)
        except OSError:
            raise Fault(402)
        try:
            lease = int(args.get("NewLeaseDuration", "").strip())
        except ValueError:
            raise Fault(402)
        if lease < 0 or lease > 0xFFFFFFFF:
            raise Fault(402)
        enabled = args.get("NewEnabled", "1").strip().lower() in ("1", "true", "yes")
        entry = {"client": client, "port": internal, "enabled": enabled,
                 "desc": args.get("NewPortMappingDescription", ""), "lease": 0,
                 "remote": args.get("NewRemoteHost", "").strip()}
        return ext, proto, lease, entry

    def add(self, args):
        ext, proto, lease, entry = self.mapping_args(args)
        what = "ADD %d %s %s:%d lease=%d" % (ext, proto, entry["client"], entry["port"], lease)
        try:
            if ext == 0:
                raise Fault(716)
            with self.lock:
                other = self.table.get((ext, proto))
                conflict = other is not None and other["client"] != entry["client"]
                if self.conflict_first and conflict:
                    raise Fault(718)
                if lease != 0:
                    raise Fault(self.lease_fault)
                if conflict:
                    raise Fault(718)
                self.table[(ext, proto)] = entry
                log(what + " -> ok")
                self.log_table()
        except Fault as f:
            log("%s -> %d" % (what, f.code))
            f.logged = True
            raise
        return soap_ok("AddPortMapping", [])

    def add_any(self, args):
        ext, proto, lease, entry = self.mapping_args(args)
        what = "ADDANY %d %s %s:%d lease=%d" % (ext, proto, entry["client"], entry["port"], lease)
        try:
            if lease != 0:
                raise Fault(self.lease_fault)
            with self.lock:
                start = ext if ext >= 1024 else 1024
                chosen = None
                for i in range(65536 - 1024):
                    p = 1024 + (start - 1024 + i) % (65536 - 1024)
                    other = self.table.get((p, proto))
                    if other is None or other["client"] == entry["client"] and other["port"] == entry["port"]:
                        chosen = p
                        break
                if chosen is None:
                    raise Fault(728)
                self.table[(chosen, proto)] = entry
                log("%s -> ok port=%d" % (what, chosen))
                self.log_table()
        except Fault as f:
            log("%s -> %d" % (what, f.code))
            f.logged = True
            raise
        return soap_ok("AddAnyPortMapping", [("NewReservedPort", chosen)])

    def delete(self, args):
        ext = self.port(args, "NewExternalPort")
        proto = self.proto(args)
        with self.lock:
            if self.table.pop((ext, proto), None) is None:
                log("DELETE %d %s -> 714" % (ext, proto))
                raise Fault(714, logged=True)
            log("DELETE %d %s -> ok" % (ext, proto))
            self.log_table()
        return soap_ok("DeletePortMapping", [])

    @staticmethod
    def entry_fields(e):
        return [("NewInternalPort", e["port"]), ("NewInternalClient", e["client"]),
                ("NewEnabled", 1 if e["enabled"] else 0), ("NewPortMappingDescription", e["desc"]),
                ("NewLeaseDuration", e["lease"])]

    def get_specific(self, args):
        ext = self.port(args, "NewExternalPort")
        proto = self.proto(args)
        with self.lock:
            e = self.table.get((ext, proto))
            e = dict(e) if e else None
        if e is None:
            log("GETSPECIFIC %d %s -> 714" % (ext, proto))
            raise Fault(714, logged=True)
        log("GETSPECIFIC %d %s -> ok" % (ext, proto))
        return soap_ok("GetSpecificPortMappingEntry", self.entry_fields(e))

    def get_generic(self, args):
        try:
            index = int(args.get("NewPortMappingIndex", "").strip())
        except ValueError:
            raise Fault(402)
        with self.lock:
            items = list(self.table.items())
        if index < 0 or index >= len(items):
            log("GETGENERIC %d -> 713" % index)
            raise Fault(713, logged=True)
        (ext, proto), e = items[index]
        log("GETGENERIC %d -> ok %d %s" % (index, ext, proto))
        return soap_ok("GetGenericPortMappingEntry",
                       [("NewRemoteHost", e["remote"]), ("NewExternalPort", ext), ("NewProtocol", proto)]
                       + self.entry_fields(e))

    def external_ip(self, _args):
        log("GETEXTERNALIP -> %s" % self.wan)
        return soap_ok("GetExternalIPAddress", [("NewExternalIPAddress", self.wan)])

    def handle(self, action, args):
        handlers = {
            "GetExternalIPAddress": self.external_ip,
            "AddPortMapping": self.add,
            "AddAnyPortMapping": self.add_any,
            "DeletePortMapping": self.delete,
            "GetSpecificPortMappingEntry": self.get_specific,
            "GetGenericPortMappingEntry": self.get_generic,
        }
        if getattr(self, "no_add_any", False):
            handlers.pop("AddAnyPortMapping")
        h = handlers.get(action)
        if h is None:
            log("UNKNOWN %s -> 401" % action)
            return soap_fault(401)
        try:
            return h(args)
        except Fault as f:
            if not f.logged:
                log("%s invalid args %r -> %d" % (action, args, f.code))
            return soap_fault(f.code)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def parse_soap(body):
    """(action element name, {argument: text}) or None."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if local(root.tag) != "Envelope":
        return None
    soap_body = next((c for c in root if local(c.tag) == "Body"), None)
    if soap_body is None or len(soap_body) != 1:
        return None
    action = soap_body[0]
    return local(action.tag), {local(a.tag): (a.text or "") for a in action}


# ---- HTTP ----------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS
        # lookup that hangs in a namespace without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def make_handler(igd, root_desc, scpd):
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake725igd/1 UPnP/1.1"
        sys_version = ""
        protocol_version = "HTTP/1.0"

        def log_message(self, *a):
            pass

        def reply(self, status, body, ctype='text/xml; charset="utf-8"'):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            docs = {ROOT_PATH: root_desc, SCPD_PATH: scpd}
            doc = docs.get(self.path)
            status = 200 if doc is not None else 404
            log("HTTP GET %s from %s -> %d" % (self.path, self.client_address[0], status))
            self.reply(status, doc if doc is not None else "not found\n", "text/xml" if doc else "text/plain")

        def do_POST(self):
            if self.path != CONTROL_PATH:
                log("HTTP POST %s from %s -> 404" % (self.path, self.client_address[0]))
                return self.reply(404, "not found\n", "text/plain")
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self.reply(411, "length required\n", "text/plain")
            if length < 0 or length > MAX_BODY:
                return self.reply(413, "too large\n", "text/plain")
            body = self.rfile.read(length)
            parsed = parse_soap(body)
            header = self.headers.get("SOAPAction", "").strip().strip('"')
            service, _, header_action = header.partition("#")
            if parsed is None:
                log("SOAP unparsable request from %s -> 402" % self.client_address[0])
                return self.reply(*soap_fault(402))
            action, args = parsed
            if header_action != action or service != WANIP:
                log("SOAP header %r does not match <%s> -> 401" % (header, action))
                return self.reply(*soap_fault(401))
            self.reply(*igd.handle(action, args))

    return Handler


# ---- SSDP ----------------------------------------------------------------

def ssdp_targets(st):
    """The (ST, USN) answers a search for `st` gets."""
    all_targets = [
        ("upnp:rootdevice", UUID_IGD + "::upnp:rootdevice"),
        (UUID_IGD, UUID_IGD),
        (IGD, UUID_IGD + "::" + IGD),
        (UUID_WAN, UUID_WAN),
        (WAN_DEV, UUID_WAN + "::" + WAN_DEV),
        (UUID_CONN, UUID_CONN),
        (WAN_CONN_DEV, UUID_CONN + "::" + WAN_CONN_DEV),
        (WANIP, UUID_CONN + "::" + WANIP),
    ]
    if st == "ssdp:all":
        return all_targets
    return [t for t in all_targets if t[0] == st]


def parse_msearch(data):
    """{HEADER: value} of an M-SEARCH request, or None."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != "M-SEARCH * HTTP/1.1":
        return None
    headers = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().upper()] = value.strip()
    if headers.get("MAN", "").strip('"') != "ssdp:discover" or "ST" not in headers:
        return None
    return headers


def ssdp_answer(st, usn, location, boot_id):
    return ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nDATE: %s\r\nEXT:\r\n"
            "LOCATION: %s\r\nSERVER: Linux UPnP/1.1 fake725igd/1\r\nST: %s\r\nUSN: %s\r\n"
            'OPT: "http://schemas.upnp.org/upnp/1/0/"; ns=01\r\n01-NLS: %d\r\n'
            "BOOTID.UPNP.ORG: %d\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n"
            % (time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()), location, st, usn,
               boot_id, boot_id)).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seconds", type=float)
    ap.add_argument("--lan", default="192.0.2.1")
    ap.add_argument("--wan", default="203.0.113.2")
    ap.add_argument("--lease-fault", type=int, default=725)
    ap.add_argument("--conflict-first", action="store_true")
    ap.add_argument("--no-add-any", action="store_true")
    ap.add_argument("--preload", action="append", default=[], metavar="PORT:IP")
    opt = ap.parse_args()
    if not 0 < opt.seconds <= 3600:
        ap.error("SECONDS must be in (0, 3600]")

    igd = Igd(opt.wan, opt.lease_fault, opt.conflict_first)
    if opt.no_add_any:
        igd.no_add_any = True
    for p in opt.preload:
        port, _, ip = p.partition(":")
        igd.table[(int(port), "UDP")] = {"client": ip, "port": int(port), "enabled": True,
                                         "desc": "preloaded", "lease": 0, "remote": ""}
    location = "http://%s:%d%s" % (opt.lan, HTTP_PORT, ROOT_PATH)
    root_desc = ROOT_DESC.format(igd=IGD, wan_dev=WAN_DEV, wan_conn_dev=WAN_CONN_DEV, wanip=WANIP,
                                 uuid_igd=UUID_IGD, uuid_wan=UUID_WAN, uuid_conn=UUID_CONN,
                                 control=CONTROL_PATH, scpd=SCPD_PATH, lan=opt.lan)
    # BOOTID changes with every start, as UDA 1.1 asks.
    boot_id = int(time.time()) & 0x7FFFFFFF

    http = Server((opt.lan, HTTP_PORT), make_handler(igd, root_desc, scpd_xml()))
    http_thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    http_thread.start()

    # Unicast searches (and every answer) on LAN:1900; multicast ones on the
    # group, joined on the LAN interface only.
    uni = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uni.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    uni.bind((opt.lan, SSDP_PORT))
    multi = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    multi.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    multi.bind((SSDP_GROUP, SSDP_PORT))
    multi.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(SSDP_GROUP), socket.inet_aton(opt.lan)))
    log("ready lan=%s wan=%s bootid=%d" % (opt.lan, opt.wan, boot_id))
    if igd.table:
        igd.log_table()

    start = time.monotonic()
    end = start + opt.seconds
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([uni, multi], [], [], min(left, 0.5))
            for s in readable:
                data, peer = s.recvfrom(4096)
                how = "unicast" if s is uni else "multicast"
                headers = parse_msearch(data)
                if headers is None:
                    continue
                st = headers["ST"]
                answers = ssdp_targets(st)
                for target, usn in answers:
                    uni.sendto(ssdp_answer(target, usn, location, boot_id), peer)
                log("SSDP %s:%d %s st=%s -> %d answer(s)" % (peer[0], peer[1], how, st, len(answers)))
    except KeyboardInterrupt:
        pass
    finally:
        http.shutdown()
        http.server_close()
        log("exit after %.1f s, %d mapping(s) left" % (time.monotonic() - start, len(igd.table)))


if __name__ == "__main__":
    main()
