<?php
/**
 * order-sync's answers as the admin shows them: one grid row per order and
 * consumer (the state that needs attention first, its attempts, error and
 * what it waits behind), and an order's rows, one per event, for its tab.
 */

declare(strict_types=1);

namespace OrderSync\Bridge\Admin;

final class OrderRows
{
    /** Row states, the one needing a person first. */
    public const STATES = ['parked', 'failed', 'pending', 'published', 'held', 'synced', 'skipped'];

    /** A row is settled once it is synced or skipped. */
    private const SETTLED = ['synced', 'skipped'];

    /**
     * One row per order and consumer of a page of `/api/orders` (only
     * `$consumer`'s, and only those with a row in `$state`, when given).
     *
     * @param list<array> $orders
     * @return list<array{entity_id: int, increment_id: ?string, store_id: ?int, placed_at: ?string,
     *     consumer: string, state: string, attempts: int, last_error: ?string, blocked_by: ?int,
     *     remote_id: ?string, remote_url: ?string, events: int, open: int, synced_at: ?string}>
     */
    public static function grid(array $orders, ?string $consumer = null, ?string $state = null): array
    {
        $rows = [];
        foreach ($orders as $order) {
            $byConsumer = [];
            foreach ($order['deliveries'] ?? [] as $d) {
                $byConsumer[$d['consumer']][] = $d;
            }
            ksort($byConsumer);
            foreach ($byConsumer as $name => $deliveries) {
                if ($consumer !== null && $consumer !== '' && $name !== $consumer) {
                    continue;
                }
                $row = self::summary($order, (string) $name, $deliveries);
                // An order is listed for a state when any of its rows is in
                // it; the grid shows only the services it is so for.
                if ($state !== null && $state !== '' && !in_array($state, array_column($deliveries, 'state'), true)) {
                    continue;
                }
                $rows[] = $row;
            }
        }
        return $rows;
    }

    /**
     * An order's rows from `/api/orders/<entity_id>`, by consumer, then in the
     * order of the order's life.
     *
     * @return list<array>
     */
    public static function tab(array $detail): array
    {
        $rows = $detail['order']['deliveries'] ?? [];
        usort($rows, fn (array $a, array $b) => [$a['consumer'], $a['seq']] <=> [$b['consumer'], $b['seq']]);
        return array_map(fn (array $d) => [
            'consumer' => (string) $d['consumer'],
            'seq' => (int) $d['seq'],
            'event' => (string) $d['event'],
            'state' => (string) $d['state'],
            'attempts' => (int) $d['attempts'],
            'last_error' => $d['last_error'] ?? null,
            'blocked_by' => $d['blocked_by'] ?? null,
            'remote_id' => $d['remote_id'] ?? null,
            'remote_url' => $d['remote_url'] ?? null,
            'last_published_at' => $d['last_published_at'] ?? null,
            'synced_at' => $d['synced_at'] ?? null,
            'resyncs' => (int) ($d['resyncs'] ?? 0),
        ], $rows);
    }

    /** @param list<array> $deliveries one consumer's rows of one order */
    private static function summary(array $order, string $consumer, array $deliveries): array
    {
        $placement = null;
        $first = null; // the row whose state needs attention first
        $open = 0;
        foreach ($deliveries as $d) {
            if ((int) $d['seq'] === 0) {
                $placement = $d;
            }
            if (!in_array($d['state'], self::SETTLED, true)) {
                $open++;
            }
            if ($first === null || self::rank($d['state']) < self::rank($first['state'])) {
                $first = $d;
            }
        }
        $placement ??= $first;
        return [
            'entity_id' => (int) $order['entity_id'],
            'increment_id' => $order['increment_id'] ?? null,
            'store_id' => isset($order['store_id']) ? (int) $order['store_id'] : null,
            'placed_at' => $order['placed_at'] ?? null,
            'consumer' => $consumer,
            'state' => (string) $first['state'],
            'attempts' => (int) $first['attempts'],
            'last_error' => $first['last_error'] ?? null,
            'blocked_by' => $first['blocked_by'] ?? null,
            'remote_id' => $placement['remote_id'] ?? null,
            'remote_url' => $placement['remote_url'] ?? null,
            'events' => count($deliveries),
            'open' => $open,
            'synced_at' => $placement['synced_at'] ?? null,
        ];
    }

    private static function rank(string $state): int
    {
        $i = array_search($state, self::STATES, true);
        return $i === false ? count(self::STATES) : $i;
    }
}
