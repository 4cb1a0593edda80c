//! An impostor: a fake PostgreSQL server, as someone on the network path would run it. It accepts TLS
//! with a certificate from a throwaway CA nobody trusts (the name in it is right: 127.0.0.1 and
//! localhost), answers the startup message by asking for a cleartext or an MD5 password, and records
//! everything the client sends, so tests can prove that no password reached it.
//!
//! It runs on a thread and runtime of its own, so it serves while a test blocks on a child process.

use std::io::BufReader;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::tls;

/// What the impostor asks for after the startup message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImpostorAsks {
    CleartextPassword,
    Md5Password,
}

/// What one client did.
#[derive(Debug, Clone, Default)]
pub struct Visit {
    /// The client completed the TLS handshake (it accepted the certificate).
    pub tls_accepted: bool,
    /// The startup message's parameters (user, database, application_name, …).
    pub startup: Vec<(String, String)>,
    /// Every byte the client sent after the startup message.
    pub after_startup: Vec<u8>,
}

impl Visit {
    /// Whether the client answered the request with a PasswordMessage (tag `p`).
    pub fn sent_a_password_message(&self) -> bool {
        self.after_startup.first() == Some(&b'p')
    }
}

/// Visits in arrival order, each with whether its connection has ended; the condvar is told of every end.
type Log = Arc<(Mutex<Vec<(Visit, bool)>>, Condvar)>;

/// How long [`Impostor::visits`] waits for open connections to end (a client that refused the
/// impostor closes at once; one that did not is read for at most [`READ_AFTER_REQUEST`]).
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);
const READ_AFTER_REQUEST: Duration = Duration::from_secs(5);

pub struct Impostor {
    port: u16,
    log: Log,
    ca_cert: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Impostor {
    /// Starts listening on 127.0.0.1 on a free port.
    pub fn start(asks: ImpostorAsks) -> Impostor {
        let dir = tempfile::Builder::new()
            .prefix("supaneon-impostor-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let files = tls::generate(dir.path());
        let config = server_config(&files.server_cert, &files.server_key);
        let listener = StdListener::bind("127.0.0.1:0").expect("bind the impostor");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let log: Log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let recorded = log.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("impostor runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    // Registered at accept, before the client can have learnt anything from us.
                    let index = {
                        let mut visits = recorded.0.lock().unwrap();
                        visits.push((Visit::default(), false));
                        visits.len() - 1
                    };
                    let recorded = recorded.clone();
                    tokio::spawn(async move {
                        let visit = serve(socket, acceptor, asks).await;
                        recorded.0.lock().unwrap()[index] = (visit, true);
                        recorded.1.notify_all();
                    });
                }
            });
        });
        Impostor {
            port,
            log,
            ca_cert: files.ca_cert,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA behind the impostor's certificate (a test that trusts it on purpose can use it).
    pub fn ca_cert_path(&self) -> &std::path::Path {
        &self.ca_cert
    }

    /// Every visit so far, once each has ended, so nothing a client sent can still be in flight.
    pub fn visits(&self) -> Vec<Visit> {
        let (lock, ended) = &*self.log;
        let (visits, timeout) = ended
            .wait_timeout_while(lock.lock().unwrap(), SETTLE_DEADLINE, |v| {
                v.iter().any(|(_, done)| !done)
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "a connection to the impostor stayed open"
        );
        visits.iter().map(|(v, _)| v.clone()).collect()
    }

    /// Panics when any visit carried a password message or `secret` in any form the client could
    /// have sent it (raw bytes of everything after the startup message).
    pub fn assert_received_no_password(&self, secret: &str) {
        for (i, visit) in self.visits().iter().enumerate() {
            assert!(
                !visit.sent_a_password_message(),
                "visit {i}: the client sent a password message to the impostor: {visit:?}"
            );
            let raw = String::from_utf8_lossy(&visit.after_startup);
            assert!(
                !raw.contains(secret),
                "visit {i}: the password reached the impostor"
            );
        }
    }
}

fn server_config(cert: &std::path::Path, key: &std::path::Path) -> rustls::ServerConfig {
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        std::fs::File::open(cert).expect("impostor cert"),
    ))
    .collect::<Result<Vec<_>, _>>()
    .expect("impostor cert PEM");
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        std::fs::File::open(key).expect("impostor key"),
    ))
    .expect("impostor key PEM")
    .expect("a private key");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("impostor server config")
}

/// One client: SSLRequest → 'S', TLS, startup, the password request, then whatever the client sends
/// within a few seconds.
async fn serve(
    mut socket: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    asks: ImpostorAsks,
) -> Visit {
    let mut visit = Visit::default();
    let mut request = [0u8; 8];
    if socket.read_exact(&mut request).await.is_err() || request != [0, 0, 0, 8, 4, 210, 22, 47] {
        return visit;
    }
    if socket.write_all(b"S").await.is_err() {
        return visit;
    }
    let Ok(mut tls) = acceptor.accept(socket).await else {
        return visit;
    };
    visit.tls_accepted = true;
    let mut len = [0u8; 4];
    if tls.read_exact(&mut len).await.is_err() {
        return visit;
    }
    let len = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; len.saturating_sub(4).min(64 * 1024)];
    if tls.read_exact(&mut body).await.is_err() {
        return visit;
    }
    let params: Vec<&[u8]> = body
        .get(4..)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .collect();
    visit.startup = params
        .chunks(2)
        .filter(|kv| kv.len() == 2 && !kv[0].is_empty())
        .map(|kv| {
            (
                String::from_utf8_lossy(kv[0]).into_owned(),
                String::from_utf8_lossy(kv[1]).into_owned(),
            )
        })
        .collect();
    let ask: Vec<u8> = match asks {
        ImpostorAsks::CleartextPassword => vec![b'R', 0, 0, 0, 8, 0, 0, 0, 3],
        ImpostorAsks::Md5Password => vec![b'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4],
    };
    if tls.write_all(&ask).await.is_err() || tls.flush().await.is_err() {
        return visit;
    }
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(READ_AFTER_REQUEST, tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => visit.after_startup.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    visit
}
