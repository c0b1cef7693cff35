<?php
/**
 * The one part of the bridge the tests replace: Magento. Orders are plain
 * objects; "observers" are what the test says each order's event does.
 */

declare(strict_types=1);

use OrderSync\Bridge\Adapter;

final class FakeOrder
{
    public function __construct(public readonly int $entityId)
    {
    }

    public function getId(): int
    {
        return $this->entityId;
    }
}

final class FakeDocument
{
    public function __construct(public readonly string $kind, public readonly int $entityId)
    {
    }
}

final class FakeMagento implements Adapter
{
    /** @var list<array{string, array<string, mixed>}> every event dispatched */
    public array $dispatched = [];
    /** @var list<string> */
    public array $logged = [];
    /** @var array<int, int> dispatches per entity_id */
    private array $calls = [];

    private ?\PDO $db = null;

    /**
     * @param array<int, string> $observers entity_id => `ok`, `once` (throws
     *   the first time), `always` (always throws), `slow` (takes a second,
     *   then succeeds); an id not listed is an order Magento does not have.
     * @param ?\Closure $onDispatch called after each dispatch (the SIGTERM test)
     */
    public function __construct(private array $observers, private ?\Closure $onDispatch = null)
    {
    }

    /**
     * The test's own Magento database, a real MariaDB one (MAGENTO_DSN,
     * MAGENTO_USER, MAGENTO_PASSWORD): the bridge keeps what it synced there.
     */
    public function database(): \PDO
    {
        if ($this->db === null) {
            $dsn = getenv('MAGENTO_DSN');
            if ($dsn === false || $dsn === '') {
                throw new \LogicException('MAGENTO_DSN is not set: run this through tests/pipeline/magento_bridge.rs');
            }
            try {
                $this->db = new \PDO($dsn, (string) getenv('MAGENTO_USER'), (string) getenv('MAGENTO_PASSWORD'));
            } catch (\PDOException $e) {
                throw new \LogicException("MariaDB at $dsn is unreachable ({$e->getMessage()}); start it: deploy/services.sh");
            }
        }
        return $this->db;
    }

    public function tableName(string $name): string
    {
        return (string) getenv('TABLE_PREFIX') . $name;
    }

    public function loadOrder(int $entityId): ?object
    {
        return isset($this->observers[$entityId]) ? new FakeOrder($entityId) : null;
    }

    public function loadDocument(string $kind, int $entityId): ?object
    {
        return new FakeDocument($kind, $entityId);
    }

    public function dispatch(string $event, array $arguments): void
    {
        $this->dispatched[] = [$event, $arguments];
        $order = $arguments['order'];
        $id = $order->getId();
        $n = ($this->calls[$id] ?? 0) + 1;
        $this->calls[$id] = $n;
        if ($this->onDispatch !== null) {
            ($this->onDispatch)($id);
        }
        $what = $this->observers[$id];
        if ($what === 'slow') {
            usleep(1_000_000);
        }
        if ($what === 'always' || ($what === 'once' && $n === 1)) {
            throw new \RuntimeException("ERP rejected order $id (call $n)");
        }
        // What an ERP observer says back: the order's number there.
        $arguments['order_sync_answer']->setRemoteId("ERP-$id")->setRemoteUrl("https://erp.example/orders/$id");
    }

    public function log(string $level, string $message, array $context = []): void
    {
        $this->logged[] = "$level: $message";
    }

    public function calls(int $entityId): int
    {
        return $this->calls[$entityId] ?? 0;
    }
}
