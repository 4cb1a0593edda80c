//! validate-config: every setting shown (redacted) and, with `--online`, one line per check of the outside
//! world: the source and what its connection verified, pg tools, the Neon project, branch connections,
//! storage and branch slots.

use crate::budget::Budget;
use crate::context::RunContext;
use crate::error::{Failure, Result};
use crate::preflight;
use crate::prune::Policy;
use crate::report;
use crate::run::neon_client;

/// On Actions, a valid configuration also gets the `result` output and a summary line, as every mode does.
pub fn report_valid(ctx: &RunContext) {
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

/// Shows the settings and, when online, runs every check; fails when any check failed.
pub async fn run(ctx: &RunContext) -> Result<()> {
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
                    if let Some(storage) = preflight::storage_check(&project, config.strategy) {
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
