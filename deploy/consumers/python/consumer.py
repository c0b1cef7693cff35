#!/usr/bin/env python3
"""A sync service for order-sync in Python, with pika.

Consumes <PREFIX>.que.<CONSUMER>, hands each order to sync_order(), publishes
the ack to <PREFIX>.acks with publisher confirms, and only then acknowledges
the delivery, as docs/asyncapi.yaml asks. What your system answered (its id
for the order, returned by sync_order()) goes in the ack as remote_id, and
order-sync shows it on the order. A message it already synced (same
message_id, also after a restart: they are kept in a SQLite file, SYNCED_DB,
with the remote id) is not synced again, its ack is re-sent; a message that
is not an order is rejected to the dead-letter queue; a lost connection is
retried.

Edit sync_order() and sync_event() here, or keep this file as it is and
import it: put your functions in HANDLERS (by event name; sync_event() takes
the rest) and call main().

    pip install -r requirements.txt
    AMQP_URL=amqp://erp:erp@localhost:5672/shop PREFIX=demo CONSUMER=erp python3 consumer.py

Settings (environment): AMQP_URL, PREFIX, CONSUMER, PREFETCH (default 20),
SYNCED_DB (default order-sync-synced.sqlite3: the message_ids synced, kept 30
days; written before the ack goes, so a crash after it brings the message
back and it is recognised), MAX_MESSAGES (stop after this many; for tests), IDLE_EXIT (stop after this
many seconds without a message; for tests).
"""
import json
import logging
import os
import sqlite3
import time

import pika
from pika.exceptions import AMQPConnectionError, AMQPChannelError, NackError, UnroutableError

log = logging.getLogger("consumer")


def sync_order(message):
    """Send one order to your ERP, warehouse or CRM here.

    Return normally when it is synced: what the order became in your system,
    as its id there (a str) or {"remote_id": ..., "remote_url": ...}, or None.
    Raise an exception to report a failure (order-sync delivers the order
    again after a back-off and shows the error).
    """
    order = message["order"]
    log.info("order %s (entity_id %s), attempt %s: %d item(s), grand total %s %s",
             order.get("increment_id"), order["entity_id"], message["attempt"],
             len(order.get("items", [])), order.get("grand_total"), order.get("order_currency_code"))
    return None  # your system's id for the order, once it has one


def sync_event(message):
    """An order's later event, when this consumer's `events` list more than
    `placed`: sales_order_invoice_save_after_que (with `invoice`),
    ..._shipment_... (`shipment`), ..._creditmemo_... (`creditmemo`),
    order_cancel_after_que and sales_order_save_after_que (with `previous`).
    They come in order per order, each after the one before it was acked.
    Same contract as sync_order().
    """
    order = message["order"]
    document = message.get("invoice") or message.get("shipment") or message.get("creditmemo")
    if document is not None:
        what = f"document {document.get('increment_id') or document['entity_id']}, {len(document.get('items', []))} item(s)"
    else:
        previous = message.get("previous") or {}
        what = f"{previous.get('state')}/{previous.get('status')} -> {order.get('state')}/{order.get('status')}"
    log.info("order %s (entity_id %s) event #%s %s: %s", order.get("increment_id"), order["entity_id"],
             message.get("sequence"), message["event"], what)


HANDLERS = {"sales_order_place_after_que": sync_order}


def remote_of(answer):
    """What a handler returned, as the ack's remote_id and remote_url."""
    if answer is None:
        return {}
    if isinstance(answer, str):
        answer = {"remote_id": answer}
    if not isinstance(answer, dict):
        raise TypeError(f"a handler returns None, its system's id (str) or a dict, not {type(answer).__name__}")
    remote = {k: str(answer[k]) for k in ("remote_id", "remote_url") if answer.get(k) is not None}
    if len(remote.get("remote_id", "")) > 255:
        raise ValueError("remote_id is longer than 255 characters")
    return remote


class SyncedLog:
    """The message_ids this service synced and what its system answered, in a
    SQLite file: durable across restarts, cleaned of rows older than keep_days."""

    def __init__(self, path, keep_days=30):
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS synced (message_id TEXT PRIMARY KEY, synced_at REAL NOT NULL, "
                        "remote TEXT)")
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(synced)")]
        if "remote" not in columns:  # a file from before remote ids were kept
            self.db.execute("ALTER TABLE synced ADD COLUMN remote TEXT")
        self.db.execute("DELETE FROM synced WHERE synced_at < ?", (time.time() - keep_days * 86400,))
        self.db.commit()

    def get(self, message_id):
        """What was answered for message_id ({} if nothing), or None if it was not synced."""
        row = self.db.execute("SELECT remote FROM synced WHERE message_id = ?", (message_id,)).fetchone()
        return None if row is None else json.loads(row[0] or "{}")

    def remember(self, message_id, remote):
        with self.db:  # committed (and on disk) before the ack is published
            self.db.execute("INSERT OR IGNORE INTO synced VALUES (?, ?, ?)",
                            (message_id, time.time(), json.dumps(remote)))


class Consumer:
    def __init__(self, url, prefix, consumer, prefetch=20, synced_db="order-sync-synced.sqlite3"):
        self.params = pika.URLParameters(url)
        self.queue = f"{prefix}.que.{consumer}"
        self.acks = f"{prefix}.acks"
        self.consumer = consumer
        self.prefetch = prefetch
        self.synced = SyncedLog(synced_db)
        self.handled = 0

    def ack_for(self, message, error, remote):
        ack = {"message_id": message["message_id"], "consumer": self.consumer,
               "entity_id": message["order"]["entity_id"], "status": "failed" if error else "synced"}
        if error:
            ack["error"] = error[:2000]
        else:
            ack.update(remote)
        return ack

    def handle(self, channel, method, body):
        try:
            message = json.loads(body)
            message_id = message["message_id"]
            message["order"]["entity_id"]
        except (ValueError, KeyError, TypeError) as e:
            log.error("not an order message (%s); dead-lettering it", e)
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        error = None
        remote = self.synced.get(message_id)
        if remote is not None:
            log.info("%s already synced; not synced again, its ack sent again", message_id)
        else:
            try:
                remote = remote_of(HANDLERS.get(message.get("event"), sync_event)(message))
            except Exception as e:  # the remote system's failure, reported to order-sync
                error = f"{type(e).__name__}: {e}"
                log.warning("%s failed: %s", message_id, error)
            else:
                self.synced.remember(message_id, remote)
        # Confirmed (confirm_delivery) and routable (mandatory) before the delivery is acked:
        # if this process dies in between, the order comes again; it is never lost.
        channel.basic_publish(
            exchange=self.acks, routing_key=self.consumer, mandatory=True,
            body=json.dumps(self.ack_for(message, error, remote)),
            properties=pika.BasicProperties(content_type="application/json", delivery_mode=2))
        channel.basic_ack(method.delivery_tag)
        self.handled += 1

    def run(self, max_messages=None, idle_exit=None):
        delay = 0.2
        while True:
            try:
                connection = pika.BlockingConnection(self.params)
                channel = connection.channel()
                channel.confirm_delivery()
                channel.basic_qos(prefetch_count=self.prefetch)
                delay = 0.2
                for method, _props, body in channel.consume(self.queue, inactivity_timeout=idle_exit):
                    if method is None:  # idle for idle_exit seconds
                        connection.close()
                        return
                    self.handle(channel, method, body)
                    if max_messages and self.handled >= max_messages:
                        connection.close()
                        return
            except (AMQPConnectionError, AMQPChannelError, NackError, UnroutableError) as e:
                log.warning("broker trouble (%s); reconnecting in %.1fs", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 15)


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = os.environ.get
    consumer = Consumer(env("AMQP_URL", "amqp://guest:guest@localhost:5672/%2f"),
                        env("PREFIX", "demo"), env("CONSUMER", "erp"), int(env("PREFETCH", "20")),
                        env("SYNCED_DB", "order-sync-synced.sqlite3"))
    max_messages = int(env("MAX_MESSAGES", "0")) or None
    idle_exit = float(env("IDLE_EXIT", "0")) or None
    try:
        consumer.run(max_messages, idle_exit)
    except KeyboardInterrupt:
        pass
    log.info("handled %d message(s)", consumer.handled)


if __name__ == "__main__":
    main()
