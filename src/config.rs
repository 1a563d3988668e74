//! The one place that reads configuration.
//!
//! Roster's settings live in Rocket's figment: built-in defaults, then
//! `Rocket.toml` (optional), then `ROCKET_*` variables, then `DATABASE_URL`.
//! The typed [`Settings`] are extracted once at ignite and kept as managed
//! state.

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::{Deserialize, Serialize};

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://roster.db?mode=rwc";

/// The shortest `jwt_secret` accepted: 256 bits, HS256's key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Roster's own settings (Rocket's own keys are read by Rocket).
#[derive(Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// bcrypt work factor for new password hashes (4..=31).
    pub bcrypt_cost: u32,
    /// The HS256 key for access tokens (its UTF-8 bytes). Required, at least
    /// 32 bytes, in the release profile; debug makes a random one per start.
    pub jwt_secret: Option<String>,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bcrypt_cost: 12,
            jwt_secret: None,
            access_token_ttl: 1800,
            refresh_token_ttl: 1_209_600,
        }
    }
}

/// Never print the secret.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .finish()
    }
}

impl Settings {
    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!(
                "bcrypt_cost must be between 4 and 31, got {}",
                self.bcrypt_cost
            ));
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "jwt_secret must be at least {MIN_SECRET_BYTES} bytes (it has {}); \
                     generate one with: openssl rand -hex 32",
                    secret.len()
                ));
            }
        }
        // Up to ten years: tokens stay well within the timestamp range.
        const MAX_TTL: u64 = 10 * 365 * 24 * 3600;
        for (name, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
        ] {
            if !(1..=MAX_TTL).contains(&ttl) {
                return Err(format!(
                    "{name} must be between 1 and {MAX_TTL} seconds, got {ttl}"
                ));
            }
        }
        Ok(())
    }

    /// The secret the release profile insists on.
    pub fn require_secret(&self, profile: &str) -> Result<(), String> {
        if profile == "release" && self.jwt_secret.is_none() {
            return Err(format!(
                "the release profile needs a jwt_secret of at least {MIN_SECRET_BYTES} bytes: \
                 set ROCKET_JWT_SECRET (for example to the output of `openssl rand -hex 32`) \
                 or jwt_secret in Rocket.toml"
            ));
        }
        Ok(())
    }
}

/// Built-in defaults for every key Roster reads, including Rocket keys whose
/// Rocket default is wrong for this service.
fn defaults() -> Figment {
    Figment::new()
        .merge(Serialized::defaults(Settings::default()))
        // A client must not choose its own address with a header (API.md "Limits").
        .merge(Serialized::default("ip_header", false))
        // Let in-flight requests finish on SIGTERM/SIGINT.
        .merge(Serialized::default("shutdown.grace", 10))
        .merge(Serialized::default("shutdown.mercy", 5))
        .merge(Serialized::default("limits.json", "1MiB"))
        .merge(Serialized::default(
            "databases.roster.url",
            DEFAULT_DATABASE_URL,
        ))
        // The pool gives up waiting for a connection after this many seconds,
        // so a dead database becomes a prompt 503, not a hang.
        .merge(Serialized::default("databases.roster.connect_timeout", 3))
}

/// The figment the `roster` binary runs with.
pub fn figment() -> Figment {
    let mut figment = Figment::from(rocket::Config::default())
        .merge(defaults())
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global());
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if !url.trim().is_empty() {
            figment = figment.merge(("databases.roster.url", url));
        }
    }
    figment.select(Profile::from_env_or(
        "ROCKET_PROFILE",
        rocket::Config::DEFAULT_PROFILE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_disable_the_ip_header_and_extend_the_grace_period() {
        let config: rocket::Config = figment().extract().expect("default config");
        assert!(config.ip_header.is_none());
        assert!(config.shutdown.grace >= 10);
    }

    #[test]
    fn settings_defaults_are_valid() {
        let settings: Settings = figment().extract().expect("settings");
        settings.validate().expect("valid defaults");
    }

    #[test]
    fn out_of_range_bcrypt_cost_is_refused() {
        let settings = Settings {
            bcrypt_cost: 3,
            ..Settings::default()
        };
        assert!(settings.validate().is_err());
    }

    #[test]
    fn short_secrets_are_refused_and_release_needs_one() {
        let short = Settings {
            jwt_secret: Some("x".repeat(31)),
            ..Settings::default()
        };
        assert!(short.validate().unwrap_err().contains("at least 32 bytes"));
        let none = Settings::default();
        assert!(none.require_secret("debug").is_ok());
        assert!(none
            .require_secret("release")
            .unwrap_err()
            .contains("ROCKET_JWT_SECRET"));
        let good = Settings {
            jwt_secret: Some("x".repeat(32)),
            ..Settings::default()
        };
        assert!(good.validate().is_ok() && good.require_secret("release").is_ok());
        assert!(
            !format!("{good:?}").contains("xxxx"),
            "Debug hides the secret"
        );
    }
}
