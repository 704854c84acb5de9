//! One request in, one response out: routing, the rate limit, the actions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::time::Instant;

use super::actions::{self, Provenance};
use super::page::{self, Notice};
use super::request::{self, Action, Route};
use super::{metrics, Shared};
use crate::status::Level;

type Reply = Response<Full<Bytes>>;

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
/// No script, no external asset, no framing; inline style only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Answer one request from `peer`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = refusal(&shared, peer, local, &req) {
        return Ok(refused);
    }
    let route = request::route(req.uri().path());
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    Ok(match route {
        Route::Action(action) => {
            if !shared.config.actions_enabled {
                not_found()
            } else if req.method() != Method::POST {
                not_allowed("POST")
            } else {
                run_action(&shared, peer, action, req).await
            }
        }
        _ if !read_only => not_allowed("GET, HEAD"),
        route => read(&shared, route, &req),
    })
}

/// The answer to a request turned away before routing: too many from its
/// address, a target too long, or a host that is not one of ours.
fn refusal(
    shared: &Shared,
    peer: SocketAddr,
    local: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Reply> {
    let c = &shared.counters;
    if !shared.rate.allow(peer.ip(), Instant::now()) {
        c.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            TEXT,
            "too many requests from your address; try again in a few seconds\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return Some(r);
    }
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    if request::split_target(target).is_err() {
        return Some(reply(
            StatusCode::URI_TOO_LONG,
            TEXT,
            format!(
                "the request target is longer than {} bytes\n",
                request::MAX_TARGET_BYTES
            ),
        ));
    }
    let route = request::route(req.uri().path());
    // Liveness tells nothing; everything else only under one of our names.
    let host = header_str(req.headers(), header::HOST);
    if route != Route::Healthz && !shared.hosts.allows(host, local) {
        return Some(reply(
            StatusCode::MISDIRECTED_REQUEST,
            TEXT,
            "this page answers only to its own addresses and names (web.allowed_hosts)\n",
        ));
    }
    None
}

/// A GET or HEAD: the page, the status JSON, the metrics or liveness.
fn read(shared: &Shared, route: Route, req: &Request<Incoming>) -> Reply {
    match route {
        Route::Page => {
            let notice = req
                .uri()
                .query()
                .and_then(|q| request::parse_form(q.as_bytes()).ok())
                .and_then(|f| request::field(&f, "done").and_then(Action::from_name))
                .map(Notice::Started);
            let body = {
                let s = shared.hub.watch();
                let s = s.borrow();
                page::render(&s, SystemTime::now(), notice, shared.config.actions_enabled)
            };
            reply(StatusCode::OK, HTML, body)
        }
        Route::ApiStatus => {
            let body = {
                let s = shared.hub.watch();
                let s = s.borrow();
                serde_json::to_string_pretty(&*s)
            };
            match body {
                Ok(b) => reply(StatusCode::OK, JSON, b + "\n"),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    format!("cannot serialize the status: {e}\n"),
                ),
            }
        }
        Route::Metrics => {
            let body = {
                let s = shared.hub.watch();
                let s = s.borrow();
                metrics::render(&s, SystemTime::now())
            };
            reply(StatusCode::OK, metrics::CONTENT_TYPE, body)
        }
        Route::Healthz => reply(StatusCode::OK, TEXT, "ok\n"),
        Route::NotFound | Route::Action(_) => not_found(),
    }
}

async fn run_action(
    shared: &Shared,
    peer: SocketAddr,
    action: Action,
    req: Request<Incoming>,
) -> Reply {
    let (parts, body) = req.into_parts();
    let refuse = |status: StatusCode, why: &str| {
        shared
            .counters
            .actions_refused
            .fetch_add(1, Ordering::Relaxed);
        shared.note_refusal(peer, action, why);
        html(status, page::message_page("Not done", why))
    };
    let h = |name: header::HeaderName| header_str(&parts.headers, name);
    if let Some(why) = actions::cross_site(Provenance {
        host: h(header::HOST),
        origin: h(header::ORIGIN),
        sec_fetch_site: header_str(&parts.headers, "sec-fetch-site"),
    }) {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let Some(token) = &shared.token else {
        let why = shared
            .token_problem
            .as_deref()
            .unwrap_or("no action token is set up");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, why);
    };
    // The body is small and must come quickly: a slow body is a slowloris
    // too.
    let collected = tokio::time::timeout(
        shared.config.header_timeout.get(),
        Limited::new(body, request::MAX_FORM_BYTES).collect(),
    )
    .await;
    let body = match collected {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large or broken",
            )
        }
        Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "the form came too slowly"),
    };
    let form = request::parse_form(&body).unwrap_or_default();
    let given = request::field(&form, "token")
        .or_else(|| header_str(&parts.headers, actions::TOKEN_HEADER))
        .unwrap_or("");
    if !token.matches(given) {
        return refuse(StatusCode::FORBIDDEN, "wrong or missing action token");
    }
    match action {
        Action::Netcheck => shared.pokes.netcheck.poke(),
        Action::Remap => shared.pokes.portmap.poke(),
    }
    shared.counters.actions_run.fetch_add(1, Ordering::Relaxed);
    shared.hub.emit(
        "web",
        "action.requested",
        Level::Info,
        format!(
            "{} asked from the status page by {}",
            match action {
                Action::Netcheck => "a NAT report",
                Action::Remap => "re-mapping",
            },
            peer.ip()
        ),
    );
    let mut r = reply(StatusCode::SEE_OTHER, TEXT, "done\n");
    if let Ok(v) = HeaderValue::from_str(&format!("/?done={}", action.name())) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn header_str<K: header::AsHeaderName>(h: &HeaderMap, name: K) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if content_type == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    r
}

fn html(status: StatusCode, body: String) -> Reply {
    reply(status, HTML, body)
}

fn not_found() -> Reply {
    html(
        StatusCode::NOT_FOUND,
        page::message_page("Not found", "There is no such page here."),
    )
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut r = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        TEXT,
        format!("method not allowed; use {allow}\n"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}
