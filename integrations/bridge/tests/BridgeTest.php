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
            // The event existing observers know, with Magento's own arguments.
            self::assertSame('sales_order_place_after_que', $event);
            self::assertSame(['order'], array_keys($arguments));
            self::assertInstanceOf(FakeOrder::class, $arguments['order']);
        }
        foreach ($observers as $id => $what) {
            $expected = match ($what) {
                'ok' => 1,
                'once' => 2,
                'always' => (int) getenv('MAX_ATTEMPTS'),
                'missing' => 0,
            };
            self::assertSame($expected, $magento->calls((int) $id), "dispatches of order $id ($what)");
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
            ['sales_order_place_after_que', ['order']],
            ['sales_order_invoice_save_after_que', ['order', 'invoice', 'data_object']],
            ['sales_order_save_after_que', ['order', 'previous']],
            ['sales_order_shipment_save_after_que', ['order', 'shipment', 'data_object']],
            ['sales_order_save_after_que', ['order', 'previous']],
        ], $seen);
        $invoice = $magento->dispatched[1][1]['invoice'];
        self::assertSame('invoice', $invoice->kind);
        self::assertSame(['state' => 'new', 'status' => 'pending'], $magento->dispatched[2][1]['previous']);
        self::assertSame(['state' => 'processing', 'status' => 'processing'], $magento->dispatched[4][1]['previous']);
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
