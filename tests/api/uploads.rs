use rocket::http::{Header, Status};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{read, Reply, TestApp, TestUser};
use crate::stores::TestUploads;

const BOUNDARY: &str = "roster-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart body with one `file` part; `filename` is the raw parameter
/// (`; filename="a.txt"`, or unquoted and percent-encoded).
fn multipart(filename: &str, content: &[u8]) -> Vec<u8> {
    let mut body =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"{filename}")
            .into_bytes();
    body.extend_from_slice(b"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_raw(app: &TestApp, user: &TestUser, body: Vec<u8>) -> Reply {
    let req = app
        .client
        .post("/api/v1/uploads")
        .header(Header::new("Authorization", user.bearer()))
        .header(Header::new(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .body(body);
    read(req.dispatch().await).await
}

async fn upload(app: &TestApp, user: &TestUser, name: &str, content: &[u8]) -> Reply {
    upload_raw(
        app,
        user,
        multipart(&format!("; filename=\"{name}\""), content),
    )
    .await
}

async fn content(
    app: &TestApp,
    user: &TestUser,
    id: &str,
) -> (Status, Vec<(String, String)>, Vec<u8>) {
    let response = app
        .client
        .get(format!("/api/v1/uploads/{id}/content"))
        .header(Header::new("Authorization", user.bearer()))
        .dispatch()
        .await;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect();
    (
        status,
        headers,
        response.into_bytes().await.unwrap_or_default(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[rocket::async_test]
async fn binary_content_round_trips_byte_for_byte() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let reply = upload(&app, &alice, "data.bin", &bytes).await;
    assert_eq!(reply.status, Status::Created, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.header("Location"),
        Some(format!("/api/v1/uploads/{id}").as_str())
    );
    assert_eq!(reply.body["size"], 70_000);
    assert_eq!(
        reply.body["sha256"],
        format!("{:x}", Sha256::digest(&bytes))
    );
    assert_eq!(reply.body["filename"], "data.bin");
    assert_eq!(reply.body["content_type"], "application/octet-stream");
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    let (status, headers, body) = content(&app, &alice, &id).await;
    assert_eq!(status, Status::Ok);
    assert!(body == bytes, "exact bytes back");
    assert_eq!(header(&headers, "X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(
        header(&headers, "Content-Disposition"),
        Some("attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin")
    );
    let meta = app.get_as(&alice, &format!("/api/v1/uploads/{id}")).await;
    assert_eq!(meta.body, reply.body);
}

#[rocket::async_test]
async fn the_content_type_comes_from_the_bytes_not_the_name() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";
    let reply = upload(&app, &alice, "not-really.txt", png).await;
    assert_eq!(reply.body["content_type"], "image/png");
    let html = upload(
        &app,
        &alice,
        "page.png",
        b"<html><script>alert(1)</script></html>",
    )
    .await;
    assert_ne!(
        html.body["content_type"], "image/png",
        "the name does not decide"
    );
    // Whatever it is, it is downloaded as bytes, never rendered in the
    // API's origin.
    for id in [&reply.body["id"], &html.body["id"]] {
        let (_, headers, _) = content(&app, &alice, id.as_str().unwrap()).await;
        assert_eq!(
            header(&headers, "Content-Type"),
            Some("application/octet-stream")
        );
    }
    let (_, headers, _) = content(&app, &alice, html.body["id"].as_str().unwrap()).await;
    assert!(header(&headers, "Content-Disposition")
        .unwrap()
        .starts_with("attachment;"));
    assert_eq!(header(&headers, "X-Content-Type-Options"), Some("nosniff"));
    assert!(header(&headers, "Content-Security-Policy")
        .unwrap()
        .contains("sandbox"));
}

#[rocket::async_test]
async fn hostile_file_names_store_nothing_outside_the_upload_dir() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let long = "n".repeat(1000);
    let names = [
        "../../etc/passwd",
        "..\\\\..\\\\x",
        "/etc/passwd",
        "C:\\\\Windows\\\\evil.dll",
        "..",
        long.as_str(),
    ];
    for name in names {
        let reply = upload(&app, &alice, name, b"payload").await;
        assert_eq!(reply.status, Status::Created, "{name}: {}", reply.text);
        let stored = reply.body["filename"].as_str().unwrap();
        assert!(
            !stored.contains('/') && !stored.contains('\\'),
            "{name} -> {stored}"
        );
        assert!(
            !stored.chars().any(char::is_control),
            "{name} -> {stored:?}"
        );
        assert!(
            stored.len() <= 255 && !stored.is_empty() && stored != "..",
            "{name} -> {stored}"
        );
    }
    // A tab is the one control character a header may carry: removed.
    let tab = upload(&app, &alice, "a\tb.txt", b"payload").await;
    assert_eq!(tab.body["filename"], "ab.txt", "{}", tab.text);
    // Percent-encoding is not decoded: `%2F` stays three characters.
    let encoded = upload_raw(
        &app,
        &alice,
        multipart("; filename=..%2F..%2Fz", b"payload"),
    )
    .await;
    assert_eq!(encoded.body["filename"], "..%2F..%2Fz", "{}", encoded.text);
    // Control characters as raw bytes make a malformed header: refused.
    let raw = upload(&app, &alice, "a\u{1}b", b"payload").await;
    assert_eq!(raw.status, Status::BadRequest, "{}", raw.text);
    // Only server-chosen names under files/; nothing elsewhere, nothing
    // left under tmp/.
    let keys = app.uploads.keys().await;
    assert_eq!(keys.len(), names.len() + 2, "{keys:?}");
    assert!(
        keys.iter().all(|key| key
            .strip_prefix("files/")
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())),
        "{keys:?}"
    );
    if let TestUploads::Fs(dir) = &app.uploads {
        assert!(!dir.join("../etc/passwd").exists());
    }
}

#[rocket::async_test]
async fn over_max_bytes_is_413_and_leaves_no_file_and_no_row() {
    let app = TestApp::spawn_with(|f| f.merge(("upload.max_bytes", 1024))).await;
    let alice = app.user("alice").await;
    let exact = upload(&app, &alice, "exact.bin", &[7u8; 1024]).await;
    assert_eq!(exact.status, Status::Created, "the limit itself is allowed");
    let reply = upload(&app, &alice, "big.bin", &[7u8; 1025]).await;
    assert_eq!(reply.status, Status::PayloadTooLarge);
    assert!(
        reply.body["detail"].as_str().unwrap().contains("1024"),
        "{}",
        reply.text
    );
    let huge = upload(&app, &alice, "huge.bin", &vec![7u8; 300_000]).await;
    assert_eq!(huge.status, Status::PayloadTooLarge);
    assert_eq!(
        app.uploads.names_in("files").await.len(),
        1,
        "only the first file"
    );
    assert!(app.uploads.names_in("tmp").await.is_empty());
    let list = app.get_as(&alice, "/api/v1/uploads").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
}

#[rocket::async_test]
async fn the_quota_is_per_user_and_413_past_it() {
    let app = TestApp::spawn_with(|f| f.merge(("upload.quota_bytes", 3000))).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    assert_eq!(
        upload(&app, &alice, "a", &[1u8; 2000]).await.status,
        Status::Created
    );
    let over = upload(&app, &alice, "b", &[1u8; 2000]).await;
    assert_eq!(over.status, Status::PayloadTooLarge);
    assert!(
        over.body["detail"].as_str().unwrap().contains("quota"),
        "{}",
        over.text
    );
    assert_eq!(
        upload(&app, &alice, "c", &[1u8; 1000]).await.status,
        Status::Created,
        "exactly the quota"
    );
    assert_eq!(
        upload(&app, &alice, "d", &[1u8; 1]).await.status,
        Status::PayloadTooLarge
    );
    assert_eq!(
        upload(&app, &bob, "e", &[1u8; 2000]).await.status,
        Status::Created,
        "bob's own quota"
    );
    assert_eq!(app.uploads.names_in("files").await.len(), 3);
}

#[rocket::async_test]
async fn missing_or_empty_files_are_422_and_other_bodies_415() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let empty = upload(&app, &alice, "empty.txt", b"").await;
    assert_eq!(empty.status, Status::UnprocessableEntity);
    assert_eq!(
        empty.field_errors(),
        vec![("body.file".into(), "value_error".into())]
    );
    let nothing = format!("--{BOUNDARY}--\r\n");
    let missing = upload_raw(&app, &alice, nothing.into_bytes()).await;
    assert_eq!(
        missing.field_errors(),
        vec![("body.file".into(), "missing".into())]
    );
    let other_field = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{BOUNDARY}--\r\n"
    );
    let extra = upload_raw(&app, &alice, other_field.into_bytes()).await;
    assert_eq!(
        extra.field_errors(),
        vec![
            ("body.file".into(), "missing".into()),
            ("body.note".into(), "extra_forbidden".into())
        ],
        "every failing rule at once"
    );
    // A file with an unknown field after it: refused, and nothing kept.
    let mut file_then_note = multipart("; filename=\"a.txt\"", b"hello");
    file_then_note.truncate(file_then_note.len() - format!("--{BOUNDARY}--\r\n").len());
    file_then_note.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    let refused = upload_raw(&app, &alice, file_then_note).await;
    assert_eq!(
        refused.field_errors(),
        vec![("body.note".into(), "extra_forbidden".into())],
        "{}",
        refused.text
    );
    let json = app
        .post_as(&alice, "/api/v1/uploads", &json!({"file": "x"}))
        .await;
    assert_eq!(json.status, Status::UnsupportedMediaType);
    let garbage = upload_raw(&app, &alice, b"this is not multipart".to_vec()).await;
    assert!(
        garbage.status.code >= 400 && garbage.status.code < 500,
        "{}",
        garbage.text
    );
    assert!(app.uploads.names_in("files").await.is_empty());
    assert_eq!(
        app.request("POST", "/api/v1/uploads", None, &[])
            .await
            .status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn others_get_404_admins_may_read_and_lists_are_own_newest_first() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = upload(&app, &alice, "one.txt", b"1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = upload(&app, &alice, "two.txt", b"2").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    upload(&app, &bob, "bob.txt", b"3").await;

    let list = app.get_as(&alice, "/api/v1/uploads").await;
    let ids: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "own, newest first");
    let paged = app.get_as(&alice, "/api/v1/uploads?skip=1&limit=1").await;
    assert_eq!(paged.body[0]["id"], first.as_str());

    let missing = uuid::Uuid::new_v4().to_string();
    for id in [first.as_str(), missing.as_str()] {
        assert_eq!(
            app.get_as(&bob, &format!("/api/v1/uploads/{id}"))
                .await
                .status,
            Status::NotFound
        );
        assert_eq!(content(&app, &bob, id).await.0, Status::NotFound);
        assert_eq!(
            app.delete_as(&bob, &format!("/api/v1/uploads/{id}"))
                .await
                .status,
            Status::NotFound
        );
    }
    assert_eq!(
        app.get_as(&admin, &format!("/api/v1/uploads/{first}"))
            .await
            .status,
        Status::Ok
    );
    assert_eq!(content(&app, &admin, &first).await.2, b"1");
    let bad = app.get_as(&alice, "/api/v1/uploads/not-a-uuid").await;
    assert_eq!(
        bad.field_errors(),
        vec![("path.id".into(), "type_error".into())]
    );
}

#[rocket::async_test]
async fn deleting_an_upload_or_its_owner_removes_the_files() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = upload(&app, &alice, "a.txt", b"a").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    upload(&app, &alice, "b.txt", b"b").await;
    assert_eq!(app.uploads.names_in("files").await.len(), 2);
    assert_eq!(
        app.delete_as(&alice, &format!("/api/v1/uploads/{id}"))
            .await
            .status,
        Status::NoContent
    );
    assert_eq!(
        app.get_as(&alice, &format!("/api/v1/uploads/{id}"))
            .await
            .status,
        Status::NotFound
    );
    assert_eq!(app.uploads.names_in("files").await.len(), 1);
    assert_eq!(
        app.delete_as(&alice, &format!("/api/v1/users/{}", alice.id))
            .await
            .status,
        Status::NoContent
    );
    assert!(
        app.uploads.names_in("files").await.is_empty(),
        "the owner's files went with them"
    );
}

#[rocket::async_test]
async fn an_upload_through_one_instance_is_read_and_deleted_through_another() {
    let a = TestApp::spawn().await;
    let b = a.spawn_replica().await;
    let alice = a.user("alice").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let id = upload(&a, &alice, "shared.bin", &bytes).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = content(&b, &alice, &id).await;
    assert_eq!(status, Status::Ok);
    assert!(body == bytes, "the same bytes through the other instance");
    assert_eq!(
        b.delete_as(&alice, &format!("/api/v1/uploads/{id}"))
            .await
            .status,
        Status::NoContent
    );
    assert_eq!(content(&a, &alice, &id).await.0, Status::NotFound);
    assert!(a.uploads.keys().await.is_empty(), "the file went for both");
}

/// Writes `bytes` to `path`, last modified `age` ago.
fn write_aged(path: &std::path::Path, bytes: &[u8], age: std::time::Duration) {
    std::fs::write(path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
}

#[rocket::async_test]
async fn start_up_removes_old_half_received_and_orphan_files_only() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let kept = upload(&app, &alice, "keep.txt", b"k").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let orphan = uuid::Uuid::new_v4().to_string();
    let young = uuid::Uuid::new_v4().to_string();
    match &app.uploads {
        TestUploads::Fs(dir) => {
            let hours = |n: u64| std::time::Duration::from_secs(n * 3600);
            // What a crash left, long ago.
            write_aged(&dir.join("files").join(&orphan), b"orphan", hours(3));
            write_aged(&dir.join("tmp/crashed.part"), b"half", hours(3));
            // What another instance sharing the directory is receiving, or
            // has just put in place before its row commits: a start-up
            // must leave it.
            write_aged(&dir.join("files").join(&young), b"being recorded", hours(1));
            write_aged(
                &dir.join("tmp/receiving.part"),
                b"half",
                std::time::Duration::ZERO,
            );
        }
        TestUploads::S3 { .. } => {
            // A bucket's objects cannot be backdated: the sweep is run
            // with a cutoff between the old objects and the young ones.
            app.uploads.put(&format!("files/{orphan}"), b"orphan").await;
            app.uploads.put("tmp/crashed.part", b"half").await;
            rocket::tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            let cutoff = std::time::SystemTime::now();
            rocket::tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            app.uploads
                .put(&format!("files/{young}"), b"being recorded")
                .await;
            app.uploads.put("tmp/receiving.part", b"half").await;
            let settings: roster::config::UploadSettings =
                app.figment.extract_inner("upload").unwrap();
            let storage = roster::uploads::Storage::open(&settings).await.unwrap();
            let known = [kept.clone(), uuid::Uuid::new_v4().to_string()];
            let (removed, missing) = storage
                .repair(known.into_iter().collect(), cutoff)
                .await
                .unwrap();
            assert_eq!(
                (removed, missing),
                (2, 1),
                "two old leftovers, one row without a file"
            );
        }
    }
    // A start-up of another instance on the same store.
    let restarted = app.spawn_replica().await;
    let mut expected = vec![kept.clone(), young];
    expected.sort();
    assert_eq!(app.uploads.names_in("files").await, expected);
    assert_eq!(app.uploads.names_in("tmp").await, ["receiving.part"]);
    let alice_again = restarted.sign_in("alice").await;
    assert_eq!(content(&restarted, &alice_again, &kept).await.2, b"k");
}
