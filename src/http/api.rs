//! The JSON API: orders and their sync state, operator actions, and the pull
//! interface (the successor of the original module's SOAP calls) for sync
//! services that cannot speak AMQP. Errors are `{"error": "..."}` with a 4xx/5xx.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use chrono::Utc;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Access, ApiError, Surface};
use crate::{
    control::ResyncReport,
    ledger::{parse_time, Claimed, OrderFilter, OrderPage, OrderView, Selection},
    message::{stored_order, AckRejection, QueMessage},
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

/// List filters from a query string; empty values (as an HTML form sends them)
/// mean "no filter".
pub fn filter_from_query(query: Option<&str>) -> Result<OrderFilter, ApiError> {
    let mut f = OrderFilter::default();
    let bad = |field: &str, v: &str| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{field}: `{v}` is not a number"),
        )
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_ref() {
            "state" => f.state = Some(v.to_owned()),
            "consumer" => f.consumer = Some(v.to_owned()),
            "increment_id" => f.increment_id = Some(v.to_owned()),
            "placed_from" => f.placed_from = Some(v.to_owned()),
            "placed_to" => f.placed_to = Some(v.to_owned()),
            "store_id" => f.store_id = Some(v.parse().map_err(|_| bad("store_id", v))?),
            "limit" => f.limit = Some(v.parse().map_err(|_| bad("limit", v))?),
            "before" => f.before = Some(v.parse().map_err(|_| bad("before", v))?),
            other => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("unknown filter `{other}`; use state, consumer, store_id, increment_id, placed_from, placed_to, limit, before"),
                ))
            }
        }
    }
    Ok(f)
}

#[derive(Serialize)]
pub struct Summary {
    pub shop: String,
    /// consumer → state → rows.
    pub rows: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub pauses: Vec<crate::ledger::Pause>,
    pub instances: Vec<InstanceView>,
}

#[derive(Serialize)]
pub struct InstanceView {
    pub instance_id: String,
    pub hostname: String,
    pub pid: u32,
    pub roles: String,
    pub capture_leader: bool,
    pub started_at: chrono::DateTime<Utc>,
    pub last_seen_at: chrono::DateTime<Utc>,
}

pub async fn summary_of(s: &Surface) -> Result<Summary, ApiError> {
    let ledger = &s.parts.ledger;
    let mut rows: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for c in &s.parts.settings.consumers.names {
        rows.entry(c.clone()).or_default();
    }
    for (consumer, state, n) in ledger.counts().await? {
        *rows
            .entry(consumer)
            .or_default()
            .entry(state.as_str())
            .or_default() += n;
    }
    let instances = ledger
        .instances(Utc::now() - ALIVE_WITHIN)
        .await?
        .into_iter()
        .map(|i| InstanceView {
            instance_id: i.instance_id,
            hostname: i.hostname,
            pid: i.pid,
            roles: i.roles,
            capture_leader: i.capture_leader,
            started_at: i.started_at,
            last_seen_at: i.last_seen_at,
        })
        .collect();
    Ok(Summary {
        shop: s.parts.settings.shop.name.clone(),
        rows,
        pauses: ledger.pauses().await?,
        instances,
    })
}

pub async fn summary(State(s): State<Surface>, headers: HeaderMap) -> ApiResult<Summary> {
    s.authorize(&headers, Access::Read)?;
    Ok(Json(summary_of(&s).await?))
}

pub async fn list(
    State(s): State<Surface>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<OrderPage> {
    s.authorize(&headers, Access::Read)?;
    let filter = filter_from_query(query.as_deref())?;
    Ok(Json(s.parts.ledger.list_orders(&filter).await?))
}

#[derive(Serialize)]
pub struct Detail {
    pub order: OrderView,
    /// Per consumer, the message as it is (or was last) sent.
    pub messages: BTreeMap<String, Value>,
}

/// One order with, per consumer, the message as sent on its latest delivery.
pub async fn detail_of(s: &Surface, entity_id: u32) -> Result<Option<Detail>, ApiError> {
    let Some((order, stored)) = s.parts.ledger.order(entity_id).await? else {
        return Ok(None);
    };
    let raw = stored_order(&stored);
    let source = &s.parts.settings.shop.name;
    let messages = order
        .deliveries
        .iter()
        .map(|d| {
            let msg = QueMessage::new(
                &d.message_id,
                source,
                &d.consumer,
                d.captured_at,
                d.attempts.max(1),
                &raw,
            );
            (
                d.consumer.clone(),
                serde_json::to_value(&msg).unwrap_or(Value::Null),
            )
        })
        .collect();
    Ok(Some(Detail { order, messages }))
}

pub async fn detail(
    State(s): State<Surface>,
    headers: HeaderMap,
    Path(entity_id): Path<u32>,
) -> ApiResult<Detail> {
    s.authorize(&headers, Access::Read)?;
    match detail_of(&s, entity_id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no order with entity_id {entity_id} in the ledger"),
        )),
    }
}

/// What to re-send: exactly one of the three selections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    pub entity_ids: Option<Vec<u32>>,
    pub increment_ids: Option<Vec<String>>,
    /// Orders placed at or after (UTC; `2026-11-27` or RFC 3339).
    pub since: Option<String>,
    /// ... and before (default: now).
    pub until: Option<String>,
    /// Only this consumer's rows.
    pub consumer: Option<String>,
}

impl ResyncRequest {
    pub fn selection(&self) -> Result<Selection, String> {
        let time = |field: &str, v: &str| {
            parse_time(v).ok_or_else(|| {
                format!("{field}: `{v}` is not a date like 2026-11-27 or 2026-11-27T10:00:00Z")
            })
        };
        match (&self.entity_ids, &self.increment_ids, &self.since) {
            (Some(ids), None, None) => Ok(Selection::EntityIds(ids.clone())),
            (None, Some(ids), None) => Ok(Selection::IncrementIds(ids.clone())),
            (None, None, Some(since)) => Ok(Selection::Placed {
                since: time("since", since)?,
                until: match &self.until {
                    Some(u) => time("until", u)?,
                    None => Utc::now(),
                },
            }),
            _ => Err(
                "give exactly one of entity_ids, increment_ids, or since (with an optional until)"
                    .into(),
            ),
        }
    }
}

pub async fn resync(
    State(s): State<Surface>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<ResyncReport> {
    s.authorize(&headers, Access::Write)?;
    let req: ResyncRequest = body(&bytes)?;
    let selection = req
        .selection()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let report = s
        .control
        .resync(&selection, req.consumer.as_deref(), Utc::now(), |_| {})
        .await?;
    tracing::info!(orders = report.orders, rows = report.rows, consumer = ?req.consumer, "Re-sent orders (HTTP).");
    Ok(Json(report))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// One consumer; all when absent.
    pub consumer: Option<String>,
    pub reason: Option<String>,
}

pub async fn pause(State(s): State<Surface>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Value> {
    s.authorize(&headers, Access::Write)?;
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

pub async fn resume(
    State(s): State<Surface>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Value> {
    s.authorize(&headers, Access::Write)?;
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
pub struct UnparkRequest {
    /// These orders; every parked one when absent.
    pub entity_ids: Option<Vec<u32>>,
    pub consumer: Option<String>,
}

pub async fn unpark(
    State(s): State<Surface>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Value> {
    s.authorize(&headers, Access::Write)?;
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

fn pull_consumer(s: &Surface, consumer: &str) -> Result<(), ApiError> {
    let c = &s.parts.settings.consumers;
    if c.pull.iter().any(|p| p == consumer) {
        return Ok(());
    }
    let message = if c.names.iter().any(|n| n == consumer) {
        format!("consumer `{consumer}` receives its orders from its queue; list it in consumers.pull to fetch over HTTP")
    } else {
        format!("unknown consumer `{consumer}`")
    };
    Err(ApiError(StatusCode::NOT_FOUND, message))
}

/// Orders pending for a pull consumer, each as the message an AMQP consumer
/// would get. Each counts as a delivery: unacked, it comes again after the
/// back-off. Nothing while the consumer is paused.
pub async fn pull(
    State(s): State<Surface>,
    headers: HeaderMap,
    Path(consumer): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Value> {
    s.authorize(&headers, Access::Write)?;
    pull_consumer(&s, &consumer)?;
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
    let ledger = &s.parts.ledger;
    if !ledger
        .paused(std::slice::from_ref(&consumer))
        .await?
        .is_empty()
    {
        return Ok(Json(json!({ "messages": [], "paused": true })));
    }
    let rows: Vec<Claimed> = ledger
        .pull(&consumer, Utc::now(), limit, s.acks_policy())
        .await?;
    let source = &s.parts.settings.shop.name;
    let messages: Vec<Value> = rows
        .iter()
        .map(|r| {
            let raw = stored_order(&r.message);
            let msg = QueMessage::new(
                &r.message_id,
                source,
                &r.consumer,
                r.captured_at,
                r.attempts + 1,
                &raw,
            );
            serde_json::to_value(&msg).unwrap_or(Value::Null)
        })
        .collect();
    Ok(Json(json!({ "messages": messages, "paused": false })))
}

/// Acks posted by a pull consumer: one ack object or an array of them, in the
/// AMQP ack format (`consumer` may be left out). Applied exactly as acks from
/// the queue; each gets its result, and a rejected one changes nothing.
pub async fn pull_acks(
    State(s): State<Surface>,
    headers: HeaderMap,
    Path(consumer): Path<String>,
    bytes: Bytes,
) -> ApiResult<Value> {
    s.authorize(&headers, Access::Write)?;
    if !s.parts.settings.consumers.names.contains(&consumer) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown consumer `{consumer}`"),
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let parsed: Vec<Result<crate::message::Ack, AckRejection>> = items
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
                return Err(AckRejection::UnknownConsumer(ack.consumer));
            }
            Ok(ack)
        })
        .collect();
    let valid: Vec<&crate::message::Ack> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut applied = s.acks.apply(&valid).await?.into_iter();
    let results: Vec<Value> = parsed
        .iter()
        .map(|p| match p {
            Err(r) => json!({ "applied": false, "reason": r.to_string() }),
            Ok(_) => match applied.next().expect("one result per valid ack") {
                Ok(crate::ledger::AckOutcome::Synced { entity_id }) => {
                    json!({ "applied": true, "entity_id": entity_id, "state": "synced" })
                }
                Ok(crate::ledger::AckOutcome::Failed {
                    entity_id,
                    retry_at,
                }) => {
                    json!({ "applied": true, "entity_id": entity_id, "state": "failed", "retry_at": retry_at })
                }
                Err(r) => json!({ "applied": false, "reason": r.to_string() }),
            },
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

impl Surface {
    fn acks_policy(&self) -> &crate::retry::RetryPolicy {
        self.acks.policy()
    }
}
