//! Values that must never reach a log: their `Debug` redacts them, so the
//! structs holding them (settings, passwords) simply derive `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string (`jwt_secret`, a password): `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL that may carry credentials (`smtp://user:password@host:587`):
/// `Debug` shows only what follows the last `@`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct CredentialUrl(String);

impl CredentialUrl {
    pub fn new(value: impl Into<String>) -> Self {
        CredentialUrl(value.into())
    }

    /// The whole URL, credentials included, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CredentialUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.rsplit_once('@') {
            Some((_, host)) => write!(f, "\"…@{host}\""),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// `url` with the password of its user info replaced by `***`
/// (`postgres://roster:***@db:5432/roster`), for printing.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let password = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret_or_a_password() {
        let secret = Secret::new("x".repeat(40));
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose().len(), 40);

        let url = CredentialUrl::new("smtp://mailer:hunter2@mail.example.com:587");
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("mailer"),
            "{shown}"
        );
        assert!(shown.contains("mail.example.com:587"), "{shown}");
        assert_eq!(
            format!("{:?}", CredentialUrl::new("smtp://localhost:25")),
            "\"smtp://localhost:25\""
        );
    }

    #[test]
    fn urls_print_without_their_password() {
        assert_eq!(
            redact_url("postgres://roster:hunter2@db.example.com:5432/roster?sslmode=require"),
            "postgres://roster:***@db.example.com:5432/roster?sslmode=require"
        );
        assert_eq!(redact_url("smtp://mail:25"), "smtp://mail:25");
        assert_eq!(
            redact_url("redis://:pw@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(
            redact_url("sqlite://roster.db?mode=rwc"),
            "sqlite://roster.db?mode=rwc"
        );
        assert_eq!(
            redact_url("smtp://user@host:587/x@y"),
            "smtp://user@host:587/x@y",
            "an @ after the host is not user info"
        );
    }
}
