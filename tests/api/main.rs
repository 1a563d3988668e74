//! Integration tests through Rocket's local client, one module per area.
//! See `helpers.rs` for how each test gets its own database.

mod auth;
mod binary;
mod docs;
mod errors;
mod health;
mod helpers;
mod hostile;
mod limits;
mod mail;
mod search;
mod uploads;
mod users;
mod v2;
