//! The one shutdown signal: a future that resolves once, on SIGINT or SIGTERM, and can be
//! cloned into the HTTP server, the worker and the sweep.

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives while the process is still connecting to its
/// dependencies is a clean stop, not a kill.
pub fn on_signal() -> Shutdown {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("cannot install the SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("cannot install the SIGINT handler");
        from_future(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("shutdown signal received");
        })
    }
    #[cfg(not(unix))]
    from_future(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    })
}

/// Runs `start` (connecting to dependencies), unless `shutdown` comes first: then `None`.
pub async fn unless_stopped<T>(
    shutdown: &Shutdown,
    start: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Option<T>> {
    tokio::select! {
        started = start => started.map(Some),
        () = shutdown.clone() => Ok(None),
    }
}

/// A shutdown that resolves with `future` (tests use a channel).
pub fn from_future(future: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    future.boxed().shared()
}
