//! Fairings: cross-cutting behaviour around every request.

pub mod allow;
pub mod client_ip;
pub mod cors;
pub mod rate_limit;
pub mod reject;
pub mod request_id;
pub mod request_limits;
