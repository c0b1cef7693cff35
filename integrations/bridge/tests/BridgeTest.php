<?php
/**
 * The bridge against the real RabbitMQ and a running order-sync, with only
 * Magento replaced. tests/pipeline/magento_bridge.rs sets the scene (orders
 * placed, order-sync running) and passes it in the environment:
 *   AMQP_URL, PREFIX, CONSUMER; OBSERVERS (JSON: entity_id => ok|once|always,
 *   and `missing` ids Magento lacks); EXPECT (deliveries to handle).
 * It then checks the ledger: synced, failed-then-synced, parked.
 */

declare(strict_types=1);

use OrderSync\Bridge\Bridge;
use OrderSync\Bridge\Settings;
use PHPUnit\Framework\TestCase;

final class BridgeTest extends TestCase
{
    /** @return array<string, string> */
    private static function scene(): array
    {
        $scene = [];
        foreach (['AMQP_URL', 'PREFIX', 'CONSUMER', 'OBSERVERS', 'EXPECT'] as $key) {
            $value = getenv($key);
            if ($value === false || $value === '') {
                self::fail("$key is not set: run this through tests/pipeline/magento_bridge.rs (deploy/test.sh)");
            }
            $scene[$key] = $value;
        }
        return $scene;
    }

    private static function settings(array $scene): Settings
    {
        return Settings::fromArray([
            'url' => $scene['AMQP_URL'],
            'prefix' => $scene['PREFIX'],
            'consumer' => $scene['CONSUMER'],
        ]);
    }

    public function test_each_order_is_dispatched_as_its_event_and_acked_by_what_the_observers_did(): void
    {
        $scene = self::scene();
        $observers = json_decode($scene['OBSERVERS'], true, flags: JSON_THROW_ON_ERROR);
        $known = array_filter($observers, fn ($what) => $what !== 'missing');
        $magento = new FakeMagento(array_map('strval', $known));
        $bridge = new Bridge($magento, self::settings($scene));

        $handled = $bridge->run((int) $scene['EXPECT'], 60.0);

        self::assertSame((int) $scene['EXPECT'], $handled, implode("\n", $magento->logged));
        foreach ($magento->dispatched as [$event, $arguments]) {
            // The event existing observers know, with Magento's own arguments,
            // and order-sync's own beside them.
            self::assertSame('sales_order_place_after_que', $event);
            self::assertSame(self::withExtras(['order']), array_keys($arguments));
            self::assertInstanceOf(FakeOrder::class, $arguments['order']);
            self::assertSame(0, $arguments['order_sync_sequence']);
            self::assertStringEndsWith(':erp', $arguments['order_sync_message_id']);
        }
        foreach ($observers as $id => $what) {
            $expected = match ($what) {
                'ok', 'slow' => 1,
                'once' => 2,
                'always' => (int) getenv('MAX_ATTEMPTS'),
                'missing' => 0,
            };
            self::assertSame($expected, $magento->calls((int) $id), "dispatches of order $id ($what)");
        }
        // The log says which failure was the last, after which order-sync
        // parks the order, and does not promise another attempt then.
        $gaveUp = array_filter($observers, fn ($what) => in_array($what, ['always', 'missing'], true));
        $last = array_filter($magento->logged, fn ($l) => str_contains($l, 'failed on its last attempt'));
        self::assertCount(count($gaveUp), $last, implode("\n", $magento->logged));
        foreach ($last as $line) {
            self::assertStringStartsWith('error: ', $line);
        }
    }

    public function test_an_orders_later_events_are_dispatched_with_magentos_arguments(): void
    {
        $scene = self::scene();
        $observers = json_decode($scene['OBSERVERS'], true, flags: JSON_THROW_ON_ERROR);
        $magento = new FakeMagento(array_map('strval', $observers));
        $bridge = new Bridge($magento, self::settings($scene));

        $handled = $bridge->run((int) $scene['EXPECT'], 60.0);

        self::assertSame((int) $scene['EXPECT'], $handled, implode("\n", $magento->logged));
        $seen = array_map(fn ($d) => [$d[0], array_keys($d[1])], $magento->dispatched);
        self::assertSame([
            ['sales_order_place_after_que', self::withExtras(['order'])],
            ['sales_order_invoice_save_after_que', self::withExtras(['order', 'invoice', 'data_object'])],
            ['sales_order_save_after_que', self::withExtras(['order', 'previous'])],
            ['sales_order_shipment_save_after_que', self::withExtras(['order', 'shipment', 'data_object'])],
            ['sales_order_save_after_que', self::withExtras(['order', 'previous'])],
        ], $seen);
        self::assertSame([0, 1, 2, 3, 4], array_map(fn ($d) => $d[1]['order_sync_sequence'], $magento->dispatched));
        $invoice = $magento->dispatched[1][1]['invoice'];
        self::assertSame('invoice', $invoice->kind);
        self::assertSame(['state' => 'new', 'status' => 'pending'], $magento->dispatched[2][1]['previous']);
        self::assertSame(['state' => 'processing', 'status' => 'processing'], $magento->dispatched[4][1]['previous']);
    }

    /**
     * A message the bridge synced comes again — a copy order-sync sent after
     * a crash, or the broker's re-delivery — to this process and, after a
     * restart, to a fresh one: the observers ran once, each copy is acked.
     */
    public function test_a_repeat_of_a_synced_message_is_acked_without_running_the_observers_again(): void
    {
        $scene = self::scene();
        $observers = json_decode($scene['OBSERVERS'], true, flags: JSON_THROW_ON_ERROR);
        $settings = self::settings($scene);
        // Two more copies of the order's message behind the first.
        $url = parse_url($scene['AMQP_URL']);
        $connection = new \PhpAmqpLib\Connection\AMQPStreamConnection(
            $url['host'],
            $url['port'] ?? 5672,
            urldecode($url['user']),
            urldecode($url['pass']),
            urldecode(ltrim($url['path'] ?? '/', '/')) ?: '/',
        );
        $channel = $connection->channel();
        $first = null;
        for ($i = 0; $i < 50 && $first === null; $i++) {
            $first = $channel->basic_get($settings->queue());
            $first ?? usleep(100_000);
        }
        self::assertNotNull($first, 'order-sync delivered the order');
        foreach ([1, 2] as $_) {
            $channel->basic_publish(new \PhpAmqpLib\Message\AMQPMessage($first->getBody()), '', $settings->queue());
        }
        $channel->basic_reject($first->getDeliveryTag(), true);
        $channel->close();
        $connection->close();

        $magento = new FakeMagento(array_map('strval', $observers));
        self::assertSame(2, (new Bridge($magento, $settings))->run(2, 30.0));
        // A restart: a new process, nothing in memory.
        $restarted = new FakeMagento(array_map('strval', $observers));
        self::assertSame(1, (new Bridge($restarted, $settings))->run(1, 30.0));

        $id = (int) array_key_first($observers);
        self::assertSame(1, $magento->calls($id) + $restarted->calls($id), 'the observers ran once');
        $repeats = array_filter($magento->logged, fn ($l) => str_contains($l, 'already synced'));
        $restartedRepeats = array_filter($restarted->logged, fn ($l) => str_contains($l, 'already synced'));
        self::assertCount(2, [...$repeats, ...$restartedRepeats], 'each repeat acked as already synced');
        // What the observer answered is kept for the repeats' acks.
        $log = new \OrderSync\Bridge\SyncedLog($restarted->database(), $restarted->tableName('order_sync_bridge_synced'));
        [[, $arguments]] = [...$magento->dispatched, ...$restarted->dispatched];
        self::assertSame(
            ['remote_id' => "ERP-$id", 'remote_url' => "https://erp.example/orders/$id"],
            $log->find($arguments['order_sync_message_id'])
        );
    }

    /** @param list<string> $magento Magento's own argument names */
    private static function withExtras(array $magento): array
    {
        return [...$magento, 'order_sync_message_id', 'order_sync_attempt', 'order_sync_sequence', 'order_sync_answer'];
    }

    public function test_sigterm_finishes_the_order_in_hand_then_stops(): void
    {
        $scene = self::scene();
        $observers = json_decode($scene['OBSERVERS'], true, flags: JSON_THROW_ON_ERROR);
        // SIGTERM arrives while the first order's observers run.
        $magento = new FakeMagento(array_map('strval', $observers), function (): void {
            posix_kill(getmypid(), SIGTERM);
        });
        $bridge = new Bridge($magento, self::settings($scene));

        $handled = $bridge->run(0, 60.0);

        self::assertSame(1, $handled, 'stopped after the order in hand, not before or later');
        self::assertCount(1, $magento->dispatched);
    }
}
