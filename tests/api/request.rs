//! Requests the tests send and the replies they read: [`TestRequest`] is
//! the one builder ([`TestApp::req`] starts one), [`Reply`] a response read
//! in full.

use rocket::http::{Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::Value;

use crate::helpers::{TestApp, TestUser};

/// A request being built; [`TestApp::req`] starts one.
pub struct TestRequest<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) method: rocket::http::Method,
    pub(crate) path: String,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) remote: Option<std::net::SocketAddr>,
}

impl TestRequest<'_> {
    /// A JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.body(Some("application/json"), body.to_string().as_bytes())
    }

    /// Raw bytes, with a `Content-Type` when given.
    pub fn body(mut self, content_type: Option<&str>, bytes: &[u8]) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self.body = bytes.to_vec();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |req, (name, value)| req.header(name, value))
    }

    /// `Authorization: Bearer` with `user`'s access token.
    pub fn bearer(self, user: &TestUser) -> Self {
        self.header("Authorization", &user.bearer())
    }

    /// As if sent from the socket address `remote`.
    pub fn from(mut self, remote: std::net::SocketAddr) -> Self {
        self.remote = Some(remote);
        self
    }

    pub async fn send(self) -> Reply {
        let mut req = self.app.client.req(self.method, self.path).body(self.body);
        if let Some(remote) = self.remote {
            req = req.remote(remote);
        }
        if let Some(content_type) = self.content_type {
            req = req.header(Header::new("Content-Type", content_type));
        }
        for (name, value) in self.headers {
            req = req.header(Header::new(name, value));
        }
        read(req.dispatch().await).await
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `(field, type)` pairs of a validation error.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("not a validation error: {}", self.text))
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

pub async fn read(response: LocalResponse<'_>) -> Reply {
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect();
    let text = response.into_string().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}
