//! Requests refused before routing for their form rather than their
//! content: headers that total more than 32 KiB (431), and a query string
//! that is not UTF-8 once decoded (400; Rocket would otherwise replace the
//! bad bytes and carry on). More than 100 header fields never get this far:
//! the HTTP server refuses them with 431 itself.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Status;
use rocket::{Data, Request};

use super::reject::reject;
use crate::error::ApiError;

pub const MAX_HEADER_BYTES: usize = 32 * 1024;

pub struct RequestLimits;

#[rocket::async_trait]
impl Fairing for RequestLimits {
    fn info(&self) -> Info {
        Info {
            name: "Request limits",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|h| h.name().as_str().len() + h.value().len() + 4)
            .sum();
        if header_bytes > MAX_HEADER_BYTES {
            reject(
                request,
                ApiError::Status(Status::RequestHeaderFieldsTooLarge),
            );
            return;
        }
        let bad_query = request
            .uri()
            .query()
            .is_some_and(|query| query.raw().percent_decode().is_err());
        if bad_query {
            reject(
                request,
                ApiError::BadRequest("The query string is not valid UTF-8".into()),
            );
        }
    }
}
