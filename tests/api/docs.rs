//! The OpenAPI documents cover every route Rocket mounts, with its security
//! and error responses (the OpenAPI-specification validation and the
//! schemathesis and browser runs are in tests/docs/run.py).

use rocket::http::Status;
use serde_json::Value;

use crate::helpers::TestApp;

/// Routes that are documentation themselves or internal.
fn is_documentation_or_internal(path: &str) -> bool {
    path.starts_with("/docs")
        || path.starts_with("/rapidoc")
        || path.ends_with("/openapi.json")
        || path.starts_with("/__roster")
        || path == "/favicon.ico"
}

/// `/api/v1/users/<user_id>` as OpenAPI writes it: `/api/v1/users/{user_id}`.
fn openapi_path(rocket_path: &str) -> String {
    rocket_path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                Some(name) => format!("{{{}}}", name.trim_end_matches("..")),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[rocket::async_test]
async fn every_mounted_route_is_documented_with_security_and_errors() {
    let app = TestApp::spawn().await;
    let mut documents = Vec::new();
    for version in ["v1", "v2"] {
        let reply = app.get(&format!("/api/{version}/openapi.json")).await;
        assert_eq!(reply.status, Status::Ok);
        documents.push((version, reply.body));
    }
    let routes: Vec<(String, String)> = app
        .client
        .rocket()
        .routes()
        .filter(|r| !is_documentation_or_internal(r.uri.path()))
        .map(|r| (r.method.as_str().to_lowercase(), openapi_path(r.uri.path())))
        .collect();
    assert!(routes.len() >= 16, "{routes:?}");
    for (method, path) in routes {
        let found: Vec<&Value> = documents
            .iter()
            .filter_map(|(_, doc)| doc["paths"].get(&path).and_then(|item| item.get(&method)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{method} {path} must be in exactly one document"
        );
        let operation = found[0];
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{method} {path}: no success response"
        );
        let public = matches!(
            (method.as_str(), path.as_str()),
            ("post", "/api/v1/users")
                | ("post", "/api/v1/auth/login")
                | ("post", "/api/v1/auth/token")
                | ("post", "/api/v1/auth/refresh")
                | ("post", "/api/v1/auth/password-reset")
                | ("post", "/api/v1/auth/password-reset/confirm")
                | ("post", "/api/v1/auth/verify-email")
        ) || path.starts_with("/health")
            || path == "/metrics";
        // Refused before routing, whatever the route: a query that is not
        // UTF-8, headers over 32 KiB; under /api, the rate limits.
        let mut everywhere = vec!["400", "431"];
        if path.starts_with("/api/") {
            everywhere.push("429");
        }
        for code in everywhere {
            assert!(
                responses.contains_key(code),
                "{method} {path}: {code} undocumented"
            );
        }
        for (code, response) in responses {
            let headers = &response["headers"];
            assert_eq!(
                headers["X-Request-Id"]["required"], true,
                "{method} {path} {code}: X-Request-Id"
            );
            let expected: &[&str] = match code.as_str() {
                "201" => &["Location"],
                "401" => &["WWW-Authenticate"],
                "429" | "503" => &["Retry-After"],
                _ => &[],
            };
            for name in expected {
                assert!(
                    headers.get(*name).is_some(),
                    "{method} {path} {code}: {name}"
                );
            }
            if path.starts_with("/api/") {
                assert!(
                    headers.get("RateLimit-Remaining").is_some(),
                    "{method} {path} {code}"
                );
            }
        }
        if public {
            assert_eq!(
                operation.get("security"),
                Some(&serde_json::json!([])),
                "{method} {path} is public: security []"
            );
        } else {
            let security = operation["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security"));
            assert!(
                security.iter().any(|s| s.get("bearerAuth").is_some()),
                "{method} {path}"
            );
            assert!(responses.contains_key("401"), "{method} {path}");
        }
    }
    for (version, doc) in &documents {
        assert!(
            !doc.to_string().contains("x-roster-errors"),
            "{version}: the extractors' errors are moved into the responses"
        );
        assert_eq!(doc["servers"][0]["url"], "/", "{version}");
        assert!(
            !doc.to_string().contains("\"default\":null"),
            "{version}: no null defaults"
        );
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearerAuth"]["type"], "http", "{version}");
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer", "{version}");
        assert_eq!(
            schemes["oauth2Password"]["flows"]["password"]["tokenUrl"],
            "/api/v1/auth/token"
        );
        let info = &doc["info"];
        for key in ["title", "version", "description", "contact", "license"] {
            assert!(info.get(key).is_some(), "{version}: info.{key}");
        }
    }
}

/// Each operation lists the errors it can answer: those of its guards (a
/// bearer token: 401, 503), its extractors (a JSON body: 400, 408, 413,
/// 415, 422; a path id or a query: 422), its handler (`Fails`), and the
/// refusals before routing; and no other.
#[rocket::async_test]
async fn each_operation_lists_the_errors_it_can_answer() {
    let app = TestApp::spawn().await;
    let v1 = app.get("/api/v1/openapi.json").await.body;
    let v2 = app.get("/api/v2/openapi.json").await.body;
    let cases: [(&Value, &str, &str, &[u16]); 7] = [
        (&v1, "/health/live", "get", &[400, 431]),
        (&v1, "/health/ready", "get", &[400, 431, 500, 503]),
        (
            &v1,
            "/api/v1/users/me",
            "get",
            &[400, 401, 429, 431, 500, 503],
        ),
        (
            &v1,
            "/api/v1/auth/token",
            "post",
            &[400, 408, 413, 429, 431, 500, 503],
        ),
        (
            &v1,
            "/api/v1/users/{user_id}",
            "patch",
            &[
                400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 431, 500, 503,
            ],
        ),
        (
            &v1,
            "/api/v1/uploads/{id}/content",
            "get",
            &[400, 401, 404, 422, 429, 431, 500, 503],
        ),
        (
            &v2,
            "/api/v2/users",
            "get",
            &[400, 401, 403, 422, 429, 431, 500, 503],
        ),
    ];
    for (doc, path, method, expected) in cases {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} undocumented"));
        let errors: Vec<u16> = responses
            .keys()
            .filter_map(|code| code.parse().ok())
            .filter(|&code| code >= 400)
            .collect();
        assert_eq!(errors, expected, "{method} {path}");
        for code in expected {
            let schema = &responses[&code.to_string()]["content"]["application/json"]["schema"];
            let body = match code {
                422 => "#/components/schemas/ValidationErrorBody",
                _ => "#/components/schemas/ErrorBody",
            };
            assert_eq!(schema["$ref"], body, "{method} {path} {code}");
        }
    }
    let cursor = v2["paths"]["/api/v2/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cursor")
        .unwrap();
    assert_eq!(cursor["schema"]["pattern"], "^[0-9a-z]{11}$");
    assert!(cursor["schema"].get("nullable").is_none(), "{cursor}");
}

#[rocket::async_test]
async fn each_document_covers_its_own_version_and_the_pages_are_served() {
    let app = TestApp::spawn().await;
    let v1 = app.get("/api/v1/openapi.json").await.body;
    let v2 = app.get("/api/v2/openapi.json").await.body;
    assert!(v1["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| !p.starts_with("/api/v2")));
    assert!(v2["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| p.starts_with("/api/v2")));
    let limit = &v1["paths"]["/api/v1/users"]["get"]["parameters"];
    let limit = limit
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (
            limit["schema"]["minimum"].as_f64(),
            limit["schema"]["maximum"].as_f64()
        ),
        (Some(1.0), Some(100.0))
    );
    for page in ["/docs/index.html", "/rapidoc/index.html"] {
        let reply = app.get(page).await;
        assert_eq!(reply.status, Status::Ok, "{page}");
        assert!(
            reply.text.contains("<html") || reply.text.contains("<!DOCTYPE"),
            "{page}"
        );
    }
    let swagger = app.get("/docs/swagger-ui-config.json").await;
    let urls: Vec<&str> = swagger.body["urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["url"].as_str())
        .collect();
    assert_eq!(urls, ["/api/v1/openapi.json", "/api/v2/openapi.json"]);
    assert_eq!(
        swagger.body["persistAuthorization"], true,
        "the authorization survives a version switch"
    );
    let rapidoc = app.get("/rapidoc/index.html").await.text;
    for needle in [
        r#"{"name":"v1","url":"/api/v1/openapi.json"}"#,
        r#"{"name":"v2","url":"/api/v2/openapi.json"}"#,
        r#"load-fonts="false""#,
        r#"persist-auth="true""#,
    ] {
        assert!(rapidoc.contains(needle), "RapiDoc's page lacks {needle}");
    }
    for icon in [
        "/docs/favicon-16x16.png",
        "/docs/favicon-32x32.png",
        "/rapidoc/favicon-32x32.png",
        "/favicon.ico",
    ] {
        let reply = app.client.get(icon).dispatch().await;
        assert_eq!(reply.status(), Status::Ok, "{icon}");
        assert_eq!(
            reply.content_type(),
            Some(rocket::http::ContentType::PNG),
            "{icon}"
        );
        let bytes = reply.into_bytes().await.unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{icon}");
    }
}

/// ARCHITECTURE.md names files: each must exist, so that the page stays
/// true as the code moves.
#[test]
fn the_architecture_page_names_only_files_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let named: Vec<&str> = page
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|text| {
            ["src/", "tests/", "migrations/", "templates/"]
                .iter()
                .any(|dir| text.starts_with(dir))
        })
        .collect();
    assert!(named.len() > 20, "the page names the files: {named:?}");
    let missing: Vec<&&str> = named
        .iter()
        .filter(|path| !root.join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names missing files: {missing:?}"
    );
}
