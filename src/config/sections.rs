//! The sections of [`super::Settings`]: one type per table of keys, each
//! with its built-in defaults.

use serde::{Deserialize, Serialize};

use super::CredentialUrl;

/// Email templates.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TemplateSettings {
    /// A directory whose templates (same names as the built-in ones, such as
    /// `password_reset.html.tera`) replace the built-in ones; read at start.
    pub dir: Option<String>,
}

/// How log lines are written: each has an RFC 3339 UTC timestamp, a level,
/// a message and, when a request caused it, the request's id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The Prometheus endpoint, `GET /metrics`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// `false`: nothing is counted and `/metrics` is 404.
    pub enabled: bool,
    /// Client addresses or CIDRs that may read `/metrics` (the client as
    /// `trusted_proxies` resolves it); others get 404.
    pub allow: Vec<String>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            allow: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
        }
    }
}

/// What Roster adds to Rocket's `shutdown` table (`grace`, `mercy`, ...).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ShutdownSettings {
    /// Seconds readiness answers 503 after SIGTERM/SIGINT while requests
    /// are still served, before the graceful shutdown.
    pub drain: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings { drain: 5 }
    }
}

/// Where uploads are stored and how big they may be.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct UploadSettings {
    /// `fs`: files under `dir`; `s3`: objects in the bucket of `s3`.
    pub backend: UploadBackend,
    pub dir: String,
    /// The bucket, when `backend = "s3"`.
    pub s3: S3Settings,
    /// The largest file, in bytes.
    pub max_bytes: u64,
    /// The most a user may store in all, in bytes.
    pub quota_bytes: u64,
    /// Seconds an upload's body may send nothing before it is abandoned
    /// (408).
    pub idle_timeout: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            backend: UploadBackend::Fs,
            dir: "uploads".to_owned(),
            s3: S3Settings::default(),
            max_bytes: 10 * 1024 * 1024,
            quota_bytes: 100 * 1024 * 1024,
            idle_timeout: 30,
        }
    }
}

/// Where upload files live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadBackend {
    /// A directory (`upload.dir`): one instance, or several sharing it.
    #[default]
    Fs,
    /// An S3-compatible bucket (`upload.s3`), which every instance shares.
    S3,
}

/// An S3-compatible bucket. A key left out is taken from the usual
/// `AWS_*` environment variables (`AWS_ENDPOINT`, `AWS_BUCKET`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct S3Settings {
    /// `https://host:port` (or `http://`); none: AWS itself.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<super::Secret>,
    /// `true`: `endpoint/bucket/key` (MinIO, Garage and most others);
    /// `false`: `bucket.endpoint/key` (virtual-hosted, as AWS prefers).
    pub path_style: bool,
    /// Keys start with this (`roster/`), so that a bucket can be shared.
    pub prefix: String,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            bucket: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            path_style: true,
            prefix: String::new(),
        }
    }
}

/// Welcome emails. Without `url` (debug profile only) they are written to
/// the log instead; with `enabled = false` none is queued or sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SmtpSettings {
    /// `false`: no email is queued or sent, and no `url` is needed.
    pub enabled: bool,
    /// `smtp://host:port` (`?tls=required` for STARTTLS), `smtps://host:port`
    /// for TLS; credentials as `smtp://user:password@host`.
    pub url: Option<CredentialUrl>,
    pub from: String,
    /// The welcome email's subject.
    pub subject: String,
    /// The email verification email's subject.
    pub verify_subject: String,
    /// The password reset email's subject.
    pub reset_subject: String,
    /// Seconds after a job is queued when retrying stops and the job is
    /// marked dead.
    pub give_up_after: u64,
    /// Days a sent job (and the address it holds) is kept, for an operator
    /// to see; pending and dead jobs stay until handled.
    pub keep_sent_days: u32,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            enabled: true,
            url: None,
            from: "noreply@example.com".to_owned(),
            subject: "User Registration".to_owned(),
            verify_subject: "Verify your email address".to_owned(),
            reset_subject: "Reset your password".to_owned(),
            give_up_after: 48 * 3600,
            keep_sent_days: 7,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// Counters in this process.
    Memory,
    /// Counters in Redis, shared by every instance using the same `redis_url`.
    Redis,
}

/// Requests per minute per client address (login also per username tried).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_minute: u32,
    pub login_per_minute: u32,
    pub register_per_minute: u32,
    /// Password reset requests per hour per client address.
    pub password_reset_per_hour: u32,
    /// Reset and verification emails per hour to one address (past it, a
    /// reset request still answers 202 and sends nothing; a resend is 429).
    pub account_email_per_hour: u32,
    pub backend: RateLimitBackend,
    pub redis_url: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            per_minute: 100,
            login_per_minute: 10,
            register_per_minute: 10,
            password_reset_per_hour: 10,
            account_email_per_hour: 3,
            backend: RateLimitBackend::Memory,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
        }
    }
}

/// Cross-origin access for browsers.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`), or `"*"` for any.
    pub allowed_origins: Vec<String>,
    /// Let browsers send cookies and credentials: explicit origins only.
    pub allow_credentials: bool,
    /// The request headers a preflight may ask for; empty: any.
    pub allowed_headers: Vec<String>,
}
