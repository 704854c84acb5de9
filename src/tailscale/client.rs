//! A LocalAPI client: HTTP/1.1 over tailscaled's unix socket, one connection
//! per call, every call bounded in time and size. Errors say what the
//! operator should look at (missing socket, tailscaled restarting, access).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::http_client::{read_body, BodyError, ConnectionTask};
use crate::netcheck::derpmap::DerpMap;

use super::api::{self, DecodeError, PingResult, Prefs, TsStatus, MAX_BODY};

/// The Host header tailscaled expects on its LocalAPI.
const HOST: &str = "local-tailscaled.sock";

/// Why a LocalAPI call failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalApiError {
    /// The socket file does not exist.
    #[error(
        "tailscaled's LocalAPI socket {0} does not exist: is tailscaled installed and running?"
    )]
    Missing(PathBuf),
    /// The socket exists but nobody accepts (tailscaled stopped or restarting).
    #[error("tailscaled is not accepting on {0} (stopped or restarting)")]
    Refused(PathBuf),
    /// We may not use the socket (file permissions).
    #[error("no permission to use {path}: {source}; run edgereach as root or as tailscaled's --operator user")]
    Permission {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Other socket errors.
    #[error("LocalAPI {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// HTTP-level failure (connection closed mid-answer, bad framing).
    #[error("LocalAPI {call}: HTTP: {message}")]
    Http {
        /// Which call.
        call: &'static str,
        /// hyper's description.
        message: String,
    },
    /// tailscaled refused the call as not permitted.
    #[error("tailscaled refused {call}: {message} (edgereach needs LocalAPI write access: run it as root or as tailscaled's --operator)")]
    Forbidden {
        /// Which call.
        call: &'static str,
        /// tailscaled's text.
        message: String,
    },
    /// Any other non-2xx answer.
    #[error("tailscaled answered {call} with {status}: {message}")]
    Status {
        /// Which call.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// tailscaled's text.
        message: String,
    },
    /// No complete answer in time.
    #[error("LocalAPI {call}: no answer within {timeout:?}")]
    Timeout {
        /// Which call.
        call: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The answer was not what this version of edgereach understands.
    #[error("LocalAPI {0}")]
    Decode(#[from] DecodeError),
}

impl LocalApiError {
    /// True when tailscaled is simply not there (yet): missing or refusing.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Missing(_) | Self::Refused(_))
    }
}

/// Handle to one tailscaled; cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalApi {
    socket: PathBuf,
    timeout: Duration,
}

/// One answer: status and body, with the peer's pid from SO_PEERCRED.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl LocalApi {
    /// A client for the socket at `socket`; `timeout` bounds each call
    /// (pings get their own, longer bound).
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            socket: socket.into(),
            timeout,
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn connect(&self) -> Result<UnixStream, LocalApiError> {
        UnixStream::connect(&self.socket).await.map_err(|e| {
            use std::io::ErrorKind as K;
            match e.kind() {
                K::NotFound => LocalApiError::Missing(self.socket.clone()),
                K::ConnectionRefused => LocalApiError::Refused(self.socket.clone()),
                K::PermissionDenied => LocalApiError::Permission {
                    path: self.socket.clone(),
                    source: e,
                },
                _ => LocalApiError::Io {
                    path: self.socket.clone(),
                    source: e,
                },
            }
        })
    }

    /// tailscaled's process id, from the socket's peer credentials.
    pub async fn daemon_pid(&self) -> Result<Option<i32>, LocalApiError> {
        let stream = self.connect().await?;
        Ok(stream.peer_cred().ok().and_then(|c| c.pid()))
    }

    /// Connect, send one request, and return the answer's head and body
    /// stream with the connection task (aborted when the caller is done).
    async fn open(
        &self,
        call: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(hyper::Response<Incoming>, ConnectionTask), LocalApiError> {
        let stream = self.connect().await?;
        let http_err = |e: hyper::Error| LocalApiError::Http {
            call,
            message: e.to_string(),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;
        let driver = ConnectionTask::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, HOST);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| LocalApiError::Http {
                call,
                message: e.to_string(),
            })?;
        let resp = sender.send_request(req).await.map_err(http_err)?;
        Ok((resp, driver))
    }

    async fn request(
        &self,
        call: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, LocalApiError> {
        let fut = async {
            let (resp, _driver) = self.open(call, method, path_and_query, body).await?;
            let status = resp.status();
            let body = read_limited(call, resp.into_body()).await?;
            Ok::<_, LocalApiError>(Answer { status, body })
        };
        let answer = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| LocalApiError::Timeout { call, timeout })??;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(refusal(call, answer.status, &answer.body))
    }

    /// A bounded GET whose body the caller decodes.
    async fn get(&self, call: &'static str, path: &str) -> Result<Bytes, LocalApiError> {
        let a = self
            .request(call, Method::GET, path, None, self.timeout)
            .await?;
        Ok(a.body)
    }

    /// `GET /localapi/v0/status` (peers included).
    pub async fn status(&self) -> Result<TsStatus, LocalApiError> {
        let body = self.get("status", "/localapi/v0/status").await?;
        Ok(api::decode_status(&body)?)
    }

    /// `GET /localapi/v0/derpmap`: the DERP map tailscaled itself uses (what
    /// `tailscale debug derp-map` prints and `tailscale netcheck` probes),
    /// decoded, with the body as received so a caller can keep a copy.
    /// `Ok(None)` while tailscaled has no map yet (it answers `null`).
    pub async fn derp_map(&self) -> Result<Option<(DerpMap, Bytes)>, LocalApiError> {
        let body = self.get("derpmap", "/localapi/v0/derpmap").await?;
        Ok(api::decode_derp_map(&body)?.map(|m| (m, body)))
    }

    /// `GET /localapi/v0/prefs`.
    pub async fn prefs(&self) -> Result<Prefs, LocalApiError> {
        let body = self.get("prefs", "/localapi/v0/prefs").await?;
        Ok(api::decode_prefs(&body)?)
    }

    /// `GET /localapi/v0/prefs` as the full `ipn.Prefs` JSON object, for
    /// callers that must hand every field back (`start` replaces prefs whole).
    pub async fn prefs_json(&self) -> Result<serde_json::Value, LocalApiError> {
        let body = self.get("prefs", "/localapi/v0/prefs").await?;
        serde_json::from_slice(&body).map_err(|e| {
            DecodeError::Json {
                what: "prefs",
                message: e.to_string(),
            }
            .into()
        })
    }

    /// `PATCH /localapi/v0/prefs` with an `ipn.MaskedPrefs` JSON object
    /// (fields plus their `…Set: true` flags); returns the new prefs.
    pub async fn edit_prefs(&self, masked: &serde_json::Value) -> Result<Prefs, LocalApiError> {
        let body = serde_json::to_vec(masked).unwrap_or_default();
        let a = self
            .request(
                "edit-prefs",
                Method::PATCH,
                "/localapi/v0/prefs",
                Some(body),
                self.timeout,
            )
            .await?;
        Ok(api::decode_prefs(&a.body)?)
    }

    /// `POST /localapi/v0/start` with an `ipn.Options` JSON object
    /// (`UpdatePrefs`, `AuthKey`). The body may hold a secret: it is never logged.
    pub async fn start(&self, options: &serde_json::Value) -> Result<(), LocalApiError> {
        let body = serde_json::to_vec(options).unwrap_or_default();
        self.request(
            "start",
            Method::POST,
            "/localapi/v0/start",
            Some(body),
            self.timeout,
        )
        .await?;
        Ok(())
    }

    /// `POST /localapi/v0/login-interactive`: start logging in. After a
    /// `start` carrying an auth key, a node without a node key logs in with
    /// that key and no URL is involved (what `tailscale up --authkey` does).
    pub async fn login_interactive(&self) -> Result<(), LocalApiError> {
        self.request(
            "login-interactive",
            Method::POST,
            "/localapi/v0/login-interactive",
            None,
            self.timeout,
        )
        .await?;
        Ok(())
    }

    /// A disco ping to `ip`, waiting at most `timeout` for the pong.
    /// A ping that got no pong is `Ok` with `err` set, as tailscaled reports it.
    pub async fn ping_disco(
        &self,
        ip: std::net::IpAddr,
        timeout: Duration,
    ) -> Result<PingResult, LocalApiError> {
        let path = format!("/localapi/v0/ping?ip={ip}&type=disco");
        let a = self
            .request("ping", Method::POST, &path, None, timeout)
            .await?;
        Ok(api::decode_ping(&a.body)?)
    }

    /// Ask tailscaled to run its netcheck now and publish fresh endpoints.
    pub async fn restun(&self) -> Result<(), LocalApiError> {
        self.request(
            "debug restun",
            Method::POST,
            "/localapi/v0/debug?action=restun",
            None,
            self.timeout,
        )
        .await?;
        Ok(())
    }

    /// Open `GET /localapi/v0/watch-ipn-bus?mask=…`; read messages with
    /// [`IpnBus::next`]. Only the connection setup is bounded by the timeout.
    pub async fn watch_ipn_bus(&self, mask: u32) -> Result<IpnBus, LocalApiError> {
        let call = "watch-ipn-bus";
        let fut = async {
            let path = format!("/localapi/v0/watch-ipn-bus?mask={mask}");
            let (resp, driver) = self.open(call, Method::GET, &path, None).await?;
            let status = resp.status();
            if !status.is_success() {
                let body = read_limited(call, resp.into_body()).await?;
                return Err(refusal(call, status, &body));
            }
            Ok(IpnBus {
                body: resp.into_body(),
                buf: Vec::new(),
                _driver: driver,
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| LocalApiError::Timeout {
                call,
                timeout: self.timeout,
            })?
    }
}

/// A non-2xx answer as an error: 403 means we are not allowed.
fn refusal(call: &'static str, status: StatusCode, body: &[u8]) -> LocalApiError {
    let message = api::error_text(body);
    if status == StatusCode::FORBIDDEN {
        LocalApiError::Forbidden { call, message }
    } else {
        LocalApiError::Status {
            call,
            status: status.as_u16(),
            message,
        }
    }
}

async fn read_limited(call: &'static str, body: Incoming) -> Result<Bytes, LocalApiError> {
    read_body(body, MAX_BODY).await.map_err(|e| match e {
        BodyError::TooLarge => DecodeError::TooLarge {
            what: call,
            len: MAX_BODY + 1,
        }
        .into(),
        BodyError::Http(message) => LocalApiError::Http { call, message },
    })
}

/// An open watch-ipn-bus stream of JSON messages.
pub struct IpnBus {
    body: Incoming,
    buf: Vec<u8>,
    _driver: ConnectionTask,
}

impl IpnBus {
    /// The next message; `Ok(None)` when tailscaled closed the stream.
    /// A message larger than [`MAX_BODY`] ends the stream with an error.
    pub async fn next(&mut self) -> Result<Option<api::Notify>, LocalApiError> {
        let call = "watch-ipn-bus";
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(api::decode_notify(line)?));
            }
            if self.buf.len() > MAX_BODY {
                return Err(DecodeError::TooLarge {
                    what: call,
                    len: self.buf.len(),
                }
                .into());
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(LocalApiError::Http {
                        call,
                        message: e.to_string(),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
