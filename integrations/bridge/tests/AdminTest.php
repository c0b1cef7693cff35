<?php
/**
 * The admin pages' logic (both modules) against a running order-sync, with
 * only Magento's admin replaced. tests/pipeline/magento_admin.rs sets the
 * scene and passes it in the environment:
 *   ORDER_SYNC_URL, ORDER_SYNC_TOKEN; ORDERS (JSON list of the entity ids
 *   order-sync holds, for erp and wms); PARKED (two of them, parked for wms).
 * It then checks the ledger for what the admin did.
 */

declare(strict_types=1);

use OrderSync\Bridge\Admin\Client;
use OrderSync\Bridge\Admin\Controller;
use OrderSync\Bridge\Admin\Html;
use PHPUnit\Framework\TestCase;

final class AdminTest extends TestCase
{
    private static function scene(string $key): string
    {
        $value = getenv($key);
        if ($value === false || $value === '') {
            self::fail("$key is not set: run this through tests/pipeline/magento_admin.rs (deploy/test.sh)");
        }
        return $value;
    }

    /** @return list<int> */
    private static function ids(string $key): array
    {
        return json_decode(self::scene($key), true, flags: JSON_THROW_ON_ERROR);
    }

    private static function admin(array $params = [], ?string $token = null, ?string $url = null): FakeAdmin
    {
        return new FakeAdmin($params, $url ?? self::scene('ORDER_SYNC_URL'), $token ?? self::scene('ORDER_SYNC_TOKEN'));
    }

    /** An order's rows as the tab shows them, by "consumer#seq" => state. */
    private static function states(int $entityId): array
    {
        $view = (new Controller(self::admin()))->orderTab($entityId);
        self::assertNull($view['error']);
        $states = [];
        foreach ($view['rows'] as $r) {
            $states["{$r['consumer']}#{$r['seq']}"] = $r['state'];
        }
        return $states;
    }

    public function test_the_grid_lists_each_order_per_sync_service_and_filters_by_state_and_service(): void
    {
        $orders = self::ids('ORDERS');
        [$parked] = self::ids('PARKED');
        $view = (new Controller(self::admin()))->grid();
        self::assertNull($view['error']);
        self::assertSame(['erp', 'wms'], $view['consumers']);
        self::assertCount(2 * count($orders), $view['rows']);
        $ids = array_unique(array_column($view['rows'], 'entity_id'));
        sort($ids);
        self::assertSame($orders, $ids);

        $view = (new Controller(self::admin(['state' => 'parked'])))->grid();
        self::assertSame(self::ids('PARKED'), array_reverse(array_column($view['rows'], 'entity_id')), 'newest first');
        self::assertSame(['wms', 'wms'], array_column($view['rows'], 'consumer'));
        self::assertStringContainsString('given up in the test', $view['rows'][0]['last_error']);
        $html = Html::grid($view, [
            'grid' => '/admin/ordersync/grid',
            'action' => '/admin/ordersync/act',
            'order' => fn (int $id) => "/admin/sales/order/view/order_id/$id",
        ], 'FORMKEY');
        self::assertStringContainsString("data-entity-id=\"$parked\" data-consumer=\"wms\" data-state=\"parked\"", $html);
        self::assertStringContainsString('name="form_key" value="FORMKEY"', $html);
        self::assertStringContainsString("/admin/sales/order/view/order_id/$parked", $html);

        $view = (new Controller(self::admin(['consumer' => 'erp'])))->grid();
        self::assertSame(array_fill(0, count($orders), 'erp'), array_column($view['rows'], 'consumer'));

        $view = (new Controller(self::admin(['state' => 'lost'])))->grid();
        self::assertStringContainsString('`lost` is not a state', $view['error']);
        self::assertSame([], $view['rows']);
    }

    public function test_the_order_tab_shows_each_sync_services_rows_and_says_when_order_sync_lacks_the_order(): void
    {
        [$parked] = self::ids('PARKED');
        $view = (new Controller(self::admin()))->orderTab($parked);
        self::assertSame(['erp', 'wms'], array_column($view['rows'], 'consumer'));
        self::assertSame(['pending', 'parked'], array_column($view['rows'], 'state'));
        self::assertStringContainsString('given up in the test', $view['rows'][1]['last_error']);
        $html = Html::tab($view, '/admin/ordersync/act', 'FORMKEY');
        self::assertStringContainsString('data-consumer="wms" data-seq="0" data-state="parked"', $html);
        self::assertStringContainsString('<option value="unpark">Un-park</option>', $html);

        $missing = (new Controller(self::admin()))->orderTab(999999);
        self::assertTrue($missing['missing']);
        self::assertStringContainsString('has not captured this order', Html::tab($missing, '/act', 'K'));
    }

    public function test_un_park_skip_and_re_send_from_the_admin_change_the_ledger_and_say_so(): void
    {
        [$first, $second] = self::ids('PARKED');
        $orders = self::ids('ORDERS');
        $resend = end($orders);

        $admin = self::admin(['action' => 'unpark', 'entity_ids' => [(string) $first], 'consumer' => 'wms']);
        self::assertTrue((new Controller($admin))->act(), implode("\n", $admin->errors));
        self::assertSame(['Un-parked 1 row(s) for wms.'], $admin->successes);
        self::assertSame('pending', self::states($first)['wms#0']);

        $admin = self::admin(['action' => 'skip', 'entity_id' => (string) $second, 'consumer' => 'wms']);
        self::assertTrue((new Controller($admin))->act(), implode("\n", $admin->errors));
        self::assertSame(['Skipped 1 parked row(s) for wms; their later events go on.'], $admin->successes);
        self::assertSame('skipped', self::states($second)['wms#0']);

        $admin = self::admin(['action' => 'resend', 'entity_ids' => [(string) $resend]]);
        self::assertTrue((new Controller($admin))->act(), implode("\n", $admin->errors));
        self::assertSame(['Re-sent 1 order(s) (2 row(s)).'], $admin->successes);
    }

    public function test_a_wrong_token_or_an_unreachable_order_sync_is_a_clear_admin_error_and_changes_nothing(): void
    {
        [, $second] = self::ids('PARKED');
        $orders = self::ids('ORDERS');
        $before = self::states($orders[0]);
        $beforeSecond = self::states($second);

        $admin = self::admin(['action' => 'resend', 'entity_ids' => [(string) $orders[0]]], token: str_repeat('x', 32));
        self::assertFalse((new Controller($admin))->act());
        self::assertSame([], $admin->successes);
        self::assertCount(1, $admin->errors);
        self::assertStringContainsString('order-sync refused the API token (401', $admin->errors[0]);
        self::assertStringContainsString('Stores → Configuration → Sales → Order Sync', $admin->errors[0]);
        $view = (new Controller($admin))->grid();
        self::assertStringContainsString('refused the API token', $view['error']);
        self::assertSame([], $view['rows']);

        $admin = self::admin(['action' => 'unpark', 'entity_ids' => [(string) $second]], url: 'http://127.0.0.1:9');
        self::assertFalse((new Controller($admin))->act());
        self::assertStringContainsString('order-sync is not reachable at http://127.0.0.1:9', $admin->errors[0]);
        self::assertStringContainsString('nothing was changed', $admin->errors[0]);
        self::assertStringContainsString('not reachable', (new Controller($admin))->orderTab($second)['error']);

        self::assertSame($before, self::states($orders[0]), 'nothing changed');
        self::assertSame($beforeSecond, self::states($second), 'nothing changed');
    }

    public function test_asked_wrongly_the_admin_is_told_what_to_fix_and_nothing_is_sent(): void
    {
        [$first] = self::ids('PARKED');
        foreach ([
            [['action' => 'frobnicate', 'entity_ids' => [(string) $first]], '`frobnicate` is not an action'],
            [['action' => 'skip'], 'Select at least one order.'],
            [['action' => 'skip', 'entity_ids' => ['12a']], '`12a` is not an order id.'],
            [['action' => 'skip', 'entity_ids' => [(string) $first], 'consumer' => 'crm'], 'order-sync answered 400'],
        ] as [$params, $says]) {
            $admin = self::admin($params);
            self::assertFalse((new Controller($admin))->act(), json_encode($params));
            self::assertStringContainsString($says, $admin->errors[0] ?? '', json_encode($params));
        }
        $admin = new FakeAdmin(['action' => 'skip', 'entity_ids' => ['1']], null, null);
        self::assertFalse((new Controller($admin))->act());
        self::assertStringContainsString('The order-sync URL is not set', $admin->errors[0]);
        $admin = new FakeAdmin([], 'ftp://order-sync', 'token');
        self::assertStringContainsString('is not an http:// or https:// URL', (new Controller($admin))->grid()['error']);
        self::assertInstanceOf(Client::class, Client::fromSettings('http://order-sync:8080/', 'token'));
    }
}
