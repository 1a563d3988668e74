//! Per request: a span that puts its id on every line the request causes
//! ([`traced`], [`traced_catchers`]), and, once it is answered, one access
//! line and its metrics ([`Arrival`] first among the fairings, [`Departure`]
//! last).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rocket::catcher::{self, Catcher};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Method, RawStr, Status};
use rocket::route::{self, Handler, Route};
use rocket::{Data, Orbit, Request, Response, Rocket};
use tracing::Instrument;

use super::logs::{ACCESS, REQUEST};
use super::metrics::Metrics;
use crate::fairings::client_ip::TrustedProxies;
use crate::request_id::RequestId;

/// The `route` of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// What is known of a request as it arrives, before any fairing re-routes
/// it (a refusal, a CORS preflight).
struct Arrived {
    at: Instant,
    method: Method,
    path: String,
}

/// Notes when each request arrives; attached before every other fairing.
pub struct Arrival;

#[rocket::async_trait]
impl Fairing for Arrival {
    fn info(&self) -> Info {
        Info {
            name: "Access log: arrival",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let arrived = Arrived {
            at: Instant::now(),
            method: request.method(),
            path: request.uri().path().as_str().to_owned(),
        };
        request.local_cache(|| Some(arrived));
    }
}

/// Logs the access line and counts the request; attached after every other
/// fairing, so it sees the final status.
pub struct Departure {
    metrics: Option<Arc<Metrics>>,
    templates: OnceLock<Templates>,
}

impl Departure {
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Departure {
            metrics,
            templates: OnceLock::new(),
        }
    }
}

#[rocket::async_trait]
impl Fairing for Departure {
    fn info(&self) -> Info {
        Info {
            name: "Access log: departure",
            kind: Kind::Liftoff | Kind::Response,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let _ = self.templates.set(Templates::of(rocket.routes()));
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let arrived = request.local_cache(|| None::<Arrived>).as_ref();
        let (elapsed, method, path) = match arrived {
            Some(a) => (a.at.elapsed(), a.method, a.path.as_str()),
            // Refused by the server before the fairings ran.
            None => (
                std::time::Duration::ZERO,
                request.method(),
                request.uri().path().as_str(),
            ),
        };
        let route = self.route(request, method, path);
        let status = response.status();
        if let Some(metrics) = &self.metrics {
            metrics.observe(method, route, status, elapsed);
        }
        let id = request.local_cache(RequestId::generate);
        let client = request
            .rocket()
            .state::<TrustedProxies>()
            .and_then(|proxies| proxies.client_ip(request));
        tracing::info!(
            target: ACCESS,
            method = %method.as_str(),
            path = %path,
            route = %route,
            status = status.code,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            request_id = %id.as_str(),
            client = %Client(client),
            "{} {} {}",
            method,
            path,
            status.code,
        );
    }
}

impl Departure {
    /// The template of the route that answered: Rocket's, unless a fairing
    /// re-routed the request, then that of the route its own path leads to.
    fn route<'a>(&'a self, request: &'a Request<'_>, method: Method, path: &str) -> &'a str {
        let rerouted = request.method() != method || request.uri().path().as_str() != path;
        match request.route() {
            Some(route) if !rerouted => route.uri.path(),
            _ => self
                .templates
                .get()
                .and_then(|templates| templates.find(method, path))
                .unwrap_or(UNMATCHED),
        }
    }
}

struct Client(Option<IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The mounted routes' templates, to name the route a re-routed request
/// was for: the first by rank whose method and segments match, else the
/// first whose segments match (a 405 names the path's route).
struct Templates(Vec<Template>);

struct Template {
    method: Method,
    segments: Vec<String>,
    path: String,
}

impl Templates {
    fn of<'a>(routes: impl Iterator<Item = &'a Route>) -> Self {
        let mut routes: Vec<&Route> = routes.collect();
        routes.sort_by_key(|route| route.rank);
        Templates(
            routes
                .into_iter()
                .map(|route| Template {
                    method: route.method,
                    segments: segments(route.uri.path()).map(str::to_owned).collect(),
                    path: route.uri.path().to_owned(),
                })
                .collect(),
        )
    }

    fn find(&self, method: Method, path: &str) -> Option<&str> {
        let given: Vec<_> = segments(path)
            .map(|s| RawStr::new(s).percent_decode_lossy())
            .collect();
        let fits = |t: &&Template| {
            let mut pattern = t.segments.iter();
            let mut given = given.iter();
            loop {
                match (pattern.next(), given.next()) {
                    (Some(p), _) if p.starts_with('<') && p.ends_with("..>") => return true,
                    (Some(p), Some(g)) if p.starts_with('<') || p == g => continue,
                    (None, None) => return true,
                    _ => return false,
                }
            }
        };
        let mut matching = self.0.iter().filter(fits);
        let first = matching.clone().find(|t| t.method == method);
        first.or_else(|| matching.next()).map(|t| t.path.as_str())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|segment| !segment.is_empty())
}

/// `routes`, each handler run inside the request's span.
pub fn traced(routes: Vec<Route>) -> Vec<Route> {
    routes
        .into_iter()
        .map(|mut route| {
            route.handler = Box::new(Traced(route.handler));
            route
        })
        .collect()
}

/// `catchers`, each run inside the request's span.
pub fn traced_catchers(catchers: Vec<Catcher>) -> Vec<Catcher> {
    catchers
        .into_iter()
        .map(|mut catcher| {
            catcher.handler = Box::new(TracedCatcher(catcher.handler));
            catcher
        })
        .collect()
}

fn span(request: &Request<'_>) -> tracing::Span {
    let id = request.local_cache(RequestId::generate);
    tracing::info_span!(target: REQUEST, "request", request_id = %id.as_str())
}

#[derive(Clone)]
struct Traced(Box<dyn Handler>);

#[rocket::async_trait]
impl Handler for Traced {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> route::Outcome<'r> {
        self.0.handle(request, data).instrument(span(request)).await
    }
}

#[derive(Clone)]
struct TracedCatcher(Box<dyn catcher::Handler>);

#[rocket::async_trait]
impl catcher::Handler for TracedCatcher {
    async fn handle<'r>(&self, status: Status, request: &'r Request<'_>) -> catcher::Result<'r> {
        self.0
            .handle(status, request)
            .instrument(span(request))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        let handler = rocket::route::dummy_handler;
        let routes = [
            Route::new(Method::Post, "/api/v1/users", handler),
            Route::new(Method::Get, "/api/v1/users/<id>", handler),
            Route::new(Method::Get, "/api/v1/users/me", handler),
            Route::new(Method::Get, "/files/<path..>", handler),
        ];
        Templates::of(routes.iter())
    }

    #[test]
    fn a_rerouted_request_is_named_by_its_route_template() {
        let t = templates();
        assert_eq!(t.find(Method::Post, "/api/v1/users"), Some("/api/v1/users"));
        assert_eq!(
            t.find(Method::Post, "//api/v1//users/"),
            Some("/api/v1/users")
        );
        assert_eq!(
            t.find(Method::Get, "/api/v1/users/42"),
            Some("/api/v1/users/<id>")
        );
        assert_eq!(
            t.find(Method::Get, "/api/v1/%75sers/me"),
            Some("/api/v1/users/me")
        );
        assert_eq!(t.find(Method::Get, "/files/a/b/c"), Some("/files/<path..>"));
        // Another method: still the path's template.
        assert_eq!(
            t.find(Method::Delete, "/api/v1/users"),
            Some("/api/v1/users")
        );
        assert_eq!(t.find(Method::Get, "/api/v1/users/42/x"), None);
        assert_eq!(t.find(Method::Get, "/nowhere"), None);
    }
}
