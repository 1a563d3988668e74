//! The request's id: a sane `X-Request-Id` of the client's, else a new one.
//! The fairing that sets it is `fairings::request_id`; the error responder
//! names it in the logs of server errors.

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
