//! Account emails (welcome, email verification, password reset): rendered
//! with Tera, sent over SMTP with lettre by a background worker that drains
//! the outbox.

pub mod templates;
pub mod worker;

use serde::{Deserialize, Serialize};

/// The outbox job kind of a welcome email.
pub const WELCOME_EMAIL: &str = "welcome_email";
/// The outbox job kind of an email verification email.
pub const VERIFY_EMAIL: &str = "verify_email";
/// The outbox job kind of a password reset email.
pub const PASSWORD_RESET: &str = "password_reset";

/// What a welcome email needs; never a password. `verify_token` is the
/// verification link's token (absent in jobs queued before there were
/// any); like every token in a job, it is erased once the email is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WelcomeEmail {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
}

/// A verification or password reset email: the raw token, which the outbox
/// holds only until the email is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenEmail {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub token: String,
}

/// A job's payload without its token, for the row kept after sending.
pub fn without_token(payload: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let object = value.as_object_mut()?;
    let had = object.remove("token").is_some() | object.remove("verify_token").is_some();
    had.then(|| value.to_string())
}
