//! The HTTP surface: one module per resource, mounted per API version.

pub mod account;
pub mod auth;
pub mod catchers;
pub mod health;
pub mod me;
pub mod search;
pub mod uploads;
pub mod users;
pub mod v2;

use rocket::Route;
use rocket_okapi::okapi::openapi3::OpenApi;
use rocket_okapi::openapi_get_routes_spec;
use rocket_okapi::settings::OpenApiSettings;

/// The routes of `/api/v1` and their OpenAPI document.
pub fn v1(settings: &OpenApiSettings) -> (Vec<Route>, OpenApi) {
    openapi_get_routes_spec![
        settings: auth::login,
        auth::token,
        auth::refresh,
        auth::logout,
        account::request_password_reset,
        account::confirm_password_reset,
        account::verify_email,
        account::resend_verification,
        account::list_sessions,
        account::end_session,
        me::get_me,
        me::patch_me,
        me::delete_me,
        me::change_password,
        users::create_user,
        users::list_users,
        users::get_user,
        users::replace_user,
        users::patch_user,
        users::delete_user,
        search::search_users,
        uploads::create_upload,
        uploads::list_uploads,
        uploads::get_upload,
        uploads::get_upload_content,
        uploads::delete_upload,
    ]
}

/// The routes of `/api/v2` and their OpenAPI document.
pub fn v2(settings: &OpenApiSettings) -> (Vec<Route>, OpenApi) {
    openapi_get_routes_spec![settings: v2::list_users]
}

/// The routes of `/health`.
pub fn health(settings: &OpenApiSettings) -> (Vec<Route>, OpenApi) {
    openapi_get_routes_spec![settings: health::live, health::ready]
}
