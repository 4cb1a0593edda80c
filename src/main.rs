//! Entry point: parse the command line, set up logging and the runtime, and map the result to an exit code
//! (0 ok, 1 the operation failed, 2 invalid configuration or usage).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use supaneon_sync::actions::{self, Actions};
use supaneon_sync::cli::{Cli, Command};
use supaneon_sync::error::exit;
use supaneon_sync::{logging, report, run, secret};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; clap's own usage errors exit 2, as ours do.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::INVALID_CONFIG
            } else {
                exit::OK
            });
        }
    };
    let actions = Actions::from_env();
    // One document on stdout (JSON, or failover's URI); everything else on stderr.
    let actions = if matches!(
        cli.command,
        Command::List { json: true } | Command::Failover { .. }
    ) {
        actions.with_document_stdout()
    } else {
        actions
    };
    // Masks must reach the runner before any secret could be printed, so install the sink first.
    let mask_sink = actions.clone();
    secret::set_mask_sink(move |form| mask_sink.mask(form));
    logging::init(actions.on_actions());

    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let result = runtime.block_on(run::run(&cli, &env, actions.clone()));
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            report::failure(&actions, &err);
            // Every line of the report is one line, and none can be taken for a workflow command.
            let report = actions::safe_lines(err.render().trim_end_matches('\n'));
            let _ = std::io::stderr().write_all(format!("{report}\n").as_bytes());
            ExitCode::from(err.exit_code())
        }
    }
}
