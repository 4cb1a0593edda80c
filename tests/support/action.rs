//! The runner's side of the composite action, simulated: the step `env:` of action.yml evaluated with the
//! inputs' defaults and a test's `with:` values, exactly the variables `action-entry.sh` forwards into the
//! container with `docker run -e NAME`.
#![allow(dead_code)]

use super::cli::{repo_root, Cli};

/// The composite step of action.yml (the one that runs the container).
pub fn composite_step() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo_root().join("action.yml")).expect("read action.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse action.yml");
    doc["runs"]["steps"][0].clone()
}

/// `env:` of the composite step with every `${{ inputs.<id> }}` replaced by the `with:` value or the
/// input's default ("" when it has none), as the runner evaluates it. Panics on any other expression: the
/// step must not read anything else.
pub fn step_env(with: &[(&str, &str)]) -> Vec<(String, String)> {
    let defaults = super::cli::action_yml_inputs();
    for (id, _) in with {
        assert!(
            defaults.iter().any(|(d, _)| d == id),
            "with: {id} is not an input of action.yml"
        );
    }
    let step = composite_step();
    let env = step["env"]
        .as_mapping()
        .expect("the composite step has env:");
    env.iter()
        .map(|(name, expr)| {
            let name = name.as_str().expect("env name").to_string();
            let expr = expr.as_str().expect("env value");
            let id = expr
                .strip_prefix("${{ inputs.")
                .and_then(|rest| rest.strip_suffix(" }}"))
                .unwrap_or_else(|| panic!("{name}: unexpected expression {expr}"));
            let value = with
                .iter()
                .find(|(k, _)| *k == id)
                .map(|(_, v)| v.to_string())
                .or_else(|| {
                    defaults
                        .iter()
                        .find(|(d, _)| d == id)
                        .map(|(_, v)| v.clone())
                })
                .unwrap_or_else(|| panic!("{name} reads undeclared input {id}"));
            (name, value)
        })
        .collect()
}

/// The binary as the container runs it: `supaneon-sync action` with the step's `INPUT_*` variables,
/// `GITHUB_ACTIONS=true`, and `GITHUB_OUTPUT`/`GITHUB_STEP_SUMMARY` files (set by [`Cli`]).
pub fn action_cli(with: &[(&str, &str)]) -> Cli {
    step_env(with)
        .into_iter()
        .fold(Cli::new(), |cli, (k, v)| cli.env(&k, &v))
        .env("GITHUB_ACTIONS", "true")
}
