//! HTTP/1.1 to the router's IGD: the device description (GET) and SOAP
//! control requests (POST). One connection per request and a bounded answer;
//! the caller bounds the time. Only literal-IP `http://` URLs are accepted
//! (the caller has checked the address is the default gateway).
//!
//! [`IgdHttp`] is igd-next's transport: its `aio::Gateway` is generic over
//! the HTTP client, so its SOAP actions go through this exchange instead of
//! its own hyper client (which would bring HTTP/2 and connection pooling).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::protocol::soap::MAX_BODY_LEN;
use super::protocol::ssdp::{location_host, SsdpError};
use crate::http_client::{read_body, BodyError, ConnectionTask};

/// Time one SOAP request may take, connect to last byte. igd-next's own
/// client has a 10 s default and no way to shorten it; the caller bounds
/// each whole action again (several requests for AddAnyPortMapping).
pub const REQUEST_BUDGET: Duration = Duration::from_secs(3);

/// Largest read buffer (status line and headers must fit in it).
const READ_BUFFER_LIMIT: usize = 16 * 1024;

/// Why an HTTP exchange with the IGD failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not a literal-IP `http://` URL.
    #[error("bad URL: {0}")]
    Url(#[from] SsdpError),
    /// TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad framing or the connection closed mid-answer.
    #[error("HTTP: {0}")]
    Http(String),
    /// The answer exceeds [`MAX_BODY_LEN`].
    #[error("answer larger than {MAX_BODY_LEN} bytes")]
    TooLarge,
}

/// An answer: status code and body (invalid UTF-8 replaced).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body, at most [`MAX_BODY_LEN`] bytes.
    pub body: String,
}

/// A SOAP call: the SOAPAction header value and the XML body.
pub struct Soap<'a> {
    /// SOAPAction value (already quoted).
    pub action: &'a str,
    /// Envelope.
    pub body: String,
}

/// GET `url` (without `soap`) or POST the SOAP call to it.
pub async fn exchange(url: &str, soap: Option<Soap<'_>>) -> Result<Reply, HttpError> {
    let (ip, port, path) = location_host(url)?;
    let addr = SocketAddr::new(ip, port);
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    let http = |e: hyper::Error| HttpError::Http(e.to_string());
    // A hostile router's header block is bounded by the read buffer too.
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(READ_BUFFER_LIMIT)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // Drives the connection; aborted when this call returns or is dropped.
    let driver = ConnectionTask::spawn(conn);
    let host = match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let request = Request::builder()
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONNECTION, "close");
    let request = match soap {
        None => request.method(Method::GET).body(Full::new(Bytes::new())),
        Some(soap) => request
            .method(Method::POST)
            .header(hyper::header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")
            .header("SOAPAction", soap.action)
            .body(Full::new(Bytes::from(soap.body))),
    }
    .map_err(|e| HttpError::Http(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status().as_u16();
    let body = read_body(response.into_body(), MAX_BODY_LEN)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => HttpError::TooLarge,
            BodyError::Http(message) => HttpError::Http(message),
        })?;
    drop(driver);
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// igd-next's HTTP transport ([`igd_next::aio::Provider`]): one SOAP POST
/// through [`exchange`], bounded by [`REQUEST_BUDGET`] and [`MAX_BODY_LEN`].
/// The body of a 200 or a 500 answer goes back to igd-next, which reads the
/// response or the UPnP fault (a fault comes with status 500).
#[derive(Clone, Copy, Debug, Default)]
pub struct IgdHttp;

impl igd_next::aio::Provider for IgdHttp {
    async fn send_async(
        url: &str,
        action: &str,
        body: &str,
    ) -> Result<String, igd_next::RequestError> {
        use igd_next::RequestError;
        use std::io::{Error, ErrorKind};
        let soap = Soap {
            action,
            body: body.to_owned(),
        };
        let reply = tokio::time::timeout(REQUEST_BUDGET, exchange(url, Some(soap)))
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, "timed out"))?
            .map_err(Error::other)?;
        match reply.status {
            200 | 500 => Ok(reply.body),
            status => Err(RequestError::InvalidResponse(format!(
                "HTTP status {status}"
            ))),
        }
    }
}
