//! Validated values and the request/response models built from them.
//!
//! A value of these types has passed every rule of the API (README, OpenAPI
//! schemas); code that holds a `Username` never checks it again. Nothing here knows HTTP or SQL.

pub mod account;
mod age;
pub mod auth;
mod email;
pub mod fields;
mod password;
mod role;
pub mod upload;
pub mod user;
mod username;

use std::borrow::Cow;

use serde::Serialize;

pub use age::Age;
pub use email::Email;
pub use password::Password;
pub use role::Role;
pub use username::Username;

/// The machine word of a failed rule: the `type` of each entry of a 422
/// (README, "Errors"). Clients match on these; they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// A required field is absent.
    Missing,
    /// A field the model does not have.
    ExtraForbidden,
    /// The body is not JSON (or not UTF-8).
    JsonInvalid,
    /// A value of the wrong JSON type, or a body that is not an object.
    TypeError,
    StringTooShort,
    StringTooLong,
    StringPatternMismatch,
    GreaterThanEqual,
    LessThanEqual,
    /// Any other broken rule; the message says which.
    ValueError,
}

impl ErrorType {
    const ALL: [ErrorType; 10] = [
        ErrorType::Missing,
        ErrorType::ExtraForbidden,
        ErrorType::JsonInvalid,
        ErrorType::TypeError,
        ErrorType::StringTooShort,
        ErrorType::StringTooLong,
        ErrorType::StringPatternMismatch,
        ErrorType::GreaterThanEqual,
        ErrorType::LessThanEqual,
        ErrorType::ValueError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Missing => "missing",
            ErrorType::ExtraForbidden => "extra_forbidden",
            ErrorType::JsonInvalid => "json_invalid",
            ErrorType::TypeError => "type_error",
            ErrorType::StringTooShort => "string_too_short",
            ErrorType::StringTooLong => "string_too_long",
            ErrorType::StringPatternMismatch => "string_pattern_mismatch",
            ErrorType::GreaterThanEqual => "greater_than_equal",
            ErrorType::LessThanEqual => "less_than_equal",
            ErrorType::ValueError => "value_error",
        }
    }

    /// The word `validator` carries as an error's code (the domain parsers
    /// set it to [`as_str`](Self::as_str)); any other code is a `value_error`.
    pub fn from_code(code: &str) -> ErrorType {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == code)
            .unwrap_or(ErrorType::ValueError)
    }
}

/// Why a value was refused: its [`ErrorType`] and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: ErrorType,
    pub message: Cow<'static, str>,
}

impl Invalid {
    pub fn new(kind: ErrorType, message: impl Into<Cow<'static, str>>) -> Self {
        Invalid {
            kind,
            message: message.into(),
        }
    }

    pub fn too_short(min: usize) -> Self {
        Invalid::new(
            ErrorType::StringTooShort,
            format!("String should have at least {min} characters"),
        )
    }

    pub fn too_long(max: usize) -> Self {
        Invalid::new(
            ErrorType::StringTooLong,
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
        validator::ValidationError::new(invalid.kind.as_str()).with_message(invalid.message)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorType;

    #[test]
    fn every_error_type_reads_back_from_its_word() {
        for kind in ErrorType::ALL {
            assert_eq!(ErrorType::from_code(kind.as_str()), kind);
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(ErrorType::from_code("range"), ErrorType::ValueError);
    }
}
