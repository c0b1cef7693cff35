<?php
/**
 * The admin pages' logic, for both modules: the grid's data, an order's tab,
 * and the actions (re-send, un-park, skip), each reporting to the admin as a
 * message. Magento's controllers and blocks only call these.
 */

declare(strict_types=1);

namespace OrderSync\Bridge\Admin;

final class Controller
{
    public const ACTIONS = ['resend' => 'Re-send', 'unpark' => 'Un-park', 'skip' => 'Skip'];

    /** @var \Closure(): Client */
    private \Closure $client;

    /** @param null|callable(): Client $client how to reach order-sync (default: from the adapter's settings) */
    public function __construct(private readonly AdminAdapter $admin, ?callable $client = null)
    {
        $this->client = $client !== null
            ? \Closure::fromCallable($client)
            : fn () => Client::fromSettings($admin->apiUrl(), $admin->apiToken());
    }

    /**
     * The grid: filters from the request (`state`, `consumer`,
     * `increment_id`, `before`), its rows, the next page, the consumers to
     * filter by; `error` when order-sync could not be asked.
     *
     * @return array{filter: array, rows: list<array>, next: ?int, consumers: list<string>, error: ?string}
     */
    public function grid(int $limit = 50): array
    {
        $filter = [];
        foreach (['state', 'consumer', 'increment_id'] as $key) {
            $value = trim((string) $this->admin->param($key));
            if ($value !== '') {
                $filter[$key] = $value;
            }
        }
        $before = $this->admin->param('before');
        $before = is_numeric($before) ? (int) $before : null;
        $view = ['filter' => $filter, 'rows' => [], 'next' => null, 'consumers' => [], 'error' => null];
        try {
            if (isset($filter['state']) && !in_array($filter['state'], OrderRows::STATES, true)) {
                throw new ApiError("`{$filter['state']}` is not a state: one of " . implode(', ', OrderRows::STATES) . '.');
            }
            $client = ($this->client)();
            $page = $client->orders($filter, $limit, $before);
            $view['rows'] = OrderRows::grid($page['orders'], $filter['consumer'] ?? null, $filter['state'] ?? null);
            $view['next'] = $page['next'];
            $view['consumers'] = array_keys($client->summary()['rows'] ?? []);
        } catch (ApiError $e) {
            $view['error'] = $e->getMessage();
        }
        return $view;
    }

    /**
     * An order's tab: its rows, one per consumer and event, or why there are
     * none (`missing`: order-sync has not captured it, e.g. left out by its
     * filter; `error`: order-sync could not be asked).
     *
     * @return array{entity_id: int, rows: list<array>, missing: bool, error: ?string}
     */
    public function orderTab(int $entityId): array
    {
        $view = ['entity_id' => $entityId, 'rows' => [], 'missing' => false, 'error' => null];
        try {
            $detail = ($this->client)()->order($entityId);
            if ($detail === null) {
                $view['missing'] = true;
            } else {
                $view['rows'] = OrderRows::tab($detail);
            }
        } catch (ApiError $e) {
            $view['error'] = $e->getMessage();
        }
        return $view;
    }

    /**
     * Carries out the posted action (`action`, `entity_ids` or `entity_id`,
     * optional `consumer`) and says how it went as an admin message; true if
     * it was done.
     */
    public function act(): bool
    {
        $action = (string) $this->admin->param('action');
        $ids = $this->admin->param('entity_ids') ?? $this->admin->param('entity_id');
        $ids = is_array($ids) ? $ids : (is_string($ids) || is_int($ids) ? explode(',', (string) $ids) : []);
        $ids = array_values(array_unique(array_filter(array_map('trim', array_map('strval', $ids)), 'strlen')));
        $consumer = trim((string) $this->admin->param('consumer'));
        $consumer = $consumer === '' ? null : $consumer;
        try {
            if (!isset(self::ACTIONS[$action])) {
                throw new ApiError("`$action` is not an action: one of " . implode(', ', array_keys(self::ACTIONS)) . '.');
            }
            if ($ids === []) {
                throw new ApiError('Select at least one order.');
            }
            foreach ($ids as $id) {
                if (!ctype_digit($id) || (int) $id < 1) {
                    throw new ApiError("`$id` is not an order id.");
                }
            }
            $ids = array_map('intval', $ids);
            $client = ($this->client)();
            $for = $consumer === null ? '' : " for $consumer";
            $message = match ($action) {
                'resend' => (function () use ($client, $ids, $consumer, $for): string {
                    $r = $client->resend($ids, $consumer);
                    return "Re-sent {$r['orders']} order(s){$for} ({$r['rows']} row(s)).";
                })(),
                'unpark' => sprintf('Un-parked %d row(s)%s.', $client->unpark($ids, $consumer)['rows'], $for),
                'skip' => sprintf(
                    'Skipped %d parked row(s)%s; their later events go on.',
                    $client->skip($ids, $consumer, 'magento admin ' . $this->admin->userName())['rows'],
                    $for
                ),
            };
            $this->admin->addSuccess($message);
            return true;
        } catch (ApiError $e) {
            $this->admin->addError($e->getMessage());
            return false;
        }
    }
}
