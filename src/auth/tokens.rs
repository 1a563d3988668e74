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

/// Signs access tokens with `jwt_secret`'s UTF-8 bytes and verifies them
/// with it or any of `jwt_verify_secrets`, so keys can be rotated without
/// logging anyone out. Each token names its key in the `kid` header: the
/// start of the SHA-256 of the secret, the same on every instance and
/// telling nothing of the secret.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    /// Every key that verifies, by `kid`, the signing key's first.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    access_ttl: u64,
}

/// The `kid` of `secret`.
fn key_id(secret: &[u8]) -> String {
    hex(&Sha256::digest(secret)[..8])
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
        Self::rotating(secret, &[], access_ttl)
    }

    /// Keys that sign with `secret` and also verify with `verify_only`.
    pub fn rotating(secret: &[u8], verify_only: &[&[u8]], access_ttl: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        let decoding = std::iter::once(secret)
            .chain(verify_only.iter().copied())
            .map(|key| (key_id(key), DecodingKey::from_secret(key)))
            .collect();
        TokenKeys {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding,
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
        let header = Header {
            kid: Some(self.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        let token =
            jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| e.to_string())?;
        Ok((token, claims))
    }

    /// Verifies the signature with the key the token names (`kid`; a
    /// token without one, from before keys had ids, with the signing key),
    /// the algorithm (HS256 only: `none` and every other `alg` fail) and the
    /// expiry. A `kid` of no key here is invalid.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let key = match header.kid.as_deref() {
            None => Some(&self.decoding[0].1),
            Some(kid) => self
                .decoding
                .iter()
                .find(|(id, _)| id == kid)
                .map(|(_, key)| key),
        };
        let key = key.ok_or_else(|| TokenError::Invalid("signed with an unknown key".into()))?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
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
    fn tokens_name_their_key_and_verify_while_it_is_listed() {
        const NEW: &[u8] = b"fedcba9876543210fedcba9876543210";
        let old = TokenKeys::new(SECRET, 60);
        let (old_token, _) = old.issue(1, "s", 0).unwrap();
        let header = jsonwebtoken::decode_header(&old_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key_id(SECRET).as_str()));
        assert_eq!(key_id(SECRET).len(), 16);

        // New as verify-only, then new signing with old verify-only.
        let adding = TokenKeys::rotating(SECRET, &[NEW], 60);
        let switched = TokenKeys::rotating(NEW, &[SECRET], 60);
        let (new_token, _) = switched.issue(1, "s", 0).unwrap();
        for keys in [&adding, &switched] {
            assert!(keys.verify(&old_token).is_ok());
            assert!(keys.verify(&new_token).is_ok());
        }
        assert!(old.verify(&new_token).is_err(), "unknown kid");
        // Old dropped: its tokens end.
        let done = TokenKeys::new(NEW, 60);
        assert!(done.verify(&new_token).is_ok());
        assert!(done.verify(&old_token).is_err());

        // A token naming a listed kid but signed with another key fails.
        let forged_header = Header {
            kid: Some(key_id(NEW)),
            ..Header::new(Algorithm::HS256)
        };
        let (_, claims) = old.issue(1, "s", 0).unwrap();
        let forged = jsonwebtoken::encode(
            &forged_header,
            &claims,
            &EncodingKey::from_secret(b"attacker-attacker-attacker-attack"),
        )
        .unwrap();
        assert!(switched.verify(&forged).is_err());
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
