//! Authentication: who is calling. API tokens (kept only as SHA-256, compared in
//! constant time), JSON Web Tokens (explicit algorithms, each with its own key; `exp`
//! required, `iss`/`aud` when configured), and client certificates (mTLS), whose
//! subject's common name is the principal.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, JwtConfig};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name policies see.
    pub name: String,
    /// Groups or roles.
    pub groups: Vec<String>,
    /// When the credential stops being valid (a JWT's `exp`): long-lived streams end
    /// then.
    pub expires_at: Option<SystemTime>,
}

impl Principal {
    /// The caller when authentication is off.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            groups: Vec::new(),
            expires_at: None,
        }
    }
}

/// A client certificate's identity, set on the request by the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity(pub String);

/// Why credentials were refused. The message goes back to the caller, so it names
/// the problem without echoing secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials at all.
    Missing,
    /// Credentials that are not valid.
    Invalid(String),
}

/// Checks credentials.
pub struct Authenticator {
    /// SHA-256 of each token, with its principal.
    tokens: Vec<([u8; 32], Principal)>,
    jwt: Option<Jwt>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

struct Jwt {
    keys: HashMap<Algorithm, DecodingKey>,
    config: JwtConfig,
}

impl Authenticator {
    /// From `[auth]`; bad hashes, unknown algorithms and unreadable keys are errors.
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let mut tokens = Vec::new();
        for t in &config.tokens {
            let mut hash = [0u8; 32];
            let bytes = hex_decode(&t.sha256)
                .filter(|b| b.len() == 32)
                .with_context(|| {
                    format!(
                        "[auth] token of '{}': sha256 must be 64 hex digits",
                        t.principal
                    )
                })?;
            hash.copy_from_slice(&bytes);
            tokens.push((
                hash,
                Principal {
                    name: t.principal.clone(),
                    groups: t.groups.clone(),
                    expires_at: None,
                },
            ));
        }
        let jwt = config.jwt.as_ref().map(Jwt::new).transpose()?;
        Ok(Self { tokens, jwt })
    }

    /// The principal behind a request's `Authorization` header or client certificate.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client: Option<&ClientIdentity>,
    ) -> Result<Principal, Refusal> {
        let Some(header) = authorization else {
            return client
                .map(|c| Principal {
                    name: c.0.clone(),
                    groups: Vec::new(),
                    expires_at: None,
                })
                .ok_or(Refusal::Missing);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Refusal::Invalid("use 'Authorization: Bearer <token>'".into()))?;
        if token.bytes().filter(|&b| b == b'.').count() == 2
            && let Some(jwt) = &self.jwt
        {
            return jwt.verify(token);
        }
        self.api_token(token)
    }

    /// Compares the token's hash with every configured one, in constant time each,
    /// without stopping at a match.
    fn api_token(&self, token: &str) -> Result<Principal, Refusal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, principal) in &self.tokens {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(principal);
            }
        }
        found
            .cloned()
            .ok_or_else(|| Refusal::Invalid("unknown token".into()))
    }
}

impl Jwt {
    fn new(c: &JwtConfig) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        if c.algorithms.is_empty() {
            bail!("[auth.jwt] algorithms must list at least one of HS256, RS256, ES256");
        }
        for name in &c.algorithms {
            let (alg, key) = match name.as_str() {
                "HS256" => {
                    let secret = c
                        .hs256_secret
                        .as_deref()
                        .context("[auth.jwt] HS256 needs hs256_secret")?;
                    if secret.len() < 32 {
                        bail!("[auth.jwt] hs256_secret must be at least 32 bytes");
                    }
                    (
                        Algorithm::HS256,
                        DecodingKey::from_secret(secret.as_bytes()),
                    )
                }
                "RS256" => {
                    let path = c
                        .rs256_public_key
                        .as_ref()
                        .context("[auth.jwt] RS256 needs rs256_public_key")?;
                    let pem = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    (
                        Algorithm::RS256,
                        DecodingKey::from_rsa_pem(&pem).with_context(|| {
                            format!("{} is not an RSA public key", path.display())
                        })?,
                    )
                }
                "ES256" => {
                    let path = c
                        .es256_public_key
                        .as_ref()
                        .context("[auth.jwt] ES256 needs es256_public_key")?;
                    let pem = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    (
                        Algorithm::ES256,
                        DecodingKey::from_ec_pem(&pem).with_context(|| {
                            format!("{} is not an EC public key", path.display())
                        })?,
                    )
                }
                other => {
                    bail!("[auth.jwt] algorithm '{other}' is not supported (HS256, RS256, ES256)")
                }
            };
            keys.insert(alg, key);
        }
        Ok(Self {
            keys,
            config: c.clone(),
        })
    }

    fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let invalid = |m: String| Refusal::Invalid(m);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("malformed JWT: {e}")))?;
        // The key is chosen by the header's algorithm among the configured ones only:
        // `none` and unlisted algorithms have no key, so they are refused here.
        let key = self
            .keys
            .get(&header.alg)
            .ok_or_else(|| invalid(format!("JWT algorithm {:?} is not accepted", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway_s;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        match &self.config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            key,
            &validation,
        )
        .map_err(|e| invalid(format!("JWT refused: {e}")))?;
        let claims = data.claims;
        let name = claims
            .get(&self.config.principal_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "JWT has no '{}' claim",
                    self.config.principal_claim
                ))
            })?
            .to_string();
        let groups = claims
            .get(&self.config.groups_claim)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_u64())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        Ok(Principal {
            name,
            groups,
            expires_at,
        })
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn sha(t: &str) -> String {
        Sha256::digest(t.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn tokens_are_matched_by_hash() {
        let a = Authenticator::new(&AuthConfig {
            enabled: true,
            tokens: vec![TokenConfig {
                principal: "alice".into(),
                sha256: sha("s3cret-token"),
                groups: vec!["team-a".into()],
            }],
            jwt: None,
        })
        .unwrap();
        let p = a.authenticate(Some("Bearer s3cret-token"), None).unwrap();
        assert_eq!(p.name, "alice");
        assert_eq!(p.groups, ["team-a"]);
        assert_eq!(a.authenticate(None, None), Err(Refusal::Missing));
        for bad in [
            "Bearer s3cret-tokeN",
            "Bearer ",
            "Basic abc",
            "s3cret-token",
            "Bearer s3cret-token2",
        ] {
            assert!(
                matches!(a.authenticate(Some(bad), None), Err(Refusal::Invalid(_))),
                "{bad}"
            );
        }
        let mtls = ClientIdentity("svc-1".into());
        assert_eq!(a.authenticate(None, Some(&mtls)).unwrap().name, "svc-1");
    }

    #[test]
    fn bad_token_config_is_an_error() {
        let bad = AuthConfig {
            enabled: true,
            tokens: vec![TokenConfig {
                principal: "a".into(),
                sha256: "abc".into(),
                groups: vec![],
            }],
            jwt: None,
        };
        assert!(Authenticator::new(&bad).is_err());
    }
}
