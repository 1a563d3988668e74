//! Stopping without failing a request: on SIGTERM or SIGINT, readiness
//! turns 503 for `shutdown.drain` seconds while every request is still
//! served, so a load balancer moves away first; then Rocket's graceful
//! shutdown (stop accepting, finish what was received within
//! `shutdown.grace`). SIGHUP is logged and ignored. Rocket's own signal
//! handling is off (`shutdown.ctrlc`, `shutdown.signals`): this replaces it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::tokio::signal::unix::{signal, SignalKind};
use rocket::tokio::{self, select};

use crate::config::Settings;

/// Whether the process is draining: managed state that readiness reads.
#[derive(Debug, Default, Clone)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// While draining, every response says `Connection: close`: clients that
/// keep connections open (a reverse proxy's upstream pool) open new ones,
/// which reach another instance once this one stops listening, instead of
/// sending on a connection this one is about to close.
pub fn close_connections_while_draining() -> AdHoc {
    AdHoc::on_response("Close connections while draining", |request, response| {
        Box::pin(async move {
            let draining = request.rocket().state::<Draining>();
            if draining.is_some_and(Draining::is_set) {
                response.set_raw_header("Connection", "close");
            }
        })
    })
}

/// Listens for SIGTERM, SIGINT and SIGHUP once serving. Only the binary
/// attaches it: signal handlers belong to the process, and a test process
/// keeps its own.
pub fn signals() -> AdHoc {
    AdHoc::on_liftoff("Signals", |rocket| {
        Box::pin(async move {
            let (Some(settings), Some(draining)) =
                (rocket.state::<Settings>(), rocket.state::<Draining>())
            else {
                return;
            };
            let drain = Duration::from_secs(settings.shutdown.drain);
            let draining = draining.clone();
            let shutdown = rocket.shutdown();
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::error!("cannot listen for signals: SIGTERM will not drain");
                return;
            };
            tokio::spawn(async move {
                let name = loop {
                    select! {
                        _ = term.recv() => break "SIGTERM",
                        _ = int.recv() => break "SIGINT",
                        _ = hup.recv() => tracing::warn!(
                            "SIGHUP ignored: Roster reads its configuration at start only; \
                             restart it to apply a change"
                        ),
                    }
                };
                tracing::warn!(
                    "{name}: draining for {} s (readiness answers 503, requests are still \
                     served), then shutting down",
                    drain.as_secs()
                );
                draining.set();
                // A second signal cuts the drain short.
                select! {
                    _ = tokio::time::sleep(drain) => {}
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                shutdown.notify();
            });
        })
    })
}
