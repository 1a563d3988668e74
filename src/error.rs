//! One error type for every failure, rendered as the API's JSON shape
//! (README, "Errors").
//!
//! Handlers return `Result<_, ApiError>`; guards that fail stash their
//! `ApiError` in the request's local cache and the catcher renders it, so a
//! guard's reason reaches the client with the same shape as a handler's.

use std::borrow::Borrow;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{
    MediaType, Object, RefOr, Response as OpenApiResponse, Responses,
};
use rocket_okapi::response::OpenApiResponderInner;
use schemars::JsonSchema;
use serde::Serialize;

use crate::db::DbError;
use crate::domain::{ErrorType, Invalid};

/// One failed rule of a request: where (`body.username`, `query.limit`,
/// `path.user_id`), what (a human message), and a stable machine `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub kind: ErrorType,
}

impl FieldError {
    pub fn new(field: impl Into<String>, kind: ErrorType, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            kind,
        }
    }
}

/// The body of every error response except validation failures.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A human-readable message.
    pub detail: String,
}

/// The body of a 422: every failing rule at once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// Seconds a client is told to wait after a 503 of a dependency (the
/// database) that cannot serve now.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body that stopped arriving: 408.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Rate limit exceeded")]
    TooManyRequests { retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// Too much work queued: 503 with `Retry-After`.
    #[error("Too busy, try again")]
    Busy { retry_after: u64 },
    /// A refusal of the OAuth2 token endpoint (RFC 6749, 5.2): 400 with
    /// `error` (`invalid_request`, `invalid_grant`,
    /// `unsupported_grant_type`) and `error_description` beside `detail`.
    #[error("{description}")]
    OAuth {
        code: &'static str,
        description: String,
    },
    /// Any other status, with Rocket's reason phrase as the message.
    #[error("{0}")]
    Status(Status),
    /// A bug or an unexpected failure: logged with what was being done and
    /// its cause, never shown.
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ApiError {
    /// For `map_err`: an unexpected failure while doing `context`
    /// (`"storing the upload"`), logged with its cause.
    pub fn internal<E>(context: &'static str) -> impl FnOnce(E) -> ApiError
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        move |cause| ApiError::Internal {
            context,
            cause: cause.into(),
        }
    }

    pub fn validation(
        field: impl Into<String>,
        kind: ErrorType,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Validation(vec![FieldError::new(field, kind, message)])
    }

    /// This error as the token endpoint answers it: a refused sign-in or
    /// refresh token is `invalid_grant`, a malformed request
    /// `invalid_request`; limits and server errors stay as they are.
    pub fn into_oauth(self) -> Self {
        let oauth = |code, description| ApiError::OAuth { code, description };
        match self {
            ApiError::Unauthorized(message) | ApiError::Forbidden(message) => {
                oauth("invalid_grant", message)
            }
            ApiError::BadRequest(message) => oauth("invalid_request", message),
            ApiError::Validation(errors) => oauth(
                "invalid_request",
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => other,
        }
    }

    pub fn user_not_found() -> Self {
        ApiError::NotFound("User not found".into())
    }

    pub fn status(&self) -> Status {
        match self {
            ApiError::Validation(_) => Status::UnprocessableEntity,
            ApiError::BadRequest(_) | ApiError::OAuth { .. } => Status::BadRequest,
            ApiError::Unauthorized(_) => Status::Unauthorized,
            ApiError::Forbidden(_) => Status::Forbidden,
            ApiError::NotFound(_) => Status::NotFound,
            ApiError::MethodNotAllowed { .. } => Status::MethodNotAllowed,
            ApiError::Conflict(_) => Status::Conflict,
            ApiError::PayloadTooLarge(_) => Status::PayloadTooLarge,
            ApiError::RequestTimeout(_) => Status::RequestTimeout,
            ApiError::UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            ApiError::TooManyRequests { .. } => Status::TooManyRequests,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => Status::ServiceUnavailable,
            ApiError::Status(status) => *status,
            ApiError::Internal { .. } => Status::InternalServerError,
        }
    }

    /// The human message: opaque for server errors.
    fn message(&self) -> String {
        match self {
            ApiError::Internal { .. } => "Internal server error".into(),
            ApiError::MethodNotAllowed { .. } => "Method not allowed".into(),
            ApiError::Status(status) => default_message(*status),
            other => other.to_string(),
        }
    }

    fn body(&self) -> String {
        let json = match self {
            ApiError::Validation(errors) => serde_json::to_string(&ValidationErrorBody {
                detail: errors.clone(),
            }),
            ApiError::OAuth { code, description } => serde_json::to_string(&serde_json::json!({
                "error": code,
                "error_description": description,
                "detail": description,
            })),
            other => serde_json::to_string(&ErrorBody {
                detail: other.message(),
            }),
        };
        json.unwrap_or_else(|_| r#"{"detail":"Internal server error"}"#.into())
    }
}

fn default_message(status: Status) -> String {
    match status.code {
        400 => "Bad request".into(),
        401 => "Not authenticated".into(),
        403 => "Not allowed".into(),
        404 => "Not found".into(),
        408 => "Request body timed out".into(),
        413 => "Request body too large".into(),
        415 => "Unsupported media type".into(),
        422 => "Unprocessable request".into(),
        431 => "Request header fields too large".into(),
        503 => "Service unavailable".into(),
        code if code >= 500 => "Internal server error".into(),
        _ => status.reason_lossy().into(),
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        from_db(err)
    }
}

/// The failure of a batch of reads, which each request in it answers as if
/// it had failed alone.
impl From<Arc<DbError>> for ApiError {
    fn from(err: Arc<DbError>) -> Self {
        from_db(err)
    }
}

/// A database failure, owned or shared: what the client is told, or a bug.
fn from_db<E>(err: E) -> ApiError
where
    E: Borrow<DbError> + std::error::Error + Send + Sync + 'static,
{
    db_answer(err.borrow()).unwrap_or_else(|| ApiError::Internal {
        context: "using the database",
        cause: Box::new(err),
    })
}

/// What the client is told of a database failure that is not a bug.
fn db_answer(err: &DbError) -> Option<ApiError> {
    Some(match err {
        DbError::Conflict(conflict) => ApiError::Conflict(conflict.message().into()),
        DbError::InvalidValue(cause) => {
            tracing::warn!("refused a value the database cannot take: {cause}");
            ApiError::BadRequest("The request holds a value that cannot be stored".into())
        }
        DbError::Unavailable(cause) => {
            tracing::warn!("database unavailable: {cause}");
            ApiError::Unavailable("Database unavailable".into())
        }
        DbError::TimedOut(cause) => {
            tracing::warn!("stopped a statement at its time limit: {cause}");
            ApiError::Unavailable(
                "The query took too long and was stopped; narrow it and try again".into(),
            )
        }
        _ => return None,
    })
}

/// A domain rule broken after request validation passed: the request is
/// still the client's fault, so it is a 422 rather than a 500.
impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::validation("body", invalid.kind, invalid.message)
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        // The request's span names it (and the access line its method,
        // path and status).
        if status.code >= 500 {
            match &self {
                ApiError::Internal { context, cause } => {
                    tracing::error!("failed {}: {}", context, error_chain(cause.as_ref()))
                }
                other => tracing::warn!("answered {status}: {other}"),
            }
        }
        let body = self.body();
        let mut response = Response::build();
        response
            .status(status)
            .header(ContentType::JSON)
            .sized_body(body.len(), Cursor::new(body));
        match self {
            ApiError::Unauthorized(_) => {
                response.header(Header::new("WWW-Authenticate", "Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.header(Header::new("Allow", allow));
            }
            ApiError::TooManyRequests { retry_after } | ApiError::Busy { retry_after } => {
                response.header(Header::new("Retry-After", retry_after.to_string()));
            }
            // A dependency that cannot serve now: worth trying again soon.
            ApiError::Unavailable(_) => {
                response.header(Header::new(
                    "Retry-After",
                    UNAVAILABLE_RETRY_AFTER.to_string(),
                ));
            }
            _ => {}
        }
        response.ok()
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where a failing guard leaves its error for the catcher.
#[derive(Default)]
struct StashedError(Mutex<Option<ApiError>>);

/// Keeps `error` for the catcher and returns the status the guard should fail
/// with.
pub fn stash(request: &Request<'_>, error: ApiError) -> Status {
    let status = error.status();
    let slot = request.local_cache(StashedError::default);
    if let Ok(mut slot) = slot.0.lock() {
        *slot = Some(error);
    }
    status
}

/// Takes whatever error was stashed.
pub fn take_any_stashed(request: &Request<'_>) -> Option<ApiError> {
    request
        .local_cache(StashedError::default)
        .0
        .lock()
        .ok()?
        .take()
}

/// Takes the error a guard stashed, if it matches the status being caught.
pub fn take_stashed(request: &Request<'_>, status: Status) -> Option<ApiError> {
    let slot = request.local_cache(StashedError::default);
    let mut slot = slot.0.lock().ok()?;
    match slot.as_ref() {
        Some(err) if err.status() == status => slot.take(),
        _ => None,
    }
}

/// What an error status means, as the documents say it.
pub fn error_meaning(code: u16) -> &'static str {
    match code {
        400 => "The request is malformed.",
        401 => "Missing, invalid, expired or revoked credentials.",
        403 => "Signed in, but not allowed to do this.",
        404 => "The resource does not exist (or is not visible to you).",
        408 => {
            "The request body stopped arriving (nothing for 10 s; for an upload, \
             `upload.idle_timeout` seconds)."
        }
        409 => "The change conflicts with existing data (a taken name, the last admin).",
        413 => "The request body is over the configured limit.",
        415 => "The request body is not of a supported content type.",
        422 => "The request failed validation; every failing rule is listed.",
        429 => "Rate limit exceeded; see `Retry-After`.",
        431 => "The request's header fields total more than 32 KiB.",
        500 => "An unexpected server error; the body never contains internals.",
        503 => {
            "A dependency (the database) is unavailable, or too many passwords are \
             waiting to be hashed; retry later (after `Retry-After` seconds when given)."
        }
        _ => "An error.",
    }
}

/// The documented error responses of `codes`, each with its JSON body.
pub fn error_responses(gen: &mut OpenApiGenerator, codes: &[u16]) -> Responses {
    let mut responses = Responses::default();
    for &code in codes {
        let schema = match code {
            422 => gen.json_schema::<ValidationErrorBody>(),
            _ => gen.json_schema::<ErrorBody>(),
        };
        let media = MediaType {
            schema: Some(schema),
            ..Default::default()
        };
        let response = OpenApiResponse {
            description: error_meaning(code).to_owned(),
            content: [("application/json".to_owned(), media)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        responses
            .responses
            .insert(code.to_string(), RefOr::Object(response));
    }
    responses
}

/// The extension that carries an extractor's error statuses (a body's, a
/// path or query parameter's) to its operation: okapi asks only request
/// guards and responders for responses, so extractors put theirs here and
/// `docs` moves them into the operation's responses.
pub const ERRORS_EXTENSION: &str = "x-roster-errors";

/// `codes` documented as [`ERRORS_EXTENSION`], for a request body's or a
/// parameter's extensions.
pub fn errors_extension(gen: &mut OpenApiGenerator, codes: &[u16]) -> Object {
    let responses = error_responses(gen, codes).responses;
    let mut extensions = Object::default();
    extensions.insert(
        ERRORS_EXTENSION.to_owned(),
        serde_json::to_value(responses).expect("responses serialize"),
    );
    extensions
}

/// A handler that answers no error of its own beyond its guards' and
/// extractors' can still fail unexpectedly.
impl OpenApiResponderInner for ApiError {
    fn responses(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<Responses> {
        Ok(error_responses(gen, &[500]))
    }
}

/// The statuses a handler answers itself, beyond those of its guards and
/// extractors (which document their own), named in its return type so that
/// its operation lists exactly what it can answer:
/// `Result<Json<User>, Fails<{ NOT_FOUND | CONFLICT }>>`. A `?` on anything
/// that converts into an [`ApiError`] converts into it.
pub struct Fails<const STATUSES: u32>(pub ApiError);

/// The bits of [`Fails`].
pub mod fails {
    pub const BAD_REQUEST: u32 = 1 << 0;
    pub const UNAUTHORIZED: u32 = 1 << 1;
    pub const FORBIDDEN: u32 = 1 << 2;
    pub const NOT_FOUND: u32 = 1 << 3;
    pub const CONFLICT: u32 = 1 << 4;
    pub const UNAVAILABLE: u32 = 1 << 5;

    pub(super) const CODES: [(u32, u16); 6] = [
        (BAD_REQUEST, 400),
        (UNAUTHORIZED, 401),
        (FORBIDDEN, 403),
        (NOT_FOUND, 404),
        (CONFLICT, 409),
        (UNAVAILABLE, 503),
    ];
}

impl<E: Into<ApiError>, const STATUSES: u32> From<E> for Fails<STATUSES> {
    fn from(err: E) -> Self {
        Fails(err.into())
    }
}

impl<'r, const STATUSES: u32> Responder<'r, 'static> for Fails<STATUSES> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        self.0.respond_to(request)
    }
}

impl<const STATUSES: u32> OpenApiResponderInner for Fails<STATUSES> {
    fn responses(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<Responses> {
        let codes: Vec<u16> = fails::CODES
            .iter()
            .filter(|(bit, _)| STATUSES & bit != 0)
            .map(|&(_, code)| code)
            .chain([500])
            .collect();
        Ok(error_responses(gen, &codes))
    }
}
