//! Command-line front end: `serve`, `hash` and `check-config`, logging setup, signals.

mod bank;
mod demo;
mod hash;
mod lookup;
mod replay;
mod scan;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::admin;
use crate::config::{Config, LogFormat};
use crate::gate::Gate;
use crate::matcher::{log_reload, Matcher};
use crate::relay;

/// hashgate: relays RTMP ingest to the platform and cuts streams that match known content.
#[derive(Debug, Parser)]
#[command(name = "hashgate", version, about)]
pub struct Cli {
    /// Log format; overrides `[log] format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Hash images and videos (PDQ by default): one line per image or sampled frame.
    Hash(hash::HashArgs),
    /// Look up query hashes (one per line on stdin) in a list: one JSON line per query.
    Lookup(lookup::LookupArgs),
    /// Run a video file through sampling, hashing, matching and the cut policy.
    Scan(scan::ScanArgs),
    /// Publish a media file like a broadcaster; exit 2 when the server cuts or refuses it.
    Replay(replay::ReplayArgs),
    /// Show a cut end to end on loopback: the samples replayed through hashgate to a local
    /// platform, with a report.
    Demo(demo::DemoArgs),
    /// Media banks: build one from clips, check a video against one.
    #[command(subcommand)]
    Bank(bank::BankCommand),
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file.
        #[arg(default_value = "config.toml")]
        config: PathBuf,
    },
}

/// Runs the command; errors are printed as one line and give exit code 1.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hashgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = match cli.command {
        Command::Replay(args) => {
            init_logging(cli.log_format.unwrap_or_default(), "info");
            return replay::run(&args);
        }
        Command::Demo(args) => {
            init_logging(cli.log_format.unwrap_or_default(), "error");
            return demo::run(&args);
        }
        Command::CheckConfig { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Hash(args) => match hash::run(&args)? {
            0 => Ok(()),
            failed => anyhow::bail!("{failed} of {} files could not be hashed", args.files.len()),
        },
        Command::Lookup(args) => match lookup::run(&args)? {
            0 => Ok(()),
            invalid => anyhow::bail!("{invalid} queries were not valid hashes"),
        },
        Command::Scan(args) => scan::run(&args),
        Command::Bank(command) => bank::run(&command),
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            init_logging(cli.log_format.unwrap_or(config.log.format), "info");
            raise_fd_limit(config.limits.max_connections);
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            runtime.block_on(serve(config))
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// Raises the soft limit on open files to the hard one: each stream holds two sockets and
/// more, and the usual soft limit of 1024 would refuse connections long before
/// `max_connections`. Says so when even the hard limit is short.
fn raise_fd_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit fill and read a plain struct we own.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    let needed = (max_connections as u64)
        .saturating_mul(3)
        .saturating_add(64);
    if !ok || limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            "the open-file limit is short of limits.max_connections (3 per stream): raise it (ulimit -n, LimitNOFILE=)"
        );
    }
}

/// Logs to stderr; `RUST_LOG` filters, `default_filter` otherwise.
fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let admin_config = config.admin.enabled.then(|| config.admin.clone());
    let fetched = crate::matcher::remote::prefetch(&config.lists).await?;
    let fetched_banks = crate::bank::remote::prefetch(&config.media_bank.remote).await?;
    let join_timeout = config.cluster.join_timeout;
    let gate = Gate::build(config)?;
    crate::matcher::remote::poll(&gate.matcher, fetched)?;
    if let Some(banks) = &gate.banks {
        crate::bank::remote::poll(banks, fetched_banks)?;
    }
    if let Some(cluster) = &gate.cluster {
        // Broadcasters are taken once the fleet's blocks are known here, or after the wait.
        if !cluster.wait_synced(join_timeout).await {
            tracing::warn!(
                "the cluster store does not answer: taking broadcasters without the fleet's blocks (cluster.join_timeout); /healthz says not ready until they are read"
            );
        }
    }
    let relay = gate.relay.clone();
    let events = gate.events.clone();
    gate.matcher
        .watch(LIST_POLL)
        .context("starting the list watcher")?;
    tokio::spawn(reload_on_sighup(gate.matcher.clone()));
    if let Some(banks) = &gate.banks {
        banks
            .watch(LIST_POLL)
            .context("starting the media bank watcher")?;
    }
    let listener = relay::bind(listen).await?;
    let admin_stop = CancellationToken::new();
    let admin = match &admin_config {
        Some(config) => {
            let admin_listener = admin::bind(config.listen).await?;
            let state = Arc::new(admin::AdminState::new(config, &gate));
            Some(tokio::spawn(admin::serve(
                admin_listener,
                state,
                admin_stop.clone(),
            )))
        }
        None => None,
    };
    let running = tokio::spawn(relay.clone().run(listener));
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down: ending streams");
    relay.shutdown();
    running.await.context("relay task")??;
    if let Some(cluster) = &gate.cluster {
        cluster.leave(std::time::Duration::from_secs(2)).await;
    }
    if !events.flush(EVENTS_FLUSH) {
        tracing::warn!("event log: some events may not have been written before exit");
    }
    admin_stop.cancel();
    if let Some(admin) = admin {
        admin.await.context("admin task")?.context("admin API")?;
    }
    Ok(())
}

/// How long shutdown waits for the event log to be written.
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// How often list files are checked for changes (a hash appended is live within this).
const LIST_POLL: std::time::Duration = std::time::Duration::from_millis(250);

async fn reload_on_sighup(matcher: Arc<Matcher>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; lists still reload when their files change");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading every list");
        let matcher = matcher.clone();
        if let Ok(outcomes) =
            tokio::task::spawn_blocking(move || matcher.reload(crate::matcher::ReloadOptions::ALL))
                .await
        {
            outcomes.iter().for_each(log_reload);
        }
    }
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
    }
    Ok(())
}
