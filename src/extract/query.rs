//! Query strings: parsed by Rocket's forms and checked by `validator`,
//! failures reported as the API's `query.<name>` validation errors instead of
//! a bare 422.

use rocket::form::{self, error::ErrorKind, DataField, FromForm, Options, ValueField};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::Parameter;
use rocket_okapi::request::OpenApiFromForm;
use schemars::schema::Schema;
use schemars::JsonSchema;

use validator::Validate;

use super::{field_errors, parameter};
use crate::domain::ErrorType;
use crate::error::{errors_extension, ApiError, FieldError};

/// A query-string model, with its parse errors kept for the handler:
/// `query.into_inner()?` yields the value or the 422.
pub struct ValidQuery<T>(Result<T, ApiError>);

impl<T> ValidQuery<T> {
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

/// `T`'s parsing state, and the names seen so far: a parameter given twice
/// is refused (Rocket would keep one of the values silently).
pub struct QueryContext<'v, T: FromForm<'v>> {
    inner: T::Context,
    seen: std::collections::HashSet<String>,
    repeated: Vec<String>,
}

#[rocket::async_trait]
impl<'v, T: FromForm<'v> + Validate> FromForm<'v> for ValidQuery<T> {
    type Context = QueryContext<'v, T>;

    fn init(opts: Options) -> Self::Context {
        QueryContext {
            inner: T::init(opts),
            seen: Default::default(),
            repeated: Vec::new(),
        }
    }

    fn push_value(ctxt: &mut Self::Context, field: ValueField<'v>) {
        let name = field.name.source().to_string();
        if !ctxt.seen.insert(name.clone()) && !ctxt.repeated.contains(&name) {
            ctxt.repeated.push(name);
        }
        T::push_value(&mut ctxt.inner, field)
    }

    async fn push_data(ctxt: &mut Self::Context, field: DataField<'v, '_>) {
        T::push_data(&mut ctxt.inner, field).await
    }

    fn push_error(ctxt: &mut Self::Context, error: form::Error<'v>) {
        T::push_error(&mut ctxt.inner, error)
    }

    fn finalize(ctxt: Self::Context) -> form::Result<'v, Self> {
        if !ctxt.repeated.is_empty() {
            let errors = ctxt
                .repeated
                .iter()
                .map(|name| {
                    FieldError::new(
                        format!("query.{name}"),
                        ErrorType::ValueError,
                        "Field given more than once",
                    )
                })
                .collect();
            return Ok(ValidQuery(Err(ApiError::Validation(errors))));
        }
        let value = T::finalize(ctxt.inner)
            .map_err(|errors| ApiError::Validation(form_errors("query", &errors)))
            .and_then(|value| {
                value
                    .validate()
                    .map_err(|errors| ApiError::Validation(field_errors("query", &errors)))?;
                Ok(value)
            });
        Ok(ValidQuery(value))
    }
}

/// Each form error as a field error under `location` (`query`, `body`).
pub fn form_errors(location: &str, errors: &form::Errors<'_>) -> Vec<FieldError> {
    let mut list: Vec<FieldError> = errors
        .iter()
        .map(|err| {
            let field = match &err.name {
                Some(name) => format!("{location}.{name}"),
                None => location.to_owned(),
            };
            let (kind, message) = describe(err);
            FieldError::new(field, kind, message)
        })
        .collect();
    list.sort_by(|a, b| a.field.cmp(&b.field));
    list.dedup_by(|a, b| a.field == b.field);
    list
}

fn describe(err: &form::Error<'_>) -> (ErrorType, String) {
    match &err.kind {
        ErrorKind::Missing => (ErrorType::Missing, "Field required".into()),
        ErrorKind::Int(_) => (
            ErrorType::TypeError,
            "Input should be a valid integer".into(),
        ),
        ErrorKind::Bool(_) => (
            ErrorType::TypeError,
            "Input should be a valid boolean".into(),
        ),
        ErrorKind::Float(_) => (
            ErrorType::TypeError,
            "Input should be a valid number".into(),
        ),
        ErrorKind::Utf8(_) => (ErrorType::TypeError, "Input should be valid UTF-8".into()),
        ErrorKind::Duplicate => (ErrorType::ValueError, "Field given more than once".into()),
        ErrorKind::Validation(msg) => (ErrorType::ValueError, msg.to_string()),
        ErrorKind::InvalidChoice { choices } => (
            ErrorType::ValueError,
            format!("Input should be one of: {}", choices.join(", ")),
        ),
        _ => (ErrorType::ValueError, err.kind.to_string()),
    }
}

/// Paging by offset: `skip` 0–10000, `limit` 1–100 (default 10). Deeper
/// pages are v2's cursor.
#[derive(Debug, Clone, Copy, FromForm, JsonSchema, Validate)]
pub struct Paging {
    /// How many items to skip, 0–10000.
    #[field(default = 0)]
    #[validate(range(min = 0, max = MAX_SKIP))]
    #[schemars(range(min = 0, max = 10000))]
    #[serde(default = "default_skip")]
    pub skip: i64,
    /// How many items to return, 1–100.
    #[field(default = DEFAULT_LIMIT)]
    #[validate(range(min = 1, max = 100))]
    #[schemars(range(min = 1, max = 100))]
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// The deepest offset a v1 list or search takes: an offset costs the
/// database every row it skips.
pub const MAX_SKIP: i64 = 10_000;

/// A page's size when the query gives none.
pub const DEFAULT_LIMIT: i64 = 10;

/// Paging's defaults as serde names them, for the documents (read only by
/// the JsonSchema derive of every query struct with `skip` and `limit`).
#[allow(dead_code)]
pub(crate) fn default_skip() -> i64 {
    0
}

#[allow(dead_code)]
pub(crate) fn default_limit() -> i64 {
    DEFAULT_LIMIT
}

/// `?all=true` ends every session of the user.
#[derive(Debug, FromForm, JsonSchema, Validate)]
pub struct LogoutQuery {
    /// End every session of the user, not just this one.
    #[serde(default = "<Flag as Default>::default")]
    pub all: Flag,
}

/// Documents each property of `T` as a query parameter, required only when
/// `T`'s schema says so.
impl<'v, T: FromForm<'v> + Validate + JsonSchema> OpenApiFromForm<'v> for ValidQuery<T> {
    fn form_multi_parameter(
        gen: &mut OpenApiGenerator,
        _name: String,
        _required: bool,
    ) -> rocket_okapi::Result<Vec<Parameter>> {
        let schema = gen.json_schema_no_ref::<T>();
        let Some(object) = schema.object else {
            return Ok(Vec::new());
        };
        Ok(object
            .properties
            .into_iter()
            .map(|(name, property)| {
                let mut property = match property {
                    Schema::Object(object) => object,
                    Schema::Bool(_) => Default::default(),
                };
                let description = property
                    .metadata
                    .as_mut()
                    .and_then(|m| m.description.take());
                // A query parameter is given or absent, never null: a
                // `cursor=null` is the text "null" (and refused as such).
                property.extensions.remove("nullable");
                let required = object.required.contains(&name);
                Parameter {
                    // A query string that is not UTF-8, a broken rule.
                    extensions: errors_extension(gen, &[400, 422]),
                    ..parameter(name, "query", description, required, property)
                }
            })
            .collect())
    }
}

/// A query-string boolean: exactly `true` or `false` (Rocket's own `bool`
/// also takes `on`, `yes`, `1` and an empty value, which the documents do
/// not allow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

#[rocket::async_trait]
impl<'v> rocket::form::FromFormField<'v> for Flag {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        match field.value {
            "true" => Ok(Flag(true)),
            "false" => Ok(Flag(false)),
            // An error of Rocket's own kind for booleans, so that it reads
            // as `type_error` like any other mistyped value.
            _ => Err(form::Error::from(ErrorKind::Bool(
                "not a boolean".parse::<bool>().unwrap_err(),
            ))
            .with_name(field.name)
            .into()),
        }
    }

    fn default() -> Option<Self> {
        Some(Flag(false))
    }
}

impl JsonSchema for Flag {
    fn schema_name() -> String {
        "Flag".to_owned()
    }

    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> Schema {
        bool::json_schema(gen)
    }

    fn is_referenceable() -> bool {
        false
    }
}
