//! One run: settings from the Action's inputs or the CLI, validation, then the chosen mode.

use std::collections::BTreeMap;

use crate::actions::Actions;
use crate::cli::{Cli, Command};
use crate::config::{self, ActionInputs, Config, Mode, RawSettings};
use crate::backup;
use crate::error::{Error, Failure, Result};
use crate::neon::{NeonClient, NeonSettings};
use crate::pg::pipeline::CancelSignal;
use crate::report;

/// Everything a mode needs from the outside world.
pub struct RunContext {
    pub config: Config,
    pub actions: Actions,
    /// `list --json`
    pub json: bool,
    /// `validate-config --online` (always on for the Action's validate-config mode)
    pub online: bool,
}

/// Reads and validates the settings, then runs the mode. `env` is the process environment, passed in so
/// tests and the Action path read the same thing.
pub async fn run(cli: &Cli, env: &BTreeMap<String, String>, actions: Actions) -> Result<()> {
    let (raw, mode_override) = match &cli.command {
        Command::Action => {
            let inputs =
                ActionInputs::from_vars(env.clone()).map_err(|p| Error::Config(vec![p]))?;
            (RawSettings::from_action(&inputs), None)
        }
        _ => (cli.raw_settings(env), cli.mode()),
    };
    let (config, warnings) = config::validate(&raw, mode_override)?;
    for w in &warnings {
        actions.warning(&w.0);
    }
    let ctx = RunContext {
        online: matches!(
            cli.command,
            Command::ValidateConfig { online: true } | Command::Action
        ),
        json: matches!(cli.command, Command::List { json: true }),
        config,
        actions,
    };
    tracing::info!(mode = ctx.config.mode.name(), "starting");
    let result = match ctx.config.mode {
        Mode::ValidateConfig => validate_config(&ctx).await,
        Mode::Backup => {
            let neon = neon_client(&ctx.config)?;
            let outcome = backup::run(&ctx, &neon, cancel_on_signal()).await;
            match outcome {
                Ok(outcome) => backup::report(&ctx, &outcome),
                Err(e) => Err(e),
            }
        }
        mode => Err(not_implemented(mode)),
    };
    if let Err(e) = &result {
        let _ = report::write_outputs(&ctx.actions, &[("result", e.headline())]);
    }
    result
}

/// The Neon client for the configured project.
pub fn neon_client(config: &Config) -> Result<NeonClient> {
    let settings = config
        .neon
        .as_ref()
        .ok_or_else(|| Failure::new("this mode needs the Neon settings").hint("set NEON_API_KEY and NEON_PROJECT_ID"))?;
    let mut neon = NeonSettings::new(settings.api_key.clone(), settings.project_id.clone());
    neon.base_url = settings.api_url.clone();
    NeonClient::new(neon).map_err(|e| e.into_failure("nothing was run").into())
}

/// A signal that turns true on SIGTERM or SIGINT. In a container our binary is PID 1, where the default
/// dispositions do not terminate, so the signals must be handled explicitly.
pub fn cancel_on_signal() -> CancelSignal {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("cannot install signal handlers; cancellation will not clean up");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM received: stopping"),
            _ = int.recv() => tracing::warn!("SIGINT received: stopping"),
        }
        let _ = tx.send(true);
        // Keep the sender alive so receivers see the value, not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}

fn not_implemented(mode: Mode) -> Error {
    Failure::new(format!(
        "mode {} is not implemented yet in this version",
        mode.name()
    ))
    .impact("nothing was changed: no branch was created or deleted")
    .hint("use validate-config for now; this mode arrives in a later release")
    .into()
}

async fn validate_config(ctx: &RunContext) -> Result<()> {
    let a = &ctx.actions;
    {
        let _group = a.group("configuration");
        a.info("configuration is valid:");
        for (key, value) in ctx.config.redacted_lines() {
            a.info(&format!("  {key}: {value}"));
        }
    }
    if ctx.online {
        a.info("online checks are not available in this version; only the settings were checked");
    }
    Ok(())
}
