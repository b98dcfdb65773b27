//! Certificate credentials: read an RSA key and its certificate from the bytes of a PEM or
//! PKCS#12 file (which `config` reads) and sign the client-assertion JWT the token endpoint
//! expects (NOTES.md §7.1).
//!
//! PS256 with `x5t#S256` is what Microsoft documents today; RS256 with a SHA-1 `x5t` is the
//! older form, kept as a setting. The key never leaves this module.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Error;

/// The signature of the client assertion. Written as its JWT `alg` name, which is also how
/// the setting `auth.assertion_algorithm` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssertionAlgorithm {
    /// RSA-PSS with `x5t#S256`: what Microsoft documents today.
    #[serde(rename = "PS256")]
    Ps256,
    /// RSA PKCS#1 v1.5 with a SHA-1 `x5t`: the older, still common form.
    #[serde(rename = "RS256")]
    Rs256,
}

/// How long a client assertion is valid; Microsoft suggests at most 5–10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_mins(10);

/// Signs client assertions with one certificate's private key.
pub struct AssertionSigner {
    key: RsaKeyPair,
    /// base64url SHA-256 of the certificate's DER (`x5t#S256`).
    thumbprint_sha256: String,
    /// base64url SHA-1 of the certificate's DER (`x5t`), for RS256.
    thumbprint_sha1: String,
    algorithm: AssertionAlgorithm,
    /// The certificate chain, leaf first, standard base64 of each DER (`x5c`).
    chain: Vec<String>,
    /// Send `x5c` in the assertion header (`AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`), for
    /// subject-name/issuer authentication.
    send_chain: bool,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("x5t#S256", &self.thumbprint_sha256)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// Reads the contents of a PEM file (certificate + private key) or of a PKCS#12 file
    /// (`.pfx`/`.p12`, opened with `password`). The error says what is wrong with the file,
    /// never what is in it.
    pub fn from_file_bytes(
        bytes: &[u8],
        password: Option<&str>,
        algorithm: AssertionAlgorithm,
    ) -> Result<Self, String> {
        let (key_der, chain) = if bytes.starts_with(b"-----") || is_pem(bytes) {
            from_pem(bytes)?
        } else {
            from_pkcs12(bytes, password.unwrap_or(""))?
        };
        let mut signer = Self::from_der(&key_der, &chain[0], algorithm)?;
        signer.chain = chain.iter().map(|der| STANDARD.encode(der)).collect();
        Ok(signer)
    }

    /// Whether assertions carry the certificate chain in an `x5c` header.
    #[must_use]
    pub fn with_certificate_chain(mut self, send: bool) -> Self {
        self.send_chain = send;
        self
    }

    /// Builds a signer from a DER private key (PKCS#8 or PKCS#1) and the DER certificate.
    pub fn from_der(
        key_der: &PrivateKeyDer<'_>,
        cert_der: &[u8],
        algorithm: AssertionAlgorithm,
    ) -> Result<Self, String> {
        let key = match key_der {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err("the private key is not an RSA key".to_owned()),
        }
        .map_err(|e| format!("the private key is not a usable RSA key: {e}"))?;
        Ok(Self {
            key,
            thumbprint_sha256: URL_SAFE_NO_PAD
                .encode(digest::digest(&digest::SHA256, cert_der).as_ref()),
            thumbprint_sha1: URL_SAFE_NO_PAD
                .encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der).as_ref()),
            algorithm,
            chain: vec![STANDARD.encode(cert_der)],
            send_chain: false,
        })
    }

    /// The signed client assertion for `client_id` at the token endpoint `audience`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<String, Error> {
        let mut header = match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_sha256})
            }
            AssertionAlgorithm::Rs256 => {
                json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint_sha1})
            }
        };
        if self.send_chain {
            header["x5c"] = json!(self.chain);
        }
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": issued,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &dyn signature::RsaEncoding = match self.algorithm {
            AssertionAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
        };
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                padding,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::Signing)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(b"-----BEGIN".len())
        .any(|w| w == b"-----BEGIN")
}

/// The key and the certificates in file order (the first is the key's own certificate).
fn from_pem(bytes: &[u8]) -> Result<(PrivateKeyDer<'static>, Vec<Vec<u8>>), String> {
    let key = PrivateKeyDer::from_pem_slice(bytes)
        .map_err(|e| format!("no private key in the PEM file: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(bytes)
        .map(|cert| cert.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("unreadable certificate in the PEM file: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the PEM file (it needs the certificate and its key)".into());
    }
    Ok((key, chain))
}

fn from_pkcs12(
    bytes: &[u8],
    password: &str,
) -> Result<(PrivateKeyDer<'static>, Vec<Vec<u8>>), String> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| {
        format!(
            "not a readable PKCS#12 file ({e}); check AZURE_CLIENT_CERTIFICATE_PASSWORD or \
             auth.certificate_password_file"
        )
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the PKCS#12 file holds no private key with its certificate")?;
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    if certs.is_empty() {
        return Err("the PKCS#12 file's key has no certificate".into());
    }
    let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
    Ok((key, certs))
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_lc_rs::signature::{KeyPair, UnparsedPublicKey};
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};

    use super::*;

    /// A throwaway RSA key with a self-signed certificate, as PEM (test fixture).
    pub const TEST_PEM: &str = include_str!("../../../tests/fixtures/certificate/test-cert.pem");

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn signer(algorithm: AssertionAlgorithm) -> AssertionSigner {
        let (key, chain) = from_pem(TEST_PEM.as_bytes()).unwrap();
        AssertionSigner::from_der(&key, &chain[0], algorithm).unwrap()
    }

    #[test]
    fn ps256_assertions_carry_the_documented_header_and_claims_and_verify() {
        let signer = signer(AssertionAlgorithm::Ps256);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = signer
            .assertion("client-1", "https://login.example/t/oauth2/v2.0/token", now)
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t#S256"].as_str().unwrap().len(), 43);
        let claims = decode_part(parts[1]);
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(claims["nbf"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_000_600);

        let public = signer.key.public_key().as_ref().to_vec();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let message = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &public)
            .verify(message.as_bytes(), &signature)
            .expect("the PS256 signature verifies with the certificate's key");
    }

    #[test]
    fn rs256_assertions_use_the_sha1_thumbprint() {
        let signer = signer(AssertionAlgorithm::Rs256);
        let jwt = signer.assertion("c", "aud", SystemTime::now()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t"].as_str().unwrap().len(), 27);
        let public = signer.key.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn each_assertion_has_a_fresh_jti() {
        let signer = signer(AssertionAlgorithm::Ps256);
        let jti = |jwt: String| decode_part(jwt.split('.').nth(1).unwrap())["jti"].clone();
        let now = SystemTime::now();
        assert_ne!(
            jti(signer.assertion("c", "a", now).unwrap()),
            jti(signer.assertion("c", "a", now).unwrap())
        );
    }

    #[test]
    fn pkcs12_files_load_with_their_password() {
        let pfx = include_bytes!("../../../tests/fixtures/certificate/test-cert.pfx");
        let signer =
            AssertionSigner::from_file_bytes(pfx, Some("test-password"), AssertionAlgorithm::Ps256)
                .unwrap();
        let pem_signer = self::signer(AssertionAlgorithm::Ps256);
        assert_eq!(signer.thumbprint_sha256, pem_signer.thumbprint_sha256);
        let wrong = AssertionSigner::from_file_bytes(pfx, Some("wrong"), AssertionAlgorithm::Ps256)
            .unwrap_err();
        assert!(
            wrong.contains("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
            "{wrong}"
        );
        assert!(
            !wrong.contains("wrong\""),
            "the password is not echoed: {wrong}"
        );
    }

    #[test]
    fn a_pem_without_a_key_says_so() {
        let cert_only: String = TEST_PEM
            .split_inclusive('\n')
            .skip_while(|l| !l.contains("BEGIN CERTIFICATE"))
            .collect();
        let err = from_pem(cert_only.as_bytes()).unwrap_err();
        assert!(err.contains("no private key"), "{err}");
    }

    #[test]
    fn the_certificate_chain_is_sent_only_on_request() {
        let without = signer(AssertionAlgorithm::Ps256);
        let assertion = without.assertion("c", "aud", SystemTime::now()).unwrap();
        let header = decode_part(assertion.split('.').next().unwrap());
        assert!(header.get("x5c").is_none(), "{header}");

        let with =
            AssertionSigner::from_file_bytes(TEST_PEM.as_bytes(), None, AssertionAlgorithm::Ps256)
                .unwrap()
                .with_certificate_chain(true);
        let assertion = with.assertion("c", "aud", SystemTime::now()).unwrap();
        let header = decode_part(assertion.split('.').next().unwrap());
        let x5c = header["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 1);
        let (_, chain) = from_pem(TEST_PEM.as_bytes()).unwrap();
        assert_eq!(
            x5c[0],
            STANDARD.encode(&chain[0]),
            "standard base64 of the DER, leaf first"
        );
    }
}
