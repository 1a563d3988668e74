//! JSON for every status Rocket answers on its own: failed guards, unknown
//! routes, oversized or malformed requests, panics.

use rocket::http::{Method, Status};
use rocket::Request;

use crate::error::{take_stashed, ApiError};
use crate::fairings::allow::allow_header;

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

/// The methods of the mounted routes whose path matches the request's, when
/// the request's own method is not among them.
fn allowed_methods(request: &Request<'_>) -> Option<String> {
    let path: Vec<&str> = request.uri().path().segments().collect();
    let matching: Vec<_> = request
        .rocket()
        .routes()
        .filter(|route| path_matches(route.uri.path(), &path))
        .collect();
    // A static path (`/users/me`) is not an instance of a dynamic one
    // (`/users/<user_id>`) beside it.
    let exact = matching.iter().any(|route| !route.uri.path().contains('<'));
    let methods: Vec<Method> = matching
        .iter()
        .filter(|route| !exact || !route.uri.path().contains('<'))
        .map(|route| route.method)
        .collect();
    if methods.is_empty() || methods.contains(&request.method()) {
        return None;
    }
    Some(allow_header(&methods))
}

/// Whether a route path such as `/api/v1/users/<user_id>` matches the
/// request's segments (`<x>` one segment, `<x..>` the rest).
fn path_matches(pattern: &str, path: &[&str]) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in pattern.iter().enumerate() {
        if part.starts_with('<') && part.ends_with("..>") {
            return true;
        }
        match path.get(i) {
            None => return false,
            Some(segment) if part.starts_with('<') && part.ends_with('>') => {
                if segment.is_empty() {
                    return false;
                }
            }
            Some(segment) if segment != part => return false,
            Some(_) => {}
        }
    }
    pattern.len() == path.len()
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn route_patterns_match_like_rocket() {
        let cases = [
            ("/api/v1/users", &["api", "v1", "users"][..], true),
            (
                "/api/v1/users/<user_id>",
                &["api", "v1", "users", "7"][..],
                true,
            ),
            (
                "/api/v1/users/<user_id>",
                &["api", "v1", "users"][..],
                false,
            ),
            ("/api/v1/users", &["api", "v1", "users", "7"][..], false),
            ("/docs/<path..>", &["docs", "a", "b"][..], true),
            (
                "/api/v1/users/me",
                &["api", "v1", "users", "you"][..],
                false,
            ),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(path_matches(pattern, path), expected, "{pattern} {path:?}");
        }
    }
}
