//! `local-world`: a Supabase-shaped source, a Neon-shaped cluster and the Neon emulator on this machine,
//! for `scripts/demo.sh`. Writes the environment that points `supaneon-sync` at them to `--env-file`
//! (mode 0600, the only place secrets go), prints `local-world: ready`, and runs until SIGTERM, SIGINT,
//! SIGHUP or the end of stdin; then stops the emulator and stops and removes both clusters.

mod env_file;
mod stop;
mod world;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use stop::StopRequests;
use world::LocalWorld;

/// A local world for the supaneon-sync demo (never for production data).
#[derive(Parser, Debug)]
#[command(name = "local-world", version)]
struct Args {
    /// PostgreSQL major version of both clusters.
    #[arg(long, default_value_t = 15, value_parser = parse_major)]
    major: u32,
    /// Where to write the `export` lines (mode 0600); the only place the world's secrets go.
    #[arg(long)]
    env_file: PathBuf,
    /// Debug: print each cluster's temp directory and postmaster pid on stdout before `ready`.
    #[arg(long)]
    print_data_dirs: bool,
}

/// The majors the testkit can run (15 from Debian, 17 from `scripts/fetch-postgres.sh`).
fn parse_major(value: &str) -> Result<u32, String> {
    match value {
        "15" => Ok(15),
        "17" => Ok(17),
        _ => Err("expected 15 or 17".to_string()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("local-world: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(args));
    // The stdin watcher thread may still be blocked in read(); do not wait for it.
    runtime.shutdown_background();
    code
}

async fn run(args: Args) -> ExitCode {
    let mut stop = match StopRequests::listen() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("local-world: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let world = match LocalWorld::start(args.major, &stop).await {
        Ok(Some(world)) => world,
        Ok(None) => {
            eprintln!(
                "local-world: stopped during start-up ({})",
                stop.requested().unwrap_or("stop")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("local-world: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match announce(&world, &args) {
        Ok(()) => {
            let reason = stop.wait().await;
            eprintln!("local-world: {reason}: stopping");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("local-world: {e}");
            ExitCode::FAILURE
        }
    };
    world.shutdown().await;
    eprintln!("local-world: stopped; clusters removed");
    code
}

/// Writes the env file, then tells the parent on stdout that the world is ready.
fn announce(world: &LocalWorld, args: &Args) -> Result<(), String> {
    env_file::write(&args.env_file, &world.env_vars())
        .map_err(|e| format!("cannot write the env file {}: {e}", args.env_file.display()))?;
    let mut out = std::io::stdout().lock();
    let mut lines = String::new();
    if args.print_data_dirs {
        for c in world.clusters() {
            lines.push_str(&format!(
                "local-world: cluster {} dir={} pid={}\n",
                c.role,
                c.dir.display(),
                c.pid
            ));
        }
    }
    lines.push_str("local-world: ready\n");
    out.write_all(lines.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot tell the parent the world is ready (stdout: {e})"))
}
