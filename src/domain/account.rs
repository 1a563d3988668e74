//! Account lifecycle models: password reset, email verification, sessions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use validator::Validate;

use super::fields::{date_time_schema, nullable_date_time_schema, valid_email, valid_password};
use super::{Email, Password};

/// The longest token accepted (Roster's are 64 hexadecimal characters).
const MAX_TOKEN: u64 = 128;

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    /// The account's email address.
    #[validate(custom(function = "valid_email"))]
    #[schemars(with = "Email")]
    pub email: String,
}

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token from the reset email.
    #[schemars(length(max = 128))]
    #[validate(length(max = MAX_TOKEN))]
    pub token: String,
    /// The same rules as at registration.
    #[validate(custom(function = "valid_password"))]
    #[schemars(with = "Password")]
    pub new_password: String,
}

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the verification (or welcome) email.
    #[schemars(length(max = 128))]
    #[validate(length(max = MAX_TOKEN))]
    pub token: String,
}

/// A request taken for processing (202).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Accepted {
    /// What happens next.
    pub detail: &'static str,
}

/// One of the caller's open sessions (a login, and the refreshes since).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionResponse {
    /// The session's id: the `sid` of its access tokens.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "date_time_schema")]
    pub created_at: OffsetDateTime,
    /// The login or the latest refresh.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(schema_with = "nullable_date_time_schema")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The `User-Agent` of the login, if it sent one.
    pub user_agent: Option<String>,
    /// Whether this is the session of the token that asked.
    pub current: bool,
}
