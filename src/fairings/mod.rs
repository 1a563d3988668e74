//! Fairings: cross-cutting behaviour around every request.

pub mod allow;
pub mod reject;
pub mod request_id;
