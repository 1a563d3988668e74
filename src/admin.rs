//! `roster admin create`: the first administrator, from the command line.

use rocket::figment::Figment;

use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::db::users::{self, UserRecord};
use crate::db::{now, DbError, DbPool};
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
}

fn field(name: &'static str) -> impl Fn(Invalid) -> AdminError {
    move |reason| AdminError::Invalid {
        field: name,
        reason,
    }
}

/// Creates an active admin after running migrations. A taken username or
/// email, or a value that breaks the API's rules (README), is an error and nothing is
/// written.
pub async fn create_admin(
    figment: &Figment,
    username: String,
    email: String,
    password: String,
) -> Result<UserRecord, AdminError> {
    let username = Username::parse(username).map_err(field("username"))?;
    let email = Email::parse(email).map_err(field("email"))?;
    let password = Password::parse(password).map_err(field("password"))?;

    let settings: Settings = figment
        .extract()
        .map_err(|e| AdminError::Config(e.to_string()))?;
    settings.validate().map_err(AdminError::Config)?;
    let db_config: rocket_db_pools::Config = figment
        .focus("databases.roster")
        .join(("max_connections", 2))
        .extract()
        .map_err(|e| AdminError::Config(e.to_string()))?;

    let pool = DbPool::connect(&db_config).await?;
    pool.migrate().await?;
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
        },
        now(),
    )
    .await?;
    tx.commit().await?;
    pool.close_all().await;
    Ok(user)
}
