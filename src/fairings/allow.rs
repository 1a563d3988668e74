//! 405 with `Allow` for a path that exists with other methods.
//!
//! Routing alone gets this wrong where a dynamic route shadows a static one:
//! `PUT /api/v1/users/me` would reach `PUT /api/v1/users/<user_id>` with
//! `user_id = "me"`. So requests to a static path are checked here, before
//! routing; other unknown combinations reach the catcher's 405.

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
            .and_then(|table| table.get(request.uri().path().as_str()))
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
