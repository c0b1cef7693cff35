<?php
/**
 * The bridge's loop: consume this consumer's queue, dispatch each order as
 * the Magento event the message names (`sales_order_place_after_que`, and the
 * later events a consumer subscribes to: `sales_order_invoice_save_after_que`,
 * …) with the arguments Magento gives the original event (`['order' =>
 * $order]`, `['invoice' => $invoice, …]`),
 * publish the ack order-sync expects, and only then acknowledge the delivery.
 *
 * - No exception from any observer: a `synced` ack.
 * - An exception: a `failed` ack carrying its message (order-sync re-delivers
 *   with back-off and parks the order after relay.max_attempts).
 * - The order is not in Magento: a `failed` ack saying so.
 * - Not an order message: rejected to the queue's dead-letter queue.
 *
 * The ack is published mandatory and confirmed before the delivery is
 * acknowledged: if the process dies in between, the order comes again, never
 * lost. What was acked `synced` is remembered in Magento's database
 * ({@see SyncedLog}), so a repeat of it is acked again without running the
 * observers twice. Observers get, beside Magento's own arguments,
 * `order_sync_message_id`, `order_sync_attempt` and `order_sync_sequence`
 * (0 for the placement). SIGTERM (or stop()) finishes the order in hand,
 * then returns.
 */

declare(strict_types=1);

namespace OrderSync\Bridge;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPExceptionInterface;
use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Message\AMQPMessage;

final class Bridge
{
    private bool $stopping = false;
    private int $handled = 0;
    private bool $returned = false;
    private bool $nacked = false;
    private readonly SyncedLog $synced;
    private bool $tableReady = false;

    /** The table (before Magento's table prefix) the bridge keeps what it synced in. */
    public const SYNCED_TABLE = 'order_sync_bridge_synced';

    public function __construct(
        private readonly Adapter $magento,
        private readonly Settings $settings,
    ) {
        $this->synced = new SyncedLog(
            $magento->database(),
            $magento->tableName(self::SYNCED_TABLE),
            $settings->keepSyncedDays,
        );
    }

    /** Finish the order in hand, then return from run(). */
    public function stop(): void
    {
        $this->stopping = true;
    }

    /**
     * Consumes until `$maxMessages` deliveries are handled (0: no limit), a
     * stop is asked for (SIGTERM, SIGINT, stop()), or, with `$idleSeconds`,
     * nothing arrived for that long. Broker trouble is retried with back-off.
     * Returns the number of deliveries handled.
     */
    public function run(int $maxMessages = 0, float $idleSeconds = 0.0): int
    {
        $this->installSignalHandlers();
        $delay = 0.2;
        while (!$this->stopping) {
            try {
                $this->session($maxMessages, $idleSeconds);
                break;
            } catch (AMQPExceptionInterface | \RuntimeException $e) {
                // PDOException is a RuntimeException: Magento's database
                // gone away is retried the same way, nothing acked meanwhile.
                $this->magento->log('warning', 'order-sync bridge: broker or database trouble; reconnecting', [
                    'error' => $e->getMessage(),
                    'retry_in' => $delay,
                ]);
                usleep((int) ($delay * 1e6));
                $delay = min($delay * 2, 15.0);
            }
        }
        return $this->handled;
    }

    private function session(int $maxMessages, float $idleSeconds): void
    {
        if (!$this->tableReady) {
            $this->synced->ensureTable();
            $this->tableReady = true;
        }
        $broker = $this->settings->broker();
        $connection = new AMQPStreamConnection(
            $broker['host'],
            $broker['port'],
            $broker['user'],
            $broker['password'],
            $broker['vhost'],
        );
        try {
            $channel = $connection->channel();
            $channel->confirm_select();
            $channel->set_return_listener(function (): void {
                $this->returned = true;
            });
            $channel->set_nack_handler(function (): void {
                $this->nacked = true;
            });
            $channel->basic_qos(0, max(1, $this->settings->prefetch), false);
            $tag = $channel->basic_consume(
                $this->settings->queue(),
                '',
                false,
                false,
                false,
                false,
                function (AMQPMessage $delivery) use ($channel): void {
                    $this->handle($delivery, $channel);
                },
            );
            $idleSince = microtime(true);
            $seen = $this->handled;
            while ($channel->is_consuming() && !$this->stopping) {
                if ($maxMessages > 0 && $this->handled >= $maxMessages) {
                    break;
                }
                try {
                    $channel->wait(null, false, 1.0);
                } catch (AMQPTimeoutException) {
                    // A second without a message: look at the stop flag again.
                }
                if ($this->handled !== $seen) {
                    $seen = $this->handled;
                    $idleSince = microtime(true);
                } elseif ($idleSeconds > 0 && microtime(true) - $idleSince >= $idleSeconds) {
                    break;
                }
            }
            // Deliveries taken but not handled go back to the queue on close.
            $channel->basic_cancel($tag);
            $channel->close();
        } finally {
            $connection->close();
        }
    }

    /**
     * One delivery: dispatch the order's event, publish the ack with confirms,
     * then acknowledge the delivery. Returns `synced`, `failed`, `duplicate`
     * (synced before: acked again, not dispatched) or `rejected`.
     */
    public function handle(AMQPMessage $delivery, AMQPChannel $channel): string
    {
        $message = json_decode($delivery->getBody(), true);
        $entityId = is_array($message) ? ($message['order']['entity_id'] ?? null) : null;
        if (!is_array($message) || !is_int($entityId) || !isset($message['message_id'], $message['event'])) {
            $this->magento->log('error', 'order-sync bridge: not an order message; dead-lettering it');
            $delivery->reject(false);
            $this->handled++;
            return 'rejected';
        }
        $event = (string) $message['event'];
        $messageId = (string) $message['message_id'];
        $before = $this->synced->find($messageId);
        if ($before !== null) {
            // Synced before (the ack, or the delivery's acknowledgement, was
            // lost to a crash): answer again, with what the observer said
            // then, and run nothing.
            $this->magento->log('info', "order-sync bridge: $event already synced; acked again, observers not run", [
                'entity_id' => $entityId,
                'message_id' => $messageId,
                'attempt' => $message['attempt'] ?? null,
            ]);
            $this->answer($delivery, $channel, $this->ack($messageId, $entityId, null) + $before);
            return 'duplicate';
        }
        $error = null;
        $answer = new Answer();
        try {
            $order = $this->magento->loadOrder($entityId);
            if ($order === null) {
                $error = "order entity_id $entityId not found in Magento";
            } else {
                $arguments = $this->arguments($message, $order, $error);
                if ($error === null) {
                    $this->magento->dispatch($event, $arguments + [
                        'order_sync_message_id' => $messageId,
                        'order_sync_attempt' => (int) ($message['attempt'] ?? 1),
                        'order_sync_sequence' => (int) ($message['sequence'] ?? 0),
                        'order_sync_answer' => $answer,
                    ]);
                }
            }
        } catch (\Throwable $e) {
            $error = get_class($e) . ': ' . $e->getMessage();
        }
        $fields = [];
        if ($error === null) {
            $problems = [];
            $fields = $answer->ackFields($problems);
            foreach ($problems as $problem) {
                $this->magento->log('warning', "order-sync bridge: $event synced, but the observer's $problem", [
                    'entity_id' => $entityId,
                ]);
            }
            // Committed before the ack goes: a crash after this point brings
            // the message back, and it is recognised above.
            $this->synced->remember($messageId, $this->settings->consumer, $fields);
        } else {
            $attempt = (int) ($message['attempt'] ?? 1);
            $max = isset($message['max_attempts']) ? (int) $message['max_attempts'] : null;
            // On the last attempt order-sync parks the order: say so, it now
            // needs a person (re-send or un-park on the status page).
            $last = $max !== null && $attempt >= $max;
            $this->magento->log($last ? 'error' : 'warning', $last
                ? "order-sync bridge: $event failed on its last attempt; order-sync parks the order until someone re-sends it"
                : "order-sync bridge: $event failed; order-sync sends it again", [
                'entity_id' => $entityId,
                'attempt' => $attempt,
                'max_attempts' => $max,
                'error' => mb_substr($error, 0, Settings::MAX_ERROR),
            ]);
        }
        $ack = $this->ack($messageId, $entityId, $error) + $fields;
        $this->answer($delivery, $channel, $ack);
        return $ack['status'];
    }

    /** @return array<string, mixed> the ack order-sync expects */
    private function ack(string $messageId, int $entityId, ?string $error): array
    {
        $ack = [
            'message_id' => $messageId,
            'consumer' => $this->settings->consumer,
            'entity_id' => $entityId,
            'status' => $error === null ? 'synced' : 'failed',
        ];
        if ($error !== null) {
            $ack['error'] = mb_substr($error, 0, Settings::MAX_ERROR);
        }
        return $ack;
    }

    /**
     * Publishes the ack, mandatory and confirmed, then acknowledges the
     * delivery; a returned or refused ack leaves it unacknowledged.
     *
     * @param array<string, mixed> $ack
     */
    private function answer(AMQPMessage $delivery, AMQPChannel $channel, array $ack): void
    {
        $this->returned = false;
        $this->nacked = false;
        // Routed by this consumer's name: order-sync counts an ack only then.
        $channel->basic_publish(new AMQPMessage((string) json_encode($ack), [
            'content_type' => 'application/json',
            'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
        ]), $this->settings->acksExchange(), $this->settings->consumer, true);
        $channel->wait_for_pending_acks_returns(30);
        if ($this->returned || $this->nacked) {
            // Not taken: leave the delivery unacknowledged; it comes again.
            throw new \RuntimeException(sprintf(
                'the ack was %s by the broker (is %s declared?)',
                $this->returned ? 'returned as unroutable' : 'refused',
                $this->settings->acksExchange(),
            ));
        }
        $delivery->ack();
        $this->handled++;
    }

    /**
     * The event's arguments as Magento gives the original event: `order` for
     * a placement, a cancellation and a change (with `previous`, the state and
     * status before it); the document under its own name (`invoice`,
     * `shipment`, `creditmemo`) and as `data_object` for a document's save,
     * with its `order`. Sets `$error` when the document is not in Magento.
     *
     * @param array<string, mixed> $message
     * @return array<string, mixed>
     */
    private function arguments(array $message, object $order, ?string &$error): array
    {
        $arguments = ['order' => $order];
        foreach (['invoice', 'shipment', 'creditmemo'] as $kind) {
            if (!isset($message[$kind]) || !is_array($message[$kind])) {
                continue;
            }
            $id = $message[$kind]['entity_id'] ?? null;
            $document = is_int($id) ? $this->magento->loadDocument($kind, $id) : null;
            if ($document === null) {
                $error = "$kind entity_id " . var_export($id, true) . ' not found in Magento';
                return $arguments;
            }
            $arguments[$kind] = $document;
            $arguments['data_object'] = $document;
        }
        if (isset($message['previous']) && is_array($message['previous'])) {
            $arguments['previous'] = $message['previous'];
        }
        return $arguments;
    }

    private function installSignalHandlers(): void
    {
        if (!function_exists('pcntl_async_signals')) {
            return;
        }
        pcntl_async_signals(true);
        foreach ([SIGTERM, SIGINT] as $signal) {
            pcntl_signal($signal, function (): void {
                $this->stop();
            });
        }
    }
}
