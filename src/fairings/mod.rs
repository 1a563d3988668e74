//! Fairings: cross-cutting behaviour around every request.

pub mod allow;
pub mod client_ip;
pub mod cors;
pub mod rate_limit;
pub mod reject;
pub mod request_id;
pub mod request_limits;

use rocket::Request;

/// The path as Rocket's router reads it: its non-empty, percent-decoded
/// segments. `//api/v1/auth/login/`, `/api/v1/auth/logi%6E` and
/// `/api/v1/auth/login` reach the same handler, so the fairings that decide
/// by path (rate limits, the method check) decide on this, never on the
/// raw spelling.
pub fn routed_path(request: &Request<'_>) -> String {
    let mut path = String::with_capacity(request.uri().path().as_str().len());
    for segment in request.uri().path().segments() {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Whether the router reads the request's path as the static `path`
/// (`/api/v1/users`), compared segment by segment without allocating: the
/// rate-limit fairing asks on every request.
pub fn routes_to(request: &Request<'_>, path: &str) -> bool {
    request
        .uri()
        .path()
        .segments()
        .eq(path.split('/').filter(|segment| !segment.is_empty()))
}
