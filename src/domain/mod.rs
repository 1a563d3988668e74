//! Validated values and the request/response models built from them.
//!
//! A value of these types has passed every rule of the API (README, OpenAPI
//! schemas); code that holds a `Username` never checks it again. Nothing here knows HTTP or SQL.

mod age;
pub mod auth;
mod email;
mod password;
mod role;
pub mod user;
mod username;

use std::borrow::Cow;

pub use age::Age;
pub use email::Email;
pub use password::Password;
pub use role::Role;
pub use username::Username;

/// Why a value was refused: a stable machine word (the README's validation
/// `type`) and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: &'static str,
    pub message: Cow<'static, str>,
}

impl Invalid {
    pub fn new(kind: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Invalid {
            kind,
            message: message.into(),
        }
    }

    pub fn too_short(min: usize) -> Self {
        Invalid::new(
            "string_too_short",
            format!("String should have at least {min} characters"),
        )
    }

    pub fn too_long(max: usize) -> Self {
        Invalid::new(
            "string_too_long",
            format!("String should have at most {max} characters"),
        )
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

/// `validator`'s custom-function adapter: the request models run the domain
/// parsers through `#[validate(custom(function = ...))]`, so every field is
/// checked and every failure reported at once.
impl From<Invalid> for validator::ValidationError {
    fn from(invalid: Invalid) -> Self {
        validator::ValidationError::new(invalid.kind).with_message(invalid.message)
    }
}
