//! What a connection actually verified, gathered while it was made, for `validate-config --online`.

/// Filled in by the certificate verifier and the authentication guard during the handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `TLS 1.2` or `TLS 1.3`.
    pub protocol: Option<&'static str>,
    /// The anchor the certificate chain ended at; `None` when nothing was verified.
    pub verified_by: Option<String>,
    /// Whether the host name was checked against the certificate.
    pub host_checked: bool,
    /// The SASL mechanisms the server offered.
    pub sasl_offered: Vec<String>,
    /// How the password went: the SCRAM mechanism chosen, or what the server asked for.
    pub auth: Option<String>,
}

impl Facts {
    /// One line, e.g. "TLS 1.3, certificate verified (host name checked): Supabase Root 2021 CA,
    /// SCRAM-SHA-256-PLUS".
    pub fn describe(&self) -> String {
        let protocol = self.protocol.unwrap_or("TLS");
        let certificate = match (&self.verified_by, self.host_checked) {
            (Some(anchor), true) => format!("certificate verified (host name checked): {anchor}"),
            (Some(anchor), false) => {
                format!("certificate verified (host name not checked, verify-ca): {anchor}")
            }
            (None, _) => {
                "certificate NOT verified (sslmode=require): only SCRAM may carry the password"
                    .to_string()
            }
        };
        let auth = self
            .auth
            .as_deref()
            .unwrap_or("authentication not observed");
        format!("{protocol}, {certificate}, {auth}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_verified_and_unverified_connections() {
        let verified = Facts {
            protocol: Some("TLS 1.3"),
            verified_by: Some("Supabase Root 2021 CA".into()),
            host_checked: true,
            sasl_offered: vec![],
            auth: Some("SCRAM-SHA-256".into()),
        };
        assert_eq!(
            verified.describe(),
            "TLS 1.3, certificate verified (host name checked): Supabase Root 2021 CA, SCRAM-SHA-256"
        );
        let unverified = Facts {
            protocol: Some("TLS 1.2"),
            ..Facts::default()
        };
        assert!(unverified.describe().contains("NOT verified"));
    }
}
