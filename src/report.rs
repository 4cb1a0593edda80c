//! What a run tells the user at the end: the step outputs and the job summary.

use crate::actions::{one_line, Actions};
use crate::error::Error;

/// Every output the binary may write; `action.yml` declares exactly these (a contract test checks it).
pub const OUTPUTS: &[&str] = &[
    "result",
    "backup-branch",
    "backup-branch-id",
    "tables",
    "rows",
    "bytes",
    "sha256",
    "source-bytes",
    "strategy",
    "duration-seconds",
    "tested-backup",
    "backup-age-seconds",
    "checks-passed",
    "checks-failed",
    "test-branch",
    "deleted",
    "latest-backup",
    "backup-count",
    "database-url",
];

/// Writes outputs, refusing names that action.yml does not declare (they would be silently lost).
pub fn write_outputs(actions: &Actions, outputs: &[(&str, String)]) -> std::io::Result<()> {
    for (name, value) in outputs {
        debug_assert!(
            OUTPUTS.contains(name),
            "output {name} is not declared in report::OUTPUTS"
        );
        actions.set_output(name, value)?;
    }
    Ok(())
}

/// What every failed run tells the Actions UI, whatever failed (configuration included): the `result`
/// output, an error annotation with the headline and the hint, and a job summary saying what failed, what
/// it means for the data and what to do. Outside Actions the report on stderr says the same.
pub fn failure(actions: &Actions, err: &Error) {
    let headline = one_line(&err.headline());
    let _ = write_outputs(actions, &[("result", headline.clone())]);
    if !actions.on_actions() {
        return;
    }
    let hint = err.hint();
    let message = if hint.is_empty() {
        headline.clone()
    } else {
        format!("{headline}\nhint: {hint}")
    };
    actions.error(Some(&err.title()), &message);
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let _ = actions.append_summary(&format!(
        "\n## supaneon-sync failed\n\n**What failed:** {}\n\n**What it means for your data:** {}\n\n**What to do:** {}\n",
        headline,
        one_line(&or_dash(err.impact())),
        one_line(&or_dash(hint)),
    ));
}

/// A Markdown table from a header and rows; cells are escaped so data cannot break the table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| one_line(&s.replace('\n', " ")).replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        header.iter().map(|_| " --- |").collect::<String>()
    );
    for row in rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_table_escapes_cells() {
        let t = super::markdown_table(&["a", "b"], &[vec!["x|y".into(), "1\n2".into()]]);
        assert_eq!(t, "| a | b |\n| --- | --- |\n| x\\|y | 1 2 |\n");
    }
}
