//! CORS from the `cors` setting, with `rocket_cors`: only the listed origins
//! get `Access-Control-Allow-Origin`, and preflights are answered for them.

use rocket::fairing::AdHoc;
use rocket::http::Method;
use rocket_cors::{AllowedHeaders, AllowedOrigins, Cors, CorsOptions};

use crate::config::CorsSettings;

/// Where `rocket_cors` routes refused cross-origin requests.
pub const REFUSED_BASE: &str = "/__roster/cors";

pub fn fairing(settings: &CorsSettings) -> Result<Option<Cors>, String> {
    if settings.allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = if settings.allowed_origins.iter().any(|o| o == "*") {
        AllowedOrigins::all()
    } else {
        AllowedOrigins::some_exact(&settings.allowed_origins)
    };
    let methods = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ];
    let expose = [
        "Location",
        "X-Request-Id",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Retry-After",
        "WWW-Authenticate",
    ];
    CorsOptions {
        allowed_origins: origins,
        allowed_methods: methods.into_iter().map(From::from).collect(),
        allowed_headers: AllowedHeaders::some(&["Authorization", "Content-Type", "X-Request-Id"]),
        allow_credentials: settings.allow_credentials,
        expose_headers: expose.iter().map(|h| h.to_string()).collect(),
        max_age: Some(600),
        fairing_route_base: REFUSED_BASE.to_owned(),
        ..CorsOptions::default()
    }
    .to_cors()
    .map(Some)
    .map_err(|e| format!("cors: {e}"))
}

/// Caches must keep answers for different origins apart (`rocket_cors`
/// omits `Vary: Origin` for a fixed list of origins).
pub fn vary_origin() -> AdHoc {
    AdHoc::on_response("Vary: Origin", |request, response| {
        Box::pin(async move {
            if request.headers().contains("Origin") {
                response.adjoin_raw_header("Vary", "Origin");
            }
        })
    })
}
