//! The outbox worker: claims due jobs, sends them, records the outcome.
//!
//! Started at liftoff, stopped at shutdown (after the job in hand). Several
//! instances may run one each: claims never overlap. Failures are retried
//! with exponential back-off and jitter (from 1 s, doubling, at most 30 s
//! apart) up to `smtp.max_attempts`, then the job is `dead`. Each email has
//! a `Message-ID` derived from its job, stable across retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::tokio::sync::Notify;
use rocket::tokio::task::JoinHandle;
use rocket::{Orbit, Rocket};
use rocket_db_pools::Database;
use time::OffsetDateTime;

use super::templates::{duration_in_words, Email, Rendered, Templates, Values};
use super::{without_token, TokenEmail, WelcomeEmail, PASSWORD_RESET, VERIFY_EMAIL, WELCOME_EMAIL};
use crate::config::Settings;
use crate::db::outbox::{self, Job, Outcome};
use crate::db::{now, Db, DbPool};

/// The longest one send may take, connection and every command included;
/// past it the attempt has failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a claimed job is ours before another worker may take it. A
/// claim covers one job, and outlasts its send by half a minute, so a slow
/// SMTP server never lets a second worker send the same email.
const LEASE: Duration = Duration::from_secs(SEND_TIMEOUT.as_secs() + 30);
/// lettre's timeout for each SMTP command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How often an idle worker looks for due jobs (registrations also wake it).
const POLL: Duration = Duration::from_secs(1);
/// How often sent jobs past `smtp.keep_sent_days` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The longest wait between two attempts of a job.
const MAX_BACKOFF_SECS: f64 = 3600.0;

/// Between the requests and this instance's worker: wakes the worker when
/// a job is queued, so emails go out at once, and tells readiness whether
/// sending is failing.
#[derive(Default, Clone)]
pub struct OutboxSignal {
    queued: Arc<Notify>,
    /// The error of the latest attempt, while the latest attempt failed.
    failing: Arc<Mutex<Option<String>>>,
}

impl OutboxSignal {
    pub fn job_queued(&self) {
        self.queued.notify_one();
    }

    /// Why sending fails, if the latest attempt of this instance did.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().ok().and_then(|slot| slot.clone())
    }

    fn attempted(&self, outcome: &Result<(), String>) {
        if let Ok(mut slot) = self.failing.lock() {
            *slot = outcome.as_ref().err().cloned();
        }
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No `smtp.url`: emails are written to the log instead.
    Log,
}

/// The fairing that runs the worker.
pub struct OutboxWorker {
    settings: Settings,
    templates: Arc<Templates>,
    signal: OutboxSignal,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl OutboxWorker {
    /// `templates` were loaded (and checked) at start.
    pub fn new(settings: Settings, templates: Arc<Templates>, signal: OutboxSignal) -> Self {
        OutboxWorker {
            settings,
            templates,
            signal,
            handle: Mutex::new(None),
        }
    }
}

#[rocket::async_trait]
impl Fairing for OutboxWorker {
    fn info(&self) -> Info {
        Info {
            name: "Outbox worker",
            kind: Kind::Liftoff | Kind::Shutdown,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let Some(db) = Db::fetch(rocket) else {
            return;
        };
        let transport = match &self.settings.smtp.url {
            Some(url) => match AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()) {
                Ok(builder) => Transport::Smtp(builder.timeout(Some(COMMAND_TIMEOUT)).build()),
                Err(err) => {
                    tracing::error!("smtp.url is not usable ({err}): emails will not be sent");
                    return;
                }
            },
            None => Transport::Log,
        };
        let worker = Worker {
            pool: (**db).clone(),
            settings: self.settings.clone(),
            transport,
            templates: self.templates.clone(),
            token: uuid::Uuid::new_v4().simple().to_string(),
        };
        let signal = self.signal.clone();
        let shutdown = rocket.shutdown();
        let handle = rocket::tokio::spawn(worker.run(signal, shutdown));
        if let Ok(mut slot) = self.handle.lock() {
            *slot = Some(handle);
        }
    }

    async fn on_shutdown(&self, _: &Rocket<Orbit>) {
        let handle = self.handle.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            // The worker finishes the job in hand; an email cut off here is
            // sent again after its lease expires.
            if rocket::tokio::time::timeout(Duration::from_secs(25), handle)
                .await
                .is_err()
            {
                tracing::warn!("the outbox worker did not stop in time");
            }
        }
    }
}

struct Worker {
    pool: DbPool,
    settings: Settings,
    transport: Transport,
    templates: Arc<Templates>,
    /// This worker's claims.
    token: String,
}

impl Worker {
    async fn run(self, signal: OutboxSignal, mut shutdown: rocket::Shutdown) {
        let mut last_prune: Option<std::time::Instant> = None;
        loop {
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                self.prune_sent().await;
                last_prune = Some(std::time::Instant::now());
            }
            // Between batches, stop if shutdown has been requested.
            rocket::tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = std::future::ready(()) => {}
            }
            // One job per claim: its lease covers its send alone.
            let claimed = self.claim().await;
            let idle = !matches!(claimed, Ok(Some(_)));
            match claimed {
                Ok(Some(job)) => self.process(job, &signal).await,
                Ok(None) => {}
                Err(err) => tracing::warn!("outbox: cannot claim jobs: {err}"),
            }
            if idle {
                rocket::tokio::select! {
                    _ = signal.queued.notified() => {}
                    _ = rocket::tokio::time::sleep(POLL) => {}
                    _ = &mut shutdown => break,
                }
            }
        }
        tracing::info!("outbox worker stopped");
    }

    /// Deletes jobs sent more than `smtp.keep_sent_days` ago.
    async fn prune_sent(&self) {
        let days = i64::from(self.settings.smtp.keep_sent_days);
        let cutoff = now() - time::Duration::days(days);
        let result = async {
            let mut conn = self.pool.acquire().await?;
            outbox::prune_sent(conn.conn(), cutoff).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!("outbox: deleted {n} jobs sent over {days} days ago"),
            Err(err) => tracing::warn!("outbox: cannot delete old sent jobs: {err}"),
        }
    }

    async fn claim(&self) -> Result<Option<Job>, crate::db::DbError> {
        let now = now();
        let lease_until = now + LEASE;
        let mut tx = self.pool.begin().await?;
        let jobs = outbox::claim(tx.conn(), now, lease_until, &self.token, 1).await?;
        tx.commit().await?;
        Ok(jobs.into_iter().next())
    }

    async fn process(&self, job: Job, signal: &OutboxSignal) {
        let outcome = match rocket::tokio::time::timeout(SEND_TIMEOUT, self.deliver(&job)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} s", SEND_TIMEOUT.as_secs())),
        };
        signal.attempted(&outcome);
        let error;
        let give_up_at = job.created_at
            + time::Duration::seconds(self.settings.smtp.give_up_after.min(i64::MAX as u64) as i64);
        let failed_at = OffsetDateTime::now_utc();
        let record = match &outcome {
            Ok(()) => Outcome::Sent,
            Err(message) if failed_at >= give_up_at => {
                tracing::error!(
                    "outbox job {} ({}) is dead: still failing after {} attempts and \
                     smtp.give_up_after ({} s): {message}",
                    job.id,
                    job.kind,
                    job.attempts,
                    self.settings.smtp.give_up_after
                );
                error = message.clone();
                Outcome::Dead { error: &error }
            }
            Err(message) => {
                // The last attempt comes at the deadline, not after it.
                let at = (failed_at + backoff(job.attempts)).min(give_up_at);
                tracing::warn!(
                    "outbox job {} attempt {} failed, retrying in {:.1} s: {message}",
                    job.id,
                    job.attempts,
                    (at - failed_at).as_seconds_f64()
                );
                error = message.clone();
                Outcome::Retry { at, error: &error }
            }
        };
        // A token has done its work once its email is sent, or never will
        // be: the row kept for the operator holds none.
        let kept = match record {
            Outcome::Retry { .. } => None,
            Outcome::Sent | Outcome::Dead { .. } => without_token(&job.payload),
        };
        let recorded = async {
            let mut tx = self.pool.begin().await?;
            let mine = outbox::finish(tx.conn(), &job, record, kept.as_deref(), now()).await?;
            tx.commit().await?;
            Ok::<bool, crate::db::DbError>(mine)
        }
        .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "outbox job {}: lease lost before the outcome was recorded",
                job.id
            ),
            // The lease runs out and the job is tried again: at least once.
            Err(err) => tracing::warn!("outbox job {}: cannot record the outcome: {err}", job.id),
        }
    }

    /// The job's email: its recipient, subject and rendered parts.
    fn compose(&self, job: &Job) -> Result<(String, String, Rendered), String> {
        let bad = |e: serde_json::Error| format!("bad payload: {e}");
        let settings = &self.settings;
        let link = |page: &str, token: &str| {
            format!(
                "{}/{page}?token={token}",
                settings.public_url.trim_end_matches('/')
            )
        };
        let verify_for = duration_in_words(settings.verify_email_ttl);
        let reset_for = duration_in_words(settings.password_reset_ttl);
        let (email, username, token, page, kind, subject, valid_for) = match job.kind.as_str() {
            WELCOME_EMAIL => {
                let e: WelcomeEmail = serde_json::from_str(&job.payload).map_err(bad)?;
                let subject = &settings.smtp.subject;
                let kind = Email::Welcome;
                (
                    e.email,
                    e.username,
                    e.verify_token,
                    "verify-email",
                    kind,
                    subject,
                    &verify_for,
                )
            }
            VERIFY_EMAIL | PASSWORD_RESET => {
                let e: TokenEmail = serde_json::from_str(&job.payload).map_err(bad)?;
                let (page, kind, subject, valid_for) = match job.kind.as_str() {
                    VERIFY_EMAIL => (
                        "verify-email",
                        Email::VerifyEmail,
                        &settings.smtp.verify_subject,
                        &verify_for,
                    ),
                    _ => (
                        "reset-password",
                        Email::PasswordReset,
                        &settings.smtp.reset_subject,
                        &reset_for,
                    ),
                };
                (
                    e.email,
                    e.username,
                    Some(e.token),
                    page,
                    kind,
                    subject,
                    valid_for,
                )
            }
            other => return Err(format!("unknown job kind {other:?}")),
        };
        let link = token.as_deref().map(|token| link(page, token));
        let values = Values {
            username: &username,
            email: &email,
            token: token.as_deref(),
            link: link.as_deref(),
            valid_for,
        };
        let rendered = self
            .templates
            .render(kind, &values)
            .map_err(|e| format!("template: {e}"))?;
        Ok((email, subject.clone(), rendered))
    }

    async fn deliver(&self, job: &Job) -> Result<(), String> {
        let (email, subject, rendered) = self.compose(job)?;
        let smtp = &self.settings.smtp;
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| format!("smtp.from {:?}: {e}", smtp.from))?;
        let to: Mailbox = email
            .parse()
            .map_err(|e| format!("recipient {email:?}: {e}"))?;
        let domain = smtp.from.rsplit('@').next().unwrap_or("roster.invalid");
        let message_id = format!(
            "<roster-outbox-{}@{}>",
            job.id,
            domain.trim_end_matches('>')
        );
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(&subject)
            .message_id(Some(message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html,
            ))
            .map_err(|e| format!("message: {e}"))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| format!("SMTP: {e}")),
            Transport::Log => {
                // Debug only (other profiles refuse to start without
                // smtp.url): the links in it let `cargo run` be tried end
                // to end.
                tracing::info!(
                    "email (smtp.url is not set, so it is logged, not sent) {message_id} to {email}: {subject}\n{}",
                    rendered.text
                );
                Ok(())
            }
        }
    }
}

/// The wait before attempt `attempts + 1`: 1 s, doubling, at most an hour,
/// less up to a fifth at random so that failed jobs do not retry in step.
pub fn backoff(attempts: i32) -> Duration {
    let base = 2f64.powi(attempts.clamp(1, 16) - 1).min(MAX_BACKOFF_SECS);
    let jitter = rand::thread_rng().gen_range(0.8..=1.0);
    Duration::from_secs_f64(base * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_at_most_an_hour() {
        let bounds = [
            (1, 0.8, 1.0),
            (2, 1.6, 2.0),
            (3, 3.2, 4.0),
            (6, 25.6, 32.0),
            (12, 1638.4, 2048.0),
            (13, 2880.0, 3600.0),
            (40, 2880.0, 3600.0),
        ];
        for (attempts, low, high) in bounds {
            for _ in 0..20 {
                let secs = backoff(attempts).as_secs_f64();
                assert!((low..=high).contains(&secs), "attempt {attempts}: {secs}");
            }
        }
    }
}
