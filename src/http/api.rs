//! The JSON API: orders and their sync state, operator actions, and the pull
//! interface (the successor of the original module's SOAP calls) for sync
//! services that cannot speak AMQP. Errors are `{"error": "..."}` with a 4xx/5xx.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    Json,
};
use chrono::Utc;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    auth::{PullConsumer, Reader, Writer},
    ApiError, Surface,
};
use crate::message::Event;
use crate::{
    backfill::{self, BackfillError},
    control::{
        input::{self, SelectionInput},
        ResyncReport,
    },
    ledger::RunState,
    ledger::{AckOutcome, Claimed, Instance, OrderFilter, OrderPage, OrderView, Pause},
    magento::BackfillFilter,
    message::{Ack, AckRejection, Delivering},
    status::ALIVE_WITHIN,
};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON body, where an empty body means the defaults.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

/// List filters from a query string (see [`input::order_filter`]).
pub(super) fn filter_from_query(query: Option<&str>) -> Result<OrderFilter, ApiError> {
    Ok(input::order_filter(url::form_urlencoded::parse(
        query.unwrap_or("").as_bytes(),
    ))?)
}

#[derive(Serialize)]
pub(super) struct Summary {
    pub shop: String,
    /// consumer → state → rows.
    pub rows: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub pauses: Vec<Pause>,
    pub instances: Vec<Instance>,
}

pub(super) async fn summary_of(s: &Surface) -> Result<Summary, ApiError> {
    let ledger = &s.deps.ledger;
    let mut rows: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for c in &s.deps.consumers.names {
        rows.entry(c.clone()).or_default();
    }
    for (consumer, state, n) in ledger.counts().await? {
        *rows
            .entry(consumer)
            .or_default()
            .entry(state.as_str())
            .or_default() += n;
    }
    Ok(Summary {
        shop: s.deps.shop.clone(),
        rows,
        pauses: ledger.pauses().await?,
        instances: ledger.instances(Utc::now() - ALIVE_WITHIN).await?,
    })
}

pub(super) async fn summary(_: Reader, State(s): State<Surface>) -> ApiResult<Summary> {
    Ok(Json(summary_of(&s).await?))
}

pub(super) async fn list(
    _: Reader,
    State(s): State<Surface>,
    RawQuery(query): RawQuery,
) -> ApiResult<OrderPage> {
    let filter = filter_from_query(query.as_deref())?;
    Ok(Json(s.deps.ledger.list_orders(&filter).await?))
}

#[derive(Serialize)]
pub(super) struct Detail {
    pub order: OrderView,
    /// Per consumer, the message as it is (or was last) sent.
    pub messages: BTreeMap<String, Value>,
}

/// One order with, per consumer, the message as sent on its latest delivery.
pub(super) async fn detail_of(s: &Surface, entity_id: u32) -> Result<Option<Detail>, ApiError> {
    let Some((order, stored)) = s.deps.ledger.order(entity_id).await? else {
        return Ok(None);
    };
    let messages = order
        .deliveries
        .iter()
        // A later event's message is its own text, not the order's.
        .filter(|d| d.seq == 0)
        .map(|d| {
            let msg = Delivering {
                event: Event::Placed,
                seq: 0,
                message_id: &d.message_id,
                consumer: &d.consumer,
                captured_at: d.captured_at,
                attempt: d.attempts.max(1),
                max_attempts: s.acks.policy().max_attempts,
                order: &stored,
                shape: s.deps.shapes.of(&d.consumer),
            };
            (d.consumer.clone(), msg.json(&s.deps.shop))
        })
        .collect();
    Ok(Some(Detail { order, messages }))
}

pub(super) async fn detail(
    _: Reader,
    State(s): State<Surface>,
    Path(entity_id): Path<String>,
) -> ApiResult<Detail> {
    // Parsed here, not by axum's `Path<u32>`: a bad id gets the API's JSON
    // error naming the field, not axum's plain-text rejection.
    let entity_id = input::entity_ids("entity_id", &[entity_id])?[0];
    match detail_of(&s, entity_id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no order with entity_id {entity_id} in the ledger"),
        )),
    }
}

/// What to re-send: exactly one of the three selections, optionally for one consumer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResyncRequest {
    pub entity_ids: Option<Vec<u32>>,
    pub increment_ids: Option<Vec<String>>,
    /// Orders placed at or after (UTC; `2026-11-27` or RFC 3339).
    pub since: Option<String>,
    /// ... and before (default: now).
    pub until: Option<String>,
    /// Only this consumer's rows.
    pub consumer: Option<String>,
    /// Only this event's rows (`placed`, `invoiced`, …).
    pub event: Option<String>,
}

pub(super) async fn resync(
    _: Writer,
    State(s): State<Surface>,
    bytes: Bytes,
) -> ApiResult<ResyncReport> {
    let req: ResyncRequest = body(&bytes)?;
    let selection = SelectionInput {
        entity_ids: req.entity_ids,
        increment_ids: req.increment_ids,
        since: req.since,
        until: req.until,
    }
    .parse(Utc::now())?;
    let report = s
        .control
        .resync(
            &selection,
            req.consumer.as_deref(),
            req.event.as_deref(),
            Utc::now(),
            |_| {},
        )
        .await?;
    tracing::info!(orders = report.orders, rows = report.rows, consumer = ?req.consumer, "Re-sent orders (HTTP).");
    Ok(Json(report))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseRequest {
    /// One consumer; all when absent.
    pub consumer: Option<String>,
    pub reason: Option<String>,
}

pub(super) async fn pause(_: Writer, State(s): State<Surface>, bytes: Bytes) -> ApiResult<Value> {
    let req: PauseRequest = body(&bytes)?;
    s.control
        .pause(
            req.consumer.as_deref(),
            "http",
            req.reason.as_deref(),
            Utc::now(),
        )
        .await?;
    tracing::warn!(
        consumer = req.consumer.as_deref().unwrap_or("*"),
        "Publishing paused (HTTP)."
    );
    Ok(Json(
        json!({ "paused": req.consumer.as_deref().unwrap_or("*") }),
    ))
}

pub(super) async fn resume(_: Writer, State(s): State<Surface>, bytes: Bytes) -> ApiResult<Value> {
    let req: PauseRequest = body(&bytes)?;
    let lifted = s.control.resume(req.consumer.as_deref()).await?;
    tracing::info!(
        consumer = req.consumer.as_deref().unwrap_or("*"),
        lifted,
        "Publishing resumed (HTTP)."
    );
    Ok(Json(json!({ "resumed": lifted })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnparkRequest {
    /// These orders; every parked one when absent.
    pub entity_ids: Option<Vec<u32>>,
    pub consumer: Option<String>,
}

pub(super) async fn unpark(_: Writer, State(s): State<Surface>, bytes: Bytes) -> ApiResult<Value> {
    let req: UnparkRequest = body(&bytes)?;
    let rows = s
        .control
        .unpark(
            req.entity_ids.as_deref(),
            req.consumer.as_deref(),
            Utc::now(),
        )
        .await?;
    tracing::info!(rows, "Un-parked rows (HTTP).");
    Ok(Json(json!({ "rows": rows })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SkipRequest {
    /// These orders (required: skipping is for one order at a time, or a few).
    pub entity_ids: Vec<u32>,
    pub consumer: Option<String>,
    /// Who asked, as the caller knows them (e.g. `magento admin jane`):
    /// recorded as `http (…)`.
    pub by: Option<String>,
}

/// Gives up on parked rows for good, so the orders' later events go on.
pub(super) async fn skip(_: Writer, State(s): State<Surface>, bytes: Bytes) -> ApiResult<Value> {
    let req: SkipRequest = body(&bytes)?;
    let by = match req.by.as_deref().map(str::trim) {
        None | Some("") => "http".to_owned(),
        Some(who) if who.chars().count() <= 100 && !who.chars().any(char::is_control) => {
            format!("http ({who})")
        }
        Some(_) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "by: at most 100 characters, none of them control characters".into(),
            ))
        }
    };
    let rows = s
        .control
        .skip(&req.entity_ids, req.consumer.as_deref(), &by, Utc::now())
        .await?;
    tracing::warn!(rows, entity_ids = ?req.entity_ids, "Skipped parked rows (HTTP).");
    Ok(Json(json!({ "rows": rows })))
}

/// Orders pending for a pull consumer, each as the message an AMQP consumer
/// would get. Each counts as a delivery: unacked, it comes again after the
/// back-off. Nothing while the consumer is paused.
pub(super) async fn pull(
    PullConsumer(consumer): PullConsumer,
    State(s): State<Surface>,
    RawQuery(query): RawQuery,
) -> ApiResult<Value> {
    let mut limit = 50u32;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "limit" {
            limit = v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("limit: `{v}` is not a number from 1 to 500"),
                    )
                })?;
        }
    }
    let ledger = &s.deps.ledger;
    if !ledger
        .paused(std::slice::from_ref(&consumer))
        .await?
        .is_empty()
    {
        return Ok(Json(json!({ "messages": [], "paused": true })));
    }
    let rows: Vec<Claimed> = ledger
        .pull(&consumer, Utc::now(), limit, s.acks.policy())
        .await?;
    let messages: Vec<Value> = rows
        .iter()
        .map(|r| {
            r.next_delivery(s.acks.policy().max_attempts, &s.deps.shapes)
                .json(&s.deps.shop)
        })
        .collect();
    Ok(Json(json!({ "messages": messages, "paused": false })))
}

/// Acks posted by a pull consumer: one ack object or an array of them, in the
/// AMQP ack format (`consumer` may be left out). Applied exactly as acks from
/// the queue; each gets its result, and a rejected one changes nothing.
pub(super) async fn pull_acks(
    PullConsumer(consumer): PullConsumer,
    State(s): State<Surface>,
    bytes: Bytes,
) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let parsed: Vec<Result<Ack, AckRejection>> = items
        .into_iter()
        .map(|mut item| {
            if let Value::Object(m) = &mut item {
                m.entry("consumer")
                    .or_insert_with(|| consumer.clone().into());
            }
            let ack = s
                .acks
                .parse(&serde_json::to_vec(&item).unwrap_or_default())?;
            if ack.consumer != consumer {
                return Err(AckRejection::NotYours {
                    consumer: ack.consumer,
                });
            }
            Ok(ack)
        })
        .collect();
    let valid: Vec<&Ack> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut applied = s.acks.apply(&valid, Utc::now()).await?.into_iter();
    let results: Vec<Value> = parsed
        .iter()
        .map(|p| match p {
            Err(r) => json!({ "applied": false, "reason": r.to_string() }),
            Ok(_) => match applied.next().expect("one result per valid ack") {
                Ok(AckOutcome::Synced { entity_id, .. }) => {
                    json!({ "applied": true, "entity_id": entity_id, "state": "synced" })
                }
                Ok(AckOutcome::Failed {
                    entity_id,
                    retry_at,
                    ..
                }) => {
                    json!({ "applied": true, "entity_id": entity_id, "state": "failed", "retry_at": retry_at })
                }
                Err(r) => json!({ "applied": false, "reason": r.to_string() }),
            },
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// A backfill asked for over HTTP (the API's body, or the page's form).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackfillRequest {
    /// The consumer, as in consumers.names (required).
    pub consumer: Option<String>,
    /// Orders placed at or after (UTC; `2026-11-01` or RFC 3339).
    pub since: Option<String>,
    /// ... and before.
    pub until: Option<String>,
    /// Only orders in these states now.
    #[serde(default)]
    pub states: Vec<String>,
    /// Only orders of these store ids.
    #[serde(default)]
    pub stores: Vec<u16>,
    /// Orders per step (default 200).
    pub chunk: Option<u32>,
    /// Most of the consumer's orders unsettled before more (default 200).
    pub window: Option<u64>,
    /// Count what it would give; change nothing (answered at once).
    #[serde(default)]
    pub dry_run: bool,
}

impl BackfillRequest {
    pub(super) fn parse(self) -> Result<backfill::Request, ApiError> {
        let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
        let time = |field: &str, v: Option<String>| {
            v.map(|t| input::parse_time(field, &t).map(|t| t.naive_utc()))
                .transpose()
                .map_err(|e| bad(e.to_string()))
        };
        let consumer = self
            .consumer
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| bad("consumer: required (a name from consumers.names)".into()))?;
        Ok(backfill::Request {
            consumer: consumer.trim().to_owned(),
            filter: BackfillFilter {
                since: time("since", self.since)?,
                until: time("until", self.until)?,
                states: self.states,
                stores: self.stores,
            },
            chunk: self.chunk.unwrap_or(200),
            window: self.window.unwrap_or(200),
            dry_run: self.dry_run,
        })
    }
}

impl From<BackfillError> for ApiError {
    fn from(e: BackfillError) -> Self {
        match e {
            BackfillError::UnknownConsumer(c) => ApiError(
                StatusCode::BAD_REQUEST,
                format!("consumer: `{c}` is not in consumers.names"),
            ),
            BackfillError::BadPace => ApiError(
                StatusCode::BAD_REQUEST,
                "chunk and window must be at least 1".into(),
            ),
            e @ (BackfillError::AlreadyRunning { .. }
            | BackfillError::NoPosition(_)
            | BackfillError::LostLock) => ApiError(StatusCode::CONFLICT, e.to_string()),
            BackfillError::Ledger(l) => l.into(),
            BackfillError::Magento(m) => {
                tracing::warn!(error = %m, "Backfill could not read Magento.");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Magento's database is unavailable; try again later".into(),
                )
            }
        }
    }
}

/// What a started backfill answers.
#[derive(Serialize)]
pub(super) struct Started {
    pub id: u64,
    pub consumer: String,
    pub state: &'static str,
    pub request: String,
}

/// Records a run and carries it out in this process, in the background.
pub(super) async fn start_backfill(
    s: &Surface,
    req: backfill::Request,
    by: &'static str,
) -> Result<Started, ApiError> {
    let run = backfill::begin(&s.deps, &req, by).await?;
    let id = run.id;
    let (deps, hold, stop) = (s.deps.clone(), s.capture.clone(), s.stop.clone());
    let started = Started {
        id,
        consumer: req.consumer.clone(),
        state: RunState::Running.as_str(),
        request: req.describe(),
    };
    tracing::info!(run = id, request = %started.request, by, "Backfill started.");
    s.backfills.spawn(async move {
        match backfill::carry_out(&deps, &hold, &req, run, |_| {}, &stop).await {
            Ok(r) => tracing::info!(
                run = id,
                given = r.progress.given,
                interrupted = r.interrupted,
                "Backfill ended."
            ),
            Err(e) => tracing::error!(run = id, error = %e, "Backfill failed."),
        }
    });
    Ok(started)
}

/// Starts a backfill (202, with the run's id; its progress is at
/// `/api/backfills/{id}`), or with `dry_run` answers what it would give.
pub(super) async fn backfill(
    _: Writer,
    State(s): State<Surface>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut req = body::<BackfillRequest>(&bytes)?.parse()?;
    if req.dry_run {
        // Only ids are read: big chunks, so the answer comes quickly.
        req.chunk = req.chunk.max(10_000);
        let report = backfill::backfill(&s.deps, &s.capture, &req, |_| {}, &s.stop).await?;
        return Ok((
            StatusCode::OK,
            Json(json!({ "dry_run": true, "report": report })),
        ));
    }
    let started = start_backfill(&s, req, "http").await?;
    Ok((StatusCode::ACCEPTED, Json(json!(started))))
}

/// The latest backfill runs, newest first.
pub(super) async fn backfills(_: Reader, State(s): State<Surface>) -> ApiResult<Value> {
    let runs = s.deps.ledger.backfills(&s.deps.shop, 50).await?;
    Ok(Json(json!({ "backfills": runs })))
}

pub(super) async fn backfill_run(
    _: Reader,
    State(s): State<Surface>,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("id: `{id}` is not a run id"),
        )
    })?;
    match s.deps.ledger.backfill_run(&s.deps.shop, id).await? {
        Some(run) => Ok(Json(json!(run))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no backfill run {id}"),
        )),
    }
}
