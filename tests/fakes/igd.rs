//! The UPnP IGD half of the fake router: SSDP search answers on
//! `addr`:1900 and an HTTP server on `addr` for the device description, the
//! WANIPConnection:1 SOAP actions and the IGDv2 WANIPv6FirewallControl:1
//! pinhole actions, written here by hand (UPnP IGD 1.0 and 2.0) and
//! independent of the crate's codecs and of igd-next. Scriptable: only
//! permanent leases (fault 725), a port already held by another client
//! (fault 718), inbound pinholes refused (703), and a reboot (new BOOTID,
//! empty tables).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;

use super::router::Seen;

const WANIP: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
const FIREWALL: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";

/// How the fake IGD behaves.
#[derive(Clone, Debug, Default)]
pub struct IgdOptions {
    /// AddPortMapping with a lease other than 0 fails with 725.
    pub permanent_only: bool,
    /// A UDP port already mapped to another client (provokes 718).
    pub taken: Option<(u16, Ipv4Addr)>,
    /// The IPv6 firewall allows no inbound pinholes (AddPinhole fails with 703).
    pub pinholes_refused: bool,
}

/// One IPv6 pinhole: internal client, internal port, IANA protocol, lease.
pub type Pinhole = (Ipv6Addr, u16, u8, u32);

#[derive(Debug)]
struct State {
    options: IgdOptions,
    boot_id: u32,
    /// External UDP port -> (internal client, internal port, lease).
    table: BTreeMap<u16, (Ipv4Addr, u16, u32)>,
    /// UniqueID -> pinhole.
    pinholes: BTreeMap<u16, Pinhole>,
    next_pinhole_id: u16,
    seen: Vec<Seen>,
}

/// The fake IGD; dropping it stops its tasks.
pub struct FakeIgd {
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeIgd {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeIgd {
    /// Start on `addr` (SSDP on 1900, HTTP on a free port).
    pub async fn start(addr: Ipv4Addr, options: IgdOptions) -> Self {
        let ssdp = ssdp_socket(addr).expect("bind the fake IGD's SSDP port on loopback");
        let http = TcpListener::bind(SocketAddr::from((addr, 0)))
            .await
            .expect("bind the fake IGD's HTTP port");
        let location = format!("http://{}/rootDesc.xml", http.local_addr().unwrap());
        let mut table = BTreeMap::new();
        if let Some((port, client)) = options.taken {
            table.insert(port, (client, port, 0));
        }
        let state = Arc::new(Mutex::new(State {
            options,
            boot_id: 1,
            table,
            pinholes: BTreeMap::new(),
            next_pinhole_id: 1,
            seen: Vec::new(),
        }));
        let tasks = vec![
            tokio::spawn(answer_searches(ssdp, location, state.clone())),
            tokio::spawn(serve_http(http, state.clone())),
        ];
        FakeIgd { state, tasks }
    }

    /// SOAP actions answered so far (`kind` is the action, `lifetime` the
    /// lease asked, `answered` false for a fault).
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The mapping table: external port -> internal client, port, lease.
    pub fn table(&self) -> BTreeMap<u16, (Ipv4Addr, u16, u32)> {
        self.state.lock().unwrap().table.clone()
    }

    /// The IPv6 pinholes: UniqueID -> client, port, protocol, lease.
    pub fn pinholes(&self) -> BTreeMap<u16, Pinhole> {
        self.state.lock().unwrap().pinholes.clone()
    }

    /// A silent loss: the table empties, nothing is announced, same BOOTID.
    pub fn forget(&self) {
        self.state.lock().unwrap().table.clear();
    }

    /// A reboot: a new BOOTID and an empty table.
    pub fn reboot(&self) {
        let mut st = self.state.lock().unwrap();
        st.boot_id += 1;
        st.table.clear();
        st.pinholes.clear();
    }
}

async fn answer_searches(socket: UdpSocket, location: String, state: Arc<Mutex<State>>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if !text.starts_with("M-SEARCH") {
            continue;
        }
        let st = header(&text, "ST").unwrap_or("upnp:rootdevice").to_string();
        let boot_id = state.lock().unwrap().boot_id;
        let answer = format!(
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nST: {st}\r\n\
             USN: uuid:fa7e0000-0000-4000-8000-000000000001::{st}\r\nLOCATION: {location}\r\n\
             SERVER: fake/1.0 UPnP/1.1 edgereach-test/1.0\r\nBOOTID.UPNP.ORG: {boot_id}\r\n\r\n"
        );
        let _ = socket.send_to(answer.as_bytes(), from).await;
    }
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve_http(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = one_request(stream, state).await;
        });
    }
}

/// Read one request (head, then Content-Length bytes, at most 64 KiB).
async fn one_request(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let body_at = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 || data.len() > 65536 {
            return Ok(());
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..body_at]).to_string();
    let length: usize = header(&head, "Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(65536);
    while data.len() < body_at + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[body_at..]).to_string();
    let (status, reply) = if head.starts_with("GET /rootDesc.xml ") {
        (200, ROOT_DESC.to_string())
    } else if head.starts_with("POST /ctl/IPConn ") {
        let action = header(&head, "SOAPAction")
            .and_then(|v| v.trim_matches('"').split_once('#'))
            .map(|(_, a)| a.to_string())
            .unwrap_or_default();
        soap(&mut state.lock().unwrap(), &action, &body)
    } else if head.starts_with("POST /ctl/IP6FCtl ") {
        let action = header(&head, "SOAPAction")
            .and_then(|v| v.trim_matches('"').split_once('#'))
            .filter(|(service, _)| *service == FIREWALL)
            .map(|(_, a)| a.to_string())
            .unwrap_or_default();
        firewall_soap(&mut state.lock().unwrap(), &action, &body)
    } else {
        (404, String::new())
    };
    let reason = match status {
        200 => "OK",
        500 => "Internal Server Error",
        _ => "Not Found",
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

fn arg(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let from = body.find(&open)? + open.len();
    let to = from + body[from..].find(&close)?;
    Some(body[from..to].trim().to_string())
}

fn ok(action: &str, args: &[(&str, String)]) -> (u16, String) {
    ok_for(WANIP, action, args)
}

fn ok_for(service: &str, action: &str, args: &[(&str, String)]) -> (u16, String) {
    let inner: String = args
        .iter()
        .map(|(k, v)| format!("<{k}>{v}</{k}>"))
        .collect();
    (
        200,
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{action}Response xmlns:u=\"{service}\">{inner}</u:{action}Response></s:Body></s:Envelope>"
        ),
    )
}

fn fault(code: u16, text: &str) -> (u16, String) {
    (
        500,
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault>\
             <faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>\
             <UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode>\
             <errorDescription>{text}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
        ),
    )
}

fn soap(st: &mut State, action: &str, body: &str) -> (u16, String) {
    let port: u16 = arg(body, "NewExternalPort")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let lease: u32 = arg(body, "NewLeaseDuration")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let udp = arg(body, "NewProtocol").as_deref() == Some("UDP");
    let (status, reply) = match action {
        "GetExternalIPAddress" => ok(action, &[("NewExternalIPAddress", "203.0.113.2".into())]),
        "AddPortMapping" if !udp => fault(402, "Invalid Args"),
        "AddPortMapping" => {
            let client: Option<Ipv4Addr> =
                arg(body, "NewInternalClient").and_then(|c| c.parse().ok());
            let internal: Option<u16> = arg(body, "NewInternalPort").and_then(|p| p.parse().ok());
            match (client, internal) {
                (Some(c), Some(i)) if port != 0 => {
                    if st.table.get(&port).is_some_and(|e| e.0 != c) {
                        fault(718, "ConflictInMappingEntry")
                    } else if st.options.permanent_only && lease != 0 {
                        fault(725, "OnlyPermanentLeasesSupported")
                    } else {
                        st.table.insert(port, (c, i, lease));
                        ok(action, &[])
                    }
                }
                _ => fault(402, "Invalid Args"),
            }
        }
        "GetSpecificPortMappingEntry" => match st.table.get(&port).filter(|_| udp) {
            Some(&(c, i, l)) => ok(
                action,
                &[
                    ("NewInternalPort", i.to_string()),
                    ("NewInternalClient", c.to_string()),
                    ("NewEnabled", "1".into()),
                    ("NewPortMappingDescription", "edgereach".into()),
                    ("NewLeaseDuration", l.to_string()),
                ],
            ),
            None => fault(714, "NoSuchEntryInArray"),
        },
        "DeletePortMapping" => match st.table.remove(&port) {
            Some(_) => ok(action, &[]),
            None => fault(714, "NoSuchEntryInArray"),
        },
        _ => fault(401, "Invalid Action"),
    };
    let kind = match action {
        "AddPortMapping" => "upnp-add",
        "DeletePortMapping" => "upnp-delete",
        "GetSpecificPortMappingEntry" => "upnp-get",
        "GetExternalIPAddress" => "upnp-external",
        _ => "upnp-other",
    };
    st.seen.push(Seen {
        at: Instant::now(),
        kind,
        lifetime: lease,
        answered: status == 200,
    });
    (status, reply)
}

/// WANIPv6FirewallControl:1 (UPnP IGD 2.0): pinholes by UniqueID, lease
/// 1..=86400 s, protocol by IANA number.
fn firewall_soap(st: &mut State, action: &str, body: &str) -> (u16, String) {
    let number = |name: &str| arg(body, name).and_then(|v| v.parse::<u32>().ok());
    let id = number("UniqueID").and_then(|v| u16::try_from(v).ok());
    let lease = number(match action {
        "UpdatePinhole" => "NewLeaseTime",
        _ => "LeaseTime",
    });
    let valid_lease = lease.filter(|l| (1..=86400).contains(l));
    let (status, reply) = match action {
        "GetFirewallStatus" => {
            let allowed = if st.options.pinholes_refused {
                "0"
            } else {
                "1"
            };
            ok_for(
                FIREWALL,
                action,
                &[
                    ("FirewallEnabled", "1".into()),
                    ("InboundPinholeAllowed", allowed.into()),
                ],
            )
        }
        "AddPinhole" if st.options.pinholes_refused => fault(703, "InboundPinholeNotAllowed"),
        "AddPinhole" => {
            let client: Option<Ipv6Addr> = arg(body, "InternalClient").and_then(|c| c.parse().ok());
            let port = number("InternalPort").and_then(|p| u16::try_from(p).ok());
            let protocol = number("Protocol").and_then(|p| u8::try_from(p).ok());
            match (client, port, protocol, valid_lease) {
                (Some(c), Some(p), Some(17 | 6), Some(l)) if p != 0 => {
                    let id = st.next_pinhole_id;
                    st.next_pinhole_id += 1;
                    st.pinholes.insert(id, (c, p, protocol.unwrap_or(0), l));
                    ok_for(FIREWALL, action, &[("UniqueID", id.to_string())])
                }
                _ => fault(402, "Invalid Args"),
            }
        }
        "UpdatePinhole" => match (id.and_then(|i| st.pinholes.get_mut(&i)), valid_lease) {
            (Some(hole), Some(l)) => {
                hole.3 = l;
                ok_for(FIREWALL, action, &[])
            }
            (None, _) => fault(704, "NoSuchEntry"),
            (Some(_), None) => fault(402, "Invalid Args"),
        },
        "DeletePinhole" => match id.and_then(|i| st.pinholes.remove(&i)) {
            Some(_) => ok_for(FIREWALL, action, &[]),
            None => fault(704, "NoSuchEntry"),
        },
        _ => fault(401, "Invalid Action"),
    };
    let kind = match action {
        "AddPinhole" => "upnp-pinhole-add",
        "UpdatePinhole" => "upnp-pinhole-update",
        "DeletePinhole" => "upnp-pinhole-delete",
        "GetFirewallStatus" => "upnp-firewall-status",
        _ => "upnp-other",
    };
    st.seen.push(Seen {
        at: Instant::now(),
        kind,
        lifetime: lease.unwrap_or(0),
        answered: status == 200,
    });
    (status, reply)
}

const ROOT_DESC: &str = "<?xml version=\"1.0\"?>
<root xmlns=\"urn:schemas-upnp-org:device-1-0\">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>edgereach in-process IGD</friendlyName>
<UDN>uuid:fa7e0000-0000-4000-8000-000000000001</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<UDN>uuid:fa7e0000-0000-4000-8000-000000000002</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<UDN>uuid:fa7e0000-0000-4000-8000-000000000003</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>/WANIPCn.xml</SCPDURL>
</service></serviceList>
</device><device>
<deviceType>urn:schemas-upnp-org:device:WANIPv6FirewallControlDevice:1</deviceType>
<UDN>uuid:fa7e0000-0000-4000-8000-000000000004</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId>
<controlURL>/ctl/IP6FCtl</controlURL>
<eventSubURL>/evt/IP6FCtl</eventSubURL>
<SCPDURL>/WANIP6FC.xml</SCPDURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
";

/// `addr:1900` with SO_REUSEADDR: the daemon's own SSDP NOTIFY listener
/// (0.0.0.0:1900, shared) may be bound already, by the actor under test in a
/// parallel test or by a daemon on this host. Unicast to `addr` still comes
/// here: the kernel prefers the socket bound to the exact address.
fn ssdp_socket(addr: Ipv4Addr) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let at = SockaddrIn::from(std::net::SocketAddrV4::new(addr, 1900));
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &at)?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}
