//! `TokenGrant`: an OAuth2 token request (RFC 6749) from a form, for
//! `POST /auth/token`. Every refusal is an OAuth2 error (`invalid_request`,
//! `unsupported_grant_type`).

use rocket::data::{Data, FromData, Outcome};
use rocket::form::{Form, Lenient};
use rocket::http::{ContentType, RawStr};
use rocket::request::Request;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{MediaType, RequestBody};
use rocket_okapi::request::OpenApiFromData;

use super::{form_errors, read_limited};
use crate::domain::auth::{TokenForm, MAX_PASSWORD, MAX_REFRESH_TOKEN, MAX_USERNAME};
use crate::error::{stash, ApiError};

/// What the token endpoint is asked for.
pub enum TokenGrant {
    Password { username: String, password: String },
    Refresh { refresh_token: String },
}

#[rocket::async_trait]
impl<'r> FromData<'r> for TokenGrant {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        match read_grant(req, data).await {
            Ok(grant) => Outcome::Success(grant),
            Err(err) => Outcome::Error((stash(req, err), ())),
        }
    }
}

fn invalid_request(description: impl Into<String>) -> ApiError {
    ApiError::OAuth {
        code: "invalid_request",
        description: description.into(),
    }
}

async fn read_grant(req: &Request<'_>, data: Data<'_>) -> Result<TokenGrant, ApiError> {
    if !req.content_type().is_some_and(|ct| ct.is_form()) {
        return Err(invalid_request(
            "The token endpoint takes an application/x-www-form-urlencoded body; \
             POST /api/v1/auth/login takes JSON",
        ));
    }
    let bytes = read_limited(req, data, "form").await?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| invalid_request("The form is not valid UTF-8"))?;
    // Lenient would take one of two `username`s silently; RFC 6749 says a
    // repeated parameter is an invalid request.
    let mut seen = std::collections::HashSet::new();
    let twice = Form::values(text)
        .map(|field| RawStr::new(field.name.source().as_str()).url_decode_lossy())
        .find(|name| !seen.insert(name.to_string()));
    if let Some(name) = twice {
        return Err(invalid_request(format!(
            "The form gives the field {name:?} more than once"
        )));
    }
    let form = Form::<Lenient<TokenForm>>::parse(text)
        .map_err(|errors| ApiError::Validation(form_errors("body", &errors)).into_oauth())?
        .into_inner();
    // Each field's bound holds whichever grant is asked for, as the
    // document says: a password grant with an over-long refresh_token is
    // refused, not the refresh_token ignored.
    for (name, value, max) in [
        ("username", &form.username, MAX_USERNAME),
        ("password", &form.password, MAX_PASSWORD),
        ("refresh_token", &form.refresh_token, MAX_REFRESH_TOKEN),
    ] {
        if value.as_ref().is_some_and(|value| value.len() > max) {
            return Err(invalid_request(format!(
                "{name} is longer than {max} bytes"
            )));
        }
    }
    let bounded = |name: &str, value: Option<String>| {
        value.ok_or_else(|| invalid_request(format!("The {} grant needs {name}", form.grant_type)))
    };
    match form.grant_type.as_str() {
        "password" => Ok(TokenGrant::Password {
            username: bounded("username", form.username.clone())?,
            password: bounded("password", form.password.clone())?,
        }),
        "refresh_token" => Ok(TokenGrant::Refresh {
            refresh_token: bounded("refresh_token", form.refresh_token.clone())?,
        }),
        other => Err(ApiError::OAuth {
            code: "unsupported_grant_type",
            description: format!(
                "Unsupported grant_type {other:?}: use \"password\" or \"refresh_token\""
            ),
        }),
    }
}

impl<'r> OpenApiFromData<'r> for TokenGrant {
    fn request_body(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        let form = MediaType {
            schema: Some(gen.json_schema::<TokenForm>()),
            ..Default::default()
        };
        Ok(RequestBody {
            content: [(ContentType::Form.to_string(), form)]
                .into_iter()
                .collect(),
            required: true,
            // RFC 6749's refusals, a stalled body, a body over the limit.
            extensions: crate::error::errors_extension(gen, &[400, 408, 413]),
            ..Default::default()
        })
    }
}
