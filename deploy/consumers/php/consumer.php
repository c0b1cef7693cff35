<?php
/**
 * A sync service for order-sync in PHP, with php-amqplib.
 *
 * Consumes <PREFIX>.que.<CONSUMER>, hands each order to syncOrder(), publishes
 * the ack to <PREFIX>.acks with publisher confirms, and only then acknowledges
 * the delivery, as docs/asyncapi.yaml asks. Re-deliveries of an order it
 * already synced are not synced again (their ack is re-sent); a message that
 * is not an order is rejected to the dead-letter queue; a lost connection is
 * retried.
 *
 *   composer install          # or, on Debian/Ubuntu: apt-get install php-amqplib
 *   AMQP_URL=amqp://erp:erp@localhost:5672/shop PREFIX=demo CONSUMER=erp php consumer.php
 *
 * MAX_MESSAGES=n stops after n messages (the test suite runs it that way).
 */

declare(strict_types=1);

// Composer's autoloader, else the one of Debian's php-amqplib package.
require is_file(__DIR__ . '/vendor/autoload.php')
    ? __DIR__ . '/vendor/autoload.php'
    : 'PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPExceptionInterface;
use PhpAmqpLib\Message\AMQPMessage;

/**
 * Send one order to your ERP, warehouse or CRM here. Return to report it
 * synced; throw to report a failure (order-sync sends it again after a
 * back-off and shows the message on its status page).
 */
function syncOrder(array $message): void
{
    $order = $message['order'];
    fprintf(STDOUT, "order %s (entity_id %d), attempt %d: %d item(s), grand total %s %s\n",
        $order['increment_id'] ?? '?', $order['entity_id'], $message['attempt'],
        count($order['items'] ?? []), $order['grand_total'] ?? '?', $order['order_currency_code'] ?? '');
}

/**
 * An order's later event (when this consumer's `events` list more than
 * `placed`): the document or the change, with the order's identifiers, state
 * and status. They come in order per order, each after the one before it was
 * acked. Same contract as syncOrder().
 */
function syncEvent(array $message): void
{
    $order = $message['order'];
    $document = $message['invoice'] ?? $message['shipment'] ?? $message['creditmemo'] ?? null;
    $previous = $message['previous'] ?? null;
    fprintf(STDOUT, "order %s (entity_id %d) event #%d %s: %s\n",
        $order['increment_id'] ?? '?', $order['entity_id'], $message['sequence'] ?? 0, $message['event'],
        $document !== null
            ? sprintf('document %s, %d item(s)', $document['increment_id'] ?? $document['entity_id'], count($document['items'] ?? []))
            : sprintf('%s/%s -> %s/%s', $previous['state'] ?? '?', $previous['status'] ?? '?', $order['state'] ?? '?', $order['status'] ?? '?'));
}

$url = parse_url(getenv('AMQP_URL') ?: 'amqp://guest:guest@localhost:5672/%2f');
$prefix = getenv('PREFIX') ?: 'demo';
$consumer = getenv('CONSUMER') ?: 'erp';
$queue = "$prefix.que.$consumer";
$acks = "$prefix.acks";
$vhost = isset($url['path']) && $url['path'] !== '/' ? rawurldecode(substr($url['path'], 1)) : '/';
$maxMessages = (int) (getenv('MAX_MESSAGES') ?: 0);
$handled = 0;

/** @var array<string, true> message_ids synced by this process (bounded) */
$synced = [];
$delay = 0.2;

while (true) {
    try {
        $connection = new AMQPStreamConnection(
            $url['host'] ?? 'localhost', $url['port'] ?? 5672,
            rawurldecode($url['user'] ?? 'guest'), rawurldecode($url['pass'] ?? 'guest'), $vhost);
        $channel = $connection->channel();
        $channel->confirm_select();
        $channel->basic_qos(0, 20, false);
        $returned = false;
        $channel->set_return_listener(function () use (&$returned): void { $returned = true; });
        $delay = 0.2;

        $channel->basic_consume($queue, '', false, false, false, false,
            function (AMQPMessage $delivery) use ($channel, $acks, $consumer, $maxMessages, &$synced, &$returned, &$handled): void {
                $message = json_decode($delivery->getBody(), true);
                if (!is_array($message) || !isset($message['message_id'], $message['order']['entity_id'])) {
                    fwrite(STDERR, "not an order message; dead-lettering it\n");
                    $delivery->reject(false);
                    return;
                }
                $error = null;
                if (!isset($synced[$message['message_id']])) {
                    try {
                        if (($message['event'] ?? '') === 'sales_order_place_after_que') {
                            syncOrder($message);
                        } else {
                            syncEvent($message);
                        }
                    } catch (Throwable $e) {
                        $error = get_class($e) . ': ' . $e->getMessage();
                    }
                }
                $ack = [
                    'message_id' => $message['message_id'],
                    'consumer' => $consumer,
                    'entity_id' => $message['order']['entity_id'],
                    'status' => $error === null ? 'synced' : 'failed',
                ];
                if ($error !== null) {
                    $ack['error'] = substr($error, 0, 2000);
                }
                // Mandatory and confirmed before the delivery is acked: if this
                // process dies in between, the order comes again, never lost.
                $returned = false;
                $channel->basic_publish(new AMQPMessage(json_encode($ack), [
                    'content_type' => 'application/json',
                    'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
                ]), $acks, $consumer, true);
                $channel->wait_for_pending_acks_returns(30);
                if ($returned) {
                    throw new RuntimeException("ack was unroutable: is $acks declared?");
                }
                if ($error === null) {
                    $synced[$message['message_id']] = true;
                    if (count($synced) > 10000) {
                        array_shift($synced);
                    }
                }
                $delivery->ack();
                $handled++;
                if ($maxMessages > 0 && $handled >= $maxMessages) {
                    $channel->basic_cancel($delivery->getConsumerTag());
                }
            });
        while ($channel->is_consuming()) {
            $channel->wait();
        }
        fprintf(STDERR, "handled %d message(s)\n", $handled);
        $channel->close();
        $connection->close();
        exit(0);
    } catch (AMQPExceptionInterface | RuntimeException $e) {
        fwrite(STDERR, sprintf("broker trouble (%s); reconnecting in %.1fs\n", $e->getMessage(), $delay));
        usleep((int) ($delay * 1e6));
        $delay = min($delay * 2, 15);
    }
}
