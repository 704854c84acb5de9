//! The client against a raw loopback responder: answers, refusals, garbage,
//! hangs and oversized bodies, each bounded and named.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Serve `reply` (raw HTTP) to each connection; returns the URL and a
/// channel with each request's head.
async fn responder(
    reply: Vec<u8>,
    then_hang: bool,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let reply = reply.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(got) = read_head(&mut s).await else {
                    return;
                };
                let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
                let _ = s.write_all(&reply).await;
                if then_hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    (url, rx)
}

/// A request read up to the end of its headers; `None` if the peer closed
/// or failed first.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 16384];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

fn client(url: &str, token_file: &str, timeout: Duration) -> AcsClient {
    let cfg = AdmissionConfig {
        url: url.to_string(),
        account: "acme".into(),
        token_file: token_file.into(),
        timeout: timeout.into(),
        ..AdmissionConfig::default()
    };
    AcsClient::new(&cfg, Arc::new(NameResolver::offline("tests"))).unwrap()
}

fn request() -> BootstrapRequest {
    BootstrapRequest {
        account: "acme".into(),
        plan: "pro".into(),
        want_region: "eu".into(),
        gateway_id: "gw-1".into(),
        agent_version: "0.1.0".into(),
        arch: "aarch64".into(),
        netcheck: None,
        current_cluster_id: None,
        needs_auth_key: true,
    }
}

fn http(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn registers_and_sends_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "s3cret-token\n").unwrap();
    let body = r#"{"cluster_id":"A","headscale_url":"http://203.0.113.30:8080","auth_mode":"authkey","auth_key":"k-123","note":"hi"}"#;
    let (url, mut heads) = responder(http("200 OK", "", body), false).await;
    let c = client(&url, tok.to_str().unwrap(), Duration::from_secs(5));
    let r = c.bootstrap(&request()).await.unwrap();
    assert_eq!(r.response.cluster_id, "A");
    let head = heads.recv().await.unwrap();
    assert!(
        head.starts_with("POST /api/v1/bootstrap HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.contains("authorization: Bearer s3cret-token"),
        "{head}"
    );
}

#[tokio::test]
async fn refusal_with_reason_is_rejected_and_clean() {
    let (url, _h) = responder(
        http(
            "403 Forbidden",
            "",
            r#"{"error":"unknown_account","reason":"account acme is not known"}"#,
        ),
        false,
    )
    .await;
    let e = client(&url, "", Duration::from_secs(5))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AcsError::Rejected { status: 403, reason } if reason == "unknown_account: account acme is not known"),
        "{e}"
    );
}

#[tokio::test]
async fn busy_carries_retry_after() {
    let (url, _h) = responder(
        http("429 Too Many Requests", "retry-after: 7\r\n", ""),
        false,
    )
    .await;
    let e = client(&url, "", Duration::from_secs(5))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(e, AcsError::Busy { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{e}"
    );
}

#[tokio::test]
async fn server_error_garbage_and_hang_are_bounded() {
    let (url, _h) = responder(http("500 Internal Server Error", "", "boom"), false).await;
    let e = client(&url, "", Duration::from_secs(5))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::Server { status: 500, .. }), "{e}");

    let (url, _h) = responder(http("200 OK", "", "<html>not json"), false).await;
    let e = client(&url, "", Duration::from_secs(5))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::Decode(CodecError::Json(_))), "{e}");

    // Headers, then nothing: the whole attempt ends at the timeout.
    let (url, _h) = responder(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{".to_vec(),
        true,
    )
    .await;
    let t0 = std::time::Instant::now();
    let e = client(&url, "", Duration::from_secs(1))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn oversized_bodies_are_not_read() {
    // Declared too large: refused from the header.
    let (url, _h) = responder(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10485760\r\n\r\n".to_vec(),
        true,
    )
    .await;
    let e = client(&url, "", Duration::from_secs(5))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::TooLarge(codec::MAX_BODY)), "{e}");
    // Undeclared (close-delimited) 10 MB: cut at the limit.
    let mut reply = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
    reply.extend(std::iter::repeat_n(b'x', 10 << 20));
    let (url, _h) = responder(reply, false).await;
    let e = client(&url, "", Duration::from_secs(5))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::TooLarge(_)), "{e}");
}

#[tokio::test]
async fn token_problems_never_show_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "two words").unwrap();
    let e = read_token(&tok).unwrap_err().to_string();
    assert!(e.contains("holds spaces") && !e.contains("words"), "{e}");
    std::fs::write(&tok, "\n").unwrap();
    assert!(read_token(&tok).unwrap_err().to_string().contains("empty"));
    let e = read_token(&dir.path().join("missing")).unwrap_err();
    assert!(e.to_string().contains("admission.token_file"), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let e = client(&url, "", Duration::from_secs(2))
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::Connect { .. }), "{e}");
}

#[test]
fn targets_parse() {
    let t = Target::parse("https://acs.example:8443/base/").unwrap();
    assert_eq!(t.host_port(), "acs.example:8443");
    assert_eq!(t.path, "/base");
    assert!(t.https);
    let t = Target::parse("http://[2001:db8::1]").unwrap();
    assert_eq!(t.host_port(), "[2001:db8::1]:80");
    assert!(Target::parse("http://user:pw@x").is_err());
    assert!(Target::parse("acs.example").is_err());
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as
/// PEM files in `dir`; returns the server's rustls config (client
/// certificates required, signed by the CA).
fn tls_setup(dir: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "edgereach test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&srv_key, &ca_cert, &ca_key)
        .unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let mut cli = CertificateParams::new(vec!["gw-1.example".to_string()]).unwrap();
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), cli_cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), cli_key.serialize_pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(srv.der().to_vec())],
            PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
        )
        .unwrap();
    Arc::new(cfg)
}

/// An HTTPS responder requiring client certificates; counts the handshakes
/// that presented one.
async fn tls_responder(cfg: Arc<rustls::ServerConfig>, reply: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, reply) = (acceptor.clone(), reply.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                if read_head(&mut s).await.is_none() {
                    return;
                }
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    url
}

fn tls_client(url: &str, dir: &std::path::Path, ca: bool, client_cert: bool) -> AcsClient {
    let p = |f: &str| dir.join(f).display().to_string();
    let cfg = AdmissionConfig {
        url: url.to_string(),
        account: "acme".into(),
        ca_file: if ca { p("ca.pem") } else { String::new() },
        client_cert: if client_cert {
            p("client.pem")
        } else {
            String::new()
        },
        client_key: if client_cert {
            p("client.key")
        } else {
            String::new()
        },
        timeout: Duration::from_secs(5).into(),
        ..AdmissionConfig::default()
    };
    AcsClient::new(&cfg, Arc::new(NameResolver::offline("tests"))).unwrap()
}

#[tokio::test]
async fn https_with_a_configured_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tls_setup(dir.path());
    let body = r#"{"cluster_id":"A","headscale_url":"https://hs-a.example","auth_mode":"none"}"#;
    let url = tls_responder(cfg, http("200 OK", "", body)).await;

    let r = tls_client(&url, dir.path(), true, true)
        .bootstrap(&request())
        .await
        .unwrap();
    assert_eq!(r.response.cluster_id, "A");

    // The public web roots do not know the test CA.
    let e = tls_client(&url, dir.path(), false, true)
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AcsError::Tls { why, .. } if why.contains("UnknownIssuer")),
        "{e}"
    );

    // Without a client certificate the server ends the handshake.
    let e = tls_client(&url, dir.path(), true, false)
        .bootstrap(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, AcsError::Tls { .. } | AcsError::Http(_)), "{e}");
}

#[test]
fn unusable_tls_files_are_setup_errors() {
    let cfg = AdmissionConfig {
        url: "https://acs.example".into(),
        account: "acme".into(),
        ca_file: "/nonexistent/ca.pem".into(),
        ..AdmissionConfig::default()
    };
    let e = AcsClient::new(&cfg, Arc::new(NameResolver::offline("tests")))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("admission.ca_file: /nonexistent/ca.pem"),
        "{e}"
    );
}
