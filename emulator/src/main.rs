//! `neon-emulator`: serve one emulated Neon project until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use neon_emulator::{BackingPostgres, Emulator, EmulatorConfig};

/// A local Neon API v2 backed by a real PostgreSQL cluster (for tests and demos only).
#[derive(Parser, Debug)]
#[command(name = "neon-emulator", version)]
struct Args {
    /// Address to serve on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Superuser conninfo of the backing cluster (key=value or URL; used without TLS).
    #[arg(long, env = "NEON_EMULATOR_POSTGRES")]
    postgres: String,
    /// Host put into connection URIs.
    #[arg(long, default_value = "127.0.0.1")]
    public_host: String,
    /// Port put into connection URIs.
    #[arg(long, default_value_t = 5432)]
    public_port: u16,
    /// Query appended to connection URIs.
    #[arg(long, default_value = neon_emulator::NEON_URI_QUERY)]
    uri_query: String,
    /// The API key clients must send as a Bearer token.
    #[arg(long, env = "NEON_EMULATOR_API_KEY", hide_env_values = true)]
    api_key: String,
    #[arg(long, default_value = "quiet-river-12345678")]
    project_id: String,
    /// The backing cluster's major version, reported as the project's pg_version.
    #[arg(long, default_value_t = 17)]
    pg_version: u32,
    #[arg(long, default_value_t = 10)]
    branch_limit: usize,
    #[arg(long, default_value_t = 3)]
    root_branch_limit: usize,
    /// Time each operation spends scheduling and again running.
    #[arg(long, default_value_t = 200)]
    operation_step_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Logs go to stderr: stdout carries only the base-URL line.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut postgres = BackingPostgres::new(&args.postgres, &args.public_host, args.public_port);
    postgres.uri_query = args.uri_query;
    let mut cfg = EmulatorConfig::new(postgres, &args.api_key, &args.project_id, args.pg_version);
    cfg.branch_limit = args.branch_limit;
    cfg.root_branch_limit = args.root_branch_limit;
    cfg.operation_step = Duration::from_millis(args.operation_step_ms);
    // Installed before the base URL is announced, so a supervisor's SIGTERM never finds it missing.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let emulator = Emulator::start(cfg, args.listen).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "NEON_API_BASE_URL={}", emulator.base_url())?;
    stdout.flush()?;
    tracing::info!(project = %emulator.project_id(), "serving");

    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emulator.shutdown().await;
    Ok(())
}
