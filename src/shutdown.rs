//! The one shutdown signal: a future that resolves once, on SIGINT or SIGTERM, and can be
//! cloned into the HTTP server, the worker and the sweep.

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Resolves on SIGINT or SIGTERM.
pub fn on_signal() -> Shutdown {
    from_future(async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("cannot install the SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
    })
}

/// A shutdown that resolves with `future` (tests use a channel).
pub fn from_future(future: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    future.boxed().shared()
}
