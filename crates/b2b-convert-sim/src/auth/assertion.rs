//! Client assertions (certificate credentials, NOTES §7.1): thumbprint lookup of the
//! registered certificate, signature verification and the `aud`/`iss`/`sub`/`exp`/`nbf`/`jti`
//! checks. It must not mint tokens.

use std::collections::HashSet;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{Auth, TokenError, lock, token_error};
use crate::clock::SimClock;
use crate::directory::TenantFacts;
use crate::model::AppRegistration;

impl Auth {
    #[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
    pub(super) fn verify_assertion(
        &self,
        app: &AppRegistration,
        assertion: &str,
        facts: &TenantFacts,
        tenant: &str,
        login_url: &str,
        clock: &SimClock,
    ) -> Result<(), TokenError> {
        let malformed = |why: &str| {
            token_error(
                401,
                "invalid_client",
                50027,
                format!("JWT token is invalid or malformed: {why}"),
            )
        };
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|e| malformed(&e.to_string()))?;
        let config = self.config();
        let registered: Vec<(String, Vec<u8>)> = app
            .certificates
            .iter()
            .filter_map(|pem| pem_der(pem).map(|der| (pem.clone(), der)))
            .collect();
        let (presented, candidate) = match header.alg {
            Algorithm::PS256 | Algorithm::RS256 => {
                if let Some(x5t256) = &header.x5t_s256 {
                    (
                        x5t256.clone(),
                        registered
                            .iter()
                            .find(|(_, der)| &thumbprint_sha256(der) == x5t256),
                    )
                } else if let Some(x5t) = header
                    .x5t
                    .as_ref()
                    .filter(|_| header.alg == Algorithm::RS256 && config.accept_rs256_x5t)
                {
                    (
                        x5t.clone(),
                        registered
                            .iter()
                            .find(|(_, der)| &thumbprint_sha1(der) == x5t),
                    )
                } else {
                    return Err(malformed(
                        "the header has no x5t#S256 (or, for RS256, x5t) certificate thumbprint",
                    ));
                }
            }
            other => {
                return Err(malformed(&format!(
                    "unsupported signing algorithm {other:?}; use PS256 (or RS256)"
                )));
            }
        };
        let Some((pem, _)) = candidate else {
            return Err(token_error(
                401,
                "invalid_client",
                700_027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{presented}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                    app.client_id
                ),
            ));
        };
        let key =
            DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| malformed(&e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
            .map_err(|_| {
                token_error(
                    401,
                    "invalid_client",
                    700_027,
                    "Client assertion failed signature validation.",
                )
            })?;
        let claims = data.claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
        let audiences: Vec<String> = [tenant, facts.tenant_id.as_str()]
            .iter()
            .flat_map(|t| {
                [
                    format!("{login_url}/{t}/oauth2/v2.0/token"),
                    format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"),
                ]
            })
            .collect();
        match text("aud") {
            Some(aud) if audiences.iter().any(|a| a.eq_ignore_ascii_case(&aud)) => {}
            other => {
                return Err(malformed(&format!(
                    "the audience claim {other:?} must be the token endpoint, e.g. '{}'",
                    audiences[0]
                )));
            }
        }
        if text("iss").as_deref() != Some(app.client_id.as_str())
            || text("sub").as_deref() != Some(app.client_id.as_str())
        {
            return Err(token_error(
                401,
                "invalid_client",
                700_021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
            ));
        }
        let now = clock.now_secs();
        let skew = config.assertion_clock_skew.as_secs();
        let (Some(exp), Some(nbf)) = (number("exp"), number("nbf")) else {
            return Err(malformed("the exp and nbf claims are required"));
        };
        if exp + skew < now || nbf > now + skew {
            return Err(token_error(
                401,
                "invalid_client",
                700_024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                    crate::generate::format_unix(i64::try_from(now).unwrap_or(0)),
                    crate::generate::format_unix(i64::try_from(nbf).unwrap_or(0)),
                    crate::generate::format_unix(i64::try_from(exp).unwrap_or(0)),
                ),
            ));
        }
        let Some(jti) = text("jti") else {
            return Err(malformed("the jti claim is required"));
        };
        if !lock(&self.used_assertions).insert(format!("{}/{jti}", app.client_id)) {
            return Err(token_error(
                401,
                "invalid_client",
                700_025,
                "Client assertion has already been used (replayed jti).",
            ));
        }
        Ok(())
    }
}

/// The DER bytes of the first PEM block.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Base64url SHA-256 thumbprint (`x5t#S256`).
pub fn thumbprint_sha256(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Base64url SHA-1 thumbprint (`x5t`).
pub fn thumbprint_sha1(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}
