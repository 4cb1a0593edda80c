//! Our own PostgreSQL connections, and the connection settings handed to pg_dump / pg_restore.
//!
//! A [`ConnSpec`] is parsed once from a connection URI and then used two ways: [`connect`] opens a
//! `tokio_postgres` session over rustls, and [`ConnSpec::child_env`] turns it into libpq environment
//! variables for a child process (so the password travels in `PGPASSWORD`, never in argv).
//!
//! TLS follows libpq's meanings of `sslmode`:
//! - `require`: encrypt, accept any certificate — unless `sslrootcert` is given, in which case libpq
//!   behaves like `verify-ca`, and so do we;
//! - `verify-ca`: the chain must lead to `sslrootcert` (or the webpki roots), host name not checked;
//! - `verify-full`: chain and host name.
//!
//! `disable`, `allow` and `prefer` are refused: a backup tool never sends credentials in clear text.
//! A URI without `sslmode` gets `require`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::error::SqlState;

use crate::secret::{redact, Secret};

/// How long connecting (TCP, TLS and authentication together) may take when the URI sets no
/// `connect_timeout`. libpq waits forever; a scheduled job should not.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// CA bundles of common distributions, for children asked to verify against "the system roots".
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// Parses a libpq `sslmode` value; the modes that allow clear text are an error.
    pub fn parse(value: &str) -> Result<SslMode, ConnError> {
        match value {
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "disable" | "allow" | "prefer" => Err(ConnError::InvalidUrl {
                reason: format!(
                    "sslmode={value} would allow an unencrypted connection; use require, verify-ca or verify-full"
                ),
            }),
            other => Err(ConnError::InvalidUrl {
                reason: format!(
                    "unknown sslmode \"{other}\"; use require, verify-ca or verify-full"
                ),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to connect and how. `Debug` is safe to print: the password is a [`Secret`].
#[derive(Debug, Clone)]
pub struct ConnSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// A PEM file, or `system` for the webpki roots (libpq ≥ 16 spelling).
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    /// libpq `options` (e.g. `-c search_path=…`, or Neon's `endpoint=…`), passed through unchanged.
    pub options: Option<String>,
    /// libpq `channel_binding` (`disable`, `prefer`, `require`); Neon's URIs carry `require`.
    pub channel_binding: Option<String>,
}

impl ConnSpec {
    /// Parses a `postgres://` or `postgresql://` URI the way libpq does: percent-decoding, port 5432 by
    /// default, database = user by default. Query parameters: `sslmode`, `sslrootcert`,
    /// `connect_timeout`, `options`, and `application_name` (ignored: we name our own sessions). Any
    /// other parameter is an error, as it is for libpq.
    pub fn from_url(url: &Secret) -> Result<ConnSpec, ConnError> {
        let raw = url.expose().trim();
        let invalid = |reason: &str| ConnError::InvalidUrl {
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(raw)
            .map_err(|e| invalid(&format!("not a valid connection URI ({e})")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(
                "the URI must start with postgres:// or postgresql://",
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => decode(d)?,
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(invalid("the URI has no host name")),
        };
        if host.is_empty() || host.contains(',') {
            return Err(invalid("the URI must name exactly one host"));
        }
        let user = decode(parsed.username())?;
        if user.is_empty() {
            return Err(invalid("the URI has no user name"));
        }
        let password = match parsed.password() {
            Some(p) if !p.is_empty() => Some(Secret::new(decode(p)?)),
            _ => None,
        };
        let path = parsed.path().trim_start_matches('/');
        let dbname = if path.is_empty() {
            user.clone()
        } else {
            decode(path)?
        };

        let mut spec = ConnSpec {
            host,
            port: parsed.port().unwrap_or(5432),
            user,
            password,
            dbname,
            sslmode: SslMode::Require,
            sslrootcert: None,
            connect_timeout: None,
            options: None,
            channel_binding: None,
        };
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" => spec.sslmode = SslMode::parse(&value)?,
                "sslrootcert" => spec.sslrootcert = Some(PathBuf::from(value.as_ref())),
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        invalid("connect_timeout must be a whole number of seconds")
                    })?;
                    // libpq treats 0 as "wait forever"; we keep our default then.
                    spec.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs.max(2)));
                }
                "options" => spec.options = Some(value.into_owned()),
                "channel_binding" => match value.as_ref() {
                    "disable" | "prefer" | "require" => {
                        spec.channel_binding = Some(value.into_owned())
                    }
                    other => {
                        return Err(invalid(&format!(
                            "channel_binding={other} is not one of disable, prefer, require"
                        )))
                    }
                },
                "application_name" => {}
                other => {
                    return Err(invalid(&format!(
                        "unsupported query parameter \"{other}\" (supported: sslmode, sslrootcert, connect_timeout, options, channel_binding, application_name)"
                    )))
                }
            }
        }
        Ok(spec)
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, db: &str) -> ConnSpec {
        ConnSpec {
            dbname: db.to_string(),
            ..self.clone()
        }
    }

    /// libpq environment variables for a child process (pg_dump, pg_restore). The child's
    /// environment should be cleared first, so nothing inherited (PGSERVICE, PGSSLMODE, …) mixes in.
    pub fn child_env(&self, application_name: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("PGHOST".to_string(), self.host.clone()),
            ("PGPORT".to_string(), self.port.to_string()),
            ("PGUSER".to_string(), self.user.clone()),
            ("PGDATABASE".to_string(), self.dbname.clone()),
            ("PGSSLMODE".to_string(), self.sslmode.as_str().to_string()),
            ("PGAPPNAME".to_string(), application_name.to_string()),
        ];
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD".to_string(), password.expose().to_string()));
        }
        if let Some(root) = self.child_root_cert() {
            env.push(("PGSSLROOTCERT".to_string(), root));
        }
        // libpq would wait forever (or for the TCP timeout) on a host that does not answer.
        let timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        env.push((
            "PGCONNECT_TIMEOUT".to_string(),
            timeout.as_secs().to_string(),
        ));
        if let Some(options) = &self.options {
            env.push(("PGOPTIONS".to_string(), options.clone()));
        }
        if let Some(binding) = &self.channel_binding {
            env.push(("PGCHANNELBINDING".to_string(), binding.clone()));
        }
        env
    }

    /// The root certificate file for libpq. With a cleared environment libpq has no home directory to
    /// find `~/.postgresql/root.crt` in, and libpq 15 does not know `sslrootcert=system`, so "the
    /// system roots" becomes the distribution's CA bundle.
    fn child_root_cert(&self) -> Option<String> {
        let system_bundle = || {
            SYSTEM_CA_BUNDLES
                .iter()
                .find(|p| Path::new(p).is_file())
                .map(|p| p.to_string())
                .unwrap_or_else(|| "system".to_string())
        };
        match &self.sslrootcert {
            Some(p) if p.as_os_str() == "system" => Some(system_bundle()),
            Some(p) => Some(p.display().to_string()),
            None if self.sslmode != SslMode::Require => Some(system_bundle()),
            None => None,
        }
    }

    /// `user@host:port/db (sslmode=require)`: for messages; never contains the password.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mode = match (self.sslmode, &self.sslrootcert) {
            (SslMode::Require, Some(_)) => "require, verifying the CA",
            (mode, _) => mode.as_str(),
        };
        redact(&format!(
            "{}@{}:{}/{} (sslmode={})",
            self.user, host, self.port, self.dbname, mode
        ))
    }

    /// The verification we actually apply: libpq's `require` with a root certificate is `verify-ca`.
    fn effective_mode(&self) -> SslMode {
        match (self.sslmode, &self.sslrootcert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        }
    }
}

fn decode(part: &str) -> Result<String, ConnError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ConnError::InvalidUrl {
            reason: "the URI contains percent-encoded bytes that are not UTF-8".to_string(),
        })
}

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
    #[error("{target}: certificate verification failed: {detail} (check sslrootcert, or the host name for verify-full)")]
    Certificate { target: String, detail: String },
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
    let target = spec.display();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(spec)?);
    let timeout = spec.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);

    let mut config = tokio_postgres::Config::new();
    config
        .host(&spec.host)
        .port(spec.port)
        .user(&spec.user)
        .dbname(&spec.dbname)
        .application_name(application_name)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(timeout);
    if let Some(password) = &spec.password {
        config.password(password.expose());
    }
    if let Some(options) = &spec.options {
        config.options(options);
    }
    config.channel_binding(match spec.channel_binding.as_deref() {
        Some("require") => tokio_postgres::config::ChannelBinding::Require,
        Some("disable") => tokio_postgres::config::ChannelBinding::Disable,
        _ => tokio_postgres::config::ChannelBinding::Prefer,
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
    Ok(client)
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
    if let Some(tls) = find_rustls_error(e) {
        return ConnError::Certificate {
            target,
            detail: tls.to_string(),
        };
    }
    let text = redact(&chain(e));
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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for the spec's sslmode (see the module documentation).
fn tls_config(spec: &ConnSpec) -> Result<ClientConfig, ConnError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Other {
            target: spec.display(),
            detail: format!("TLS setup failed: {e}"),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = match spec.effective_mode() {
        SslMode::Require => Arc::new(AnyCertificate { provider }),
        mode => {
            let roots = Arc::new(root_store(spec)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| ConnError::Other {
                    target: spec.display(),
                    detail: format!("TLS setup failed: {e}"),
                })?;
            Arc::new(ChainVerifier {
                inner: webpki,
                check_host: mode == SslMode::VerifyFull,
            })
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn root_store(spec: &ConnSpec) -> Result<RootCertStore, ConnError> {
    let mut store = RootCertStore::empty();
    match &spec.sslrootcert {
        Some(path) if path.as_os_str() != "system" => {
            let fail = |detail: String| ConnError::RootCert {
                target: spec.display(),
                path: path.display().to_string(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| fail(format!("unusable certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(fail("the file holds no PEM certificate".to_string()));
            }
        }
        _ => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// `sslmode=require`: any certificate is accepted (libpq does the same), but the handshake signatures
/// are still verified, so the session is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca` / `verify-full`: webpki chain verification; for `verify-ca` a host-name mismatch is
/// forgiven (webpki checks the chain before the name, so a name error means the chain was good).
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> Result<ConnSpec, ConnError> {
        ConnSpec::from_url(&Secret::new(url))
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
        assert_eq!(s.sslrootcert, Some(PathBuf::from("/ca.crt")));
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn accepts_neon_connection_uris_with_channel_binding() {
        let s = spec("postgresql://neondb_owner:npg-unit-cb@ep-cool-darkness-123456.c-2.us-west-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require").unwrap();
        assert_eq!(s.channel_binding.as_deref(), Some("require"));
        assert!(s
            .child_env("t")
            .contains(&("PGCHANNELBINDING".to_string(), "require".to_string())));
        assert!(spec("postgres://u:pw-unit-cb2@h/db?channel_binding=maybe").is_err());
    }

    #[test]
    fn defaults_follow_libpq_except_sslmode() {
        let s = spec("postgres://alice@db.example.com").unwrap();
        assert_eq!(s.port, 5432);
        assert_eq!(s.dbname, "alice");
        assert!(s.password.is_none());
        assert_eq!(s.sslmode, SslMode::Require);
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
        assert!(spec("postgres://u@h/db?pgbouncer=true").is_err());
        assert!(spec("mysql://u@h/db").is_err());
        assert!(spec("postgres://h/db").is_err());
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_ca() {
        let s = spec("postgres://u@h/db?sslrootcert=/x.pem").unwrap();
        assert_eq!(s.effective_mode(), SslMode::VerifyCa);
        assert!(s.display().contains("verifying the CA"));
    }

    #[test]
    fn child_env_carries_everything_and_display_hides_the_password() {
        let s = spec("postgres://bob:pw-unit-child%2F1@h:6000/app?sslmode=verify-ca&sslrootcert=/ca.pem&connect_timeout=7&options=-c%20x%3D1").unwrap();
        let env: std::collections::HashMap<_, _> =
            s.child_env("supaneon-sync test").into_iter().collect();
        assert_eq!(env["PGHOST"], "h");
        assert_eq!(env["PGPORT"], "6000");
        assert_eq!(env["PGUSER"], "bob");
        assert_eq!(env["PGPASSWORD"], "pw-unit-child/1");
        assert_eq!(env["PGDATABASE"], "app");
        assert_eq!(env["PGSSLMODE"], "verify-ca");
        assert_eq!(env["PGSSLROOTCERT"], "/ca.pem");
        assert_eq!(env["PGCONNECT_TIMEOUT"], "7");
        assert_eq!(env["PGOPTIONS"], "-c x=1");
        assert_eq!(env["PGAPPNAME"], "supaneon-sync test");
        assert!(!s.display().contains("pw-unit-child"));
        assert!(!format!("{s:?}").contains("pw-unit-child"));
        assert_eq!(s.with_dbname("other").dbname, "other");
        let plain = spec("postgres://u@h/db").unwrap();
        let env: std::collections::HashMap<_, _> = plain.child_env("x").into_iter().collect();
        assert_eq!(env["PGCONNECT_TIMEOUT"], "30");
        assert!(!env.contains_key("PGPASSWORD"));
        assert!(!env.contains_key("PGSSLROOTCERT"));
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
