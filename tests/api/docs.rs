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
        ) || path.starts_with("/health")
            || path == "/metrics";
        if path != "/health/live" {
            for code in ["422", "500", "503"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path}: {code} undocumented"
                );
            }
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
            assert!(
                responses.contains_key("401") && responses.contains_key("403"),
                "{method} {path}"
            );
        }
    }
    for (version, doc) in &documents {
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
    assert!(
        swagger.text.contains("/api/v1/openapi.json")
            && swagger.text.contains("/api/v2/openapi.json"),
        "{}",
        swagger.text
    );
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
