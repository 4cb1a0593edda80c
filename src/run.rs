//! One run: settings from the Action's inputs or the CLI, validation, then the chosen mode.

use std::collections::BTreeMap;

use crate::actions::Actions;
use crate::cli::{Cli, Command};
use crate::config::{self, ActionInputs, Config, Mode, RawSettings};
use crate::error::{Error, Failure, Result};

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
    match ctx.config.mode {
        Mode::ValidateConfig => validate_config(&ctx).await,
        mode => Err(not_implemented(mode)),
    }
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
