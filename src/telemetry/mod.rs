//! What an operator sees of a running instance: log lines (`logs`), one
//! access line per request and the request's span (`access`), and the
//! Prometheus metrics at `GET /metrics` (`metrics`).

pub mod access;
pub mod logs;
pub mod metrics;
