//! The status page: the successor of the original module's admin grid. Plain
//! server-rendered HTML and forms, no JavaScript and no build step: totals by
//! state per consumer, who captures, a filterable table of orders with each
//! consumer's state, parked orders highlighted, re-send per order, per
//! selection and per time range, pause and resume, and backfills (their
//! progress, and a form that starts one).
//!
//! Reading needs nothing (unless `http.protect_reads`); the buttons need the
//! API token, entered once and kept in an HttpOnly, SameSite=Strict cookie.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{
    api::{detail_of, filter_from_query, start_backfill, summary_of, BackfillRequest},
    auth::{self, PageReader, PageWriter},
    chart, ApiError, Surface,
};
use crate::{
    control::input::{self, SelectionInput},
    ledger::{BackfillRun, Delivery, OrderView, State as RowState},
};

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 2rem; color: #222; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.parked { background: #fde8e8; }
.state-synced { color: #176b1d; } .state-failed { color: #a35a00; }
.state-parked { color: #b00020; font-weight: bold; } .state-pending, .state-published { color: #555; }
.paused { background: #fff3cd; border: 1px solid #e0c060; padding: .4rem .6rem; display: inline-block; }
.running { color: #176b1d; }
.notice { background: #e8f0fe; padding: .4rem .6rem; margin: .5rem 0; }
.err { color: #b00020; font-size: 12px; max-width: 28rem; overflow-wrap: anywhere; }
small { color: #666; }
form.inline { display: inline; }
fieldset { display: inline-block; border: 1px solid #ddd; margin: 0 .5rem .5rem 0; }
pre { background: #f7f7f7; padding: .5rem; overflow: auto; max-height: 40rem; }
"#;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A time as the date inputs take it.
fn day(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%d").to_string())
}

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    (
        status,
        axum::response::Html(layout(title, body).into_string()),
    )
        .into_response()
}

pub(super) fn refused(e: ApiError) -> Response {
    page(
        e.0,
        "order-sync: not allowed",
        html! {
            h1 { "Not allowed" }
            p { (e.1) }
            p { a href="/" { "Back to the status page" } }
        },
    )
}

fn failed(e: ApiError) -> Response {
    if matches!(e.0, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return refused(e);
    }
    page(
        e.0,
        "order-sync: error",
        html! {
            h1 { "That did not work" }
            p.err { (e.1) }
            p { a href="/" { "Back to the status page" } }
        },
    )
}

/// Back to the page with a notice (signed, and escaped when shown).
fn back(token: &crate::config::Secret, notice: &str) -> Response {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("notice", notice)
        .append_pair("sig", &auth::sign_notice(token, notice))
        .finish();
    Redirect::to(&format!("/?{q}")).into_response()
}

/// Form fields, repeated keys kept (`entity_id=1&entity_id=2`).
fn form(bytes: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
        .collect()
}

/// The ticked (or hidden) `entity_id` fields, each of which must be one.
fn entity_ids(f: &[(String, String)]) -> Result<Vec<u32>, ApiError> {
    let given: Vec<&str> = f
        .iter()
        .filter(|(k, v)| k == "entity_id" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    Ok(input::entity_ids("entity_id", &given)?)
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

pub(super) async fn index(
    _: PageReader,
    State(s): State<Surface>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    // Only a notice this page made (after an action) is shown: a link with
    // any other text shows nothing.
    let notice = value("notice").filter(|text| {
        value("sig").is_some_and(|sig| auth::notice_is_ours(&s.http.api_token, text, &sig))
    });
    // The notice is not a filter.
    let filter_query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(k, _)| k != "notice" && k != "sig"))
        .finish();
    let filter = match filter_from_query(Some(&filter_query)) {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let summary = match summary_of(&s).await {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    let orders = match s.deps.ledger.list_orders(&filter).await {
        Ok(p) => p,
        Err(e) => return failed(e.into()),
    };
    let consumers = s.deps.consumers.names.clone();
    let charts = match charts(&s, &consumers).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let runs = match s.deps.ledger.backfills(&s.deps.shop, 10).await {
        Ok(r) => r,
        Err(e) => return failed(e.into()),
    };
    let can_write = s.may_write(&headers).await;
    let token_configured = !s.http.api_token.is_empty();
    let all_paused = summary.pauses.iter().find(|p| p.consumer == "*");
    let disabled = !can_write;
    let states = RowState::ALL.map(RowState::as_str);
    let next_link = orders.next.map(|next| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                url::form_urlencoded::parse(filter_query.as_bytes()).filter(|(k, _)| k != "before"),
            )
            .append_pair("before", &next.to_string())
            .finish();
        format!("/?{q}")
    });
    let body = html! {
        h1 { "order-sync · " (summary.shop) }
        @if let Some(n) = &notice { p.notice #notice { (n) } }
        p #publishing {
            @if let Some(p) = all_paused {
                span.paused #pause-state data-paused="true" {
                    "Publishing PAUSED for all consumers since " (when(Some(p.paused_at))) " (by " (p.paused_by) ")"
                    @if let Some(r) = &p.reason { ": " (r) }
                    ". Capture goes on recording orders; nothing is sent until resumed."
                }
            } @else if summary.pauses.is_empty() {
                span.running #pause-state data-paused="false" { "Publishing: running" }
            } @else {
                span.paused #pause-state data-paused="partly" {
                    "Publishing paused for: "
                    @for p in &summary.pauses { (p.consumer) " (since " (when(Some(p.paused_at))) ") " }
                }
            }
            " "
            @if all_paused.is_some() || !summary.pauses.is_empty() {
                form.inline method="post" action="/ui/resume" {
                    button #resume-all type="submit" disabled[disabled] { "Resume all" }
                }
            }
            @if all_paused.is_none() {
                form.inline method="post" action="/ui/pause" {
                    button #pause-all type="submit" disabled[disabled] { "Pause all" }
                }
            }
        }
        @if !can_write {
            @if token_configured {
                form #login method="post" action="/ui/login" {
                    "To re-send, pause or un-park, enter the API token: "
                    input type="password" name="token" autocomplete="current-password" required;
                    " " button type="submit" { "Unlock" }
                }
            } @else {
                p { small { "Changes are off: no http.api_token is configured." } }
            }
        } @else {
            form.inline method="post" action="/ui/logout" { button type="submit" { "Lock" } }
        }

        h2 { "Orders per minute, last " (chart::HOURS) " hours" }
        (charts)

        h2 { "Totals" }
        table #totals {
            tr { th { "consumer" } @for st in states { th { (st) } } th { "publishing" } }
            @for (consumer, by_state) in &summary.rows {
                @let paused = all_paused.is_some() || summary.pauses.iter().any(|p| &p.consumer == consumer);
                tr data-consumer=(consumer) {
                    td { (consumer) }
                    @for st in states {
                        td.n data-state=(st) class=(format!("n state-{st}")) {
                            a href=(format!("/?consumer={consumer}&state={st}")) { (by_state.get(st).copied().unwrap_or(0)) }
                        }
                    }
                    td {
                        @if paused { span.paused { "paused" } } @else { span.running { "running" } }
                        " "
                        @if summary.pauses.iter().any(|p| &p.consumer == consumer) {
                            form.inline method="post" action="/ui/resume" {
                                input type="hidden" name="consumer" value=(consumer);
                                button type="submit" disabled[disabled] { "Resume" }
                            }
                        } @else if all_paused.is_none() {
                            form.inline method="post" action="/ui/pause" {
                                input type="hidden" name="consumer" value=(consumer);
                                button type="submit" disabled[disabled] { "Pause" }
                            }
                        }
                        @if by_state.get("parked").copied().unwrap_or(0) > 0 {
                            " "
                            form.inline method="post" action="/ui/unpark" {
                                input type="hidden" name="consumer" value=(consumer);
                                button type="submit" disabled[disabled] { "Un-park all" }
                            }
                        }
                    }
                }
            }
        }

        h2 { "Instances" }
        table #instances {
            tr { th { "instance" } th { "roles" } th { "capture" } th { "started" } th { "last seen" } }
            @if summary.instances.is_empty() { tr { td colspan="5" { "none running" } } }
            @for i in &summary.instances {
                tr {
                    td { (i.instance_id) }
                    td { (i.roles) }
                    td { @if i.capture_leader { strong.capture-leader { "capturing" } } @else { "standby" } }
                    td { (when(Some(i.started_at))) }
                    td { (when(Some(i.last_seen_at))) }
                }
            }
        }

        (backfills(&runs, &consumers, disabled))

        h2 { "Orders" }
        form #filter method="get" action="/" {
            fieldset {
                legend { "Filter" }
                label { "state " select name="state" {
                    option value="" { "any" }
                    @for st in states { option value=(st) selected[filter.state.map(RowState::as_str) == Some(st)] { (st) } }
                } } " "
                label { "consumer " select name="consumer" {
                    option value="" { "any" }
                    @for c in &consumers { option value=(c) selected[filter.consumer.as_deref() == Some(c.as_str())] { (c) } }
                } } " "
                label { "store " input type="number" name="store_id" min="0" style="width:5em" value=[filter.store_id]; } " "
                label { "increment id " input type="text" name="increment_id" size="12" value=[filter.increment_id.as_deref()]; } " "
                label { "placed from " input type="date" name="placed_from" value=[day(filter.placed_from)]; } " "
                label { "to " input type="date" name="placed_to" value=[day(filter.placed_to)]; } " "
                button type="submit" { "Show" } " " a href="/" { "clear" }
            }
        }
        form #resync-range method="post" action="/ui/resync" {
            fieldset {
                legend { "Re-send orders placed in a range (UTC)" }
                label { "from " input type="date" name="since" required; } " "
                label { "to (excl.) " input type="date" name="until"; } " "
                label { "consumer " select name="consumer" {
                    option value="" { "all" }
                    @for c in &consumers { option value=(c) { (c) } }
                } } " "
                button type="submit" disabled[disabled] { "Re-send range" }
            }
        }
        form #selection method="post" action="/ui/resync" {
            button #resync-selected type="submit" disabled[disabled] { "Re-send selected" }
        }
        table #orders {
            tr {
                th { "" } th { "increment id" } th { "entity id" } th { "store" } th { "placed" } th { "captured" }
                @for c in &consumers { th { (c) } }
                th { "" }
            }
            @if orders.orders.is_empty() { tr { td colspan=(7 + consumers.len()) { "no orders match" } } }
            @for o in &orders.orders {
                (order_row(o, &consumers, disabled))
            }
        }
        @if let Some(link) = next_link { p { a #older href=(link) { "older orders →" } } }
        p { small { "JSON: " a href="/api/summary" { "/api/summary" } ", " a href="/api/orders" { "/api/orders" } ". Metrics: " a href="/metrics" { "/metrics" } "." } }
    };
    page(StatusCode::OK, "order-sync status", body)
}

/// The throughput chart and the oldest-unsynced bars, from the ledger.
async fn charts(s: &Surface, consumers: &[String]) -> Result<Markup, ApiError> {
    let now = Utc::now();
    let since = now - chrono::Duration::hours(chart::HOURS);
    let ledger = &s.deps.ledger;
    let captured = ledger.captured_per_minute(since).await?;
    let synced = ledger.synced_per_minute(since).await?;
    let oldest = ledger.oldest_unsynced_by_consumer().await?;
    Ok(html! {
        (chart::throughput(&captured, &synced, consumers, now))
        h2 { "Oldest order not yet synced, per consumer" }
        (chart::oldest_unsynced(&oldest, now))
    })
}

/// The sync service's id for an order, linked to where it shows it when
/// that is an http(s) URL (the ack's `remote_url` was checked to be one).
fn remote(id: &str, url: Option<&str>) -> Markup {
    html! {
        @match url.filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
            Some(u) => { a href=(u) rel="noreferrer noopener" target="_blank" { (id) } }
            None => { (id) }
        }
    }
}

fn delivery_cell(d: Option<&Delivery>) -> Markup {
    html! {
        @if let Some(d) = d {
            td data-consumer=(d.consumer) data-state=(d.state.as_str()) {
                span class=(format!("state state-{}", d.state.as_str())) { (d.state.as_str()) }
                @if d.state == RowState::Synced { br; small { (when(d.synced_at)) } }
                @if let Some(r) = &d.remote_id { br; small.remote { "as " (remote(r, d.remote_url.as_deref())) } }
                @else { br; small { (d.attempts) " attempt" @if d.attempts != 1 { "s" } } }
                @if let Some(e) = &d.last_error { @if d.state != RowState::Synced { div.err { (e) } } }
            }
        } @else {
            td { small { "—" } }
        }
    }
}

fn order_row(o: &OrderView, consumers: &[String], disabled: bool) -> Markup {
    let by_consumer: BTreeMap<&str, &Delivery> = o
        .deliveries
        .iter()
        .map(|d| (d.consumer.as_str(), d))
        .collect();
    html! {
        tr #(format!("order-{}", o.entity_id)) class=[o.parked().then_some("parked")] data-entity-id=(o.entity_id) {
            td { input type="checkbox" name="entity_id" value=(o.entity_id) form="selection" aria-label="select"; }
            td { a href=(format!("/orders/{}", o.entity_id)) { (o.increment_id.as_deref().unwrap_or("?")) } }
            td.n { (o.entity_id) }
            td.n { (o.store_id.map(|s| s.to_string()).unwrap_or_default()) }
            td { (when(o.placed_at)) }
            td { (when(Some(o.captured_at))) }
            @for c in consumers { (delivery_cell(by_consumer.get(c.as_str()).copied())) }
            td {
                form.inline method="post" action="/ui/resync" {
                    input type="hidden" name="entity_id" value=(o.entity_id);
                    button.resync type="submit" disabled[disabled] { "Re-send" }
                }
            }
        }
    }
}

pub(super) async fn order(
    _: PageReader,
    State(s): State<Surface>,
    headers: HeaderMap,
    Path(entity_id): Path<u32>,
) -> Response {
    let detail = match detail_of(&s, entity_id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return failed(ApiError(
                StatusCode::NOT_FOUND,
                format!("No order with entity_id {entity_id} in the ledger."),
            ))
        }
        Err(e) => return failed(e),
    };
    let disabled = !s.may_write(&headers).await;
    let o = &detail.order;
    let body = html! {
        p { a href="/" { "← status" } }
        h1 { "Order " (o.increment_id.as_deref().unwrap_or("?")) }
        p { "entity_id " (o.entity_id) " · store " (o.store_id.map(|s| s.to_string()).unwrap_or_default())
            " · placed " (when(o.placed_at)) " · captured " (when(Some(o.captured_at))) }
        table #deliveries {
            tr { th { "consumer" } th { "event" } th { "state" } th { "attempts" } th { "last published" } th { "next attempt" } th { "synced" } th { "re-sent" } th { "message_id" } th { "remote record" } th { "last error" } th {} }
            @for d in &o.deliveries {
                tr class=[(d.state == RowState::Parked).then_some("parked")] data-consumer=(d.consumer) data-seq=(d.seq) data-state=(d.state.as_str()) {
                    td { (d.consumer) }
                    td { "#" (d.seq) " " (d.event.que_name()) }
                    td {
                        span class=(format!("state-{}", d.state.as_str())) { (d.state.as_str()) }
                        @if let Some(b) = d.blocked_by {
                            " " span.blocked data-blocked-by=(b) { "blocked behind #" (b) }
                        }
                    }
                    td.n { (d.attempts) }
                    td { (when(d.last_published_at)) }
                    td { (when(d.next_attempt_at)) }
                    td { (when(d.synced_at)) }
                    td.n { (d.resyncs) }
                    td { code { (d.message_id) } }
                    td.remote {
                        @match (&d.remote_id, &d.remote_url) {
                            (Some(r), url) => { (remote(r, url.as_deref())) }
                            (None, Some(u)) => { (remote(u, Some(u))) }
                            (None, None) => {}
                        }
                    }
                    td.err { (d.last_error.as_deref().unwrap_or("")) }
                    td {
                        form.inline method="post" action="/ui/resync" {
                            input type="hidden" name="entity_id" value=(o.entity_id);
                            input type="hidden" name="consumer" value=(d.consumer);
                            input type="hidden" name="event" value=(d.event.as_str());
                            button type="submit" disabled[disabled] { "Re-send to " (d.consumer) }
                        }
                        @if d.state == RowState::Parked {
                            form.inline method="post" action="/ui/unpark" {
                                input type="hidden" name="entity_id" value=(o.entity_id);
                                input type="hidden" name="consumer" value=(d.consumer);
                                button type="submit" disabled[disabled] { "Un-park" }
                            }
                            form.inline method="post" action="/ui/skip" {
                                input type="hidden" name="entity_id" value=(o.entity_id);
                                input type="hidden" name="consumer" value=(d.consumer);
                                button type="submit" disabled[disabled] { "Skip" }
                            }
                        }
                    }
                }
            }
        }
        @for (consumer, msg) in &detail.messages {
            h2 { "Message to " (consumer) }
            pre { (serde_json::to_string_pretty(msg).unwrap_or_default()) }
        }
    };
    page(StatusCode::OK, "order-sync: order", body)
}

pub(super) fn login_page(s: &Surface, e: ApiError) -> Response {
    let token_configured = !s.http.api_token.is_empty();
    page(
        e.0,
        "order-sync: sign in",
        html! {
            h1 { "order-sync" }
            p { (e.1) }
            @if token_configured {
                form #login method="post" action="/ui/login" {
                    "API token: " input type="password" name="token" required; " " button type="submit" { "Unlock" }
                }
            }
        },
    )
}

/// The sign-in form: the operators' token, once, for a session cookie that
/// does not hold it. `Secure` when the request came over HTTPS (through a
/// proxy that says so).
pub(super) async fn login(State(s): State<Surface>, headers: HeaderMap, bytes: Bytes) -> Response {
    if let Err(e) = auth::same_site(&headers) {
        return refused(e);
    }
    let f = form(&bytes);
    if !s.is_api_token(field(&f, "token").unwrap_or("")) {
        return refused(ApiError(StatusCode::UNAUTHORIZED, "wrong token".into()));
    }
    let expires = Utc::now() + chrono::Duration::hours(auth::SESSION_HOURS);
    let value = auth::new_session(&s.http.api_token, expires.timestamp());
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let c = cookie::Cookie::build((auth::SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::hours(auth::SESSION_HOURS))
        .build();
    let mut r = back(&s.http.api_token, "Unlocked: the buttons work now.");
    if let Ok(v) = c.to_string().parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Signs the session out: its cookie is cleared, and its id listed in the
/// ledger so the value no longer works anywhere, copied or not.
pub(super) async fn logout(State(s): State<Surface>, headers: HeaderMap) -> Response {
    if let Some(session) = s.session(&headers) {
        let expires = DateTime::from_timestamp(session.expires, 0).unwrap_or_else(Utc::now);
        if let Err(e) = s
            .deps
            .ledger
            .revoke_session(&session.id, expires, Utc::now())
            .await
        {
            return failed(e.into());
        }
    }
    let c = cookie::Cookie::build((auth::SESSION_COOKIE, ""))
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut r = back(&s.http.api_token, "Locked.");
    if let Ok(v) = c.to_string().parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn resync(_: PageWriter, State(s): State<Surface>, bytes: Bytes) -> Response {
    let f = form(&bytes);
    let consumer = field(&f, "consumer");
    let ids = match entity_ids(&f) {
        Ok(ids) => ids,
        Err(e) => return failed(e),
    };
    let since = field(&f, "since");
    if since.is_none() && ids.is_empty() {
        return back(&s.http.api_token, "Nothing selected: tick orders first.");
    }
    let given = SelectionInput {
        entity_ids: since.is_none().then_some(ids),
        increment_ids: None,
        since: since.map(str::to_owned),
        until: field(&f, "until").map(str::to_owned),
    };
    let selection = match given.parse(Utc::now()) {
        Ok(sel) => sel,
        Err(e) => return failed(e.into()),
    };
    match s
        .control
        .resync(&selection, consumer, field(&f, "event"), Utc::now(), |_| {})
        .await
    {
        Ok(r) => {
            tracing::info!(
                orders = r.orders,
                rows = r.rows,
                "Re-sent orders (status page)."
            );
            back(
                &s.http.api_token,
                &format!("Re-sending {} order(s) ({} row(s)).", r.orders, r.rows),
            )
        }
        Err(e) => failed(e.into()),
    }
}

pub(super) async fn pause(_: PageWriter, State(s): State<Surface>, bytes: Bytes) -> Response {
    let f = form(&bytes);
    let consumer = field(&f, "consumer");
    match s
        .control
        .pause(consumer, "status page", None, Utc::now())
        .await
    {
        Ok(()) => {
            tracing::warn!(
                consumer = consumer.unwrap_or("*"),
                "Publishing paused (status page)."
            );
            back(
                &s.http.api_token,
                &format!("Paused {}.", consumer.unwrap_or("all consumers")),
            )
        }
        Err(e) => failed(e.into()),
    }
}

pub(super) async fn resume(_: PageWriter, State(s): State<Surface>, bytes: Bytes) -> Response {
    let f = form(&bytes);
    let consumer = field(&f, "consumer");
    match s.control.resume(consumer).await {
        Ok(_) => {
            tracing::info!(
                consumer = consumer.unwrap_or("*"),
                "Publishing resumed (status page)."
            );
            back(
                &s.http.api_token,
                &format!("Resumed {}.", consumer.unwrap_or("all consumers")),
            )
        }
        Err(e) => failed(e.into()),
    }
}

pub(super) async fn skip(_: PageWriter, State(s): State<Surface>, bytes: Bytes) -> Response {
    let f = form(&bytes);
    let ids = match entity_ids(&f) {
        Ok(ids) => ids,
        Err(e) => return failed(e),
    };
    let consumer = field(&f, "consumer");
    match s
        .control
        .skip(&ids, consumer, "status page", Utc::now())
        .await
    {
        Ok(n) => back(&s.http.api_token, &format!("Skipped {n} parked row(s).")),
        Err(e) => failed(e.into()),
    }
}

pub(super) async fn unpark(_: PageWriter, State(s): State<Surface>, bytes: Bytes) -> Response {
    let f = form(&bytes);
    let ids = match entity_ids(&f) {
        Ok(ids) => ids,
        Err(e) => return failed(e),
    };
    let consumer = field(&f, "consumer");
    let only = (!ids.is_empty()).then_some(ids.as_slice());
    match s.control.unpark(only, consumer, Utc::now()).await {
        Ok(n) => back(&s.http.api_token, &format!("Un-parked {n} row(s).")),
        Err(e) => failed(e.into()),
    }
}

/// The backfill form: a run for one consumer, carried out in this process.
pub(super) async fn backfill(_: PageWriter, State(s): State<Surface>, bytes: Bytes) -> Response {
    let f = form(&bytes);
    let list = |name: &str| -> Vec<String> {
        field(&f, name)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let stores: Result<Vec<u16>, ApiError> = list("stores")
        .iter()
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("stores: `{v}` is not a store id"),
                )
            })
        })
        .collect();
    let asked = match stores {
        Ok(stores) => BackfillRequest {
            consumer: field(&f, "consumer").map(str::to_owned),
            since: field(&f, "since").map(str::to_owned),
            until: field(&f, "until").map(str::to_owned),
            states: list("states"),
            stores,
            ..Default::default()
        },
        Err(e) => return failed(e),
    };
    let started = match asked.parse() {
        Ok(req) => start_backfill(&s, req, "status page").await,
        Err(e) => Err(e),
    };
    match started {
        Ok(run) => back(
            &s.http.api_token,
            &format!(
                "Backfill for {} started (run {}); its progress is under Backfills.",
                run.consumer, run.id
            ),
        ),
        Err(e) => failed(e),
    }
}

/// The latest backfill runs, and the form that starts one.
fn backfills(runs: &[BackfillRun], consumers: &[String], disabled: bool) -> Markup {
    html! {
        h2 { "Backfills" }
        p { small { "Gives a consumer the orders it never got, read from Magento as they are now, while live orders go on. Also from the CLI: " code { "order-sync backfill" } "." } }
        table #backfills {
            tr { th { "run" } th { "consumer" } th { "asked" } th { "by" } th { "state" } th { "looked at" } th { "given" } th { "skipped" } th { "events" } th { "started" } th { "ended" } }
            @if runs.is_empty() { tr { td colspan="11" { "none yet" } } }
            @for r in runs {
                @let state = if r.stalled { "stalled" } else { r.state.as_str() };
                tr data-run=(r.id) data-state=(state) {
                    td.n { (r.id) }
                    td { (r.consumer) }
                    td { code { (r.request) } }
                    td { (r.started_by) }
                    td {
                        (state)
                        @if r.waiting && state == "running" { br; small { "waiting for " (r.consumer) " to take its orders" } }
                        @if state == "stalled" { br; small { "its process ended without a word (last news " (when(Some(r.updated_at))) "); the next run takes over" } }
                        @if let Some(e) = &r.error { div.err { (e) } }
                    }
                    td.n { (r.looked_at) " / " (r.total) }
                    td.n { (r.given) }
                    td.n { (r.skipped) }
                    td.n { (r.events) }
                    td { (when(Some(r.started_at))) }
                    td { (when(r.finished_at)) }
                }
            }
        }
        form #backfill method="post" action="/ui/backfill" {
            fieldset {
                legend { "Backfill a consumer" }
                label { "consumer " select name="consumer" required {
                    @for c in consumers { option value=(c) { (c) } }
                } } " "
                label { "placed from " input type="date" name="since"; } " "
                label { "to (excl.) " input type="date" name="until"; } " "
                label { "states " input type="text" name="states" size="16" placeholder="processing,pending"; } " "
                label { "stores " input type="text" name="stores" size="6" placeholder="1,2"; } " "
                button type="submit" disabled[disabled] { "Backfill" }
            }
        }
    }
}
