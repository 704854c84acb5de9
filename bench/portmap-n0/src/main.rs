//! Bench helper: hold a UDP port mapping for a local port with n0-computer's
//! `portmapper` 0.20 (the iroh stack's port mapper), used the way iroh uses it.
//!
//!   portmap-n0 [--port 41641] [--tick SECS|0] [--probe-first] [--no-release]
//!
//! stdout, one line per event (seconds since the process started):
//!   mapped <external ip:port> <secs>     the external address changed to this
//!   unmapped <secs>                       the mapping was lost
//!   released <secs>                       clean shutdown finished (deactivate)
//!   exit-no-release <secs>                shutdown without deactivate
//! stderr: the crate's own tracing (RUST_LOG, default `portmapper=debug`); its
//! `new port mapping Some(Pcp(..))` lines tell which protocol was used.
//!
//! Like iroh's magicsock: `update_local_port` once at start, then every 20-26 s
//! (its periodic re-STUN) `procure_mapping()` and a `probe()` (net_report's
//! port-mapping probe). `--tick SECS` makes that period fixed, `--tick 0` off.
//! `--probe-first` awaits one probe before asking for the mapping.
//! The program never binds the local port itself: portmapper only maps it.
//! SIGTERM/SIGINT: `deactivate()` (releases the mapping on the router) and wait
//! for it, unless `--no-release`, which exits at once and leaves the mapping.

use std::num::NonZeroU16;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, SignalKind};

struct Args {
    port: NonZeroU16,
    /// None: iroh-like 20-26 s; Some(0): off.
    tick: Option<u64>,
    probe_first: bool,
    release: bool,
}

fn usage() -> ! {
    eprintln!("usage: portmap-n0 [--port N] [--tick SECS|0] [--probe-first] [--no-release]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        port: NonZeroU16::new(41641).unwrap(),
        tick: None,
        probe_first: false,
        release: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => {
                a.port = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--tick" => {
                a.tick = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--probe-first" => a.probe_first = true,
            "--no-release" => a.release = false,
            _ => usage(),
        }
    }
    a
}

/// 20-26 s like iroh's periodic re-STUN timer (jitter from the clock: no
/// extra dependency needed for a bench helper).
fn next_tick(tick: Option<u64>) -> Option<Duration> {
    match tick {
        Some(0) => None,
        Some(s) => Some(Duration::from_secs(s)),
        None => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            Some(Duration::from_millis(20_000 + u64::from(nanos % 6_000)))
        }
    }
}

#[tokio::main]
async fn main() {
    let t0 = Instant::now();
    let args = parse_args();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("portmapper=debug")),
        )
        .init();
    let secs = || t0.elapsed().as_secs_f64();

    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");

    let client = portmapper::Client::new(portmapper::Config::default());
    let mut watch = client.watch_external_address();

    if args.probe_first {
        match tokio::time::timeout(Duration::from_secs(5), client.probe()).await {
            Ok(Ok(Ok(p))) => eprintln!("portmap-n0: probe {p}"),
            other => eprintln!("portmap-n0: probe failed: {other:?}"),
        }
    }
    client.update_local_port(args.port);

    let mut last: Option<std::net::SocketAddrV4> = None;
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut ticking = match next_tick(args.tick) {
        Some(d) => {
            sleep.as_mut().reset(tokio::time::Instant::now() + d);
            true
        }
        None => false,
    };

    loop {
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    eprintln!("portmap-n0: portmapper service stopped");
                    std::process::exit(1);
                }
                let now = *watch.borrow_and_update();
                if now != last {
                    match now {
                        Some(addr) => println!("mapped {addr} {:.3}", secs()),
                        None => println!("unmapped {:.3}", secs()),
                    }
                    last = now;
                }
            }
            _ = &mut sleep, if ticking => {
                client.procure_mapping();
                // the probe result only refreshes the service's view, as in iroh
                let _ = client.probe();
                match next_tick(args.tick) {
                    Some(d) => sleep.as_mut().reset(tokio::time::Instant::now() + d),
                    None => ticking = false,
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    if !args.release {
        println!("exit-no-release {:.3}", secs());
        std::process::exit(0);
    }
    client.deactivate();
    // The service clears the address, then awaits the router release; a probe
    // queued behind the deactivate message is answered only after that.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while watch.borrow_and_update().is_some() {
            if watch.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(3), client.probe()).await;
    println!("released {:.3}", secs());
}
