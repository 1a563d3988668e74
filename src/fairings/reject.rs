//! Answering from a fairing. Rocket fairings cannot respond, so a fairing
//! that refuses a request stashes its error and re-routes the request to an
//! internal route that returns it: the handler the client asked for never
//! runs.

use rocket::http::uri::Origin;
use rocket::http::Method;
use rocket::route::{Handler, Outcome};
use rocket::{Data, Request, Route};

use crate::error::{stash, take_any_stashed, ApiError};

/// Where refused requests go; a client asking for it directly gets a 404.
pub const PATH: &str = "/__roster/reject";

/// Refuses `request` with `error`.
pub fn reject(request: &mut Request<'_>, error: ApiError) {
    stash(request, error);
    request.set_uri(Origin::parse(PATH).expect("a valid static URI"));
}

#[derive(Clone)]
struct Rejected;

#[rocket::async_trait]
impl Handler for Rejected {
    async fn handle<'r>(&self, request: &'r Request<'_>, _: Data<'r>) -> Outcome<'r> {
        let error = take_any_stashed(request).unwrap_or(ApiError::NotFound("Not found".into()));
        Outcome::from(request, error)
    }
}

/// The internal route, for every method.
pub fn routes() -> Vec<Route> {
    [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Trace,
        Method::Connect,
        Method::Patch,
    ]
    .into_iter()
    .map(|method| Route::new(method, PATH, Rejected))
    .collect()
}
