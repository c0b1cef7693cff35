<?php
/**
 * A sync service for order-sync in PHP, with php-amqplib.
 *
 * Consumes <PREFIX>.que.<CONSUMER>, hands each order to syncOrder(), publishes
 * the ack to <PREFIX>.acks with publisher confirms, and only then acknowledges
 * the delivery, as docs/asyncapi.yaml asks. What your system answered (its id
 * for the order, returned by syncOrder()) goes in the ack as remote_id, and
 * order-sync shows it on the order. A message it already synced (same
 * message_id, also after a restart: they are kept in a file, SYNCED_FILE,
 * with the remote id) is not synced again, its ack is re-sent; a message that
 * is not an order is rejected to the dead-letter queue; a lost connection is
 * retried.
 *
 *   composer install          # or, on Debian/Ubuntu: apt-get install php-amqplib
 *   AMQP_URL=amqp://erp:erp@localhost:5672/shop PREFIX=demo CONSUMER=erp php consumer.php
 *
 * Edit syncOrder() and syncEvent() here, or keep this file as it is: define
 * them in your own script, then `require 'consumer.php';`.
 *
 * Settings (environment): AMQP_URL, PREFIX, CONSUMER, SYNCED_FILE (default
 * order-sync-synced.jsonl: the message_ids synced, kept SYNCED_KEEP_DAYS,
 * default 7, and in memory while it runs; written and fsync'd before the ack
 * goes, so a crash after it brings the message back and it is recognised),
 * MAX_MESSAGES (stop after this many; for tests).
 */

declare(strict_types=1);

// Composer's autoloader, else the one of Debian's php-amqplib package.
require is_file(__DIR__ . '/vendor/autoload.php')
    ? __DIR__ . '/vendor/autoload.php'
    : 'PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPExceptionInterface;
use PhpAmqpLib\Message\AMQPMessage;

if (!function_exists('syncOrder')) {
    /**
     * Send one order to your ERP, warehouse or CRM here. Return to report it
     * synced: what the order became in your system, as its id there (a
     * string) or ['remote_id' => ..., 'remote_url' => ...], or null. Throw to
     * report a failure (order-sync sends it again after a back-off and shows
     * the message on its status page).
     *
     * @return string|array{remote_id?: string, remote_url?: string}|null
     */
    function syncOrder(array $message): string|array|null
    {
        $order = $message['order'];
        fprintf(STDOUT, "order %s (entity_id %d), attempt %d: %d item(s), grand total %s %s\n",
            $order['increment_id'] ?? '?', $order['entity_id'], $message['attempt'],
            count($order['items'] ?? []), $order['grand_total'] ?? '?', $order['order_currency_code'] ?? '');
        return null; // your system's id for the order, once it has one
    }
}

if (!function_exists('syncEvent')) {
    /**
     * An order's later event (when this consumer's `events` list more than
     * `placed`): the document or the change, with the order's identifiers, state
     * and status. They come in order per order, each after the one before it was
     * acked. Same contract as syncOrder().
     *
     * @return string|array{remote_id?: string, remote_url?: string}|null
     */
    function syncEvent(array $message): string|array|null
    {
        $order = $message['order'];
        $document = $message['invoice'] ?? $message['shipment'] ?? $message['creditmemo'] ?? null;
        $previous = $message['previous'] ?? null;
        fprintf(STDOUT, "order %s (entity_id %d) event #%d %s: %s\n",
            $order['increment_id'] ?? '?', $order['entity_id'], $message['sequence'] ?? 0, $message['event'],
            $document !== null
                ? sprintf('document %s, %d item(s)', $document['increment_id'] ?? $document['entity_id'], count($document['items'] ?? []))
                : sprintf('%s/%s -> %s/%s', $previous['state'] ?? '?', $previous['status'] ?? '?', $order['state'] ?? '?', $order['status'] ?? '?'));
        return null;
    }
}

/** What a handler returned, as the ack's remote_id and remote_url. */
function remoteOf(string|array|null $answer): array
{
    if ($answer === null) {
        return [];
    }
    if (is_string($answer)) {
        $answer = ['remote_id' => $answer];
    }
    $remote = array_map('strval', array_filter(
        array_intersect_key($answer, ['remote_id' => 1, 'remote_url' => 1]),
        fn ($v) => $v !== null
    ));
    if (strlen($remote['remote_id'] ?? '') > 255) {
        throw new LengthException('remote_id is longer than 255 characters');
    }
    return $remote;
}

/** SYNCED_FILE cannot be read or written: the consumer stops rather than forget. */
final class SyncedFileError extends Exception
{
}

/**
 * The message_ids this service synced and what its system answered: an
 * append-only file of JSON lines, fsync'd before the ack goes, read back and
 * compacted (entries older than $keepDays dropped) at start.
 */
final class SyncedLog
{
    /** @var array<string, array> */
    private array $seen = [];
    /** @var resource */
    private $file;

    public function __construct(string $path, int $keepDays)
    {
        $cutoff = time() - $keepDays * 86400;
        if (is_file($path)) {
            foreach (file($path, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
                $entry = json_decode($line, true);
                // A torn last line (a crash while writing it) is skipped: that
                // message was not acked, so it comes again.
                if (is_array($entry) && isset($entry['message_id'], $entry['at']) && $entry['at'] >= $cutoff) {
                    $this->seen[$entry['message_id']] = $entry;
                }
            }
        }
        $compacted = implode('', array_map(fn (array $e) => json_encode($e) . "\n", $this->seen));
        if (file_put_contents("$path.tmp", $compacted) === false || !rename("$path.tmp", $path)) {
            throw new SyncedFileError("cannot write SYNCED_FILE $path");
        }
        $this->file = fopen($path, 'ab') ?: throw new SyncedFileError("cannot open SYNCED_FILE $path");
    }

    /** What was answered for $messageId ([] if nothing), or null if it was not synced. */
    public function get(string $messageId): ?array
    {
        $entry = $this->seen[$messageId] ?? null;
        return $entry === null ? null : array_intersect_key($entry, ['remote_id' => 1, 'remote_url' => 1]);
    }

    public function remember(string $messageId, array $remote): void
    {
        $entry = ['message_id' => $messageId, 'at' => time()] + $remote;
        if (fwrite($this->file, json_encode($entry) . "\n") === false || !fflush($this->file) || !fsync($this->file)) {
            throw new SyncedFileError('cannot write SYNCED_FILE');
        }
        $this->seen[$messageId] = $entry;
    }
}

$url = parse_url(getenv('AMQP_URL') ?: 'amqp://guest:guest@localhost:5672/%2f');
$prefix = getenv('PREFIX') ?: 'demo';
$consumer = getenv('CONSUMER') ?: 'erp';
$queue = "$prefix.que.$consumer";
$acks = "$prefix.acks";
$vhost = isset($url['path']) && $url['path'] !== '/' ? rawurldecode(substr($url['path'], 1)) : '/';
$maxMessages = (int) (getenv('MAX_MESSAGES') ?: 0);
$handled = 0;

try {
    $synced = new SyncedLog(getenv('SYNCED_FILE') ?: 'order-sync-synced.jsonl', (int) (getenv('SYNCED_KEEP_DAYS') ?: 7));
} catch (SyncedFileError $e) {
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(1);
}
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
            function (AMQPMessage $delivery) use ($channel, $acks, $consumer, $maxMessages, $synced, &$returned, &$handled): void {
                $message = json_decode($delivery->getBody(), true);
                if (!is_array($message) || !isset($message['message_id'], $message['order']['entity_id'])) {
                    fwrite(STDERR, "not an order message; dead-lettering it\n");
                    $delivery->reject(false);
                    return;
                }
                $error = null;
                $remote = $synced->get($message['message_id']);
                if ($remote !== null) {
                    fprintf(STDERR, "%s already synced; not synced again, its ack sent again\n", $message['message_id']);
                } else {
                    try {
                        $remote = remoteOf(($message['event'] ?? '') === 'sales_order_place_after_que'
                            ? syncOrder($message)
                            : syncEvent($message));
                    } catch (Throwable $e) {
                        $error = get_class($e) . ': ' . $e->getMessage();
                    }
                    if ($error === null) {
                        // On disk before the ack goes: a crash after it brings
                        // the message back, and it is recognised. If the file
                        // cannot be written, this stops (SyncedFileError) with
                        // the delivery unacked, so it comes again.
                        $synced->remember($message['message_id'], $remote);
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
                } else {
                    $ack += $remote;
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
    } catch (SyncedFileError $e) {
        fwrite(STDERR, $e->getMessage() . "; stopping, the message unacked comes again\n");
        exit(1);
    } catch (AMQPExceptionInterface | RuntimeException $e) {
        fwrite(STDERR, sprintf("broker trouble (%s); reconnecting in %.1fs\n", $e->getMessage(), $delay));
        usleep((int) ($delay * 1e6));
        $delay = min($delay * 2, 15);
    }
}
