//! The users resource's request and response models.
//!
//! Request models are what clients send: serde shapes them (unknown fields
//! refused), `validator` runs the domain parsers on every field so all
//! failures are reported at once, and `TryFrom` turns them into validated
//! values. Each field's schema comes from the type that states its rule
//! (`#[schemars(with = "Username")]`), so the OpenAPI document and the
//! validators cannot disagree.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use validator::Validate;

use super::fields::{
    date_time_schema, nullable, nullable_date_time_schema, present, valid_age, valid_email,
    valid_password, valid_username,
};
use super::{Age, Email, Invalid, Password, Role, Username};

fn parse_age(age: Option<i64>) -> Result<Option<Age>, Invalid> {
    age.map(Age::parse).transpose()
}

/// Registration.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 3–50 ASCII letters or digits; unique ignoring case.
    #[validate(custom(function = "valid_username"))]
    #[schemars(with = "Username")]
    pub username: String,
    /// A valid address, unique ignoring case; stored lowercased.
    #[validate(custom(function = "valid_email"))]
    #[schemars(with = "Email")]
    pub email: String,
    /// At least 8 characters and at most 72 bytes, with a digit and an
    /// uppercase letter.
    #[validate(custom(function = "valid_password"))]
    #[schemars(with = "Password")]
    pub password: String,
    /// Age in years, 0–150.
    #[serde(default)]
    #[validate(custom(function = "valid_age"))]
    #[schemars(with = "Option<Age>")]
    pub age: Option<i64>,
}

/// Full replacement of a profile: an omitted `age` becomes null.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ReplaceUserRequest {
    #[validate(custom(function = "valid_username"))]
    #[schemars(with = "Username")]
    pub username: String,
    #[validate(custom(function = "valid_email"))]
    #[schemars(with = "Email")]
    pub email: String,
    #[serde(default)]
    #[validate(custom(function = "valid_age"))]
    #[schemars(with = "Option<Age>")]
    pub age: Option<i64>,
}

/// Declares the body of a partial update: the profile fields every such
/// body takes (`username`, `email`, `age`: only those present change, and
/// `"age": null` clears the age), then the fields given. One definition, so
/// that `PatchMeRequest` and `PatchUserRequest` cannot drift apart.
macro_rules! profile_patch {
    ($(#[$attr:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Default, Deserialize, JsonSchema, Validate)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(
                default,
                deserialize_with = "present",
                skip_serializing_if = "Option::is_none"
            )]
            #[validate(custom(function = "valid_username"))]
            #[schemars(with = "Username")]
            pub username: Option<String>,
            #[serde(
                default,
                deserialize_with = "present",
                skip_serializing_if = "Option::is_none"
            )]
            #[validate(custom(function = "valid_email"))]
            #[schemars(with = "Email")]
            pub email: Option<String>,
            #[serde(
                default,
                deserialize_with = "nullable",
                skip_serializing_if = "Option::is_none"
            )]
            #[validate(custom(function = "valid_age"))]
            #[schemars(with = "Option<Age>")]
            pub age: Option<Option<i64>>,
            $($extra)*
        }
    };
}

profile_patch! {
    /// A partial update: only the fields present change; `"age": null` clears
    /// the age. `role`, `is_active` and `password` are for admins.
    pub struct PatchUserRequest {
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(with = "Role")]
        pub role: Option<Role>,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(with = "bool")]
        pub is_active: Option<bool>,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        #[validate(custom(function = "valid_password"))]
        #[schemars(with = "Password")]
        pub password: Option<String>,
    }
}

profile_patch! {
    /// What a user may change of their own profile.
    pub struct PatchMeRequest {}
}

/// A registration, validated.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    pub age: Option<Age>,
}

impl TryFrom<CreateUserRequest> for NewUser {
    type Error = Invalid;

    fn try_from(req: CreateUserRequest) -> Result<Self, Invalid> {
        Ok(NewUser {
            username: Username::parse(req.username)?,
            email: Email::parse(req.email)?,
            password: Password::parse(req.password)?,
            age: parse_age(req.age)?,
        })
    }
}

/// Profile changes, validated; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub age: Option<Option<Age>>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub password: Option<Password>,
}

impl UserUpdate {
    /// Whether this update touches what only an admin may change.
    pub fn needs_admin(&self) -> bool {
        self.role.is_some() || self.is_active.is_some() || self.password.is_some()
    }

    /// The profile fields every update body takes; `None` leaves a field.
    fn profile(
        username: Option<String>,
        email: Option<String>,
        age: Option<Option<i64>>,
    ) -> Result<Self, Invalid> {
        Ok(UserUpdate {
            username: username.map(Username::parse).transpose()?,
            email: email.map(Email::parse).transpose()?,
            age: age.map(parse_age).transpose()?,
            ..UserUpdate::default()
        })
    }
}

impl TryFrom<ReplaceUserRequest> for UserUpdate {
    type Error = Invalid;

    fn try_from(req: ReplaceUserRequest) -> Result<Self, Invalid> {
        UserUpdate::profile(Some(req.username), Some(req.email), Some(req.age))
    }
}

impl TryFrom<PatchMeRequest> for UserUpdate {
    type Error = Invalid;

    fn try_from(req: PatchMeRequest) -> Result<Self, Invalid> {
        UserUpdate::profile(req.username, req.email, req.age)
    }
}

impl TryFrom<PatchUserRequest> for UserUpdate {
    type Error = Invalid;

    fn try_from(req: PatchUserRequest) -> Result<Self, Invalid> {
        Ok(UserUpdate {
            role: req.role,
            is_active: req.is_active,
            password: req.password.map(Password::parse).transpose()?,
            ..UserUpdate::profile(req.username, req.email, req.age)?
        })
    }
}

/// A user as clients see it: never a password or its hash. The personal
/// fields are filled in only for the caller's own user and for admins; in
/// any other user a non-admin receives they are null.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UserResponse {
    pub id: i64,
    pub username: String,
    /// Personal: null in other users for non-admins.
    pub email: Option<String>,
    /// Personal: null in other users for non-admins (and when not given).
    pub age: Option<i32>,
    pub role: Role,
    pub is_active: bool,
    /// Personal: whether the user proved the address (a verification or
    /// password reset link); null in other users for non-admins.
    pub email_verified: Option<bool>,
    /// Personal: the latest login; null before the first one, and in other
    /// users for non-admins.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(schema_with = "nullable_date_time_schema")]
    pub last_login_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "date_time_schema")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "date_time_schema")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).expect("schema")
    }

    #[test]
    fn schema_patterns_match_the_domain_rules() {
        let schema = schema_of::<CreateUserRequest>();
        let props = &schema["properties"];
        assert_eq!(props["username"]["pattern"], Username::PATTERN);
        assert_eq!(props["username"]["minLength"], Username::MIN_CHARS);
        assert_eq!(props["username"]["maxLength"], Username::MAX_CHARS);
        assert_eq!(props["password"]["pattern"], Password::PATTERN);
        assert_eq!(props["password"]["minLength"], Password::MIN_CHARS);
        assert_eq!(props["password"]["maxLength"], Password::MAX_BYTES);
        assert_eq!(props["email"]["maxLength"], Email::MAX_CHARS);
        assert_eq!(props["age"]["minimum"], Age::MIN as f64);
        assert_eq!(props["age"]["maximum"], Age::MAX as f64);
        assert_eq!(schema["additionalProperties"], false);

        let patch = schema_of::<PatchUserRequest>();
        assert_eq!(
            patch["properties"]["username"]["pattern"],
            Username::PATTERN
        );
        assert_eq!(
            patch["properties"]["password"]["pattern"],
            Password::PATTERN
        );
        assert!(patch.get("required").is_none(), "PATCH fields are optional");
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let absent: PatchUserRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.age, None);
        let null: PatchUserRequest = serde_json::from_str(r#"{"age": null}"#).unwrap();
        assert_eq!(null.age, Some(None));
        assert!(serde_json::from_str::<PatchUserRequest>(r#"{"username": null}"#).is_err());
    }

    #[test]
    fn every_failing_field_is_reported() {
        let req = CreateUserRequest {
            username: "ab".into(),
            email: "nope".into(),
            password: "short".into(),
            age: Some(200),
        };
        let errors = req.validate().expect_err("invalid");
        let mut fields: Vec<_> = errors
            .field_errors()
            .keys()
            .map(|k| k.to_string())
            .collect();
        fields.sort();
        assert_eq!(fields, ["age", "email", "password", "username"]);
    }
}
