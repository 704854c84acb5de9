//! The `edgereach` command: daemon and CLI in one binary.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgereach::config::{Config, DEFAULT_CONFIG_PATH};
use edgereach::control::{self, Request};

/// Exit code for configuration errors, as the docs promise.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "edgereach",
    version,
    about = "Keeps this gateway reachable over the Tailscale mesh"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Log filter, e.g. info, debug, edgereach=trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run,
    /// Show the daemon's status.
    Status {
        /// Print the full status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Probe the router and show what it and the daemon hold.
    Portmap {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a NAT report now and print it (tailscale netcheck's layout).
    Netcheck {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also tell whether the router mapping of the mesh port lets a
        /// stranger in (RFC 5780). Briefly binds the mesh port itself, so
        /// run it while tailscaled is stopped: a tailscaled starting at that
        /// moment would fall back to a random port.
        #[arg(long)]
        mesh_port: bool,
    },
    /// Register with the admission service once and print the assignment
    /// (changes nothing: the daemon applies assignments itself).
    Register {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration file and exit (2 on error).
    CheckConfig,
    /// Developer tools for tests.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Rewrite a state file in a loop with the real atomic writer (crash tests).
    WriteState {
        /// State directory.
        #[arg(long)]
        dir: PathBuf,
        /// Number of writes (bounded).
        #[arg(long, default_value_t = 100_000)]
        count: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = edgereach::entropy::check() {
        eprintln!("edgereach: {e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::CheckConfig => match Config::load(&cli.config) {
            Ok(_) => {
                println!("{}: ok", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run => {
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            edgereach::logging::init(&cli.log_level);
            report(run_daemon(config, cli.config))
        }
        Command::Status { json } => report(show_status(&cli.config, json)),
        Command::Portmap { json } => report(show_portmap(&cli.config, json)),
        Command::Netcheck { format, mesh_port } => {
            report(run_netcheck(&cli.config, format, mesh_port))
        }
        Command::Register { json } => report(register(&cli.config, json)),
        Command::Debug(DebugCommand::WriteState { dir, count }) => report(write_state(&dir, count)),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgereach: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_daemon(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(edgereach::daemon::run(config, path))?;
    // Tasks were stopped already; don't let a stuck blocking call delay exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

fn show_status(config_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    // The CLI finds the daemon through the same configuration; a broken file
    // still names its problem, exactly as `check-config` would.
    let config = Config::load(config_path)?;
    let response = control::request(&config.gateway.control_socket(), &Request::Status)?;
    let status = response.status.context("the daemon sent no status")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", edgereach::view::render_status(&status));
    }
    Ok(())
}

fn show_portmap(config_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let daemon = control::request(&config.gateway.control_socket(), &Request::Status)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            r.status
                .map(|s| s.portmap)
                .ok_or_else(|| "no status".to_string())
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let found = runtime.block_on(edgereach::portmap::inspect::inspect(&config, daemon));
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", edgereach::portmap::inspect::render(&found));
    }
    Ok(())
}

fn run_netcheck(
    config_path: &std::path::Path,
    format: Format,
    mesh_port: bool,
) -> anyhow::Result<()> {
    use edgereach::netcheck::run::{self, History, Kind};
    let config = Config::load(config_path)?;
    // The daemon's last report carries the rarely measured mapping lifetime.
    // Its router mapping lets the mesh port test run here too.
    let daemon = control::request(&config.gateway.control_socket(), &Request::Status)
        .ok()
        .and_then(|r| r.status);
    let mesh = daemon.as_ref().filter(|_| mesh_port).and_then(|s| {
        edgereach::netcheck::reach::MeshMapping::held(&s.portmap, &config.tailscale.mapping)
    });
    let daemon_report = daemon.and_then(|s| s.netcheck.report);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let resolver = edgereach::resolve::NameResolver::from_system();
        let tailscaled = refresh_derp_maps(&config).await;
        let plan = run::plan(&run::effective(&config), tailscaled.map(), &resolver).await?;
        // Asked beside the probes (run::run), so a router with no mapping
        // service costs no time of its own.
        let port_mapping = edgereach::portmap::inspect::protocols_within(run::PORT_MAPPING_BUDGET);
        let mut history = History::default();
        history.last = daemon_report;
        run::run(&plan, Kind::Full, &mut history, port_mapping, mesh).await
    })?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", edgereach::netcheck::text::render(&report)),
    }
    Ok(())
}

/// Bring the DERP maps netcheck may use up to date: the configured URL's
/// (kept in the state directory) and, when nothing else gives a server,
/// tailscaled's. A failure is not fatal: the copy kept before is used.
async fn refresh_derp_maps(config: &Config) -> edgereach::netcheck::tsmap::TailscaledMap {
    use edgereach::netcheck::{derpfetch, run, tsmap};
    if derpfetch::is_url(&config.netcheck.derp_map) {
        if let Err(e) = derpfetch::refresh(
            &config.netcheck.derp_map,
            &config.gateway.state_dir(),
            std::time::Duration::from_secs(10),
            std::sync::Arc::new(edgereach::resolve::NameResolver::from_system()),
        )
        .await
        {
            eprintln!(
                "edgereach: DERP map not fetched: {e}; using the copy fetched before, if any"
            );
        }
    }
    let mut tailscaled = tsmap::TailscaledMap::default();
    if run::wants_tailscaled_map(config) {
        let failed = matches!(
            tailscaled.refresh(config).await,
            Some(tsmap::Refreshed::Failed)
        );
        // Without a kept copy the report's own error says it all.
        if failed && tailscaled.map().is_ok() {
            eprintln!(
                "edgereach: tailscaled's DERP map not available: {}; using the copy it gave before",
                tailscaled.error()
            );
        }
    }
    tailscaled
}

fn register(config_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use edgereach::admission::{assignment::Assignment, client::AcsClient, service};
    let config = Config::load(config_path)?;
    anyhow::ensure!(
        !config.admission.url.is_empty(),
        "admission.url is empty in {}: registration is off",
        config_path.display()
    );
    let daemon = control::request(&config.gateway.control_socket(), &Request::Status)
        .ok()
        .and_then(|r| r.status);
    let gateway_id = match (&config.gateway.id, &daemon) {
        (Some(id), _) => id.clone(),
        (None, Some(s)) => s.gateway.id.clone(),
        (None, None) => {
            let state = edgereach::state::StateDir::open(&config.gateway.state_dir())?;
            let machine_id = std::fs::read_to_string("/etc/machine-id").ok();
            edgereach::state::Identity::load_or_create(&state, machine_id.as_deref())?.gateway_id
        }
    };
    // This command changes nothing, so it asks for no pre-auth key; naming
    // the daemon's current cluster lets the service skip minting one.
    let mut req = service::request_for(
        &config,
        &gateway_id,
        daemon.as_ref().and_then(|s| s.netcheck.report.as_ref()),
    );
    req.current_cluster_id = daemon.as_ref().and_then(|s| s.admission.cluster_id.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reg = runtime.block_on(async {
        let resolver = std::sync::Arc::new(edgereach::resolve::NameResolver::from_system());
        AcsClient::new(&config.admission, resolver)?
            .bootstrap(&req)
            .await
    })?;
    let a = Assignment::from_response(&reg.response, &config.admission.url);
    let key_received = reg.response.auth_key.is_some();
    drop(reg.response);
    if json {
        let mut v = serde_json::to_value(&a)?;
        v["gateway_id"] = gateway_id.into();
        v["service_addr"] = reg.peer.to_string().into();
        v["auth_key_received"] = key_received.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("registered {gateway_id} with {} ({})", a.service, reg.peer);
        println!("cluster       {}", a.cluster_id);
        println!("headscale     {}", edgereach::redact::url(&a.headscale_url));
        let key = if key_received {
            " (a pre-auth key was received; never shown)"
        } else {
            ""
        };
        println!("auth mode     {}{key}", a.auth_mode);
        let derp = edgereach::redact::opt_url(a.derp_map_url.as_deref()).unwrap_or_else(|| {
            if a.derp_map_inline {
                "inline".into()
            } else {
                "none".into()
            }
        });
        println!("derp map      {derp}");
        if let Some(n) = &a.note {
            println!("note          {n}");
        }
        println!(
            "(nothing was changed here: the daemon applies assignments at its own registrations)"
        );
    }
    Ok(())
}

fn write_state(dir: &std::path::Path, count: u64) -> anyhow::Result<()> {
    let state = edgereach::state::StateDir::open(dir)?;
    for i in 0..count {
        // Vary the size so a torn write would show as a parse error.
        let payload: Vec<u64> = (0..(i % 97) + 1).map(|x| x * i).collect();
        state.write_json(
            "torture.json",
            &serde_json::json!({ "i": i, "payload": payload }),
        )?;
    }
    Ok(())
}
