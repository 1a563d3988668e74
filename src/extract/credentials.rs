//! `Credentials`: a username and password from a JSON body or an OAuth2
//! password-grant form, for `POST /auth/login`.

use rocket::data::{Data, FromData, Outcome};
use rocket::form::{Form, Lenient};
use rocket::http::{ContentType, RawStr};
use rocket::request::Request;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{MediaType, RequestBody};
use rocket_okapi::request::OpenApiFromData;

use super::{form_errors, parse_json_body, read_limited};
use crate::domain::auth::{LoginForm, LoginRequest};
use crate::domain::ErrorType;
use crate::error::{stash, ApiError};

/// Login credentials, from a JSON body or an OAuth2 password-grant form.
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[rocket::async_trait]
impl<'r> FromData<'r> for Credentials {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        match read_credentials(req, data).await {
            Ok(credentials) => Outcome::Success(credentials),
            Err(err) => Outcome::Error((stash(req, err), ())),
        }
    }
}

async fn read_credentials(req: &Request<'_>, data: Data<'_>) -> Result<Credentials, ApiError> {
    match req.content_type() {
        Some(ct) if ct.is_json() => {
            let body: LoginRequest = parse_json_body(req, data).await?;
            Ok(Credentials {
                username: body.username,
                password: body.password,
            })
        }
        Some(ct) if ct.is_form() => {
            let bytes = read_limited(req, data, "form").await?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                ApiError::validation(
                    "body",
                    ErrorType::JsonInvalid,
                    "The form is not valid UTF-8",
                )
            })?;
            // Lenient would take one of two `username`s silently: a form
            // that says a field twice is refused instead.
            let mut seen = std::collections::HashSet::new();
            let twice = Form::values(text)
                .map(|field| RawStr::new(field.name.source().as_str()).url_decode_lossy())
                .find(|name| !seen.insert(name.to_string()));
            if let Some(name) = twice {
                return Err(ApiError::BadRequest(format!(
                    "The form gives the field {name:?} more than once"
                )));
            }
            let form = Form::<Lenient<LoginForm>>::parse(text)
                .map_err(|errors| ApiError::Validation(form_errors("body", &errors)))?
                .into_inner();
            if form.grant_type.as_deref().is_some_and(|g| g != "password") {
                return Err(ApiError::BadRequest(
                    "Unsupported grant_type: only \"password\" is supported".into(),
                ));
            }
            Ok(Credentials {
                username: form.username,
                password: form.password,
            })
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json or application/x-www-form-urlencoded".into(),
        )),
    }
}

impl<'r> OpenApiFromData<'r> for Credentials {
    fn request_body(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        let json = MediaType {
            schema: Some(gen.json_schema::<LoginRequest>()),
            ..Default::default()
        };
        let form = MediaType {
            schema: Some(gen.json_schema::<LoginForm>()),
            ..Default::default()
        };
        Ok(RequestBody {
            content: [
                (ContentType::JSON.to_string(), json),
                (ContentType::Form.to_string(), form),
            ]
            .into_iter()
            .collect(),
            required: true,
            ..Default::default()
        })
    }
}
