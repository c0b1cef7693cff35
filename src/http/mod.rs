//! The HTTP surface for operators and their monitoring, loopback only by default:
//! * `/healthz` (the process answers), `/readyz` (broker and both databases
//!   reachable, roles running), `/metrics` (Prometheus text format): always open;
//! * `/` and `/orders/{id}`: the status page, server-rendered (`page.rs`);
//! * `/api/...`: the JSON API (`api.rs`), including the pull interface for sync
//!   services that cannot speak AMQP, and backfills, which run in this
//!   process (`POST /api/backfill`, or the page's form) until done or stopped.
//!
//! Changes need `http.api_token` as a bearer token, or on the status page its
//! session cookie (an expiring HMAC of the token, never the token); with no
//! token configured they are refused. Reads need the token too unless
//! `http.protect_reads = false`. Handlers state what they need with the
//! extractors of `auth.rs`.

mod api;
mod auth;
mod chart;
mod page;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{CaptureSettings, HttpSettings},
    control::{Control, ControlError, InputError},
    ledger::{LedgerError, State as RowState},
    metrics::{Metrics, ServiceLabel, StateLabel},
    roles::{acks::AckListener, Deps},
};

/// What the handlers read: the parts of the process they use, named.
#[derive(Clone)]
pub struct Surface {
    deps: Deps,
    http: HttpSettings,
    control: Control,
    /// Applies acks posted over HTTP exactly as the AMQP listener does.
    acks: AckListener,
    /// Set while this instance holds the capture lock.
    capture_leader: Arc<AtomicBool>,
    /// Cleared when the roles stop.
    running: Arc<AtomicBool>,
    /// The shop's capture settings (its filter, its hold states), for
    /// backfills started here.
    capture: Arc<CaptureSettings>,
    /// Backfills started over HTTP run here until done or the roles stop.
    backfills: tokio_util::task::TaskTracker,
    stop: CancellationToken,
}

impl Surface {
    pub fn new(
        deps: &Deps,
        http: &HttpSettings,
        capture: &CaptureSettings,
        acks: AckListener,
        capture_leader: Arc<AtomicBool>,
        running: Arc<AtomicBool>,
    ) -> Self {
        Self {
            control: Control::new(
                deps.ledger.clone(),
                deps.shop.clone(),
                deps.consumers.names.clone(),
            ),
            deps: deps.clone(),
            http: http.clone(),
            acks,
            capture_leader,
            running,
            capture: Arc::new(capture.clone()),
            backfills: Default::default(),
            stop: CancellationToken::new(),
        }
    }

    /// Backfills started over HTTP stop (recorded interrupted) on this token.
    pub fn stopping_with(mut self, shutdown: CancellationToken) -> Self {
        self.stop = shutdown;
        self
    }

    /// The backfills started over HTTP: wait on it after shutdown, so each
    /// records how it ended before the process exits.
    pub fn backfill_tasks(&self) -> tokio_util::task::TaskTracker {
        self.backfills.clone()
    }
}

pub fn router(surface: Surface) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(page::index))
        .route("/orders/{entity_id}", get(page::order))
        .route("/ui/login", post(page::login))
        .route("/ui/logout", post(page::logout))
        .route("/ui/resync", post(page::resync))
        .route("/ui/pause", post(page::pause))
        .route("/ui/resume", post(page::resume))
        .route("/ui/unpark", post(page::unpark))
        .route("/ui/skip", post(page::skip))
        .route("/ui/backfill", post(page::backfill))
        .route("/api/summary", get(api::summary))
        .route("/api/orders", get(api::list))
        .route("/api/orders/{entity_id}", get(api::detail))
        .route("/api/resync", post(api::resync))
        .route("/api/pause", post(api::pause))
        .route("/api/resume", post(api::resume))
        .route("/api/unpark", post(api::unpark))
        .route("/api/skip", post(api::skip))
        .route("/api/backfill", post(api::backfill))
        .route("/api/backfills", get(api::backfills))
        .route("/api/backfills/{id}", get(api::backfill_run))
        .route("/api/pull/{consumer}", get(api::pull))
        .route("/api/pull/{consumer}/acks", post(api::pull_acks))
        .layer(axum::middleware::map_response(no_framing))
        .with_state(surface)
}

/// No page of order-sync may be shown inside another site's frame: its
/// buttons could be clicked through a decoy (clickjacking).
async fn no_framing(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

/// Why a request was refused or failed; rendered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"order-sync\""),
            );
        }
        r
    }
}

impl From<LedgerError> for ApiError {
    /// The details (server, SQL, users) go to the log, not to the client.
    fn from(e: LedgerError) -> Self {
        tracing::warn!(error = %e, "HTTP request failed on the ledger.");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the ledger is unavailable; try again later".into(),
        )
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Ledger(l) => l.into(),
            other => ApiError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// How long open connections get to finish once shutdown is signalled; then
/// they are cut, so a slow or half-open client never holds up a stop.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Serves until shutdown on an already bound listener: at most
/// `http.max_connections` at once, each given `http.request_timeout` to send
/// its headers and to be answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    surface: Surface,
    shutdown: CancellationToken,
) {
    use hyper_util::{rt::TokioIo, rt::TokioTimer, service::TowerToHyperService};

    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(address = ?addr, "HTTP status surface listening.");
    let timeout = surface.http.request_timeout;
    let slots = Arc::new(tokio::sync::Semaphore::new(surface.http.max_connections));
    let app = router(surface).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no answer within {timeout:?}"),
                )
                .into_response(),
            }
        },
    ));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "Could not accept an HTTP connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
                }
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(CLOSE_GRACE * 2, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// Runs one readiness check; the details go to the log, the answer names
/// only the service (no hosts, users or SQL for whoever reaches the port).
async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), f).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(service = what, error = %e, "Readiness check failed.");
            Err(format!("{what}: unavailable"))
        }
        Err(_) => Err(format!("{what}: no answer within 3s")),
    }
}

/// Checks each service once (a cheap round trip each), records the answers
/// in the `up` gauge, and returns the problems.
async fn check_services(s: &Surface) -> Vec<String> {
    let p = &s.deps;
    let broker = async {
        let channel = p.broker.channel().await?;
        let _ = channel.close(200, "readiness probe".into()).await;
        Ok::<_, crate::broker::BrokerError>(())
    };
    // At once: a probe answers within one check's timeout, not the sum.
    let (ledger, magento, broker) = tokio::join!(
        within("ledger", async {
            p.ledger.check_server().await?;
            p.ledger.check_tables().await
        }),
        within("magento", p.magento.max_entity_id()),
        within("broker", broker),
    );
    let checks = [("ledger", ledger), ("magento", magento), ("broker", broker)];
    let mut problems = Vec::new();
    for (service, result) in checks {
        p.metrics
            .up
            .get_or_create(&ServiceLabel {
                service: service.into(),
            })
            .set(result.is_ok() as i64);
        if service == "broker" {
            p.metrics.broker_up.set(result.is_ok() as i64);
        }
        if let Err(e) = result {
            problems.push(e);
        }
    }
    problems
}

async fn readyz(State(s): State<Surface>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if !s.running.load(Ordering::Relaxed) {
        problems.push("roles: not running".to_owned());
    }
    problems.extend(check_services(&s).await);
    // A capture part failing poll after poll: the process answers, but a
    // shop's orders or events are not being read.
    problems.extend(s.deps.capture_health.problems());
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
    check_services(&s).await;
    let p = &s.deps;
    if let Ok(counts) = p.ledger.counts().await {
        // Every (consumer, state) gets a value, 0 when no row is in it: a
        // backlog that drained must read 0, not keep its last count.
        let mut all: std::collections::BTreeMap<(String, &str), u64> = p
            .consumers
            .names
            .iter()
            .flat_map(|c| {
                RowState::ALL
                    .iter()
                    .map(move |st| ((c.clone(), st.as_str()), 0))
            })
            .collect();
        for (consumer, state, n) in counts {
            all.insert((consumer, state.as_str()), n);
        }
        for ((consumer, state), n) in all {
            p.metrics
                .rows
                .get_or_create(&StateLabel {
                    consumer,
                    state: state.to_owned(),
                })
                .set(n as i64);
        }
    }
    let now = Utc::now();
    if let Ok(oldest) = p.ledger.oldest_unsynced().await {
        let age = oldest
            .map(|t| (now - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0);
        p.metrics.oldest_unsynced_seconds.set(age.max(0.0));
    }
    if let (Ok(Some(position)), Ok(newest)) = (
        p.ledger.capture_position(&p.shop).await,
        p.magento.max_entity_id().await,
    ) {
        p.metrics
            .capture_lag_orders
            .set(newest.saturating_sub(position.last_entity_id) as i64);
    }
    if let Ok(paused) = p.ledger.paused(&p.consumers.names).await {
        for c in &p.consumers.names {
            p.metrics
                .paused
                .get_or_create(&Metrics::consumer(c))
                .set(paused.contains(c) as i64);
        }
    }
    p.metrics
        .capture_leader
        .set(s.capture_leader.load(Ordering::Relaxed) as i64);
    for part in crate::roles::capture::health::Part::ALL {
        p.metrics
            .capture_failing_seconds
            .get_or_create(&Metrics::part(part.as_str()))
            .set(p.capture_health.failing_for(part).as_secs_f64());
    }
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        p.metrics.encode(),
    )
}
