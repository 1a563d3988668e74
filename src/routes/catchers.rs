//! JSON for every status Rocket answers on its own: failed guards, unknown
//! routes, oversized or malformed requests, panics.

use rocket::http::Status;
use rocket::Request;

use crate::error::{take_stashed, ApiError};
use crate::fairings::allow::allowed_methods;

/// Renders a guard's stashed error, or a plain `{"detail": ...}` for the
/// status. A 404 for a path that exists under other methods becomes a 405
/// with `Allow`.
#[catch(default)]
pub fn json(status: Status, request: &Request<'_>) -> ApiError {
    if let Some(err) = take_stashed(request, status) {
        return err;
    }
    if status == Status::NotFound {
        if let Some(allow) = allowed_methods(request) {
            return ApiError::MethodNotAllowed { allow };
        }
        return ApiError::NotFound("Not found".into());
    }
    ApiError::Status(status)
}
