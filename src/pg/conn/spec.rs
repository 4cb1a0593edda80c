//! Connection URIs: libpq's parameters read the way libpq reads them ([`ConnSpec::from_url`]), then the
//! rule of the side a URI leads to: the Supabase source ([`ConnSpec::for_source`]) or a Neon branch
//! ([`ConnSpec::for_neon_branch`]).
//!
//! libpq's meanings of `sslmode`:
//! - `require`: encrypt, accept any certificate — unless `sslrootcert` is given: then `verify-ca`;
//! - `verify-ca`: the chain must lead to `sslrootcert` (a file is required), host name not checked;
//! - `verify-full`: chain and host name; `sslrootcert=system` (public roots) always means this.
//!
//! `disable`, `allow` and `prefer` are refused: a backup tool never sends credentials in clear text.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::auth::AuthMethods;
use super::tls::{child_root_file, Anchor, TlsVersions, Trust};
use super::ConnError;
use crate::secret::{redact, Secret};

/// How long connecting (TCP, TLS and authentication together) may take when the URI sets no
/// `connect_timeout`. libpq waits forever; a scheduled job should not.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// TCP keepalives unless the URI says otherwise: a peer that vanished (a paused project, a dropped
/// NAT mapping) is noticed after about a minute instead of the kernel's two hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVES_COUNT: u32 = 3;
/// Sent data that stays unacknowledged this long fails the connection (Linux `TCP_USER_TIMEOUT`).
const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

/// Host suffixes whose certificates come from Supabase's own root.
const SUPABASE_DOMAINS: &[&str] = &["supabase.co", "supabase.com"];

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

/// libpq `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

impl ChannelBinding {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelBinding::Disable => "disable",
            ChannelBinding::Prefer => "prefer",
            ChannelBinding::Require => "require",
        }
    }
}

/// TCP keepalive settings (libpq `keepalives`, `keepalives_idle`, `keepalives_interval`,
/// `keepalives_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    pub enabled: bool,
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives {
            enabled: true,
            idle: KEEPALIVES_IDLE,
            interval: KEEPALIVES_INTERVAL,
            count: KEEPALIVES_COUNT,
        }
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
    /// The mode in force: libpq's `require` with a root certificate is `verify-ca`.
    pub sslmode: SslMode,
    /// How the certificate is checked; decided by the sslmode, `sslrootcert` and the host's rule.
    pub trust: Trust,
    /// The one PEM file that gives pg_dump and pg_restore the same anchors as `trust`.
    pub child_root_file: Option<PathBuf>,
    pub channel_binding: ChannelBinding,
    /// The authentication methods that may carry the password (libpq `require_auth`).
    pub auth: AuthMethods,
    pub connect_timeout: Option<Duration>,
    /// libpq `options` (e.g. `-c search_path=…`, or Neon's `endpoint=…`), passed through unchanged.
    pub options: Option<String>,
    pub keepalives: Keepalives,
    pub tcp_user_timeout: Duration,
    /// libpq `target_session_attrs`, passed to the children as given.
    pub target_session_attrs: Option<String>,
    /// libpq `sslnegotiation` (`postgres` or `direct`, libpq 17).
    pub sslnegotiation: Option<String>,
    pub tls_versions: TlsVersions,
}

impl ConnSpec {
    /// Parses a `postgres://` or `postgresql://` URI the way libpq does: percent-decoding, port 5432 by
    /// default, database = user by default, and libpq's well-known query parameters. An unknown
    /// parameter is an error, as it is for libpq.
    pub fn from_url(url: &Secret) -> Result<ConnSpec, ConnError> {
        let raw = url.expose().trim();
        let parsed = url::Url::parse(raw)
            .map_err(|e| invalid(format!("not a valid connection URI ({e})")))?;
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

        let mut q = QueryParams::default();
        for (key, value) in parsed.query_pairs() {
            q.read(key.as_ref(), value.as_ref())?;
        }
        let tls_versions = q.tls_versions()?;
        let (sslmode, trust) = libpq_trust(q.sslmode, q.sslrootcert)?;
        let anchors = anchors_of(&trust);
        let mut spec = ConnSpec {
            host,
            port: parsed.port().unwrap_or(5432),
            user,
            password,
            dbname,
            sslmode,
            trust,
            child_root_file: None,
            channel_binding: q.channel_binding.unwrap_or(ChannelBinding::Prefer),
            auth: q.require_auth.unwrap_or(AuthMethods::ANY),
            connect_timeout: q.connect_timeout,
            options: q.options,
            keepalives: q.keepalives,
            tcp_user_timeout: q.tcp_user_timeout.unwrap_or(DEFAULT_TCP_USER_TIMEOUT),
            target_session_attrs: q.target_session_attrs,
            sslnegotiation: q.sslnegotiation,
            tls_versions,
        };
        spec.child_root_file = child_root_file(&anchors).map_err(invalid)?;
        Ok(spec)
    }

    /// The source's rule. On Supabase's hosts, unless `sslrootcert` names another root, the
    /// certificate is verified in full against Supabase's root and the public roots, whatever the
    /// sslmode says. Anywhere a certificate stays unverified, only SCRAM may carry the password.
    pub fn for_source(url: &Secret) -> Result<ConnSpec, ConnError> {
        let mut spec = ConnSpec::from_url(url)?;
        let explicit_root = matches!(
            &spec.trust,
            Trust::Verified { anchors, .. } if anchors.iter().any(|a| matches!(a, Anchor::File(_)))
        );
        if is_supabase_host(&spec.host) && !explicit_root {
            spec.sslmode = SslMode::VerifyFull;
            spec.trust = Trust::Verified {
                anchors: vec![Anchor::SupabaseRoot, Anchor::PublicRoots],
                check_host: true,
            };
            spec.child_root_file = child_root_file(&anchors_of(&spec.trust)).map_err(invalid)?;
        }
        if !spec.trust.is_verified() {
            let scram = spec.auth.intersect(AuthMethods::SCRAM_ONLY);
            if scram.is_empty() {
                return Err(invalid(
                    "require_auth allows no SCRAM on a connection whose certificate is not verified (sslmode=require): the password would go to whoever answers; verify the certificate (sslmode=verify-full with sslrootcert=<the server's CA>) or allow scram-sha-256",
                ));
            }
            spec.auth = scram;
        }
        Ok(spec)
    }

    /// A Neon branch's rule, whatever the URI says: verify-full against the public roots (plus
    /// `extra_roots`, for a private endpoint or the local emulator), channel binding required, and
    /// the host must be the one the API named for the branch's endpoint.
    pub fn for_neon_branch(
        url: &Secret,
        endpoint_host: &str,
        extra_roots: Option<&std::path::Path>,
    ) -> Result<ConnSpec, ConnError> {
        let mut spec = ConnSpec::from_url(url)?;
        if !spec.host.eq_ignore_ascii_case(endpoint_host) {
            return Err(ConnError::UnexpectedHost {
                host: redact(&spec.host),
                expected: redact(endpoint_host),
            });
        }
        let mut anchors = vec![Anchor::PublicRoots];
        if let Some(extra) = extra_roots {
            anchors.push(Anchor::File(extra.to_path_buf()));
        }
        spec.sslmode = SslMode::VerifyFull;
        spec.trust = Trust::Verified {
            anchors,
            check_host: true,
        };
        spec.child_root_file = child_root_file(&anchors_of(&spec.trust)).map_err(invalid)?;
        spec.channel_binding = ChannelBinding::Require;
        Ok(spec)
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, db: &str) -> ConnSpec {
        ConnSpec {
            dbname: db.to_string(),
            ..self.clone()
        }
    }

    /// Whether a child must be told to refuse some authentication methods (libpq ≥ 16 can).
    pub fn restricts_auth(&self) -> bool {
        self.auth != AuthMethods::ANY
    }

    /// libpq environment variables for a child process (pg_dump, pg_restore). The child's
    /// environment should be cleared first, so nothing inherited (PGSERVICE, PGSSLMODE, …) mixes in.
    /// Settings libpq reads only from a conninfo are in [`ConnSpec::child_conninfo`].
    pub fn child_env(&self, application_name: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("PGHOST".to_string(), self.host.clone()),
            ("PGPORT".to_string(), self.port.to_string()),
            ("PGUSER".to_string(), self.user.clone()),
            ("PGDATABASE".to_string(), self.dbname.clone()),
            ("PGSSLMODE".to_string(), self.sslmode.as_str().to_string()),
            ("PGAPPNAME".to_string(), application_name.to_string()),
            (
                "PGCHANNELBINDING".to_string(),
                self.channel_binding.as_str().to_string(),
            ),
        ];
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD".to_string(), password.expose().to_string()));
        }
        if let Some(root) = &self.child_root_file {
            env.push(("PGSSLROOTCERT".to_string(), root.display().to_string()));
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
        if let Some(methods) = self.auth.libpq_value() {
            env.push(("PGREQUIREAUTH".to_string(), methods));
        }
        if let Some(attrs) = &self.target_session_attrs {
            env.push(("PGTARGETSESSIONATTRS".to_string(), attrs.clone()));
        }
        if let (true, false) = (self.tls_versions.tls13, self.tls_versions.tls12) {
            env.push(("PGSSLMINPROTOCOLVERSION".to_string(), "TLSv1.3".to_string()));
        }
        if let (false, true) = (self.tls_versions.tls13, self.tls_versions.tls12) {
            env.push(("PGSSLMAXPROTOCOLVERSION".to_string(), "TLSv1.2".to_string()));
        }
        env
    }

    /// The `--dbname` conninfo for a child: the database name and the settings that libpq takes from
    /// a conninfo only (keepalives, user timeout, sslnegotiation). Nothing secret.
    pub fn child_conninfo(&self) -> String {
        let mut parts = vec![format!("dbname={}", conninfo_value(&self.dbname))];
        let k = &self.keepalives;
        parts.push(format!("keepalives={}", u8::from(k.enabled)));
        if k.enabled {
            parts.push(format!("keepalives_idle={}", k.idle.as_secs()));
            parts.push(format!("keepalives_interval={}", k.interval.as_secs()));
            parts.push(format!("keepalives_count={}", k.count));
        }
        parts.push(format!(
            "tcp_user_timeout={}",
            self.tcp_user_timeout.as_millis()
        ));
        if let Some(negotiation) = &self.sslnegotiation {
            parts.push(format!("sslnegotiation={negotiation}"));
        }
        parts.join(" ")
    }

    /// `user@host:port/db (sslmode=…)`: for messages; never contains the password.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        redact(&format!(
            "{}@{}:{}/{} (sslmode={})",
            self.user, host, self.port, self.dbname, self.sslmode
        ))
    }
}

/// Hosts under `supabase.co` and `supabase.com`: direct hosts (`db.<ref>.supabase.co`) and the
/// poolers (`aws-0-<region>.pooler.supabase.com`).
pub fn is_supabase_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    SUPABASE_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

fn anchors_of(trust: &Trust) -> Vec<Anchor> {
    match trust {
        Trust::Unverified => Vec::new(),
        Trust::Verified { anchors, .. } => anchors.clone(),
    }
}

/// libpq's sslmode × sslrootcert table (see the module documentation).
fn libpq_trust(
    sslmode: Option<SslMode>,
    sslrootcert: Option<PathBuf>,
) -> Result<(SslMode, Trust), ConnError> {
    let verified = |anchor: Anchor, check_host: bool| Trust::Verified {
        anchors: vec![anchor],
        check_host,
    };
    Ok(match (sslmode, sslrootcert) {
        (_, Some(root)) if root.as_os_str() == "system" => {
            (SslMode::VerifyFull, verified(Anchor::PublicRoots, true))
        }
        (Some(SslMode::VerifyFull), Some(root)) => {
            (SslMode::VerifyFull, verified(Anchor::File(root), true))
        }
        (_, Some(root)) => (SslMode::VerifyCa, verified(Anchor::File(root), false)),
        (Some(SslMode::VerifyFull), None) => {
            (SslMode::VerifyFull, verified(Anchor::PublicRoots, true))
        }
        (Some(SslMode::VerifyCa), None) => {
            return Err(invalid(
                "sslmode=verify-ca needs sslrootcert=<CA file>: without one libpq refuses, and the public roots would accept a certificate for any domain; give the CA file, or use verify-full",
            ))
        }
        (Some(SslMode::Require) | None, None) => (SslMode::Require, Trust::Unverified),
    })
}

/// The query parameters of a URI, as read.
#[derive(Default)]
struct QueryParams {
    sslmode: Option<SslMode>,
    sslrootcert: Option<PathBuf>,
    channel_binding: Option<ChannelBinding>,
    require_auth: Option<AuthMethods>,
    connect_timeout: Option<Duration>,
    options: Option<String>,
    keepalives: Keepalives,
    tcp_user_timeout: Option<Duration>,
    target_session_attrs: Option<String>,
    sslnegotiation: Option<String>,
    ssl_min: Option<u8>,
    ssl_max: Option<u8>,
}

/// libpq's parameters that change nothing for us and are accepted as such.
const IGNORED_PARAMETERS: &[&str] = &["application_name", "fallback_application_name", "sslsni"];

impl QueryParams {
    fn read(&mut self, key: &str, value: &str) -> Result<(), ConnError> {
        let seconds = |what: &str| -> Result<u64, ConnError> {
            value
                .parse()
                .map_err(|_| invalid(format!("{what} must be a whole number of seconds")))
        };
        match key {
            "sslmode" => self.sslmode = Some(SslMode::parse(value)?),
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "connect_timeout" => {
                // libpq treats 0 as "wait forever"; we keep our default then.
                let secs = seconds("connect_timeout")?;
                self.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs.max(2)));
            }
            "options" => self.options = Some(value.to_string()),
            "channel_binding" => {
                self.channel_binding = Some(match value {
                    "disable" => ChannelBinding::Disable,
                    "prefer" => ChannelBinding::Prefer,
                    "require" => ChannelBinding::Require,
                    other => {
                        return Err(invalid(format!(
                            "channel_binding={other} is not one of disable, prefer, require"
                        )))
                    }
                })
            }
            "require_auth" => self.require_auth = Some(AuthMethods::parse(value).map_err(invalid)?),
            "keepalives" => match value {
                "0" => self.keepalives.enabled = false,
                "1" => self.keepalives.enabled = true,
                other => return Err(invalid(format!("keepalives={other} is not 0 or 1"))),
            },
            "keepalives_idle" => {
                self.keepalives.idle = Duration::from_secs(seconds("keepalives_idle")?.max(1))
            }
            "keepalives_interval" => {
                self.keepalives.interval =
                    Duration::from_secs(seconds("keepalives_interval")?.max(1))
            }
            "keepalives_count" => {
                self.keepalives.count = value.parse().map_err(|_| {
                    invalid("keepalives_count must be a whole number".to_string())
                })?
            }
            "tcp_user_timeout" => {
                // Milliseconds, as in libpq; 0 is the system default, for which we keep ours.
                let ms: u64 = value.parse().map_err(|_| {
                    invalid("tcp_user_timeout must be a whole number of milliseconds".to_string())
                })?;
                self.tcp_user_timeout = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "target_session_attrs" => match value {
                "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby" => {
                    self.target_session_attrs = Some(value.to_string())
                }
                other => {
                    return Err(invalid(format!(
                        "target_session_attrs={other} is not one of any, read-write, read-only, primary, standby, prefer-standby"
                    )))
                }
            },
            "sslnegotiation" => match value {
                "postgres" | "direct" => self.sslnegotiation = Some(value.to_string()),
                other => {
                    return Err(invalid(format!(
                        "sslnegotiation={other} is not postgres or direct"
                    )))
                }
            },
            "ssl_min_protocol_version" => self.ssl_min = Some(tls_version(key, value)?),
            "ssl_max_protocol_version" => self.ssl_max = Some(tls_version(key, value)?),
            "gssencmode" => match value {
                // We never use GSSAPI encryption; TLS is always required instead.
                "disable" | "prefer" => {}
                _ => {
                    return Err(invalid(
                        "gssencmode=require is not supported; supaneon-sync encrypts with TLS"
                            .to_string(),
                    ))
                }
            },
            known if IGNORED_PARAMETERS.contains(&known) => {}
            "sslcert" | "sslkey" | "sslpassword" | "sslcertmode" => {
                return Err(invalid(format!(
                    "\"{key}\": client certificates are not supported; authenticate with a password (SCRAM)"
                )))
            }
            other => {
                return Err(invalid(format!(
                    "unsupported query parameter \"{other}\" (supported: sslmode, sslrootcert, channel_binding, require_auth, connect_timeout, options, keepalives, keepalives_idle, keepalives_interval, keepalives_count, tcp_user_timeout, target_session_attrs, sslnegotiation, ssl_min_protocol_version, ssl_max_protocol_version, gssencmode, application_name, sslsni)"
                )))
            }
        }
        Ok(())
    }

    /// rustls speaks TLS 1.2 and 1.3: a floor below 1.2 is 1.2, a ceiling below 1.2 cannot be met.
    fn tls_versions(&self) -> Result<TlsVersions, ConnError> {
        let min = self.ssl_min.unwrap_or(2).max(2);
        let max = self.ssl_max.unwrap_or(3);
        if max < 2 {
            return Err(invalid(
                "ssl_max_protocol_version below TLSv1.2 is not supported (TLS 1.2 and 1.3 only)",
            ));
        }
        if min > max {
            return Err(invalid(
                "ssl_min_protocol_version is above ssl_max_protocol_version",
            ));
        }
        Ok(TlsVersions {
            tls12: min <= 2,
            tls13: max >= 3,
        })
    }
}

/// `TLSv1` … `TLSv1.3` as the minor number (0 … 3).
fn tls_version(key: &str, value: &str) -> Result<u8, ConnError> {
    match value {
        "TLSv1" => Ok(0),
        "TLSv1.1" => Ok(1),
        "TLSv1.2" => Ok(2),
        "TLSv1.3" => Ok(3),
        other => Err(invalid(format!(
            "{key}={other} is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"
        ))),
    }
}

/// A conninfo value, quoted so spaces, quotes and backslashes survive.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn invalid(reason: impl Into<String>) -> ConnError {
    ConnError::InvalidUrl {
        reason: reason.into(),
    }
}

fn decode(part: &str) -> Result<String, ConnError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid("the URI contains percent-encoded bytes that are not UTF-8"))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
