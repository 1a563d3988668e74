//! 405 with `Allow` for a path that exists with other methods: the one
//! owner of that rule.
//!
//! Routing alone gets this wrong where a dynamic route shadows a static one:
//! `PUT /api/v1/users/me` would reach `PUT /api/v1/users/<user_id>` with
//! `user_id = "me"`. So requests to a static path are checked here, before
//! routing ([`MethodCheck`]); a request no route took reaches the catcher,
//! which asks [`allowed_methods`].

use std::collections::HashMap;
use std::sync::OnceLock;

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::Method;
use rocket::{Build, Data, Request, Rocket};

use super::reject::reject;
use crate::error::ApiError;

#[derive(Default)]
pub struct MethodCheck {
    /// Static route paths and the methods each accepts.
    static_paths: OnceLock<HashMap<String, Vec<Method>>>,
}

/// The `Allow` header for `methods` (HEAD wherever GET is).
pub fn allow_header(methods: &[Method]) -> String {
    let mut methods = methods.to_vec();
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.sort_by_key(|m| m.as_str());
    methods.dedup();
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[rocket::async_trait]
impl Fairing for MethodCheck {
    fn info(&self) -> Info {
        Info {
            name: "Method check",
            kind: Kind::Ignite | Kind::Request,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let mut table: HashMap<String, Vec<Method>> = HashMap::new();
        for route in rocket.routes() {
            let path = route.uri.path();
            if !path.contains('<') {
                table
                    .entry(path.to_string())
                    .or_default()
                    .push(route.method);
            }
        }
        let _ = self.static_paths.set(table);
        Ok(rocket)
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let method = request.method();
        let preflight = method == Method::Options
            && request.headers().contains("Access-Control-Request-Method");
        if preflight {
            return; // CORS answers it, or the catcher does.
        }
        let Some(methods) = self
            .static_paths
            .get()
            .and_then(|table| table.get(super::routed_path(request).as_str()))
        else {
            return;
        };
        let allowed =
            methods.contains(&method) || (method == Method::Head && methods.contains(&Method::Get));
        if !allowed {
            let allow = allow_header(methods);
            reject(request, ApiError::MethodNotAllowed { allow });
        }
    }
}

/// The methods of the mounted routes whose path matches the request's, when
/// the request's own method is not among them.
pub fn allowed_methods(request: &Request<'_>) -> Option<String> {
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
