//! Captive-portal check, as tailscale does it: `GET /generate_204` over plain
//! HTTP to DERP relays that offer port 80, with an `X-Tailscale-Challenge`
//! header. A relay answers 204 and echoes the challenge; a portal (or any
//! middlebox rewriting HTTP) answers something else. Only relays from the
//! DERP map are asked, never a public endpoint.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::http_client::{read_body, ConnectionTask};

/// Bound on one check (tailscale's captivedetection.Timeout is 3 s).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest body read from an answer (a portal page is thrown away anyway).
const MAX_BODY: usize = 16 * 1024;

/// The challenge sent to `ip` (tailscale: "ts_" + URL host).
pub fn challenge(ip: Ipv4Addr) -> String {
    format!("ts_{ip}")
}

/// Whether an answer looks like a captive portal: anything but a 204 that
/// echoes our challenge as `response <challenge>`.
pub fn looks_captive(status: u16, response_header: Option<&str>, challenge: &str) -> bool {
    let echoed = response_header
        .and_then(|h| h.strip_prefix("response "))
        .is_some_and(|c| c == challenge);
    !(status == 204 && echoed)
}

/// Ask each endpoint in turn until one answers: `Some(captive?)`, or `None`
/// when none could be asked (no endpoints, none reachable within `TIMEOUT`).
pub async fn check(endpoints: &[Ipv4Addr], sent_bytes: &mut u64) -> Option<bool> {
    for &ip in endpoints {
        match tokio::time::timeout(TIMEOUT, ask(ip, sent_bytes)).await {
            Ok(Ok(captive)) => return Some(captive),
            Ok(Err(e)) => tracing::debug!("captive portal check via {ip}: {e}"),
            Err(_) => tracing::debug!("captive portal check via {ip}: no answer in {TIMEOUT:?}"),
        }
    }
    None
}

/// Why one captive-portal probe got no judgeable answer.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

async fn ask(ip: Ipv4Addr, sent_bytes: &mut u64) -> Result<bool, ProbeError> {
    let stream = tokio::net::TcpStream::connect(SocketAddr::from((ip, 80))).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let _driver = ConnectionTask::spawn(conn);
    let chal = challenge(ip);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let req = Request::get(format!("/generate_204?t={secs}"))
        .header(hyper::header::HOST, ip.to_string())
        .header(
            hyper::header::CACHE_CONTROL,
            "no-cache, no-store, must-revalidate, no-transform, max-age=0",
        )
        .header("X-Tailscale-Challenge", &chal)
        .body(Empty::<Bytes>::new())?;
    // Request line and headers, roughly: for the report's byte count.
    *sent_bytes += 180;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let echoed = resp
        .headers()
        .get("X-Tailscale-Response")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Drain a little so the connection closes cleanly; the content is unused.
    let _ = read_body(resp.into_body(), MAX_BODY).await;
    Ok(looks_captive(status.as_u16(), echoed.as_deref(), &chal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_answers() {
        let c = challenge(Ipv4Addr::new(203, 0, 113, 40));
        assert_eq!(c, "ts_203.0.113.40");
        assert!(!looks_captive(204, Some("response ts_203.0.113.40"), &c));
        assert!(
            looks_captive(204, None, &c),
            "a 204 without the echo is a middlebox"
        );
        assert!(looks_captive(204, Some("response ts_other"), &c));
        assert!(looks_captive(200, Some("response ts_203.0.113.40"), &c));
        assert!(looks_captive(302, None, &c));
    }

    #[tokio::test]
    async fn nothing_to_ask_is_unknown() {
        let mut sent = 0;
        assert_eq!(check(&[], &mut sent).await, None);
        assert_eq!(sent, 0);
    }
}
