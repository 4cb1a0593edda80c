use super::file::parse_file_settings;
use super::*;
use crate::error::Problem;

fn env(pairs: &[(&str, &str)]) -> RawSettings {
    RawSettings::from_env(
        &pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

const URL: &str = "postgresql://postgres.abcdefghijklmnop:s3cret@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require";

fn valid() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SUPABASE_DATABASE_URL", URL),
        ("NEON_API_KEY", "napi_unit"),
        ("NEON_PROJECT_ID", "quiet-river-12345678"),
    ]
}

fn problems_of(pairs: &[(&str, &str)]) -> Vec<Problem> {
    validate(&env(pairs), None).err().unwrap_or_default()
}

#[test]
fn a_valid_environment_validates() {
    let (cfg, warnings) = validate(&env(&valid()), None).expect("valid");
    assert_eq!(cfg.mode, Mode::Backup);
    assert_eq!(cfg.retention.keep_last, 7);
    assert!(warnings.is_empty(), "{warnings:?}");
    // On Supabase's hosts, require is verified in full against Supabase's root.
    assert_eq!(cfg.source.unwrap().sslmode, SslMode::VerifyFull);
}

#[test]
fn empty_environment_names_every_missing_variable() {
    let p = problems_of(&[]);
    let text = format!("{p:?}");
    for name in ["SUPABASE_DATABASE_URL", "NEON_API_KEY", "NEON_PROJECT_ID"] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert_eq!(p.len(), 3);
}

#[test]
fn list_and_prune_do_not_need_the_source() {
    let raw = env(&[("NEON_API_KEY", "k"), ("NEON_PROJECT_ID", "p-1")]);
    assert!(validate(&raw, Some(Mode::List)).is_ok());
    assert!(validate(&raw, Some(Mode::Prune)).is_ok());
    assert!(validate(&raw, Some(Mode::Backup)).is_err());
}

#[test]
fn weak_or_missing_sslmode_is_refused() {
    for (url, needle) in [
        ("postgresql://u:p@h:5432/db", "has no sslmode"),
        (
            "postgresql://u:p@h:5432/db?sslmode=disable",
            "sslmode=disable",
        ),
        (
            "postgresql://u:p@h:5432/db?sslmode=prefer",
            "sslmode=prefer",
        ),
        ("postgresql://u:p@h:5432/db?sslmode=allow", "sslmode=allow"),
    ] {
        let mut pairs = valid();
        pairs[0].1 = url;
        let p = problems_of(&pairs);
        assert!(p.iter().any(|p| p.message.contains(needle)), "{url}: {p:?}");
    }
    let ca = std::env::temp_dir().join("supaneon-config-unit-ca.pem");
    std::fs::write(&ca, "not read by validation").unwrap();
    for query in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        "sslmode=verify-full".to_string(),
    ] {
        let url = format!("postgresql://u:p@h:5432/db?{query}");
        let mut pairs = valid();
        pairs[0].1 = &url;
        assert!(problems_of(&pairs).is_empty(), "{query}");
    }
    // libpq refuses verify-ca without a CA file; so do we, saying why.
    let mut pairs = valid();
    pairs[0].1 = "postgresql://u:p@h:5432/db?sslmode=verify-ca";
    let p = problems_of(&pairs);
    assert!(p.iter().any(|p| p.message.contains("sslrootcert")), "{p:?}");
}

#[test]
fn the_stall_timeout_is_tuned_by_its_environment_variable() {
    let (cfg, _) = validate(&env(&valid()), None).expect("valid");
    assert_eq!(cfg.stall_timeout.as_secs(), DEFAULT_STALL_TIMEOUT_SECONDS);
    let mut pairs = valid();
    pairs.push(("SUPANEON_STALL_TIMEOUT_SECONDS", "45"));
    let (cfg, _) = validate(&env(&pairs), None).expect("valid");
    assert_eq!(cfg.stall_timeout.as_secs(), 45);
    for bad in ["0", "abc", "86401"] {
        let mut pairs = valid();
        pairs.push(("SUPANEON_STALL_TIMEOUT_SECONDS", bad));
        let p = problems_of(&pairs);
        assert!(
            p.iter()
                .any(|p| p.setting == "SUPANEON_STALL_TIMEOUT_SECONDS"),
            "{bad}: {p:?}"
        );
    }
}

#[test]
fn an_unverified_source_is_a_warning_naming_verify_full() {
    let mut pairs = valid();
    pairs[0].1 = "postgresql://u:p@db.example.com:5432/db?sslmode=require";
    let (_, warnings) = validate(&env(&pairs), None).expect("valid");
    assert!(
        warnings
            .iter()
            .any(|w| w.0.contains("not be verified") && w.0.contains("verify-full")),
        "{warnings:?}"
    );
}

#[test]
fn query_parameters_libpq_rejects_are_reported() {
    let mut pairs = valid();
    let url = format!("{URL}&target_session_attrs=anything");
    pairs[0].1 = &url;
    let p = problems_of(&pairs);
    assert!(
        p.len() == 1 && p[0].message.contains("target_session_attrs"),
        "{p:?}"
    );
    let url = format!("{URL}&pgbouncer=true");
    pairs[0].1 = &url;
    let p = problems_of(&pairs);
    assert!(
        p.len() == 1 && p[0].message.contains("\"pgbouncer\""),
        "{p:?}"
    );
    let url = format!("{URL}&target_session_attrs=read-write&keepalives_idle=20");
    pairs[0].1 = &url;
    assert!(problems_of(&pairs).is_empty());
}

#[test]
fn transaction_pooler_port_is_refused_with_an_explanation() {
    let mut pairs = valid();
    let url = URL.replace(":5432", ":6543");
    pairs[0].1 = &url;
    let p = problems_of(&pairs);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].message.contains("session pooler on port 5432"),
        "{p:?}"
    );
}

#[test]
fn pooler_user_without_ref_and_direct_host_on_actions_warn() {
    let mut pairs = valid();
    pairs[0].1 = "postgresql://postgres:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require";
    let (_, w) = validate(&env(&pairs), None).unwrap();
    assert!(
        w.iter().any(|w| w.0.contains("Tenant or user not found")),
        "{w:?}"
    );

    let mut pairs = valid();
    pairs[0].1 =
        "postgresql://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require";
    let (_, w) = validate(&env(&pairs), None).unwrap();
    assert!(w.is_empty(), "no IPv6 warning outside Actions: {w:?}");
    pairs.push(("GITHUB_ACTIONS", "true"));
    let (_, w) = validate(&env(&pairs), None).unwrap();
    assert!(w.iter().any(|w| w.0.contains("IPv6")), "{w:?}");
}

#[test]
fn booleans_and_numbers_are_parsed_as_workflow_authors_write_them() {
    for ok in ["true", "True", "TRUE", "false", "False", "FALSE"] {
        let mut pairs = valid();
        pairs.push(("SUPANEON_PRUNE_AFTER_BACKUP", ok));
        assert!(problems_of(&pairs).is_empty(), "{ok}");
    }
    let mut pairs = valid();
    pairs.push(("SUPANEON_PRUNE_AFTER_BACKUP", "yes"));
    pairs.push(("SUPANEON_KEEP_LAST", "seven"));
    pairs.push(("NEON_PROJECT_ID", "Not A Project"));
    let p = problems_of(&pairs);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p
        .iter()
        .any(|p| p.setting == "SUPANEON_KEEP_LAST" && p.message.contains("\"seven\"")));
    assert!(p
        .iter()
        .any(|p| p.setting == "SUPANEON_PRUNE_AFTER_BACKUP" && p.message.contains("True")));
}

#[test]
fn action_inputs_name_inputs_and_treat_empty_as_unset() {
    let mut vars: Vec<(String, String)> = SETTINGS
        .iter()
        .map(|d| {
            (
                format!("INPUT_{}", d.input.to_uppercase()),
                d.default.to_string(),
            )
        })
        .collect();
    vars.push(("PATH".into(), "/bin".into()));
    let inputs = ActionInputs::from_vars(vars.clone()).expect("all inputs present");
    let p = validate(&RawSettings::from_action(&inputs), None).unwrap_err();
    assert!(
        p.iter()
            .any(|p| p.setting == "input \"supabase-database-url\""),
        "{p:?}"
    );

    vars.push(("INPUT_NEON-PROJCT-ID".into(), "x".into()));
    ActionInputs::from_vars(vars.clone()).expect("a stray input is not fatal");
    assert_eq!(
        ActionInputs::unknown_inputs(vars.iter().map(|(k, _)| k)),
        vec!["INPUT_NEON-PROJCT-ID".to_string()]
    );
}

#[test]
fn yaml_unknown_keys_name_the_nearest_valid_key() {
    let p =
        parse_file_settings("schemas:\n  exlude: [a]\nretention:\n  keep-lst: 3\n").unwrap_err();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].setting == "schemas.exlude" && p[0].message.contains("\"exclude\""),
        "{p:?}"
    );
    assert!(p[1].message.contains("\"keep-last\""), "{p:?}");
}

#[test]
fn yaml_settings_are_read() {
    let s = parse_file_settings(
        "schemas:\n  exclude: [audit]\ntables:\n  exclude: [public.big]\n  exclude-data: [public.logs]\nretention:\n  keep-last: 3\nhealth-checks:\n  - name: users exist\n    sql: select count(*) > 0 from public.profiles\n",
    )
    .unwrap();
    assert_eq!(s.tables.exclude, vec!["public.big"]);
    assert_eq!(s.retention.keep_last, Some(3));
    assert_eq!(s.health_checks.len(), 1);
    assert!(parse_file_settings("tables:\n  exclude: [nodot]\n").is_err());
}

#[test]
fn redacted_lines_hold_no_secret() {
    let (cfg, _) = validate(&env(&valid()), None).unwrap();
    let text = format!("{:?}", cfg.redacted_lines());
    assert!(
        !text.contains("s3cret") && !text.contains("napi_unit"),
        "{text}"
    );
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("napi_unit"),
        "{debug}"
    );
}
