//! Fairings: cross-cutting behaviour around every request.

pub mod request_id;
