//! Prometheus metrics, served at `GET /metrics` to the addresses of
//! `metrics.allow` (404 to others). Request counts and durations are
//! recorded as each request is answered (`access::Departure`); the state of
//! the pools and of the outbox is read when the metrics are.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use rocket::http::{ContentType, Method, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::response::Responder;
use rocket::{Request, Route, State};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{OpenApi, Responses};
use rocket_okapi::request::{OpenApiFromRequest, RequestHeaderInput};
use rocket_okapi::response::OpenApiResponderInner;
use rocket_okapi::settings::OpenApiSettings;
use rocket_okapi::{openapi, openapi_get_routes_spec};

use crate::auth::password::PasswordHasher;
use crate::db::batch::Reads;
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::fairings::client_ip::{Networks, TrustedProxies};
use crate::limits::Policy;

/// How long a scrape waits for the outbox's counts.
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(2);

/// The outbox's statuses, each always reported (0 when none).
const JOB_STATUSES: [&str; 3] = ["pending", "sent", "dead"];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    rate_limited: IntCounterVec,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    outbox: IntGaugeVec,
    hash_waiting: IntGauge,
    batched_reads: IntCounter,
    batch_statements: IntCounter,
    /// One scrape at a time brings the batch counters up to date.
    catching_up: Mutex<()>,
    allowed: Networks,
}

impl Metrics {
    /// The metrics, readable from the addresses `allowed`.
    pub fn new(allowed: Networks) -> Arc<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("roster_http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )
        .expect("a valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "roster_http_request_duration_seconds",
                "Time from a request's arrival to its response's head.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("a valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "roster_rate_limited_total",
                "Requests refused with 429, by the limit that refused them.",
            ),
            &["policy"],
        )
        .expect("a valid metric");
        let pool = IntGaugeVec::new(
            Opts::new(
                "roster_db_pool_connections",
                "Database connections of this instance: in use, or open and idle.",
            ),
            &["state"],
        )
        .expect("a valid metric");
        let pool_max = IntGauge::new(
            "roster_db_pool_max_connections",
            "The most database connections this instance opens.",
        )
        .expect("a valid metric");
        let outbox = IntGaugeVec::new(
            Opts::new(
                "roster_outbox_jobs",
                "Email jobs in the outbox (shared by every instance), by status.",
            ),
            &["status"],
        )
        .expect("a valid metric");
        let hash_waiting = IntGauge::new(
            "roster_password_hash_waiting",
            "Requests waiting for a free password hasher.",
        )
        .expect("a valid metric");
        let batched_reads = IntCounter::new(
            "roster_db_batched_reads_total",
            "Reads sent to PostgreSQL in batches: token checks, users by id, pages of users.",
        )
        .expect("a valid metric");
        let batch_statements = IntCounter::new(
            "roster_db_batch_statements_total",
            "Statements that carried the batched reads.",
        )
        .expect("a valid metric");
        let build = IntGaugeVec::new(
            Opts::new("roster_build_info", "The running build: always 1."),
            &["version", "commit"],
        )
        .expect("a valid metric");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("ROSTER_COMMIT")])
            .set(1);
        for policy in Policy::ALL {
            rate_limited.with_label_values(&[policy.name()]);
        }
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(rate_limited.clone()),
            Box::new(pool.clone()),
            Box::new(pool_max.clone()),
            Box::new(outbox.clone()),
            Box::new(hash_waiting.clone()),
            Box::new(batched_reads.clone()),
            Box::new(batch_statements.clone()),
            Box::new(build),
        ] {
            registry.register(metric).expect("metric names are unique");
        }
        Arc::new(Metrics {
            registry,
            requests,
            duration,
            rate_limited,
            pool,
            pool_max,
            outbox,
            hash_waiting,
            batched_reads,
            batch_statements,
            catching_up: Mutex::new(()),
            allowed,
        })
    }

    /// Counts an answered request; `route` is its route's template.
    pub fn observe(&self, method: Method, route: &str, status: Status, elapsed: Duration) {
        let code = status.code.to_string();
        self.requests
            .with_label_values(&[method.as_str(), route, &code])
            .inc();
        self.duration
            .with_label_values(&[method.as_str(), route])
            .observe(elapsed.as_secs_f64());
    }

    /// The count of 429s by policy, for the rate limiter to add to.
    pub fn rate_limited(&self) -> IntCounterVec {
        self.rate_limited.clone()
    }

    /// The text exposition format, with the gauges read now.
    async fn render(
        &self,
        db: &Db,
        hasher: &PasswordHasher,
        reads: Option<&Reads>,
    ) -> Result<String, ApiError> {
        if let Some(reads) = reads {
            let stats = reads.stats();
            let _alone = self
                .catching_up
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            catch_up(&self.batched_reads, stats.reads);
            catch_up(&self.batch_statements, stats.statements);
        }
        let pool = db.stats();
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(pool.in_use));
        self.pool
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        self.hash_waiting
            .set(i64::try_from(hasher.waiting()).unwrap_or(i64::MAX));
        // Counting needs the database: when it does not answer, the jobs
        // are left out rather than reported stale.
        let counts = rocket::tokio::time::timeout(OUTBOX_TIMEOUT, async {
            let mut conn = db.acquire().await?;
            db::outbox::count_by_status(conn.conn()).await
        })
        .await;
        match counts {
            Ok(Ok(counts)) => {
                for status in JOB_STATUSES {
                    let n = counts
                        .iter()
                        .find(|(s, _)| s == status)
                        .map_or(0, |(_, n)| *n);
                    self.outbox.with_label_values(&[status]).set(n);
                }
            }
            _ => self.outbox.reset(),
        }
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .map_err(ApiError::internal("encoding the metrics"))?;
        String::from_utf8(text).map_err(ApiError::internal("encoding the metrics"))
    }
}

/// Adds to `counter` what `total`, counted elsewhere, has gained since.
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// A client `metrics.allow` lists; anyone else is told there is nothing
/// here (404).
pub struct Reader;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Reader {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let rocket = request.rocket();
        let client = rocket
            .state::<TrustedProxies>()
            .and_then(|proxies| proxies.client_ip(request));
        let allowed = rocket
            .state::<Arc<Metrics>>()
            .is_some_and(|metrics| client.is_some_and(|ip| metrics.allowed.contains(ip)));
        match allowed {
            true => Outcome::Success(Reader),
            false => Outcome::Forward(Status::NotFound),
        }
    }
}

impl<'r> OpenApiFromRequest<'r> for Reader {
    fn from_request_input(
        _gen: &mut OpenApiGenerator,
        _name: String,
        _required: bool,
    ) -> rocket_okapi::Result<RequestHeaderInput> {
        Ok(RequestHeaderInput::None)
    }

    /// A client outside `metrics.allow` finds nothing here.
    fn get_responses(
        gen: &mut OpenApiGenerator,
    ) -> rocket_okapi::Result<rocket_okapi::okapi::openapi3::Responses> {
        Ok(crate::error::error_responses(gen, &[404]))
    }
}

/// Prometheus's text exposition format.
pub struct Exposition(String);

impl<'r> Responder<'r, 'static> for Exposition {
    fn respond_to(self, request: &'r Request<'_>) -> rocket::response::Result<'static> {
        let format = ContentType::new("text", "plain")
            .with_params([("version", "0.0.4"), ("charset", "utf-8")]);
        (format, self.0).respond_to(request)
    }
}

impl OpenApiResponderInner for Exposition {
    fn responses(_gen: &mut OpenApiGenerator) -> rocket_okapi::Result<Responses> {
        Ok(crate::docs::string_ok(
            "The metrics in Prometheus's text format (to `metrics.allow` only; 404 to anyone \
             else).",
            "text/plain",
            None,
        ))
    }
}

/// Prometheus metrics of this instance: requests by route template and
/// status, their durations, rate-limit refusals, database connections,
/// batched reads, outbox jobs, requests waiting for a password hasher, the
/// build. Only
/// for the addresses in `metrics.allow` (loopback by default); 404 to
/// anyone else.
#[openapi(tag = "Health")]
#[get("/metrics")]
pub async fn metrics(
    _reader: Reader,
    metrics: &State<Arc<Metrics>>,
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    reads: &State<Option<Reads>>,
) -> Result<Exposition, ApiError> {
    metrics
        .render(db, hasher, reads.inner().as_ref())
        .await
        .map(Exposition)
}

/// The route and its OpenAPI document (mounted at `/`).
pub fn routes(settings: &OpenApiSettings) -> (Vec<Route>, OpenApi) {
    openapi_get_routes_spec![settings: metrics]
}
