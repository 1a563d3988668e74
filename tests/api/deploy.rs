//! The deployment files kept in `deploy/`, exercised: the systemd unit
//! verifies, and the commands it runs work with an environment file like
//! the one it documents. (`deploy/nginx.conf` runs in front of the release
//! binary in `tests/faults/run.py`.)

use std::process::Command;

use crate::server::BIN;

const UNIT: &str = include_str!("../../deploy/roster.service");

#[test]
fn the_systemd_unit_verifies_and_its_commands_run() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("roster.env");
    let database = dir.path().join("roster.db");
    std::fs::write(
        &env_file,
        format!(
            "ROCKET_JWT_SECRET=0123456789abcdef0123456789abcdef\n\
             DATABASE_URL=sqlite://{}?mode=rwc\n\
             ROCKET_RATE_LIMIT={{backend=\"memory\"}}\n\
             ROCKET_TRUSTED_PROXIES=[\"10.0.0.5\"]\n\
             ROCKET_SMTP={{url=\"smtp://127.0.0.1:2525\", from=\"noreply@example.com\"}}\n\
             ROCKET_ADDRESS=0.0.0.0\n",
            database.display()
        ),
    )
    .unwrap();
    assert!(UNIT.contains("EnvironmentFile=/etc/roster/roster.env\n"));
    let unit = UNIT
        .replace("/usr/local/bin/roster", BIN)
        .replace("/etc/roster/roster.env", &env_file.display().to_string());
    let path = dir.path().join("roster.service");
    std::fs::write(&path, &unit).unwrap();

    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (tests/run installs systemd where missing)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // verify exits 0 on unknown keys and bad values, and only says so.
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "{said}"
    );

    // ExecStartPre, as systemd would run it: the unit's Environment= and
    // the environment file.
    let mut env: Vec<(String, String)> = Vec::new();
    for line in unit.lines() {
        if let Some(pair) = line.strip_prefix("Environment=") {
            let (key, value) = pair.split_once('=').unwrap();
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    for line in std::fs::read_to_string(&env_file).unwrap().lines() {
        let (key, value) = line.split_once('=').unwrap();
        env.push((key.to_owned(), value.to_owned()));
    }
    let pre = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStartPre="))
        .expect("ExecStartPre");
    let mut words = pre.split_whitespace();
    let out = Command::new(words.next().unwrap())
        .args(words)
        .env_clear()
        .envs(env)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"profile\": \"release\""), "{text}");
    assert!(!database.exists(), "the check touches nothing");
}
