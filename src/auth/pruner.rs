//! Deletes expired refresh tokens and the sessions they leave empty, and
//! expired reset and verification tokens, every hour from liftoff until
//! shutdown.

use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::tokio::{self, time::MissedTickBehavior};
use rocket_db_pools::Database;
use time::Duration as TimeDuration;

use super::tokens::TokenKeys;
use crate::db::{account_tokens, now, sessions, Db};

const EVERY: Duration = Duration::from_secs(3600);

pub fn fairing() -> AdHoc {
    AdHoc::on_liftoff("Session pruner", |rocket| {
        Box::pin(async move {
            let (Some(db), Some(keys)) = (Db::fetch(rocket), rocket.state::<TokenKeys>()) else {
                return;
            };
            let pool = (**db).clone();
            // Access tokens outlive nothing but their session: keep a
            // session until its last access token has expired too.
            let grace = TimeDuration::seconds(keys.access_ttl() as i64);
            let mut shutdown = rocket.shutdown();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(EVERY);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = &mut shutdown => break,
                    }
                    let result = async {
                        let mut conn = pool.acquire().await?;
                        account_tokens::prune(conn.conn(), now()).await?;
                        sessions::prune(conn.conn(), now() - grace).await
                    }
                    .await;
                    match result {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("pruned {n} expired sessions"),
                        Err(err) => tracing::warn!("pruning expired sessions failed: {err}"),
                    }
                }
            });
        })
    })
}
