<?php
/**
 * Where the bridge finds its queue and sends its acks. The same keys come
 * from Magento's configuration (app/etc/env.php `order_sync`, or local.xml
 * `global/order_sync` in Magento 1) and from command options, options winning.
 */

declare(strict_types=1);

namespace OrderSync\Bridge;

final class Settings
{
    /** Longest error text sent back in a `failed` ack, as order-sync keeps it. */
    public const MAX_ERROR = 2000;

    public function __construct(
        /** amqp://user:password@host:port/vhost of order-sync's broker. */
        public readonly string $url,
        /** order-sync's broker.prefix. */
        public readonly string $prefix,
        /** This consumer's name, as in order-sync's consumers.names. */
        public readonly string $consumer,
        /** Orders taken from the broker at once. */
        public readonly int $prefetch = 1,
        /** The queue, when order-sync's broker.names renames it. */
        public readonly ?string $queue = null,
        /** The acks exchange, when order-sync's broker.names renames it. */
        public readonly ?string $acksExchange = null,
        /**
         * Days a synced message_id is remembered, so that a repeat of it is
         * not dispatched again: longer than order-sync re-delivers one
         * message (relay.max_attempts with its backoff, and downtime).
         */
        public readonly int $keepSyncedDays = 30,
    ) {
        if ($keepSyncedDays < 1) {
            throw new \InvalidArgumentException('order_sync: `keep_synced_days` must be at least 1');
        }
        if ($consumer === '' || $prefix === '') {
            throw new \InvalidArgumentException('order_sync: prefix and consumer are required');
        }
        $this->broker();
    }

    /**
     * The broker's host, port, user, password and vhost from `url`, or an
     * error naming the key: a URL the bridge cannot use stops it at start,
     * not at its first connection.
     *
     * @return array{host: string, port: int, user: string, password: string, vhost: string}
     */
    public function broker(): array
    {
        $url = parse_url($this->url);
        if ($url === false || ($url['scheme'] ?? '') !== 'amqp' || !isset($url['host'])) {
            throw new \InvalidArgumentException(
                'order_sync: `url` must be amqp://user:password@host:port/vhost'
                . (str_starts_with($this->url, 'amqps:') ? ' (the bridge does not speak TLS yet)' : '')
            );
        }
        $path = $url['path'] ?? '';
        return [
            'host' => $url['host'],
            'port' => $url['port'] ?? 5672,
            'user' => rawurldecode($url['user'] ?? 'guest'),
            'password' => rawurldecode($url['pass'] ?? 'guest'),
            'vhost' => $path === '' || $path === '/' ? '/' : rawurldecode(substr($path, 1)),
        ];
    }

    /**
     * From a configuration array with keys url, prefix, consumer, and
     * optionally prefetch, queue, acks_exchange.
     *
     * @param array<string, mixed> $config
     */
    public static function fromArray(array $config): self
    {
        foreach (['url', 'prefix', 'consumer'] as $key) {
            if (!isset($config[$key]) || !is_string($config[$key]) || $config[$key] === '') {
                throw new \InvalidArgumentException("order_sync: `$key` is missing");
            }
        }
        return new self(
            $config['url'],
            $config['prefix'],
            $config['consumer'],
            (int) ($config['prefetch'] ?? 1),
            $config['queue'] ?? null,
            $config['acks_exchange'] ?? null,
            (int) ($config['keep_synced_days'] ?? 30),
        );
    }

    public function queue(): string
    {
        return $this->queue ?? "{$this->prefix}.que.{$this->consumer}";
    }

    public function acksExchange(): string
    {
        return $this->acksExchange ?? "{$this->prefix}.acks";
    }
}
