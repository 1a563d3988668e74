//! Sign-in, token and password-change models.

use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, Schema, SchemaObject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::fields::valid_password;
use super::Password;

/// Credentials as JSON. Any strings are accepted here: a wrong name and a
/// wrong password get the same 401.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schemars(length(max = 256))]
    #[validate(length(max = 256))]
    pub username: String,
    #[schemars(length(max = 1024))]
    #[validate(length(max = 1024))]
    pub password: String,
}

/// An OAuth2 token request (RFC 6749), as a form: the password grant
/// (`username`, `password`; what Swagger's Authorize button sends) or the
/// refresh grant (`refresh_token`). `scope`, `client_id` and
/// `client_secret` are accepted and ignored.
/// The token form's bounds, in bytes, whatever the grant (the schema's
/// `maxLength`s; a test keeps them equal).
pub const MAX_USERNAME: usize = 256;
pub const MAX_PASSWORD: usize = 1024;
pub const MAX_REFRESH_TOKEN: usize = 256;

#[derive(Debug, FromForm, JsonSchema)]
pub struct TokenForm {
    /// `password` or `refresh_token`.
    #[schemars(schema_with = "grant_type_schema")]
    pub grant_type: String,
    /// The password grant's username (any case).
    #[schemars(length(max = 256))]
    pub username: Option<String>,
    /// The password grant's password.
    #[schemars(length(max = 1024))]
    pub password: Option<String>,
    /// The refresh grant's refresh token; single use.
    #[schemars(length(max = 256))]
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The grant types the token endpoint takes, so that generated clients
/// and fuzzers send only those.
fn grant_type_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        enum_values: Some(vec!["password".into(), "refresh_token".into()]),
        ..Default::default()
    }
    .into()
}

/// A new access token and the refresh token that renews it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenResponse {
    /// A JWT (HS256) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// An opaque token for `POST /api/v1/auth/refresh` (or the token
    /// endpoint's refresh grant); single use.
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schemars(length(max = 256))]
    #[validate(length(max = 256))]
    pub refresh_token: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session to end; by default the one of the access token.
    #[serde(default)]
    #[schemars(length(max = 256))]
    #[validate(length(max = 256))]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schemars(length(max = 1024))]
    #[validate(length(max = 1024))]
    pub current_password: String,
    /// The same rules as at registration.
    #[validate(custom(function = "valid_password"))]
    #[schemars(with = "Password")]
    pub new_password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_forms_schema_states_the_bounds_the_endpoint_enforces() {
        let schema = serde_json::to_value(schemars::schema_for!(TokenForm)).unwrap();
        for (field, max) in [
            ("username", MAX_USERNAME),
            ("password", MAX_PASSWORD),
            ("refresh_token", MAX_REFRESH_TOKEN),
        ] {
            assert_eq!(schema["properties"][field]["maxLength"], max, "{field}");
        }
    }
}
