//! What the request models share: the adapters that run the domain parsers
//! under `validator` (so every field is checked and every failure reported
//! at once), serde helpers for partial updates, and the timestamp schema.
//!
//! A model's field stays a plain `String` or `i64` so that a broken rule is
//! reported in the API's validation shape rather than as a serde error; its
//! schema comes from the type that states the rule:
//! `#[schemars(with = "Username")]`.

use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, Schema, SchemaObject};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use validator::ValidationError;

use super::{Age, Email, Password, Username};

pub(crate) fn valid_username(value: &str) -> Result<(), ValidationError> {
    Ok(Username::check(value)?)
}

pub(crate) fn valid_email(value: &str) -> Result<(), ValidationError> {
    Ok(Email::check(value)?)
}

pub(crate) fn valid_password(value: &str) -> Result<(), ValidationError> {
    Ok(Password::check(value)?)
}

pub(crate) fn valid_age(value: i64) -> Result<(), ValidationError> {
    Ok(Age::check(value)?)
}

/// For PATCH: a field that may be absent, but when present is not null.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// For PATCH: absent is `None`, `null` is `Some(None)`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An RFC 3339 timestamp in UTC.
pub fn date_time_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        format: Some("date-time".to_owned()),
        ..Default::default()
    }
    .into()
}

/// An RFC 3339 timestamp, or null.
pub fn nullable_date_time_schema(gen: &mut SchemaGenerator) -> Schema {
    let mut schema = date_time_schema(gen).into_object();
    schema
        .extensions
        .insert("nullable".to_owned(), serde_json::Value::Bool(true));
    schema.into()
}

/// Each validated type's rule as a JSON Schema, inlined in every request
/// field that takes it (`#[schemars(with = "Username")]`), from the same
/// constants its parser checks.
macro_rules! rule_schema {
    ($($type:ident => |$gen:ident| $schema:expr;)+) => {$(
        impl JsonSchema for $type {
            fn is_referenceable() -> bool {
                false
            }

            fn schema_name() -> String {
                stringify!($type).to_owned()
            }

            fn json_schema($gen: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    )+};
}

rule_schema! {
    Username => |_gen| string_schema(
        None,
        Some(Username::MIN_CHARS),
        Username::MAX_CHARS,
        Some(Username::PATTERN),
    );
    Email => |_gen| string_schema(Some("email"), None, Email::MAX_CHARS, None);
    Password => |_gen| string_schema(
        None,
        Some(Password::MIN_CHARS),
        Password::MAX_BYTES,
        Some(Password::PATTERN),
    );
    Age => |gen| {
        let mut schema = i64::json_schema(gen).into_object();
        let number = schema.number();
        number.minimum = Some(Age::MIN as f64);
        number.maximum = Some(Age::MAX as f64);
        schema.into()
    };
}

/// A JSON Schema string with these bounds.
fn string_schema(
    format: Option<&str>,
    min_length: Option<usize>,
    max_length: usize,
    pattern: Option<&str>,
) -> Schema {
    let mut schema = SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        format: format.map(str::to_owned),
        ..Default::default()
    };
    let string = schema.string();
    string.min_length = min_length.map(|n| n as u32);
    string.max_length = Some(max_length as u32);
    string.pattern = pattern.map(str::to_owned);
    schema.into()
}
