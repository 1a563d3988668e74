//! The OpenAPI documents (one per API version) and the pages that show them.

use rocket::{Build, Rocket, Route};
use std::sync::Arc;

use rocket::http::{ContentType, Method};
use rocket::route::{Handler, Outcome};
use rocket::{Data, Request};
use rocket_okapi::okapi::merge::marge_spec_list;
use rocket_okapi::okapi::openapi3::{
    Contact, Info, License, MediaType, OAuthFlows, Object, OpenApi, Operation, PathItem, RefOr,
    RequestBody, Responses, SecurityRequirement, SecurityScheme, SecuritySchemeData,
};
use rocket_okapi::okapi::schemars::schema::{
    InstanceType, ObjectValidation, Schema, SchemaObject, StringValidation,
};
use rocket_okapi::rapidoc::{make_rapidoc, GeneralConfig, RapiDocConfig};
use rocket_okapi::settings::{OpenApiSettings, UrlObject};
use rocket_okapi::swagger_ui::{make_swagger_ui, SwaggerUIConfig};

use crate::auth::guards::BEARER_SCHEME;
use crate::error::{error_meaning, ERRORS_EXTENSION};

pub const JSON_PATH: &str = "/openapi.json";

pub fn settings() -> OpenApiSettings {
    OpenApiSettings {
        json_path: JSON_PATH.to_owned(),
        ..OpenApiSettings::default()
    }
}

/// The OAuth2 password-flow scheme that stands beside the bearer scheme, so
/// Swagger's Authorize button can sign in with a username and password.
pub const OAUTH2_SCHEME: &str = "oauth2Password";

/// One version's document: the route documents of each mount point merged
/// under their prefixes (`("/api/v1", spec)`), with Roster's info and the
/// OAuth2 password flow beside every bearer requirement.
pub fn document(parts: &[(&str, OpenApi)], version_note: &str) -> OpenApi {
    // Merging fails only for two routes with one path and method, which the
    // route tables never have; tests fetch every document.
    let mut spec = marge_spec_list(parts).expect("route documents merge");
    spec.info = Info {
        title: "Roster".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: Some(format!(
            "User management: registration, JWT login, profiles and roles. {version_note}\n\n\
             Sign in with `POST /api/v1/auth/login` and send the access token as \
             `Authorization: Bearer <token>`. Every error is JSON: \
             `{{\"detail\": \"...\"}}`, or for validation failures \
             `{{\"detail\": [{{\"field\", \"message\", \"type\"}}]}}`."
        )),
        contact: Some(Contact {
            name: Some("Roster maintainers".to_owned()),
            email: Some("roster-maintainers@example.com".to_owned()),
            ..Contact::default()
        }),
        license: Some(License {
            name: "MIT".to_owned(),
            url: Some("https://opensource.org/licenses/MIT".to_owned()),
            ..License::default()
        }),
        ..Info::default()
    };
    // Paths carry their full prefix, so the server is the document's origin
    // (`json_route` says so).
    spec.servers = Vec::new();
    for item in spec.paths.values_mut() {
        for operation in operations(item) {
            summarize(operation);
        }
    }
    add_oauth2_password_flow(&mut spec);
    spec
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// The first line of a route's doc comment becomes its summary (what
/// Swagger UI shows beside the path); empty response descriptions get one.
fn summarize(operation: &mut Operation) {
    if operation.summary.is_none() {
        if let Some(description) = operation.description.take() {
            let (first, rest) = description
                .split_once("\n\n")
                .unwrap_or((description.as_str(), ""));
            operation.summary = Some(first.trim().to_owned());
            if !rest.trim().is_empty() {
                operation.description = Some(rest.trim().to_owned());
            }
        }
    }
    for response in operation.responses.responses.values_mut() {
        if let RefOr::Object(response) = response {
            if response.description.is_empty() {
                response.description = "Success.".to_owned();
            }
        }
    }
}

fn add_oauth2_password_flow(spec: &mut OpenApi) {
    let mut secured = false;
    for item in spec.paths.values_mut() {
        for operation in operations(item) {
            let Some(security) = operation.security.as_mut() else {
                continue;
            };
            if security.iter().any(|r| r.contains_key(BEARER_SCHEME)) {
                let mut oauth2 = SecurityRequirement::new();
                oauth2.insert(OAUTH2_SCHEME.to_owned(), Vec::new());
                security.push(oauth2);
                secured = true;
            }
        }
    }
    if !secured {
        return;
    }
    let scheme = SecurityScheme {
        description: Some(
            "Username and password, exchanged at the token endpoint (RFC 6749 password grant) \
             for the same bearer token."
                .to_owned(),
        ),
        data: SecuritySchemeData::OAuth2 {
            flows: OAuthFlows::Password {
                token_url: "/api/v1/auth/token".to_owned(),
                refresh_url: None,
                scopes: Default::default(),
                extensions: Object::default(),
            },
        },
        extensions: Object::default(),
    };
    spec.components
        .get_or_insert_with(Default::default)
        .security_schemes
        .insert(OAUTH2_SCHEME.to_owned(), RefOr::Object(scheme));
}

/// The route serving `spec` at `JSON_PATH` under its mount point.
pub fn json_route(spec: OpenApi) -> Route {
    // Serialized once; rocket_okapi's own handler re-serializes on every
    // request and adds a `servers` entry that would prefix the full paths.
    let mut json = serde_json::to_value(&spec).expect("an OpenAPI document serializes");
    finish(&mut json);
    let json = serde_json::to_string(&json).expect("an OpenAPI document serializes");
    Fixed::route(JSON_PATH, ContentType::JSON, json.into_bytes())
}

/// What generators and linters expect and okapi does not write: the
/// server (the document's own origin: paths carry their full prefix),
/// `security: []` on public operations, the response headers, and no
/// `"default": null` (which makes optional fields required in some
/// generators).
fn finish(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    doc["servers"] =
        json!([{"url": "/", "description": "The server this document is served from"}]);
    let header = |description: &str, kind: &str, required: bool| json!({"description": description, "required": required, "schema": {"type": kind}});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                operation
                    .entry("security")
                    .or_insert_with(|| Value::Array(Vec::new()));
                collect_errors(operation, path.starts_with("/api/"));
                let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for (code, response) in responses.iter_mut() {
                    let mut headers = serde_json::Map::new();
                    headers.insert(
                        "X-Request-Id".into(),
                        header(
                            "The request's id: the client's, if sane, else a new one.",
                            "string",
                            true,
                        ),
                    );
                    if path.starts_with("/api/") {
                        for (name, what) in [
                            (
                                "RateLimit-Limit",
                                "The budget of the limit nearest exhaustion.",
                            ),
                            ("RateLimit-Remaining", "Requests left in it now."),
                            ("RateLimit-Reset", "Seconds until all of it is back."),
                        ] {
                            headers.insert(name.into(), header(what, "integer", false));
                        }
                    }
                    match code.as_str() {
                        "201" => {
                            headers.insert(
                                "Location".into(),
                                header("Where the new resource is.", "string", true),
                            );
                        }
                        "401" => {
                            headers.insert(
                                "WWW-Authenticate".into(),
                                header("`Bearer`: how to authenticate.", "string", false),
                            );
                        }
                        "429" | "503" => {
                            headers.insert(
                                "Retry-After".into(),
                                header("Seconds to wait before trying again.", "integer", false),
                            );
                        }
                        "200" if method == "get" && path.ends_with("/content") => {
                            headers.insert(
                                "Content-Disposition".into(),
                                header(
                                    "`attachment`, with the file's name (quoted and RFC 5987-encoded).",
                                    "string",
                                    true,
                                ),
                            );
                        }
                        _ => {}
                    }
                    if let Some(response) = response.as_object_mut() {
                        response.insert("headers".into(), Value::Object(headers));
                    }
                }
            }
        }
    }
    drop_null_defaults(doc);
}

/// Moves the error responses that the operation's body and parameters
/// carry (`ERRORS_EXTENSION`) into its responses, adds those of the
/// fairings that refuse requests before routing, and orders the responses
/// by status.
fn collect_errors(operation: &mut serde_json::Map<String, serde_json::Value>, limited: bool) {
    use serde_json::{json, Value};
    let mut found: Vec<(String, Value)> = Vec::new();
    let mut take = |holder: Option<&mut Value>| {
        let Some(Value::Object(holder)) = holder else {
            return;
        };
        if let Some(Value::Object(errors)) = holder.remove(ERRORS_EXTENSION) {
            found.extend(errors);
        }
    };
    take(operation.get_mut("requestBody"));
    if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
        parameters.iter_mut().for_each(|p| take(Some(p)));
    }
    // Refused before routing, whatever the operation: a query string that
    // is not UTF-8 (400), header fields over 32 KiB (431); under `/api`,
    // the rate limits (429).
    let refusals: &[u16] = if limited {
        &[400, 429, 431]
    } else {
        &[400, 431]
    };
    for &code in refusals {
        let body = json!({"$ref": "#/components/schemas/ErrorBody"});
        found.push((
            code.to_string(),
            json!({
                "description": error_meaning(code),
                "content": {"application/json": {"schema": body}},
            }),
        ));
    }
    let Some(Value::Object(responses)) = operation.get_mut("responses") else {
        return;
    };
    for (code, response) in found {
        responses.entry(code).or_insert(response);
    }
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

fn drop_null_defaults(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("default").is_some_and(serde_json::Value::is_null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        serde_json::Value::Array(list) => list.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}

/// A fixed body of one content type, served as it is.
#[derive(Clone)]
struct Fixed {
    content_type: ContentType,
    body: Arc<[u8]>,
}

impl Fixed {
    fn route(path: &str, content_type: ContentType, body: impl Into<Arc<[u8]>>) -> Route {
        let handler = Fixed {
            content_type,
            body: body.into(),
        };
        Route::new(Method::Get, path, handler)
    }
}

#[rocket::async_trait]
impl Handler for Fixed {
    async fn handle<'r>(&self, _: &'r Request<'_>, _: Data<'r>) -> Outcome<'r> {
        // The shared bytes, not a copy per request.
        let response = rocket::Response::build()
            .header(self.content_type.clone())
            .sized_body(
                self.body.len(),
                std::io::Cursor::new(Arc::clone(&self.body)),
            )
            .finalize();
        Outcome::Success(response)
    }
}

const FAVICON_16: &[u8] = include_bytes!("favicon-16x16.png");
const FAVICON_32: &[u8] = include_bytes!("favicon-32x32.png");

/// The icons the pages link to (Swagger UI's page names these two).
fn favicons() -> [Route; 2] {
    [
        Fixed::route("/favicon-16x16.png", ContentType::PNG, FAVICON_16),
        Fixed::route("/favicon-32x32.png", ContentType::PNG, FAVICON_32),
    ]
}

/// `/favicon.ico`, which browsers ask for on any page of the origin.
pub fn root_favicon() -> Route {
    Fixed::route("/favicon.ico", ContentType::PNG, FAVICON_32)
}

/// RapiDoc's page: a version picker over the documents, and nothing loaded
/// from another host (`load-fonts="false"`: the system's fonts).
const RAPIDOC_HTML: &str = include_str!("rapidoc.html");

/// Swagger UI at `/docs` and RapiDoc at `/rapidoc`, each switching between
/// the API versions, with every asset served by Roster itself. Swagger UI
/// keeps an authorization in the browser's local storage
/// (`persistAuthorization`) and restores it whenever a document loads, so
/// switching versions keeps one signed in; so does RapiDoc (`persist-auth`).
pub fn mount_pages(rocket: Rocket<Build>, versions: &[(&str, &str)]) -> Rocket<Build> {
    let urls: Vec<UrlObject> = versions
        .iter()
        .map(|(name, url)| UrlObject::new(name, url))
        .collect();
    let swagger = SwaggerUIConfig {
        urls: urls.clone(),
        ..SwaggerUIConfig::default()
    };
    let mut config = serde_json::to_value(&swagger).expect("the Swagger UI config serializes");
    config["persistAuthorization"] = true.into();
    let config = serde_json::to_vec(&config).expect("the Swagger UI config serializes");
    let swagger_routes: Vec<Route> = make_swagger_ui(&swagger)
        .into()
        .into_iter()
        .filter(|route| route.uri.path() != "/swagger-ui-config.json")
        .chain([Fixed::route(
            "/swagger-ui-config.json",
            ContentType::JSON,
            config,
        )])
        .chain(favicons())
        .collect();
    let rapidoc = RapiDocConfig {
        title: Some("Roster API | RapiDoc".to_owned()),
        custom_html: Some(RAPIDOC_HTML.to_owned()),
        general: GeneralConfig {
            spec_urls: urls,
            ..GeneralConfig::default()
        },
        ..RapiDocConfig::default()
    };
    let rapidoc_routes: Vec<Route> = make_rapidoc(&rapidoc)
        .into()
        .into_iter()
        .chain(favicons())
        .collect();
    rocket
        .mount("/docs", swagger_routes)
        .mount("/rapidoc", rapidoc_routes)
        .mount("/", vec![root_favicon()])
}

/// The body of `POST /api/v1/uploads`: `multipart/form-data` with one
/// required, non-empty binary field, `file`.
pub fn file_upload_body() -> RequestBody {
    let file = SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        format: Some("binary".to_owned()),
        string: Some(Box::new(StringValidation {
            min_length: Some(1),
            ..Default::default()
        })),
        ..Default::default()
    };
    let schema = SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        object: Some(Box::new(ObjectValidation {
            properties: [("file".to_owned(), Schema::Object(file))]
                .into_iter()
                .collect(),
            required: ["file".to_owned()].into_iter().collect(),
            additional_properties: Some(Box::new(Schema::Bool(false))),
            ..Default::default()
        })),
        ..Default::default()
    };
    let media = MediaType {
        schema: Some(schema),
        ..Default::default()
    };
    RequestBody {
        description: Some("The file, in the multipart field `file`.".to_owned()),
        content: [("multipart/form-data".to_owned(), media)]
            .into_iter()
            .collect(),
        required: true,
        ..Default::default()
    }
}

/// The 200 of an upload's content: its exact bytes.
pub fn file_download_responses() -> Responses {
    string_ok(
        "The file's exact bytes, as an attachment; the type recognised at upload is the \
         upload's `content_type`.",
        "application/octet-stream",
        Some("binary"),
    )
}

/// A 200 whose body is a string of `media_type` (of `format`, if given).
pub fn string_ok(description: &str, media_type: &str, format: Option<&str>) -> Responses {
    let schema = SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        format: format.map(str::to_owned),
        ..Default::default()
    };
    let response = rocket_okapi::okapi::openapi3::Response {
        description: description.to_owned(),
        content: [(
            media_type.to_owned(),
            MediaType {
                schema: Some(schema),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let mut responses = Responses::default();
    responses
        .responses
        .insert("200".to_owned(), RefOr::Object(response));
    responses
}
