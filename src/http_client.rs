//! What the daemon's HTTP/1.1 clients share (tailscaled's LocalAPI, the
//! admission service, the router's IGD, the captive-portal probe): one
//! connection per request, driven by a task that dies with the request,
//! and an answer read up to a limit.

use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::task::JoinHandle;

/// The task driving one hyper client connection; aborted when dropped, so
/// an early return, a timeout or a dropped stream never leaves a
/// connection behind.
pub struct ConnectionTask(JoinHandle<Result<(), hyper::Error>>);

impl ConnectionTask {
    /// Spawn `conn` (the second half of a hyper client handshake).
    pub fn spawn<C>(conn: C) -> Self
    where
        C: Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        Self(tokio::spawn(conn))
    }
}

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why an answer's body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit arrived.
    TooLarge,
    /// The connection failed mid-body; hyper's description.
    Http(String),
}

/// The whole body, or [`BodyError::TooLarge`] once more than `limit` bytes
/// arrive (the rest is not read).
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Http(e.to_string())),
    }
}
