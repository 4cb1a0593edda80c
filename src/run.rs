//! One run: settings from the Action's inputs or the CLI, validation, then the chosen mode.

use std::collections::BTreeMap;

use crate::actions::Actions;
use crate::backup;
use crate::cli::{Cli, Command};
use crate::config::{self, ActionInputs, Config, Mode, RawSettings};
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{NeonClient, NeonSettings};
use crate::ownership;
use crate::pg::pipeline::CancelSignal;
use crate::restore_test;
use crate::{failover, keep_awake, list, prune, validate, workflow};
use tracing::Instrument;

/// Reads and validates the settings, then runs the mode. `env` is the process environment, passed in so
/// tests and the Action path read the same thing.
pub async fn run(cli: &Cli, env: &BTreeMap<String, String>, actions: Actions) -> Result<()> {
    let (raw, mode_override) = match &cli.command {
        Command::Action => {
            for name in ActionInputs::unknown_inputs(env.keys()) {
                actions.warning(&format!(
                    "{name} is set but is no input of supaneon-sync; it is ignored (check the step's `with:` keys for a typo)"
                ));
            }
            let inputs =
                ActionInputs::from_vars(env.clone()).map_err(|p| Error::Config(vec![p]))?;
            let mut raw = RawSettings::from_action(&inputs);
            raw.read_tuning(env);
            (raw, None)
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
        run_id: ownership::new_run_id(),
        config,
        actions,
    };
    let span = tracing::info_span!("run", mode = ctx.config.mode.name());
    // An offline validate-config touches no network, so it neither pings nor calls GitHub.
    let online = ctx.config.mode != Mode::ValidateConfig || ctx.online;
    if let (true, Some(settings)) = (online, &ctx.config.keep_awake) {
        keep_awake::ping(settings, &ctx.actions).await;
    }
    // A failure's `result`, annotation and summary are written by the caller, for every exit.
    let result = run_mode(&ctx).instrument(span).await;
    // After the work, whatever its outcome: a failing schedule must stay scheduled to turn red.
    if let (true, Some(token)) = (online, &ctx.config.github_token) {
        workflow::keep_enabled(token, env, &ctx.actions).await;
    }
    result
}

async fn run_mode(ctx: &RunContext) -> Result<()> {
    tracing::info!("starting");
    if ctx.config.mode == Mode::ValidateConfig {
        validate::run(ctx).await?;
        validate::report_valid(ctx);
        return Ok(());
    }
    let neon = neon_client(&ctx.config)?;
    match ctx.config.mode {
        Mode::ValidateConfig => unreachable!("handled above"),
        Mode::Backup => {
            let cancel = cancel_on_signal();
            let outcome = backup::run(ctx, &neon, cancel.clone()).await?;
            backup::report(ctx, &outcome)?;
            // Never after a failed backup (the `?` above): old backups are all that is left then.
            if ctx.config.retention.prune_after_backup {
                prune::after_backup(ctx, &neon, &outcome.branch_name, &cancel).await?;
            }
            Ok(())
        }
        Mode::RestoreTest => restore_test::run(ctx, &neon, cancel_on_signal())
            .await
            .map(|_| ()),
        Mode::Prune => {
            let outcome = prune::run(ctx, &neon, ctx.config.dry_run, &cancel_on_signal()).await?;
            prune::report(ctx, &outcome)
        }
        Mode::List => {
            let listing = list::collect(ctx, &neon).await?;
            list::report(ctx, &listing)
        }
        Mode::Failover => {
            let target = failover::prepare(ctx, &neon).await?;
            failover::report(ctx, &target)
        }
    }
}

/// The Neon client for the configured project.
pub fn neon_client(config: &Config) -> Result<NeonClient> {
    let settings = config.neon.as_ref().ok_or_else(|| {
        Failure::new("this mode needs the Neon settings")
            .hint("set NEON_API_KEY and NEON_PROJECT_ID")
    })?;
    let mut neon = NeonSettings::new(settings.api_key.clone(), settings.project_id.clone());
    neon.base_url = settings.api_url.clone();
    neon.call_deadline = settings.call_deadline;
    NeonClient::new(neon).map_err(|e| e.into_failure("nothing was run").into())
}

/// A signal that turns true on SIGTERM or SIGINT. In a container our binary is PID 1, where the default
/// dispositions do not terminate, so the signals must be handled explicitly.
pub fn cancel_on_signal() -> CancelSignal {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
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
