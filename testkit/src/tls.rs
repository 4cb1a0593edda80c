//! A throwaway CA and server certificate per cluster, made with the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct TlsFiles {
    pub(crate) ca_cert: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
}

/// Writes `ca.crt`, `server.crt` and `server.key` (mode 0600) into `dir`. The server certificate
/// names `IP:127.0.0.1` and `DNS:localhost`, so verify-full clients can check it against `ca.crt`.
pub(crate) fn generate(dir: &Path) -> TlsFiles {
    std::fs::create_dir_all(dir).expect("create tls dir");
    let ca_key = dir.join("ca.key");
    let ca_cert = dir.join("ca.crt");
    let csr = dir.join("server.csr");
    let server_key = dir.join("server.key");
    let server_cert = dir.join("server.crt");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");

    // P-256 keys: quick to generate and accepted by libpq and rustls alike.
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "7",
        "-subj",
        "/CN=supaneon-testkit CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        p(&ca_key),
        "-out",
        p(&ca_cert),
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        p(&server_key),
        "-out",
        p(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        p(&csr),
        "-CA",
        p(&ca_cert),
        "-CAkey",
        p(&ca_key),
        "-CAcreateserial",
        "-days",
        "7",
        "-extfile",
        p(&ext),
        "-out",
        p(&server_cert),
    ]);
    set_mode(&server_key, 0o600);
    set_mode(&ca_key, 0o600);
    TlsFiles {
        ca_cert,
        server_cert,
        server_key,
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod key");
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run the openssl CLI (is openssl installed?)");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
}
