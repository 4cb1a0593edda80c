//! Opens a real TLS connection with a connection URI the client got from the emulator, trusting the
//! test cluster's CA.

use std::path::Path;
use std::sync::Arc;

pub async fn connect_tls(uri: &str, ca_cert: &Path) -> tokio_postgres::Client {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_cert).expect("read the test cluster's CA certificate");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.expect("parse CA certificate"))
            .expect("add CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config: tokio_postgres::Config = uri.parse().expect("the connection URI parses");
    let (client, connection) = config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .await
        .expect("connect with the connection URI");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
