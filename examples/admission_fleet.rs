//! The fleet benchmark's load side (bench/admission-fleet.sh): the
//! registration logic of N gateways in one process, right after a
//! simultaneous power cut, over real HTTP (one TCP connection per attempt,
//! as the daemon does) against the reference admission service.
//!
//! Each simulated gateway runs the daemon's own pieces: the start delay
//! (`schedule::first_delay`), the client (`AcsClient::bootstrap`) and the
//! wait after a failure (`schedule::after_failure`), with the configuration
//! defaults unless overridden. Prints one JSON line: time until all are
//! registered, retries, and the service's peak requests per second (from
//! its `/stats`, counted by the service itself).
//!
//! Usage: admission_fleet URL [AGENTS] [STARTUP_SPREAD] [fresh]
//!   (`fresh`: gateways with no stored assignment, i.e. a first boot)

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgereach::admission::client::AcsClient;
use edgereach::admission::codec::BootstrapRequest;
use edgereach::admission::schedule;
use edgereach::config::{AdmissionConfig, HumanDuration};
use edgereach::resolve::NameResolver;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("usage: admission_fleet URL [AGENTS] [SPREAD] [fresh]"))?;
    let agents: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let defaults = AdmissionConfig::default();
    let spread = match args.get(2) {
        Some(s) => HumanDuration::parse(s).map_err(anyhow::Error::msg)?,
        None => defaults.startup_spread,
    }
    .get();
    let fresh = args.get(3).is_some_and(|s| s == "fresh");
    let cfg = AdmissionConfig {
        url: url.clone(),
        account: "acme".into(),
        ..defaults
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let resolver = Arc::new(NameResolver::offline("fleet bench: literal addresses only"));
        let client = AcsClient::new(&cfg, resolver)?;
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..agents {
            let client = client.clone();
            let (interval, cap) = (cfg.interval.get(), cfg.retry_max.get());
            let req = BootstrapRequest {
                account: format!("acme-{}", i % 100),
                plan: "pro".into(),
                want_region: String::new(),
                gateway_id: format!("gw-{i:05}"),
                agent_version: env!("CARGO_PKG_VERSION").into(),
                arch: std::env::consts::ARCH.into(),
                netcheck: None,
                // After a power cut the gateways were assigned and their
                // tailscaled is fine; on a first boot they need a key.
                current_cluster_id: (!fresh).then(|| "A".to_string()),
                needs_auth_key: fresh,
            };
            tasks.spawn(async move {
                tokio::time::sleep(schedule::first_delay(spread, !fresh)).await;
                let mut failures = 0u32;
                loop {
                    match client.bootstrap(&req).await {
                        Ok(_) => return (t0.elapsed(), failures),
                        Err(e) => {
                            failures += 1;
                            let wait = schedule::after_failure(&e, failures, interval, cap);
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            });
        }
        let (mut last, mut retries, mut done) = (Duration::ZERO, 0u64, 0usize);
        while let Some(r) = tasks.join_next().await {
            let (at, failures) = r?;
            last = last.max(at);
            retries += u64::from(failures);
            done += 1;
        }
        let stats_url = format!("{}/stats", url.trim_end_matches('/'));
        let stats: serde_json::Value =
            serde_json::from_slice(&client.for_url(&stats_url, &cfg)?.get(16 << 20).await?)?;
        let line = serde_json::json!({
            "agents": agents,
            "registered": done,
            "startup_spread_s": spread.as_secs_f64(),
            "fresh": fresh,
            "all_registered_s": (last.as_secs_f64() * 10.0).round() / 10.0,
            "retries": retries,
            "service_requests": stats["requests"],
            "service_peak_rps": stats["peak_per_second"],
        });
        println!("{line}");
        anyhow::Ok(())
    })
}
