use std::collections::HashMap;

use super::*;

fn spec(url: &str) -> Result<ConnSpec, ConnError> {
    ConnSpec::from_url(&Secret::new(url))
}

fn source(url: &str) -> Result<ConnSpec, ConnError> {
    ConnSpec::for_source(&Secret::new(url))
}

fn env_of(s: &ConnSpec) -> HashMap<String, String> {
    s.child_env("t").into_iter().collect()
}

fn anchors(s: &ConnSpec) -> (Vec<Anchor>, bool) {
    match &s.trust {
        Trust::Verified {
            anchors,
            check_host,
        } => (anchors.clone(), *check_host),
        Trust::Unverified => (vec![], false),
    }
}

#[test]
fn parses_a_supabase_pooler_uri() {
    let s = spec("postgresql://postgres.abcdef:s%40cret-conn-unit@aws-0-eu-central-1.pooler.supabase.com:5432/postgres?sslmode=verify-full&sslrootcert=/ca.crt&connect_timeout=10&application_name=x").unwrap();
    assert_eq!(s.host, "aws-0-eu-central-1.pooler.supabase.com");
    assert_eq!(s.port, 5432);
    assert_eq!(s.user, "postgres.abcdef");
    assert_eq!(s.password.as_ref().unwrap().expose(), "s@cret-conn-unit");
    assert_eq!(s.dbname, "postgres");
    assert_eq!(s.sslmode, SslMode::VerifyFull);
    assert_eq!(anchors(&s), (vec![Anchor::File("/ca.crt".into())], true));
    assert_eq!(s.connect_timeout, Some(Duration::from_secs(10)));
}

#[test]
fn supabase_hosts_are_verified_in_full_against_the_bundled_root_and_the_public_roots() {
    let bundled = (vec![Anchor::SupabaseRoot, Anchor::PublicRoots], true);
    for url in [
        "postgresql://postgres.abcdef:pw-unit-sb@aws-0-eu-central-1.pooler.supabase.com:5432/postgres?sslmode=require",
        "postgresql://postgres.abcdef:pw-unit-sb@aws-1-us-east-1.pooler.supabase.com:5432/postgres",
        "postgresql://postgres:pw-unit-sb@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require",
        "postgresql://postgres:pw-unit-sb@DB.abcdefghijklmnop.SUPABASE.CO.:5432/postgres?sslmode=verify-full",
        "postgresql://postgres:pw-unit-sb@db.abcdefghijklmnop.supabase.co/postgres?sslrootcert=system",
    ] {
        let s = source(url).unwrap();
        assert_eq!(s.sslmode, SslMode::VerifyFull, "{url}");
        assert_eq!(anchors(&s), bundled, "{url}");
        // Verified: any password method the server uses is fine, nothing is forced on the children.
        assert!(!s.restricts_auth(), "{url}");
        assert!(!env_of(&s).contains_key("PGREQUIREAUTH"));
        assert_eq!(env_of(&s)["PGSSLMODE"], "verify-full");
    }
    // An explicit root is honoured as libpq would.
    let own = source("postgresql://postgres:pw-unit-sb@db.abcdefghijklmnop.supabase.co/postgres?sslmode=verify-full&sslrootcert=/etc/prod-ca-2021.crt").unwrap();
    assert_eq!(
        anchors(&own),
        (vec![Anchor::File("/etc/prod-ca-2021.crt".into())], true)
    );
}

#[test]
fn only_hosts_under_the_supabase_domains_get_the_bundled_root() {
    for host in [
        "db.abc.supabase.co",
        "aws-0-eu-central-1.pooler.supabase.com",
        "supabase.com",
        "x.SUPABASE.co.",
    ] {
        assert!(is_supabase_host(host), "{host}");
    }
    for host in [
        "supabase.co.evil.example",
        "notsupabase.co",
        "db.abc.supabase.io",
        "127.0.0.1",
        "supabase-co.example.com",
    ] {
        assert!(!is_supabase_host(host), "{host}");
    }
    let other = source("postgres://u:pw-unit-self@db.example.com/app?sslmode=require").unwrap();
    assert_eq!(other.trust, Trust::Unverified);
}

#[test]
fn an_unverified_source_allows_only_scram_here_and_in_the_children() {
    let s = source("postgres://u:pw-unit-scram@db.example.com/app?sslmode=require").unwrap();
    assert_eq!(s.auth, AuthMethods::SCRAM_ONLY);
    assert!(s.restricts_auth());
    assert_eq!(env_of(&s)["PGREQUIREAUTH"], "scram-sha-256");
    assert!(!env_of(&s).contains_key("PGSSLROOTCERT"));
    let err =
        source("postgres://u:pw-unit-scram@db.example.com/app?require_auth=password").unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
    assert!(!err.to_string().contains("pw-unit-scram"));
    // Verified: the user's own require_auth is kept as written.
    let verified = source(
        "postgres://u:pw-unit-scram@db.example.com/app?sslmode=verify-full&require_auth=md5",
    )
    .unwrap();
    assert_eq!(env_of(&verified)["PGREQUIREAUTH"], "md5");
}

#[test]
fn neon_branches_are_verified_with_channel_binding_whatever_the_uri_says() {
    let url = Secret::new("postgresql://neondb_owner:npg-unit-cb@ep-cool-darkness-123456.c-2.us-west-2.aws.neon.tech/neondb?sslmode=require&channel_binding=disable");
    let s = ConnSpec::for_neon_branch(
        &url,
        "ep-cool-darkness-123456.c-2.us-west-2.aws.neon.tech",
        None,
    )
    .unwrap();
    assert_eq!(s.sslmode, SslMode::VerifyFull);
    assert_eq!(s.channel_binding, ChannelBinding::Require);
    assert_eq!(anchors(&s), (vec![Anchor::PublicRoots], true));
    let env = env_of(&s);
    assert_eq!(env["PGCHANNELBINDING"], "require");
    assert_eq!(env["PGSSLMODE"], "verify-full");

    let extra = ConnSpec::for_neon_branch(
        &url,
        "EP-cool-darkness-123456.c-2.us-west-2.aws.neon.tech",
        Some(std::path::Path::new("/tmp/extra.pem")),
    );
    // The extra file does not exist: the combined bundle for the children cannot be written.
    assert!(extra.is_err());

    let elsewhere =
        ConnSpec::for_neon_branch(&url, "ep-other-654321.us-east-2.aws.neon.tech", None)
            .unwrap_err();
    assert!(matches!(elsewhere, ConnError::UnexpectedHost { .. }));
    assert!(elsewhere.to_string().contains("ep-other-654321"));
    assert!(!elsewhere.to_string().contains("npg-unit-cb"));
}

#[test]
fn verify_ca_needs_a_file_and_system_roots_mean_verify_full() {
    let err = spec("postgres://u:pw-unit-ca@h/db?sslmode=verify-ca").unwrap_err();
    assert!(err.to_string().contains("sslrootcert"), "{err}");
    let system = spec("postgres://u:pw-unit-ca@h/db?sslmode=require&sslrootcert=system").unwrap();
    assert_eq!(system.sslmode, SslMode::VerifyFull);
    assert_eq!(anchors(&system), (vec![Anchor::PublicRoots], true));
    let ca = spec("postgres://u@h/db?sslrootcert=/x.pem").unwrap();
    assert_eq!(ca.sslmode, SslMode::VerifyCa);
    assert_eq!(anchors(&ca), (vec![Anchor::File("/x.pem".into())], false));
    assert!(ca.display().contains("verify-ca"));
}

#[test]
fn defaults_follow_libpq_except_sslmode() {
    let s = spec("postgres://alice@db.example.com").unwrap();
    assert_eq!(s.port, 5432);
    assert_eq!(s.dbname, "alice");
    assert!(s.password.is_none());
    assert_eq!(s.sslmode, SslMode::Require);
    assert_eq!(s.channel_binding, ChannelBinding::Prefer);
    let v6 = spec("postgres://u:pw-unit-v6@[::1]:6543/d%20b").unwrap();
    assert_eq!(v6.host, "::1");
    assert_eq!(v6.dbname, "d b");
    assert_eq!(v6.display(), "u@[::1]:6543/d b (sslmode=require)");
}

#[test]
fn refuses_weak_sslmodes_unknown_parameters_and_other_schemes() {
    for mode in ["disable", "allow", "prefer", "bogus"] {
        let err = spec(&format!("postgres://u:pw-unit-weak@h/db?sslmode={mode}")).unwrap_err();
        assert!(matches!(err, ConnError::InvalidUrl { .. }), "{mode}: {err}");
        assert!(!err.to_string().contains("pw-unit-weak"));
    }
    let unknown = spec("postgres://u@h/db?pgbouncer=true").unwrap_err();
    assert!(unknown.to_string().contains("\"pgbouncer\""), "{unknown}");
    assert!(spec("postgres://u@h/db?sslcert=/c.pem")
        .unwrap_err()
        .to_string()
        .contains("client certificates"));
    assert!(spec("postgres://u@h/db?channel_binding=maybe").is_err());
    assert!(spec("mysql://u@h/db").is_err());
    assert!(spec("postgres://h/db").is_err());
}

#[test]
fn libpq_connection_parameters_are_accepted_and_reach_the_children() {
    let s = spec("postgres://u:pw-unit-params@h/db?target_session_attrs=read-write&keepalives_idle=15&keepalives_interval=5&keepalives_count=4&tcp_user_timeout=20000&sslnegotiation=direct&ssl_min_protocol_version=TLSv1.3&gssencmode=disable&sslsni=1&fallback_application_name=x").unwrap();
    assert_eq!(s.target_session_attrs.as_deref(), Some("read-write"));
    assert_eq!(s.keepalives.idle, Duration::from_secs(15));
    assert_eq!(s.tcp_user_timeout, Duration::from_millis(20000));
    assert!(!s.tls_versions.tls12 && s.tls_versions.tls13);
    let env = env_of(&s);
    assert_eq!(env["PGTARGETSESSIONATTRS"], "read-write");
    assert_eq!(env["PGSSLMINPROTOCOLVERSION"], "TLSv1.3");
    assert_eq!(
        s.child_conninfo(),
        "dbname='db' keepalives=1 keepalives_idle=15 keepalives_interval=5 keepalives_count=4 tcp_user_timeout=20000 sslnegotiation=direct"
    );
    let off = spec("postgres://u@h/it's?keepalives=0").unwrap();
    assert_eq!(
        off.child_conninfo(),
        "dbname='it\\'s' keepalives=0 tcp_user_timeout=60000"
    );
    // Defaults: keepalives on, a user timeout, both TLS versions.
    let plain = spec("postgres://u@h/db").unwrap();
    assert!(plain.keepalives.enabled);
    assert!(plain.tls_versions.tls12 && plain.tls_versions.tls13);
    for bad in [
        "target_session_attrs=primary-ish",
        "keepalives=yes",
        "ssl_max_protocol_version=TLSv1.1",
        "ssl_min_protocol_version=TLSv1.3&ssl_max_protocol_version=TLSv1.2",
        "sslnegotiation=tls",
        "gssencmode=require",
    ] {
        assert!(spec(&format!("postgres://u@h/db?{bad}")).is_err(), "{bad}");
    }
}

#[test]
fn child_env_carries_everything_and_display_hides_the_password() {
    let s = spec("postgres://bob:pw-unit-child%2F1@h:6000/app?sslmode=verify-ca&sslrootcert=/ca.pem&connect_timeout=7&options=-c%20x%3D1&channel_binding=require").unwrap();
    let env = env_of(&s);
    assert_eq!(env["PGHOST"], "h");
    assert_eq!(env["PGPORT"], "6000");
    assert_eq!(env["PGUSER"], "bob");
    assert_eq!(env["PGPASSWORD"], "pw-unit-child/1");
    assert_eq!(env["PGDATABASE"], "app");
    assert_eq!(env["PGSSLMODE"], "verify-ca");
    assert_eq!(env["PGSSLROOTCERT"], "/ca.pem");
    assert_eq!(env["PGCONNECT_TIMEOUT"], "7");
    assert_eq!(env["PGOPTIONS"], "-c x=1");
    assert_eq!(env["PGCHANNELBINDING"], "require");
    assert_eq!(env["PGAPPNAME"], "t");
    assert!(!s.display().contains("pw-unit-child"));
    assert!(!format!("{s:?}").contains("pw-unit-child"));
    assert!(!s.child_conninfo().contains("pw-unit-child"));
    assert_eq!(s.with_dbname("other").dbname, "other");
    let plain = spec("postgres://u@h/db").unwrap();
    let env = env_of(&plain);
    assert_eq!(env["PGCONNECT_TIMEOUT"], "30");
    assert!(!env.contains_key("PGPASSWORD"));
    assert!(!env.contains_key("PGSSLROOTCERT"));
}
