//! action.yml ⇄ the binary: every input is consumed and every consumed input declared, outputs match what
//! the code writes, and the README documents them.

mod support;

use std::collections::BTreeSet;

use supaneon_sync::config::{ActionInputs, SETTINGS};
use supaneon_sync::report::OUTPUTS;
use support::cli::{action_yml_inputs, repo_root};

fn action_yml() -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo_root().join("action.yml")).unwrap()).unwrap()
}

#[test]
fn every_input_is_consumed_and_every_consumed_input_is_declared() {
    // Exactly what the runner does for a docker action: every declared input with its default.
    let vars = action_yml_inputs()
        .into_iter()
        .map(|(id, default)| (format!("INPUT_{}", id.to_uppercase()), default));
    ActionInputs::from_vars(vars).expect("action.yml inputs match ActionInputs both ways");

    let declared: BTreeSet<String> = action_yml_inputs().into_iter().map(|(id, _)| id).collect();
    let settings: BTreeSet<String> = SETTINGS.iter().map(|s| s.input.to_string()).collect();
    assert_eq!(declared, settings);
}

#[test]
fn a_missing_input_is_unset_and_an_extra_one_is_named_not_fatal() {
    let mut vars: Vec<(String, String)> = action_yml_inputs()
        .into_iter()
        .map(|(id, d)| (format!("INPUT_{}", id.to_uppercase()), d))
        .collect();
    vars.retain(|(k, _)| k != "INPUT_KEEP-LAST");
    let inputs = ActionInputs::from_vars(vars.clone()).expect("a missing input is unset");
    assert_eq!(inputs.keep_last, "");
    vars.push(("INPUT_KEEP-LASTS".into(), "7".into()));
    vars.push(("INPUT_STRAY_FROM_THE_CALLER".into(), "x".into()));
    ActionInputs::from_vars(vars.clone()).expect("an extra input is not fatal");
    let names: Vec<&String> = vars.iter().map(|(k, _)| k).collect();
    assert_eq!(
        ActionInputs::unknown_inputs(names),
        vec![
            "INPUT_KEEP-LASTS".to_string(),
            "INPUT_STRAY_FROM_THE_CALLER".to_string()
        ]
    );
}

#[test]
fn no_input_has_a_default_that_could_override_the_config_file() {
    let doc = action_yml();
    for (id, input) in doc["inputs"].as_mapping().unwrap() {
        assert!(
            input.get("default").is_none(),
            "{id:?}: the runner passes a default as if the workflow had set it"
        );
        assert_ne!(
            input["required"].as_bool(),
            Some(true),
            "{id:?}: which inputs a mode needs is checked by the binary"
        );
    }
}

#[test]
fn inputs_follow_the_house_rules() {
    let doc = action_yml();
    let id_re = regex::Regex::new(r"^[a-z][a-z0-9-]*$").unwrap();
    for (id, input) in doc["inputs"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        assert!(
            id_re.is_match(id),
            "input id {id} must be kebab-case without _ (the composite step relies on it)"
        );
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{id} needs a description"
        );
        assert!(
            input.get("type").is_none(),
            "{id}: `type` is not action metadata"
        );
        if let Some(default) = input.get("default") {
            assert!(default.is_string(), "{id}: default must be a string");
        }
        if matches!(
            id,
            "supabase-database-url" | "neon-api-key" | "supabase-anon-key" | "github-token"
        ) {
            assert!(
                input.get("default").is_none(),
                "{id}: secrets have no default"
            );
        }
    }
}

#[test]
fn outputs_match_the_code_and_are_described() {
    let doc = action_yml();
    let declared: BTreeSet<&str> = doc["outputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    let written: BTreeSet<&str> = OUTPUTS.iter().copied().collect();
    assert_eq!(declared, written, "action.yml outputs vs report::OUTPUTS");
    for (name, output) in doc["outputs"].as_mapping().unwrap() {
        assert!(
            output["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name:?} needs a description"
        );
    }
}

#[test]
fn the_composite_forwards_every_input_through_env() {
    let doc = action_yml();
    let step = &doc["runs"]["steps"][0];
    let env = step["env"].as_mapping().unwrap();
    for (id, _) in action_yml_inputs() {
        let name = format!("INPUT_{}", id.to_uppercase().replace('-', "_"));
        let value = env
            .get(name.as_str())
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        assert_eq!(value, format!("${{{{ inputs.{id} }}}}"), "{name}");
    }
    let script = step["run"].as_str().unwrap();
    assert!(
        !script.contains("${{"),
        "no expressions inside the script (template injection)"
    );
    // image-ref itself (a digest only in release commits) is checked by tests/action_entry.rs.
}

#[test]
fn the_readme_documents_every_input_and_output() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for (id, _) in action_yml_inputs() {
        assert!(
            readme.contains(&format!("`{id}`")),
            "README does not document input `{id}`"
        );
    }
    for name in OUTPUTS {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README does not document output `{name}`"
        );
    }
}

#[test]
fn the_examples_use_only_declared_inputs_and_the_action_at_v1() {
    let declared: BTreeSet<String> = action_yml_inputs().into_iter().map(|(id, _)| id).collect();
    for name in ["backup.yml", "restore-test.yml"] {
        let text = std::fs::read_to_string(repo_root().join("examples").join(name)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut uses = 0;
        for (_, job) in doc["jobs"].as_mapping().unwrap() {
            for step in job["steps"].as_sequence().unwrap() {
                if step["uses"].as_str() != Some("org/supaneon-sync@v1") {
                    continue;
                }
                uses += 1;
                for (key, _) in step["with"].as_mapping().unwrap() {
                    let key = key.as_str().unwrap();
                    assert!(declared.contains(key), "{name}: unknown input {key}");
                }
            }
        }
        assert_eq!(uses, 1, "{name} runs the action once");
        assert!(
            doc["permissions"]
                .as_mapping()
                .is_some_and(|m| m.is_empty()),
            "{name}: permissions: {{}}"
        );
        assert!(
            doc["concurrency"]["group"].is_string(),
            "{name}: concurrency"
        );
    }
}
