//! One run: settings from the Action's inputs or the CLI, validation, then the chosen mode.

use std::collections::BTreeMap;

use crate::actions::Actions;
use crate::backup;
use crate::budget::Budget;
use crate::cli::{Cli, Command};
use crate::config::{self, ActionInputs, Config, Mode, RawSettings};
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, NeonClient, NeonSettings};
use crate::ownership::{self, Scope};
use crate::pg::pipeline::CancelSignal;
use crate::preflight;
use crate::prune::Policy;
use crate::report;
use crate::restore_test;
use crate::{failover, list, prune};
use tracing::Instrument;

/// Everything a mode needs from the outside world.
pub struct RunContext {
    pub config: Config,
    pub actions: Actions,
    /// `list --json`
    pub json: bool,
    /// `validate-config --online` (always on for the Action's validate-config mode)
    pub online: bool,
    /// This run's unique id, annotated on every branch it creates (see [`crate::ownership`]).
    pub run_id: String,
}

impl RunContext {
    /// Whose branches this run may act on, judged now against `branches` (the project's list).
    pub fn scope(&self, branches: &[BranchInfo]) -> Result<Scope> {
        Scope::resolve(self.config.source.as_ref(), branches, chrono::Utc::now())
    }
}

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
    // A failure's `result`, annotation and summary are written by the caller, for every exit.
    run_mode(&ctx).instrument(span).await
}

async fn run_mode(ctx: &RunContext) -> Result<()> {
    tracing::info!("starting");
    if ctx.config.mode == Mode::ValidateConfig {
        validate_config(ctx).await?;
        report_valid(ctx);
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

/// On Actions, a valid configuration also gets the `result` output and a summary line, as every mode does.
fn report_valid(ctx: &RunContext) {
    if !ctx.actions.on_actions() {
        return;
    }
    let result = if ctx.online {
        "configuration is valid and every online check passed"
    } else {
        "configuration is valid"
    };
    let _ = report::write_outputs(&ctx.actions, &[("result", result.to_string())]);
    let _ = ctx
        .actions
        .append_summary(&format!("### supaneon-sync validate-config\n\n{result}\n"));
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
    if !ctx.online {
        return Ok(());
    }
    let _group = a.group("online checks");
    let failed = online_checks(ctx).await;
    if failed.is_empty() {
        a.info("all online checks passed");
        return Ok(());
    }
    Err(Failure::new(format!(
        "{} online check{} failed: {}",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        failed.join("; ")
    ))
    .impact("nothing was changed; a backup run now would fail the same way")
    .hint("fix what each failed check says, then run validate-config --online again")
    .into())
}

/// Runs every online check, printing one line each; returns the names of the failed ones.
async fn online_checks(ctx: &RunContext) -> Vec<String> {
    let a = &ctx.actions;
    let config = &ctx.config;
    let mut failed = Vec::new();
    let mut report = |ok: bool, name: &str, detail: String| {
        a.info(&format!(
            "  {} {name}: {detail}",
            if ok { "ok  " } else { "FAIL" }
        ));
        if !ok {
            failed.push(name.to_string());
        }
    };
    let mut source_major = None;
    if config.source_url.is_some() {
        match preflight::source(config).await {
            Ok(source) => {
                report(
                    true,
                    "source",
                    format!(
                        "answers as {} (PostgreSQL {}); {}",
                        source.spec.display(),
                        source.version,
                        source.facts.describe()
                    ),
                );
                source_major = Some(source.major);
                match preflight::tools_for(config, &source) {
                    Ok(tools) => report(
                        true,
                        "pg tools",
                        format!(
                            "{} and {} ({})",
                            tools.pg_dump.display(),
                            tools.pg_restore.display(),
                            tools.version
                        ),
                    ),
                    Err(e) => report(false, "pg tools", e.render().trim().replace('\n', " ")),
                }
            }
            Err(e) => report(false, "source", e.headline()),
        }
    }
    if config.neon.is_some() {
        match neon_client(config) {
            Ok(neon) => match neon.get_project().await {
                Ok(project) => {
                    report(
                        true,
                        "neon project",
                        format!(
                            "{} reachable with the API key (PostgreSQL {})",
                            project.id, project.pg_version
                        ),
                    );
                    let extra = config
                        .neon
                        .as_ref()
                        .and_then(|n| n.extra_roots.as_ref())
                        .map(|p| format!(" and the roots in {}", p.display()))
                        .unwrap_or_default();
                    report(
                        true,
                        "neon branch connections",
                        format!("will be verified in full against the public roots{extra}, to the host of the branch's endpoint, with channel binding (SCRAM-SHA-256-PLUS)"),
                    );
                    if let Some(major) = source_major {
                        let fits = project.pg_version >= major;
                        report(
                            fits,
                            "neon postgres version",
                            format!(
                                "project {} vs source {major}{}",
                                project.pg_version,
                                if fits {
                                    ""
                                } else {
                                    ": restore would fail; create the Neon project with the source's major"
                                }
                            ),
                        );
                    }
                    let limit = project
                        .branches_limit()
                        .unwrap_or(preflight::FREE_PLAN_BRANCH_LIMIT);
                    if let Some(storage) = preflight::storage_check(&project) {
                        report(storage.fits, "neon storage", storage.detail);
                        if let Some(warning) = storage.warning {
                            a.warning(&warning);
                        }
                    }
                    match preflight::branch_budget_problem(limit, config.retention.keep_last) {
                        None => report(
                            true,
                            "branch budget",
                            format!(
                                "keep-last {} fits the limit of {limit} branches",
                                config.retention.keep_last
                            ),
                        ),
                        Some(problem) => report(false, "branch budget", problem),
                    }
                    match neon.list_branches().await {
                        Ok(branches) => match ctx.scope(&branches) {
                            Ok(scope) => {
                                let budget = Budget::count(
                                    &branches,
                                    &scope,
                                    &Policy::from_retention(&config.retention),
                                    Some(limit),
                                );
                                let headroom = budget.headroom().unwrap_or(0);
                                if headroom < 1 {
                                    report(false, "branch slots", format!("{budget}: the next backup cannot be created; delete a branch you no longer need, lower keep-last, or raise the plan's branch limit"));
                                } else {
                                    report(true, "branch slots", budget.to_string());
                                    if headroom < 2 {
                                        a.warning(&format!("the Neon project is nearly full ({budget}): room for the next backup, but not for a restore test beside it; delete a branch you no longer need or lower keep-last"));
                                    }
                                }
                            }
                            Err(e) => report(false, "branch slots", e.headline()),
                        },
                        Err(e) => report(false, "branch slots", e.to_string()),
                    }
                }
                Err(e) => report(false, "neon project", format!("{e}; {}", e.hint())),
            },
            Err(e) => report(false, "neon project", e.headline()),
        }
    }
    failed
}
