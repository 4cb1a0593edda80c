//! What a run tells the user at the end: the step outputs and the job summary.

use crate::actions::{one_line, Actions};

/// Every output the binary may write; `action.yml` declares exactly these (a contract test checks it).
pub const OUTPUTS: &[&str] = &[
    "result",
    "backup-branch",
    "backup-branch-id",
    "tables",
    "rows",
    "bytes",
    "sha256",
    "duration-seconds",
    "tested-backup",
    "backup-age-seconds",
    "checks-passed",
    "checks-failed",
    "test-branch",
    "deleted",
    "latest-backup",
    "backup-count",
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
