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

/// Roster's own settings (Rocket's own keys are read by Rocket).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// bcrypt work factor for new password hashes (4..=31).
    pub bcrypt_cost: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { bcrypt_cost: 12 }
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
        let settings = Settings { bcrypt_cost: 3 };
        assert!(settings.validate().is_err());
    }
}
