//! `Server`: the real `roster` binary, serving over HTTP on a free port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::free_port;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_roster");

/// A `roster` process serving from `dir` with environment variables only
/// (no Rocket.toml there), killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl Server {
    /// Signs in over HTTP: the token pair as the server answers it.
    pub async fn login(&self, username: &str, password: &str) -> serde_json::Value {
        let reply = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(reply.status(), 200, "login of {username}");
        reply.json().await.expect("a JSON token pair")
    }

    pub async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = dir.join("server.log");
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_BCRYPT_COST", "4")
            .env("ROCKET_CLI_COLORS", "false")
            .env(
                "ROCKET_RATE_LIMIT",
                "{per_minute=1000000,login_per_minute=1000000,register_per_minute=1000000}",
            )
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.err")).unwrap(),
            ));
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("roster starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready().await;
        server
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(reply) = reqwest::get(format!("{}/health/live", self.base)).await {
                if reply.status() == 200 {
                    return;
                }
            }
            rocket::tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "roster did not start: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "roster did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
