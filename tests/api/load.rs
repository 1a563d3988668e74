//! The real binary under load: concurrent logins beside health checks, and
//! a 50 MiB upload and download in flat memory.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::Server;
use crate::stores::TestUploads;
use serde_json::{json, Value};

#[rocket::async_test]
async fn fifty_concurrent_logins_leave_health_answering_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let server = Server::start(
        dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_BCRYPT_COST", "10")],
    )
    .await;
    let http = reqwest::Client::new();
    let registered = http
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    let started = Instant::now();
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let request = http
                .post(format!("{}/api/v1/auth/login", server.base))
                .json(&json!({"username": "alice", "password": "Passw0rd1"}))
                .send();
            rocket::tokio::spawn(request)
        })
        .collect();
    rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    let mut probes = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        let live = http
            .get(format!("{}/health/live", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);
        probes.push(sent.elapsed());
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut statuses = Vec::new();
    for login in logins {
        statuses.push(login.await.unwrap().unwrap().status().as_u16());
    }
    let logins_took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let slowest = probes.iter().max().unwrap();
    assert!(
        logins_took > Duration::from_millis(600),
        "the logins should have overlapped the probes ({logins_took:?})"
    );
    assert!(
        *slowest < Duration::from_millis(500) && *slowest * 3 < logins_took,
        "health probes {probes:?} while 50 logins took {logins_took:?}"
    );
}

/// Kibibytes of a `/proc/<pid>/status` field (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from {status}"))
}

#[rocket::async_test]
async fn a_50_mib_upload_and_download_stream_with_flat_memory() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    // In a directory or in the test bucket, as the suite runs.
    let uploads = TestUploads::new(&dir.path().join("uploads"));
    let upload_env = uploads.rocket_env("max_bytes=62914560,quota_bytes=209715200");
    let server = Server::start(
        dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_UPLOAD", &upload_env)],
    )
    .await;
    let http = reqwest::Client::new();
    http.post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    let login = server.login("alice", "Passw0rd1").await;
    let auth = format!(
        "Authorization: Bearer {}",
        login["access_token"].as_str().unwrap()
    );

    // 50 MiB that no compression or deduplication could shrink.
    let mut content = Vec::with_capacity(50 << 20);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    while content.len() < 50 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &content).unwrap();
    let digest = format!("{:x}", Sha256::digest(&content));
    drop(content);

    // A small upload and download first, so that what the first transfer
    // allocates once (buffers, the allocator's per-thread caches) is in
    // the baseline: what is measured is what grows with the file.
    let small = dir.path().join("small.bin");
    std::fs::write(&small, vec![7u8; 1 << 20]).unwrap();
    let warm = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-H", &auth, "-F"])
        .arg(format!("file=@{}", small.display()))
        .arg(format!("{}/api/v1/uploads", server.base))
        .output()
        .expect("curl runs");
    assert!(warm.status.success());
    let warm: Value = serde_json::from_slice(&warm.stdout).unwrap();
    let fetched = Command::new("curl")
        .args(["-sS", "--fail", "-o", "/dev/null", "-H", &auth])
        .arg(format!(
            "{}/api/v1/uploads/{}/content",
            server.base,
            warm["id"].as_str().unwrap()
        ))
        .status()
        .expect("curl runs");
    assert!(fetched.success());

    let pid = server.child.id();
    let before = proc_kib(pid, "VmHWM");
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-H", &auth, "-F"])
        .arg(format!("file=@{}", file.display()))
        .arg(format!("{}/api/v1/uploads", server.base))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let uploaded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(uploaded["size"], 50 << 20);
    assert_eq!(uploaded["sha256"], digest.as_str());

    let copy = dir.path().join("copy.bin");
    let headers = dir.path().join("headers.txt");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-H", &auth, "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&copy)
        .arg(format!(
            "{}/api/v1/uploads/{}/content",
            server.base,
            uploaded["id"].as_str().unwrap()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let headers = std::fs::read_to_string(headers).unwrap().to_lowercase();
    assert!(
        headers.contains(&format!("content-length: {}", 50 << 20)),
        "{headers}"
    );
    assert!(
        headers.contains("content-disposition: attachment;"),
        "{headers}"
    );
    assert_eq!(
        format!("{:x}", Sha256::digest(std::fs::read(&copy).unwrap())),
        digest
    );

    let peak = proc_kib(pid, "VmHWM");
    let grown_mib = (peak.saturating_sub(before)) as f64 / 1024.0;
    let backend = if uploads.is_s3() { "s3" } else { "fs" };
    eprintln!(
        "upload.backend {backend}: server peak RSS {before} KiB before, {peak} KiB after a \
         50 MiB upload and download"
    );
    // A server that held the file in memory would grow by 50 MiB at least;
    // one that streams grows by its buffers: on fs 1-3 MiB, alone or while
    // the whole suite loads both cores (before the multipart parser was
    // paced, it read ahead of a starved file writer by up to 40 MiB then);
    // on s3 up to three 5 MiB parts more (one filling, two being sent).
    assert!(
        grown_mib < 20.0 + if uploads.is_s3() { 15.0 } else { 0.0 },
        "peak RSS grew {grown_mib:.1} MiB for a 50 MiB file on {backend}"
    );
    // The test bucket keeps nothing it does not need.
    for id in [&uploaded["id"], &warm["id"]] {
        let deleted = http
            .delete(format!(
                "{}/api/v1/uploads/{}",
                server.base,
                id.as_str().unwrap()
            ))
            .header("Authorization", &auth["Authorization: ".len()..])
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
    }
}
