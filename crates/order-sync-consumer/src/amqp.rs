//! AMQP steps every reader and writer of order-sync's queues shares.
//!
//! A publish is persistent and mandatory and waits for the broker's confirm.
//! A message the broker returns as unroutable still arrives as an *ack*
//! carrying the message (lapin's `Confirmation::Ack(Some(_))`), so
//! [`confirmation`] turns that into [`Refused::Returned`]: nothing counts as
//! published unless the broker routed it and took responsibility for it.

use futures_util::{FutureExt, StreamExt};
use lapin::{
    message::Delivery, options::BasicPublishOptions, BasicProperties, Channel, Confirmation,
    PublisherConfirm,
};
use tokio_util::sync::CancellationToken;

/// Why the broker did not take a confirmed publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The broker refused responsibility (a queue limit, a lost quorum leader).
    #[error("nacked by the broker")]
    Nacked,
    /// No queue was bound for the message: a topology problem, never a success.
    #[error("returned as unroutable: {code} {text}")]
    Returned {
        /// The AMQP reply code (312 for NO_ROUTE).
        code: u16,
        /// The broker's reply text.
        text: String,
    },
}

/// Sends one message on a confirm-mode channel: persistent, so it survives a
/// broker restart once confirmed, and mandatory, so an unroutable one comes
/// back instead of vanishing. Await the returned confirm, then judge it with
/// [`confirmation`]; sending a batch before awaiting any confirm costs one
/// round trip for the batch.
pub async fn send(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<PublisherConfirm, lapin::Error> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties.with_delivery_mode(2),
        )
        .await
}

/// What a publisher confirm means: taken, or refused and why.
pub fn confirmation(c: Confirmation) -> Result<(), Refused> {
    match c {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(Refused::Returned {
                code: returned.reply_code,
                text: returned.reply_text.to_string(),
            })
        }
        Confirmation::Nack(None) => Err(Refused::Nacked),
        // Only on channels without confirms; callers enable them first.
        Confirmation::NotRequested => Ok(()),
    }
}

/// What waiting on a queue gave.
#[derive(Debug)]
pub enum Next {
    /// At least one delivery, and whatever else had already arrived.
    Batch(Vec<Delivery>),
    /// Shutdown came first; nothing was taken.
    Shutdown,
    /// The broker ended the consumer (channel or connection closed).
    Ended,
}

/// Waits for the next delivery (or shutdown), then takes whatever else is
/// already here, up to `max`: a backlog is handled in one batch — one ledger
/// commit, one round of confirms — instead of one per message, while a lone
/// message is handled at once.
pub async fn next_batch(
    consumer: &mut lapin::Consumer,
    max: usize,
    shutdown: &CancellationToken,
) -> Result<Next, lapin::Error> {
    let first = tokio::select! {
        d = consumer.next() => d,
        _ = shutdown.cancelled() => return Ok(Next::Shutdown),
    };
    let Some(first) = first else {
        return Ok(Next::Ended);
    };
    let mut batch = vec![first?];
    while batch.len() < max.max(1) {
        match consumer.next().now_or_never() {
            Some(Some(d)) => batch.push(d?),
            _ => break,
        }
    }
    Ok(Next::Batch(batch))
}
