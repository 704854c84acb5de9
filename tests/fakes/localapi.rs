//! An in-process fake of tailscaled's LocalAPI: HTTP/1.1 on a unix socket,
//! answering what the tailscale actor asks (status, prefs, the IPN bus,
//! disco pings, re-STUN) with tailscaled 1.98.10's own status JSON (as
//! captured in the lab). Scriptable: whether pings come back direct or
//! through DERP. Every request is recorded with tokio's clock.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;

const STATUS: &str = include_str!("../../src/tailscale/testdata/status-1.98.10.json");

/// One request: when, method and path.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
}

#[derive(Debug, Default)]
struct State {
    relayed: bool,
    seen: Vec<Request>,
}

/// The fake; dropping it stops it.
pub struct FakeLocalApi {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLocalApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLocalApi {
    /// Listen on `socket`.
    pub fn start(socket: &Path) -> Self {
        let listener = UnixListener::bind(socket).expect("bind the fake LocalAPI socket");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(one_request(conn, shared.clone()));
            }
        });
        FakeLocalApi { state, task }
    }

    /// Pings come back through DERP (true) or direct (false).
    pub fn set_relayed(&self, relayed: bool) {
        self.state.lock().unwrap().relayed = relayed;
    }

    /// Requests so far.
    pub fn seen(&self) -> Vec<Request> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn one_request(mut conn: UnixStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let relayed = {
        let mut st = state.lock().unwrap();
        st.seen.push(Request {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
        });
        st.relayed
    };
    let route = path.split('?').next().unwrap_or_default();
    let body = match route {
        "/localapi/v0/status" => STATUS.to_string(),
        "/localapi/v0/prefs" => {
            r#"{"ControlURL":"http://127.0.0.1:8080","WantRunning":true,"LoggedOut":false,"Hostname":""}"#
                .to_string()
        }
        "/localapi/v0/watch-ipn-bus" => {
            // The current state (6: Running), then silence until closed.
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn
                .write_all(b"{\"Version\":\"1.98.10\",\"State\":6}\n")
                .await;
            let _ = conn.flush().await;
            std::future::pending::<()>().await;
            return;
        }
        "/localapi/v0/ping" => {
            let ip = path
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("ip="))
                .unwrap_or_default();
            if relayed {
                format!(
                    r#"{{"IP":"{ip}","LatencySeconds":0.03,"DERPRegionID":900,"DERPRegionCode":"lab"}}"#
                )
            } else {
                format!(
                    r#"{{"IP":"{ip}","LatencySeconds":0.002,"Endpoint":"203.0.113.50:41641"}}"#
                )
            }
        }
        "/localapi/v0/debug" => String::new(),
        _ => {
            let _ = conn
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
    };
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
}
