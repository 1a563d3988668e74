//! Access tokens (JWT, HS256 only) and opaque refresh tokens.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Expiry is honoured to within this many seconds (jsonwebtoken's default
/// leeway is a minute).
const LEEWAY_SECONDS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's id, as a string.
    pub sub: String,
    /// The session (refresh-token family) the token was issued in.
    pub sid: String,
    /// The user's token version when issued; bumping it ends every session.
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// Signs and verifies access tokens with `jwt_secret`'s UTF-8 bytes.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }
    }

    /// Signs and verifies one token, so a broken crypto set-up fails at
    /// start rather than at the first login.
    pub fn self_test(&self) -> Result<(), String> {
        let (token, _) = self
            .issue(0, "self-test", 0)
            .map_err(|e| format!("cannot sign tokens: {e}"))?;
        self.verify(&token)
            .map(drop)
            .map_err(|e| format!("cannot verify tokens: {e}"))
    }

    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    /// A new access token for `user_id` in session `sid`, with its claims.
    pub fn issue(&self, user_id: i64, sid: &str, version: i64) -> Result<(String, Claims), String> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            sid: sid.to_owned(),
            ver: version,
            iat: now,
            exp: now.saturating_add(self.access_ttl as i64),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())?;
        Ok((token, claims))
    }

    /// Verifies the signature, the algorithm (HS256 only: `none` and every
    /// other `alg` fail) and the expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

/// A new opaque refresh token: 256 random bits, hex-encoded.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// What the database stores of a refresh token: its SHA-256, never the
/// token itself.
pub fn hash_refresh_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A random secret for debug runs without `jwt_secret`.
pub fn random_secret() -> String {
    new_refresh_token()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let keys = TokenKeys::new(SECRET, 60);
        keys.self_test().expect("self test");
        let (token, claims) = keys.issue(42, "sid-1", 3).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.user_id(), Some(42));
        assert_eq!(verified.exp - verified.iat, 60);
    }

    #[test]
    fn another_secret_or_a_tampered_token_fails() {
        let keys = TokenKeys::new(SECRET, 60);
        let (token, _) = keys.issue(1, "s", 0).unwrap();
        let other = TokenKeys::new(b"another-secret-another-secret-xx", 60);
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify(&tampered).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_ne!(hash_refresh_token(&a), a);
    }
}
