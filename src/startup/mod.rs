//! Wiring: connect to Redis and S3, build the HTTP application and the worker, and run them
//! until a shutdown signal. `main` only picks which of these to run.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_http::Protocol;
use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _, fn_service, map_config};
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, web};
use anyhow::Context as _;

use crate::config::Settings;
use crate::jobs;
use crate::shutdown;

mod dependencies;

pub use dependencies::Dependencies;

/// In-flight requests and jobs get this long to finish once the process stops (for a replica,
/// after its shutdown delay); the compose files give Docker's stop grace room for both.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How long a replica keeps an idle client connection open.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(75);

/// The HTTP server, bound and ready to run. Binding happens in `build`, so a test can ask for
/// port 0 and read the real port from [`Application::port`].
pub struct Application {
    port: u16,
    server: Server,
    stopping: Arc<AtomicBool>,
    shutdown_delay: Duration,
}

impl Application {
    pub fn build(settings: &Settings, deps: &Dependencies) -> anyhow::Result<Self> {
        let bind = settings.server.bind;
        let listener = TcpListener::bind(bind)
            .with_context(|| format!("cannot listen on BLOBPROXY_BIND={bind}"))?;
        let port = listener.local_addr()?.port();
        let service = web::Data::new(deps.service(settings));
        let http_settings = crate::http::HttpSettings::new(settings)?;
        let replica = http_settings.replica.clone();
        if http_settings.api_key.is_none() && !bind.ip().is_loopback() {
            tracing::warn!(
                %bind,
                "no API key (BLOBPROXY_API_KEY): anyone who reaches this port can read and write blobs"
            );
        }
        crate::metrics::install();
        let stopping = http_settings.stopping.clone();
        let secured = http_settings.api_key.is_some();
        let app = move || {
            // Runs on each HTTP worker thread: give it its own Redis connection.
            service.connect_this_thread();
            App::new()
                .wrap(from_fn(crate::http::middleware::require_api_key))
                .wrap(from_fn(crate::http::cors::cors))
                .wrap(from_fn(crate::http::middleware::access_log))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Served-By", replica.clone()))
                        .add(("X-Content-Type-Options", "nosniff")),
                )
                .app_data(service.clone())
                .app_data(web::Data::new(http_settings.clone()))
                .configure(|cfg| crate::http::routes(cfg, secured))
        };
        // What actix-web's HttpServer builds, with each connection wrapped so that the HTTP
        // layer's own error answers (400, 408, 431) are JSON too (see `http::wire`).
        let builder = actix_server::Server::build();
        // Resolves when a graceful stop begins: kept-alive idle connections close then, rather
        // than hold the stop for its whole timeout.
        let stop_signal = builder.graceful_shutdown_signal();
        let server = builder
            .disable_signals()
            .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
            .listen("blobproxy", listener, move || {
                let app = app()
                    .into_factory()
                    .map_err(|e: actix_web::Error| e.error_response());
                let http = actix_http::HttpService::build()
                    // Longer than nginx keeps an idle upstream connection (60 s,
                    // nginx/templates): the proxy, not the replica, closes idle connections, so
                    // a request is never sent on a connection the replica is closing.
                    .keep_alive(IDLE_CONNECTION_TIMEOUT)
                    // HttpServer's defaults: a slow head gets 408 after 5 s; a connection that
                    // is closing gets 1 s to take the answer (nginx reads a 413 sent before
                    // the body it is still sending).
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .h1_allow_half_closed(true)
                    .graceful_shutdown_signal({
                        let stop_signal = stop_signal.clone();
                        move || {
                            let stop_signal = stop_signal.clone();
                            async move { stop_signal.notified().await }
                        }
                    })
                    .finish(map_config(app, |_| AppConfig::default()));
                fn_service(|io: actix_rt::net::TcpStream| async move {
                    let _ = io.set_nodelay(true);
                    let peer = io.peer_addr().ok();
                    let io = crate::http::JsonProtocolErrors::new(io);
                    Ok::<_, actix_http::error::DispatchError>((io, Protocol::Http1, peer))
                })
                .and_then(http)
            })?
            .run();
        Ok(Self {
            port,
            server,
            stopping,
            shutdown_delay: settings.server.shutdown_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown`, then for `BLOBPROXY_SHUTDOWN_DELAY_SECS` more (not ready),
    /// then stops accepting and lets in-flight requests finish.
    ///
    /// Why the delay: when Docker stops a replica it also drops it from DNS, but nginx goes on
    /// sending it requests until it re-resolves. A replica that closed at once would meet some
    /// of them on a closing connection (a kept-alive one, or one still in the listen backlog);
    /// nginx cannot resend a request body it already sent, so those writes would fail.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let (stopping, delay) = (self.stopping, self.shutdown_delay);
        tokio::spawn(async move {
            shutdown.await;
            stopping.store(true, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    ?delay,
                    "shutting down: serving until nginx stops sending here"
                );
                tokio::time::sleep(delay).await;
            }
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// `blobproxy serve`.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let Some(deps) = shutdown::unless_stopped(&shutdown, Dependencies::connect(&settings)).await?
    else {
        return Ok(());
    };
    let app = Application::build(&settings, &deps)?;
    tracing::info!(port = app.port(), replica = %settings.replica(), "serving");
    app.run_until(shutdown).await?;
    Ok(())
}

/// `blobproxy worker`.
pub async fn worker(settings: Settings) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let Some(deps) = shutdown::unless_stopped(&shutdown, Dependencies::connect(&settings)).await?
    else {
        return Ok(());
    };
    tracing::info!(concurrency = settings.worker.concurrency, "draining");
    jobs::worker::run(
        deps.drainer(&settings),
        deps.mirror_copiers(&settings),
        deps.queue.clone(),
        settings.worker.concurrency,
        shutdown,
        SHUTDOWN_GRACE,
        crate::config::host_name(),
    )
    .await
}

/// `blobproxy all`: the server and a worker in one process, for local use.
pub async fn all(settings: Settings) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let Some(deps) = shutdown::unless_stopped(&shutdown, Dependencies::connect(&settings)).await?
    else {
        return Ok(());
    };
    // One local process, with no nginx in front to wait for: stop at once.
    let mut local = settings.clone();
    local.server.shutdown_delay = Duration::ZERO;
    let app = Application::build(&local, &deps)?;
    tracing::info!(port = app.port(), "serving and draining");
    let worker = jobs::worker::run(
        deps.drainer(&settings),
        deps.mirror_copiers(&settings),
        deps.queue.clone(),
        settings.worker.concurrency,
        shutdown.clone(),
        SHUTDOWN_GRACE,
        crate::config::host_name(),
    );
    let (served, drained) = tokio::join!(app.run_until(shutdown), worker);
    served?;
    drained
}
