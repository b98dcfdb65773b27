//! The throwaway certificate registered on generated tenants' app, and a client-assertion
//! signer for tests. The real client must build its own assertions; this is a test helper.

use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::{thumbprint_sha1, thumbprint_sha256};

/// A throwaway RSA certificate and key for the simulated app registration (tests, demo).
#[derive(Clone)]
pub struct SimCertificate {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub certificate_der: Vec<u8>,
}

impl SimCertificate {
    /// A new self-signed RSA-2048 certificate.
    pub fn generate() -> Result<Self, CertificateError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .map_err(|e| CertificateError(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec!["b2b-convert-simulator".to_owned()])
            .map_err(|e| CertificateError(e.to_string()))?;
        let certificate = params
            .self_signed(&key)
            .map_err(|e| CertificateError(e.to_string()))?;
        Ok(Self {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
            certificate_der: certificate.der().to_vec(),
        })
    }

    /// One certificate per process (RSA key generation is slow; tests share it).
    pub fn shared() -> Result<&'static Self, CertificateError> {
        static SHARED: OnceLock<Result<SimCertificate, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::generate().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| CertificateError(e.clone()))
    }

    pub fn thumbprint_sha256(&self) -> String {
        thumbprint_sha256(&self.certificate_der)
    }

    pub fn thumbprint_sha1(&self) -> String {
        thumbprint_sha1(&self.certificate_der)
    }

    /// Signs a client assertion (test helper; the real client builds its own).
    ///
    /// `alg` PS256 puts `x5t#S256` in the header, RS256 puts `x5t`.
    pub fn sign_assertion(
        &self,
        alg: Algorithm,
        claims: &serde_json::Value,
    ) -> Result<String, CertificateError> {
        let mut header = Header::new(alg);
        header.typ = Some("JWT".to_owned());
        if alg == Algorithm::RS256 {
            header.x5t = Some(self.thumbprint_sha1());
        } else {
            header.x5t_s256 = Some(self.thumbprint_sha256());
        }
        let key = EncodingKey::from_rsa_pem(self.private_key_pem.as_bytes())
            .map_err(|e| CertificateError(e.to_string()))?;
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| CertificateError(e.to_string()))
    }
}

impl std::fmt::Debug for SimCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCertificate")
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("private_key_pem", &"[REDACTED]")
            .finish()
    }
}

/// Creating the throwaway certificate failed.
#[derive(Debug, thiserror::Error)]
#[error("could not create the simulator's certificate: {0}")]
pub struct CertificateError(String);
