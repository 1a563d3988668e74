//! `/health`: liveness and readiness for load balancers and orchestrators.

use std::time::Duration;

use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::openapi;
use schemars::JsonSchema;
use serde::Serialize;

use crate::db::Db;
use crate::error::fails::UNAVAILABLE;
use crate::error::ApiError;
use crate::error::Fails;
use crate::fairings::rate_limit::RateLimits;
use crate::mail::worker::OutboxSignal;
use crate::shutdown::Draining;
use crate::uploads::Storage;

/// How long readiness waits for the database before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthStatus {
    /// `ok` when live, `ready` when the database answers.
    pub status: &'static str,
    /// What works in a degraded way (Redis unreachable, emails or the
    /// upload store failing), if anything.
    pub notes: Vec<String>,
}

/// Liveness: 200 while the process runs.
#[openapi(tag = "Health")]
#[get("/live")]
pub fn live() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok",
        notes: Vec::new(),
    })
}

/// Readiness: 200 when the database answers, else 503; 503 too while
/// shutting down (draining), so a load balancer moves away first.
#[openapi(tag = "Health")]
#[get("/ready")]
pub async fn ready(
    db: &State<Db>,
    draining: &State<Draining>,
    outbox: &State<OutboxSignal>,
    storage: &State<Storage>,
    limits: RateLimits<'_>,
) -> Result<Json<HealthStatus>, Fails<{ UNAVAILABLE }>> {
    if draining.is_set() {
        return Err(ApiError::Unavailable("Shutting down".into()).into());
    }
    let unavailable = || ApiError::Unavailable("Database unavailable".into());
    match rocket::tokio::time::timeout(READY_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => {
            let mut notes: Vec<String> = limits.degraded().into_iter().collect();
            if let Some(error) = outbox.failing() {
                notes.push(format!(
                    "emails are not being sent (they wait in the outbox and are retried): {error}"
                ));
            }
            if let Some(error) = storage.failing() {
                notes.push(format!("the upload store is failing: {error}"));
            }
            Ok(Json(HealthStatus {
                status: "ready",
                notes,
            }))
        }
        Ok(Err(err)) => {
            tracing::warn!("readiness: {err}");
            Err(unavailable().into())
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within {READY_TIMEOUT:?}");
            Err(unavailable().into())
        }
    }
}
