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
pub mod routes;
pub mod uploads;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use crate::auth::password::PasswordHasher;
use crate::auth::tokens::{random_secret, TokenKeys};
use crate::config::Settings;
use crate::db::{Db, DbPool};
use std::sync::Arc;

use crate::fairings::allow::MethodCheck;
use crate::fairings::client_ip::TrustedProxies;
use crate::fairings::rate_limit::RateLimitFairing;
use crate::fairings::request_id::RequestIdFairing;
use crate::limits::RateLimiter;

/// Builds the application from a figment (see [`config::figment`]).
pub fn build_rocket(figment: Figment) -> Rocket<Build> {
    let settings = docs::settings();
    let (v1_routes, v1_spec) = routes::v1(&settings);
    let (v2_routes, v2_spec) = routes::v2(&settings);
    let (health_routes, health_spec) = routes::health(&settings);
    let v1_doc = docs::document(
        &[("/api/v1", v1_spec), ("/health", health_spec)],
        "This is version 1 of the API; version 2 lists users with a cursor.",
    );
    let v2_doc = docs::document(
        &[("/api/v2", v2_spec)],
        "This is version 2 of the API: users listed with a cursor. Sign-in and \
         everything else is in version 1.",
    );
    let rocket = rocket::custom(figment)
        .attach(RequestIdFairing)
        .attach(fairings::request_limits::RequestLimits)
        .attach(AdHoc::try_on_ignite("Settings", load_settings))
        .attach(Db::init())
        .attach(AdHoc::try_on_ignite("Database migrations", migrate))
        .attach(AdHoc::try_on_ignite("Upload storage", prepare_storage))
        .attach(auth::pruner::fairing())
        .attach(AdHoc::on_liftoff("Startup line", |rocket| {
            Box::pin(async move { announce(rocket) })
        }))
        .mount("/health", health_routes)
        .mount("/api/v1", v1_routes)
        .mount("/api/v1", vec![docs::json_route(v1_doc)])
        .mount("/api/v2", v2_routes)
        .mount("/api/v2", vec![docs::json_route(v2_doc)])
        .mount("/", fairings::reject::routes())
        .register("/", catchers![routes::catchers::json]);
    docs::mount_pages(
        rocket,
        &[
            ("v1", "/api/v1/openapi.json"),
            ("v2", "/api/v2/openapi.json"),
        ],
    )
}

async fn load_settings(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let settings: Settings = match rocket.figment().extract() {
        Ok(settings) => settings,
        Err(err) => {
            error!("invalid configuration: {err}");
            return Err(rocket);
        }
    };
    let profile = rocket.figment().profile().as_str().to_string();
    if let Err(message) = settings
        .validate()
        .and_then(|()| settings.require_secret(&profile))
    {
        error!("invalid configuration: {message}");
        return Err(rocket);
    }
    let secret = settings.jwt_secret.clone().unwrap_or_else(|| {
        warn!(
            "jwt_secret is not set: using a random secret, so tokens end when the process \
             does (set ROCKET_JWT_SECRET to keep them)"
        );
        random_secret()
    });
    let keys = TokenKeys::new(secret.as_bytes(), settings.access_token_ttl);
    if let Err(message) = keys.self_test() {
        error!("access tokens do not work: {message}");
        return Err(rocket);
    }
    let hasher = PasswordHasher::new(settings.bcrypt_cost);
    if let Err(err) = hasher.prepare().await {
        error!("bcrypt does not work: {err}");
        return Err(rocket);
    }
    let rocket = match request_fairings(&settings) {
        Ok(fairings) => fairings.attach(rocket),
        Err(message) => {
            error!("invalid configuration: {message}");
            return Err(rocket);
        }
    };
    let signal = mail::worker::OutboxSignal::default();
    let rocket = rocket.attach(mail::worker::OutboxWorker::new(
        settings.smtp.clone(),
        signal.clone(),
    ));
    Ok(rocket
        .manage(settings)
        .manage(hasher)
        .manage(keys)
        .manage(signal))
}

/// The fairings that shape requests, built from the settings.
struct RequestFairings {
    cors: Option<rocket_cors::Cors>,
    rate_limit: Option<(Arc<RateLimiter>, TrustedProxies)>,
}

fn request_fairings(settings: &Settings) -> Result<RequestFairings, String> {
    let cors = fairings::cors::fairing(&settings.cors)?;
    let proxies = TrustedProxies::parse(&settings.trusted_proxies)?;
    let rate_limit = if settings.rate_limit.enabled {
        Some((Arc::new(RateLimiter::new(&settings.rate_limit)?), proxies))
    } else {
        None
    };
    Ok(RequestFairings { cors, rate_limit })
}

impl RequestFairings {
    /// Attaches them in the order they see requests: CORS (preflights,
    /// refused origins), the method check, rate limits.
    fn attach(self, mut rocket: Rocket<Build>) -> Rocket<Build> {
        if let Some(cors) = self.cors {
            rocket = rocket.attach(cors).attach(fairings::cors::vary_origin());
        }
        rocket = rocket.attach(MethodCheck::default());
        if let Some((limiter, proxies)) = self.rate_limit {
            rocket = rocket
                .attach(RateLimitFairing::new(limiter.clone(), proxies))
                .manage(limiter);
        }
        rocket
    }
}

async fn migrate(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let Some(db) = Db::fetch(&rocket) else {
        return Err(rocket);
    };
    let pool: &DbPool = db;
    match pool.migrate().await {
        Ok(()) => Ok(rocket),
        Err(err) => {
            error!("{err}");
            Err(rocket)
        }
    }
}

/// Opens `upload.dir` and repairs what a crash may have left there.
async fn prepare_storage(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let (Some(settings), Some(db)) = (rocket.state::<Settings>(), Db::fetch(&rocket)) else {
        return Err(rocket);
    };
    let storage = match uploads::Storage::open(&settings.upload.dir) {
        Ok(storage) => storage,
        Err(err) => {
            error!("upload.dir {:?} is not usable: {err}", settings.upload.dir);
            return Err(rocket);
        }
    };
    let ids = async {
        let mut conn = db.acquire().await?;
        db::uploads::all_ids(conn.conn()).await
    }
    .await;
    let repaired = match ids {
        Ok(ids) => storage.repair(&ids.into_iter().collect()),
        Err(err) => {
            error!("cannot list uploads: {err}");
            return Err(rocket);
        }
    };
    match repaired {
        Ok((removed, missing)) => {
            if removed > 0 {
                warn!("removed {removed} orphan upload files");
            }
            if missing > 0 {
                error!(
                    "{missing} uploads have no file in {:?}",
                    settings.upload.dir
                );
            }
        }
        Err(err) => {
            error!("cannot check upload.dir {:?}: {err}", settings.upload.dir);
            return Err(rocket);
        }
    }
    Ok(rocket.manage(storage))
}

/// One line that says where Roster listens and which database it uses
/// (shown at every log level, never with a password).
fn announce(rocket: &rocket::Rocket<rocket::Orbit>) {
    let config = rocket.config();
    let url: String = rocket
        .figment()
        .extract_inner("databases.roster.url")
        .unwrap_or_default();
    log::info!(
        target: "rocket::launch",
        "Roster {} listening on http://{}:{} using {}",
        env!("CARGO_PKG_VERSION"),
        config.address,
        config.port,
        DbPool::describe(&url)
    );
}
