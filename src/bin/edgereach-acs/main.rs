//! edgereach-acs: a small reference admission/control service (the seed's
//! ACS) for tests, demos and the fleet benchmark. Not part of the daemon:
//! built only with `--features acs`.
//!
//! - `POST /api/v1/bootstrap` `{account, plan, want_region, …}` ->
//!   `{cluster_id, headscale_url, derp_map, auth_mode, auth_key, note}`,
//!   sticky placement by rendezvous hashing of the account (overrides first);
//!   pre-auth keys fixed or minted through headscale's CLI.
//! - `GET /stats`: requests per second since start (the fleet bench reads
//!   the peak from it); `GET /health`.
//! - SIGHUP re-reads the configuration (overrides = migrations, `fault` =
//!   failure injection for tests); SIGTERM/SIGINT stop it.
#![forbid(unsafe_code)]

mod config;

use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use edgereach::admission::auth_mode::AuthMode;
use edgereach::admission::codec::{self, BootstrapResponse, DerpMapRef};
use edgereach::admission::secret::Secret;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use config::AcsConfig;

/// Longest a stats series gets (one day of seconds).
const MAX_BUCKETS: usize = 86_400;

#[derive(Parser)]
#[command(
    name = "edgereach-acs",
    about = "Reference admission service for edgereach"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long)]
    config: PathBuf,
}

struct Shared {
    cfg: RwLock<Arc<AcsConfig>>,
    started: Instant,
    buckets: Mutex<Vec<u64>>,
    total: AtomicU64,
    registered: AtomicU64,
}

impl Shared {
    fn config(&self) -> Arc<AcsConfig> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let sec = self.started.elapsed().as_secs() as usize;
        if sec < MAX_BUCKETS {
            let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if b.len() <= sec {
                b.resize(sec + 1, 0);
            }
            b[sec] += 1;
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = match AcsConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgereach-acs: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgereach-acs: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(cfg, cli.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgereach-acs: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(cfg: AcsConfig, path: PathBuf) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    eprintln!(
        "edgereach-acs: listening on {} with {} cluster(s)",
        listener.local_addr()?,
        cfg.clusters.len()
    );
    let shared = Arc::new(Shared {
        cfg: RwLock::new(Arc::new(cfg)),
        started: Instant::now(),
        buckets: Mutex::new(Vec::new()),
        total: AtomicU64::new(0),
        registered: AtomicU64::new(0),
    });
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => match AcsConfig::load(&path) {
                Ok(c) => {
                    eprintln!("edgereach-acs: reloaded {} (fault {:?}, {} override(s))",
                        path.display(), c.fault, c.overrides.len());
                    *shared.cfg.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                }
                Err(e) => eprintln!("edgereach-acs: reload failed, keeping the old configuration: {e}"),
            },
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(5))
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: &str, reason: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"error": code, "reason": reason}),
    )
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, codec::BOOTSTRAP_PATH) => bootstrap(shared, req).await,
        (&Method::GET, "/stats") => stats(shared),
        (&Method::GET, "/health") => json(StatusCode::OK, &serde_json::json!({"ok": true})),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

fn stats(shared: &Shared) -> Response<Body> {
    let b = shared
        .buckets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let first = b.iter().position(|&n| n > 0);
    let last = b.iter().rposition(|&n| n > 0);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "requests": shared.total.load(Ordering::Relaxed),
            "registered": shared.registered.load(Ordering::Relaxed),
            "peak_per_second": b.iter().max().copied().unwrap_or(0),
            "first_second": first,
            "last_second": last,
            "per_second": match (first, last) {
                (Some(f), Some(l)) => b[f..=l].to_vec(),
                _ => Vec::new(),
            },
        }),
    )
}

async fn bootstrap(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    shared.count();
    let cfg = shared.config();
    if let Some(r) = injected_fault(&cfg.fault).await {
        return r;
    }
    if let Some(r) = unauthorized(&cfg, &req) {
        return r;
    }
    let body = match Limited::new(req.into_body(), codec::MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "request body too large or broken",
            )
        }
    };
    let ask = match codec::decode_request(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
    };
    let answer = match assign(&cfg, &ask).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    shared.registered.fetch_add(1, Ordering::Relaxed);
    if cfg.clusters.len() > 1 || !cfg.overrides.is_empty() {
        eprintln!(
            "edgereach-acs: {} {} -> cluster {}",
            ask.account, ask.gateway_id, answer.cluster_id
        );
    }
    match serde_json::to_value(&answer) {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "encode", &e.to_string()),
    }
}

/// The answer `config.fault` asks for instead of a real one, if any.
async fn injected_fault(fault: &str) -> Option<Response<Body>> {
    Some(match fault {
        "" => return None,
        "500" => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "fault injection: 500",
        ),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            error(StatusCode::GATEWAY_TIMEOUT, "hang", "fault injection")
        }
        "garbage" => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"<html>{{{ not json")).boxed());
            *r.status_mut() = StatusCode::OK;
            r
        }
        "huge" => Response::new(Huge { left: 10 << 20 }.boxed()),
        "reject" => error(
            StatusCode::FORBIDDEN,
            "account_suspended",
            "this account is suspended; contact billing",
        ),
        "busy" => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "busy", "come back later");
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("30"),
            );
            r
        }
        other => {
            eprintln!("edgereach-acs: unknown fault {other:?} ignored");
            return None;
        }
    })
}

/// The 401 for a request without one of the configured bearer tokens.
fn unauthorized(cfg: &AcsConfig, req: &Request<Incoming>) -> Option<Response<Body>> {
    let tokens = cfg.tokens()?;
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    (given.is_empty() || !tokens.iter().any(|t| t == given)).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    })
}

/// The cluster for `ask`, its DERP map and (for a login or a move) a key;
/// the error answer when one of them can't be had.
async fn assign(
    cfg: &AcsConfig,
    ask: &codec::BootstrapRequest,
) -> Result<BootstrapResponse, Response<Body>> {
    let cluster = cfg.place(&ask.account, &ask.want_region);
    // A key only for a login or a move: not for every periodic registration.
    let wants_key =
        ask.needs_auth_key || ask.current_cluster_id.as_deref() != Some(cluster.id.as_str());
    let key = config::auth_key(cluster, wants_key).await.map_err(|e| {
        eprintln!("edgereach-acs: cluster {}: {e}", cluster.id);
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "mint_failed",
            "cannot mint a pre-auth key now",
        )
    })?;
    if cluster.auth_mode == AuthMode::Authkey && wants_key && key.is_none() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_key",
            "cluster has no pre-auth key configured",
        ));
    }
    let derp = config::derp_map(cluster).map_err(|e| {
        eprintln!("edgereach-acs: cluster {}: derp_map {e}", cluster.id);
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "derp_map",
            "DERP map unavailable",
        )
    })?;
    Ok(BootstrapResponse {
        cluster_id: cluster.id.clone(),
        headscale_url: cluster.headscale_url.clone(),
        derp_map: derp.map(|v| match v {
            serde_json::Value::String(u) => DerpMapRef::Url(u),
            other => DerpMapRef::Inline(other),
        }),
        auth_mode: cluster.auth_mode,
        auth_key: key.map(Secret::new),
        note: Some(if cluster.note.is_empty() {
            format!("stick to cluster {}", cluster.id)
        } else {
            cluster.note.clone()
        }),
    })
}

/// A 10 MB body streamed in 64 KiB chunks without a length (fault "huge").
struct Huge {
    left: usize,
}

impl hyper::body::Body for Huge {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }
}
