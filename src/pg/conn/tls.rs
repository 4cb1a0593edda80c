//! The rustls side of a connection: which roots a certificate must chain to, whether the host name is
//! checked, and which TLS versions are allowed. The verifier records what it verified in [`Facts`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};

use super::facts::Facts;
use super::ConnError;

/// Supabase's database certificates chain to this root (public; valid until 2031-04-26).
pub const SUPABASE_ROOT_PEM: &[u8] = include_bytes!("supabase-root-2021-ca.pem");
pub const SUPABASE_ROOT_NAME: &str = "Supabase Root 2021 CA";

/// CA bundles of common distributions: "the public roots" for pg_dump and pg_restore.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// One set of roots a certificate may chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The public web roots: webpki-roots in our process, the distribution's CA bundle for children.
    PublicRoots,
    /// Supabase Root 2021 CA, shipped in the binary.
    SupabaseRoot,
    /// A PEM file of roots (`sslrootcert`, or extra roots for Neon).
    File(PathBuf),
}

impl Anchor {
    fn label(&self) -> String {
        match self {
            Anchor::PublicRoots => "the public roots".to_string(),
            Anchor::SupabaseRoot => SUPABASE_ROOT_NAME.to_string(),
            Anchor::File(p) => format!("the roots in {}", p.display()),
        }
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// `sslmode=require` without a root: encrypted to whoever answers. Only SCRAM may carry the
    /// password then.
    Unverified,
    /// The chain must end at one of `anchors`; `check_host` is verify-full.
    Verified {
        anchors: Vec<Anchor>,
        check_host: bool,
    },
}

impl Trust {
    pub fn is_verified(&self) -> bool {
        matches!(self, Trust::Verified { .. })
    }
}

/// The TLS versions a URI allows (`ssl_min_protocol_version`, `ssl_max_protocol_version`); rustls
/// speaks 1.2 and 1.3 only, which is also libpq's default floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

/// The PEM file that gives pg_dump and pg_restore the same anchors as our own connections.
pub fn child_root_file(anchors: &[Anchor]) -> Result<Option<PathBuf>, String> {
    let system_bundle = || {
        SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .map(Path::to_path_buf)
    };
    match anchors {
        [] => Ok(None),
        [Anchor::File(p)] => Ok(Some(p.clone())),
        // libpq 16 reads "system" as the OpenSSL default store; older libpq needs a file.
        [Anchor::PublicRoots] => Ok(Some(
            system_bundle().unwrap_or_else(|| PathBuf::from("system")),
        )),
        several => {
            let mut pem = Vec::new();
            for anchor in several {
                match anchor {
                    Anchor::SupabaseRoot => pem.extend_from_slice(SUPABASE_ROOT_PEM),
                    Anchor::File(p) => pem.extend(std::fs::read(p).map_err(|e| {
                        format!("cannot read the root certificate {}: {e}", p.display())
                    })?),
                    Anchor::PublicRoots => match system_bundle() {
                        Some(bundle) => pem.extend(std::fs::read(&bundle).map_err(|e| {
                            format!("cannot read the CA bundle {}: {e}", bundle.display())
                        })?),
                        None => return Err(format!(
                            "no CA bundle found for pg_dump/pg_restore (looked for {}); install the ca-certificates package",
                            SYSTEM_CA_BUNDLES.join(", ")
                        )),
                    },
                }
                pem.push(b'\n');
            }
            write_bundle(&pem).map(Some)
        }
    }
}

/// The combined bundle goes to the temp directory under a name derived from its content. Certificates are
/// public, but the file decides whom pg_dump trusts: an existing file is reused only when this user owns it
/// and nobody else may write it (another user of a shared `/tmp` could plant a root of their own under the
/// expected name, or change it later). Otherwise a fresh file (never a symlink's target) is written and
/// renamed into place, so concurrent runs never see half a file.
fn write_bundle(pem: &[u8]) -> Result<PathBuf, String> {
    write_bundle_in(&std::env::temp_dir(), pem)
}

fn write_bundle_in(dir: &Path, pem: &[u8]) -> Result<PathBuf, String> {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let digest = hex::encode(&Sha256::digest(pem)[..12]);
    let path = dir.join(format!("supaneon-sync-roots-{digest}.pem"));
    if owned_and_private(&path) && std::fs::read(&path).is_ok_and(|existing| existing == pem) {
        return Ok(path);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let partial = path.with_extension(format!("{}-{nanos}.partial", std::process::id()));
    // `create_new`: fails on anything already there, a symlink included, instead of writing through it.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&partial)
        .and_then(|mut file| {
            // 0644 whatever the umask: certificates are public.
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            file.write_all(pem)
        });
    if let Err(e) = written.and_then(|()| std::fs::rename(&partial, &path)) {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "cannot write the CA bundle {}: {e}",
            path.display()
        ));
    }
    Ok(path)
}

/// Whether `path` is a regular file of this process's user that no one else may write.
fn owned_and_private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_file() && m.uid() == me && m.mode() & 0o022 == 0)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `trust` and `versions`, recording into `facts`.
pub(super) fn client_config(
    target: &str,
    trust: &Trust,
    versions: TlsVersions,
    facts: Arc<Mutex<Facts>>,
) -> Result<ClientConfig, ConnError> {
    let provider = provider();
    let setup = |detail: String| ConnError::Other {
        target: target.to_string(),
        detail: format!("TLS setup failed: {detail}"),
    };
    let mut allowed: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if versions.tls13 {
        allowed.push(&rustls::version::TLS13);
    }
    if versions.tls12 {
        allowed.push(&rustls::version::TLS12);
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&allowed)
        .map_err(|e| setup(e.to_string()))?;
    let chains = match trust {
        Trust::Unverified => Vec::new(),
        Trust::Verified { anchors, .. } => {
            let mut chains = Vec::new();
            for anchor in anchors {
                let store = Arc::new(root_store(target, anchor)?);
                let verifier = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                    .build()
                    .map_err(|e| setup(e.to_string()))?;
                chains.push((anchor.label(), verifier));
            }
            chains
        }
    };
    let verifier = RecordingVerifier {
        chains,
        check_host: matches!(
            trust,
            Trust::Verified {
                check_host: true,
                ..
            }
        ),
        verify: trust.is_verified(),
        provider,
        facts,
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // As libpq 17 does: PostgreSQL 17 requires this ALPN for sslnegotiation=direct, older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

fn root_store(target: &str, anchor: &Anchor) -> Result<RootCertStore, ConnError> {
    let mut store = RootCertStore::empty();
    match anchor {
        Anchor::PublicRoots => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Anchor::SupabaseRoot => {
            for cert in supabase_root() {
                store.add(cert.clone()).map_err(|e| ConnError::Other {
                    target: target.to_string(),
                    detail: format!("the bundled Supabase root is unusable: {e}"),
                })?;
            }
        }
        Anchor::File(path) => {
            let fail = |detail: String| ConnError::RootCert {
                target: target.to_string(),
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
    }
    Ok(store)
}

fn supabase_root() -> &'static [CertificateDer<'static>] {
    static ROOT: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOT.get_or_init(|| {
        rustls_pemfile::certs(&mut &SUPABASE_ROOT_PEM[..])
            .collect::<Result<Vec<_>, _>>()
            .expect("the bundled Supabase root is PEM")
    })
}

/// Verifies the chain against each anchor in turn (recording the first that holds), or, when
/// unverified, accepts any certificate. Handshake signatures are always checked, so the session is
/// encrypted to whoever holds the presented key.
#[derive(Debug)]
struct RecordingVerifier {
    chains: Vec<(String, Arc<WebPkiServerVerifier>)>,
    check_host: bool,
    verify: bool,
    provider: Arc<CryptoProvider>,
    facts: Arc<Mutex<Facts>>,
}

impl RecordingVerifier {
    fn record(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.facts.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.verify {
            return Ok(ServerCertVerified::assertion());
        }
        let mut failure: Option<rustls::Error> = None;
        for (label, verifier) in &self.chains {
            match verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(ok) => {
                    self.record(|f| {
                        f.verified_by = Some(label.clone());
                        f.host_checked = self.check_host;
                    });
                    return Ok(ok);
                }
                // webpki checks the chain before the name: a name error means the chain held.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) if !self.check_host => {
                    self.record(|f| f.verified_by = Some(label.clone()));
                    return Ok(ServerCertVerified::assertion());
                }
                Err(e) => {
                    // A wrong name under a good chain says more than "unknown issuer" from another anchor.
                    let names_the_host = matches!(
                        e,
                        rustls::Error::InvalidCertificate(
                            CertificateError::NotValidForName
                                | CertificateError::NotValidForNameContext { .. }
                        )
                    );
                    if failure.is_none() || names_the_host {
                        failure = Some(e);
                    }
                }
            }
        }
        Err(failure.unwrap_or(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.record(|f| f.protocol = Some("TLS 1.2"));
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
        self.record(|f| f.protocol = Some("TLS 1.3"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_supabase_root_is_the_published_one() {
        use sha2::{Digest, Sha256};
        let der = &supabase_root()[0];
        assert_eq!(supabase_root().len(), 1);
        assert_eq!(
            hex::encode_upper(Sha256::digest(der.as_ref())),
            "807025AD50D4ED219D2C9C7D299C004F824EB00CF7F65AFEF607D07B72E6CAFA"
        );
    }

    #[test]
    fn children_get_one_file_holding_every_anchor() {
        let only_file = child_root_file(&[Anchor::File("/x/ca.pem".into())]).unwrap();
        assert_eq!(only_file, Some(PathBuf::from("/x/ca.pem")));
        assert_eq!(child_root_file(&[]).unwrap(), None);
        let combined = child_root_file(&[Anchor::SupabaseRoot, Anchor::PublicRoots]);
        if SYSTEM_CA_BUNDLES.iter().any(|p| Path::new(p).is_file()) {
            let path = combined.unwrap().unwrap();
            let pem = std::fs::read(&path).unwrap();
            assert!(pem.starts_with(SUPABASE_ROOT_PEM));
            assert!(
                pem.len() > SUPABASE_ROOT_PEM.len() + 1000,
                "the system bundle follows"
            );
            // The same content gives the same file.
            let again = child_root_file(&[Anchor::SupabaseRoot, Anchor::PublicRoots]).unwrap();
            assert_eq!(again, Some(path));
        } else {
            assert!(combined.unwrap_err().contains("ca-certificates"));
        }
    }

    #[test]
    fn a_bundle_someone_else_could_write_is_replaced_not_trusted() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = std::env::temp_dir().join(format!("supaneon-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = b"-----BEGIN CERTIFICATE-----\nours\n-----END CERTIFICATE-----\n";
        let path = write_bundle_in(&dir, pem).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), pem);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // Ours and private: reused as it is.
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(write_bundle_in(&dir, pem).unwrap(), path);
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        // Planted under the expected name with the right content, but writable by anyone: replaced.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(write_bundle_in(&dir, pem).unwrap(), path);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        // Owned by another user (the test runs as root, as CI does): replaced.
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(write_bundle_in(&dir, pem).unwrap(), path);
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), unsafe {
            libc::geteuid()
        });
        // A symlink under the name is replaced, and its target left alone.
        let target = dir.join("elsewhere.pem");
        std::fs::write(&target, b"planted").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert_eq!(write_bundle_in(&dir, pem).unwrap(), path);
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_file());
        assert_eq!(std::fs::read(&path).unwrap(), pem);
        assert_eq!(std::fs::read(&target).unwrap(), b"planted");
        // Nothing partial is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
