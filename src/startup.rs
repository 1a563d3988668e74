//! What runs once at start, in the order `build_rocket` attaches it: the
//! database waited for and migrated, the upload directory's repair, bcrypt's
//! self-test, and the line that says where Roster listens.

use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::{Build, Orbit, Rocket};
use rocket_db_pools::Database;

use crate::auth::password::PasswordHasher;
use crate::auth::tokens::{random_secret, TokenKeys};
use crate::config::{ConfigError, Settings};
use crate::db::batch::Reads;
use crate::db::{self, Db, DbPool};
use crate::uploads::Storage;

/// The access-token keys of `jwt_secret` (a random one, with a warning,
/// when the profile allows none), checked by signing and verifying a token.
pub fn token_keys(settings: &Settings) -> Result<TokenKeys, ConfigError> {
    let secret = match &settings.jwt_secret {
        Some(secret) => secret.expose().to_owned(),
        None => {
            tracing::warn!(
                "jwt_secret is not set: using a random secret, so tokens end when the process \
                 does (set ROCKET_JWT_SECRET to keep them)"
            );
            random_secret()
        }
    };
    let verify_only: Vec<&[u8]> = settings
        .jwt_verify_secrets
        .iter()
        .map(|secret| secret.expose().as_bytes())
        .collect();
    let keys = TokenKeys::rotating(secret.as_bytes(), &verify_only, settings.access_token_ttl);
    keys.self_test()
        .map_err(|message| ConfigError(format!("access tokens do not work: {message}")))?;
    Ok(keys)
}

/// Waits for the database (`databases.roster.startup_timeout`), then
/// brings its schema up to date unless `migrate_on_start = false`.
pub fn database() -> AdHoc {
    AdHoc::try_on_ignite("Database", |rocket| {
        Box::pin(async move {
            let (Some(db), Some(settings)) = (Db::fetch(&rocket), rocket.state::<Settings>())
            else {
                return Err(rocket);
            };
            let pool: &DbPool = db;
            let patience = rocket
                .figment()
                .extract_inner::<u64>("databases.roster.startup_timeout")
                .unwrap_or(30);
            let done = async {
                let failed = |err: crate::db::DbError| err.to_string();
                pool.wait_ready(Duration::from_secs(patience))
                    .await
                    .map_err(failed)?;
                if settings.migrate_on_start {
                    return pool.migrate().await.map_err(failed);
                }
                // Serving a schema this binary does not expect would fail
                // request by request: refuse to start instead.
                match pool.pending_migrations().await.map_err(failed)?.as_slice() {
                    [] => Ok(()),
                    pending => Err(format!(
                        "the database lacks migrations {pending:?} and migrate_on_start is \
                         false: run `roster migrate` first"
                    )),
                }
            };
            match done.await {
                Ok(()) => {
                    // Reads on PostgreSQL go in batches (`db::batch`);
                    // SQLite reads directly.
                    let reads: Option<Reads> = match pool {
                        DbPool::Postgres(conns) => Some(Reads::start(conns.clone())),
                        DbPool::Sqlite(_) => None,
                    };
                    Ok(rocket.manage(DatabaseReady).manage(reads))
                }
                Err(err) => {
                    tracing::error!("{err}");
                    Err(rocket)
                }
            }
        })
    })
}

/// Managed once [`database`] has found the database up to date: the steps
/// after it that need the database skip their work without it (the start
/// fails with the database's own error, and only that).
struct DatabaseReady;

/// Opens the upload store (`upload.dir` or the bucket of `upload.s3`),
/// sweeps what a crash may have left there, and manages the [`Storage`]
/// ([`upload_sweeper`] sweeps again every hour, so that with several
/// instances on one store, what one left is cleaned by any of them).
pub fn upload_storage() -> AdHoc {
    AdHoc::try_on_ignite("Upload storage", |rocket| {
        Box::pin(async move {
            match open_storage(&rocket).await {
                Ok(storage) => Ok(rocket.manage(storage)),
                Err(message) => {
                    tracing::error!("{message}");
                    Err(rocket)
                }
            }
        })
    })
}

async fn open_storage(rocket: &Rocket<Build>) -> Result<Storage, String> {
    let (Some(settings), Some(db)) = (rocket.state::<Settings>(), Db::fetch(rocket)) else {
        return Err("the settings or the database are not managed".to_owned());
    };
    let storage = Storage::open(&settings.upload).await?;
    if rocket.state::<DatabaseReady>().is_some() {
        sweep_uploads(&storage, db).await?;
    }
    Ok(storage)
}

/// Sweeps the upload store every hour from liftoff until shutdown.
pub fn upload_sweeper() -> AdHoc {
    AdHoc::on_liftoff("Upload sweeper", |rocket| {
        Box::pin(async move {
            let (Some(storage), Some(db)) = (rocket.state::<Storage>(), Db::fetch(rocket)) else {
                return;
            };
            let (storage, pool) = (storage.clone(), (**db).clone());
            let mut shutdown = rocket.shutdown();
            rocket::tokio::spawn(async move {
                let mut ticks = rocket::tokio::time::interval(SWEEP_EVERY);
                // The first tick is now: start-up has just swept.
                ticks.tick().await;
                loop {
                    rocket::tokio::select! {
                        _ = ticks.tick() => {}
                        _ = &mut shutdown => break,
                    }
                    if let Err(message) = sweep_uploads(&storage, &pool).await {
                        tracing::warn!("{message}");
                    }
                }
            });
        })
    })
}

/// How often a serving instance sweeps the upload store.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes files of the upload store that no row names (or half-received
/// ones) and that are older than [`crate::uploads::ORPHAN_AGE`]; reports
/// rows without a file.
async fn sweep_uploads(storage: &Storage, db: &db::DbPool) -> Result<(), String> {
    let ids = async {
        let mut conn = db.acquire().await?;
        db::uploads::all_ids(conn.conn()).await
    }
    .await
    .map_err(|err| format!("cannot list uploads: {err}"))?;
    let cutoff = std::time::SystemTime::now() - crate::uploads::ORPHAN_AGE;
    let (removed, missing) = storage
        .repair(ids.into_iter().collect(), cutoff)
        .await
        .map_err(|err| format!("cannot check {}: {err}", storage.describe()))?;
    if removed > 0 {
        tracing::warn!("removed {removed} orphan upload files");
    }
    if missing > 0 {
        tracing::error!("{missing} uploads have no file in {}", storage.describe());
    }
    Ok(())
}

/// Hashes once with the configured cost, so that a bcrypt that does not
/// work stops the start, and the first login does not pay for the dummy
/// hash that unknown usernames are checked against.
pub fn password_hasher() -> AdHoc {
    AdHoc::try_on_ignite("Password hasher", |rocket| {
        Box::pin(async move {
            let Some(hasher) = rocket.state::<PasswordHasher>() else {
                return Err(rocket);
            };
            match hasher.prepare().await {
                Ok(()) => Ok(rocket),
                Err(err) => {
                    tracing::error!("bcrypt does not work: {err}");
                    Err(rocket)
                }
            }
        })
    })
}

/// One line that says where Roster listens and which database it uses
/// (shown at every log level, never with a password).
pub fn announce() -> AdHoc {
    AdHoc::on_liftoff("Startup line", |rocket| {
        Box::pin(async move { announce_line(rocket) })
    })
}

fn announce_line(rocket: &Rocket<Orbit>) {
    let config = rocket.config();
    let url: String = rocket
        .figment()
        .extract_inner("databases.roster.url")
        .unwrap_or_default();
    tracing::info!(
        target: crate::telemetry::logs::STARTUP,
        "Roster {} listening on http://{}:{} using {}",
        env!("CARGO_PKG_VERSION"),
        config.address,
        config.port,
        DbPool::describe(&url)
    );
}
