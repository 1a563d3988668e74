//! The one place that reads configuration.
//!
//! Roster's settings live in Rocket's figment: built-in defaults, then
//! `Rocket.toml` (optional), then `ROCKET_*` variables, then `DATABASE_URL`.
//! [`Settings::load`] extracts and checks them once, before the application
//! is built; they are then managed state.

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::{Deserialize, Serialize};

pub use crate::secret::{CredentialUrl, Secret};

mod keys;
mod sections;

pub use sections::{
    CorsSettings, LogFormat, MetricsSettings, RateLimitBackend, RateLimitSettings, S3Settings,
    ShutdownSettings, SmtpSettings, TemplateSettings, UploadBackend, UploadSettings,
};

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://roster.db?mode=rwc";

/// The shortest `jwt_secret` accepted: 256 bits, HS256's key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// A configuration Roster refuses to start with, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Roster's own settings (Rocket's own keys are read by Rocket).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// bcrypt work factor for new password hashes (4..=31).
    pub bcrypt_cost: u32,
    /// Seconds a request waits for a free password hasher before 503.
    pub bcrypt_queue_timeout: u64,
    /// Open sessions per user; a login beyond ends the oldest.
    pub max_sessions_per_user: u32,
    /// The HS256 key for access tokens (its UTF-8 bytes). Required, at least
    /// 32 bytes, in the release profile; debug makes a random one per start.
    pub jwt_secret: Option<Secret>,
    /// More keys that verify access tokens (never sign), for rotating
    /// `jwt_secret` without logging anyone out.
    pub jwt_verify_secrets: Vec<Secret>,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u64,
    pub rate_limit: RateLimitSettings,
    /// Addresses or CIDRs of proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub cors: CorsSettings,
    pub smtp: SmtpSettings,
    pub upload: UploadSettings,
    /// Run pending migrations when serving starts (else `roster migrate`
    /// must have run them).
    pub migrate_on_start: bool,
    /// Roster's key in Rocket's `shutdown` table.
    pub shutdown: ShutdownSettings,
    /// `text` or `json` lines on standard output.
    pub log_format: LogFormat,
    pub metrics: MetricsSettings,
    /// The base of links in emails (`{public_url}/verify-email?token=...`):
    /// where the product's pages that take those tokens are served.
    pub public_url: String,
    /// Seconds a password reset token is good for.
    pub password_reset_ttl: u64,
    /// Seconds an email verification token is good for.
    pub verify_email_ttl: u64,
    /// Login refused (403 `Email not verified`) until the email is verified.
    pub require_verified_email: bool,
    /// Seconds during which a just-spent refresh token still gets a new pair
    /// in its session (two tabs refreshing at once); 0: any reuse ends the
    /// session.
    pub refresh_reuse_interval: u64,
    pub templates: TemplateSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bcrypt_cost: 12,
            bcrypt_queue_timeout: 5,
            max_sessions_per_user: 50,
            jwt_secret: None,
            jwt_verify_secrets: Vec::new(),
            access_token_ttl: 1800,
            refresh_token_ttl: 1_209_600,
            rate_limit: RateLimitSettings::default(),
            trusted_proxies: Vec::new(),
            cors: CorsSettings::default(),
            smtp: SmtpSettings::default(),
            upload: UploadSettings::default(),
            migrate_on_start: true,
            shutdown: ShutdownSettings::default(),
            log_format: LogFormat::default(),
            metrics: MetricsSettings::default(),
            public_url: "http://127.0.0.1:8000".to_owned(),
            password_reset_ttl: 3600,
            verify_email_ttl: 7 * 24 * 3600,
            require_verified_email: false,
            refresh_reuse_interval: 0,
            templates: TemplateSettings::default(),
        }
    }
}

impl Settings {
    /// Reads every setting from `figment`, Rocket's own included, and checks
    /// them: the application is built only from settings that passed.
    pub fn load(figment: &Figment) -> Result<Settings, ConfigError> {
        let settings = Settings::read(figment)?;
        settings
            .require_outside_debug(figment.profile().as_str().as_str())
            .map_err(ConfigError)?;
        Ok(settings)
    }

    /// What [`Settings::load`] checks but the secret, for the commands
    /// that sign no token (`migrate`, `admin create`): no unknown key or
    /// profile section, every value of its type, and valid.
    pub fn read(figment: &Figment) -> Result<Settings, ConfigError> {
        keys::check(figment, &known())?;
        let invalid = |err: rocket::figment::Error| ConfigError(err.to_string());
        check_runtime(figment)?;
        figment
            .extract_inner::<u64>("databases.roster.startup_timeout")
            .map_err(invalid)?;
        let settings: Settings = figment.extract().map_err(invalid)?;
        settings.validate().map_err(ConfigError)?;
        Ok(settings)
    }

    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!(
                "bcrypt_cost must be between 4 and 31, got {}",
                self.bcrypt_cost
            ));
        }
        if let Some(secret) = &self.jwt_secret {
            let secret = secret.expose();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "jwt_secret must be at least {MIN_SECRET_BYTES} bytes (it has {}); \
                     generate one with: openssl rand -hex 32",
                    secret.len()
                ));
            }
        }
        for (i, secret) in self.jwt_verify_secrets.iter().enumerate() {
            if secret.expose().len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "jwt_verify_secrets[{i}] must be at least {MIN_SECRET_BYTES} bytes (it has {})",
                    secret.expose().len()
                ));
            }
        }
        if !(1..=600).contains(&self.bcrypt_queue_timeout) {
            return Err(format!(
                "bcrypt_queue_timeout must be between 1 and 600 seconds, got {}",
                self.bcrypt_queue_timeout
            ));
        }
        if self.shutdown.drain > 300 {
            return Err(format!(
                "shutdown.drain must be at most 300 seconds, got {}",
                self.shutdown.drain
            ));
        }
        if !(1..=10_000).contains(&self.max_sessions_per_user) {
            return Err(format!(
                "max_sessions_per_user must be between 1 and 10000, got {}",
                self.max_sessions_per_user
            ));
        }
        // Up to ten years: tokens stay well within the timestamp range.
        const MAX_TTL: u64 = 10 * 365 * 24 * 3600;
        for (name, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("password_reset_ttl", self.password_reset_ttl),
            ("verify_email_ttl", self.verify_email_ttl),
        ] {
            if !(1..=MAX_TTL).contains(&ttl) {
                return Err(format!(
                    "{name} must be between 1 and {MAX_TTL} seconds, got {ttl}"
                ));
            }
        }
        if self.refresh_reuse_interval > 300 {
            return Err(format!(
                "refresh_reuse_interval must be at most 300 seconds, got {}",
                self.refresh_reuse_interval
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://"))
            || self.public_url.contains(['?', '#', ' '])
        {
            return Err(format!(
                "public_url must be an http:// or https:// URL without query or fragment, got {:?}",
                self.public_url
            ));
        }
        let limits = &self.rate_limit;
        for (name, value) in [
            ("rate_limit.per_minute", limits.per_minute),
            ("rate_limit.login_per_minute", limits.login_per_minute),
            ("rate_limit.register_per_minute", limits.register_per_minute),
            (
                "rate_limit.password_reset_per_hour",
                limits.password_reset_per_hour,
            ),
            (
                "rate_limit.account_email_per_hour",
                limits.account_email_per_hour,
            ),
        ] {
            if value == 0 {
                return Err(format!(
                    "{name} must be at least 1 (set rate_limit.enabled = false to turn limits off)"
                ));
            }
        }
        if self.upload.max_bytes == 0 || self.upload.quota_bytes == 0 {
            return Err("upload.max_bytes and upload.quota_bytes must be at least 1".to_owned());
        }
        if !(1..=3600).contains(&self.upload.idle_timeout) {
            return Err(format!(
                "upload.idle_timeout must be between 1 and 3600 seconds, got {}",
                self.upload.idle_timeout
            ));
        }
        // S3 copies an object into place in one request, which it allows up
        // to 5 GiB.
        const S3_COPY_LIMIT: u64 = 5 << 30;
        if self.upload.backend == UploadBackend::S3 && self.upload.max_bytes > S3_COPY_LIMIT {
            return Err(format!(
                "upload.max_bytes is at most 5 GiB ({S3_COPY_LIMIT}) with upload.backend = \"s3\", got {}",
                self.upload.max_bytes
            ));
        }
        if self.upload.s3.prefix.starts_with('/') || self.upload.s3.prefix.contains("//") {
            return Err(format!(
                "upload.s3.prefix must not start with / or hold //, got {:?}",
                self.upload.s3.prefix
            ));
        }
        if self.smtp.give_up_after == 0 {
            return Err("smtp.give_up_after must be at least 1 second".to_owned());
        }
        if let Some(url) = &self.smtp.url {
            let url = url.expose();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(format!(
                    "smtp.url must start with smtp:// or smtps://, got {:?}",
                    url.split("://").next().unwrap_or_default()
                ));
            }
        }
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(format!(
                "smtp.from {:?} is not an email address",
                self.smtp.from
            ));
        }
        crate::fairings::client_ip::TrustedProxies::parse(&self.trusted_proxies)?;
        crate::fairings::client_ip::Networks::parse("metrics.allow", &self.metrics.allow)?;
        if self.cors.allow_credentials && self.cors.allowed_origins.iter().any(|o| o == "*") {
            return Err(
                "cors: allow_credentials cannot be used with the \"*\" origin; \
                        list the origins that may send credentials"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// What every profile but `debug` insists on: a `jwt_secret`, and an
    /// `smtp.url` unless emails are off (`smtp.enabled = false`), so that
    /// no email is silently logged instead of sent.
    pub fn require_outside_debug(&self, profile: &str) -> Result<(), String> {
        if profile != "debug" && self.jwt_secret.is_none() {
            return Err(format!(
                "the {profile} profile needs a jwt_secret of at least {MIN_SECRET_BYTES} bytes \
                 (only the debug profile makes a random one): set ROCKET_JWT_SECRET (for \
                 example to the output of `openssl rand -hex 32`) or jwt_secret in Rocket.toml"
            ));
        }
        if profile != "debug" && self.smtp.enabled && self.smtp.url.is_none() {
            return Err(format!(
                "the {profile} profile needs smtp.url to send welcome emails (only the debug \
                 profile logs them instead): set ROCKET_SMTP='{{url=\"smtp://host:587\"}}', or \
                 ROCKET_SMTP='{{enabled=false}}' to queue and send none"
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
        // A client must not choose its own address with a header (README, "Rate limits").
        .merge(Serialized::default("ip_header", false))
        // Let in-flight requests finish on SIGTERM/SIGINT.
        .merge(Serialized::default("shutdown.grace", 10))
        .merge(Serialized::default("shutdown.mercy", 5))
        // Signals are Roster's to handle (crate::shutdown): a drain first.
        .merge(Serialized::default("shutdown.ctrlc", false))
        .merge(Serialized::default(
            "shutdown.signals",
            Vec::<String>::new(),
        ))
        // `cargo run` stops at once.
        .merge(Serialized::default("shutdown.drain", 0).profile("debug"))
        .merge(Serialized::default("limits.json", "1MiB"))
        .merge(Serialized::default(
            "databases.roster.url",
            DEFAULT_DATABASE_URL,
        ))
        // The pool gives up waiting for a connection after this many seconds,
        // so a dead database becomes a prompt 503, not a hang.
        .merge(Serialized::default("databases.roster.connect_timeout", 3))
        // How long start-up keeps trying an unreachable database.
        .merge(Serialized::default("databases.roster.startup_timeout", 30))
}

/// Rocket's settings that size the runtime, which Rocket would otherwise
/// refuse with a panic.
pub fn check_runtime(figment: &Figment) -> Result<(), ConfigError> {
    let config: rocket::Config = figment
        .extract()
        .map_err(|err| ConfigError(err.to_string()))?;
    if config.workers == 0 || config.max_blocking == 0 {
        return Err(ConfigError(format!(
            "workers and max_blocking must be at least 1, got {} and {}",
            config.workers, config.max_blocking
        )));
    }
    Ok(())
}

/// The effective configuration of `figment`, checked as serving checks it,
/// as `roster config check` prints it: pretty JSON, with `jwt_secret`,
/// `upload.s3.secret_access_key` and the passwords in URLs redacted.
pub fn effective(figment: &Figment) -> Result<String, ConfigError> {
    let settings = Settings::load(figment)?;
    let invalid = |err: rocket::figment::Error| ConfigError(err.to_string());
    let rocket: rocket::Config = figment.extract().map_err(invalid)?;
    let database: serde_json::Value = figment.extract_inner("databases.roster").map_err(invalid)?;
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|err| ConfigError(format!("printing the settings: {err}")))
    };
    let mut all = json(serde_json::to_value(&rocket))?;
    let ours = json(serde_json::to_value(&settings))?;
    if let (Some(all), serde_json::Value::Object(ours)) = (all.as_object_mut(), ours) {
        for (key, value) in ours {
            // A table both have (`shutdown`) keeps Rocket's keys and ours.
            match (all.get_mut(&key), value) {
                (Some(serde_json::Value::Object(theirs)), serde_json::Value::Object(value)) => {
                    theirs.extend(value)
                }
                (_, value) => {
                    all.insert(key, value);
                }
            }
        }
        all.insert("profile".into(), figment.profile().as_str().as_str().into());
        all.insert(
            "databases".into(),
            serde_json::json!({ "roster": database }),
        );
    }
    if settings.jwt_secret.is_some() {
        all["jwt_secret"] = "***".into();
    }
    if let Some(list) = all["jwt_verify_secrets"].as_array_mut() {
        list.iter_mut().for_each(|secret| *secret = "***".into());
    }
    if settings.upload.s3.secret_access_key.is_some() {
        all["upload"]["s3"]["secret_access_key"] = "***".into();
    }
    for pointer in [
        "/smtp/url",
        "/databases/roster/url",
        "/rate_limit/redis_url",
    ] {
        if let Some(url) = all.pointer_mut(pointer) {
            if let Some(text) = url.as_str() {
                *url = crate::secret::redact_url(text).into();
            }
        }
    }
    serde_json::to_string_pretty(&all).map_err(|err| ConfigError(err.to_string()))
}

/// A figment holding every key Roster or Rocket reads, each at its default:
/// what a given configuration's keys are checked against.
fn known() -> Figment {
    Figment::from(rocket::Config::default()).merge(defaults())
}

/// The figment the `roster` binary runs with.
pub fn figment() -> Figment {
    let mut figment = Figment::from(rocket::Config::default())
        .merge(defaults())
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(
            Env::prefixed("ROCKET_")
                .ignore(&["PROFILE", "CONFIG"])
                .global(),
        );
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
    fn address_lists_that_do_not_parse_are_refused() {
        let settings = Settings {
            metrics: MetricsSettings {
                allow: vec!["10.0.0.0/8".into(), "localhost".into()],
                ..MetricsSettings::default()
            },
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err();
        assert!(
            err.contains("metrics.allow") && err.contains("localhost"),
            "{err}"
        );
        let settings = Settings {
            trusted_proxies: vec!["10.0.0.300".into()],
            ..Settings::default()
        };
        assert!(settings.validate().unwrap_err().contains("trusted_proxies"));
    }

    #[test]
    fn s3_uploads_are_bounded_by_what_a_copy_may_move_and_prefixes_are_relative() {
        let mut settings = Settings::default();
        settings.upload.max_bytes = 6 << 30;
        assert!(settings.validate().is_ok(), "a directory takes any size");
        settings.upload.backend = UploadBackend::S3;
        assert!(settings.validate().unwrap_err().contains("at most 5 GiB"));
        settings.upload.max_bytes = 5 << 30;
        assert!(settings.validate().is_ok());
        settings.upload.s3.prefix = "/roster".into();
        assert!(settings
            .validate()
            .unwrap_err()
            .contains("upload.s3.prefix"));
        settings.upload.s3.prefix = "roster/".into();
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn short_secrets_are_refused_and_release_needs_one() {
        let short = Settings {
            jwt_secret: Some(Secret::new("x".repeat(31))),
            ..Settings::default()
        };
        assert!(short.validate().unwrap_err().contains("at least 32 bytes"));
        let none = Settings::default();
        assert!(none.require_outside_debug("debug").is_ok());
        assert!(none
            .require_outside_debug("release")
            .unwrap_err()
            .contains("ROCKET_JWT_SECRET"));
        let good = Settings {
            jwt_secret: Some(Secret::new("x".repeat(32))),
            ..Settings::default()
        };
        assert!(good
            .require_outside_debug("release")
            .unwrap_err()
            .contains("needs smtp.url"));
        let good = Settings {
            smtp: SmtpSettings {
                enabled: false,
                ..SmtpSettings::default()
            },
            ..good
        };
        assert!(good.validate().is_ok() && good.require_outside_debug("release").is_ok());
        assert!(
            !format!("{good:?}").contains("xxxx"),
            "Debug hides the secret"
        );
    }
}
