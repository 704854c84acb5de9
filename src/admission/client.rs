//! HTTP(S) to the admission service: hyper's HTTP/1.1 client over a TCP
//! connection made per attempt to an address resolved per attempt (by DNS
//! TTL, last good answer kept, the seed's nginx lesson), TLS through rustls
//! with the ring provider, optional client certificate. Every attempt is
//! bounded in time and in body size; the bearer token is read from its file
//! per attempt and never appears in an error, a log or the status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use crate::http_client::{read_body, BodyError, ConnectionTask};
use tokio::net::TcpStream;

use super::codec::{self, BootstrapRequest, BootstrapResponse, CodecError};
use super::secret::Secret;
use crate::config::AdmissionConfig;
use crate::resolve::NameResolver;

/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;
/// Addresses of one name tried per attempt.
const MAX_ADDRS: usize = 4;
/// Longest Retry-After honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why a registration attempt failed. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AcsError {
    /// The configuration cannot work (URL, CA file, client certificate).
    #[error("{0}")]
    Setup(String),
    /// The token file is missing, unreadable or empty.
    #[error("admission.token_file {path}: {why}")]
    Token {
        /// The file.
        path: String,
        /// What is wrong (never its content).
        why: String,
    },
    /// The service's name did not resolve and no earlier answer exists.
    #[error("{0}")]
    Resolve(String),
    /// No address accepted a connection.
    #[error("cannot connect to {target}: {why}")]
    Connect {
        /// host:port.
        target: String,
        /// Per address, what happened.
        why: String,
    },
    /// TLS handshake failed (certificate, name, protocol).
    #[error("TLS with {target}: {why}")]
    Tls {
        /// host:port.
        target: String,
        /// rustls' description.
        why: String,
    },
    /// HTTP framing failed or the connection dropped mid-answer.
    #[error("HTTP: {0}")]
    Http(String),
    /// No complete answer in time.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The body is bigger than allowed: not read further.
    #[error("answer body larger than {0} bytes: not read")]
    TooLarge(usize),
    /// A 4xx with a reason: the service refuses this gateway as configured.
    #[error("service refused the registration ({status}): {reason}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The service's words, cleaned.
        reason: String,
    },
    /// 429 or 503: the service asks us to come back later.
    #[error("service busy ({status}): {reason}")]
    Busy {
        /// HTTP status.
        status: u16,
        /// Its Retry-After, if it gave a usable one.
        retry_after: Option<Duration>,
        /// The service's words, cleaned.
        reason: String,
    },
    /// Any other non-2xx answer (5xx, odd codes).
    #[error("service error ({status}): {reason}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The service's words, cleaned.
        reason: String,
    },
    /// A 2xx whose body is not a usable bootstrap answer.
    #[error("{0}")]
    Decode(#[from] CodecError),
}

/// One successful registration.
#[derive(Debug)]
pub struct Registered {
    /// The answer (holds the auth key, if any: drop it when used).
    pub response: BootstrapResponse,
    /// The address that answered.
    pub peer: SocketAddr,
}

/// Where requests go: scheme, host, port, path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Target {
    /// Parse an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        codec::check_url(url)?;
        let shown = || codec::clean(url);
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| TargetError::Uri(shown(), e.to_string()))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| TargetError::NoHost(shown()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if authority.contains('@') {
            return Err(TargetError::Credentials);
        }
        Ok(Self {
            https,
            host,
            port,
            authority,
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// `host:port`, for messages.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a URL cannot be a request target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute http(s) URL.
    #[error(transparent)]
    Form(#[from] codec::ValueError),
    /// The URL does not parse.
    #[error("{0:?}: {1}")]
    Uri(String, String),
    /// The URL names no host.
    #[error("{0:?}: no host")]
    NoHost(String),
    /// The URL carries userinfo (never quoted back: it may be a password).
    #[error("credentials in the URL are not allowed")]
    Credentials,
}

/// A client for one configured service; cheap to clone.
#[derive(Clone)]
pub struct AcsClient {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    token_file: Option<PathBuf>,
    timeout: Duration,
    resolver: Arc<NameResolver>,
}

impl AcsClient {
    /// Build from the configuration: URL, trust roots, client certificate.
    pub fn new(cfg: &AdmissionConfig, resolver: Arc<NameResolver>) -> Result<Self, AcsError> {
        let target =
            Target::parse(&cfg.url).map_err(|e| AcsError::Setup(format!("admission.url: {e}")))?;
        let tls = if target.https {
            Some(tls_connector(cfg)?)
        } else {
            None
        };
        Ok(Self {
            target,
            tls,
            token_file: (!cfg.token_file.is_empty()).then(|| PathBuf::from(&cfg.token_file)),
            timeout: cfg.timeout.get(),
            resolver,
        })
    }

    /// The service as `host:port`.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// One `POST /api/v1/bootstrap`, bounded by the configured timeout.
    pub async fn bootstrap(&self, req: &BootstrapRequest) -> Result<Registered, AcsError> {
        let token = match &self.token_file {
            Some(p) => Some(read_token(p)?),
            None => None,
        };
        let body = serde_json::to_vec(req).map_err(|e| AcsError::Http(e.to_string()))?;
        let path = format!("{}{}", self.target.path, codec::BOOTSTRAP_PATH);
        let answer = self
            .send(
                Method::POST,
                &path,
                Some(body),
                token.as_ref(),
                codec::MAX_BODY,
            )
            .await?;
        let status = answer.status;
        if status.is_success() {
            let response = codec::decode_response(&answer.body)?;
            return Ok(Registered {
                response,
                peer: answer.peer,
            });
        }
        let reason = codec::error_reason(&answer.body);
        let reason = if reason.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .into()
        } else {
            reason
        };
        let code = status.as_u16();
        Err(match code {
            429 | 503 => AcsError::Busy {
                status: code,
                retry_after: answer.retry_after,
                reason,
            },
            408 => AcsError::Server {
                status: code,
                reason,
            },
            400..=499 => AcsError::Rejected {
                status: code,
                reason,
            },
            _ => AcsError::Server {
                status: code,
                reason,
            },
        })
    }

    /// `GET` an absolute path on the same service without the token, with
    /// its own size limit (the DERP map by URL uses this through a client
    /// made for that URL).
    pub async fn get(&self, limit: usize) -> Result<Bytes, AcsError> {
        let a = self
            .send(Method::GET, &self.target.path.clone(), None, None, limit)
            .await?;
        if !a.status.is_success() {
            return Err(AcsError::Server {
                status: a.status.as_u16(),
                reason: codec::error_reason(&a.body),
            });
        }
        Ok(a.body)
    }

    /// A client for another URL with the same trust settings and no token.
    pub fn for_url(&self, url: &str, cfg: &AdmissionConfig) -> Result<Self, AcsError> {
        let target = Target::parse(url).map_err(|e| AcsError::Setup(e.to_string()))?;
        let tls = match (&self.tls, target.https) {
            (Some(t), true) => Some(t.clone()),
            (None, true) => Some(tls_connector(cfg)?),
            (_, false) => None,
        };
        Ok(Self {
            target,
            tls,
            token_file: None,
            timeout: self.timeout,
            resolver: self.resolver.clone(),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&Secret>,
        limit: usize,
    ) -> Result<Answer, AcsError> {
        let fut = self.send_unbounded(method, path, body, token, limit);
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| AcsError::Timeout(self.timeout))?
    }

    async fn send_unbounded(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&Secret>,
        limit: usize,
    ) -> Result<Answer, AcsError> {
        let (tcp, peer) = self.connect().await?;
        let path = if path.is_empty() { "/" } else { path };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.target.authority)
            .header(USER_AGENT, concat!("edgereach/", env!("CARGO_PKG_VERSION")));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                AcsError::Token {
                    path: self.token_path(),
                    why: "holds characters not allowed in an HTTP header".into(),
                }
            })?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| AcsError::Http(e.to_string()))?;
        match &self.tls {
            None => exchange(TokioIo::new(tcp), req, peer, limit).await,
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(self.target.host.clone())
                    .map_err(|e| AcsError::Setup(format!("admission.url host: {e}")))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| AcsError::Tls {
                    target: self.target.host_port(),
                    why: e.to_string(),
                })?;
                exchange(TokioIo::new(stream), req, peer, limit).await
            }
        }
    }

    fn token_path(&self) -> String {
        self.token_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Resolve now (by TTL) and connect to the first address that accepts.
    async fn connect(&self) -> Result<(TcpStream, SocketAddr), AcsError> {
        let resolved = self
            .resolver
            .resolve(&self.target.host)
            .await
            .map_err(|e| AcsError::Resolve(e.to_string()))?;
        let mut why = Vec::new();
        for ip in resolved.addrs.iter().take(MAX_ADDRS) {
            let addr = SocketAddr::new(*ip, self.target.port);
            let per_addr = (self.timeout / 3).max(Duration::from_secs(1));
            match tokio::time::timeout(per_addr, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, addr));
                }
                Ok(Err(e)) => why.push(format!("{addr}: {e}")),
                Err(_) => why.push(format!("{addr}: no answer within {per_addr:?}")),
            }
        }
        Err(AcsError::Connect {
            target: self.target.host_port(),
            why: why.join("; "),
        })
    }
}

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Bytes,
    peer: SocketAddr,
}

async fn exchange<T>(
    io: TokioIo<T>,
    req: Request<Full<Bytes>>,
    peer: SocketAddr,
    limit: usize,
) -> Result<Answer, AcsError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| AcsError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let _driver = ConnectionTask::spawn(conn);
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status();
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AcsError::TooLarge(limit));
    }
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
    let body = read_body(resp.into_body(), limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => AcsError::TooLarge(limit),
            BodyError::Http(message) => AcsError::Http(message),
        })?;
    Ok(Answer {
        status,
        retry_after,
        body,
        peer,
    })
}

/// Read the bearer token: trimmed, non-empty, small, one line.
pub fn read_token(path: &Path) -> Result<Secret, AcsError> {
    let err = |why: String| AcsError::Token {
        path: path.display().to_string(),
        why,
    };
    // The error names the path again; keep only its reason after it.
    let text = zeroize::Zeroizing::new(crate::fsread::read_capped(path, MAX_TOKEN_FILE).map_err(
        |e| {
            let shown = format!("{}: ", path.display());
            let msg = e.to_string();
            err(msg.strip_prefix(&shown).unwrap_or(&msg).to_string())
        },
    )?);
    let text = std::str::from_utf8(&text).map_err(|_| err("not UTF-8 text".into()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(err("empty".into()));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(err(
            "holds spaces, line breaks or non-ASCII inside the token".into(),
        ));
    }
    Ok(Secret::new(token.to_string()))
}

fn tls_connector(cfg: &AdmissionConfig) -> Result<tokio_rustls::TlsConnector, AcsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let setup = |key: &str, e: String| AcsError::Setup(format!("admission.{key}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    if cfg.ca_file.is_empty() {
        // The system trust store, as telemetry does: one source of truth for
        // the gateway image's CAs, and no second bundle in the binary.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if roots.is_empty() {
            return Err(setup(
                "ca_file",
                "no CA certificates in the system trust store; set admission.ca_file".into(),
            ));
        }
    } else {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.ca_file)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| setup("ca_file", format!("{}: {e}", cfg.ca_file)))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(setup(
                "ca_file",
                format!("{}: no usable CA certificate", cfg.ca_file),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup("url", e.to_string()))?
        .with_root_certificates(roots);
    let config = if cfg.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.client_cert)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| setup("client_cert", format!("{}: {e}", cfg.client_cert)))?;
        let key = PrivateKeyDer::from_pem_file(&cfg.client_key)
            .map_err(|e| setup("client_key", format!("{}: {e}", cfg.client_key)))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| setup("client_cert", e.to_string()))?
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests;
