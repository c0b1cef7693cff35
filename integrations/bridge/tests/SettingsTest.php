<?php
/**
 * The bridge's settings, without a broker: a URL it cannot use is refused at
 * start with the key named, and a good one is read the way RabbitMQ reads it.
 */

declare(strict_types=1);

use OrderSync\Bridge\Settings;
use PHPUnit\Framework\TestCase;

final class SettingsTest extends TestCase
{
    public function test_a_url_is_read_into_host_port_login_and_vhost(): void
    {
        $settings = Settings::fromArray([
            'url' => 'amqp://erp:s%40cret@rabbit.internal:5673/shop%2Fde',
            'prefix' => 'shop',
            'consumer' => 'erp',
        ]);
        self::assertSame([
            'host' => 'rabbit.internal',
            'port' => 5673,
            'user' => 'erp',
            'password' => 's@cret',
            'vhost' => 'shop/de',
        ], $settings->broker());
        self::assertSame('shop.que.erp', $settings->queue());
        self::assertSame('shop.acks', $settings->acksExchange());
    }

    public function test_the_default_vhost_and_port_are_rabbitmqs(): void
    {
        $broker = Settings::fromArray(['url' => 'amqp://erp:x@rabbit', 'prefix' => 'p', 'consumer' => 'erp'])->broker();
        self::assertSame(['rabbit', 5672, '/'], [$broker['host'], $broker['port'], $broker['vhost']]);
    }

    public function test_a_url_the_bridge_cannot_use_is_refused_naming_the_key(): void
    {
        foreach (['rabbit:5672', 'http://rabbit/', 'amqp:///shop', 'amqps://erp:x@rabbit/shop'] as $url) {
            try {
                Settings::fromArray(['url' => $url, 'prefix' => 'shop', 'consumer' => 'erp']);
                self::fail("$url was taken");
            } catch (\InvalidArgumentException $e) {
                self::assertStringContainsString('`url`', $e->getMessage(), $url);
            }
        }
    }

    public function test_a_missing_key_is_named(): void
    {
        $this->expectExceptionMessage('`consumer` is missing');
        Settings::fromArray(['url' => 'amqp://rabbit', 'prefix' => 'shop']);
    }
}
