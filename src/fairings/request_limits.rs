//! Requests refused before routing for their form rather than their
//! content: headers that total more than 32 KiB (431), and a query string
//! that is not UTF-8 once decoded (400; Rocket would otherwise replace the
//! bad bytes and carry on). More than 100 header fields never get this far:
//! the HTTP server refuses them with 431 itself.
//!
//! It also undoes Rocket's method override: Rocket turns a POST form whose
//! first field is `_method=DELETE` into a DELETE before any fairing runs,
//! which would let a cross-site form (no preflight) reach PUT, PATCH and
//! DELETE routes. Here a request's method is the one on its request line.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::form::Form;
use rocket::http::{Method, Status};
use rocket::{Data, Request};

use super::reject::reject;
use crate::error::ApiError;

pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// As much of a body as Rocket reads looking for `_method`.
const MAX_METHOD_FIELD: usize = 512;

pub struct RequestLimits;

#[rocket::async_trait]
impl Fairing for RequestLimits {
    fn info(&self) -> Info {
        Info {
            name: "Request limits",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, data: &mut Data<'_>) {
        if request.method() != Method::Post && request.content_type().is_some_and(|ct| ct.is_form())
        {
            let method = request.method();
            let peeked = data.peek(MAX_METHOD_FIELD).await;
            let overridden = std::str::from_utf8(peeked)
                .ok()
                .and_then(|raw| Form::values(raw).next())
                .is_some_and(|field| {
                    field.name == "_method" && field.value.parse::<Method>().ok() == Some(method)
                });
            if overridden {
                request.set_method(Method::Post);
            }
        }
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
