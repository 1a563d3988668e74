//! CORS from the `cors` setting, with `rocket_cors`: only the listed origins
//! get `Access-Control-Allow-Origin`, and preflights are answered for them.
//! A request from the server's own origin (Swagger UI at `/docs`, whose
//! browser sends `Origin` on a POST) is not a cross-origin request and is
//! never refused.

use rocket::fairing::{self, AdHoc, Fairing, Info};
use rocket::http::Method;
use rocket::{Build, Data, Request, Response, Rocket};
use rocket_cors::{AllowedHeaders, AllowedOrigins, Cors, CorsOptions};

use super::client_ip::TrustedProxies;
use crate::config::CorsSettings;

/// The response headers a browser script on an allowed origin may read.
pub const EXPOSED: [&str; 8] = [
    "Content-Disposition",
    "Location",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-Request-Id",
    "WWW-Authenticate",
];

/// Where `rocket_cors` routes refused cross-origin requests.
pub const REFUSED_BASE: &str = "/__roster/cors";

pub fn fairing(settings: &CorsSettings) -> Result<Option<CrossOrigin>, String> {
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
    let headers = match settings.allowed_headers.is_empty() {
        true => AllowedHeaders::all(),
        false => AllowedHeaders::some(
            &settings
                .allowed_headers
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    };
    CorsOptions {
        allowed_origins: origins,
        allowed_methods: methods.into_iter().map(From::from).collect(),
        allowed_headers: headers,
        allow_credentials: settings.allow_credentials,
        expose_headers: EXPOSED.iter().map(|h| h.to_string()).collect(),
        max_age: Some(600),
        fairing_route_base: REFUSED_BASE.to_owned(),
        ..CorsOptions::default()
    }
    .to_cors()
    .map(|cors| Some(CrossOrigin(cors)))
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

/// `rocket_cors`'s fairing, except for requests from the server's own
/// origin: a browser sends `Origin` on same-origin writes, and the
/// server's own pages must work whatever `allowed_origins` lists.
pub struct CrossOrigin(Cors);

#[rocket::async_trait]
impl Fairing for CrossOrigin {
    fn info(&self) -> Info {
        Info {
            name: "CORS",
            kind: self.0.info().kind,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        self.0.on_ignite(rocket).await
    }

    async fn on_request(&self, request: &mut Request<'_>, data: &mut Data<'_>) {
        if !is_same_origin(request) {
            self.0.on_request(request, data).await;
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if !is_same_origin(request) {
            self.0.on_response(request, response).await;
        }
    }
}

/// Whether `Origin` is the origin the client reached: the scheme (`http`,
/// or what a trusted proxy says in `X-Forwarded-Proto`) and the `Host`.
fn is_same_origin(request: &Request<'_>) -> bool {
    let headers = request.headers();
    let (Some(origin), Some(host)) = (headers.get_one("Origin"), headers.get_one("Host")) else {
        return false;
    };
    let scheme = request
        .rocket()
        .state::<TrustedProxies>()
        .and_then(|proxies| proxies.forwarded_proto(request))
        .unwrap_or("http")
        .to_ascii_lowercase();
    let Some(authority) = origin.strip_prefix(&format!("{scheme}://")) else {
        return false;
    };
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let bare = |authority: &str| {
        authority
            .trim_end_matches(default_port)
            .to_ascii_lowercase()
    };
    bare(authority) == bare(host)
}
