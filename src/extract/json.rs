//! `ValidJson<T>`: a JSON body, shaped by serde and checked by `validator`.

use rocket::data::{Data, FromData, Outcome, ToByteUnit};
use rocket::request::Request;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{MediaType, RequestBody};
use rocket_okapi::request::OpenApiFromData;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::field_errors;
use super::idle::{read_at_most, BODY_IDLE_TIMEOUT};
use crate::domain::ErrorType;
use crate::error::{errors_extension, stash, ApiError, FieldError};

/// A JSON request body that has passed its schema and every validation rule.
///
/// Failures, in order: a non-JSON `Content-Type` is 415; a body over Rocket's
/// `limits.json` is 413; malformed JSON is 422 `json_invalid`; a shape error
/// (missing, unknown or mistyped field) is 422 naming the field; broken rules
/// are 422 listing all of them.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T> ValidJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// A request model that can check itself after serde has shaped it.
pub trait Validated {
    fn check(&self) -> Result<(), validator::ValidationErrors>;
}

impl<T: validator::Validate> Validated for T {
    fn check(&self) -> Result<(), validator::ValidationErrors> {
        self.validate()
    }
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned + Validated + Send + 'static> FromData<'r> for ValidJson<T> {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        match parse::<T>(req, data).await {
            Ok(value) => Outcome::Success(ValidJson(value)),
            Err(err) => Outcome::Error((stash(req, err), ())),
        }
    }
}

/// A JSON body that may be left out entirely (no bytes at all); when
/// present it is checked exactly like [`ValidJson`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

#[rocket::async_trait]
impl<'r, T: DeserializeOwned + Validated + Send + 'static> FromData<'r> for OptionalJson<T> {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, mut data: Data<'r>) -> Outcome<'r, Self> {
        if data.peek(1).await.is_empty() {
            return Outcome::Success(OptionalJson(None));
        }
        match parse::<T>(req, data).await {
            Ok(value) => Outcome::Success(OptionalJson(Some(value))),
            Err(err) => Outcome::Error((stash(req, err), ())),
        }
    }
}

async fn parse<T: DeserializeOwned + Validated>(
    req: &Request<'_>,
    data: Data<'_>,
) -> Result<T, ApiError> {
    if !req.content_type().is_some_and(|ct| ct.is_json()) {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ));
    }
    parse_json_body(req, data).await
}

/// Reads a body within Rocket's `limits.<name>` (413 past it), giving up
/// when it sends nothing for [`BODY_IDLE_TIMEOUT`] (408).
pub async fn read_limited(
    req: &Request<'_>,
    data: Data<'_>,
    name: &str,
) -> Result<Vec<u8>, ApiError> {
    let limit = req.limits().get(name).unwrap_or(1.mebibytes());
    // One byte past the limit tells a body at the limit from a longer one.
    let stream = data.open(limit + 1.bytes());
    read_at_most(stream, limit.as_u64(), BODY_IDLE_TIMEOUT)
        .await?
        .ok_or_else(|| {
            ApiError::PayloadTooLarge(format!("Request body is larger than the limit of {limit}"))
        })
}

/// Parses and validates a JSON body (the caller has checked its type).
pub async fn parse_json_body<T: DeserializeOwned + Validated>(
    req: &Request<'_>,
    data: Data<'_>,
) -> Result<T, ApiError> {
    let bytes = read_limited(req, data, "json").await?;
    let value: T = deserialize(&bytes)?;
    value
        .check()
        .map_err(|errors| ApiError::Validation(field_errors("body", &errors)))?;
    Ok(value)
}

/// Deserializes a JSON object from `bytes`, naming the offending field on
/// failure.
pub fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs also accept arrays (fields by position);
    // The API's bodies are objects only.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(match is_json(bytes) {
            Ok(()) => ApiError::validation(
                "body",
                ErrorType::TypeError,
                "Input should be a JSON object",
            ),
            Err(err) => err,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| {
                ApiError::validation("body", ErrorType::JsonInvalid, format!("Invalid JSON: {e}"))
            })?;
            Ok(value)
        }
        // A body that is not JSON at all is reported as such, even when the
        // shape error came first.
        Err(err) => Err(is_json(bytes).err().unwrap_or_else(|| shape_error(err))),
    }
}

fn is_json(bytes: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(drop)
        .map_err(|e| {
            ApiError::validation("body", ErrorType::JsonInvalid, format!("Invalid JSON: {e}"))
        })
}

fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut field = String::from("body");
    for segment in err.path() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Map { key } | Segment::Enum { variant: key } => {
                field.push('.');
                field.push_str(key);
            }
            Segment::Seq { index } => {
                field.push('.');
                field.push_str(&index.to_string());
            }
            Segment::Unknown => {}
        }
    }
    let inner = err.into_inner();
    if !matches!(inner.classify(), Category::Data) {
        return ApiError::validation(
            "body",
            ErrorType::JsonInvalid,
            format!("Invalid JSON: {inner}"),
        );
    }
    let (field, kind, message) = classify_data_error(field, &inner.to_string());
    ApiError::Validation(vec![FieldError::new(field, kind, message)])
}

/// serde reports shape errors as text with stable prefixes (serde's own
/// `de::Error` messages); this turns them into the API's type words without
/// echoing the rejected value.
fn classify_data_error(field: String, message: &str) -> (String, ErrorType, String) {
    // serde_json appends " at line L column C".
    let message = message.split(" at line ").next().unwrap_or(message);
    // The path may or may not end with the key the message names.
    let child = |rest: &str| {
        let key = rest.split('`').nth(1).unwrap_or_default();
        if field.ends_with(&format!(".{key}")) {
            field.clone()
        } else {
            format!("{field}.{key}")
        }
    };
    if let Some(rest) = message.strip_prefix("missing field ") {
        return (child(rest), ErrorType::Missing, "Field required".into());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return (
            child(rest),
            ErrorType::ExtraForbidden,
            "Extra inputs are not permitted".into(),
        );
    }
    if let Some(rest) = message.strip_prefix("duplicate field ") {
        return (
            child(rest),
            ErrorType::ValueError,
            "Field given more than once".into(),
        );
    }
    if message.starts_with("invalid type: ") {
        let expected = message
            .rsplit(", expected ")
            .next()
            .unwrap_or("another type");
        return (
            field,
            ErrorType::TypeError,
            format!("Input should be {}", describe_expected(expected)),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest.split(", expected ").nth(1).unwrap_or_default();
        return (
            field,
            ErrorType::ValueError,
            format!("Input should be {expected}"),
        );
    }
    if message.starts_with("invalid value: ") {
        let expected = message
            .rsplit(", expected ")
            .next()
            .unwrap_or("another value");
        return (
            field,
            ErrorType::TypeError,
            format!("Input should be {}", describe_expected(expected)),
        );
    }
    (field, ErrorType::ValueError, message.to_owned())
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "a whole number within range".into()
        }
        "a string" => "a string".into(),
        "a boolean" => "a boolean".into(),
        other if other.starts_with("struct ") => "a JSON object".into(),
        other => other.to_owned(),
    }
}

/// A request body of `T` as JSON.
pub fn json_request_body<T: JsonSchema>(gen: &mut OpenApiGenerator, required: bool) -> RequestBody {
    let media = MediaType {
        schema: Some(gen.json_schema::<T>()),
        ..Default::default()
    };
    RequestBody {
        content: [("application/json".to_owned(), media)]
            .into_iter()
            .collect(),
        required,
        // Unreadable or not JSON, stalled, too large, another type, invalid.
        extensions: errors_extension(gen, &[400, 408, 413, 415, 422]),
        ..Default::default()
    }
}

impl<'r, T> OpenApiFromData<'r> for ValidJson<T>
where
    T: DeserializeOwned + Validated + JsonSchema + Send + 'static,
{
    fn request_body(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        Ok(json_request_body::<T>(gen, true))
    }
}

impl<'r, T> OpenApiFromData<'r> for OptionalJson<T>
where
    T: DeserializeOwned + Validated + JsonSchema + Send + 'static,
{
    fn request_body(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        Ok(json_request_body::<T>(gen, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        age: Option<i64>,
    }

    fn fails(body: &str) -> FieldError {
        match deserialize::<Sample>(body.as_bytes()) {
            Err(ApiError::Validation(mut list)) => list.remove(0),
            other => panic!("expected a validation error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field_and_its_type_word() {
        let cases = [
            ("{", "body", ErrorType::JsonInvalid),
            ("not json", "body", ErrorType::JsonInvalid),
            (r#"{"name":"a"} trailing"#, "body", ErrorType::JsonInvalid),
            ("[1, 2]", "body", ErrorType::TypeError),
            ("\"text\"", "body", ErrorType::TypeError),
            ("{}", "body.name", ErrorType::Missing),
            (
                r#"{"name":"a","role":"admin"}"#,
                "body.role",
                ErrorType::ExtraForbidden,
            ),
            (r#"{"name":1}"#, "body.name", ErrorType::TypeError),
            (
                r#"{"name":"a","age":"x"}"#,
                "body.age",
                ErrorType::TypeError,
            ),
            (
                r#"{"name":"a","age":1.5}"#,
                "body.age",
                ErrorType::TypeError,
            ),
            (
                r#"{"name":"a","age":99999999999999999999}"#,
                "body.age",
                ErrorType::TypeError,
            ),
            (
                r#"{"name":"a","name":"b"}"#,
                "body.name",
                ErrorType::ValueError,
            ),
        ];
        for (body, field, kind) in cases {
            let err = fails(body);
            assert_eq!((err.field.as_str(), err.kind), (field, kind), "{body}");
        }
    }

    #[test]
    fn rejected_values_are_not_echoed() {
        let err = fails(r#"{"name": 123456789}"#);
        assert!(!err.message.contains("123456789"), "{}", err.message);
    }
}
