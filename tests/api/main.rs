//! Integration tests through Rocket's local client, one module per area.
//! See `helpers.rs` for how each test gets its own database, and
//! `server.rs` for the tests that run the real binary.

mod accounts;
mod auth;
mod batching;
mod binary;
mod changes;
mod cors;
mod deploy;
mod docs;
mod errors;
mod evasion;
mod health;
mod helpers;
mod hostile;
mod limits;
mod load;
mod mail;
mod me;
mod privacy;
mod request;
mod search;
mod server;
mod sessions;
mod smtp;
mod stalls;
mod stores;
mod telemetry;
mod tokens;
mod uploads;
mod users;
mod v2;
