//! Request guards that turn raw input into typed, validated values, and
//! report every failure in the API's validation shape (README, "Errors").

mod agent;
mod credentials;
pub mod idle;
mod json;
mod multipart;
mod path;
mod query;

pub use agent::UserAgent;
pub use credentials::TokenGrant;
pub use json::{parse_json_body, read_limited, OptionalJson, ValidJson};
pub use multipart::MultipartBody;
pub use path::{Id, SessionId, UploadId};
pub use query::form_errors;
pub(crate) use query::{default_limit, default_skip};
pub use query::{Flag, LogoutQuery, Paging, ValidQuery, DEFAULT_LIMIT, MAX_SKIP};

use rocket_okapi::okapi::openapi3::{Object, Parameter, ParameterValue};
use rocket_okapi::okapi::schemars::schema::SchemaObject;
use validator::{ValidationErrors, ValidationErrorsKind};

use crate::domain::ErrorType;
use crate::error::FieldError;

/// Turns `validator`'s report into the API's list, sorted by field (the
/// report is a map in random order). Rejected values are never echoed: for a
/// password that would leak it into logs and proxies.
pub fn field_errors(location: &str, errors: &ValidationErrors) -> Vec<FieldError> {
    let mut list = Vec::new();
    collect(location, errors, &mut list);
    list.sort_by(|a, b| a.field.cmp(&b.field));
    list
}

fn collect(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = format!("{prefix}.{field}");
        match kind {
            ValidationErrorsKind::Field(list) => {
                out.extend(list.iter().map(|err| {
                    let (kind, message) = describe(err);
                    FieldError::new(path.clone(), kind, message)
                }));
            }
            ValidationErrorsKind::Struct(inner) => collect(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect(&format!("{path}.{index}"), inner, out);
                }
            }
        }
    }
}

/// The API's type word and message for one failed rule. Domain parsers set
/// the code to the type word already; `validator`'s built-in `range` rule is
/// translated here.
fn describe(err: &validator::ValidationError) -> (ErrorType, String) {
    let message = err.message.as_ref().map(|m| m.to_string());
    if err.code == "range" {
        let value = err.params.get("value").and_then(|v| v.as_f64());
        let min = err.params.get("min").and_then(|v| v.as_f64());
        let max = err.params.get("max").and_then(|v| v.as_f64());
        return match (value, min, max) {
            (Some(v), Some(min), _) if v < min => (
                ErrorType::GreaterThanEqual,
                message
                    .unwrap_or_else(|| format!("Input should be greater than or equal to {min}")),
            ),
            (_, _, Some(max)) => (
                ErrorType::LessThanEqual,
                message.unwrap_or_else(|| format!("Input should be less than or equal to {max}")),
            ),
            _ => (
                ErrorType::ValueError,
                message.unwrap_or_else(|| "Value out of range".into()),
            ),
        };
    }
    if err.code == "length" {
        let chars = err
            .params
            .get("value")
            .and_then(|v| v.as_str())
            .map(|v| v.chars().count() as f64);
        let min = err.params.get("min").and_then(|v| v.as_f64());
        let max = err.params.get("max").and_then(|v| v.as_f64());
        return match (chars, min, max) {
            (Some(n), Some(min), _) if n < min => (
                ErrorType::StringTooShort,
                message.unwrap_or_else(|| format!("String should have at least {min} characters")),
            ),
            (_, _, Some(max)) => (
                ErrorType::StringTooLong,
                message.unwrap_or_else(|| format!("String should have at most {max} characters")),
            ),
            _ => (
                ErrorType::ValueError,
                message.unwrap_or_else(|| "Invalid length".into()),
            ),
        };
    }
    let message = message.unwrap_or_else(|| format!("Invalid value ({})", err.code));
    (ErrorType::from_code(&err.code), message)
}

/// An OpenAPI parameter `in` the path or the query, described by `schema`.
pub(crate) fn parameter(
    name: String,
    location: &str,
    description: Option<String>,
    required: bool,
    schema: SchemaObject,
) -> Parameter {
    Parameter {
        name,
        location: location.to_owned(),
        description,
        required,
        deprecated: false,
        allow_empty_value: false,
        value: ParameterValue::Schema {
            style: None,
            explode: None,
            allow_reserved: false,
            schema,
            example: None,
            examples: None,
        },
        extensions: Object::default(),
    }
}
