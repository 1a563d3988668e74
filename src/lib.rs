//! Roster: a user-management REST service on Rocket.
//!
//! [`build_rocket`] is the one place that wires the application; the binary
//! and the tests both use it.

#[macro_use]
extern crate rocket;

pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod docs;
pub mod domain;
pub mod error;
pub mod extract;
pub mod fairings;
pub mod limits;
pub mod mail;
pub mod request_id;
pub mod routes;
pub mod secret;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod uploads;

use std::sync::Arc;

use rocket::fairing::Fairing;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use crate::auth::password::PasswordHasher;
use crate::config::{ConfigError, Settings};
use crate::db::Db;
use crate::fairings::allow::MethodCheck;
use crate::fairings::client_ip::{Networks, TrustedProxies};
use crate::fairings::rate_limit::RateLimitFairing;
use crate::fairings::request_id::RequestIdFairing;
use crate::fairings::request_limits::RequestLimits;
use crate::limits::RateLimiter;
use crate::mail::worker::{OutboxSignal, OutboxWorker};
use crate::telemetry::access::{traced, traced_catchers, Arrival, Departure};
use crate::telemetry::metrics::Metrics;

/// Builds the application from a figment (see [`config::figment`]): the
/// settings are read and checked first, and an invalid configuration is an
/// error here, before anything opens the database.
pub fn build_rocket(figment: Figment) -> Result<Rocket<Build>, ConfigError> {
    let settings = Settings::load(&figment)?;
    let cors = fairings::cors::fairing(&settings.cors).map_err(ConfigError)?;
    let proxies = TrustedProxies::parse(&settings.trusted_proxies).map_err(ConfigError)?;
    let metrics = match settings.metrics.enabled {
        true => Some(Metrics::new(
            Networks::parse("metrics.allow", &settings.metrics.allow).map_err(ConfigError)?,
        )),
        false => None,
    };
    let limiter = match settings.rate_limit.enabled {
        true => {
            let limiter = RateLimiter::new(&settings.rate_limit).map_err(ConfigError)?;
            Some(Arc::new(match &metrics {
                Some(metrics) => limiter.counting_refusals(metrics.rate_limited()),
                None => limiter,
            }))
        }
        false => None,
    };
    let hasher = PasswordHasher::new(
        settings.bcrypt_cost,
        std::time::Duration::from_secs(settings.bcrypt_queue_timeout),
    );
    let outbox = OutboxSignal::default();
    // Loaded (and each rendered once) here, so that a broken template in
    // templates.dir stops the start with its name.
    let templates = mail::templates::Templates::load(
        settings.templates.dir.as_deref().map(std::path::Path::new),
    )
    .map_err(ConfigError)?;
    let outbox_worker = OutboxWorker::new(settings.clone(), Arc::new(templates), outbox.clone());

    let docs = docs::settings();
    let (v1_routes, v1_spec) = routes::v1(&docs);
    let (v2_routes, v2_spec) = routes::v2(&docs);
    let (health_routes, health_spec) = routes::health(&docs);
    let (metrics_routes, metrics_spec) = telemetry::metrics::routes(&docs);
    let mut v1_parts = vec![("/api/v1", v1_spec), ("/health", health_spec)];
    if metrics.is_some() {
        v1_parts.push(("", metrics_spec));
    }
    let v1_doc = docs::document(
        &v1_parts,
        "This is version 1 of the API; version 2 lists users with a cursor.",
    );
    let v2_doc = docs::document(
        &[("/api/v2", v2_spec)],
        "This is version 2 of the API: users listed with a cursor. Sign-in and \
         everything else is in version 1.",
    );

    let rocket = rocket::custom(figment);
    let keys = startup::token_keys(&settings)?;
    let vary_origin = cors.is_some().then(fairings::cors::vary_origin);
    let rate_limits = limiter
        .clone()
        .map(|limiter| RateLimitFairing::new(limiter, proxies.clone()));
    let rocket = rocket
        // Around every request, in the order they see it.
        .attach(Arrival)
        .attach(RequestIdFairing)
        .attach(RequestLimits)
        .attach_some(cors)
        .attach_some(vary_origin)
        .attach(MethodCheck::default())
        .attach_some(rate_limits)
        // At start, in this order: nothing touches the database before the
        // password hasher works.
        .attach(startup::password_hasher())
        .attach(Db::init())
        .attach(startup::database())
        .attach(startup::upload_storage())
        .attach(startup::upload_sweeper())
        // Once serving: background work, and the line that says where.
        .attach(auth::pruner::fairing())
        .attach_some(settings.smtp.enabled.then_some(outbox_worker))
        .attach(startup::announce())
        // Last, to see the final status: the access line and metrics.
        .attach(Departure::new(metrics.clone()))
        .manage(proxies)
        .manage(settings)
        .manage(hasher)
        .manage(keys)
        .manage(outbox)
        .manage(limiter)
        .manage(shutdown::Draining::default())
        .mount("/health", traced(health_routes))
        .mount("/api/v1", traced(v1_routes))
        .mount("/api/v1", vec![docs::json_route(v1_doc)])
        .mount("/api/v2", traced(v2_routes))
        .mount("/api/v2", vec![docs::json_route(v2_doc)])
        .mount("/", traced(fairings::reject::routes()))
        .register("/", traced_catchers(catchers![routes::catchers::json]));
    let rocket = match metrics {
        Some(metrics) => rocket.manage(metrics).mount("/", traced(metrics_routes)),
        None => rocket,
    };
    Ok(docs::mount_pages(
        rocket,
        &[
            ("v1", "/api/v1/openapi.json"),
            ("v2", "/api/v2/openapi.json"),
        ],
    ))
}

/// `attach` for fairings that the settings may leave out.
trait AttachSome {
    fn attach_some(self, fairing: Option<impl Fairing>) -> Self;
}

impl AttachSome for Rocket<Build> {
    fn attach_some(self, fairing: Option<impl Fairing>) -> Self {
        match fairing {
            Some(fairing) => self.attach(fairing),
            None => self,
        }
    }
}
