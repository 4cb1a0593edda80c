//! Which authentication methods may carry the password, and a stream guard that enforces it.
//!
//! tokio-postgres answers whatever the server asks for: a cleartext or MD5 request gets the password
//! (or its MD5) at once. On a connection whose certificate is not verified, whoever answers may be an
//! impostor, so only SCRAM is allowed there: SCRAM never reveals the password. [`AuthGuard`] sits
//! between the TLS stream and tokio-postgres, reads the server's authentication requests as they
//! arrive and fails the read before a refused request reaches the client, so nothing is sent.
//! libpq's `require_auth` does the same for pg_dump and pg_restore (libpq 16 and newer).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::facts::Facts;

/// One way a server can ask for credentials; `None` is a server that asks for nothing (trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Md5,
    Gss,
    Sspi,
    Scram,
    None,
}

impl AuthMethod {
    const ALL: [AuthMethod; 6] = [
        AuthMethod::Password,
        AuthMethod::Md5,
        AuthMethod::Gss,
        AuthMethod::Sspi,
        AuthMethod::Scram,
        AuthMethod::None,
    ];

    /// libpq's `require_auth` spelling.
    pub fn libpq_name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::Gss => "gss",
            AuthMethod::Sspi => "sspi",
            AuthMethod::Scram => "scram-sha-256",
            AuthMethod::None => "none",
        }
    }

    /// For messages: what the server asked for.
    pub fn described(self) -> &'static str {
        match self {
            AuthMethod::Password => "a cleartext password",
            AuthMethod::Md5 => "an MD5 password hash",
            AuthMethod::Gss => "GSSAPI (Kerberos) authentication",
            AuthMethod::Sspi => "SSPI authentication",
            AuthMethod::Scram => "SCRAM-SHA-256 authentication",
            AuthMethod::None => "no authentication at all",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of allowed methods, written the way libpq's `require_auth` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMethods(u8);

impl AuthMethods {
    pub const ANY: AuthMethods = AuthMethods(0b11_1111);
    pub const SCRAM_ONLY: AuthMethods = AuthMethods(1 << (AuthMethod::Scram as u8));

    /// Parses libpq's syntax: a comma-separated list of methods, or of `!method`s (all but those).
    pub fn parse(value: &str) -> Result<AuthMethods, String> {
        let items: Vec<&str> = value.split(',').map(str::trim).collect();
        let negated = items.iter().filter(|i| i.starts_with('!')).count();
        if negated != 0 && negated != items.len() {
            return Err(format!(
                "require_auth=\"{value}\" mixes allowed and negated (!) methods"
            ));
        }
        let mut listed = 0u8;
        for item in &items {
            let name = item.trim_start_matches('!');
            let method = AuthMethod::ALL
                .into_iter()
                .find(|m| m.libpq_name() == name)
                .ok_or_else(|| {
                    format!(
                        "require_auth: unknown method \"{name}\" (libpq knows password, md5, gss, sspi, scram-sha-256, none)"
                    )
                })?;
            listed |= method.bit();
        }
        Ok(if negated > 0 {
            AuthMethods(AuthMethods::ANY.0 & !listed)
        } else {
            AuthMethods(listed)
        })
    }

    pub fn allows(self, method: AuthMethod) -> bool {
        self.0 & method.bit() != 0
    }

    pub fn intersect(self, other: AuthMethods) -> AuthMethods {
        AuthMethods(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `require_auth` value that says the same; `None` when every method is allowed.
    pub fn libpq_value(self) -> Option<String> {
        if self == AuthMethods::ANY {
            return None;
        }
        let names: Vec<&str> = AuthMethod::ALL
            .into_iter()
            .filter(|m| self.allows(*m))
            .map(AuthMethod::libpq_name)
            .collect();
        Some(names.join(","))
    }
}

/// The error a refused request turns into; [`super::classify`] finds it inside the io::Error.
#[derive(Debug, thiserror::Error)]
#[error("the server asked for {}, which this connection does not allow", .0.described())]
pub struct AuthRefused(pub AuthMethod);

/// Wraps tokio-postgres-rustls so that every stream it makes is guarded.
#[derive(Clone)]
pub(super) struct GuardedMakeTls<M> {
    inner: M,
    allowed: AuthMethods,
    facts: Arc<Mutex<Facts>>,
}

impl<M> GuardedMakeTls<M> {
    pub(super) fn new(inner: M, allowed: AuthMethods, facts: Arc<Mutex<Facts>>) -> Self {
        GuardedMakeTls {
            inner,
            allowed,
            facts,
        }
    }
}

impl<S, M> MakeTlsConnect<S> for GuardedMakeTls<M>
where
    M: MakeTlsConnect<S>,
    M::TlsConnect: Send + 'static,
    <M::TlsConnect as TlsConnect<S>>::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = AuthGuard<M::Stream>;
    type TlsConnect = GuardedTls<M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(GuardedTls {
            inner: self.inner.make_tls_connect(domain)?,
            allowed: self.allowed,
            facts: self.facts.clone(),
        })
    }
}

pub(super) struct GuardedTls<T> {
    inner: T,
    allowed: AuthMethods,
    facts: Arc<Mutex<Facts>>,
}

type BoxedConnect<St, E> = Pin<Box<dyn Future<Output = Result<AuthGuard<St>, E>> + Send>>;

impl<S, T> TlsConnect<S> for GuardedTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = AuthGuard<T::Stream>;
    type Error = T::Error;
    type Future = BoxedConnect<T::Stream, T::Error>;

    fn connect(self, stream: S) -> Self::Future {
        let (allowed, facts) = (self.allowed, self.facts);
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let inner = handshake.await?;
            Ok(AuthGuard {
                inner,
                server: BackendScan::new(allowed, facts.clone()),
                client: FrontendScan::new(facts),
            })
        })
    }
}

/// The TLS stream, watched until authentication is over; then a plain pass-through.
pub struct AuthGuard<S> {
    inner: S,
    server: BackendScan,
    client: FrontendScan,
}

impl<S: TlsStream + Unpin> TlsStream for AuthGuard<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.server.done {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // Read into a buffer of our own and hand the bytes on only once they are known to be allowed.
        let mut scratch = vec![0u8; buf.remaining().min(16 * 1024)];
        let mut own = ReadBuf::new(&mut scratch);
        match Pin::new(&mut this.inner).poll_read(cx, &mut own) {
            Poll::Ready(Ok(())) => {
                let read = own.filled();
                if let Err(refused) = this.server.feed(read) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        refused,
                    )));
                }
                buf.put_slice(read);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            if !this.server.done {
                this.client.feed(&buf[..*n]);
            }
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads backend messages until `AuthenticationOk` or an error: a message is a tag byte and a
/// length; authentication requests are tag `R` with a request code.
struct BackendScan {
    allowed: AuthMethods,
    facts: Arc<Mutex<Facts>>,
    pending: Vec<u8>,
    asked: Option<AuthMethod>,
    done: bool,
}

impl BackendScan {
    fn new(allowed: AuthMethods, facts: Arc<Mutex<Facts>>) -> Self {
        BackendScan {
            allowed,
            facts,
            pending: Vec::new(),
            asked: None,
            done: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), AuthRefused> {
        self.pending.extend_from_slice(bytes);
        while !self.done && self.pending.len() >= 5 {
            let tag = self.pending[0];
            let len = u32::from_be_bytes([
                self.pending[1],
                self.pending[2],
                self.pending[3],
                self.pending[4],
            ]) as usize;
            if !(4..=64 * 1024).contains(&len) {
                // Not a startup-phase message; tokio-postgres reports the protocol error itself.
                self.finish();
                break;
            }
            if self.pending.len() < 1 + len {
                break;
            }
            let body: Vec<u8> = self.pending.drain(..1 + len).skip(5).collect();
            match tag {
                b'R' => self.request(&body)?,
                b'E' => self.finish(),
                _ => {}
            }
        }
        Ok(())
    }

    fn request(&mut self, body: &[u8]) -> Result<(), AuthRefused> {
        let Some(code) = body
            .get(..4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        else {
            self.finish();
            return Ok(());
        };
        let method = match code {
            0 => {
                if self.asked.is_none() {
                    self.check(AuthMethod::None)?;
                    self.record_method("none (the server asked for no password)");
                }
                self.finish();
                return Ok(());
            }
            3 => AuthMethod::Password,
            5 => AuthMethod::Md5,
            2 | 7 | 8 => AuthMethod::Gss,
            9 => AuthMethod::Sspi,
            10 => {
                let offered = sasl_mechanisms(&body[4..]);
                self.facts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sasl_offered = offered;
                AuthMethod::Scram
            }
            11 | 12 => return Ok(()),
            _ => {
                self.finish();
                return Ok(());
            }
        };
        self.check(method)?;
        self.asked = Some(method);
        if method != AuthMethod::Scram {
            self.record_method(method.described());
        }
        Ok(())
    }

    fn check(&mut self, method: AuthMethod) -> Result<(), AuthRefused> {
        if self.allowed.allows(method) {
            Ok(())
        } else {
            self.finish();
            Err(AuthRefused(method))
        }
    }

    fn record_method(&self, what: &str) {
        self.facts.lock().unwrap_or_else(|e| e.into_inner()).auth = Some(what.to_string());
    }

    fn finish(&mut self) {
        self.done = true;
        self.pending = Vec::new();
    }
}

fn sasl_mechanisms(body: &[u8]) -> Vec<String> {
    body.split(|b| *b == 0)
        .take_while(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// Reads what the client sends during authentication, to learn the SASL mechanism it chose. The
/// first message (startup) has no tag byte.
struct FrontendScan {
    facts: Arc<Mutex<Facts>>,
    pending: Vec<u8>,
    startup_seen: bool,
    done: bool,
}

impl FrontendScan {
    fn new(facts: Arc<Mutex<Facts>>) -> Self {
        FrontendScan {
            facts,
            pending: Vec::new(),
            startup_seen: false,
            done: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        self.pending.extend_from_slice(bytes);
        loop {
            let header = if self.startup_seen { 5 } else { 4 };
            if self.pending.len() < header {
                return;
            }
            let at = header - 4;
            let len = u32::from_be_bytes([
                self.pending[at],
                self.pending[at + 1],
                self.pending[at + 2],
                self.pending[at + 3],
            ]) as usize;
            if !(4..=64 * 1024).contains(&len) {
                self.stop();
                return;
            }
            let total = at + len;
            if self.pending.len() < total {
                return;
            }
            let message: Vec<u8> = self.pending.drain(..total).collect();
            if !self.startup_seen {
                self.startup_seen = true;
                continue;
            }
            if message[0] == b'p' {
                // SASLInitialResponse starts with the mechanism's name; later 'p's are SCRAM messages.
                if let Some(name) = message[5..].split(|b| *b == 0).next() {
                    if name.starts_with(b"SCRAM") {
                        self.facts.lock().unwrap_or_else(|e| e.into_inner()).auth =
                            Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
                self.stop();
                return;
            }
        }
    }

    fn stop(&mut self) {
        self.done = true;
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_request(code: i32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&((8 + extra.len()) as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    fn scan(allowed: AuthMethods) -> BackendScan {
        BackendScan::new(allowed, Arc::new(Mutex::new(Facts::default())))
    }

    #[test]
    fn parses_libpq_require_auth_lists() {
        assert_eq!(
            AuthMethods::parse("scram-sha-256").unwrap(),
            AuthMethods::SCRAM_ONLY
        );
        let not_clear = AuthMethods::parse("!password,!md5").unwrap();
        assert!(not_clear.allows(AuthMethod::Scram) && not_clear.allows(AuthMethod::None));
        assert!(!not_clear.allows(AuthMethod::Password) && !not_clear.allows(AuthMethod::Md5));
        assert!(AuthMethods::parse("scram-sha-256,!md5").is_err());
        assert!(AuthMethods::parse("kerberos").is_err());
        assert_eq!(AuthMethods::ANY.libpq_value(), None);
        assert_eq!(
            AuthMethods::SCRAM_ONLY.libpq_value().as_deref(),
            Some("scram-sha-256")
        );
        assert!(AuthMethods::parse("password")
            .unwrap()
            .intersect(AuthMethods::SCRAM_ONLY)
            .is_empty());
    }

    #[test]
    fn cleartext_and_md5_requests_are_refused_before_the_client_sees_them() {
        for (code, method) in [(3, AuthMethod::Password), (5, AuthMethod::Md5)] {
            let mut s = scan(AuthMethods::SCRAM_ONLY);
            let request = auth_request(code, if code == 5 { b"salt" } else { b"" });
            // Split across two reads: the first half is held back, the second completes it.
            assert!(s.feed(&request[..3]).is_ok());
            let refused = s.feed(&request[3..]).unwrap_err();
            assert_eq!(refused.0, method);
        }
    }

    #[test]
    fn scram_is_allowed_and_the_scan_ends_at_authentication_ok() {
        let mut s = scan(AuthMethods::SCRAM_ONLY);
        let mut bytes = auth_request(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        bytes.extend(auth_request(11, b"r=abc"));
        bytes.extend(auth_request(12, b"v=xyz"));
        bytes.extend(auth_request(0, b""));
        s.feed(&bytes).unwrap();
        assert!(s.done);
        assert_eq!(
            s.facts.lock().unwrap().sasl_offered,
            vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
        );
        // A cleartext request after the end is not ours to judge (it cannot happen in the protocol).
        s.feed(&auth_request(3, b"")).unwrap();
    }

    #[test]
    fn a_server_that_asks_nothing_is_trust_and_refused_where_scram_is_required() {
        let refused = scan(AuthMethods::SCRAM_ONLY)
            .feed(&auth_request(0, b""))
            .unwrap_err();
        assert_eq!(refused.0, AuthMethod::None);
        let mut any = scan(AuthMethods::ANY);
        any.feed(&auth_request(0, b"")).unwrap();
        assert!(any.done);
    }

    #[test]
    fn the_frontend_scan_learns_the_chosen_mechanism() {
        let facts = Arc::new(Mutex::new(Facts::default()));
        let mut f = FrontendScan::new(facts.clone());
        let mut startup = 12u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196608u32.to_be_bytes());
        startup.extend_from_slice(b"u\0\0\0");
        let mut sasl = vec![b'p'];
        let payload = b"SCRAM-SHA-256-PLUS\0\0\0\0\x05n,,x";
        sasl.extend_from_slice(&((4 + payload.len()) as u32).to_be_bytes());
        sasl.extend_from_slice(payload);
        let mut all = startup;
        all.extend(sasl);
        for chunk in all.chunks(3) {
            f.feed(chunk);
        }
        assert_eq!(
            facts.lock().unwrap().auth.as_deref(),
            Some("SCRAM-SHA-256-PLUS")
        );
    }
}
