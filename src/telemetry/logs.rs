//! Roster's logger: `tracing-subscriber`'s formatter, text or JSON
//! (`log_format`), one line per event with an RFC 3339 UTC timestamp, the
//! level, the message, and the span of the request that caused it (its
//! `request_id`). Roster logs with `tracing`; other crates' `log` records
//! (Rocket's, sqlx's) reach it through `tracing-log`.
//!
//! Installed before Rocket starts, it takes the place of Rocket's logger,
//! so Rocket's per-request lines (and, at `log_level = "debug"`, its dump of
//! every request's headers, bearer tokens included) are filtered out here:
//! the access line says what happened to each request instead.

use std::io::IsTerminal;

use rocket::config::LogLevel;
use rocket::figment::Figment;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{filter_fn, Targets};
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// The target of the access lines, and of the line that says where Roster
/// listens: shown at every `log_level` but `off`.
pub const ACCESS: &str = "roster::access";
pub const STARTUP: &str = "roster::startup";
/// The target of each request's span.
pub const REQUEST: &str = "roster::request";

/// Installs the logger for `figment`'s `log_level` and `log_format` (each
/// at its default when invalid: the configuration check that follows
/// refuses it with a message). Does nothing if a logger is installed.
pub fn init(figment: &Figment) {
    let level = figment
        .extract_inner::<LogLevel>("log_level")
        .unwrap_or(LogLevel::Normal);
    let format = figment
        .extract_inner::<LogFormat>("log_format")
        .unwrap_or_default();
    let filter = filter(level);
    let not_chatter = filter_fn(|meta| !is_rocket_chatter(meta.target()));
    let stdout = std::io::stdout;
    let (text, json) = match format {
        LogFormat::Text => (
            Some(
                fmt::layer()
                    .with_writer(stdout)
                    .with_ansi(stdout().is_terminal()),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(stdout),
            ),
        ),
    };
    let installed = tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(filter)
        .with(not_chatter)
        .try_init();
    drop(installed);
}

/// What is shown at `level`: Roster's own lines at the level's severity,
/// access and start-up lines always (but at `off`), other crates'
/// warnings and errors, and of Rocket only what goes wrong at launch.
fn filter(level: LogLevel) -> Targets {
    let ours = match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Critical => LevelFilter::WARN,
        LogLevel::Normal => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let always = match level {
        LogLevel::Off => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    };
    let others = ours.min(LevelFilter::WARN);
    Targets::new()
        .with_default(others)
        .with_target("roster", ours)
        .with_target(ACCESS, always)
        .with_target(STARTUP, always)
        // Spans are never printed; enabled, they put the request id on
        // every line inside them.
        .with_target(REQUEST, LevelFilter::TRACE)
        .with_target("rocket", others)
        // Launch banners and configuration dumps: the start-up line
        // replaces them.
        .with_target("rocket::launch", LevelFilter::OFF)
        // A line or more per request (routing, catchers, a client that
        // left, header dumps at debug): the access line replaces them.
        .with_target("rocket::server", LevelFilter::OFF)
        .with_target("rocket::request", LevelFilter::OFF)
        .with_target("rocket::data", LevelFilter::OFF)
        // Why a launch failed, with its details (logged at info).
        .with_target("rocket::error", always)
}

/// Rocket's indented lines (target `<module>::_`), logged in Rocket's
/// modules and, by its code generation, in Roster's route modules: a guard
/// that failed, a forward. What a request came to is in its access line and
/// its error body; only why a launch failed is kept.
fn is_rocket_chatter(target: &str) -> bool {
    target.ends_with("::_") && !target.starts_with("rocket::error")
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    fn shown(level: LogLevel, target: &str, at: Level) -> bool {
        filter(level).would_enable(target, &at)
    }

    #[test]
    fn access_and_start_up_lines_show_at_every_level_but_off() {
        for level in [LogLevel::Critical, LogLevel::Normal, LogLevel::Debug] {
            assert!(shown(level, ACCESS, Level::INFO));
            assert!(shown(level, STARTUP, Level::INFO));
        }
        assert!(!shown(LogLevel::Off, ACCESS, Level::INFO));
        assert!(!shown(LogLevel::Off, "roster::error", Level::ERROR));
    }

    #[test]
    fn rocket_per_request_lines_never_show() {
        for level in [LogLevel::Critical, LogLevel::Normal, LogLevel::Debug] {
            for at in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG] {
                assert!(!shown(level, "rocket::server::_", at));
                assert!(!shown(level, "rocket::server", at));
                assert!(!shown(level, "rocket::launch", at));
            }
        }
        assert!(shown(LogLevel::Critical, "rocket::error::_", Level::INFO));
    }

    #[test]
    fn rocket_s_indented_lines_are_chatter_wherever_they_are_logged() {
        assert!(is_rocket_chatter("roster::routes::auth::_"));
        assert!(is_rocket_chatter("rocket::server::_"));
        assert!(!is_rocket_chatter("rocket::error::_"));
        assert!(!is_rocket_chatter("roster::routes::auth"));
    }

    #[test]
    fn the_level_sets_roster_s_own_lines() {
        assert!(!shown(LogLevel::Critical, "roster::db", Level::INFO));
        assert!(shown(LogLevel::Critical, "roster::db", Level::WARN));
        assert!(shown(LogLevel::Normal, "roster::db", Level::INFO));
        assert!(!shown(LogLevel::Normal, "roster::db", Level::DEBUG));
        assert!(shown(LogLevel::Debug, "roster::db", Level::DEBUG));
        // Other crates never below warnings: sqlx's statements stay out.
        assert!(!shown(LogLevel::Debug, "sqlx::query", Level::INFO));
        assert!(shown(LogLevel::Debug, "sqlx::query", Level::WARN));
    }
}
