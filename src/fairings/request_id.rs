//! `X-Request-Id`: echo a sane client value, else generate one; every
//! response carries it and server-error logs name it.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

pub const HEADER: &str = "X-Request-Id";
const MAX_LEN: usize = 128;

/// The request's id, kept in the request's local cache.
#[derive(Debug, Clone, Default)]
pub struct RequestId(String);

impl RequestId {
    /// A client's id is kept only when it is 1–128 characters of
    /// `A-Za-z0-9._-`, so it is safe to log and to echo.
    pub fn from_client(value: Option<&str>) -> Self {
        match value {
            Some(v) if is_sane(v) => RequestId(v.to_owned()),
            _ => RequestId::generate(),
        }
    }

    pub fn generate() -> Self {
        RequestId(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_sane(value: &str) -> bool {
    (1..=MAX_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub struct RequestIdFairing;

#[rocket::async_trait]
impl Fairing for RequestIdFairing {
    fn info(&self) -> Info {
        Info {
            name: "Request id",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let id = RequestId::from_client(request.headers().get_one(HEADER));
        request.local_cache(|| id);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        // Requests that never reached `on_request` (rejected by the server
        // before routing) still get an id.
        let id = request.local_cache(RequestId::generate);
        response.set_header(Header::new(HEADER, id.as_str().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_client_ids_are_echoed() {
        let max = "a".repeat(128);
        for id in ["abc", "A.b_c-1", max.as_str()] {
            assert_eq!(RequestId::from_client(Some(id)).as_str(), id);
        }
    }

    #[test]
    fn other_client_ids_are_replaced() {
        let long = "a".repeat(129);
        for id in ["", "a b", "a/b", "<script>", "é", long.as_str()] {
            let generated = RequestId::from_client(Some(id));
            assert_ne!(generated.as_str(), id);
            assert!(is_sane(generated.as_str()));
        }
    }
}
