//! The HTTP surface for operators and their monitoring: `/healthz` (the
//! process answers), `/readyz` (broker and both databases reachable, roles
//! running) and `/metrics` (Prometheus text format). Loopback only by default.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::State, http::StatusCode, routing::get, Router};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{
    broker::Broker,
    ledger::Ledger,
    magento::Magento,
    metrics::{Metrics, StateLabel},
};

/// What the handlers read.
#[derive(Clone)]
pub struct Surface {
    pub ledger: Ledger,
    pub magento: Magento,
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
    pub source: String,
    /// Set while this instance holds the capture lock.
    pub capture_leader: Arc<AtomicBool>,
    /// Cleared when the roles stop.
    pub running: Arc<AtomicBool>,
}

pub fn router(surface: Surface) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(surface)
}

/// Serves until shutdown on an already bound listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    surface: Surface,
    shutdown: CancellationToken,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(address = ?addr, "HTTP status surface listening.");
    let result = axum::serve(listener, router(surface))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "HTTP status surface stopped.");
    }
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), f).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within 3s")),
    }
}

async fn readyz(State(s): State<Surface>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if !s.running.load(Ordering::Relaxed) {
        problems.push("roles: not running".to_owned());
    }
    let checks = [
        within("ledger", s.ledger.order_count()).await,
        within("magento", s.magento.max_entity_id()).await,
        within("broker", s.broker.channel()).await,
    ];
    problems.extend(checks.into_iter().filter_map(Result::err));
    s.metrics
        .broker_up
        .set(problems.iter().all(|p| !p.starts_with("broker")) as i64);
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n")
    }
}

async fn metrics(
    State(s): State<Surface>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    // Ledger-derived figures are refreshed per scrape; a failing read leaves the
    // last values and the counters still go out.
    if let Ok(counts) = s.ledger.counts().await {
        for (consumer, state, n) in counts {
            s.metrics
                .rows
                .get_or_create(&StateLabel {
                    consumer,
                    state: state.as_str().to_owned(),
                })
                .set(n as i64);
        }
    }
    let now = Utc::now();
    if let Ok(oldest) = s.ledger.oldest_unsynced().await {
        let age = oldest
            .map(|t| (now - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0);
        s.metrics.oldest_unsynced_seconds.set(age.max(0.0));
    }
    if let (Ok(Some(position)), Ok(newest)) = (
        s.ledger.capture_position(&s.source).await,
        s.magento.max_entity_id().await,
    ) {
        s.metrics
            .capture_lag_orders
            .set(newest.saturating_sub(position.last_entity_id) as i64);
    }
    s.metrics
        .capture_leader
        .set(s.capture_leader.load(Ordering::Relaxed) as i64);
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.encode(),
    )
}
