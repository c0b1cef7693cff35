//! Webhook consumers: each message POSTed to the consumer's HTTPS endpoint
//! instead of published to a queue, signed so the receiver can reject
//! forgeries and replays. A 2xx answer is a `synced` ack (a JSON answer may
//! carry `remote_id` and `remote_url`, as an ack does); anything else, a
//! timeout or a connection error is a `failed` one with the status or reason
//! kept — re-delivered with the same back-off and parking as every consumer.
//!
//! A row is claimed, counted as a delivery (`mark_published`), then POSTed,
//! and its outcome applied as an ack through the ack listener's path. If the
//! process dies in between, the row falls due again after the back-off: the
//! receiver may get a message twice (same `message_id`), never zero times.
//!
//! Signature (`X-Order-Sync-Signature: t=<unix>,v1=<hex>`): HMAC-SHA256, keyed
//! with the consumer's secret, of `<t>.<body>`. A receiver recomputes it,
//! compares in constant time, and rejects a `t` more than five minutes old.
//! Redirects are not followed, a response body is read up to
//! [`MAX_RESPONSE_BYTES`], certificates are verified, and neither the URL nor
//! the secret is logged.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{acks::AckListener, sleep_or_shutdown, Deps, Role, RoleError};
use crate::{
    config::{AckSettings, MessageFormat, MessageSettings, RelaySettings, Secret},
    ledger::{Carried, Claimed, Unanswered},
    message::{
        ce_header_value, check_remote, cloud_event_attributes, truncate, Ack, AckStatus, Delivering,
    },
    retry::RetryPolicy,
};

/// Most bytes of a receiver's answer read; a longer one counts as failed.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How often the ledger is asked for due webhook rows while idle.
const POLL: Duration = Duration::from_millis(200);

/// One webhook consumer.
struct Target {
    consumer: String,
    url: String,
    secret: Secret,
    timeout: Duration,
    format: MessageFormat,
    /// Requests in flight to it, at most `webhook.concurrency`.
    slots: Arc<Semaphore>,
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WebhookRound {
    pub claimed: usize,
    pub synced: usize,
    pub failed: usize,
}

pub struct Webhooks {
    deps: Deps,
    targets: Vec<Arc<Target>>,
    client: reqwest::Client,
    acks: AckListener,
    policy: RetryPolicy,
    batch_size: u32,
    claim_timeout: Duration,
}

/// Why webhooks cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "consumers.{0}.webhook.secret_env: the variable is unset or shorter than 16 characters"
    )]
    NoSecret(String),
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
}

impl Webhooks {
    pub fn new(
        deps: &Deps,
        relay: &RelaySettings,
        acks: &AckSettings,
        message: &MessageSettings,
    ) -> Result<Self, WebhookError> {
        let mut targets = Vec::new();
        for (consumer, w) in deps.consumers.webhooks() {
            let secret = w
                .secret()
                .ok_or_else(|| WebhookError::NoSecret(consumer.clone()))?;
            targets.push(Arc::new(Target {
                format: deps
                    .consumers
                    .options(&consumer)
                    .format
                    .unwrap_or(message.format),
                url: w.url.expose().to_owned(),
                secret,
                timeout: w.timeout,
                slots: Arc::new(Semaphore::new(w.concurrency)),
                consumer,
            }));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("order-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.without_url().to_string()))?;
        Ok(Self {
            deps: deps.clone(),
            targets,
            client,
            acks: AckListener::new(deps, relay, acks),
            policy: RetryPolicy::from_settings(relay),
            batch_size: relay.batch_size,
            claim_timeout: relay.claim_timeout,
        })
    }

    /// Whether any consumer is delivered by webhook.
    pub fn any(&self) -> bool {
        !self.targets.is_empty()
    }

    /// One round at `now`: each webhook consumer's due rows (not while it is
    /// paused) are counted as deliveries, POSTed (at most `concurrency` at
    /// once per consumer), and their outcomes applied as acks.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<WebhookRound, RoleError> {
        let names: Vec<String> = self.targets.iter().map(|t| t.consumer.clone()).collect();
        let paused = self.deps.ledger.paused(&names).await?;
        let ready: Vec<String> = names.into_iter().filter(|c| !paused.contains(c)).collect();
        if ready.is_empty() {
            return Ok(WebhookRound::default());
        }
        let claimed = self
            .deps
            .ledger
            .claim_due(
                &ready,
                Unanswered::All,
                now,
                self.batch_size,
                self.policy.max_attempts,
                self.claim_timeout,
            )
            .await?;
        let rows = claimed.to_publish;
        let mut round = WebhookRound {
            claimed: rows.len() + claimed.parked.len(),
            ..Default::default()
        };
        if rows.is_empty() {
            return Ok(round);
        }
        // A delivery counts from here: if this process dies before the
        // outcome is applied, the row falls due again after the back-off.
        self.deps
            .ledger
            .mark_published(
                &rows.iter().collect::<Vec<_>>(),
                now,
                &self.policy,
                Carried::Direct,
            )
            .await?;
        // Each POST a task of its own, holding its target's slot while it runs.
        let mut posts = tokio::task::JoinSet::new();
        for row in rows {
            let Some(t) = self.targets.iter().find(|t| t.consumer == row.consumer) else {
                continue;
            };
            let (t, client, shop, shapes) = (
                t.clone(),
                self.client.clone(),
                self.deps.shop.clone(),
                self.deps.shapes.clone(),
            );
            let max_attempts = self.policy.max_attempts;
            posts.spawn(async move {
                let _slot = t.slots.clone().acquire_owned().await;
                let delivery = row.next_delivery(max_attempts, &shapes);
                let result = post(&client, &t, &shop, &row, &delivery).await;
                (row, result)
            });
        }
        let mut outcomes = Vec::new();
        while let Some(done) = posts.join_next().await {
            match done {
                Ok(outcome) => outcomes.push(outcome),
                // A panicked POST leaves its row due again after the back-off.
                Err(e) => tracing::error!(error = %e, "A webhook delivery panicked."),
            }
        }
        let acks: Vec<Ack> = outcomes
            .into_iter()
            .map(|(row, result)| {
                let span = tracing::info_span!(
                    "webhook",
                    entity_id = row.entity_id,
                    increment_id = row.increment_id.as_deref().unwrap_or(""),
                    consumer = %row.consumer,
                    attempt = row.attempts + 1
                );
                match &result {
                    Ok(_) => span.in_scope(|| tracing::debug!("Webhook delivered.")),
                    Err(e) => span.in_scope(
                        || tracing::warn!(error = %e, "Webhook failed; will re-deliver."),
                    ),
                }
                let (status, remote, error) = match result {
                    Ok(remote) => (AckStatus::Synced, remote, None),
                    Err(e) => (AckStatus::Failed, Remote::default(), Some(e)),
                };
                let mut ack = Ack {
                    consumer: row.consumer.clone(),
                    status,
                    message_id: Some(row.message_id.clone()),
                    entity_id: Some(row.entity_id),
                    increment_id: None,
                    store_id: None,
                    error,
                    remote_id: remote.remote_id,
                    remote_url: remote.remote_url,
                };
                // The delivery worked: a bad answer loses the answer, not the
                // delivery (failing it would POST the order again).
                if let Err(e) = check_remote(&ack) {
                    span.in_scope(
                        || tracing::warn!(error = %e, "The webhook's answer is not kept."),
                    );
                    (ack.remote_id, ack.remote_url) = (None, None);
                }
                ack
            })
            .collect();
        round.synced = acks
            .iter()
            .filter(|a| a.status == AckStatus::Synced)
            .count();
        round.failed = acks.len() - round.synced;
        let refs: Vec<&Ack> = acks.iter().collect();
        self.acks.apply(&refs, Utc::now()).await?;
        Ok(round)
    }
}

/// One POST; `Err` says why it does not count as synced.
async fn post(
    client: &reqwest::Client,
    t: &Target,
    shop: &str,
    row: &Claimed,
    delivery: &Delivering<'_>,
) -> Result<Remote, String> {
    let body = delivery.body(shop);
    let timestamp = Utc::now().timestamp();
    let mut request = client
        .post(&t.url)
        .timeout(t.timeout)
        .header("content-type", "application/json")
        .header("x-order-sync-message-id", &row.message_id)
        .header(
            "x-order-sync-signature",
            signature(&t.secret, timestamp, &body),
        );
    if t.format == MessageFormat::CloudEvents {
        // The HTTP binding's binary content mode.
        for (name, value) in cloud_event_attributes(delivery, row.increment_id.as_deref(), shop) {
            request = request.header(format!("ce-{name}"), ce_header_value(&value));
        }
    }
    let mut response = request.body(body).send().await.map_err(describe)?;
    let status = response.status();
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        answer.extend_from_slice(&chunk);
        if answer.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "HTTP {}: the answer was longer than {MAX_RESPONSE_BYTES} bytes",
                status.as_u16()
            ));
        }
    }
    if status.is_success() {
        // A JSON answer may say what the order became there; any other
        // answer (none, text, other fields) says nothing more.
        Ok(serde_json::from_slice(&answer).unwrap_or_default())
    } else {
        let text = truncate(String::from_utf8_lossy(&answer).trim(), 200);
        Err(if status.is_redirection() {
            format!("HTTP {} (redirects are not followed)", status.as_u16())
        } else {
            format!("HTTP {}: {text}", status.as_u16())
        })
    }
}

/// What a receiver's 2xx answer may say, as an ack would.
#[derive(Debug, Default, serde::Deserialize)]
struct Remote {
    remote_id: Option<String>,
    remote_url: Option<String>,
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A transport error as kept in the ledger: what went wrong, never the URL.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL, which may hold a secret.
    let e = e.without_url();
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    truncate(&text, 500)
}

impl Role for Webhooks {
    const NAME: &'static str = "webhooks";

    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        loop {
            let round = self.deliver_due(Utc::now()).await?;
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if round.claimed < self.batch_size as usize && !sleep_or_shutdown(POLL, shutdown).await
            {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_the_timestamp_and_the_body() {
        let s = signature(&Secret::new("whsec-0123456789abcdef"), 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="), "{s}");
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(
            s,
            signature(&Secret::new("another-secret-0123"), 1_700_000_000, b"{}")
        );
    }
}
