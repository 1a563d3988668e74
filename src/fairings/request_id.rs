//! `X-Request-Id`: echo a sane client value, else generate one; every
//! response carries it and server-error logs name it.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

use crate::request_id::{RequestId, HEADER};

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
