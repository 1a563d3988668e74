//! The commands that run once and exit: `roster migrate`, `roster backup`,
//! `roster outbox list|retry` and `roster admin create` (the first
//! administrator).

use rocket::figment::Figment;

use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::db::users::{self, UserRecord};
use crate::db::{now, Backend, Conn, DbError, DbPool};
use crate::domain::{Email, Invalid, Password, Role, Username};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: Invalid,
    },
    #[error("{0}")]
    Database(#[from] DbError),
    #[error("could not hash the password: {0}")]
    Hash(String),
    #[error("{0}")]
    Refused(String),
}

fn field(name: &'static str) -> impl Fn(Invalid) -> AdminError {
    move |reason| AdminError::Invalid {
        field: name,
        reason,
    }
}

/// What `admin create` did.
pub enum Created {
    New(UserRecord),
    /// `--if-missing`, and an admin of that username was there already.
    Existing(UserRecord),
}

/// Creates an active admin after running migrations. A taken username or
/// email, or a value that breaks the API's rules (README), is an error and
/// nothing is written; with `if_missing`, an existing admin of that username
/// is success (a user who is not an admin is still an error).
pub async fn create_admin(
    figment: &Figment,
    username: String,
    email: String,
    password: String,
    if_missing: bool,
) -> Result<Created, AdminError> {
    let username = Username::parse(username).map_err(field("username"))?;
    let email = Email::parse(email).map_err(field("email"))?;
    let password = Password::parse(password).map_err(field("password"))?;

    let settings = Settings::read(figment).map_err(|e| AdminError::Config(e.0))?;
    let pool = DbPool::for_command(figment).await?;
    pool.migrate().await?;
    if if_missing {
        let mut conn = pool.acquire().await?;
        let existing = users::find_by_username(conn.conn(), username.as_str()).await?;
        drop(conn);
        if let Some(user) = existing.filter(|user| user.role == Role::Admin) {
            pool.close_all().await;
            return Ok(Created::Existing(user));
        }
    }
    let hash = PasswordHasher::new(
        settings.bcrypt_cost,
        std::time::Duration::from_secs(settings.bcrypt_queue_timeout),
    )
    .hash(&password)
    .await
    .map_err(|e| AdminError::Hash(e.to_string()))?;
    let mut tx = pool.begin().await?;
    let user = users::insert(
        tx.conn(),
        &users::NewUser {
            username: username.as_str(),
            email: email.as_str(),
            password_hash: &hash,
            age: None,
            role: Role::Admin,
            email_verified: true,
        },
        now(),
    )
    .await?;
    tx.commit().await?;
    pool.close_all().await;
    Ok(Created::New(user))
}

/// Applies the pending migrations (`roster migrate`): what serving does at
/// start unless `migrate_on_start = false`.
pub async fn migrate(figment: &Figment) -> Result<(), AdminError> {
    Settings::read(figment).map_err(|e| AdminError::Config(e.0))?;
    let pool = DbPool::for_command(figment).await?;
    let done = pool.migrate().await;
    pool.close_all().await;
    Ok(done?)
}

/// Writes a consistent copy of the SQLite database to `file` while it may
/// be serving (`VACUUM INTO`: one read transaction, so the copy is the
/// database as of one moment, compacted). PostgreSQL is refused with the
/// tool to use instead; an existing `file` is never overwritten.
pub async fn backup(figment: &Figment, file: &std::path::Path) -> Result<(), AdminError> {
    Settings::read(figment).map_err(|e| AdminError::Config(e.0))?;
    let url: String = figment
        .extract_inner("databases.roster.url")
        .map_err(|e| AdminError::Config(e.to_string()))?;
    if Backend::of_url(&url)? == Backend::Postgres {
        return Err(AdminError::Refused(
            "roster backup copies SQLite databases; back up PostgreSQL with pg_dump, \
             for example: pg_dump --format=custom --file=roster.dump \"$DATABASE_URL\""
                .to_owned(),
        ));
    }
    if file.exists() {
        return Err(AdminError::Refused(format!(
            "{} exists already: give a new file name",
            file.display()
        )));
    }
    let source = std::str::FromStr::from_str(&url)
        .map(|options: sqlx::sqlite::SqliteConnectOptions| options.get_filename().to_path_buf())
        .map_err(|err| AdminError::Config(format!("databases.roster.url: {err}")))?;
    if !source.exists() {
        return Err(AdminError::Refused(format!(
            "there is no database at {} to back up",
            source.display()
        )));
    }
    let pool = DbPool::for_command(figment).await?;
    let copied = async {
        let mut conn = pool.acquire().await?;
        if let Conn::Sqlite(c) = conn.conn() {
            sqlx::query("VACUUM INTO $1")
                .bind(file.display().to_string())
                .execute(c)
                .await?;
        }
        Ok::<_, DbError>(())
    }
    .await;
    pool.close_all().await;
    Ok(copied?)
}

/// The email jobs of one status, or all, oldest first (`roster outbox list`).
pub async fn outbox_list(
    figment: &Figment,
    status: Option<&str>,
) -> Result<Vec<crate::db::outbox::JobStatus>, AdminError> {
    Settings::read(figment).map_err(|e| AdminError::Config(e.0))?;
    let pool = DbPool::for_command(figment).await?;
    let listed = async {
        let mut conn = pool.acquire().await?;
        crate::db::outbox::list_by_status(conn.conn(), status).await
    }
    .await;
    pool.close_all().await;
    Ok(listed?)
}

/// Puts job `id`, or every dead job, back in the queue (`roster outbox
/// retry`): due now, with `smtp.give_up_after` counted from now. Returns
/// how many; an `id` that names no job is an error.
pub async fn outbox_retry(figment: &Figment, id: Option<i64>) -> Result<u64, AdminError> {
    Settings::read(figment).map_err(|e| AdminError::Config(e.0))?;
    let pool = DbPool::for_command(figment).await?;
    let requeued = async {
        let mut tx = pool.begin().await?;
        let n = crate::db::outbox::requeue(tx.conn(), id, now()).await?;
        tx.commit().await?;
        Ok::<_, DbError>(n)
    }
    .await;
    pool.close_all().await;
    match (requeued?, id) {
        (0, Some(id)) => Err(AdminError::Refused(format!("there is no outbox job {id}"))),
        (n, _) => Ok(n),
    }
}
