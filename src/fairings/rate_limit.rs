//! Rate limits on every route under `/api`, with login and registration
//! policies on top. A refused request is re-routed before routing, so its
//! handler never runs; every limited response carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` for the limit nearest
//! exhaustion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Header, Method};
use rocket::request::{FromRequest, Outcome};
use rocket::{Data, Orbit, Request, Response, Rocket};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::request::{OpenApiFromRequest, RequestHeaderInput};

use super::client_ip::TrustedProxies;
use super::reject::reject;
use crate::error::ApiError;
use crate::limits::{Decision, Policy, RateLimiter};

pub const LOGIN_PATH: &str = "/api/v1/auth/login";
/// The OAuth2 token endpoint: its password grant is a login, limited as one.
pub const TOKEN_PATH: &str = "/api/v1/auth/token";
pub const REGISTER_PATH: &str = "/api/v1/users";
pub const PASSWORD_RESET_PATH: &str = "/api/v1/auth/password-reset";
const PURGE_EVERY: Duration = Duration::from_secs(60);

pub struct RateLimitFairing {
    limiter: Arc<RateLimiter>,
    proxies: TrustedProxies,
}

impl RateLimitFairing {
    pub fn new(limiter: Arc<RateLimiter>, proxies: TrustedProxies) -> Self {
        RateLimitFairing { limiter, proxies }
    }
}

/// The decisions made for one request.
#[derive(Default)]
struct Decisions(Mutex<Vec<Decision>>);

impl Decisions {
    fn push(&self, decision: Decision) {
        if let Ok(mut list) = self.0.lock() {
            list.push(decision);
        }
    }

    /// The refusal with the longest wait, else the limit nearest exhaustion.
    fn headline(&self) -> Option<Decision> {
        let list = self.0.lock().ok()?;
        list.iter()
            .filter(|d| !d.allowed())
            .max_by_key(|d| d.retry_after)
            .or_else(|| {
                list.iter()
                    .min_by_key(|d| (d.remaining, u64::MAX - d.reset))
            })
            .copied()
    }
}

fn too_many(decision: &Decision) -> ApiError {
    ApiError::TooManyRequests {
        retry_after: decision.retry_after.unwrap_or(1),
    }
}

#[rocket::async_trait]
impl Fairing for RateLimitFairing {
    fn info(&self) -> Info {
        Info {
            name: "Rate limits",
            kind: Kind::Liftoff | Kind::Request | Kind::Response,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let limiter = self.limiter.clone();
        let mut shutdown = rocket.shutdown();
        rocket::tokio::spawn(async move {
            let mut ticks = rocket::tokio::time::interval(PURGE_EVERY);
            loop {
                rocket::tokio::select! {
                    _ = ticks.tick() => limiter.purge(),
                    _ = &mut shutdown => break,
                }
            }
        });
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let under_api = request.uri().path().segments().next() == Some("api");
        if !under_api || request.method() == Method::Options {
            return;
        }
        let client = self
            .proxies
            .client_ip(request)
            .map_or_else(|| "unknown".to_owned(), super::client_ip::rate_limit_key);
        let mut policies = vec![Policy::General];
        if request.method() == Method::Post {
            if super::routes_to(request, LOGIN_PATH) || super::routes_to(request, TOKEN_PATH) {
                policies.push(Policy::Login);
            } else if super::routes_to(request, REGISTER_PATH) {
                policies.push(Policy::Register);
            } else if super::routes_to(request, PASSWORD_RESET_PATH) {
                policies.push(Policy::PasswordReset);
            }
        }
        let decisions = request.local_cache(Decisions::default);
        for policy in policies {
            if let Some(decision) = self.limiter.check(policy, &client).await {
                decisions.push(decision);
            }
        }
        if let Some(refused) = decisions.headline().filter(|d| !d.allowed()) {
            reject(request, too_many(&refused));
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let Some(decision) = request.local_cache(Decisions::default).headline() else {
            return;
        };
        response.set_header(Header::new("RateLimit-Limit", decision.limit.to_string()));
        response.set_header(Header::new(
            "RateLimit-Remaining",
            decision.remaining.to_string(),
        ));
        response.set_header(Header::new("RateLimit-Reset", decision.reset.to_string()));
        if let Some(wait) = decision.retry_after {
            response.set_header(Header::new("Retry-After", wait.to_string()));
        }
    }
}

/// The rate limiter from a handler: the per-username login limit, checked by
/// the login handler once it has read the username (a fairing cannot read
/// the body), before any password work, so one account cannot be
/// brute-forced from many addresses; and the limiter's health.
pub struct RateLimits<'r> {
    limiter: Option<&'r RateLimiter>,
    decisions: &'r Decisions,
}

impl RateLimits<'_> {
    /// Why limits are not being enforced right now, if they are not.
    pub fn degraded(&self) -> Option<String> {
        self.limiter.and_then(RateLimiter::degraded)
    }

    /// Spends one of `username`'s failed-login budget before the password
    /// is checked (429 when none is left); [`Self::login_succeeded`] gives
    /// it back, so only failures count. The key folds ASCII case, as login
    /// matches names; a name with any other letter matches no user.
    pub async fn check_username(&self, username: &str) -> Result<(), ApiError> {
        self.spend(Policy::LoginUsername, &username.to_ascii_lowercase())
            .await
    }

    /// The password was right: the attempt [`Self::check_username`] spent
    /// does not count against the user.
    pub async fn login_succeeded(&self, username: &str) {
        self.give_back(Policy::LoginUsername, &username.to_ascii_lowercase())
            .await;
    }

    /// Spends one of user `id`'s budget of wrong current passwords before
    /// the password is checked; [`Self::password_confirmed`] gives it back.
    pub async fn check_password_attempt(&self, id: i64) -> Result<(), ApiError> {
        self.spend(Policy::PasswordChange, &id.to_string()).await
    }

    /// Spends one of `email`'s hourly budget of reset and verification
    /// emails (429 when none is left).
    pub async fn check_account_email(&self, email: &str) -> Result<(), ApiError> {
        self.spend(Policy::AccountEmail, email).await
    }

    /// The same budget, spent silently: whether an email to `email` may go,
    /// with nothing in the response's headers (a reset request must answer
    /// alike whether or not it sent anything).
    pub async fn quietly_allow_account_email(&self, email: &str) -> bool {
        let Some(limiter) = self.limiter else {
            return true;
        };
        limiter
            .check(Policy::AccountEmail, email)
            .await
            .is_none_or(|decision| decision.allowed())
    }

    pub async fn password_confirmed(&self, id: i64) {
        self.give_back(Policy::PasswordChange, &id.to_string())
            .await;
    }

    async fn spend(&self, policy: Policy, key: &str) -> Result<(), ApiError> {
        let Some(limiter) = self.limiter else {
            return Ok(());
        };
        match limiter.check(policy, key).await {
            Some(decision) => {
                self.decisions.push(decision);
                if decision.allowed() {
                    Ok(())
                } else {
                    Err(too_many(&decision))
                }
            }
            None => Ok(()),
        }
    }

    async fn give_back(&self, policy: Policy, key: &str) {
        if let Some(limiter) = self.limiter {
            limiter.refund(policy, key).await;
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RateLimits<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(RateLimits {
            limiter: request
                .rocket()
                .state::<Option<Arc<RateLimiter>>>()
                .and_then(Option::as_deref),
            decisions: request.local_cache(Decisions::default),
        })
    }
}

impl<'r> OpenApiFromRequest<'r> for RateLimits<'r> {
    fn from_request_input(
        _gen: &mut OpenApiGenerator,
        _name: String,
        _required: bool,
    ) -> rocket_okapi::Result<RequestHeaderInput> {
        Ok(RequestHeaderInput::None)
    }
}
