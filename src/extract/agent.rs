//! The client's `User-Agent`, as a session remembers it.

use rocket::request::{FromRequest, Outcome, Request};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::request::{OpenApiFromRequest, RequestHeaderInput};

/// The most of a `User-Agent` a session keeps.
const MAX_CHARS: usize = 256;

/// The request's `User-Agent`, at most 256 characters, if it sent one.
pub struct UserAgent(pub Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for UserAgent {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let agent = request
            .headers()
            .get_one("User-Agent")
            .map(|value| value.chars().take(MAX_CHARS).collect::<String>())
            .filter(|value| !value.trim().is_empty());
        Outcome::Success(UserAgent(agent))
    }
}

/// Any client may send one; the documents leave it to HTTP.
impl<'r> OpenApiFromRequest<'r> for UserAgent {
    fn from_request_input(
        _gen: &mut OpenApiGenerator,
        _name: String,
        _required: bool,
    ) -> rocket_okapi::Result<RequestHeaderInput> {
        Ok(RequestHeaderInput::None)
    }
}
