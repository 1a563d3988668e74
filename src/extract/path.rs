//! Path parameters, with parse failures reported as `path.<name>`.

use rocket::request::FromParam;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::Parameter;
use rocket_okapi::request::OpenApiFromParam;
use schemars::schema::{InstanceType, NumberValidation, SchemaObject};

use super::parameter;
use crate::domain::ErrorType;
use crate::error::{errors_extension, ApiError};

/// A positive id in the path, named `user_id` in errors. Ids stay within
/// JavaScript's safe integers (2^53 - 1), a bound JSON Schema can state
/// exactly, unlike `i64::MAX`.
/// Always matches the route, so that `/users/abc` is a 422 naming the field
/// rather than a 404.
pub struct Id(Result<i64, ApiError>);

impl Id {
    const NAME: &'static str = "user_id";
    pub const MAX: i64 = (1 << 53) - 1;

    pub fn get(self) -> Result<i64, ApiError> {
        self.0
    }
}

impl<'a> FromParam<'a> for Id {
    type Error = std::convert::Infallible;

    fn from_param(param: &'a str) -> Result<Self, Self::Error> {
        let field = format!("path.{}", Self::NAME);
        Ok(Id(match param.parse::<i64>() {
            Ok(id) if (1..=Self::MAX).contains(&id) => Ok(id),
            Ok(id) if id > Self::MAX => Err(ApiError::validation(
                field,
                ErrorType::LessThanEqual,
                format!("Input should be less than or equal to {}", Self::MAX),
            )),
            Ok(_) => Err(ApiError::validation(
                field,
                ErrorType::GreaterThanEqual,
                "Input should be greater than or equal to 1",
            )),
            Err(_) => Err(ApiError::validation(
                field,
                ErrorType::TypeError,
                "Input should be a valid integer",
            )),
        }))
    }
}

impl<'a> OpenApiFromParam<'a> for Id {
    fn path_parameter(gen: &mut OpenApiGenerator, name: String) -> rocket_okapi::Result<Parameter> {
        let schema = SchemaObject {
            instance_type: Some(InstanceType::Integer.into()),
            format: Some("int64".to_owned()),
            number: Some(Box::new(NumberValidation {
                minimum: Some(1.0),
                maximum: Some(Self::MAX as f64),
                ..Default::default()
            })),
            ..Default::default()
        };
        Ok(Parameter {
            // Not a number, or out of bounds.
            extensions: errors_extension(gen, &[422]),
            ..parameter(
                name,
                "path",
                Some("The user's id.".to_owned()),
                true,
                schema,
            )
        })
    }
}

/// What a UUID in the path names, for the documents.
pub trait Names {
    const DESCRIPTION: &'static str;
}

/// An upload (`UploadId`).
pub struct Upload;
impl Names for Upload {
    const DESCRIPTION: &'static str = "The upload's id.";
}

/// A session (`SessionId`).
pub struct Session;
impl Names for Session {
    const DESCRIPTION: &'static str = "The session's id (the `sid` of its tokens).";
}

/// A hyphenated UUID in the path, named `id` in errors: an upload's or a
/// session's. Always matches the route, so that a malformed one is a 422
/// naming the field.
pub struct UuidId<N>(Result<String, ApiError>, std::marker::PhantomData<N>);

pub type UploadId = UuidId<Upload>;
pub type SessionId = UuidId<Session>;

impl<N> UuidId<N> {
    pub fn get(self) -> Result<String, ApiError> {
        self.0
    }
}

impl<'a, N> FromParam<'a> for UuidId<N> {
    type Error = std::convert::Infallible;

    fn from_param(param: &'a str) -> Result<Self, Self::Error> {
        let parsed = match uuid::Uuid::try_parse(param) {
            Ok(id) if param.len() == 36 => Ok(id.hyphenated().to_string()),
            _ => Err(ApiError::validation(
                "path.id",
                ErrorType::TypeError,
                "Input should be a UUID (8-4-4-4-12 hexadecimal digits)",
            )),
        };
        Ok(UuidId(parsed, std::marker::PhantomData))
    }
}

impl<'a, N: Names> OpenApiFromParam<'a> for UuidId<N> {
    fn path_parameter(gen: &mut OpenApiGenerator, name: String) -> rocket_okapi::Result<Parameter> {
        let schema = SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            format: Some("uuid".to_owned()),
            ..Default::default()
        };
        Ok(Parameter {
            // Not a UUID.
            extensions: errors_extension(gen, &[422]),
            ..parameter(name, "path", Some(N::DESCRIPTION.to_owned()), true, schema)
        })
    }
}
