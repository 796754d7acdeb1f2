//! The server loop: bind, serve until SIGTERM/SIGINT, let in-flight requests finish, close the
//! database.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{App, StartupError};

/// Serves `app` on `listener` until `shutdown` resolves; in-flight requests then get up to the
/// configured grace period to finish.
pub async fn serve(
    mut app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let grace = Duration::from_secs(app.config.http.shutdown_grace_seconds);
    let router = gatehouse_http::router(app.state.clone());
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    // The outbox worker stops with the server: it finishes the delivery in hand, then exits.
    let worker = app.worker.take().map(|worker| tokio::spawn(worker.run(stop_receiver.clone())));
    // The sweeper too: a sweep in progress ends at its next batch boundary when dropped.
    let sweeper = tokio::spawn(app.sweeper.clone().run(stop_receiver.clone()));
    // The event relay (catalogued events → webhook deliveries) at the worker's pace.
    let relay = tokio::spawn(app.webhooks.clone().run_relay(
        Duration::from_millis(app.config.outbox.poll_interval_ms),
        stop_receiver.clone(),
    ));
    // The back-channel logout announcer (ended sessions → logout notices), at the same pace.
    let announcer = tokio::spawn(
        app.backchannel
            .clone()
            .run(Duration::from_millis(app.config.outbox.poll_interval_ms), stop_receiver.clone()),
    );
    // The audit chainer: a chaining in progress is one transaction, rolled back when dropped.
    let chainer = tokio::spawn(app.sweeper.clone().run_chainer(stop_receiver.clone()));
    let worker_stop = stop_sender.clone();
    let server =
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop_sender.send(true);
            });
    let mut stopped = stop_receiver;
    let deadline = async move {
        // Only once shutdown has begun does the grace period start counting.
        let _ = stopped.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(|error| StartupError::Other(format!("server error: {error}")))?,
        () = deadline => tracing::warn!("grace period over; dropping the remaining requests"),
    }
    let _ = worker_stop.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    let _ = sweeper.await;
    let _ = relay.await;
    let _ = announcer.await;
    let _ = chainer.await;
    app.database.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
