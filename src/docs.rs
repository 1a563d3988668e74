//! The OpenAPI documents (one per API version) and the pages that show them.

use rocket::{Build, Rocket, Route};
use rocket_okapi::handlers::OpenApiHandler;
use rocket_okapi::okapi::openapi3::{Contact, Info, License, OpenApi, Server};
use rocket_okapi::rapidoc::{make_rapidoc, GeneralConfig, RapiDocConfig};
use rocket_okapi::settings::{OpenApiSettings, UrlObject};
use rocket_okapi::swagger_ui::{make_swagger_ui, SwaggerUIConfig};

pub const JSON_PATH: &str = "/openapi.json";

pub fn settings() -> OpenApiSettings {
    OpenApiSettings {
        json_path: JSON_PATH.to_owned(),
        ..OpenApiSettings::default()
    }
}

/// Completes a generated document with Roster's info and its base path.
pub fn document(mut spec: OpenApi, base: &str, version_note: &str) -> OpenApi {
    spec.info = Info {
        title: "Roster".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: Some(format!(
            "User management: registration, profiles and roles. {version_note}\n\n\
             Every error is JSON: `{{\"detail\": \"...\"}}`, or for validation \
             failures `{{\"detail\": [{{\"field\", \"message\", \"type\"}}]}}`."
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
    spec.servers = vec![Server {
        url: base.to_owned(),
        ..Server::default()
    }];
    spec
}

/// The route serving `spec` at `JSON_PATH` under its mount point.
pub fn json_route(spec: OpenApi) -> Route {
    OpenApiHandler::new(spec).into_route(JSON_PATH)
}

/// Swagger UI at `/docs` and RapiDoc at `/rapidoc`, each able to switch
/// between the API versions.
pub fn mount_pages(rocket: Rocket<Build>, versions: &[(&str, &str)]) -> Rocket<Build> {
    let urls: Vec<UrlObject> = versions
        .iter()
        .map(|(name, url)| UrlObject::new(name, url))
        .collect();
    rocket
        .mount(
            "/docs",
            make_swagger_ui(&SwaggerUIConfig {
                urls: urls.clone(),
                ..SwaggerUIConfig::default()
            }),
        )
        .mount(
            "/rapidoc",
            make_rapidoc(&RapiDocConfig {
                general: GeneralConfig {
                    spec_urls: urls,
                    ..GeneralConfig::default()
                },
                ..RapiDocConfig::default()
            }),
        )
}
