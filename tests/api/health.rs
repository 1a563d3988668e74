use rocket::http::Status;
use serde_json::json;

use rocket_db_pools::Database;

use crate::helpers::TestApp;

#[rocket::async_test]
async fn liveness_and_readiness_answer_200_with_a_working_database() {
    let app = TestApp::spawn().await;
    let live = app.get("/health/live").await;
    assert_eq!(
        (live.status, live.body),
        (Status::Ok, json!({"status": "ok", "notes": []}))
    );
    let ready = app.get("/health/ready").await;
    assert_eq!(
        (ready.status, ready.body),
        (Status::Ok, json!({"status": "ready", "notes": []}))
    );
}

#[rocket::async_test]
async fn readiness_is_503_json_while_the_database_is_closed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let db = roster::db::Db::fetch(app.client.rocket()).expect("database attached");
    db.close_all().await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, Status::ServiceUnavailable);
    assert_eq!(ready.body, json!({"detail": "Database unavailable"}));
    let users = app.get_as(&alice, "/api/v1/users").await;
    assert_eq!(users.status, Status::ServiceUnavailable);
    assert!(!users.text.contains("pool"), "no internals: {}", users.text);
    assert_eq!(users.header("Retry-After"), Some("2"), "says when to retry");
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    assert_eq!(me.status, Status::ServiceUnavailable);
    assert_eq!(me.header("Retry-After"), Some("2"), "{:?}", me.text);
}

/// Forwards connections on a port of its own to `upstream` until cut: a
/// network path to a real server that a test can break and mend.
struct Cable {
    port: u16,
    upstream: std::net::SocketAddr,
    forwarding: Option<rocket::tokio::task::JoinHandle<()>>,
}

/// The connections through a cable, ended when it is cut.
struct Links(Vec<rocket::tokio::task::JoinHandle<()>>);

impl Drop for Links {
    fn drop(&mut self) {
        self.0.iter().for_each(|link| link.abort());
    }
}

impl Cable {
    async fn connect(upstream: std::net::SocketAddr) -> Cable {
        let mut cable = Cable {
            port: crate::helpers::free_port(),
            upstream,
            forwarding: None,
        };
        cable.mend().await;
        cable
    }

    /// Listens (again) on the same port.
    async fn mend(&mut self) {
        let listener = rocket::tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the cable's port");
        let upstream = self.upstream;
        self.forwarding = Some(rocket::tokio::spawn(async move {
            let mut links = Links(Vec::new());
            while let Ok((mut client, _)) = listener.accept().await {
                links.0.push(rocket::tokio::spawn(async move {
                    if let Ok(mut server) = rocket::tokio::net::TcpStream::connect(upstream).await {
                        let _ =
                            rocket::tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        }));
    }

    /// Closes the port and every connection through it.
    fn cut(&mut self) {
        if let Some(forwarding) = self.forwarding.take() {
            forwarding.abort();
        }
    }
}

async fn upload_hello(app: &TestApp, user: &crate::helpers::TestUser) -> crate::helpers::Reply {
    let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--b--\r\n";
    app.req("POST", "/api/v1/uploads")
        .bearer(user)
        .body(Some("multipart/form-data; boundary=b"), body)
        .send()
        .await
}

/// Readiness's notes, as JSON text; the database is fine throughout.
async fn readiness_notes(app: &TestApp) -> String {
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, Status::Ok, "{}", ready.text);
    ready.body["notes"].to_string()
}

/// A store that fails answers the upload with a JSON error, and readiness
/// names it until it works again: a directory replaced by a file (500),
/// and, when the suite has a bucket, the network to it cut (503 with
/// `Retry-After`).
#[rocket::async_test]
async fn a_failing_upload_store_is_a_json_error_and_a_readiness_note_until_it_works() {
    // A directory.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let app = TestApp::spawn_with(|f| {
        f.merge(("upload.backend", "fs"))
            .merge(("upload.dir", root.display().to_string()))
    })
    .await;
    let alice = app.user("alice").await;
    std::fs::remove_dir(root.join("tmp")).unwrap();
    std::fs::write(root.join("tmp"), b"not a directory").unwrap();
    let failed = upload_hello(&app, &alice).await;
    assert_eq!(
        failed.status,
        Status::InternalServerError,
        "{}",
        failed.text
    );
    assert!(failed.body["detail"].is_string(), "{}", failed.text);
    assert!(readiness_notes(&app)
        .await
        .contains("the upload store is failing"));
    std::fs::remove_file(root.join("tmp")).unwrap();
    std::fs::create_dir(root.join("tmp")).unwrap();
    assert_eq!(upload_hello(&app, &alice).await.status, Status::Created);
    assert_eq!(
        readiness_notes(&app).await,
        "[]",
        "the note goes once it works"
    );

    // A bucket, reached through a cable the test cuts.
    let Some(s3) = crate::stores::s3() else {
        return;
    };
    let upstream = s3
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("the test bucket's endpoint is http://host:port");
    let mut cable = Cable::connect(upstream).await;
    let endpoint = format!("http://127.0.0.1:{}", cable.port);
    let app = TestApp::spawn_with(|f| {
        f.merge(("upload.backend", "s3"))
            .merge(("upload.s3.endpoint", &endpoint))
            .merge((
                "upload.s3.prefix",
                format!("test-{}/", uuid::Uuid::new_v4().simple()),
            ))
    })
    .await;
    let alice = app.user("alice").await;
    let first = upload_hello(&app, &alice).await;
    assert_eq!(first.status, Status::Created, "{}", first.text);
    let id = first.body["id"].as_str().unwrap().to_owned();
    cable.cut();
    let failed = upload_hello(&app, &alice).await;
    assert_eq!(failed.status, Status::ServiceUnavailable, "{}", failed.text);
    assert_eq!(failed.body, json!({"detail": "Upload storage unavailable"}));
    assert!(failed.header("Retry-After").is_some());
    assert!(readiness_notes(&app)
        .await
        .contains("the upload store is failing"));
    let download = app
        .get_as(&alice, &format!("/api/v1/uploads/{id}/content"))
        .await;
    assert_eq!(
        download.status,
        Status::ServiceUnavailable,
        "{}",
        download.text
    );
    assert!(readiness_notes(&app)
        .await
        .contains("the upload store is failing"));
    let list = app.get_as(&alice, "/api/v1/uploads").await;
    assert_eq!(
        list.body.as_array().map(Vec::len),
        Some(1),
        "nothing recorded for the failure"
    );
    cable.mend().await;
    assert_eq!(upload_hello(&app, &alice).await.status, Status::Created);
    assert_eq!(readiness_notes(&app).await, "[]");
}
