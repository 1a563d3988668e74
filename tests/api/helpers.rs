//! `TestApp`: the application as shipped (`build_rocket`), on a database of
//! its own, driven through Rocket's asynchronous local client.
//!
//! The backend is SQLite (a file in a temporary directory) unless
//! `ROSTER_TEST_POSTGRES_URL` names a PostgreSQL server: then each test gets
//! a fresh database there, dropped when the test ends.

use std::sync::atomic::{AtomicUsize, Ordering};

use rocket::figment::Figment;
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use serde_json::{json, Value};

pub use crate::request::{read, Reply, TestRequest};
use crate::stores::TestUploads;

pub const POSTGRES_ENV: &str = "ROSTER_TEST_POSTGRES_URL";
pub const PASSWORD: &str = "Passw0rd1";
/// The tests' `jwt_secret`, so that they can forge tokens.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub token: String,
    pub refresh: String,
}

impl TestUser {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

pub struct TestApp {
    pub client: Client,
    pub figment: Figment,
    /// Where uploads go (a directory, or a prefix of the test bucket),
    /// unless the test chose its own.
    pub uploads: TestUploads,
    _upload_dir: tempfile::TempDir,
    db: TestDb,
}

enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Another app's database: that app drops it.
    Shared,
}

/// The PostgreSQL server the tests run against, when one is given.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|figment| figment).await
    }

    pub async fn spawn_with(customize: impl FnOnce(Figment) -> Figment) -> TestApp {
        let (url, db) = match postgres_url() {
            Some(admin_url) => {
                let name = format!(
                    "roster_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    rand_suffix()
                );
                create_pg_database(&admin_url, &name).await;
                (
                    with_database(&admin_url, &name),
                    TestDb::Postgres { admin_url, name },
                )
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("roster.db").display()
                );
                (url, TestDb::Sqlite(dir))
            }
        };
        Self::start(url, db, None, customize).await
    }

    /// A second instance on this app's database (several workers, say).
    pub async fn spawn_sharing(&self, customize: impl FnOnce(Figment) -> Figment) -> TestApp {
        Self::start(self.database_url(), TestDb::Shared, None, customize).await
    }

    /// A second instance on this app's database and upload store, as
    /// instances behind one load balancer.
    pub async fn spawn_replica(&self) -> TestApp {
        let uploads = self.uploads.clone();
        Self::start(self.database_url(), TestDb::Shared, Some(uploads), |f| f).await
    }

    pub fn database_url(&self) -> String {
        self.figment
            .extract_inner("databases.roster.url")
            .expect("database url")
    }

    async fn start(
        url: String,
        db: TestDb,
        uploads: Option<TestUploads>,
        customize: impl FnOnce(Figment) -> Figment,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let uploads = uploads.unwrap_or_else(|| TestUploads::new(dir.path()));
        let figment = customize(
            uploads
                .configure(roster::config::figment())
                .merge(("databases.roster.url", url))
                .merge(("bcrypt_cost", 4))
                .merge(("jwt_secret", JWT_SECRET))
                // Tests of other things must not trip the limits; the limits'
                // own tests set theirs.
                .merge(("rate_limit.per_minute", 1_000_000))
                .merge(("rate_limit.login_per_minute", 1_000_000))
                .merge(("rate_limit.register_per_minute", 1_000_000))
                .merge(("log_level", "critical")),
        );
        let rocket = roster::build_rocket(figment.clone()).expect("a valid configuration");
        let client = Client::tracked(rocket)
            .await
            .expect("the application ignites");
        TestApp {
            client,
            figment,
            uploads,
            _upload_dir: dir,
            db,
        }
    }

    /// The one way the tests build a request:
    /// `app.req("PATCH", path).bearer(&user).json(&body).send().await`.
    pub fn req(&self, method: &str, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            method: method.parse().expect("method"),
            path: path.to_owned(),
            content_type: None,
            body: Vec::new(),
            headers: Vec::new(),
            remote: None,
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.request_from(None, method, path, body, headers).await
    }

    /// A request from the socket address `remote`.
    pub async fn request_from(
        &self,
        remote: Option<std::net::SocketAddr>,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.req(method, path).headers(headers);
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(remote) = remote {
            req = req.from(remote);
        }
        req.send().await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(body), &[]).await
    }

    /// A request with `user`'s access token.
    pub async fn call(
        &self,
        user: &TestUser,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let req = self.req(method, path).bearer(user);
        match body {
            Some(body) => req.json(body).send().await,
            None => req.send().await,
        }
    }

    pub async fn get_as(&self, user: &TestUser, path: &str) -> Reply {
        self.call(user, "GET", path, None).await
    }

    pub async fn post_as(&self, user: &TestUser, path: &str, body: &Value) -> Reply {
        self.call(user, "POST", path, Some(body)).await
    }

    pub async fn put_as(&self, user: &TestUser, path: &str, body: &Value) -> Reply {
        self.call(user, "PUT", path, Some(body)).await
    }

    pub async fn patch_as(&self, user: &TestUser, path: &str, body: &Value) -> Reply {
        self.call(user, "PATCH", path, Some(body)).await
    }

    pub async fn delete_as(&self, user: &TestUser, path: &str) -> Reply {
        self.call(user, "DELETE", path, None).await
    }

    /// `POST /api/v1/auth/login` with a JSON body.
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Logs `username` in with the test password.
    pub async fn sign_in(&self, username: &str) -> TestUser {
        self.sign_in_with(username, PASSWORD).await
    }

    /// Logs `username` in with `password`.
    pub async fn sign_in_with(&self, username: &str, password: &str) -> TestUser {
        let reply = self.login(username, password).await;
        assert_eq!(reply.status, Status::Ok, "login {username}: {}", reply.text);
        let token = reply.body["access_token"].as_str().unwrap().to_owned();
        let me = self
            .req("GET", "/api/v1/users/me")
            .header("Authorization", &format!("Bearer {token}"))
            .send()
            .await;
        TestUser {
            id: me.body["id"].as_i64().expect("id"),
            token,
            refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Registers and signs in a user.
    pub async fn user(&self, username: &str) -> TestUser {
        self.register(username).await;
        self.sign_in(username).await
    }

    /// Creates and signs in an admin.
    pub async fn admin(&self, username: &str) -> TestUser {
        self.create_admin(username).await;
        self.sign_in(username).await
    }

    /// `user`'s session is over: its access token and its refresh token
    /// are both refused.
    pub async fn assert_signed_out(&self, user: &TestUser) {
        let me = self.get_as(user, "/api/v1/users/me").await;
        assert_eq!(me.status, Status::Unauthorized, "{}", me.text);
        let refresh = self
            .post(
                "/api/v1/auth/refresh",
                &json!({"refresh_token": user.refresh}),
            )
            .await;
        assert_eq!(refresh.status, Status::Unauthorized, "{}", refresh.text);
    }

    /// Sends raw bytes with any method, content type and headers.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        self.req(method, path)
            .body(content_type, body)
            .headers(headers)
            .send()
            .await
    }

    /// Sends a raw body with the given content type.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        self.send_raw("POST", path, content_type, body, &[]).await
    }

    /// Registers a user and returns it.
    pub async fn register(&self, username: &str) -> Value {
        let reply = self
            .post(
                "/api/v1/users",
                &json!({
                    "username": username,
                    "email": format!("{}@example.com", username.to_lowercase()),
                    "password": PASSWORD,
                }),
            )
            .await;
        assert_eq!(reply.status, Status::Created, "{}", reply.text);
        reply.body
    }

    /// The one number a `SELECT count(*) ...` of this app's database gives.
    pub async fn count(&self, sql: &'static str) -> i64 {
        use rocket_db_pools::Database;
        let db = roster::db::Db::fetch(self.client.rocket()).expect("database attached");
        let mut conn = db.acquire().await.expect("a connection");
        match conn.conn() {
            roster::db::Conn::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            roster::db::Conn::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .expect("the count")
    }

    /// Runs one statement on this app's database, behind the API's back.
    pub async fn execute(&self, sql: &'static str) {
        use rocket_db_pools::Database;
        let db = roster::db::Db::fetch(self.client.rocket()).expect("database attached");
        let mut conn = db.acquire().await.expect("a connection");
        match conn.conn() {
            roster::db::Conn::Sqlite(c) => sqlx::query(sql).execute(c).await.map(drop),
            roster::db::Conn::Postgres(c) => sqlx::query(sql).execute(c).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Creates an admin the way `roster admin create` does.
    pub async fn create_admin(&self, username: &str) -> i64 {
        roster::admin::create_admin(
            &self.figment,
            username.to_owned(),
            format!("{}@example.com", username.to_lowercase()),
            PASSWORD.to_owned(),
            false,
        )
        .await
        .map(|created| match created {
            roster::admin::Created::New(user) | roster::admin::Created::Existing(user) => user.id,
        })
        .expect("admin created")
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

async fn create_pg_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin_url} does not answer: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stops the background tasks (outbox worker, pruners).
        self.client.rocket().shutdown().notify();
        if let TestDb::Postgres { admin_url, name } = &self.db {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread of our own.
            let dropped = std::thread::spawn(move || {
                let runtime = rocket::tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .map(drop)
                })
            })
            .join();
            if let Ok(Err(err)) = dropped {
                eprintln!("could not drop test database: {err}");
            }
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
