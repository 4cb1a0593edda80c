//! Our own PostgreSQL connections, and the connection settings handed to pg_dump / pg_restore.
//!
//! A [`ConnSpec`] is parsed once from a connection URI, under the rule of the side it leads to
//! ([`spec`]), and then used two ways: [`connect`] opens a `tokio_postgres` session over rustls
//! ([`tls`]), guarded so that an unverified server never receives a password ([`auth`]); and
//! [`ConnSpec::child_env`] turns it into libpq settings for a child process, so the password travels
//! in `PGPASSWORD`, never in argv.

mod auth;
mod facts;
mod spec;
mod tls;

use std::sync::{Arc, Mutex};

use tokio_postgres::error::SqlState;

pub use auth::{AuthMethod, AuthMethods, AuthRefused};
pub use facts::Facts;
pub use spec::{
    is_supabase_host, ChannelBinding, ConnSpec, Keepalives, SslMode, DEFAULT_CONNECT_TIMEOUT,
};
pub use tls::{Anchor, Trust, SUPABASE_ROOT_NAME};

use crate::secret::redact;

/// Why a connection could not be made, told so that a user can act on it. Every message names the
/// target by [`ConnSpec::display`] and never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid connection URI: {reason}")]
    InvalidUrl { reason: String },
    #[error("cannot read the root certificate {path} for {target}: {detail}")]
    RootCert {
        target: String,
        path: String,
        detail: String,
    },
    #[error("{target}: the server refused TLS; supaneon-sync only connects encrypted (enable SSL on the server)")]
    TlsRefused { target: String },
    #[error("{target}: the server's certificate could not be verified ({detail}); no password was sent. {hint}")]
    Certificate {
        target: String,
        detail: String,
        hint: String,
    },
    #[error("{target}: {refused}; no password was sent. {hint}")]
    AuthRefused {
        target: String,
        refused: AuthRefused,
        hint: String,
    },
    #[error("the connection URI names host {host}, but the API's endpoint for this branch is {expected}; refusing to send the branch's password anywhere else")]
    UnexpectedHost { host: String, expected: String },
    #[error("{target}: authentication failed for user \"{user}\" ({detail}); check the password in the connection URI")]
    Authentication {
        target: String,
        user: String,
        detail: String,
    },
    #[error("{target}: the pooler answered \"Tenant or user not found\": the pooler host (aws-0 vs aws-1 …) or the user (it must be postgres.<project-ref>) does not match your project; copy both from the Supabase dashboard")]
    TenantNotFound { target: String },
    #[error("{target}: cannot reach the server ({detail}); check host and port — a paused Supabase project looks exactly like this: restore it in the Supabase dashboard")]
    Unreachable { target: String, detail: String },
    #[error("{target}: database \"{dbname}\" does not exist")]
    DatabaseMissing { target: String, dbname: String },
    #[error("{target}: {detail}")]
    Other { target: String, detail: String },
}

/// Opens a session. The connection task is spawned on the current runtime; errors it reports after
/// the handshake are logged (redacted).
pub async fn connect(
    spec: &ConnSpec,
    application_name: &str,
) -> Result<tokio_postgres::Client, ConnError> {
    connect_with_facts(spec, application_name)
        .await
        .map(|(client, _)| client)
}

/// [`connect`], also telling what the connection verified: TLS version, the anchor the certificate
/// chained to, the authentication used.
pub async fn connect_with_facts(
    spec: &ConnSpec,
    application_name: &str,
) -> Result<(tokio_postgres::Client, Facts), ConnError> {
    let target = spec.display();
    let facts = Arc::new(Mutex::new(Facts::default()));
    let tls_config = tls::client_config(&target, &spec.trust, spec.tls_versions, facts.clone())?;
    let tls = auth::GuardedMakeTls::new(
        tokio_postgres_rustls::MakeRustlsConnect::new(tls_config),
        spec.auth,
        facts.clone(),
    );
    let timeout = spec.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);

    let mut config = tokio_postgres::Config::new();
    config
        .host(&spec.host)
        .port(spec.port)
        .user(&spec.user)
        .dbname(&spec.dbname)
        .application_name(application_name)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(timeout)
        .keepalives(spec.keepalives.enabled)
        .keepalives_idle(spec.keepalives.idle)
        .keepalives_interval(spec.keepalives.interval)
        .keepalives_retries(spec.keepalives.count)
        .tcp_user_timeout(spec.tcp_user_timeout);
    if let Some(password) = &spec.password {
        config.password(password.expose());
    }
    if let Some(options) = &spec.options {
        config.options(options);
    }
    config.channel_binding(match spec.channel_binding {
        ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
        ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
        ChannelBinding::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
    });
    if spec.sslnegotiation.as_deref() == Some("direct") {
        config.ssl_negotiation(tokio_postgres::config::SslNegotiation::Direct);
    }
    // tokio-postgres knows read-write and read-only; libpq's finer attributes map to the nearest.
    use tokio_postgres::config::TargetSessionAttrs;
    config.target_session_attrs(match spec.target_session_attrs.as_deref() {
        Some("read-write" | "primary") => TargetSessionAttrs::ReadWrite,
        Some("read-only" | "standby") => TargetSessionAttrs::ReadOnly,
        _ => TargetSessionAttrs::Any,
    });

    let (client, connection) = match tokio::time::timeout(timeout, config.connect(tls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(classify(spec, &e)),
        Err(_) => {
            return Err(ConnError::Unreachable {
                target,
                detail: format!("no answer within {} s", timeout.as_secs()),
            })
        }
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(
                "postgres connection to {target} ended: {}",
                redact(&chain(&e))
            );
        }
    });
    let facts = facts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((client, facts))
}

/// What to do when a certificate does not verify, by how it was checked.
fn certificate_hint(spec: &ConnSpec) -> String {
    match &spec.trust {
        Trust::Verified { anchors, .. } if anchors.contains(&Anchor::SupabaseRoot) => format!(
            "Supabase hosts are verified against {SUPABASE_ROOT_NAME} (bundled) and the public roots. Check the host name in the URI; if Supabase changed its certificate authority, give its new root with sslrootcert=<file> (download it from the Supabase dashboard, Database settings, SSL configuration)"
        ),
        Trust::Verified { anchors, .. } if anchors.iter().any(|a| matches!(a, Anchor::File(_))) => {
            "Check that sslrootcert names the CA that signed this server's certificate, and, for verify-full, that the host name in the URI is one the certificate names".to_string()
        }
        _ => "The certificate is not signed by a publicly trusted authority, or names another host; if this server uses a private CA, give it with sslrootcert=<file>".to_string(),
    }
}

fn auth_hint(spec: &ConnSpec) -> String {
    if spec.trust.is_verified() {
        "The connection's require_auth does not allow what the server asked for; change require_auth or the server's authentication method".to_string()
    } else {
        "The server's certificate is not verified (sslmode=require), so whoever answers could be an impostor: only SCRAM-SHA-256 may carry the password there. Verify the certificate (sslmode=verify-full with sslrootcert=<the server's CA>), or switch the server to SCRAM (password_encryption = 'scram-sha-256', set the password again, scram-sha-256 in pg_hba.conf)".to_string()
    }
}

/// The error and all its causes on one line, e.g. "error connecting to server: Connection refused".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn classify(spec: &ConnSpec, e: &tokio_postgres::Error) -> ConnError {
    let target = spec.display();
    if let Some(db) = e.as_db_error() {
        let message = redact(db.message());
        if message.contains("Tenant or user not found") {
            return ConnError::TenantNotFound { target };
        }
        return match db.code() {
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                ConnError::Authentication {
                    target,
                    user: spec.user.clone(),
                    detail: message,
                }
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => ConnError::DatabaseMissing {
                target,
                dbname: spec.dbname.clone(),
            },
            _ => ConnError::Other {
                target,
                detail: message,
            },
        };
    }
    if let Some(refused) = find_auth_refused(e) {
        return ConnError::AuthRefused {
            target,
            refused: AuthRefused(refused.0),
            hint: auth_hint(spec),
        };
    }
    if let Some(tls) = find_rustls_error(e) {
        return ConnError::Certificate {
            target,
            detail: tls.to_string(),
            hint: certificate_hint(spec),
        };
    }
    let text = redact(&chain(e));
    if text.contains("server did not use channel binding") {
        return ConnError::Other {
            target,
            detail: "the server did not offer SCRAM with channel binding (SCRAM-SHA-256-PLUS), which this connection requires; no password was sent. Neon's servers offer it: check that the URI leads to Neon".to_string(),
        };
    }
    if text.contains("server does not support TLS") {
        return ConnError::TlsRefused { target };
    }
    if let Some(io) = find_io_error(e) {
        use std::io::ErrorKind;
        let unreachable = matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
        ) || text.contains("lookup address")
            || text.contains("error connecting to server");
        if unreachable {
            return ConnError::Unreachable {
                target,
                detail: redact(&io.to_string()),
            };
        }
    }
    ConnError::Other {
        target,
        detail: text,
    }
}

fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

fn find_auth_refused<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a AuthRefused> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(refused) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<AuthRefused>())
        {
            return Some(refused);
        }
        current = err.source();
    }
    None
}

/// rustls errors travel inside an `io::Error`, whose `source()` skips the wrapped error itself.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    fn spec(url: &str) -> Result<ConnSpec, ConnError> {
        ConnSpec::from_url(&Secret::new(url))
    }

    /// A server that answers the SSLRequest with `N` (SSL off): we refuse to continue in clear text.
    #[tokio::test]
    async fn a_server_without_tls_is_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).await.unwrap();
            // SSLRequest: length 8, code 80877103.
            assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
            socket.write_all(b"N").await.unwrap();
        });
        let s = spec(&format!("postgres://u:pw-unit-notls@127.0.0.1:{port}/db")).unwrap();
        let err = connect(&s, "unit").await.unwrap_err();
        assert!(matches!(err, ConnError::TlsRefused { .. }), "{err}");
        assert!(err.to_string().contains("u@127.0.0.1:"), "{err}");
        server.await.unwrap();
    }

    /// A server that accepts and never answers: bounded by connect_timeout, reported as unreachable.
    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(socket);
        });
        let s = spec(&format!(
            "postgres://u:pw-unit-silent@127.0.0.1:{port}/db?connect_timeout=2"
        ))
        .unwrap();
        let started = std::time::Instant::now();
        let err = connect(&s, "unit").await.unwrap_err();
        assert!(matches!(err, ConnError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("paused"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// A host name that does not resolve (RFC 6761 `.invalid`): unreachable, with the paused hint.
    #[tokio::test]
    async fn an_unknown_host_is_unreachable() {
        let s = spec("postgres://u:pw-unit-dns@db.nonexistent.invalid:5432/db?connect_timeout=5")
            .unwrap();
        let err = connect(&s, "unit").await.unwrap_err();
        assert!(matches!(err, ConnError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("db.nonexistent.invalid"), "{err}");
        assert!(!err.to_string().contains("pw-unit-dns"), "{err}");
    }
}
